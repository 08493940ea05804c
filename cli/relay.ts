// A TCP relay between the backup and the primary's logging channel that the drill can cut: a network
// partition of the logging channel alone, with the shared directory still reachable.

import net from 'node:net';

export class Relay {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private isCut = false;

  constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => {
      if (this.isCut) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Cut every connection and refuse new ones (silently: no clean close reaches either side). */
  cut(): void {
    this.isCut = true;
    for (const s of this.sockets) {
      s.unpipe();
      s.pause();
    }
  }

  /** The partition heals: the stalled connections go (their ends reconnect) and new ones pass again. */
  heal(): void {
    this.isCut = false;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }
}

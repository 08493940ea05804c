// A TCP relay that delays every chunk by a fixed one-way latency (plus uniform jitter), for the netns
// drills and benchmarks on kernels without tc's netem qdisc (this project's Firecracker kernel has
// none). It runs inside the "wire" namespace on the logging channel's path: the backup dials it, it
// dials the primary. Order is kept: a chunk never leaves before the one ahead of it.
//
//   node delay-relay.js <listen-host> <listen-port> <target-host> <target-port> <one-way-ms> [jitter-ms]

import net from 'node:net';

export function startDelayRelay(listenHost: string, listenPort: number, targetHost: string, targetPort: number, oneWayMs: number, jitterMs = 0): Promise<net.Server> {
  const delayOf = () => Math.max(0, oneWayMs + (jitterMs > 0 ? (Math.random() * 2 - 1) * jitterMs : 0));
  // Node's timers fire no sooner than 1 ms: a sub-millisecond delay (0.5 ms round trip) is served by
  // polling with setImmediate, only while a chunk is due within the next millisecond.
  const pipeDelayed = (from: net.Socket, to: net.Socket) => {
    const queue: Array<{ dueMs: number; chunk: Buffer }> = [];
    let lastDueMs = 0;
    let armed = false;
    const flush = () => {
      armed = false;
      const now = performance.now();
      while (queue.length > 0 && queue[0]!.dueMs <= now)
        if (to.writable) to.write(queue.shift()!.chunk);
        else queue.shift();
      if (queue.length > 0) arm(queue[0]!.dueMs - now);
    };
    const arm = (waitMs: number) => {
      if (armed) return;
      armed = true;
      if (waitMs >= 1.5) setTimeout(flush, waitMs - 1);
      else setImmediate(flush);
    };
    from.on('data', (chunk: Buffer) => {
      const now = performance.now();
      lastDueMs = Math.max(lastDueMs, now + delayOf());
      if (lastDueMs <= now && queue.length === 0) {
        to.write(chunk);
        return;
      }
      queue.push({ dueMs: lastDueMs, chunk });
      arm(lastDueMs - now);
    });
  };
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ host: targetHost, port: targetPort });
    upstream.setNoDelay(true);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    pipeDelayed(client, upstream);
    pipeDelayed(upstream, client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, listenHost, () => resolve(server));
  });
}

if (process.argv[1]?.endsWith('delay-relay.js')) {
  const [listenHost, listenPort, targetHost, targetPort, oneWayMs, jitterMs] = process.argv.slice(2);
  if (!listenHost || !listenPort || !targetHost || !targetPort || oneWayMs === undefined) {
    process.stderr.write('usage: delay-relay <listen-host> <listen-port> <target-host> <target-port> <one-way-ms> [jitter-ms]\n');
    process.exit(2);
  }
  const server = await startDelayRelay(listenHost, Number(listenPort), targetHost, Number(targetPort), Number(oneWayMs), Number(jitterMs ?? 0));
  process.stdout.write(`${JSON.stringify({ relay: server.address() })}\n`);
  // Stops with its parent (stdin closes).
  process.stdin.on('end', () => process.exit(0)).resume();
}

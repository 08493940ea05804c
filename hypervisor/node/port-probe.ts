// Can this node bind its logging-channel port? Checked before the node claims an epoch: a node that
// claims and then fails to bind has used up the epoch (and fenced whoever held the one before) for
// nothing. The probe binds and closes at once; the real listener binds moments later (a port taken
// in between still fails there, with the same clear error).

import net from 'node:net';

export async function probePort(port: number, host: string): Promise<void> {
  if (port === 0) return; // any free port: nothing to check
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(new Error(`cannot bind the replication port ${host}:${port}: ${error.code ?? error.message}${error.code === 'EADDRINUSE' ? ' (another process holds it)' : ''}; no epoch was claimed`));
    });
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

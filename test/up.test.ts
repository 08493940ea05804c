// `ftjs up` supervises its pair (issue 15 acceptance): SIGKILL the primary, then later the new live
// node; a client loop through the front door is answered throughout apart from the failover gaps, and
// the pair is re-protected each time (GET /_ft/up: a backup attached and in sync). No node outlives
// `up`, whether it is SIGKILLed or cannot bind its port.
import net from 'node:net';
import { expect, test } from 'vitest';
import { type FtjsProcess, ftjs, spawnFtjs, waitFor } from './helpers.js';

interface UpStatus {
  protected: boolean;
  live: string | null;
  nodes: Array<{ name: string; pid: number; role: string | null }>;
  lost: Array<{ node: string }>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function upStatus(door: string): Promise<UpStatus | null> {
  try {
    const res = await fetch(`${door}/_ft/up`, { signal: AbortSignal.timeout(2_000) });
    return (await res.json()) as UpStatus;
  } catch {
    return null;
  }
}

/** Writes and reads through the front door until stopped: when each answer came, and every failure. */
function clientLoop(door: string) {
  const answeredAt: number[] = [];
  const failures: string[] = [];
  let running = true;
  let i = 0;
  const done = (async () => {
    while (running) {
      const key = `k${i++}`;
      try {
        const put = await fetch(`${door}/kv/${key}`, { method: 'PUT', body: String(i), headers: { 'idempotency-key': `put-${key}` }, signal: AbortSignal.timeout(10_000) });
        await put.arrayBuffer();
        if (put.status !== 200) failures.push(`PUT ${key}: ${put.status}`);
        else answeredAt.push(Date.now());
      } catch (error) {
        failures.push(`PUT ${key}: ${(error as Error).message}`);
      }
    }
  })();
  return {
    answeredAt,
    failures,
    async stop() {
      running = false;
      await done;
    },
    /** The longest stretch without an answer between `from` and now. */
    longestGapMs(from: number) {
      const times = [from, ...answeredAt.filter((t) => t >= from), Date.now()];
      return Math.max(...times.slice(1).map((t, k) => t - times[k]!));
    },
  };
}

async function reprotected(door: string, lostCount: number, killed: number): Promise<UpStatus> {
  return waitFor(
    async () => {
      const s = await upStatus(door);
      return s?.protected && s.lost.length === lostCount && !s.nodes.some((n) => n.pid === killed) ? s : null;
    },
    `up to be re-protected after losing ${lostCount} node(s)`,
    60_000,
    100,
  );
}

test('ftjs up heals its pair twice, answers through the failovers, and leaves no node behind when killed', async () => {
  const port = await freePort();
  const up: FtjsProcess = spawnFtjs(['up', '--port', String(port), '--heartbeat-ms', '100', '--heartbeat-timeout-ms', '1000']);
  const door = `http://127.0.0.1:${port}`;
  const pids = new Set<number>();
  try {
    const first = await reprotected(door, 0, -1);
    first.nodes.forEach((n) => pids.add(n.pid));
    expect(first.live).toBe('primary');
    const client = clientLoop(door);
    await waitFor(() => client.answeredAt.length >= 20, 'the client loop to run');

    // 1: the primary.
    const t1 = Date.now();
    const primary = first.nodes.find((n) => n.name === first.live)!;
    process.kill(primary.pid, 'SIGKILL');
    await waitFor(async () => (await upStatus(door))?.protected === false, 'up to report the loss');
    const second = await reprotected(door, 1, primary.pid);
    second.nodes.forEach((n) => pids.add(n.pid));
    expect(second.live).toBe('backup');
    await waitFor(() => client.answeredAt.filter((t) => t > t1).length >= 20, 'answers after the first failover');
    const gap1 = client.longestGapMs(t1);

    // 2: the node that went live (the former backup); the fresh backup-2 takes over.
    const t2 = Date.now();
    const live = second.nodes.find((n) => n.name === second.live)!;
    process.kill(live.pid, 'SIGKILL');
    const third = await reprotected(door, 2, live.pid);
    third.nodes.forEach((n) => pids.add(n.pid));
    expect(third.live).toBe('backup-2');
    await waitFor(() => client.answeredAt.filter((t) => t > t2).length >= 20, 'answers after the second failover');
    const gap2 = client.longestGapMs(t2);
    await client.stop();

    // Idempotent PUTs through the front door: the pair's failovers cost time, never an answer.
    expect(client.failures).toEqual([]);
    expect(gap1).toBeLessThan(10_000);
    expect(gap2).toBeLessThan(10_000);
    console.log(`up: failover gaps ${gap1} ms and ${gap2} ms, ${client.answeredAt.length} writes answered`);
    expect(up.lines.some((l) => /SERVICE UNPROTECTED/.test(l.msg))).toBe(true);
    const s = await fetch(`${door}/kv/k1`);
    expect(s.headers.get('ftjs-protected')).toBe('yes');
  } finally {
    up.child.kill('SIGKILL');
    await up.exited;
  }
  // SIGKILL gives `up` no chance to clean up: its nodes see their stdin pipe close and stop.
  expect(pids.size).toBe(4);
  await waitFor(() => [...pids].every((pid) => !alive(pid)) || null, 'every node of up to exit after up was killed', 15_000, 100);
}, 180_000);

test('ftjs up on a port that is taken exits non-zero before starting any node', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    const r = await ftjs(['up', '--port', String(port)]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`front door 127.0.0.1:${port}: EADDRINUSE; no node was started`);
    expect(r.stdout).not.toMatch(/primaryPid/);
  } finally {
    blocker.close();
  }
});

test('ftjs up on SIGTERM stops its nodes and exits 0; guest flags reach the nodes', async () => {
  const port = await freePort();
  const up = spawnFtjs(['up', '--port', String(port), '--max-request-bytes', '64']);
  const door = `http://127.0.0.1:${port}`;
  let pids: number[] = [];
  try {
    const s = await waitFor(
      async () => {
        const u = await upStatus(door);
        return u?.protected ? u : null;
      },
      'up to be protected',
      60_000,
      100,
    );
    pids = s.nodes.map((n) => n.pid);
    // --max-request-bytes went to the nodes: a larger body is refused by the live node itself.
    const big = await fetch(`${door}/kv/big`, { method: 'PUT', body: 'x'.repeat(100) });
    expect(big.status).toBe(413);
  } finally {
    up.child.kill('SIGTERM');
  }
  expect(await up.exited).toBe(0);
  expect(pids).toHaveLength(2);
  expect(pids.filter(alive)).toEqual([]);
}, 90_000);

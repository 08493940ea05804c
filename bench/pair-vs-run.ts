// Throughput and latency of kv.js unreplicated (`ftjs run`) and as a pair (through the primary's
// port, backup attached), under the same closed-loop HTTP load, alternating rounds in one run on one
// machine. Also: log bytes per request on the logging channel.
//
//   npm run build && node dist/bench/pair-vs-run.js [--seconds S] [--warmup-seconds W] [--rounds R] [--connections C] [--pin]
//
// Each round starts fresh processes and measures after W seconds of the same load (default 10): the
// logging channel's code runs once per batch, a few hundred times a second, and V8 optimizes it
// seconds after the per-request code. Measured after 1 s, the pair still ran its send and ack path
// in baseline code, and the JIT's compiler threads took CPU from the primary's one core.
//
// --pin emulates the production topology on one 2-core machine: the serving node (ftjs run, or the
// primary) on CPU 0, the backup on CPU 1 (as if on its own host), and this load generator on CPU 1
// in both configurations (sharing the backup's core in the pair: the pair is disadvantaged, not helped).
// Without it every process floats over both cores, and the backup's re-execution competes with the
// primary for the same CPU.

import { type ChildProcess, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { closedLoop, kvMix, type LoadResult } from './load.js';
import { argNumber, type LogLine, median, projectPath, spawnFtjs } from './util.js';

const seconds = argNumber('--seconds', 5);
const rounds = argNumber('--rounds', 3);
const connections = argNumber('--connections', 32);
const warmupSeconds = argNumber('--warmup-seconds', 10);
const KV = projectPath('guest-apps/kv.js');
const SECRET = 'bench-secret-0123456789abcdef';
const pin = process.argv.includes('--pin');
/** CPU of each part under --pin. */
const CPU = { serving: 0, backup: 1, load: 1 } as const;
if (pin) {
  // Every thread of this process (-a), the load generator's and libuv's.
  execFileSync('taskset', ['-a', '-cp', String(CPU.load), String(process.pid)], { stdio: 'ignore' });
}

interface Node {
  child: ChildProcess;
  url: string;
  extra: Record<string, unknown>;
}

async function start(args: string[], ready: (line: LogLine) => boolean, cpu: number): Promise<Node> {
  const { child, waitFor } = spawnFtjs(args, { env: { ...process.env, FTJS_SECRET: SECRET }, ...(pin ? { cpu } : {}) });
  const line = await waitFor(ready);
  return { child, url: line.url as string, extra: line };
}

async function stop(node: Node): Promise<void> {
  node.child.kill('SIGKILL');
  await new Promise((resolve) => node.child.once('exit', resolve));
}

async function status(url: string): Promise<Record<string, unknown>> {
  // Without the state hash: hashing the whole VM behind the guest's tasks would show up in the latencies.
  return (await (await fetch(`${url}/_ft/status?hash=0`)).json()) as Record<string, unknown>;
}

async function runRound(): Promise<LoadResult> {
  const node = await start(['run', KV, '--port', '0'], (l) => typeof l.url === 'string' && String(l.msg).startsWith('serving'), CPU.serving);
  try {
    await closedLoop(node.url, connections, warmupSeconds * 1000, kvMix);
    return await closedLoop(node.url, connections, seconds * 1000, kvMix);
  } finally {
    await stop(node);
  }
}

type PairResult = LoadResult & { logBytesPerRequest: number; maxLagMs: number; holdP50Ms: number; holdP99Ms: number };

async function pairRound(): Promise<PairResult> {
  const shared = mkdtempSync(path.join(tmpdir(), 'ftjs-bench-shared-'));
  const primary = await start(['primary', KV, '--port', '0', '--replication-port', '0', '--shared-dir', shared], (l) => typeof l.replication === 'string', CPU.serving);
  const backup = await start(
    ['backup', '--primary', primary.extra.replication as string, '--port', '0', '--shared-dir', shared],
    (l) => typeof l.primary === 'string' && typeof l.url === 'string',
    CPU.backup,
  );
  try {
    for (let i = 0; i < 200 && (await status(primary.url)).backupAttached !== true; i++) await new Promise((r) => setTimeout(r, 25));
    await closedLoop(primary.url, connections, warmupSeconds * 1000, kvMix);
    const before = await status(primary.url);
    let maxLagMs = 0;
    const sampler = setInterval(() => void status(primary.url).then((s) => (maxLagMs = Math.max(maxLagMs, s.lagMs as number))), 100);
    const result = await closedLoop(primary.url, connections, seconds * 1000, kvMix);
    clearInterval(sampler);
    const after = await status(primary.url);
    const logBytes = (after.logBytesAppended as number) - (before.logBytesAppended as number);
    if (after.role !== 'primary' || after.backupAttached !== true) throw new Error(`the pair did not stay intact: ${JSON.stringify(after)}`);
    // The primary's own measure of the Output Rule: append to ack of its last 1,024 batches (~ this window).
    const holds = after.outputHoldMs as { p50Ms: number; p99Ms: number };
    return { ...result, logBytesPerRequest: logBytes / result.requests, maxLagMs, holdP50Ms: holds.p50Ms, holdP99Ms: holds.p99Ms };
  } finally {
    await stop(backup);
    await stop(primary);
    rmSync(shared, { recursive: true, force: true });
  }
}

const runs: LoadResult[] = [];
const pairs: PairResult[] = [];
for (let r = 0; r < rounds; r++) {
  runs.push(await runRound());
  pairs.push(await pairRound());
  const a = runs[r]!;
  const b = pairs[r]!;
  process.stderr.write(
    `round ${r + 1}/${rounds}: run ${a.rps.toFixed(0)} req/s p50 ${a.p50Ms.toFixed(2)} p99 ${a.p99Ms.toFixed(2)} ms | pair ${b.rps.toFixed(0)} req/s p50 ${b.p50Ms.toFixed(2)} p99 ${b.p99Ms.toFixed(2)} ms, ${b.logBytesPerRequest.toFixed(1)} log B/req, outputs held p50 ${b.holdP50Ms} p99 ${b.holdP99Ms} ms\n`,
  );
}
const m = (xs: number[]) => Number(median(xs).toFixed(2));
// The requests' own bytes in the log: method, path, header names and values, body (kvMix, average).
const own = (() => {
  let total = 0;
  for (let i = 0; i < 1000; i++) {
    const r = kvMix(i);
    total +=
      r.method.length +
      `http://127.0.0.1:00000${r.path}`.length +
      (r.body ? 'content-type'.length + 'text/plain'.length + 'content-length'.length + 2 + r.body.length : 0) +
      'host'.length +
      '127.0.0.1:00000'.length +
      'connection'.length +
      'keep-alive'.length;
  }
  return total / 1000;
})();
const result = {
  benchmark: 'pair-vs-run',
  guest: 'kv.js (50% PUT, 50% GET over 1,000 keys)',
  connections,
  pinned: pin ? CPU : false,
  secondsPerRound: seconds,
  warmupSeconds,
  rounds,
  run: { rps: m(runs.map((r) => r.rps)), p50Ms: m(runs.map((r) => r.p50Ms)), p99Ms: m(runs.map((r) => r.p99Ms)), errors: runs.reduce((a, r) => a + r.errors, 0) },
  pair: {
    rps: m(pairs.map((r) => r.rps)),
    p50Ms: m(pairs.map((r) => r.p50Ms)),
    p99Ms: m(pairs.map((r) => r.p99Ms)),
    errors: pairs.reduce((a, r) => a + r.errors, 0),
    maxLagMs: Math.max(...pairs.map((p) => p.maxLagMs)),
    // Append to ack, as the primary measured it (status outputHoldMs): what the Output Rule added.
    outputHoldP50Ms: m(pairs.map((p) => p.holdP50Ms)),
    outputHoldP99Ms: m(pairs.map((p) => p.holdP99Ms)),
  },
  throughputRatio: Number((median(pairs.map((r) => r.rps)) / median(runs.map((r) => r.rps))).toFixed(3)),
  p99AddedMs: Number((median(pairs.map((r) => r.p99Ms)) - median(runs.map((r) => r.p99Ms))).toFixed(2)),
  // Each round runs both configurations back to back: its own ratio is free of the drift between
  // rounds on a shared machine, so the median of the rounds' ratios is the steadier figure.
  perRound: {
    throughputRatios: runs.map((r, i) => Number((pairs[i]!.rps / r.rps).toFixed(3))),
    throughputRatioMedian: Number(median(runs.map((r, i) => pairs[i]!.rps / r.rps)).toFixed(3)),
    p50AddedMsMedian: Number(median(runs.map((r, i) => pairs[i]!.p50Ms - r.p50Ms)).toFixed(2)),
    p99AddedMsMedian: Number(median(runs.map((r, i) => pairs[i]!.p99Ms - r.p99Ms)).toFixed(2)),
  },
  logBytesPerRequest: m(pairs.map((p) => p.logBytesPerRequest)),
  requestOwnBytes: Number(own.toFixed(1)),
  logOverheadBytesPerRequest: Number((median(pairs.map((p) => p.logBytesPerRequest)) - own).toFixed(1)),
};
console.log(JSON.stringify(result, null, 2));

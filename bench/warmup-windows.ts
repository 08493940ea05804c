// Where the pair's short warm-up goes (issue 19): a fresh `ftjs run` or pair under the kv.js PUT/GET
// mix, measured in consecutive windows from the first request (default 0–3, 3–7, 7–10, 10–14 s), with
// the CPU time per request of every thread of the serving processes (from /proc: true CPU time, not
// the wall-clock samples of a V8 profile, which charge a thread for the time another ran on its core).
// Pinned as head-to-head.ts: servers on CPU 0, the pair's backup and the load generator on CPU 1.
//
//   npm run build && node dist/bench/warmup-windows.js [--mode pair|run] [--windows 0,3,7,10,14] [--baseline <dir>]
//       [--status-ms 100]   # also sample /_ft/status (the pair's primary): admission, replay backlog, output hold, tasks per batch
//
// Threads are named by role: main (the node's main thread, same tid as the process), vm (the VM
// worker: the busiest other thread), v8 (the rest: V8's compile and GC helpers, libuv's pool);
// loadGenerator is this process (on CPU 1 with the backup). idlePercent: each CPU's idle share of the window.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { closedLoop, kvMix } from './load.js';
import { type LogLine, projectPath, spawnFtjs } from './util.js';

const modeAt = process.argv.indexOf('--mode');
const mode = modeAt >= 0 ? process.argv[modeAt + 1]! : 'pair';
if (mode !== 'pair' && mode !== 'run') throw new Error(`--mode must be pair or run, got ${mode}`);
const windowsAt = process.argv.indexOf('--windows');
const edges = (windowsAt >= 0 ? process.argv[windowsAt + 1]! : '0,3,7,10,14').split(',').map(Number);
if (edges.length < 2 || edges.some((e, i) => !Number.isFinite(e) || (i > 0 && e <= edges[i - 1]!))) throw new Error('--windows needs increasing seconds, e.g. 0,3,7,10,14');
const baselineAt = process.argv.indexOf('--baseline');
const cli = baselineAt >= 0 ? path.resolve(process.argv[baselineAt + 1]!, 'dist/cli/ftjs.js') : projectPath('dist/cli/ftjs.js');
const KV = projectPath('guest-apps/kv.js');
const statusAt = process.argv.indexOf('--status-ms');
const statusEveryMs = statusAt >= 0 ? Number(process.argv[statusAt + 1]) : 0;
if (!(statusEveryMs >= 0)) throw new Error('--status-ms needs a number of ms (0: no status samples)');
const CPU = { server: 0, backup: 1, load: 1 } as const;
const CONNECTIONS = 32;
execFileSync('taskset', ['-a', '-cp', String(CPU.load), String(process.pid)], { stdio: 'ignore' });
const CLOCK_TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU ms used so far by each thread of `pid`, by tid. */
function threadCpuMs(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** Idle and total CPU ms of each CPU so far (/proc/stat), by CPU number. */
function cpuIdleMs(): Map<number, { idle: number; total: number }> {
  const out = new Map<number, { idle: number; total: number }>();
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    const ms = (ticks: number) => (ticks * 1000) / CLOCK_TICKS_PER_S;
    out.set(Number(m[1]), { idle: ms(f[3]! + f[4]!), total: ms(f.reduce((a, b) => a + b, 0)) });
  }
  return out;
}

/**
 * Samples the primary's status every --status-ms for `forMs`: how many samples saw each admission
 * state, the replay backlog it estimated (and the backup's own estimate, sampled just after), and the
 * output hold times of its last sample.
 */
async function sampleStatus(at: string, forMs: number): Promise<Record<string, unknown>> {
  const admission: Record<string, number> = {};
  const backlogs: number[] = [];
  const backupOwn: number[] = [];
  let hold: unknown = null;
  type Counts = { tasks?: number; batches?: number; framesSent?: number };
  let first: Counts | null = null;
  let last: Counts | null = null;
  const endAt = Date.now() + forMs;
  while (Date.now() < endAt) {
    try {
      const s = (await (await fetch(`${at}/_ft/status?hash=0`)).json()) as {
        admission?: string;
        replayBacklogMs?: number | null;
        outputHoldMs?: unknown;
        tasks?: number;
        batches?: number;
        framesSent?: number;
      };
      first ??= s;
      last = s;
      if (backupUrl !== null) {
        const b = (await (await fetch(`${backupUrl}/_ft/status?hash=0`)).json()) as { replayBacklogMs?: number };
        if (typeof b.replayBacklogMs === 'number') backupOwn.push(b.replayBacklogMs);
      }
      admission[s.admission ?? '?'] = (admission[s.admission ?? '?'] ?? 0) + 1;
      if (typeof s.replayBacklogMs === 'number') backlogs.push(s.replayBacklogMs);
      hold = s.outputHoldMs;
    } catch {
      admission.failed = (admission.failed ?? 0) + 1;
    }
    await new Promise((r) => setTimeout(r, statusEveryMs));
  }
  const per = (k: 'tasks' | 'framesSent') => {
    const [a, b] = [first as Counts | null, last as Counts | null];
    return a && b ? Number((((b[k] ?? 0) - (a[k] ?? 0)) / Math.max(1, (b.batches ?? 0) - (a.batches ?? 0))).toFixed(2)) : null;
  };
  return {
    tasksPerBatch: per('tasks'),
    framesPerBatch: per('framesSent'),
    admission,
    replayBacklogMaxMs: backlogs.length ? Math.max(...backlogs) : null,
    replayBacklogsMs: backlogs,
    outputHoldMs: hold,
  };
}

const env = { ...process.env, FTJS_SECRET: 'bench-secret-0123456789abcdef' };
const shared = mkdtempSync(path.join(tmpdir(), 'ftjs-warmup-'));
const children: Array<{ role: string; pid: number; kill: () => void }> = [];
let url: string;
/** The pair's backup: its own replay backlog estimate, beside the primary's view of it. */
let backupUrl: string | null = null;
try {
  if (mode === 'pair') {
    const primary = spawnFtjs(['primary', KV, '--port', '0', '--replication-port', '0', '--shared-dir', shared], { env, cpu: CPU.server, cli });
    children.push({ role: 'primary', pid: primary.child.pid!, kill: () => primary.child.kill('SIGKILL') });
    const p = await primary.waitFor((l: LogLine) => typeof l.replication === 'string');
    const backup = spawnFtjs(['backup', '--primary', p.replication as string, '--port', '0', '--shared-dir', shared], { env, cpu: CPU.backup, cli });
    children.push({ role: 'backup', pid: backup.child.pid!, kill: () => backup.child.kill('SIGKILL') });
    backupUrl = (await backup.waitFor((l: LogLine) => typeof l.primary === 'string' && typeof l.url === 'string')).url as string;
    url = p.url as string;
    for (let i = 0; i < 200; i++) {
      const s = (await (await fetch(`${url}/_ft/status?hash=0`)).json()) as { backupAttached?: boolean };
      if (s.backupAttached === true) break;
      await new Promise((r) => setTimeout(r, 25));
    }
  } else {
    const run = spawnFtjs(['run', KV, '--port', '0'], { env, cpu: CPU.server, cli });
    children.push({ role: 'run', pid: run.child.pid!, kill: () => run.child.kill('SIGKILL') });
    url = (await run.waitFor((l: LogLine) => typeof l.url === 'string' && String(l.msg).startsWith('serving'))).url as string;
  }
  const windows = [];
  for (let w = 1; w < edges.length; w++) {
    const before = children.map((c) => threadCpuMs(c.pid));
    // The load generator shares CPU 1 with the pair's backup: its own CPU and each core's idle time
    // show whether the pair's requests wait outside the primary (an idle CPU 0 with a busy CPU 1).
    const loadBefore = threadCpuMs(process.pid);
    const idleBefore = cpuIdleMs();
    const sampling = statusEveryMs > 0 ? sampleStatus(url, (edges[w]! - edges[w - 1]!) * 1000) : null;
    const result = await closedLoop(url, CONNECTIONS, (edges[w]! - edges[w - 1]!) * 1000, kvMix);
    const status = sampling ? await sampling : undefined;
    const cpu: Record<string, Record<string, number>> = {};
    children.forEach((c, i) => {
      const deltas = [...threadCpuMs(c.pid)].map(([tid, ms]) => [tid, ms - (before[i]!.get(tid) ?? 0)] as const);
      const vmTid = deltas.filter(([tid]) => tid !== c.pid).sort((a, b) => b[1] - a[1])[0]?.[0];
      const us = (ms: number) => Number(((ms * 1000) / result.requests).toFixed(1));
      const sum = (pick: (tid: number) => boolean) => us(deltas.filter(([tid]) => pick(tid)).reduce((a, [, ms]) => a + ms, 0));
      cpu[c.role] = { total: sum(() => true), main: sum((t) => t === c.pid), vm: sum((t) => t === vmTid), v8: sum((t) => t !== c.pid && t !== vmTid) };
    });
    const loadMs = [...threadCpuMs(process.pid)].reduce((a, [tid, ms]) => a + ms - (loadBefore.get(tid) ?? 0), 0);
    cpu.loadGenerator = { total: Number(((loadMs * 1000) / result.requests).toFixed(1)) };
    const idlePercent: Record<string, number> = {};
    for (const [n, now] of cpuIdleMs()) {
      const was = idleBefore.get(n);
      if (was && now.total > was.total) idlePercent[`cpu${n}`] = Math.round((100 * (now.idle - was.idle)) / (now.total - was.total));
    }
    windows.push({ seconds: `${edges[w - 1]}-${edges[w]}`, rps: Math.round(result.rps), p99Ms: Number(result.p99Ms.toFixed(1)), cpuUsPerRequest: cpu, idlePercent, ...(status ? { status } : {}) });
  }
  process.stdout.write(`${JSON.stringify({ benchmark: 'warmup-windows', mode, ftjs: baselineAt >= 0 ? cli : 'this checkout', connections: CONNECTIONS, windows }, null, 1)}\n`);
} finally {
  for (const c of children) c.kill();
  rmSync(shared, { recursive: true, force: true });
}

// Where the pair's short warm-up goes (issue 19): a fresh `ftjs run` or pair under the kv.js PUT/GET
// mix, measured in consecutive windows from the first request (default 0–3, 3–7, 7–10, 10–14 s), with
// the CPU time per request of every thread of the serving processes (from /proc: true CPU time, not
// the wall-clock samples of a V8 profile, which charge a thread for the time another ran on its core).
// Pinned as head-to-head.ts: servers on CPU 0, the pair's backup and the load generator on CPU 1.
//
//   npm run build && node dist/bench/warmup-windows.js [--mode pair|run] [--windows 0,3,7,10,14] [--baseline <dir>]
//
// Threads are named by role: main (the node's main thread, same tid as the process), vm (the VM
// worker: the busiest other thread), v8 (the rest: V8's compile and GC helpers, libuv's pool).

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

const env = { ...process.env, FTJS_SECRET: 'bench-secret-0123456789abcdef' };
const shared = mkdtempSync(path.join(tmpdir(), 'ftjs-warmup-'));
const children: Array<{ role: string; pid: number; kill: () => void }> = [];
let url: string;
try {
  if (mode === 'pair') {
    const primary = spawnFtjs(['primary', KV, '--port', '0', '--replication-port', '0', '--shared-dir', shared], { env, cpu: CPU.server, cli });
    children.push({ role: 'primary', pid: primary.child.pid!, kill: () => primary.child.kill('SIGKILL') });
    const p = await primary.waitFor((l: LogLine) => typeof l.replication === 'string');
    const backup = spawnFtjs(['backup', '--primary', p.replication as string, '--port', '0', '--shared-dir', shared], { env, cpu: CPU.backup, cli });
    children.push({ role: 'backup', pid: backup.child.pid!, kill: () => backup.child.kill('SIGKILL') });
    await backup.waitFor((l: LogLine) => typeof l.primary === 'string' && typeof l.url === 'string');
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
    const result = await closedLoop(url, CONNECTIONS, (edges[w]! - edges[w - 1]!) * 1000, kvMix);
    const cpu: Record<string, Record<string, number>> = {};
    children.forEach((c, i) => {
      const deltas = [...threadCpuMs(c.pid)].map(([tid, ms]) => [tid, ms - (before[i]!.get(tid) ?? 0)] as const);
      const vmTid = deltas.filter(([tid]) => tid !== c.pid).sort((a, b) => b[1] - a[1])[0]?.[0];
      const us = (ms: number) => Number(((ms * 1000) / result.requests).toFixed(1));
      const sum = (pick: (tid: number) => boolean) => us(deltas.filter(([tid]) => pick(tid)).reduce((a, [, ms]) => a + ms, 0));
      cpu[c.role] = { total: sum(() => true), main: sum((t) => t === c.pid), vm: sum((t) => t === vmTid), v8: sum((t) => t !== c.pid && t !== vmTid) };
    });
    windows.push({ seconds: `${edges[w - 1]}-${edges[w]}`, rps: Math.round(result.rps), p99Ms: Number(result.p99Ms.toFixed(1)), cpuUsPerRequest: cpu });
  }
  process.stdout.write(`${JSON.stringify({ benchmark: 'warmup-windows', mode, ftjs: baselineAt >= 0 ? cli : 'this checkout', connections: CONNECTIONS, windows }, null, 1)}\n`);
} finally {
  for (const c of children) c.kill();
  rmSync(shared, { recursive: true, force: true });
}

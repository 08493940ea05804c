// Cold start to the first 200 (issue 19): `ftjs run` against plain Node (bench/node-serve.ts: node:http
// calling the same module's fetch), each a fresh process per sample, the variants alternating sample by
// sample so that load from other work falls on all of them alike. For ftjs, the phases of its start
// come from FTJS_STARTUP_MARKS=1 (hypervisor/vm/startup-marks.ts): ms from spawn, and CPU ms of the
// thread at that point (the steadier figure on a shared machine).
//
//   node dist/bench/cold-start.js [--runs 9] [--guests kv.js,hono-60k] [--baseline <other built checkout>]
//        [--variant 'NAME:NODE FLAGS'] ... [--json]
//
// --variant: this build's bin run as `node NODE FLAGS <bin>` (the shebang's flags are not applied then:
// repeat them), alternating with the others, e.g. --variant 'eager:--v8-pool-size=1 --no-wasm-lazy-compilation'.
//
// The boot images, the guest bundle and the VM worker's code cache are kept in a cache directory of this run, filled by one
// uncounted start per guest first (the steady state: a build's first start keeps them).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildGuests } from './boot-guests.js';
import { argNumber, cpuMsOf, httpGetStatus as get, median, projectPath } from './util.js';

interface Sample {
  firstOkMs: number;
  /** CPU ms of the server process (every thread) at its first 200. */
  cpuMs: number;
  /** Phase → [ms from spawn, thread CPU ms]. */
  marks: Map<string, [number, number]>;
}

/** Spawns `argv` (the command first), waits for its serving line, GETs / and measures from spawn to the 200. */
function sample(argv: string[], env: NodeJS.ProcessEnv, keepUntil: () => boolean = () => true): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const spawnedEpochMs = performance.timeOrigin + performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...env, FTJS_STARTUP_MARKS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let done = false;
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = done ? null : /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(out);
      if (!match) return;
      done = true;
      get(`${match[1]}/`).then(
        (status) => {
          const firstOkMs = performance.timeOrigin + performance.now() - spawnedEpochMs;
          const cpuMs = cpuMsOf(child.pid!);
          // Marks written by the first request's response may still be on their way: let them land
          // (and, in a warm-up start, the images its worker writes in the background).
          const started = Date.now();
          const stop = () => (keepUntil() || Date.now() - started > KEEP_MAX_MS ? child.kill('SIGKILL') : setTimeout(stop, 20));
          setTimeout(stop, 20);
          child.once('exit', () => {
            const marks = new Map<string, [number, number]>();
            for (const line of err.split('\n')) {
              const m = /^ftjs-mark (\S+) (\S+) (.+) (\S+)$/.exec(line);
              if (m) marks.set(`${m[2]}: ${m[3]}`, [Number(m[1]) - spawnedEpochMs, Number(m[4])]);
            }
            status === 200 ? resolve({ firstOkMs, cpuMs, marks }) : reject(new Error(`${argv.join(' ')}: GET / gave ${status}`));
          });
        },
        (error: Error) => {
          child.kill('SIGKILL');
          reject(error);
        },
      );
    });
    child.on('exit', (code) => {
      if (!done) reject(new Error(`${argv.join(' ')} exited with ${code} before serving: ${err.slice(-500)}`));
    });
  });
}

const round1 = (x: number) => Math.round(x * 10) / 10;
/** A warm-up start waits at most this long for its boot images to reach the disk. */
const KEEP_MAX_MS = 10_000;

/** The `ftjs` command as a user starts it: the package's bin, run by its shebang (an older checkout's may be its ES module entry). */
function binOf(root: string): string {
  const bin = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { bin: { ftjs: string } }).bin.ftjs;
  return path.join(root, bin);
}

async function main(): Promise<void> {
  const runs = argNumber('--runs', 9);
  const guestsAt = process.argv.indexOf('--guests');
  const wanted = guestsAt >= 0 ? process.argv[guestsAt + 1]!.split(',') : ['kv.js', 'hono-60k'];
  const baselineAt = process.argv.indexOf('--baseline');
  const baselineCli = baselineAt >= 0 ? binOf(path.resolve(process.argv[baselineAt + 1]!)) : null;
  const extraVariants = process.argv.flatMap((arg, i): Array<[string, string[]]> => {
    if (arg !== '--variant') return [];
    const spec = process.argv[i + 1] ?? '';
    const at = spec.indexOf(':');
    if (at <= 0) throw new Error(`--variant ${spec}: expected NAME:NODE FLAGS`);
    return [
      [
        spec.slice(0, at),
        spec
          .slice(at + 1)
          .split(' ')
          .filter(Boolean),
      ],
    ];
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-bench-cold-'));
  const env = { ...process.env, FTJS_BOOT_CACHE_DIR: path.join(dir, 'cache') };
  const report: Record<string, unknown> = { runs, node: process.version, load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') };
  try {
    const guests = (await buildGuests(dir)).filter((g) => wanted.includes(g.name));
    for (const guest of guests) {
      const variants: Array<[string, string[]]> = [
        ['node', [process.execPath, projectPath('dist/bench/node-serve.js'), guest.file]],
        ['ftjs', [binOf(projectPath('.')), 'run', guest.file, '-p', '0', '--log-level', 'info']],
        ...(baselineCli ? ([['baseline', [baselineCli, 'run', guest.file, '-p', '0', '--log-level', 'info']]] as Array<[string, string[]]>) : []),
        ...extraVariants.map(([name, flags]): [string, string[]] => [name, [process.execPath, ...flags, binOf(projectPath('.')), 'run', guest.file, '-p', '0', '--log-level', 'info']]),
      ];
      // Uncounted: keeps this build's boot images (two more files: the glue's and the guest's) and the guest's bundle.
      // And the V8 code caches of the command and the VM worker (a build that keeps them writes them
      // within ~300 ms of its start; one that does not is given a second).
      const files = (ext: string) => (existsSync(env.FTJS_BOOT_CACHE_DIR) ? readdirSync(env.FTJS_BOOT_CACHE_DIR).filter((f) => f.endsWith(ext)).length : 0);
      for (const [name, argv] of variants) {
        const [before, codeBefore] = [files('.img'), files('.jscache')];
        let imagesAtMs = 0;
        const kept = () => {
          if (files('.img') < before + 2) return false;
          imagesAtMs ||= Date.now();
          return files('.jscache') >= codeBefore + 2 || Date.now() - imagesAtMs > 1000;
        };
        if (name !== 'node') await sample(argv, env, kept);
      }
      const samples = new Map<string, Sample[]>(variants.map(([name]) => [name, []]));
      for (let i = 0; i < runs; i++) for (const [name, argv] of variants) samples.get(name)!.push(await sample(argv, env));
      const of = (name: string) => samples.get(name)!;
      const nodeMs = median(of('node').map((s) => s.firstOkMs));
      const entry: Record<string, unknown> = { bytes: guest.bytes };
      for (const [name] of variants) {
        const firstOk = of(name).map((s) => s.firstOkMs);
        entry[name] = {
          firstOkMs: round1(median(firstOk)),
          ratioToNode: Math.round((median(firstOk) / nodeMs) * 100) / 100,
          cpuMs: median(of(name).map((s) => s.cpuMs)),
          samplesMs: firstOk.map(Math.round),
        };
      }
      // The phases of ftjs's start (and the baseline's): medians of each mark over the samples.
      const phasesOf = (name: string) =>
        [...new Set(of(name).flatMap((s) => [...s.marks.keys()]))]
          .map((phase) => {
            const at = of(name)
              .map((s) => s.marks.get(phase))
              .filter((m): m is [number, number] => m !== undefined);
            return { phase, ms: round1(median(at.map((m) => m[0]))), threadCpuMs: round1(median(at.map((m) => m[1]))) };
          })
          .sort((a, b) => a.ms - b.ms);
      const phases = phasesOf('ftjs');
      entry.phases = phases;
      const others = variants.map(([name]) => name).filter((name) => name !== 'node' && name !== 'ftjs');
      const otherPhases = new Map(others.map((name) => [name, phasesOf(name)]));
      if (baselineCli) entry.baselinePhases = otherPhases.get('baseline');
      for (const name of others) if (name !== 'baseline') entry[`${name}Phases`] = otherPhases.get(name);
      report[guest.name] = entry;
      if (!process.argv.includes('--json')) {
        process.stderr.write(`\n${guest.name} (${guest.bytes} B), ${runs} alternating runs, medians:\n`);
        for (const [name] of variants) {
          const v = entry[name] as { firstOkMs: number; ratioToNode: number; cpuMs: number; samplesMs: number[] };
          process.stderr.write(`  ${name.padEnd(9)} first 200 ${String(v.firstOkMs).padStart(7)} ms  (${v.ratioToNode}x node)  CPU ${v.cpuMs} ms  [${v.samplesMs.join(' ')}]\n`);
        }
        process.stderr.write(`  ftjs phases (ms from spawn, thread CPU ms${others.length > 0 ? `; then ${others.join(', ')}` : ''}):\n`);
        for (const p of phases) {
          const beside = others.map((name) => {
            const b = otherPhases.get(name)!.find((q) => q.phase === p.phase);
            return b ? `   ${String(b.ms).padStart(7)}  ${String(b.threadCpuMs).padStart(6)}` : ' '.repeat(18);
          });
          process.stderr.write(`    ${String(p.ms).padStart(7)}  ${String(p.threadCpuMs).padStart(6)}${beside.join('')}  ${p.phase}\n`);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report.loadAfter = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  process.stderr.write(`load average before ${report.load}, after ${report.loadAfter}\n`);
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();

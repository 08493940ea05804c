// Head to head (issue 19): kv.js served by `ftjs run`, by plain Node (node:http calling the same
// module's fetch, no sandbox: bench/node-serve.ts), by Cloudflare's workerd, and by an ftjs pair
// (primary + backup, through the primary's port), under the same closed-loop load, rounds alternating.
//
//   npm install --no-save workerd@1.20261123.1     # optional: without it the workerd rows are skipped
//   npm run build && node dist/bench/head-to-head.js [--rounds 5] [--seconds 4] [--warmup-seconds 3]
//       [--connections 32] [--only run,node,workerd,pair,pair-long] [--long-warmup-seconds 10]
//   node dist/bench/head-to-head.js --profile [--seconds 6]      # ftjs run's CPU per request, by part
//   ... --baseline <dir>   # also `ftjs run` of another built checkout ("run-base"), in the same rounds
//
// Pinned: every server process (every thread: taskset at spawn) on CPU 0; this load generator on
// CPU 1; a pair's backup on CPU 1 too (as if on its own host; it shares the generator's core, so the
// pair is disadvantaged, not helped). Each server is started fresh per round, warmed up with the
// PUT/GET mix, then measured on the mix and on GETs of the keys the mix wrote.
// "pair-long" is the pair after --long-warmup-seconds (10 s, BENCHMARKS.md's earlier figure), with
// `ftjs run` given the same warm-up in the same round ("run-long") so that its ratio is like for like.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { aggregate, PARTS } from './cpu-profile.js';
import { closedLoop, kvMix, type LoadRequest, type LoadResult } from './load.js';
import { argNumber, cpuMsOf, type LogLine, median, projectPath, spawnFtjs } from './util.js';

const rounds = argNumber('--rounds', 5);
const seconds = argNumber('--seconds', 4);
const warmupSeconds = argNumber('--warmup-seconds', 3);
const longWarmupSeconds = argNumber('--long-warmup-seconds', 10);
const connections = argNumber('--connections', 32);
const profile = process.argv.includes('--profile');
const onlyArg = process.argv.indexOf('--only');
const KV = projectPath('guest-apps/kv.js');
const baselineAt = process.argv.indexOf('--baseline');
const BASELINE_CLI = baselineAt >= 0 ? path.resolve(process.argv[baselineAt + 1]!, 'dist/cli/ftjs.js') : null;
const SECRET = 'bench-secret-0123456789abcdef';
const CPU = { server: 0, backup: 1, load: 1 } as const;
execFileSync('taskset', ['-a', '-cp', String(CPU.load), String(process.pid)], { stdio: 'ignore' });

// The platform binary itself (the package's bin is a Node shim that spawns it: its CPU would not be the server's).
const WORKERD = projectPath(`node_modules/@cloudflare/workerd-${process.platform}-${process.arch === 'x64' ? '64' : process.arch}/bin/workerd`);
const haveWorkerd = existsSync(WORKERD);
type Config = 'run' | 'run-base' | 'node' | 'workerd' | 'pair' | 'pair-base' | 'run-long' | 'pair-long';
const ALL: Config[] = ['run', 'run-base', 'node', 'workerd', 'pair', 'pair-base', 'run-long', 'pair-long'];
const configs = (onlyArg >= 0 ? (process.argv[onlyArg + 1]!.split(',') as Config[]) : ALL).flatMap((c) => (c === 'pair-long' ? (['run-long', 'pair-long'] as Config[]) : [c]));
// With --baseline, the baseline's run and (when the pair is measured) its pair come along.
const chosen = ALL.filter(
  (c) =>
    (configs.includes(c) || (c === 'run-base' && BASELINE_CLI) || (c === 'pair-base' && BASELINE_CLI && configs.includes('pair'))) &&
    (c !== 'workerd' || haveWorkerd) &&
    ((c !== 'run-base' && c !== 'pair-base') || BASELINE_CLI),
);
if (!haveWorkerd) process.stderr.write('workerd not installed (npm install --no-save workerd@1.20261123.1): its rows are skipped\n');

interface Server {
  url: string;
  stop: () => Promise<void>;
  /** The serving process (every thread): its CPU time per request is the measure least moved by other load. */
  pid: number;
}

function waitExit(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve()));
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitListening(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      await fetch(`${url}/`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`${url} never answered`);
}

async function startFtjs(nodeArgs: string[] = [], cli?: string): Promise<Server> {
  const { child, waitFor } = spawnFtjs(['run', KV, '--port', '0'], { env: { ...process.env, FTJS_SECRET: SECRET }, cpu: CPU.server, nodeArgs, ...(cli ? { cli } : {}) });
  const line = await waitFor((l) => typeof l.url === 'string' && String(l.msg).startsWith('serving'));
  return {
    url: line.url as string,
    pid: child.pid!,
    stop: async () => {
      // SIGTERM: a graceful exit, so that --cpu-prof writes its profiles.
      child.kill(profile ? 'SIGTERM' : 'SIGKILL');
      await waitExit(child);
    },
  };
}

async function startNode(): Promise<Server> {
  const child = spawn('taskset', ['-c', String(CPU.server), process.execPath, projectPath('dist/bench/node-serve.js'), KV, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').once('data', (line: string) => resolve((JSON.parse(line) as { url: string }).url));
    child.once('exit', (code) => reject(new Error(`node-serve exited with ${code}`)));
  });
  return { url, pid: child.pid!, stop: () => (child.kill('SIGKILL'), waitExit(child)) };
}

async function startWorkerd(): Promise<Server> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-workerd-'));
  copyFileSync(KV, path.join(dir, 'kv.js'));
  const port = await freePort();
  writeFileSync(
    path.join(dir, 'config.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .kv) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const kv :Workerd.Worker = (
  modules = [ (name = "kv.js", esModule = embed "kv.js") ],
  compatibilityDate = "2024-09-23",
);
`,
  );
  const child = spawn('taskset', ['-c', String(CPU.server), WORKERD, 'serve', path.join(dir, 'config.capnp')], { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await waitListening(url, child);
  return {
    url,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGKILL');
      await waitExit(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startPair(cli?: string): Promise<Server> {
  const shared = mkdtempSync(path.join(tmpdir(), 'ftjs-bench-shared-'));
  const env = { ...process.env, FTJS_SECRET: SECRET };
  const which = cli ? { cli } : {};
  const primary = spawnFtjs(['primary', KV, '--port', '0', '--replication-port', '0', '--shared-dir', shared], { env, cpu: CPU.server, ...which });
  const p = await primary.waitFor((l: LogLine) => typeof l.replication === 'string');
  const backup = spawnFtjs(['backup', '--primary', p.replication as string, '--port', '0', '--shared-dir', shared], { env, cpu: CPU.backup, ...which });
  await backup.waitFor((l: LogLine) => typeof l.primary === 'string' && typeof l.url === 'string');
  const url = p.url as string;
  for (let i = 0; i < 200; i++) {
    const s = (await (await fetch(`${url}/_ft/status?hash=0`)).json()) as { backupAttached?: boolean };
    if (s.backupAttached === true) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    url,
    pid: primary.child.pid!,
    stop: async () => {
      backup.child.kill('SIGKILL');
      primary.child.kill('SIGKILL');
      await Promise.all([waitExit(backup.child), waitExit(primary.child)]);
      rmSync(shared, { recursive: true, force: true });
    },
  };
}

/** GETs of the keys the mix wrote (every key of the mix exists after the warm-up). */
const getOnly = (i: number): LoadRequest => ({ method: 'GET', path: `/kv/k${i % 1000}` });

type Measured = LoadResult & { cpuUsPerRequest: number };
interface Sample {
  mix: Measured;
  get: Measured;
}

async function measured(server: Server, next: (i: number) => LoadRequest): Promise<Measured> {
  const before = cpuMsOf(server.pid);
  const result = await closedLoop(server.url, connections, seconds * 1000, next);
  return { ...result, cpuUsPerRequest: ((cpuMsOf(server.pid) - before) * 1000) / result.requests };
}

async function measure(config: Config): Promise<Sample> {
  const start = {
    run: () => startFtjs(),
    'run-base': () => startFtjs([], BASELINE_CLI!),
    'run-long': () => startFtjs(),
    node: startNode,
    workerd: startWorkerd,
    pair: () => startPair(),
    'pair-base': () => startPair(BASELINE_CLI!),
    'pair-long': () => startPair(),
  }[config];
  const server = await start();
  try {
    const warm = config.endsWith('-long') ? longWarmupSeconds : warmupSeconds;
    await closedLoop(server.url, connections, warm * 1000, kvMix);
    const mix = await measured(server, kvMix);
    const get = await measured(server, getOnly);
    return { mix, get };
  } catch (error) {
    // Say which server failed (a process that died mid-run leaves only a missing /proc entry).
    throw new Error(`${config}: ${(error as Error).message}${existsSync(`/proc/${server.pid}`) ? '' : ` (server process ${server.pid} is gone)`}`);
  } finally {
    await server.stop();
  }
}

async function profileRun(cli?: string): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-cpuprof-'));
  const server = await startFtjs(['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', '200'], cli);
  let from = 0;
  let to = 0;
  let result: LoadResult;
  try {
    await closedLoop(server.url, connections, warmupSeconds * 1000, kvMix);
    from = Number(process.hrtime.bigint() / 1000n);
    result = await closedLoop(server.url, connections, seconds * 1000, kvMix);
    to = Number(process.hrtime.bigint() / 1000n);
  } finally {
    await server.stop();
  }
  // The profiled checkout's own files are its "ftjs code" (a baseline's live in its own folder).
  const root = cli ? path.resolve(path.dirname(cli), '..', '..') : projectPath('.');
  const { byPart, byFile, byThread, threads } = aggregate(dir, from, to, root);
  rmSync(dir, { recursive: true, force: true });
  const total = PARTS.reduce((a, p) => a + byPart[p], 0);
  const perRequest = (us: number) => Number((us / result.requests).toFixed(1));
  const top = [...byFile.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
  process.stdout.write(
    `${JSON.stringify(
      {
        benchmark: 'head-to-head --profile',
        ftjs: cli ?? 'this checkout',
        guest: 'kv.js, PUT/GET mix',
        threadsProfiled: threads,
        rps: Math.round(result.rps),
        requests: result.requests,
        cpuUsPerRequest: perRequest(total),
        // Thread 0 is the main thread (front door, log, messaging); the other is the VM worker.
        byThread: [...byThread.entries()].map(([file, us]) => ({ thread: file.split('.').at(-3), usPerRequest: perRequest(us) })),
        parts: PARTS.map((p) => ({ part: p, share: Number(((100 * byPart[p]) / total).toFixed(1)), usPerRequest: perRequest(byPart[p]) })),
        topFiles: top.map(([file, us]) => ({ file, usPerRequest: perRequest(us) })),
      },
      null,
      1,
    )}\n`,
  );
}

if (profile) {
  await profileRun();
  if (BASELINE_CLI) await profileRun(BASELINE_CLI);
} else {
  const samples = new Map<Config, Sample[]>(chosen.map((c) => [c, []]));
  // A round in which a server failed (on a loaded host a pair's backup may take over, and the fenced
  // primary exits) is reported and run again, up to `rounds` times more: the ratios pair rounds.
  const missed: string[] = [];
  for (let r = 0, done = 0; done < rounds; r++) {
    if (missed.length > rounds) throw new Error(`${missed.length} rounds missed:\n${missed.join('\n')}`);
    // Rotate the order each round, so that no configuration always runs first (or after the pair).
    const order = chosen.map((_, i) => chosen[(i + r) % chosen.length]!);
    const line: string[] = [];
    const round = new Map<Config, Sample>();
    try {
      for (const config of order) {
        const s = await measure(config);
        round.set(config, s);
        line.push(
          `${config} mix ${s.mix.rps.toFixed(0)} (${s.mix.cpuUsPerRequest.toFixed(0)} µs CPU) get ${s.get.rps.toFixed(0)} (p99 ${s.mix.p99Ms.toFixed(2)} ms)${s.mix.errors + s.get.errors ? ` errors ${s.mix.errors + s.get.errors}` : ''}`,
        );
      }
    } catch (error) {
      missed.push(`round ${r + 1}: ${(error as Error).message}`);
      process.stderr.write(`round ${r + 1} MISSED (run again): ${(error as Error).message}\n`);
      continue;
    }
    for (const [config, s] of round) samples.get(config)!.push(s);
    done++;
    process.stderr.write(`round ${r + 1} (${done}/${rounds}): ${line.join(' | ')}\n`);
  }
  const med = (c: Config, w: 'mix' | 'get', f: 'rps' | 'p50Ms' | 'p99Ms' | 'cpuUsPerRequest') => median(samples.get(c)!.map((s) => s[w][f]));
  const has = (c: Config) => samples.has(c);
  const ratio = (a: Config, b: Config, w: 'mix' | 'get') => {
    if (!has(a) || !has(b)) return undefined;
    const per = samples.get(a)!.map((s, i) => s[w].rps / samples.get(b)![i]![w].rps);
    return { ofMedians: Number((med(a, w, 'rps') / med(b, w, 'rps')).toFixed(3)), perRound: per.map((x) => Number(x.toFixed(3))), medianPerRound: Number(median(per).toFixed(3)) };
  };
  const table = Object.fromEntries(
    chosen.map((c) => [
      c,
      Object.fromEntries(
        (['mix', 'get'] as const).map((w) => [
          w,
          {
            rps: Math.round(med(c, w, 'rps')),
            cpuUsPerRequest: Math.round(med(c, w, 'cpuUsPerRequest')),
            p50Ms: Number(med(c, w, 'p50Ms').toFixed(2)),
            p99Ms: Number(med(c, w, 'p99Ms').toFixed(2)),
            errors: samples.get(c)!.reduce((a, s) => a + s[w].errors, 0),
          },
        ]),
      ),
    ]),
  );
  // CPU per request of the serving process, b's over a's: what the throughput ratio would be on a core of its own.
  const cpuRatio = (a: Config, b: Config, w: 'mix' | 'get') => (has(a) && has(b) ? Number((med(b, w, 'cpuUsPerRequest') / med(a, w, 'cpuUsPerRequest')).toFixed(3)) : undefined);
  const p99Added = (pair: Config, run: Config) =>
    has(pair) && has(run)
      ? { mix: Number((med(pair, 'mix', 'p99Ms') - med(run, 'mix', 'p99Ms')).toFixed(2)), get: Number((med(pair, 'get', 'p99Ms') - med(run, 'get', 'p99Ms')).toFixed(2)) }
      : undefined;
  process.stdout.write(
    `${JSON.stringify(
      {
        benchmark: 'head-to-head',
        guest: 'kv.js',
        pinned: CPU,
        rounds,
        missedRounds: missed,
        seconds,
        warmupSeconds,
        longWarmupSeconds,
        connections,
        medians: table,
        ratios: {
          runOverNode: { mix: ratio('run', 'node', 'mix'), get: ratio('run', 'node', 'get') },
          runBaseOverNode: { mix: ratio('run-base', 'node', 'mix'), get: ratio('run-base', 'node', 'get') },
          runOverRunBase: { mix: ratio('run', 'run-base', 'mix'), get: ratio('run', 'run-base', 'get') },
          runOverWorkerd: { mix: ratio('run', 'workerd', 'mix'), get: ratio('run', 'workerd', 'get') },
          pairOverRun: { mix: ratio('pair', 'run', 'mix'), get: ratio('pair', 'run', 'get') },
          pairBaseOverRunBase: { mix: ratio('pair-base', 'run-base', 'mix'), get: ratio('pair-base', 'run-base', 'get') },
          pairOverPairBase: { mix: ratio('pair', 'pair-base', 'mix'), get: ratio('pair', 'pair-base', 'get') },
          pairLongOverRunLong: { mix: ratio('pair-long', 'run-long', 'mix'), get: ratio('pair-long', 'run-long', 'get') },
        },
        cpuPerRequestRatios: {
          nodeOverRun: { mix: cpuRatio('run', 'node', 'mix'), get: cpuRatio('run', 'node', 'get') },
          workerdOverRun: { mix: cpuRatio('run', 'workerd', 'mix'), get: cpuRatio('run', 'workerd', 'get') },
          runBaseOverRun: { mix: cpuRatio('run', 'run-base', 'mix'), get: cpuRatio('run', 'run-base', 'get') },
          runOverPrimary: { mix: cpuRatio('pair', 'run', 'mix'), get: cpuRatio('pair', 'run', 'get') },
        },
        p99AddedByPairMs: p99Added('pair', 'run'),
        p99AddedByPairBaseMs: p99Added('pair-base', 'run-base'),
        p99AddedByPairLongMs: p99Added('pair-long', 'run-long'),
      },
      null,
      1,
    )}\n`,
  );
}

// Replay speed and time travel: how fast a trace replays against how long it took to record, and how
// long the debugger's backward `goto` takes on a long trace. Prints one JSON object.
//
//   npm run build && node dist/bench/replay-speed.js [--idle-requests N] [--idle-gap-ms MS] [--cpu-requests N]
//       [--cpu-n N] [--long-requests N] [--gotos N]
//
// 1. idle-heavy: `ftjs run guest-apps/kv.js --record`, N requests spaced by a gap (a quiet service);
//    recorded wall time = first request to last response; replay = `ftjs replay` of that trace.
// 2. cpu-heavy: the same with guest-apps/cpu.js /work?n=... back to back (the guest computes).
// 3. long: a kv.js trace of at least 100k entries (recorded in process), replayed to its end in a
//    debugger session, then `goto` to random earlier seqs (backward: restore a checkpoint and replay
//    forward), timed one by one; and the cost of the checkpoints themselves, compressed or not.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { DEFAULT_LIVE_LOOP_OPTIONS, LiveLoop } from '../hypervisor/node/live-loop.js';
import { bootConfigFromTrace, makeBootConfig, traceHeaderFor } from '../hypervisor/vm/boot-config.js';
import { loadGuest } from '../hypervisor/vm/sources.js';
import { Vm } from '../hypervisor/vm/vm.js';
import { VmHost } from '../hypervisor/worker/vm-host.js';
import { readTrace } from '../logging-channel/trace-reader.js';
import { TraceWriter } from '../logging-channel/trace-writer.js';
import { Log, traceSink } from '../recorder/log.js';
import { CheckpointStore } from '../replayer/checkpoints.js';
import { ReplaySession } from '../replayer/offline/session.js';
import { ReplayPort } from '../replayer/replay-port.js';
import { type Assembled, TaskAssembler } from '../replayer/task-assembler.js';
import { argNumber, median, percentile, projectPath } from './util.js';

const idleRequests = argNumber('--idle-requests', 300);
const idleGapMs = argNumber('--idle-gap-ms', 50);
const cpuRequests = argNumber('--cpu-requests', 40);
const cpuN = argNumber('--cpu-n', 300_000);
const longRequests = argNumber('--long-requests', 50_000);
const gotos = argNumber('--gotos', 30);
const CLI = projectPath('dist/cli/ftjs.js');
const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-bench-replay-'));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Records `app` with `ftjs run --record`, sending `paths` one at a time with `gapMs` between them. */
async function record(app: string, file: string, paths: string[], gapMs: number): Promise<{ wallMs: number }> {
  const child = spawn(process.execPath, [CLI, 'run', projectPath(app), '--port', '0', '--record', file, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buffered = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`ftjs run exited with ${code}`)));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const m = /"url":"([^"]+)"/.exec(buffered);
      if (m) resolve(m[1]!);
    });
  });
  const started = performance.now();
  for (let i = 0; i < paths.length; i++) {
    if (i > 0 && gapMs > 0) await sleep(gapMs);
    const response = await fetch(url + paths[i]!, {
      method: paths[i]!.startsWith('/kv/') && i % 2 === 0 ? 'PUT' : 'GET',
      ...(paths[i]!.startsWith('/kv/') && i % 2 === 0 ? { body: `value-${i}` } : {}),
    });
    await response.text();
  }
  const wallMs = performance.now() - started;
  child.kill('SIGINT');
  await new Promise((resolve) => child.on('exit', resolve));
  return { wallMs };
}

/** `ftjs replay --json -q`: the whole command (process start, boot, replay) and the replay alone. */
function replayCli(file: string): { commandMs: number; replayMs: number; entries: number; tasks: number } {
  const started = performance.now();
  const result = spawnSync(process.execPath, [CLI, 'replay', file, '--json', '-q'], { encoding: 'utf8' });
  const commandMs = performance.now() - started;
  const summary = JSON.parse(result.stdout.trim().split('\n').pop()!) as { ok: boolean; replayMs: number; entries: number; tasks: number };
  if (!summary.ok) throw new Error(`replay of ${file} did not verify: ${result.stdout}`);
  return { commandMs, replayMs: summary.replayMs, entries: summary.entries, tasks: summary.tasks };
}

async function recordedCase(name: string, app: string, paths: string[], gapMs: number) {
  const file = path.join(dir, `${name}.trace`);
  const { wallMs } = await record(app, file, paths, gapMs);
  const runs = [replayCli(file), replayCli(file), replayCli(file)];
  const replayMs = median(runs.map((r) => r.replayMs));
  const commandMs = median(runs.map((r) => r.commandMs));
  const { entries, tasks } = runs[0]!;
  return {
    requests: paths.length,
    entries,
    tasks,
    recordedWallMs: Math.round(wallMs),
    replayMs: Math.round(replayMs),
    replayCommandMs: Math.round(commandMs),
    speedup: Math.round((wallMs / replayMs) * 10) / 10,
    speedupWholeCommand: Math.round((wallMs / commandMs) * 10) / 10,
    entriesPerSecond: Math.round(entries / (replayMs / 1000)),
  };
}

/** A kv.js trace recorded in process through the live loop (the HTTP front door is not what is measured). */
async function recordLong(file: string): Promise<{ wallMs: number; entries: number }> {
  const config = makeBootConfig(loadGuest(projectPath('guest-apps/kv.js')), {});
  const vm = VmHost.start(config.limits);
  const log = new Log();
  const trace = await TraceWriter.open(file, traceHeaderFor(config, 'bench'));
  log.addSink(traceSink(trace).sink);
  const loop = new LiveLoop(vm, log, { hold: (_s, release) => release() }, pino({ level: 'warn' }), { ...DEFAULT_LIVE_LOOP_OPTIONS, maxQueuedEvents: 128 });
  loop.start(await vm.boot(config, 'live'));
  const encoder = new TextEncoder();
  let sent = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (sent < longRequests) {
        const i = sent++;
        const key = `k${i % 1000}`;
        await (i % 2 === 0 ? loop.submitRequest('PUT', `http://bench/kv/${key}`, [], encoder.encode(`value-${i}`)) : loop.submitRequest('GET', `http://bench/kv/${key}`, [], new Uint8Array(0)));
      }
    }),
  );
  const wallMs = performance.now() - started;
  await loop.stop();
  trace.close();
  await vm.terminate();
  return { wallMs, entries: log.lastSeq };
}

/** Random integers in [lo, hi), from a fixed seed (the same gotos every run). */
function seeded(seed: number) {
  let s = seed >>> 0;
  return (lo: number, hi: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (s % (hi - lo));
  };
}

async function longCase() {
  const file = path.join(dir, 'long.trace');
  const recorded = await recordLong(file);
  const plain = [replayCli(file), replayCli(file)];
  const session = await ReplaySession.open(file, { batchTasks: 64 });
  const toEnd = performance.now();
  await session.continue();
  const replayToEndMs = performance.now() - toEnd;
  const summary = await session.summary();
  const last = summary.lastSeq;
  const random = seeded(2026);
  const back: number[] = [];
  const forward: number[] = [];
  let at = last;
  for (let i = 0; i < gotos; i++) {
    const target = random(1, at);
    let started = performance.now();
    if ((await session.goto(target)) !== 'ok') throw new Error(`goto ${target} failed`);
    back.push(performance.now() - started);
    // And forward again, over tasks replayed before (jumping by checkpoints).
    const ahead = random(target, last);
    started = performance.now();
    await session.goto(ahead);
    forward.push(performance.now() - started);
    at = ahead;
  }
  const evalStarted = performance.now();
  await session.eval('$mod.default !== undefined');
  const evalMs = performance.now() - evalStarted;
  await session.close();
  const stats = (xs: number[]) => ({ median: Math.round(median(xs) * 10) / 10, p95: Math.round(percentile(xs, 95) * 10) / 10, max: Math.round(Math.max(...xs) * 10) / 10 });
  return {
    entries: recorded.entries,
    recordedWallMs: Math.round(recorded.wallMs),
    replayMs: Math.round(median(plain.map((p) => p.replayMs))),
    entriesPerSecond: Math.round(recorded.entries / (median(plain.map((p) => p.replayMs)) / 1000)),
    debuggerReplayToEndMs: Math.round(replayToEndMs),
    checkpoints: summary.checkpoints,
    gotoBackwardMs: stats(back),
    gotoForwardMs: stats(forward),
    firstEvalMs: Math.round(evalMs * 10) / 10,
  };
}

/** What a checkpoint costs, with and without deflate of the changed pages (in process, one VM). */
async function checkpointCost() {
  const file = path.join(dir, 'long.trace');
  const contents = await readTrace(file);
  const config = bootConfigFromTrace(contents.header, file);
  const assembler = new TaskAssembler(file);
  const out: Assembled[] = [];
  for (const e of contents.entries) assembler.push(e, out);
  const tasks = out.filter((x): x is Extract<Assembled, { type: 'task' }> => x.type === 'task').map((x) => x.entries);
  const result: Record<string, unknown> = {};
  for (const compress of [true, false]) {
    const vm = await Vm.create(config, new ReplayPort());
    const store = new CheckpointStore<null>(compress);
    const saveMs: number[] = [];
    let id = 0;
    for (let i = 0; i < Math.min(tasks.length, 20_000); i++) {
      vm.replay(tasks[i]!);
      if ((i + 1) % 500 === 0) {
        const started = performance.now();
        store.save(id++, vm.snapshot(), null);
        saveMs.push(performance.now() - started);
      }
    }
    const loadStarted = performance.now();
    const { snapshot } = store.load(Math.floor(id / 2));
    await Vm.create(config, new ReplayPort(), snapshot);
    const restoreMs = performance.now() - loadStarted;
    result[compress ? 'deflateLevel1' : 'raw'] = {
      checkpoints: store.count,
      everyTasks: 500,
      memoryBytes: vm.memoryBytes,
      totalBytes: store.bytes,
      bytesPerCheckpoint: Math.round(store.bytes / store.count),
      saveMs: { median: Math.round(median(saveMs) * 10) / 10, max: Math.round(Math.max(...saveMs) * 10) / 10 },
      restoreIntoFreshVmMs: Math.round(restoreMs * 10) / 10,
    };
  }
  return result;
}

try {
  const idlePaths = Array.from({ length: idleRequests }, (_, i) => `/kv/k${Math.floor(i / 2) % 100}`);
  const idle = await recordedCase('idle', 'guest-apps/kv.js', idlePaths, idleGapMs);
  const cpu = await recordedCase(
    'cpu',
    'guest-apps/cpu.js',
    Array.from({ length: cpuRequests }, () => `/work?n=${cpuN}`),
    0,
  );
  const long = await longCase();
  const checkpoint = await checkpointCost();
  process.stdout.write(
    `${JSON.stringify(
      {
        bench: 'replay-speed',
        node: process.version,
        idleHeavy: { gapMs: idleGapMs, ...idle },
        cpuHeavy: { n: cpuN, ...cpu },
        long,
        checkpointCost: checkpoint,
      },
      null,
      2,
    )}\n`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// Recording overhead, in process: the same kv.js workload through the live loop, with and without a
// trace file, alternating rounds in one run on one machine. Recorded as `ftjs run --record` records:
// the log entries and each task's outputs (--trace-outputs-max-bytes, default 16 KiB per task); also
// with entries only (--trace-outputs-max-bytes 0). Prints throughput, CPU per request (the process's
// user + system time over all its threads, VM worker included: unlike throughput it does not count
// time spent waiting for a core, so it holds its meaning on a shared host) and the ratios. On Linux
// it also splits that CPU into the main thread's (where recording happens: the trace's encoding and
// writes) and the other threads' (the VM worker, GC helpers), from the kernel's per-thread run time:
// the recording's own cost, apart from how batching moved the worker's.
//
//   npm run build && node dist/bench/record-overhead.js [--requests N] [--rounds R] [--concurrency C]

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { DEFAULT_LIVE_LOOP_OPTIONS, LiveLoop } from '../hypervisor/node/live-loop.js';
import { makeBootConfig, traceHeaderFor } from '../hypervisor/vm/boot-config.js';
import { loadGuest } from '../hypervisor/vm/sources.js';
import { VmHost } from '../hypervisor/worker/vm-host.js';
import { DEFAULT_TRACE_OUTPUTS_MAX_BYTES } from '../logging-channel/task-outputs.js';
import { TraceWriter, traceOutputsHook } from '../logging-channel/trace-writer.js';
import { Log, traceSink } from '../recorder/log.js';
import { argNumber, median, projectPath } from './util.js';

const requests = argNumber('--requests', 20_000);
const rounds = argNumber('--rounds', 5);
const concurrency = argNumber('--concurrency', 64);
const logger = pino({ level: 'warn' });
const config = makeBootConfig(loadGuest(projectPath('guest-apps/kv.js')), {});
const encoder = new TextEncoder();

/** null: unrecorded; else the outputs kept per task (0: entries only). */
async function once(outputsMaxBytes: number | null, dir: string, round: number): Promise<{ rps: number; cpuUsPerRequest: number; mainCpuUsPerRequest: number | null; traceBytes: number }> {
  const vm = VmHost.start(config.limits);
  const log = new Log();
  const trace = outputsMaxBytes !== null ? await TraceWriter.open(path.join(dir, `r${round}-${outputsMaxBytes}.trace`), traceHeaderFor(config, 'bench', { outputsMaxBytes })) : null;
  if (trace) log.addSink(traceSink(trace).sink);
  const loop = new LiveLoop(vm, log, { hold: (_s, release) => release() }, logger, { ...DEFAULT_LIVE_LOOP_OPTIONS, maxQueuedEvents: concurrency * 2 });
  if (trace) loop.onTask = traceOutputsHook(trace);
  loop.start(await vm.boot(config, 'live'));
  let sent = 0;
  const worker = async () => {
    while (sent < requests) {
      const i = sent++;
      const key = `k${i % 1000}`;
      const r =
        i % 2 === 0
          ? await loop.submitRequest('PUT', `http://bench/kv/${key}`, [['content-type', 'text/plain']], encoder.encode(`value-${i}`))
          : await loop.submitRequest('GET', `http://bench/kv/${key}`, [], new Uint8Array(0));
      if (r.status !== 200 && r.status !== 404) throw new Error(`unexpected status ${r.status}`);
    }
  };
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const mainBefore = mainThreadCpuNs();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const cpu = process.cpuUsage(cpuBefore);
  const mainAfter = mainThreadCpuNs();
  // The trace's last flush (a microtask after the last append) happened before the last response resolved.
  const seconds = (performance.now() - started) / 1000;
  await loop.stop();
  const traceBytes = trace ? (trace.close(), trace.bytesWritten) : 0;
  await vm.terminate();
  const mainCpuUsPerRequest = mainBefore !== null && mainAfter !== null ? (mainAfter - mainBefore) / 1000 / requests : null;
  return { rps: requests / seconds, cpuUsPerRequest: (cpu.user + cpu.system) / requests, mainCpuUsPerRequest, traceBytes };
}

/** The main thread's CPU time so far in ns (Linux schedstat, ns resolution), or null where there is none. */
function mainThreadCpuNs(): number | null {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-bench-'));
const plain: number[] = [];
const recorded: number[] = [];
const entriesOnly: number[] = [];
const cpu = { plain: [] as number[], recorded: [] as number[], entriesOnly: [] as number[] };
const mainCpu = { plain: [] as number[], recorded: [] as number[], entriesOnly: [] as number[] };
let bytesPerRequest = 0;
let entriesOnlyBytesPerRequest = 0;
try {
  await once(null, dir, -1); // warm-up
  for (let r = 0; r < rounds; r++) {
    const bareRun = await once(null, dir, r);
    plain.push(bareRun.rps);
    cpu.plain.push(bareRun.cpuUsPerRequest);
    if (bareRun.mainCpuUsPerRequest !== null) mainCpu.plain.push(bareRun.mainCpuUsPerRequest);
    const rec = await once(DEFAULT_TRACE_OUTPUTS_MAX_BYTES, dir, r);
    recorded.push(rec.rps);
    cpu.recorded.push(rec.cpuUsPerRequest);
    if (rec.mainCpuUsPerRequest !== null) mainCpu.recorded.push(rec.mainCpuUsPerRequest);
    bytesPerRequest = rec.traceBytes / requests;
    const bare = await once(0, dir, r);
    entriesOnly.push(bare.rps);
    cpu.entriesOnly.push(bare.cpuUsPerRequest);
    if (bare.mainCpuUsPerRequest !== null) mainCpu.entriesOnly.push(bare.mainCpuUsPerRequest);
    entriesOnlyBytesPerRequest = bare.traceBytes / requests;
    const us = (xs: number[], main: number[]) => `${xs[r]!.toFixed(1)} µs CPU${main.length > r ? ` (main ${main[r]!.toFixed(1)})` : ''}`;
    process.stderr.write(
      `round ${r + 1}/${rounds}: unrecorded ${plain[r]!.toFixed(0)} req/s ${us(cpu.plain, mainCpu.plain)}, recorded ${recorded[r]!.toFixed(0)} req/s ${us(cpu.recorded, mainCpu.recorded)}, entries only ${entriesOnly[r]!.toFixed(0)} req/s ${us(cpu.entriesOnly, mainCpu.entriesOnly)}\n`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const result = {
  benchmark: 'record-overhead',
  guest: 'kv.js',
  requests,
  rounds,
  concurrency,
  unrecordedMedianRps: Math.round(median(plain)),
  recordedMedianRps: Math.round(median(recorded)),
  ratio: Number((median(recorded) / median(plain)).toFixed(3)),
  traceBytesPerRequest: Number(bytesPerRequest.toFixed(1)),
  entriesOnlyMedianRps: Math.round(median(entriesOnly)),
  entriesOnlyRatio: Number((median(entriesOnly) / median(plain)).toFixed(3)),
  entriesOnlyTraceBytesPerRequest: Number(entriesOnlyBytesPerRequest.toFixed(1)),
  cpuUsPerRequest: { unrecorded: round1(median(cpu.plain)), recorded: round1(median(cpu.recorded)), entriesOnly: round1(median(cpu.entriesOnly)) },
  /** Extra CPU per request for recording with outputs kept: the issue's ≤ 3% target. */
  cpuOverhead: Number((median(cpu.recorded) / median(cpu.plain) - 1).toFixed(4)),
  entriesOnlyCpuOverhead: Number((median(cpu.entriesOnly) / median(cpu.plain) - 1).toFixed(4)),
  /**
   * The main thread's share (Linux only): recording's own work is all here, so the difference between
   * configurations is its cost, free of the worker's batching. Per round: recorded minus unrecorded.
   */
  mainThreadCpuUsPerRequest:
    mainCpu.plain.length === rounds
      ? {
          unrecorded: round1(median(mainCpu.plain)),
          recorded: round1(median(mainCpu.recorded)),
          entriesOnly: round1(median(mainCpu.entriesOnly)),
          recordedExtraPerRound: round1(median(mainCpu.recorded.map((x, i) => x - mainCpu.plain[i]!))),
          entriesOnlyExtraPerRound: round1(median(mainCpu.entriesOnly.map((x, i) => x - mainCpu.plain[i]!))),
        }
      : null,
  /** Recorded minus unrecorded CPU per request (all threads), median of each round's own difference. */
  cpuExtraUsPerRequestPerRound: round1(median(cpu.recorded.map((x, i) => x - cpu.plain[i]!))),
};
console.log(JSON.stringify(result, null, 2));

function round1(x: number): number {
  return Number(x.toFixed(1));
}

// The VM worker thread: owns one VM. Running the guest here keeps the node's main thread (heartbeats,
// logging channel, arbiter, front door) responsive while the guest computes, and gives QuickJS a host
// stack large enough that deep guest recursion is a guest error, not a host crash.

import { getPriority, setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { CodecError } from '../../logging-channel/bytes.js';
import type { Entry } from '../../logging-channel/entry.js';
import { LivePort } from '../../recorder/live-port.js';
import { CheckpointStore } from '../../replayer/checkpoints.js';
import { ReplayPort } from '../../replayer/replay-port.js';
import { defaultBootImageCache } from '../vm/boot-image.js';
import { prepareEngine } from '../vm/engine.js';
import { startupMark } from '../vm/startup-marks.js';
import { type BootConfig, type BootTimings, Vm } from '../vm/vm.js';
import { evaluate, InspectPort } from '../vm/vm-eval.js';
import { MemoryUpkeep } from './memory-upkeep.js';
import { decodeEvents, decodeTasks, encodeRunReply } from './run-wire.js';
import type { CheckpointReply, RunReply, VmReply, VmRequest, VmState } from './vm-protocol.js';

if (!parentPort) throw new Error('vm-worker must run as a worker thread');
const port = parentPort;

/**
 * The guest computes at a lower priority than the node's main thread. They often share a core, and
 * the kernel (EEVDF, 250 Hz here) lets a running thread of equal weight finish its slice, 1.5 to 4 ms,
 * before a thread it woke: each ack, heartbeat and held response then waited that long behind the
 * guest (the primary's handling of acks: p90 1.1 ms, p99 4.3 ms; with the worker niced: p90 0.13 ms).
 * The guest gives up nothing it needs: the main thread's work is what feeds it and releases its
 * outputs (`ftjs run` measured the same either way). On Linux a thread's nice value is its own (pid 0
 * is the calling thread); elsewhere it is the whole process's, so Linux only. Relative to the nice
 * value the node started with, since lowering it would need privilege.
 */
const VM_THREAD_NICE_OFFSET = 10;
let niced = false;
/**
 * Lowers the thread's priority once the VM runs live. A VM that replays (a backup, a restore) keeps
 * the node's priority: on a host loaded by busy loops at normal priority a niced replay got about a
 * tenth of a core's share, and a takeover's drain of a 700 ms backlog took 4.4 s (issue 15). The
 * backup's acks do not wait behind it: replay runs in slices of 1 ms (hypervisor/node/backup.ts). A
 * nice value only ever goes up without privilege, so once live it stays niced.
 */
function niceOnceLive(): void {
  if (niced || process.platform !== 'linux') return;
  niced = true;
  setPriority(0, Math.min(19, getPriority(0) + VM_THREAD_NICE_OFFSET));
}

/** Given by the built worker's loader (cached-bundle.ts), which compiled this bundle with V8's code cache. */
declare const __ftjsCodeCache: { problems: string[]; save(): void } | undefined;
const codeCache = typeof __ftjsCodeCache === 'object' ? __ftjsCodeCache : undefined;
// A bad cache file is said in the first boot's reply, with the boot image cache's problems.
if (codeCache?.problems.length) defaultBootImageCache().problems.push(...codeCache.problems);

startupMark('modules loaded');
// Compile the engine while the main thread is still getting ready to send the boot request.
void prepareEngine().then(
  () => startupMark('engine compiled'),
  () => {},
); // a failure is reported by the boot that needs the engine

let vm: Vm | null = null;
let bootConfig: BootConfig | null = null;
let replayPort: ReplayPort | null = null;
/** Debugger checkpoints, with whether the test-only fault had been injected at each. */
const checkpoints = new CheckpointStore<{ perturbed: boolean }>();
/** Bumped whenever the VM changes: an eval copy is good for one generation. */
let generation = 0;
let scratch: { vm: Vm; generation: number } | null = null;

function checkpointReply(): CheckpointReply {
  return { bytes: checkpoints.bytes, count: checkpoints.count };
}

/** A copy of the VM in its current state, with its own port. */
async function copyOf(v: Vm, inputPort: ConstructorParameters<typeof ReplayPort>[0] | InspectPort): Promise<Vm> {
  const p = inputPort instanceof InspectPort ? inputPort : new ReplayPort(inputPort);
  return Vm.create(v.config, p, v.snapshot());
}

function state(vm: Vm, hash: boolean): VmState {
  return {
    pos: vm.pos,
    tasks: vm.taskCount,
    guestTimeMs: vm.guestTimeMs,
    memoryBytes: vm.memoryBytes,
    nextTimer: vm.nextTimer(),
    ...(vm.openStreams.length > 0 ? { openStreams: vm.openStreams } : {}),
    ...(hash ? { stateHash: vm.stateHash() } : {}),
  };
}

/**
 * Replays `tasks` in order, stopping at the first that diverges (its result is the last one), or
 * once `sliceMs` has passed after a task (at least one task runs; the caller sends the rest again).
 */
function replayTasks(v: Vm, tasks: Entry[][], sliceMs = Infinity): RunReply {
  const results = [];
  const started = performance.now();
  for (const task of tasks) {
    let result;
    try {
      result = v.replay(task);
    } catch (error) {
      // An entry whose payload does not decode passed its block's CRC: the log itself is malformed
      // (or was edited), which is no divergence. Name the task so the caller can say where.
      if (!(error instanceof CodecError)) throw error;
      const malformed = new Error(`seqs ${task[0]!.seq}..${task[task.length - 1]!.seq}: ${error.message}`);
      malformed.name = 'MalformedLogError';
      throw malformed;
    }
    results.push(result);
    if (result.divergence || performance.now() - started >= sliceMs) break;
  }
  return { results, state: state(v, false) };
}

function roundedTimings(timings: BootTimings): BootTimings {
  return Object.fromEntries(Object.entries(timings).map(([k, ms]) => [k, Math.round(ms * 10) / 10]));
}

function need(): Vm {
  if (!vm) throw new Error('VM not booted');
  return vm;
}

async function handle(request: VmRequest): Promise<unknown> {
  switch (request.op) {
    case 'boot': {
      startupMark('boot request');
      if (vm) throw new Error('VM already booted');
      if (request.image) defaultBootImageCache().adoptRead(request.image);
      const live = request.mode === 'live';
      let v: Vm;
      if (!live) replayPort = new ReplayPort();
      const inputPort = live ? new LivePort({ push: (e) => v.sink.push(e) }, { taskBudgetMs: request.config.limits.taskBudgetMs }) : replayPort!;
      v = await Vm.create(request.config, inputPort, request.snapshot);
      vm = v;
      bootConfig = request.config;
      if (live) niceOnceLive();
      startupMark('vm created');
      // Once the boot's reply is out: the cache then holds what the boot compiled too.
      if (codeCache) setImmediate(codeCache.save);
      if (live && !request.snapshot) {
        const result = v.bootLive();
        startupMark('guest booted');
        return { results: [result], state: state(v, false), bootImage: v.imageUse, bootTimings: roundedTimings(v.bootTimings) } satisfies RunReply;
      }
      return { results: [], state: state(v, false) } satisfies RunReply;
    }
    case 'run': {
      generation++;
      const v = need();
      startupMark('first run in');
      const results = decodeEvents(request.events).map((event) => v.runLive(event));
      startupMark('first run out');
      return { results, state: state(v, false) } satisfies RunReply;
    }
    case 'replay': {
      generation++;
      return replayTasks(need(), decodeTasks(request.tasks), request.sliceMs);
    }
    case 'go-live': {
      generation++;
      const v = need();
      v.setPort(new LivePort(v.sink, { taskBudgetMs: request.limits?.taskBudgetMs ?? v.config.limits.taskBudgetMs }));
      niceOnceLive();
      return state(v, false);
    }
    case 'state':
      return state(need(), request.hash);
    case 'snapshot':
      return upkeep.snapshot(need());
    case 'snapshot-release':
      need().memoryTracker.releaseCopy(request.lease);
      return null;
    case 'precopy':
      throw new Error('precopy is answered outside the queue');
    case 'pending-fetches':
      return need().pendingFetches();
    case 'reset': {
      need();
      generation++;
      replayPort = new ReplayPort();
      vm = await Vm.create(bootConfig!, replayPort);
      return state(vm, false);
    }
    case 'checkpoint-save': {
      const v = need();
      checkpoints.save(request.id, v.snapshot(), { perturbed: replayPort?.perturbed ?? false }, request.compress);
      return checkpointReply();
    }
    case 'checkpoint-restore': {
      const v = need();
      generation++;
      const { snapshot, extra } = checkpoints.load(request.id);
      replayPort = new ReplayPort({ perturbed: extra.perturbed });
      // In place when the memory has not grown since (no engine boot); else a fresh VM from the snapshot.
      if (v.rewindInPlace(snapshot)) v.setPort(replayPort);
      else vm = await Vm.create(bootConfig!, replayPort, snapshot);
      return state(need(), false);
    }
    case 'checkpoint-drop':
      for (const id of request.ids) checkpoints.drop(id);
      return checkpointReply();
    case 'eval': {
      const v = need();
      if (v.taskCount === 0) {
        return { ok: false, value: 'the guest has not booted yet (the VM is before its boot task)', type: 'error', console: [], interrupted: false, outputsDiscarded: 0 };
      }
      try {
        if (!scratch || scratch.generation !== generation) {
          scratch = null;
          scratch = { vm: await copyOf(v, new InspectPort(request.budgetMs)), generation };
        }
        return evaluate(scratch.vm, request.code);
      } catch (error) {
        // Only the copy can be hurt by what an expression does: drop it, keep the VM.
        scratch = null;
        const e = error as Error;
        return {
          ok: false,
          value: `ftjs eval failed: ${e.name}: ${e.message} (the scratch copy was discarded; the replay is unaffected)`,
          type: 'error',
          console: [],
          interrupted: false,
          outputsDiscarded: 0,
        };
      }
    }
    case 'replay-copy': {
      const v = need();
      const copyPort = { faultInjection: request.faultInjection, perturbed: replayPort?.perturbed ?? false };
      // Before the boot task there is nothing to copy: a fresh VM is the same state.
      const copy = v.taskCount === 0 ? await Vm.create(v.config, new ReplayPort(copyPort)) : await copyOf(v, copyPort);
      return replayTasks(copy, request.tasks);
    }
  }
}

// Between requests, the VM's page hashes and kept copy catch up in small slices (memory-upkeep.ts).
const upkeep = new MemoryUpkeep(
  () => vm,
  (id, value) => port.postMessage({ id, ok: true, value } satisfies VmReply),
);

// Requests are handled strictly one at a time, in order: the VM is single-threaded by nature.
let queue: Promise<void> = Promise.resolve();
port.on('message', (message: { id: number; request: VmRequest }) => {
  // A pre-copy runs in the idle time between the requests that follow it, and answers when done.
  if (message.request.op === 'precopy') return upkeep.precopy(message.id, message.request.copy);
  upkeep.busy++;
  queue = queue.then(async () => {
    let reply: VmReply;
    try {
      reply = { id: message.id, ok: true, value: await handle(message.request) };
    } catch (error) {
      const e = error as Error;
      reply = { id: message.id, ok: false, error: { name: e.name, message: e.message, stack: e.stack } };
      if (e.name === 'VmFatal' || !['BootError', 'GuestLoadError'].includes(e.name)) {
        // A host exception escaped the engine: the VM's state is suspect. Report and stop.
        port.postMessage(reply);
        port.postMessage({ fatal: reply.error });
        process.exit(70);
      }
    }
    // A snapshot's memory is the kept copy (shared, not copied) or, if that was leased, a fresh copy:
    // hand that over instead of copying it again. Run and replay replies go encoded (run-wire.ts).
    const op = message.request.op;
    const encoded = reply.ok && (op === 'run' || op === 'replay') ? encodeRunReply(reply.value as RunReply) : null;
    if (encoded) reply = { id: message.id, ok: true, value: encoded };
    const memory = reply.ok && op === 'snapshot' ? (reply.value as { memory: Uint8Array }).memory : encoded;
    const transfer = memory && memory.buffer instanceof ArrayBuffer ? [memory.buffer] : [];
    // A snapshot's page hashes (1.7 MB at 200 MiB, a fresh copy) are handed over too, not cloned while
    // admission is held: only a copy that owns its whole buffer, never a view into what the VM keeps.
    const hashes = reply.ok && op === 'snapshot' ? (reply.value as { pageHashes?: Uint8Array }).pageHashes : undefined;
    if (hashes && hashes.buffer instanceof ArrayBuffer && hashes.byteOffset === 0 && hashes.byteLength === hashes.buffer.byteLength && !transfer.includes(hashes.buffer)) transfer.push(hashes.buffer);
    port.postMessage(reply, transfer);
    upkeep.busy--;
    upkeep.schedule();
  });
});

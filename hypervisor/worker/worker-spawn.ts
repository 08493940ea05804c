// Spawning VM workers, and the one a VM command starts before anything else (issue 19, cold start).
// The worker is the slower of the two threads to get ready for the boot, so it starts first: the
// `ftjs` command's loader calls prestartForArgv before it loads the command's script
// (cli/cli-bundle-build.ts; the script shares this module with the loader), which took 5–11 ms of the
// main thread's CPU before the spawn otherwise.
// VmHost.start adopts the prestarted worker.

import { Worker } from 'node:worker_threads';
import { DEFAULT_LIMITS, type VmLimits, workerStackSizeMb } from '../vm/limits.js';
import { startupMark } from '../vm/startup-marks.js';
import { priorityBoostFrom, raisePriority } from './priority.js';

/**
 * The VM worker's young generation (V8 semi-spaces of 32 MiB, against 16 by default): each request
 * allocates handles, strings and buffers that die by its end, and a larger nursery scavenges them
 * less often (kv.js: ~5% less CPU per request in process, +7.5% throughput in issue 19).
 */
const VM_WORKER_YOUNG_GENERATION_MB = 96;

/** The commands that run a VM, and so start a worker at once. */
const VM_COMMANDS = ['run', 'primary', 'backup', 'replay'];

/** Defined (true) by cli/cli-bundle-build.ts in the bundled command; undeclared in tsc's output. */
declare const FTJS_BUNDLED: boolean | undefined;
/** Built, the worker starts from its CommonJS loader, which compiles the worker's bundle with V8's code cache (cached-bundle.ts). */
const WORKER_FILE = typeof FTJS_BUNDLED === 'boolean' ? './vm-worker.cjs' : './vm-worker.js';

export function spawnWorker(stackSizeMb: number): Worker {
  return new Worker(new URL(WORKER_FILE, import.meta.url), { resourceLimits: { stackSizeMb, maxYoungGenerationSizeMb: VM_WORKER_YOUNG_GENERATION_MB }, stdout: false, stderr: false });
}

let prestarted: { worker: Worker; stackSizeMb: number } | null = null;

/**
 * Starts a VM worker before the node knows its guest (a worker takes tens of ms to start and
 * compiles the engine as it starts): the next takePrestarted() adopts it. It does not keep the
 * process alive while unclaimed.
 */
export function prestartWorker(limits: VmLimits): void {
  if (prestarted) return;
  const stackSizeMb = workerStackSizeMb(limits);
  const worker = spawnWorker(stackSizeMb);
  worker.unref();
  // Until adopted, a failure to start is reported by no one; the adopting host hears of an exit.
  worker.on('error', () => {});
  worker.once('exit', () => {
    if (prestarted?.worker === worker) prestarted = null;
  });
  prestarted = { worker, stackSizeMb };
}

/** The prestarted worker if it was started for `stackSizeMb` (else it is stopped), or null. */
export function takePrestarted(stackSizeMb: number): Worker | null {
  const early = prestarted;
  prestarted = null;
  if (early?.stackSizeMb === stackSizeMb) {
    early.worker.ref();
    return early.worker;
  }
  void early?.worker.terminate();
  return null;
}

/**
 * Prestarts a worker with the default limits when `argv` names a command that runs a VM (and asks for
 * no help); a --max-stack-kb other than the default makes the node start another one.
 */
export function prestartForArgv(argv: readonly string[] = process.argv): void {
  const named = argv.slice(2).find((arg) => !arg.startsWith('-'));
  if (!named || !VM_COMMANDS.includes(named) || argv.includes('--help') || argv.includes('-h')) return;
  // A node of a pair runs above ordinary work where permitted, and every thread it starts inherits
  // that: so before its first thread (hypervisor/worker/priority.ts).
  if (named === 'primary' || named === 'backup') raisePriority(priorityBoostFrom(argv));
  prestartWorker(DEFAULT_LIMITS);
  startupMark('worker spawned');
}

// Cold-start phase marks (issue 19): with FTJS_STARTUP_MARKS=1, each phase of a node's start writes one
// line `ftjs-mark <epoch ms> <thread> <phase> <thread CPU ms>` to stderr, from the main thread and the VM worker alike,
// so that a harness that knows when it spawned the process can lay the phases on one time line
// (bench/cold-start.ts). Off, a mark costs one boolean test. The first request's marks fire once.

import { readFileSync, writeSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const enabled = process.env.FTJS_STARTUP_MARKS === '1';
const seen = new Set<string>();

/** Marks `phase` now (once per phase and thread). Epoch ms: comparable across threads and with the spawner's clock. */
export function startupMark(phase: string): void {
  if (!enabled || seen.has(phase)) return;
  seen.add(phase);
  const epochMs = performance.timeOrigin + performance.now();
  try {
    writeSync(2, `ftjs-mark ${epochMs.toFixed(2)} ${isMainThread ? 'main' : 'worker'} ${phase} ${threadCpuMs().toFixed(2)}\n`);
  } catch {
    // stderr closed: marks are diagnostics only
  }
}

/** This thread's CPU time so far (Linux: the scheduler's count, ns); under load, the steadier measure of a phase. */
function threadCpuMs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

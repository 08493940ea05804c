// The calling thread's CPU time, for the task budget. Node 20 has no per-thread CPU clock
// (process.cpuUsage is the whole process: the main thread and every worker), so on Linux it is read
// from /proc/thread-self/schedstat, whose first field is the ns this thread has run on a CPU. A
// starved host (other processes hogging the cores) then stretches a task's wall time, not its budget.
//
// A read is one pread of an fd kept open per thread (3.5-6.5 us on the loaded 2-core machine, against
// 0.05 us for performance.now()), so the live port reads it only where the wall clock cannot decide:
// see recorder/live-port.ts.

import { openSync, readSync } from 'node:fs';

const SCHEDSTAT_PATH = '/proc/thread-self/schedstat';

/** Per thread (a worker has its own module instance): the open schedstat fd, or null once found missing. */
let fd: number | undefined | null;
const buffer = Buffer.alloc(128);

/**
 * CPU ms the calling thread has run since it started, or null where there is no per-thread CPU clock
 * (not Linux, or /proc unreadable). The first null prints a one-line warning: the budget then counts
 * wall time, as it did before.
 */
export function readThreadCpuMs(): number | null {
  if (fd === undefined) fd = openSchedstat();
  if (fd === null) return null;
  const length = readSync(fd, buffer, 0, buffer.length, 0);
  const text = buffer.toString('latin1', 0, length);
  const ns = Number(text.slice(0, text.indexOf(' ')));
  if (!Number.isFinite(ns)) throw new Error(`${SCHEDSTAT_PATH}: expected "<ns on cpu> <ns waiting> <slices>", got ${JSON.stringify(text)}`);
  return ns / 1e6;
}

function openSchedstat(): number | null {
  let reason: string;
  if (process.platform !== 'linux') {
    reason = `${process.platform} is not Linux`;
  } else {
    try {
      // The fd names this thread for good: /proc/thread-self resolves to /proc/<pid>/task/<tid> at open.
      return openSync(SCHEDSTAT_PATH, 'r');
    } catch (error) {
      reason = `cannot read ${SCHEDSTAT_PATH}: ${(error as Error).message}`;
    }
  }
  console.warn(`ftjs: no per-thread CPU clock (${reason}); the task budget (--task-budget-ms) counts wall time`);
  return null;
}

// A node's scheduling priority. A pair's failure detector is only as good as its nodes' ability to run
// on time: on a host whose cores are held by ordinary busy work, a node at the same priority waited
// 150–454 ms for a core at a time, past the 300 ms heartbeat timeout (issue 15's partition drill under
// two CPU hogs). HA daemons run above ordinary work for this reason (corosync runs realtime by
// default); a node asks for a few nice steps more, where it is permitted (root, or CAP_SYS_NICE), and
// runs as it was started where it is not.
//
// It must happen before the node's first thread starts: on Linux a nice value belongs to one thread,
// and a thread starts with its creator's. So worker-spawn.ts calls it before it prestarts the VM worker; the
// VM worker, the beacon thread and everything the node starts later inherit it (the VM worker still
// drops 10 steps below that once it runs live: hypervisor/worker/vm-worker.ts).

import { getPriority, setPriority } from 'node:os';

/** Nice steps a primary or backup asks for above the priority it was started with. */
export const DEFAULT_PRIORITY_BOOST_STEPS = 5;
/** The highest priority (lowest nice value) a node asks for: never realtime-like values. */
const MOST_FAVOURABLE_NICE = -10;

export const PRIORITY_BOOST_FLAG = '--priority-boost';

export type PriorityChange = { kind: 'raised'; fromNice: number; toNice: number } | { kind: 'unchanged'; nice: number; why: string };

let change: PriorityChange | null = null;

/** The steps `--priority-boost` asks for in `argv` (it is read before the command's flags are parsed). */
export function priorityBoostFrom(argv: readonly string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = arg === PRIORITY_BOOST_FLAG ? argv[i + 1] : arg.startsWith(`${PRIORITY_BOOST_FLAG}=`) ? arg.slice(PRIORITY_BOOST_FLAG.length + 1) : undefined;
    if (value === undefined) continue;
    const steps = Number(value);
    // A bad value is reported by the command's own parsing; nothing is changed meanwhile.
    return Number.isSafeInteger(steps) && steps >= 0 && steps <= 20 ? steps : 0;
  }
  return DEFAULT_PRIORITY_BOOST_STEPS;
}

/** Raises the calling thread's priority by `steps` nice steps, where permitted; the first call only. */
export function raisePriority(steps: number): PriorityChange {
  if (change) return change; // once: the stub and the bundle both prestart (worker-spawn.ts)
  const fromNice = getPriority(0);
  const toNice = Math.max(MOST_FAVOURABLE_NICE, fromNice - steps);
  if (steps === 0 || toNice >= fromNice) {
    change = { kind: 'unchanged', nice: fromNice, why: steps === 0 ? `${PRIORITY_BOOST_FLAG} 0` : `already at nice ${fromNice}` };
    return change;
  }
  try {
    setPriority(0, toNice);
    change = { kind: 'raised', fromNice, toNice };
  } catch (error) {
    // Node reports it as ERR_SYSTEM_ERROR, with the errno's name in `info`.
    const e = error as NodeJS.ErrnoException & { info?: { code?: string } };
    const code = e.info?.code ?? e.code ?? String(error);
    change = { kind: 'unchanged', nice: fromNice, why: `not permitted (${code}): run as root or grant CAP_SYS_NICE for it` };
  }
  return change;
}

/** What `raisePriority` did, for the node's start log line; null if it was not called. */
export function priorityChange(): PriorityChange | null {
  return change;
}

/** One log line's words for it. */
export function describePriority(c: PriorityChange): string {
  return c.kind === 'raised' ? `scheduling priority raised: nice ${c.fromNice} → ${c.toNice}` : `scheduling priority unchanged at nice ${c.nice}: ${c.why}`;
}

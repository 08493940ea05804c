// The input port: the single seam through which every nondeterministic value enters a VM.
// Two implementations exist and no others: the live port (recorder/live-port.ts) reads the world and
// appends entries; the replay port (replayer/replay-port.ts) serves entries from a log. The VM code
// above the port is the same in both roles.

import type { Entry, RawEntry } from '../../logging-channel/entry.js';

export interface Divergence {
  /** seq of the entry at which replay and record first disagreed (the task's first entry if unknown). */
  seq: number;
  pos: number;
  /** Kind of the entry expected at this point (or 'none'). */
  expectedKind: string;
  expected: string;
  actual: string;
}

export interface InputPort {
  readonly mode: 'live' | 'replay';
  /** A task starts. Live: `recorded` is null and the CPU budget starts. Replay: the task's inputs after its start entry. */
  beginTask(recorded: Entry[] | null): void;
  /**
   * Live: start the current task's CPU budget again (after the engine's own boot work), `graceMs`
   * later than now when given (the hypervisor's lazy glue loading, see Vm.compileLazyGlue).
   */
  restartBudget?(graceMs?: number): void;
  /** The task ended at `pos`. Replay: returns its recorded TaskEnd entry (inputs left unconsumed are a divergence). */
  endTask(pos: number): Entry | null;
  /** The guest read the clock (the `readIndex`-th read since boot) at `pos`. Returns ms since the epoch. */
  clock(readIndex: number, pos: number, lastMs: number): number;
  /** The guest needs `length` random bytes at `pos`. */
  entropy(length: number, pos: number): Uint8Array;
  /**
   * The interrupt handler ran at exactly `pos`. Returns true to interrupt the running task.
   * Live: true when the task overran its CPU budget. Replay: true exactly where live said true.
   */
  preempt(pos: number): boolean;
  /** Records a divergence the VM found itself (task position, output hash). Live: ignored. */
  diverge(seq: number, pos: number, expectedKind: string, expected: string, actual: string): void;
  /** The first divergence seen in the current task, if any (replay only). */
  divergence(): Divergence | null;
}

/** The live port's output: what the VM must append to the log for the current task. */
export interface EntrySink {
  push(entry: RawEntry): void;
}

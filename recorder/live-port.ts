// The live input port: reads the world (wall clock, OS entropy, the CPU budget) and appends an entry
// for every value it hands the guest, at the exact position where the guest took it.

import { randomBytes } from 'node:crypto';
import { Kind } from '../logging-channel/entry.js';
import { encodeClockReading } from '../logging-channel/codec.js';
import type { Divergence, EntrySink, InputPort } from '../hypervisor/port.js';

const EMPTY = new Uint8Array(0);

export interface LivePortOptions {
  /** CPU budget of one task in wall-clock ms; past it the task is preempted at its next poll check. */
  taskBudgetMs: number;
}

export class LivePort implements InputPort {
  readonly mode = 'live' as const;
  private taskStartMs = 0;

  constructor(
    private readonly sink: EntrySink,
    private readonly options: LivePortOptions,
  ) {
    if (!(options.taskBudgetMs > 0)) throw new RangeError(`taskBudgetMs must be > 0, got ${options.taskBudgetMs}`);
  }

  beginTask(): void {
    this.taskStartMs = performance.now();
  }

  restartBudget(graceMs = 0): void {
    this.taskStartMs = performance.now() + graceMs;
  }

  endTask(): null {
    return null;
  }

  diverge(): void {}

  clock(readIndex: number, pos: number, lastMs: number): number {
    let now = Date.now();
    // The first read seeds Math.random inside JS_NewContext (from microseconds): give it entropy.
    if (readIndex === 0) now += randomBytes(2).readUInt16LE(0) / 65536;
    // The guest's clock never runs backwards, whatever the host's clock does.
    const timeMs = Math.max(lastMs, now);
    if (timeMs !== lastMs) {
      this.sink.push({ kind: Kind.Clock, pos, payload: encodeClockReading({ readIndex, timeMs }) });
    }
    return timeMs;
  }

  entropy(length: number, pos: number): Uint8Array {
    const bytes = new Uint8Array(randomBytes(length));
    this.sink.push({ kind: Kind.Entropy, pos, payload: bytes });
    return bytes;
  }

  preempt(pos: number): boolean {
    if (performance.now() - this.taskStartMs <= this.options.taskBudgetMs) return false;
    this.sink.push({ kind: Kind.Preempt, pos, payload: EMPTY });
    return true;
  }

  divergence(): Divergence | null {
    return null;
  }
}

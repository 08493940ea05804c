// The live input port: reads the world (wall clock, OS entropy, the CPU budget) and appends an entry
// for every value it hands the guest, at the exact position where the guest took it.

import { randomBytes } from 'node:crypto';
import type { Divergence, EntrySink, InputPort } from '../hypervisor/vm/port.js';
import { encodeClockReading } from '../logging-channel/codec.js';
import { Kind } from '../logging-channel/entry.js';

const EMPTY = new Uint8Array(0);

export interface LivePortOptions {
  /** CPU budget of one task in wall-clock ms; past it the task is preempted at its next poll check. */
  taskBudgetMs: number;
  /** Where the world's values come from (default: the process's clocks and OS randomness; the simulator's are seeded). */
  world?: LivePortWorld;
}

/** The world a live port reads: the same three things whatever runs the node. */
export interface LivePortWorld {
  /** Monotonic ms (the CPU budget). */
  monoMs(): number;
  /** Wall-clock ms since the epoch (the guest's Date). */
  wallMs(): number;
  randomBytes(length: number): Uint8Array;
}

const REAL_WORLD: LivePortWorld = {
  monoMs: () => performance.now(),
  wallMs: () => Date.now(),
  randomBytes: (length) => new Uint8Array(randomBytes(length)),
};

export class LivePort implements InputPort {
  readonly mode = 'live' as const;
  private taskStartMs = 0;
  private readonly world: LivePortWorld;

  constructor(
    private readonly sink: EntrySink,
    private readonly options: LivePortOptions,
  ) {
    if (!(options.taskBudgetMs > 0)) throw new RangeError(`taskBudgetMs must be > 0, got ${options.taskBudgetMs}`);
    this.world = options.world ?? REAL_WORLD;
  }

  beginTask(): void {
    this.taskStartMs = this.world.monoMs();
  }

  restartBudget(graceMs = 0): void {
    this.taskStartMs = this.world.monoMs() + graceMs;
  }

  endTask(): null {
    return null;
  }

  diverge(): void {}

  clock(readIndex: number, pos: number, lastMs: number): number {
    let now = this.world.wallMs();
    // The first read seeds Math.random inside JS_NewContext (from microseconds): give it entropy.
    if (readIndex === 0) {
      const r = this.world.randomBytes(2);
      now += (r[0]! | (r[1]! << 8)) / 65536;
    }
    // The guest's clock never runs backwards, whatever the host's clock does.
    const timeMs = Math.max(lastMs, now);
    if (timeMs !== lastMs) {
      this.sink.push({ kind: Kind.Clock, pos, payload: encodeClockReading({ readIndex, timeMs }) });
    }
    return timeMs;
  }

  entropy(length: number, pos: number): Uint8Array {
    const bytes = this.world.randomBytes(length);
    this.sink.push({ kind: Kind.Entropy, pos, payload: bytes });
    return bytes;
  }

  preempt(pos: number): boolean {
    if (this.world.monoMs() - this.taskStartMs <= this.options.taskBudgetMs) return false;
    this.sink.push({ kind: Kind.Preempt, pos, payload: EMPTY });
    return true;
  }

  divergence(): Divergence | null {
    return null;
  }
}

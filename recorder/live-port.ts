// The live input port: reads the world (wall clock, OS entropy, the CPU budget) and appends an entry
// for every value it hands the guest, at the exact position where the guest took it.
//
// The CPU budget counts the VM thread's CPU time, so a starved host does not preempt ordinary requests.
// Its decision is an input like any other: a Preempt entry at the position where it fell, which the
// replay port serves back at that position (replayer/replay-port.ts), so backup and offline replay
// stop the task at the same poll whatever their own clocks say.

import { randomBytes } from 'node:crypto';
import { TASK_WALL_BACKSTOP_BUDGETS } from '../hypervisor/vm/limits.js';
import type { Divergence, EntrySink, InputPort } from '../hypervisor/vm/port.js';
import { encodeClockReading } from '../logging-channel/codec.js';
import { Kind } from '../logging-channel/entry.js';
import { readThreadCpuMs } from './thread-cpu-clock.js';

const EMPTY = new Uint8Array(0);

/**
 * A task's CPU budget starts from a thread CPU reading at most this old (ms; a tenth of the budget for
 * budgets under 100 ms), not from a fresh one: a read costs a syscall, too much for every task. The
 * thread's CPU time between that reading and the task's start counts against the task, so a task may
 * be preempted up to this much CPU early, never late.
 */
export const CPU_BASELINE_MAX_AGE_MS = 10;

export interface LivePortOptions {
  /** CPU budget of one task in ms of the VM thread's CPU time; past it the task is preempted at its next poll check. */
  taskBudgetMs: number;
  /** Where the world's values come from (default: the process's clocks and OS randomness; the simulator's are seeded). */
  world?: LivePortWorld;
}

/** The world a live port reads: the same three things whatever runs the node. */
export interface LivePortWorld {
  /** Monotonic ms (the wall side of the CPU budget). */
  monoMs(): number;
  /** CPU ms the calling thread has run; absent or null: no such clock, the budget counts wall time. */
  threadCpuMs?(): number | null;
  /** Wall-clock ms since the epoch (the guest's Date). */
  wallMs(): number;
  randomBytes(length: number): Uint8Array;
}

const REAL_WORLD: LivePortWorld = {
  monoMs: () => performance.now(),
  threadCpuMs: readThreadCpuMs,
  wallMs: () => Date.now(),
  randomBytes: (length) => new Uint8Array(randomBytes(length)),
};

export class LivePort implements InputPort {
  readonly mode = 'live' as const;
  /** Wall ms the current task's budget started at (later than now while a grace runs). */
  private taskStartMs = 0;
  /** Thread CPU ms the current task's budget counts from (null: no CPU clock). */
  private taskCpuStartMs: number | null = null;
  /** Before this wall ms the task cannot be over budget (its CPU time cannot outrun the wall clock). */
  private checkAtMs = 0;
  /** The last thread CPU reading and the wall ms it was taken at. */
  private cpuMs: number | null = null;
  private cpuReadAtMs = Number.NEGATIVE_INFINITY;
  private readonly baselineMaxAgeMs: number;
  private readonly world: LivePortWorld;

  constructor(
    private readonly sink: EntrySink,
    private readonly options: LivePortOptions,
  ) {
    if (!(options.taskBudgetMs > 0)) throw new RangeError(`taskBudgetMs must be > 0, got ${options.taskBudgetMs}`);
    this.world = options.world ?? REAL_WORLD;
    this.baselineMaxAgeMs = Math.min(CPU_BASELINE_MAX_AGE_MS, options.taskBudgetMs / 10);
  }

  beginTask(): void {
    const nowMs = this.world.monoMs();
    if (nowMs - this.cpuReadAtMs > this.baselineMaxAgeMs) this.readCpu(nowMs);
    this.startBudget(nowMs, this.cpuMs);
  }

  restartBudget(graceMs = 0): void {
    // A fresh reading: the work before a restart (the engine's boot, a lazy glue load) must not count.
    const nowMs = this.world.monoMs();
    const cpuMs = this.readCpu(nowMs);
    this.startBudget(nowMs + graceMs, cpuMs === null ? null : cpuMs + graceMs);
  }

  private startBudget(wallMs: number, cpuMs: number | null): void {
    this.taskStartMs = wallMs;
    this.taskCpuStartMs = cpuMs;
    this.checkAtMs = wallMs + this.options.taskBudgetMs;
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
    const nowMs = this.world.monoMs();
    // The hot path: until a budget of wall time has passed, no CPU clock needs reading.
    if (nowMs <= this.checkAtMs || !this.overBudget(nowMs)) return false;
    this.sink.push({ kind: Kind.Preempt, pos, payload: EMPTY });
    return true;
  }

  /** Past `checkAtMs`: is the task over its CPU budget (or the wall backstop)? If not, when to ask again. */
  private overBudget(nowMs: number): boolean {
    const budgetMs = this.options.taskBudgetMs;
    const wallMs = nowMs - this.taskStartMs;
    const backstopMs = TASK_WALL_BACKSTOP_BUDGETS * budgetMs;
    if (wallMs > backstopMs) return true;
    const cpuMs = this.readCpu(nowMs);
    if (cpuMs === null || this.taskCpuStartMs === null) return true;
    // The baseline may predate the task; the task cannot have run longer than its wall time.
    const usedMs = Math.min(cpuMs - this.taskCpuStartMs, wallMs);
    if (usedMs > budgetMs) return true;
    this.checkAtMs = this.taskStartMs + Math.min(wallMs + budgetMs - usedMs, backstopMs);
    return false;
  }

  private readCpu(nowMs: number): number | null {
    this.cpuMs = this.world.threadCpuMs?.() ?? null;
    this.cpuReadAtMs = nowMs;
    return this.cpuMs;
  }

  divergence(): Divergence | null {
    return null;
  }
}

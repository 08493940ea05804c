// The backup's replay backlog in time: what a takeover would have to replay before going live.
//
// Each queued task is weighed by its recorded work: the polls it ran (its TaskEnd's position minus its
// start's, deterministic) plus a fixed part every task costs (decoding, the worker message, the host
// side of its events). The cost of one unit of weight is this backup's own measured replay rate: an
// average over about the last REPLAY_FAST_WINDOW_MS of replay time, held at its recent peak (the peak
// relaxes towards the average over about REPLAY_SLOWDOWN_MEMORY_MS of replay): a slowdown counts at
// once, a speedup only once it has lasted, so a drain is estimated at the slowest recent pace.
// The first version counted tasks at their average cost over the latest 1,024 tasks: it missed a heavy
// task queued behind light ones, and its window, a quarter of a second of replay, followed every swing
// of a loaded host's CPU share: a 652 ms estimate once took 2.6 s to drain (issue 15).
// Over-estimating costs admission rate while the backup catches up; under-estimating costs the go-live
// bound. Before the first measurement a conservative default stands in, so a backup that joins with a
// long log reports a long backlog from the start, not zero.

import type { Entry } from '../logging-channel/entry.js';

/** Assumed replay cost of one task before any was measured, in ms. */
export const DEFAULT_REPLAY_TASK_MS = 1;
/**
 * The fixed part of a task's replay cost, in polls' worth. Measured (replay in process, loaded 2-core
 * machine): a poll of a guest loop 0.05-0.08 us; a kv.js PUT of 225 polls 0.12-0.18 ms (so about
 * 2,000 polls of fixed cost), a 110-poll task 0.04-0.09 ms (about 600). In a steady mix it does not
 * matter (the rate is measured on that mix); it sets how a task far heavier or lighter than the mix
 * measured counts.
 */
export const TASK_OVERHEAD_POLLS = 1_000;
/** The measured rate follows about this much of the latest replay time, in ms. */
export const REPLAY_FAST_WINDOW_MS = 100;
/** A slowdown is remembered over about this much replay time, in ms. */
export const REPLAY_SLOWDOWN_MEMORY_MS = 2_000;
/**
 * The peak is held only after this much replay time (not counting the first call, by then long gone
 * from the average): a fresh worker's first calls are cold (the engine's code not yet optimised, 10x
 * slower and more), which a warm drain never is; held, they kept a joining backup "catching up" 3-5 s
 * longer in the 50k-entry join.
 */
export const REPLAY_WARMUP_MS = 1_000;
/** The default counts as this much replay time already measured: one slow first call (a cold worker) does not dominate. */
const PRIOR_MS = 32 * DEFAULT_REPLAY_TASK_MS;

/** A task's replay weight: its recorded polls plus the fixed part every task costs. */
export function taskWeight(task: readonly Entry[]): number {
  return Math.max(0, task[task.length - 1]!.pos - task[0]!.pos) + TASK_OVERHEAD_POLLS;
}

/** Replay ms per unit (task or weight), averaged over about `windowMs` of replay time. */
class Rate {
  private ms: number;
  private units: number;

  constructor(
    private readonly windowMs: number,
    priorMsPerUnit: number,
  ) {
    this.ms = Math.min(PRIOR_MS, windowMs);
    this.units = this.ms / priorMsPerUnit;
  }

  add(ms: number, units: number): void {
    const keep = Math.exp(-ms / this.windowMs);
    this.ms = this.ms * keep + ms;
    this.units = this.units * keep + units;
  }

  get msPerUnit(): number {
    return this.ms / this.units;
  }
}

/** Replay ms per unit: the fast average, held at its recent peak. */
class PeakRate {
  private readonly fast: Rate;
  private peak: number;
  private measuredMs = 0;
  private calls = 0;

  constructor(priorMsPerUnit: number) {
    this.fast = new Rate(REPLAY_FAST_WINDOW_MS, priorMsPerUnit);
    this.peak = this.fast.msPerUnit;
  }

  add(ms: number, units: number): void {
    this.fast.add(ms, units);
    const now = this.fast.msPerUnit;
    if (this.calls++ > 0) this.measuredMs += ms;
    this.peak = this.measuredMs < REPLAY_WARMUP_MS ? now : Math.max(now, now + (this.peak - now) * Math.exp(-ms / REPLAY_SLOWDOWN_MEMORY_MS));
  }

  get msPerUnit(): number {
    return this.peak;
  }
}

export class ReplayBacklog {
  private readonly perWeight = new PeakRate(DEFAULT_REPLAY_TASK_MS / TASK_OVERHEAD_POLLS);
  /** The plain cost per task (fast average), for status only. */
  private readonly perTask = new Rate(REPLAY_FAST_WINDOW_MS, DEFAULT_REPLAY_TASK_MS);
  private queuedWeight = 0;

  /** A task joined the replay queue. */
  queued(task: readonly Entry[]): void {
    this.queuedWeight += taskWeight(task);
  }

  /** A replay call ran `tasks` (the first of the queue, in order) in `ms`; they leave the queue. */
  replayed(tasks: ReadonlyArray<readonly Entry[]>, ms: number): void {
    let weight = 0;
    for (const task of tasks) weight += taskWeight(task);
    this.queuedWeight -= weight;
    if (!(tasks.length > 0) || !Number.isFinite(ms) || ms < 0) return;
    this.perWeight.add(ms, weight);
    this.perTask.add(ms, tasks.length);
  }

  /** The measured (or assumed) replay cost of one task, in ms (the latest mix's average). */
  get taskMs(): number {
    return this.perTask.msPerUnit;
  }

  /** Estimated ms to replay the tasks queued now. */
  estimateMs(): number {
    return Math.max(0, this.queuedWeight) * this.perWeight.msPerUnit;
  }
}

// Fires cron triggers on the node's clock (live side only): at each firing time it hands every
// expression due then to `fire`, which queues a recorded 'scheduled' event (LiveLoop). The clock is
// passed in so that the scheduling can be tested over days of virtual time.

import { type CronSchedule, parseCron } from './cron.js';

export interface SchedulerClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const REAL_CLOCK: SchedulerClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** setTimeout's range is about 24.8 days: a firing further off re-arms on the way. */
const MAX_TIMER_MS = 2_000_000_000;

export class CronScheduler {
  private readonly schedules: CronSchedule[];
  private handle: unknown = null;
  /** Firings at or before this time are done; the next one is strictly after it. */
  private lastFiredMs: number;
  private stopped = false;
  /** The next firing time armed, or null (none ever again, or stopped). */
  nextFiringMs: number | null = null;

  constructor(
    expressions: readonly string[],
    private readonly fire: (cron: string, scheduledTimeMs: number) => void,
    private readonly clock: SchedulerClock = REAL_CLOCK,
  ) {
    this.schedules = expressions.map(parseCron);
    this.lastFiredMs = clock.now();
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.handle !== null) this.clock.clearTimeout(this.handle);
    this.handle = null;
    this.nextFiringMs = null;
  }

  private arm(): void {
    this.handle = null;
    if (this.stopped) return;
    let next: number | null = null;
    for (const s of this.schedules) {
      const t = s.next(this.lastFiredMs);
      if (t !== null && (next === null || t < next)) next = t;
    }
    this.nextFiringMs = next;
    if (next === null) return; // no schedule ever fires again (e.g. "0 0 30 2 *")
    const due = next;
    const delayMs = Math.min(Math.max(0, due - this.clock.now()), MAX_TIMER_MS);
    this.handle = this.clock.setTimeout(() => {
      if (this.clock.now() < due) return this.arm();
      // Every expression due at this minute fires, each once, in the order given.
      for (const s of this.schedules) if (s.next(this.lastFiredMs) === due) this.fire(s.expression, due);
      // A node that was stalled past later firings skips them: Workers, too, fires a missed trigger once.
      this.lastFiredMs = Math.max(due, this.clock.now());
      this.arm();
    }, delayMs);
  }
}

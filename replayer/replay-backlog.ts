// The backup's replay backlog in time: what a takeover would have to replay before going live. It is
// estimated from this backup's own measured replay cost per task (a moving average over the replay
// calls it made), times the tasks received and not yet replayed. Before the first measurement a
// conservative default cost stands in, so a backup that joins with a long log to replay reports a
// long backlog from the start, not zero.

/** Assumed replay cost of one task before any was measured, in ms. */
export const DEFAULT_REPLAY_TASK_MS = 1;
/** Weight of the newest measurement in the moving average. */
const EWMA_WEIGHT = 0.2;

export class ReplayBacklog {
  private msPerTask: number | null = null;

  /** A replay call ran `tasks` tasks in `ms`. */
  replayed(tasks: number, ms: number): void {
    if (!(tasks > 0) || !Number.isFinite(ms) || ms < 0) return;
    const sample = ms / tasks;
    this.msPerTask = this.msPerTask === null ? sample : this.msPerTask + EWMA_WEIGHT * (sample - this.msPerTask);
  }

  /** The measured (or assumed) replay cost of one task, in ms. */
  get taskMs(): number {
    return this.msPerTask ?? DEFAULT_REPLAY_TASK_MS;
  }

  /** Estimated ms to replay `queuedTasks` tasks. */
  estimateMs(queuedTasks: number): number {
    return queuedTasks * this.taskMs;
  }
}

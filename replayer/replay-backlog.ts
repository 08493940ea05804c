// The backup's replay backlog in time: what a takeover would have to replay before going live. It is
// estimated from this backup's own measured replay cost per task (a moving average over the latest
// tasks it replayed, weighted by tasks), times the tasks received and not yet replayed. Before the first measurement a
// conservative default cost stands in, so a backup that joins with a long log to replay reports a
// long backlog from the start, not zero.

/** Assumed replay cost of one task before any was measured, in ms. */
export const DEFAULT_REPLAY_TASK_MS = 1;
/** The default counts as this many tasks' worth of measurement: one slow first call (a cold worker) does not dominate. */
const PRIOR_TASKS = 32;
/** The average covers about this many of the latest tasks (weighted by tasks, not by calls). */
const WINDOW_TASKS = 1024;

export class ReplayBacklog {
  private msPerTask = DEFAULT_REPLAY_TASK_MS;
  private weight = PRIOR_TASKS;

  /** A replay call ran `tasks` tasks in `ms`. */
  replayed(tasks: number, ms: number): void {
    if (!(tasks > 0) || !Number.isFinite(ms) || ms < 0) return;
    this.msPerTask = (this.msPerTask * this.weight + ms) / (this.weight + tasks);
    this.weight = Math.min(WINDOW_TASKS, this.weight + tasks);
  }

  /** The measured (or assumed) replay cost of one task, in ms. */
  get taskMs(): number {
    return this.msPerTask;
  }

  /** Estimated ms to replay `queuedTasks` tasks. */
  estimateMs(queuedTasks: number): number {
    return queuedTasks * this.taskMs;
  }
}

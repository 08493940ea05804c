// Every bound the VM enforces, with its default. Each has a CLI flag (cli/options.ts) and a clear
// error when hit. They are part of the boot config, so a replay runs under the recorded limits.

export interface VmLimits {
  /** Guest memory: how far the VM's linear memory may grow past the engine's base (and QuickJS's own
   *  malloc limit). Over it the guest gets a catchable out-of-memory error. */
  memoryLimitBytes: number;
  /** Guest stack. Deeper recursion is a guest `InternalError: stack overflow`. */
  maxStackBytes: number;
  /** Wall-clock CPU budget of one task on the live side; past it the task is preempted (503). */
  taskBudgetMs: number;
  /** Largest response body a guest may return; larger gives the client a 500. */
  maxResponseBytes: number;
  /** Longest console line kept (longer lines are cut, with a marker). */
  maxConsoleLineBytes: number;
  /** Console lines kept per task (the rest are counted, not kept). */
  maxConsoleLinesPerTask: number;
  /** Timers a guest may hold at once. */
  maxTimers: number;
  /** Outbound fetches a guest may have in flight at once. */
  maxPendingFetches: number;
  /** Idempotency keys remembered (with their responses) for exactly-once retries. */
  idempotencyMaxKeys: number;
  /** How long a finished idempotency key is remembered, in guest milliseconds. */
  idempotencyTtlMs: number;
}

export const DEFAULT_LIMITS: Readonly<VmLimits> = Object.freeze({
  memoryLimitBytes: 256 * 1024 * 1024,
  maxStackBytes: 512 * 1024,
  taskBudgetMs: 1000,
  maxResponseBytes: 8 * 1024 * 1024,
  maxConsoleLineBytes: 8 * 1024,
  maxConsoleLinesPerTask: 1000,
  maxTimers: 10_000,
  maxPendingFetches: 1_000,
  idempotencyMaxKeys: 10_000,
  idempotencyTtlMs: 24 * 60 * 60 * 1000,
});

/** Host thread stack for the VM worker: comfortably above maxStackBytes so the guest overflows first. */
export function workerStackSizeMb(limits: VmLimits): number {
  return Math.max(4, Math.ceil((limits.maxStackBytes * 4) / (1024 * 1024)));
}

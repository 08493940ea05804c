// Every bound the VM enforces, with its default. Each has a CLI flag (cli/options.ts) and a clear
// error when hit. They are part of the boot config, so a replay runs under the recorded limits.

export interface VmLimits {
  /** Guest memory: how far the VM's linear memory may grow past the engine's base (and QuickJS's own
   *  malloc limit). Over it the guest gets a catchable out-of-memory error. */
  memoryLimitBytes: number;
  /** Guest stack. Deeper recursion is a guest `InternalError: stack overflow`. */
  maxStackBytes: number;
  /** CPU budget of one task on the live side, in the VM thread's CPU time (wall time where there is no
   *  per-thread clock); past it, or past TASK_WALL_BACKSTOP_BUDGETS times it in wall time, the task is preempted (503). */
  taskBudgetMs: number;
  /** Largest response body a guest may return; larger gives the client a 500. */
  maxResponseBytes: number;
  /** Largest body a streamed response (a ReadableStream body) may send; past it the response is cut off. */
  maxStreamedResponseBytes: number;
  /** Streamed responses in progress at once; one more gets a 503. */
  maxOpenStreams: number;
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
  /** A request not answered within this many guest milliseconds gets 504 (its handler may run on). */
  responseTimeoutMs: number;
}

/**
 * A task is preempted once it has run this many budgets of wall time, whatever its CPU time: a thread
 * starved for good (or a CPU clock that stands still) cannot hold a request forever.
 */
export const TASK_WALL_BACKSTOP_BUDGETS = 10;

export const DEFAULT_LIMITS: Readonly<VmLimits> = Object.freeze({
  memoryLimitBytes: 256 * 1024 * 1024,
  maxStackBytes: 512 * 1024,
  taskBudgetMs: 1000,
  maxResponseBytes: 8 * 1024 * 1024,
  maxStreamedResponseBytes: 64 * 1024 * 1024,
  maxOpenStreams: 256,
  maxConsoleLineBytes: 8 * 1024,
  maxConsoleLinesPerTask: 1000,
  maxTimers: 10_000,
  maxPendingFetches: 1_000,
  idempotencyMaxKeys: 10_000,
  idempotencyTtlMs: 24 * 60 * 60 * 1000,
  responseTimeoutMs: 30_000,
});

/**
 * The engine's C stack: the pinned build (ENGINE_WASM_SHA256) keeps a fixed 5 MiB emscripten stack in
 * linear memory, just above its static data (the wasm's __stack_pointer starts at 5 MiB + 88 KiB).
 * QuickJS's stack check only guards JS frames, so the guest's limit must leave room below it for the
 * C code that runs under the deepest JS frame (host calls, libc, the interrupt handler). Measured:
 * at 5120 KiB naive recursion is still a clean stack overflow, a few KiB more and it runs off the
 * stack into static data ("memory access out of bounds", the VM dies); past ~5200 KiB the limit
 * wraps below address 0 and every call overflows, so the VM cannot even boot.
 */
export const ENGINE_STACK_BYTES = 5 * 1024 * 1024;
/** Room kept below the guest's deepest frame for the engine's own C frames. */
const ENGINE_STACK_HEADROOM_BYTES = 1024 * 1024;
/**
 * The bottom of the C stack holds the write-tracking map (wasm-dirty.ts TRACK_MAP_ADDRESS: 92 KiB to
 * 604 KiB): no frame may reach it. Reserved with the static data below it, rounded up.
 */
const TRACKING_MAP_RESERVED_BYTES = 640 * 1024;
/** Largest guest stack (`--max-stack-kb`) the engine can honour: 3456 KiB. */
export const MAX_STACK_BYTES_LIMIT = ENGINE_STACK_BYTES - ENGINE_STACK_HEADROOM_BYTES - TRACKING_MAP_RESERVED_BYTES;
export const MAX_STACK_KB_LIMIT = MAX_STACK_BYTES_LIMIT / 1024;

/** Why --max-stack-kb is bounded (shared by the CLI's flag check and assertLimits). */
export const MAX_STACK_WHY = `the engine's own C stack is ${ENGINE_STACK_BYTES / 1024 / 1024} MiB (fixed in the pinned QuickJS build) and ${ENGINE_STACK_HEADROOM_BYTES / 1024 / 1024} MiB of it stays reserved for the engine below the guest's deepest frame, ${TRACKING_MAP_RESERVED_BYTES / 1024} KiB for static data and the write-tracking map`;

export class LimitError extends Error {
  override name = 'LimitError';
}

/** Checks limits that come from elsewhere than the CLI (programmatic use, a trace header). */
export function assertLimits(limits: VmLimits): void {
  const stack = limits.maxStackBytes;
  if (!Number.isSafeInteger(stack) || stack <= 0) throw new LimitError(`maxStackBytes must be a positive integer, got ${stack}`);
  if (stack > MAX_STACK_BYTES_LIMIT) {
    throw new LimitError(`--max-stack-kb must be at most ${MAX_STACK_KB_LIMIT}: ${MAX_STACK_WHY} (got maxStackBytes ${stack}, ${stack / 1024} KiB)`);
  }
}

/**
 * Host stack per byte of guest stack. QuickJS checks the guest's limit against the engine's C stack
 * (in linear memory), but the wasm frames themselves live on the worker thread's native stack, and
 * some native recursions (JSON.stringify of nested data) use far more of it per level than of the C
 * stack: with 4x, `JSON.stringify` of 20,000 nested arrays overflowed the thread (a host crash, the
 * node exits) before the guest's 512 KiB limit. Measured at 512 KiB: 8 MiB (16x) turns stringify,
 * parse and flat at any depth into a guest `stack overflow`; 32x leaves room for frame sizes that
 * differ between V8's tiers.
 */
const WORKER_STACK_PER_GUEST_STACK = 32;

/** Host thread stack for the VM worker: far enough above maxStackBytes that the guest overflows first. */
export function workerStackSizeMb(limits: VmLimits): number {
  return Math.max(16, Math.ceil((limits.maxStackBytes * WORKER_STACK_PER_GUEST_STACK) / (1024 * 1024)));
}

// Time as the channel shells (and the nodes) are given it, never read from the process directly:
// production passes the real clock and Node's timers (hypervisor/node/env.ts realEnv), the simulator
// virtual ones. The pure sessions take plain numbers instead.

export interface Clock {
  /** Monotonic milliseconds (never goes back): the only time the role machine and sessions see. */
  monoMs(): number;
  /** Wall-clock milliseconds since the epoch (what the guest's Date sees, through the input port). */
  wallMs(): number;
}

/** A timer handle; cancel() is idempotent. */
export interface TimerHandle {
  cancel(): void;
}

export interface Timers {
  /** Calls `fn` once after `delayMs`. `background`: does not keep the process alive (Node's unref). */
  after(delayMs: number, fn: () => void, background?: boolean): TimerHandle;
  /** Calls `fn` every `periodMs` until cancelled. */
  every(periodMs: number, fn: () => void, background?: boolean): TimerHandle;
  /** Calls `fn` once, after the work of this turn (Node's setImmediate: sends coalesce, nothing waits a timer's ms). */
  soon(fn: () => void): void;
  /**
   * Calls `fn` once the code running now has returned, before the process turns to other work (a
   * microtask). The simulator runs it before its next event, as the event loop does.
   */
  afterCurrentJob(fn: () => void): void;
}

export const realClock: Clock = {
  monoMs: () => performance.now(),
  wallMs: () => Date.now(),
};

export const realTimers: Timers = {
  after(delayMs, fn, background = false) {
    const handle = setTimeout(fn, delayMs);
    if (background) handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
  every(periodMs, fn, background = false) {
    const handle = setInterval(fn, periodMs);
    if (background) handle.unref();
    return { cancel: () => clearInterval(handle) };
  },
  soon(fn) {
    setImmediate(fn);
  },
  afterCurrentJob(fn) {
    queueMicrotask(fn);
  },
};

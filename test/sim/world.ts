// The simulator's world: one virtual clock, one seeded PRNG, one queue of events, in one process
// (FoundationDB's simulation, TigerBeetle's VOPR). Nothing here reads real time or OS randomness, so
// a seed replays the same run, event for event; the event log's hash proves it.
//
// Events belong to a node (or to nobody: clients, the network): a crashed node's events vanish, a
// paused node's wait until it wakes (then run in their original order, as a SIGCONT'd process finds
// its expired timers and queued packets).

import { createHash } from 'node:crypto';
import { mulberry32 } from '../../cli/seeded-random.js';

export interface Owner {
  readonly id: string;
  crashed: boolean;
  /** Virtual ms until which the node is paused (SIGSTOP); its events wait until then. */
  pausedUntilMs: number;
}

interface Event {
  atMs: number;
  order: number;
  owner: Owner | null;
  fn: () => void;
  cancelled: boolean;
}

/** A binary min-heap on (atMs, order). */
class EventQueue {
  private readonly heap: Event[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(e: Event): void {
    const h = this.heap;
    h.push(e);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): Event | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Event, b: Event): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order);
}

export class World {
  nowMs = 0;
  private order = 0;
  private readonly queue = new EventQueue();
  private readonly random: () => number;
  private readonly hash = createHash('sha256');
  /** Events run so far (a measure of the work done). */
  steps = 0;
  /** The last lines of the event log, printed with a failure. */
  readonly recent: string[] = [];
  verbose = false;
  /** Work that completes on real time (the engine's WASM instantiation): waited for before the next event. */
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(readonly seed: number) {
    this.random = mulberry32(seed);
  }

  /** A float in [0, 1) from the seeded sequence. */
  rand(): number {
    return this.random();
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = Math.floor(this.random() * 256);
    return out;
  }

  /** Runs `fn` at virtual time now + delayMs, as `owner` (null: the world itself). */
  at(delayMs: number, owner: Owner | null, fn: () => void): { cancel(): void } {
    const e: Event = { atMs: this.nowMs + Math.max(0, delayMs), order: this.order++, owner, fn, cancelled: false };
    this.queue.push(e);
    return { cancel: () => void (e.cancelled = true) };
  }

  /** Real asynchronous work started by an event: the next event waits until it (and what it caused) is done. */
  track<T>(promise: Promise<T>): Promise<T> {
    const settled = promise.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return promise;
  }

  /** Appends a line to the event log (hashed: the same seed must give the same lines). */
  note(line: string): void {
    const text = `${this.nowMs.toFixed(3)} ${line}`;
    this.hash.update(text).update('\n');
    this.recent.push(text);
    if (this.recent.length > 400) this.recent.splice(0, 200);
    if (this.verbose) console.log(text);
  }

  digest(): string {
    return this.hash.copy().digest('hex');
  }

  /**
   * Runs events until virtual time `untilMs` (or the queue empties). After each event the promise
   * jobs it started run to completion before the next event (a setImmediate turn: every microtask of
   * the sim is done by then, and nothing else runs in this process meanwhile).
   */
  async runUntil(untilMs: number, check: () => void): Promise<void> {
    for (;;) {
      const e = this.queue.pop();
      if (!e) break;
      if (e.atMs > untilMs) {
        this.queue.push(e);
        break;
      }
      if (e.cancelled) continue;
      if (e.owner) {
        if (e.owner.crashed) continue;
        if (e.owner.pausedUntilMs > e.atMs) {
          // Deferred until the node wakes, keeping its place among the node's other events.
          e.atMs = e.owner.pausedUntilMs;
          this.queue.push(e);
          continue;
        }
      }
      this.nowMs = Math.max(this.nowMs, e.atMs);
      this.steps++;
      e.fn();
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.inFlight.size > 0) {
        await Promise.all([...this.inFlight]);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      check();
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }
}

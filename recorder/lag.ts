// How far the backup trails the primary: entries, bytes and the age of the oldest unacknowledged
// entry; and how long acknowledged batches waited for their ack. Tracked per appended batch (not per
// entry), so the hot path adds one small record.

import { Fifo } from './fifo.js';

export interface Lag {
  entries: number;
  bytes: number;
  ms: number;
}

/** Acknowledged batches that `holds()` summarises: the most recent ones. */
export const HOLD_SAMPLES = 1024;

/** How long recent batches waited from their append to the backup's ack, in ms. */
export interface Holds {
  batches: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export class LagTracker {
  private readonly batches = new Fifo<{ lastSeq: number; bytesThrough: number; atMs: number }>();
  private bytesTotal = 0;
  private bytesAcked = 0;
  private lastSeq = 0;
  private acked = 0;
  /** Ring of the last HOLD_SAMPLES hold times; holdsRecorded counts every one ever recorded. */
  private readonly holdMs = new Float64Array(HOLD_SAMPLES);
  private holdsRecorded = 0;

  appended(lastSeq: number, bytes: number, nowMs: number): void {
    this.bytesTotal += bytes;
    this.lastSeq = lastSeq;
    this.batches.push({ lastSeq, bytesThrough: this.bytesTotal, atMs: nowMs });
  }

  /** Log bytes appended over this node's life (wire bytes: what the channel carries). */
  get appendedBytes(): number {
    return this.bytesTotal;
  }

  acknowledged(seq: number, nowMs: number): void {
    if (seq <= this.acked) return;
    this.acked = seq;
    for (let oldest = this.batches.peek(); oldest && oldest.lastSeq <= seq; oldest = this.batches.peek()) {
      this.bytesAcked = oldest.bytesThrough;
      this.holdMs[this.holdsRecorded++ % HOLD_SAMPLES] = Math.max(0, nowMs - oldest.atMs);
      this.batches.shift();
    }
  }

  /**
   * Append to ack, over the last HOLD_SAMPLES acknowledged batches: what the Output Rule added to
   * each output of those batches (a batch's outputs are released when its ack arrives).
   */
  holds(): Holds {
    const n = Math.min(this.holdsRecorded, HOLD_SAMPLES);
    if (n === 0) return { batches: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 };
    const sorted = this.holdMs.slice(0, n).sort();
    const at = (q: number) => round2(sorted[Math.min(n - 1, Math.floor(q * n))]!);
    return { batches: n, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: round2(sorted[n - 1]!) };
  }

  /** A backup just attached: what it must catch up on is owed from now, not from when it was appended. */
  rebase(nowMs: number): void {
    this.batches.forEach((batch) => (batch.atMs = nowMs));
  }

  /** Forget everything outstanding (the backup is gone; nothing is owed to it any more). */
  reset(): void {
    this.batches.clear();
    this.bytesAcked = this.bytesTotal;
    this.acked = this.lastSeq;
  }

  now(nowMs: number): Lag {
    const oldest = this.batches.peek();
    return {
      entries: this.lastSeq - this.acked,
      bytes: this.bytesTotal - this.bytesAcked,
      ms: oldest ? Math.max(0, nowMs - oldest.atMs) : 0,
    };
  }
}

function round2(ms: number): number {
  return Math.round(ms * 100) / 100;
}

// How far the backup trails the primary: entries, bytes and the age of the oldest unacknowledged
// entry. Tracked per appended batch (not per entry), so the hot path adds one small record.

import { Fifo } from './fifo.js';

export interface Lag {
  entries: number;
  bytes: number;
  ms: number;
}

export class LagTracker {
  private readonly batches = new Fifo<{ lastSeq: number; bytesThrough: number; atMs: number }>();
  private bytesTotal = 0;
  private bytesAcked = 0;
  private lastSeq = 0;
  private acked = 0;

  appended(lastSeq: number, bytes: number, nowMs: number): void {
    this.bytesTotal += bytes;
    this.lastSeq = lastSeq;
    this.batches.push({ lastSeq, bytesThrough: this.bytesTotal, atMs: nowMs });
  }

  /** Log bytes appended over this node's life (wire bytes: what the channel carries). */
  get appendedBytes(): number {
    return this.bytesTotal;
  }

  acknowledged(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = seq;
    for (let oldest = this.batches.peek(); oldest && oldest.lastSeq <= seq; oldest = this.batches.peek()) {
      this.bytesAcked = oldest.bytesThrough;
      this.batches.shift();
    }
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

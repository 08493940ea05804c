// How far the backup trails the primary: entries, bytes and the age of the oldest unacknowledged
// entry. Tracked per appended batch (not per entry), so the hot path adds one small record.

export interface Lag {
  entries: number;
  bytes: number;
  ms: number;
}

export class LagTracker {
  private readonly batches: Array<{ lastSeq: number; bytesThrough: number; atMs: number }> = [];
  private head = 0;
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
    while (this.head < this.batches.length && this.batches[this.head]!.lastSeq <= seq) {
      this.bytesAcked = this.batches[this.head]!.bytesThrough;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.batches.length) {
      this.batches.splice(0, this.head);
      this.head = 0;
    }
  }

  /** A backup just attached: what it must catch up on is owed from now, not from when it was appended. */
  rebase(nowMs: number): void {
    for (let i = this.head; i < this.batches.length; i++) this.batches[i]!.atMs = nowMs;
  }

  /** Forget everything outstanding (the backup is gone; nothing is owed to it any more). */
  reset(): void {
    this.batches.length = 0;
    this.head = 0;
    this.bytesAcked = this.bytesTotal;
    this.acked = this.lastSeq;
  }

  now(nowMs: number): Lag {
    const oldest = this.batches[this.head];
    return {
      entries: this.lastSeq - this.acked,
      bytes: this.bytesTotal - this.bytesAcked,
      ms: oldest ? Math.max(0, nowMs - oldest.atMs) : 0,
    };
  }
}

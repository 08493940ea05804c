// The Output Rule: an output (response, outbound request) produced by a task leaves the node only once
// the backup has acknowledged the seq of that task's last entry. Execution never waits; only outputs do.

export class OutputBuffer {
  private readonly queue: Array<{ seq: number; release: () => void }> = [];
  private head = 0;
  private acked = 0;
  private direct: boolean;
  private halted = false;

  /** `direct`: no backup attached in an epoch this node holds, so outputs flow at once. */
  constructor(direct: boolean) {
    this.direct = direct;
  }

  get ackedSeq(): number {
    return this.acked;
  }

  get held(): number {
    return this.queue.length - this.head;
  }

  /** The seq of the oldest held output, if any. */
  get oldestHeldSeq(): number | null {
    return this.held > 0 ? this.queue[this.head]!.seq : null;
  }

  hold(seq: number, release: () => void): void {
    if (this.halted) return; // a halted node releases nothing, ever
    if (this.direct || seq <= this.acked) {
      release();
      return;
    }
    const tail = this.queue[this.queue.length - 1];
    if (tail && tail.seq > seq) throw new Error(`output buffer: seq ${seq} held after ${tail.seq}`);
    this.queue.push({ seq, release });
  }

  /** The backup acknowledged receipt of every entry up to `seq`. */
  ack(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = seq;
    this.drain(seq);
  }

  /** Go direct (backup lost and the epoch won): release everything held, in order. */
  setDirect(direct: boolean): void {
    this.direct = direct;
    if (direct) this.drain(Number.MAX_SAFE_INTEGER);
  }

  /** The node lost its epoch: drop everything held and never release again. */
  halt(): number {
    const dropped = this.held;
    this.halted = true;
    this.queue.length = 0;
    this.head = 0;
    return dropped;
  }

  private drain(upTo: number): void {
    if (this.halted) return;
    while (this.head < this.queue.length && this.queue[this.head]!.seq <= upTo) {
      const item = this.queue[this.head]!;
      this.head++;
      item.release();
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}

// The Output Rule: an output (response, outbound request) produced by a task leaves the node only once
// the backup has acknowledged the seq of that task's last entry. Execution never waits; only outputs do.
//
// Every single release also asks `mayRelease` (the role machine's lease): a node stopped by SIGSTOP in
// the middle of releasing a burst must not finish the burst when it wakes, after another node may
// have taken over. What the lease holds back stays queued until the machine releases it again.

import { invariant } from '../logging-channel/invariant.js';
import { Fifo } from './fifo.js';

export class OutputBuffer {
  private readonly queue = new Fifo<{ seq: number; release: () => void }>();
  private acked = 0;
  private direct: boolean;
  private halted = false;

  /** `direct`: no backup attached in an epoch this node holds, so outputs flow at once. */
  constructor(
    direct: boolean,
    private readonly mayRelease: () => boolean = () => true,
  ) {
    this.direct = direct;
  }

  get ackedSeq(): number {
    return this.acked;
  }

  get held(): number {
    return this.queue.length;
  }

  hold(seq: number, release: () => void): void {
    if (this.halted) return; // a halted node releases nothing, ever
    const tail = this.queue.peekLast();
    if (tail && tail.seq > seq) throw new Error(`output buffer: seq ${seq} held after ${tail.seq}`);
    // Order is kept: nothing overtakes an output already waiting.
    if (this.held === 0 && (this.direct || seq <= this.acked) && this.mayRelease()) {
      release();
      return;
    }
    this.queue.push({ seq, release });
  }

  /** The backup acknowledged receipt of every entry up to `seq` (and the machine allows release). */
  ack(seq: number): void {
    if (seq > this.acked) this.acked = seq;
    this.drain(this.acked);
  }

  /** Go direct (backup lost and the epoch won) or back to holding for a backup. */
  setDirect(direct: boolean): void {
    this.direct = direct;
    if (direct) this.drain(Number.MAX_SAFE_INTEGER);
  }

  /** Release what the lease held back earlier, if it allows now (called on every tick). */
  retry(): void {
    if (this.held > 0) this.drain(this.direct ? Number.MAX_SAFE_INTEGER : this.acked);
  }

  /** The node lost its epoch: drop everything held and never release again. */
  halt(): number {
    const dropped = this.held;
    this.halted = true;
    this.queue.clear();
    return dropped;
  }

  private drain(upTo: number): void {
    if (this.halted) return;
    for (let next = this.queue.peek(); next && next.seq <= upTo && this.mayRelease(); next = this.queue.peek()) {
      // The Output Rule: held for a backup, nothing leaves past what it acknowledged.
      invariant(this.direct || next.seq <= this.acked, `output of seq ${next.seq} released past the acknowledged seq ${this.acked}`);
      this.queue.shift();
      next.release();
    }
  }
}

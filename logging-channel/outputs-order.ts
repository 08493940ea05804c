// Where an outputs block may stand in a trace. A record describes what one task emitted and is keyed by
// that task's TaskEnd seq: the TaskEnd must already have been read (a record never precedes its task),
// and each TaskEnd is described at most once, in seq order. A block moved before its task, duplicated,
// or naming a seq that is not a TaskEnd would attach outputs to the wrong task: the reader refuses it.
// Records may be missing (a trace at its size cap drops them), so a TaskEnd may go undescribed.

import { Kind, type Entry } from './entry.js';

export class OutputsOrder {
  /** TaskEnd seqs read and not yet described, ascending. Trimmed as records pass them. */
  private undescribed: number[] = [];
  private head = 0;
  private lastDescribedSeq = 0;

  /** A block of entries was read. */
  entries(entries: readonly Entry[]): void {
    for (const entry of entries) if (entry.kind === Kind.TaskEnd) this.undescribed.push(entry.seq);
  }

  /** An outputs block's record seqs, in order: null when they fit, else what is wrong. */
  check(seqs: readonly number[]): string | null {
    for (const seq of seqs) {
      if (seq <= this.lastDescribedSeq) {
        return `outputs record for seq ${seq} comes after the record for seq ${this.lastDescribedSeq} (a duplicated or moved outputs block)`;
      }
      while (this.head < this.undescribed.length && this.undescribed[this.head]! < seq) this.head++;
      if (this.head === this.undescribed.length || this.undescribed[this.head] !== seq) {
        return `outputs record names seq ${seq}, which is not a TaskEnd read before it (an outputs block moved ahead of its tasks, or a wrong seq)`;
      }
      this.head++;
      this.lastDescribedSeq = seq;
    }
    if (this.head > 1024 && this.head * 2 > this.undescribed.length) {
      this.undescribed = this.undescribed.slice(this.head);
      this.head = 0;
    }
    return null;
  }
}

// Where an outputs block may stand in a trace. A record describes what one task emitted and is keyed by
// that task's TaskEnd seq: the TaskEnd must already have been read (a record never precedes its task),
// and each TaskEnd is described at most once, in seq order. A block moved before its task, duplicated,
// or naming a seq that is not a TaskEnd would attach outputs to the wrong task: the reader refuses it.
// Records may be missing (a trace at its size cap drops them), so a TaskEnd may go undescribed.
// A whole record must also hash to its TaskEnd's hash: that catches an edit whose CRC was fixed up.

import { decodeTaskEnd } from './codec.js';
import { type Entry, Kind } from './entry.js';
import { recordTaskHash, type TaskOutputsRecord } from './task-outputs.js';

export class OutputsOrder {
  /** TaskEnds read and not yet described, in seq order, with their hashes (null: undecodable, left to the replay to refuse). */
  private undescribed: Array<{ seq: number; hash: Uint8Array | null }> = [];
  private head = 0;
  private lastDescribedSeq = 0;

  /** A block of entries was read. */
  entries(entries: readonly Entry[]): void {
    for (const entry of entries) {
      if (entry.kind !== Kind.TaskEnd) continue;
      let hash: Uint8Array | null = null;
      try {
        hash = decodeTaskEnd(entry.payload).hash;
      } catch {
        // A malformed TaskEnd is the replay's to report, with its seq.
      }
      this.undescribed.push({ seq: entry.seq, hash });
    }
  }

  /** An outputs block's records, in order: null when they fit, else what is wrong. */
  check(records: readonly TaskOutputsRecord[]): string | null {
    for (const record of records) {
      const seq = record.seq;
      if (seq <= this.lastDescribedSeq) {
        return `outputs record for seq ${seq} comes after the record for seq ${this.lastDescribedSeq} (a duplicated or moved outputs block)`;
      }
      while (this.head < this.undescribed.length && this.undescribed[this.head]!.seq < seq) this.head++;
      const taskEnd = this.undescribed[this.head];
      if (taskEnd === undefined || taskEnd.seq !== seq) {
        return `outputs record names seq ${seq}, which is not a TaskEnd read before it (an outputs block moved ahead of its tasks, or a wrong seq)`;
      }
      this.head++;
      this.lastDescribedSeq = seq;
      const actual = recordTaskHash(record);
      if (actual !== null && taskEnd.hash !== null && Buffer.compare(actual, taskEnd.hash) !== 0) {
        return `outputs record for seq ${seq} does not hash to its TaskEnd's hash (${Buffer.from(actual).toString('hex')} against ${Buffer.from(taskEnd.hash).toString('hex')}): it was altered`;
      }
    }
    if (this.head > 1024 && this.head * 2 > this.undescribed.length) {
      this.undescribed = this.undescribed.slice(this.head);
      this.head = 0;
    }
    return null;
  }
}

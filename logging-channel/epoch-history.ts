// The lineage of a log: the epochs it holds entries of, each with the seq of its first Epoch mark
// (Kafka's leader-epoch cache). A backup that resumes a stream proves with it that it holds a prefix
// of the primary's log, not of another one (a second primary's, or an old primary's entries past what
// the new one took over from): both logs hold the same entries through seq R when the backup's last
// epoch E (first marked at seq S) is in the primary's history with the same S, and the primary's log
// is still in epoch E at seq R. Epochs are won once (the arbiter), so only E's holder wrote entries in
// E, and every log that holds its mark at S holds the same prefix through S; within E the holder's
// log is linear. A log that holds no mark yet (the boot task of a fresh primary, before its first
// mark) proves nothing, and is accepted only where the primary's log holds no mark either.
//
// Pure: entries in, a verdict out. The backup's history is its BackupSession's; the primary's is its
// RetainedLog's (which sees every entry appended).

import { RefusalError, RefuseCode } from './auth.js';
import { decodeEpochMark } from './codec.js';
import { type Entry, Kind } from './entry.js';

export interface EpochStart {
  epoch: number;
  /** Seq of the first Epoch mark of `epoch` in this log. */
  fromSeq: number;
}

export class EpochHistory {
  private readonly starts: EpochStart[];

  constructor(starts: readonly EpochStart[] = []) {
    this.starts = starts.map((s) => ({ ...s }));
    for (let i = 1; i < this.starts.length; i++) {
      const [a, b] = [this.starts[i - 1]!, this.starts[i]!];
      if (!(b.epoch > a.epoch && b.fromSeq > a.fromSeq)) throw new RangeError(`epoch history out of order: epoch ${b.epoch} from seq ${b.fromSeq} after epoch ${a.epoch} from seq ${a.fromSeq}`);
    }
  }

  get list(): readonly EpochStart[] {
    return this.starts;
  }

  /** The last epoch whose mark is at or before `seq`, or null (no mark yet). */
  at(seq: number): EpochStart | null {
    for (let i = this.starts.length - 1; i >= 0; i--) if (this.starts[i]!.fromSeq <= seq) return this.starts[i]!;
    return null;
  }

  /** The history of the prefix through `seq` (what a backup that holds it has seen). */
  through(seq: number): EpochStart[] {
    return this.starts.filter((s) => s.fromSeq <= seq).map((s) => ({ ...s }));
  }

  /** Takes the Epoch marks of appended entries (dense, in order): a new epoch starts at its first mark. */
  observe(entries: readonly Entry[]): void {
    for (const entry of entries) {
      if (entry.kind !== Kind.Epoch) continue;
      const { epoch } = decodeEpochMark(entry.payload);
      const last = this.starts[this.starts.length - 1];
      if (last !== undefined && epoch <= last.epoch) continue; // a re-mark (attach, join) of the epoch in force
      this.starts.push({ epoch, fromSeq: entry.seq });
    }
  }

  /**
   * Why a backup that holds entries through `resumeFromSeq`, its last epoch `claimed`, does not hold a
   * prefix of this log (null: it does). The refusal is final for that backup (4006): its log is
   * another history, and only a fresh join can make it a backup of this one; except when the backup's
   * epoch is newer than any of this node's (4010: this node is the stale one).
   */
  resumeProblem(resumeFromSeq: number, claimed: EpochStart | null): RefusalError | null {
    if (resumeFromSeq === 0) return null;
    const ours = this.at(resumeFromSeq);
    const refuse = (why: string) =>
      new RefusalError(RefuseCode.CannotResume, `cannot resume: lineage mismatch at seq ${resumeFromSeq}: ${why}; the backup's log is another history than this primary's (start it afresh to join)`);
    if (claimed === null) return ours === null ? null : refuse(`the backup holds no epoch mark, this primary's log is in epoch ${ours.epoch} (from seq ${ours.fromSeq}) there`);
    const newest = this.starts[this.starts.length - 1];
    if (newest !== undefined && claimed.epoch > newest.epoch) {
      // The backup followed a newer epoch than any this node has held: this node is stale, not the
      // primary it followed (4010, not final: it dials again, and its silence rules decide a takeover).
      return new RefusalError(
        RefuseCode.Behind,
        `cannot resume: the backup's log is in epoch ${claimed.epoch} (from seq ${claimed.fromSeq}), newer than any epoch of this node (its epochs: ${this.describe()}): this node is behind, a stale node of an older epoch`,
      );
    }
    const same = this.starts.find((s) => s.epoch === claimed.epoch);
    if (same === undefined || same.fromSeq !== claimed.fromSeq) {
      return refuse(
        `the backup's log is in epoch ${claimed.epoch} from seq ${claimed.fromSeq}, ${same ? `this primary's has epoch ${claimed.epoch} from seq ${same.fromSeq}` : `this primary's has no epoch ${claimed.epoch}${this.starts.length > 0 ? ` (its epochs: ${this.describe()})` : ''}`}`,
      );
    }
    if (ours === null || ours.epoch !== claimed.epoch) {
      return refuse(
        `the backup holds entries of epoch ${claimed.epoch} through seq ${resumeFromSeq}, but this primary's log is in epoch ${ours?.epoch ?? 'none'} there (its epochs: ${this.describe()})`,
      );
    }
    return null;
  }

  private describe(): string {
    return this.starts.map((s) => `${s.epoch} from seq ${s.fromSeq}`).join(', ');
  }
}

// The primary's in-memory copy of its log, kept for (re)sending to the backup.
//
// Entries stay here from `append` until the node trims them (normally once the backup has
// acknowledged them), so a backup that reconnects can resume from any seq still retained. The copy
// is bounded (`maxBytes`, flag --max-log-buffer-bytes): a backup that stops acknowledging must not
// grow the primary's memory without limit (DESIGN rule 5), so `append` past the bound throws and the
// node decides what to do (throttle, stall, or drop the backup and trim).
//
// Entries are stored by reference (the payload bytes are not copied) in an array with a moving head:
// append is amortised O(1) and `from(seq)` finds its start by arithmetic, since seqs are dense.

import { varuintSize } from './bytes.js';
import { type Entry, Kind } from './entry.js';
import { EpochHistory } from './epoch-history.js';

/** The retained log would exceed its byte bound. Nothing of the failed append was retained. */
export class LogBufferFullError extends Error {
  override name = 'LogBufferFullError';
  readonly code = 'LOG_BUFFER_FULL';
  constructor(
    readonly maxBytes: number,
    readonly retainedBytes: number,
    readonly appendBytes: number,
    readonly firstSeq: number,
  ) {
    super(
      `log buffer full: retaining ${retainedBytes} bytes (from seq ${firstSeq}), appending ${appendBytes} more ` +
        `would exceed the ${maxBytes}-byte bound; the backup is not acknowledging fast enough ` +
        `(raise --max-log-buffer-bytes, or drop the backup and trim)`,
    );
  }
}

/**
 * Bytes an entry takes inside an encoded batch: kind (1), posDelta, payload length, payload. The
 * posDelta is measured against the previous entry of the log, which is exact for every entry of a
 * batch except the first (whose delta is 0, one byte), so the sum over a batch is an upper bound.
 */
export function entryWireBytes(entry: Entry, prevPos: number): number {
  const length = entry.payload.byteLength;
  return 1 + varuintSize(entry.pos - prevPos) + varuintSize(length) + length;
}

/** Once at least this many trimmed slots sit before the head, and they are half the array, compact. */
const COMPACT_MIN_SLOTS = 1024;

export class RetainedLog {
  /** entries[head..] are retained; entries[i] has seq firstSeq + (i - head). */
  private entries: Entry[] = [];
  /** Wire bytes of entries[i] (parallel array), so trimming needs no previous entry. */
  private costs: number[] = [];
  private head = 0;
  private first: number;
  private retainedBytes = 0;
  private lastPos: number;

  /**
   * @param maxBytes bound on retained payload + framing bytes (--max-log-buffer-bytes)
   * @param afterSeq the seq before the first entry this log will hold (0 for a fresh VM)
   * @param afterPos the pos of that entry (used only to size the first entry's posDelta)
   * @param history the lineage of the log before afterSeq (a node that went live inherits its backup's)
   */
  constructor(
    readonly maxBytes: number,
    afterSeq = 0,
    afterPos = 0,
    readonly history = new EpochHistory(),
  ) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new RangeError(`RetainedLog: maxBytes (--max-log-buffer-bytes) must be a positive integer, got ${maxBytes}`);
    }
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new RangeError(`RetainedLog: bad start seq ${afterSeq}`);
    this.first = afterSeq + 1;
    this.lastPos = afterPos;
  }

  /** Seq of the oldest retained entry; `lastSeq + 1` when nothing is retained. */
  get firstSeq(): number {
    return this.first;
  }

  /** Seq of the newest entry ever appended (retained or trimmed); 0 before the first append. */
  get lastSeq(): number {
    return this.first + (this.entries.length - this.head) - 1;
  }

  /** Number of entries retained. */
  get count(): number {
    return this.entries.length - this.head;
  }

  /** Retained payload + framing bytes (what `maxBytes` bounds). */
  get bytes(): number {
    return this.retainedBytes;
  }

  /** Append entries whose seqs continue `lastSeq + 1` densely. All or nothing. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const expected = this.lastSeq + 1;
    let pos = this.lastPos;
    let added = 0;
    const costs = new Array<number>(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.seq !== expected + i) {
        throw new RangeError(`RetainedLog.append: seqs must be dense: got seq ${e.seq}, expected ${expected + i}`);
      }
      if (!Number.isSafeInteger(e.pos) || e.pos < pos) {
        throw new RangeError(`RetainedLog.append: pos of seq ${e.seq} is ${e.pos}, before the previous ${pos}`);
      }
      costs[i] = entryWireBytes(e, pos);
      added += costs[i]!;
      pos = e.pos;
    }
    if (this.retainedBytes + added > this.maxBytes) {
      throw new LogBufferFullError(this.maxBytes, this.retainedBytes, added, this.first);
    }
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      this.entries.push(entry);
      this.costs.push(costs[i]!);
      // The lineage outlives trimming: a backup proves its resume point against it.
      if (entry.kind === Kind.Epoch) this.history.observe([entry]);
    }
    this.retainedBytes += added;
    this.lastPos = pos;
  }

  /**
   * Retained entries from `seq` on, as many as fit in `maxBytes` of wire bytes (entryWireBytes), but
   * always at least one when any is available. Empty when `seq === lastSeq + 1`. The entries are
   * the retained objects themselves (not copies).
   */
  from(seq: number, maxBytes: number): Entry[] {
    if (!Number.isSafeInteger(seq) || seq < this.first || seq > this.lastSeq + 1) {
      throw new RangeError(`RetainedLog.from(${seq}): retained seqs are ${this.first}..${this.lastSeq}`);
    }
    const start = this.head + (seq - this.first);
    let end = start;
    let total = 0;
    while (end < this.entries.length) {
      const cost = this.costs[end]!;
      if (end > start && total + cost > maxBytes) break;
      total += cost;
      end++;
    }
    return this.entries.slice(start, end);
  }

  /** Forget entries with seq <= `seq` (they are acknowledged and will not be resent). */
  trimThrough(seq: number): void {
    if (!Number.isSafeInteger(seq) || seq > this.lastSeq) {
      throw new RangeError(`RetainedLog.trimThrough(${seq}): the log ends at seq ${this.lastSeq}`);
    }
    if (seq < this.first) return;
    const drop = seq - this.first + 1;
    const newHead = this.head + drop;
    for (let i = this.head; i < newHead; i++) {
      this.retainedBytes -= this.costs[i]!;
      // Release the entry (and its payload) now rather than at the next compaction.
      (this.entries as Array<Entry | undefined>)[i] = undefined;
    }
    this.head = newHead;
    this.first = seq + 1;
    if (this.head >= COMPACT_MIN_SLOTS && this.head * 2 >= this.entries.length) {
      // Amortised O(1) per trimmed entry: each slot is moved at most once per halving.
      this.entries = this.entries.slice(this.head);
      this.costs = this.costs.slice(this.head);
      this.head = 0;
    } else if (this.head === this.entries.length) {
      this.entries = [];
      this.costs = [];
      this.head = 0;
    }
  }
}

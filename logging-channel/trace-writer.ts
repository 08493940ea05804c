// Writing a trace (format: trace-format.ts): entries buffered and encoded into blocks, one
// positioned write per block, with a size limit and rotation into segments (trace-segments.ts).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { ByteWriter } from './bytes.js';
import { encodeBatchInto, MAX_BATCH_BYTES, MIN_BATCH_BYTES } from './codec.js';
import { type Entry, isKnownKind } from './entry.js';
import {
  beginOutputsBlock,
  type EmittedOutput,
  encodeTaskOutputs,
  encodeTaskOutputsRecord,
  endOutputsBlock,
  OUTPUTS_BLOCK_HEAD_BYTES,
  OUTPUTS_BLOCK_OVERHEAD_BYTES,
  type TaskOutputsRecord,
} from './task-outputs.js';
import { DEFAULT_BLOCK_BYTES, DEFAULT_MAX_TRACE_BYTES, encodeTraceHeader, FRAME_PREFIX_BYTES, TraceFullError, type TraceHeader } from './trace-format.js';
import { traceSegmentPath } from './trace-segments.js';

/** Upper bound of a batch's own framing (magic, restLength, firstSeq, count, posBase, CRC). */
const BATCH_OVERHEAD_MAX_BYTES = 1 + 5 + 8 + 8 + 8 + 4;
/** Upper bound of one entry's framing inside a batch (kind, posDelta, payload length). */
const ENTRY_OVERHEAD_MAX_BYTES = 1 + 8 + 8;
/** The CRC at an outputs block's end. */
const OUTPUTS_CRC_BYTES = OUTPUTS_BLOCK_OVERHEAD_BYTES - OUTPUTS_BLOCK_HEAD_BYTES;
/** A pending-outputs writer grown past this for one flush (big bodies) is replaced after it. */
const MAX_KEPT_OUTPUTS_WRITER_BYTES = 4 * 1024 * 1024;

export interface TraceWriterOptions {
  /**
   * Refuse to grow the file past this many bytes (TraceFullError). Default DEFAULT_MAX_TRACE_BYTES.
   * With `segmentBytes`, the bound on all segments together (default: none).
   */
  maxBytes?: number;
  /**
   * Rotate: rather than grow a file past this many bytes, close it and continue in the next segment,
   * `<file>.1`, `<file>.2`, ... Each segment is a valid trace (the same header, plus its segment
   * number and first seq) and the segments read as one trace (openTraceSegments). A segment always
   * holds at least one block, so it can exceed this bound by up to one block when a block is larger.
   */
  segmentBytes?: number;
  /** append() writes a block by itself once this many entry bytes are buffered. Default DEFAULT_BLOCK_BYTES. */
  blockBytes?: number;
  /** Upper bound on one block's batch (MAX_BATCH_BYTES by default; readers enforce the same bound). */
  maxBatchBytes?: number;
  /** Seq of the first entry (1 for a recording from boot). */
  firstSeq?: number;
  /** Replace an existing file. Off by default so a recording is never clobbered by accident. */
  overwrite?: boolean;
}

/**
 * Appends entries to a trace file. Entries are buffered by reference (the caller must not mutate a
 * payload after appending it) and encoded once, straight into a reused buffer, when a block is
 * written. All I/O is synchronous on one fd, so a block is one positioned write.
 */
export class TraceWriter {
  private fd: number | null;
  private readonly writer = new ByteWriter(64 * 1024);
  private pending: Entry[] = [];
  /** Upper bound of the encoded size of `pending` (entries + their framing), in bytes. */
  private pendingBytes = 0;
  /**
   * Task outputs records waiting for the next flush (written after the entries), encoded as they
   * come, after the frame prefix and head of the outputs block they will most likely go out as.
   */
  private outputsPending = new ByteWriter(16 * 1024);
  /** Where that block's record count goes in `outputsPending`. */
  private outputsCountAt = 0;
  /** End offset in `outputsPending` of each record there (empty: none pending). */
  private outputsRecordEnds: number[] = [];
  private lastOutputsSeq = 0;
  /** Blocks of pending records that did not fit one block together, copied out one block at a time. */
  private outputsWriter = new ByteWriter(16 * 1024);
  /** Task outputs records not written: they did not fit in a block, or the trace was at maxBytes. */
  outputsDropped = 0;
  /** Task outputs records written. */
  outputsWritten = 0;
  private seqNext: number;
  private lastPos = 0;
  /** Bytes in the current segment's file. */
  private written: number;
  /** Bytes in the earlier (closed) segments. */
  private writtenBefore = 0;
  private blockCount = 0;
  private blocksInSegment = 0;
  private segmentIndex = 0;
  /**
   * The flush's last entries block, encoded with its room ensured, when task outputs follow it: the
   * two go to the file in one write (one syscall per flush instead of two).
   */
  private held: Uint8Array | null = null;
  /** Set when a write failed: the file was cut back to its last whole block and is closed for writing. */
  private broken: Error | null = null;

  private constructor(
    readonly path: string,
    fd: number,
    headerBytes: number,
    readonly maxBytes: number,
    readonly blockBytes: number,
    readonly maxBatchBytes: number,
    firstSeq: number,
    private readonly header: TraceHeader,
    readonly segmentBytes: number | null,
    private readonly overwrite: boolean,
  ) {
    this.fd = fd;
    this.written = headerBytes;
    this.seqNext = firstSeq;
  }

  static async open(filePath: string, header: TraceHeader, opts: TraceWriterOptions = {}): Promise<TraceWriter> {
    const segmentBytes = opts.segmentBytes ?? null;
    if (segmentBytes !== null && !(segmentBytes > 0)) throw new RangeError(`TraceWriter: segmentBytes must be positive, got ${segmentBytes}`);
    const maxBytes = opts.maxBytes ?? (segmentBytes !== null ? Number.POSITIVE_INFINITY : DEFAULT_MAX_TRACE_BYTES);
    const blockBytes = opts.blockBytes ?? DEFAULT_BLOCK_BYTES;
    const maxBatchBytes = opts.maxBatchBytes ?? MAX_BATCH_BYTES;
    const firstSeq = opts.firstSeq ?? 1;
    if (!(maxBytes > 0)) throw new RangeError(`TraceWriter: maxBytes must be positive, got ${maxBytes}`);
    if (!Number.isSafeInteger(maxBatchBytes) || maxBatchBytes < MIN_BATCH_BYTES + BATCH_OVERHEAD_MAX_BYTES) {
      throw new RangeError(`TraceWriter: maxBatchBytes ${maxBatchBytes} is too small`);
    }
    if (!(blockBytes > 0)) throw new RangeError(`TraceWriter: blockBytes must be positive, got ${blockBytes}`);
    if (!Number.isSafeInteger(firstSeq) || firstSeq < 1) throw new RangeError(`TraceWriter: firstSeq must be >= 1, got ${firstSeq}`);
    const headerBytes = encodeTraceHeader(header);
    if (headerBytes.byteLength > maxBytes) throw new TraceFullError(filePath, maxBytes, 0, headerBytes.byteLength);
    if (segmentBytes !== null) {
      // Segments left by an earlier trace of the same name would read as part of this one.
      for (let i = 1; fs.existsSync(traceSegmentPath(filePath, i)); i++) {
        if (opts.overwrite !== true) {
          throw Object.assign(new Error(`${traceSegmentPath(filePath, i)} exists: a segment of an earlier trace named ${filePath} (remove it, or pick another name)`), { code: 'EEXIST' });
        }
        fs.unlinkSync(traceSegmentPath(filePath, i));
      }
    }
    const fd = fs.openSync(filePath, opts.overwrite === true ? 'w' : 'wx');
    try {
      writeFully(fd, headerBytes, 0);
      // The header is what makes the file a trace: make it (and the new name) durable up front.
      fs.fsyncSync(fd);
      syncDirectory(path.dirname(filePath));
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    return new TraceWriter(filePath, fd, headerBytes.byteLength, maxBytes, blockBytes, maxBatchBytes, firstSeq, header, segmentBytes, opts.overwrite === true);
  }

  /** Seq the next appended entry must have. */
  get nextSeq(): number {
    return this.seqNext;
  }

  /** Bytes in the file (header + whole blocks), over all segments. Buffered entries are not counted. */
  get bytesWritten(): number {
    return this.writtenBefore + this.written;
  }

  /** Segments written so far (1 until the first rotation). */
  get segments(): number {
    return this.segmentIndex + 1;
  }

  /** The file being written now: `path`, or `path.N` after N rotations. */
  get currentPath(): string {
    return traceSegmentPath(this.path, this.segmentIndex);
  }

  get blocksWritten(): number {
    return this.blockCount;
  }

  get pendingEntries(): number {
    return this.pending.length;
  }

  /** Whether this trace keeps task outputs (header.outputs, format 2). */
  get keepsOutputs(): boolean {
    return this.header.outputs !== undefined;
  }

  /** The per-task cap on kept outputs, or null when the trace keeps none. */
  get outputsMaxBytesPerTask(): number | null {
    return this.header.outputs?.maxBytesPerTask ?? null;
  }

  /** Open and not failed. */
  get writable(): boolean {
    return this.fd !== null && this.broken === null;
  }

  /**
   * Buffer what a task emitted (trace-only: no seq, never part of the log), written after the
   * buffered entries at the next flush. `record.seq` is the task's TaskEnd seq: already appended, and
   * after the previous record's. Record it with captureTaskOutputs (which applies the per-task cap).
   */
  appendOutputs(record: TaskOutputsRecord): void {
    const w = this.beginOutputs(record.seq);
    const before = w.length;
    try {
      encodeTaskOutputsRecord(w, record);
    } catch (err) {
      w.truncate(before); // no partial record
      throw err;
    }
    this.endOutputs(record.seq);
  }

  /**
   * Buffer what the task whose TaskEnd is `seq` emitted, cut to this trace's per-task cap: what
   * appendOutputs(captureTaskOutputs(...)) does, encoded straight from the task's outputs.
   */
  appendTaskOutputs(seq: number, outputs: readonly EmittedOutput[], consoleLines: ReadonlyArray<{ level: string; text: string }>): void {
    const w = this.beginOutputs(seq);
    const before = w.length;
    try {
      encodeTaskOutputs(w, seq, outputs, consoleLines, this.outputsMaxBytesPerTask!);
    } catch (err) {
      w.truncate(before); // no partial record
      throw err;
    }
    this.endOutputs(seq);
  }

  /** Checks `seq` and returns the writer to encode its record into (opening a block if none is pending). */
  private beginOutputs(seq: number): ByteWriter {
    this.assertWritable();
    if (!this.keepsOutputs) throw new Error(`${this.path}: appendOutputs: this trace keeps no outputs (its header has no outputs field)`);
    if (!Number.isSafeInteger(seq) || seq >= this.seqNext || seq <= this.lastOutputsSeq) {
      throw new RangeError(`${this.path}: appendOutputs: seq ${seq} is not an appended TaskEnd after seq ${this.lastOutputsSeq}`);
    }
    const w = this.outputsPending;
    if (this.outputsRecordEnds.length === 0) {
      w.reset();
      w.skip(FRAME_PREFIX_BYTES);
      this.outputsCountAt = beginOutputsBlock(w);
    }
    return w;
  }

  /** Keeps the record just encoded for `seq`. */
  private endOutputs(seq: number): void {
    this.lastOutputsSeq = seq;
    this.outputsRecordEnds.push(this.outputsPending.length);
    // No flush from here: the records go out with the next flush of entries (once per tick with
    // traceSink), so keeping outputs adds no write and no failure mode of its own to a task.
  }

  /**
   * Buffer entries. They must continue the seq (dense) and never move pos backwards; a violation
   * throws before any of them is accepted. Writes a block by itself once `blockBytes` are buffered.
   */
  append(entries: readonly Entry[]): void {
    this.assertWritable();
    const limit = this.maxBatchBytes - BATCH_OVERHEAD_MAX_BYTES - ENTRY_OVERHEAD_MAX_BYTES;
    let seq = this.seqNext;
    let pos = this.lastPos;
    for (const entry of entries) {
      if (entry.seq !== seq) {
        throw new RangeError(`${this.path}: append: seq ${entry.seq} does not continue the trace (expected ${seq})`);
      }
      if (!Number.isSafeInteger(entry.pos) || entry.pos < pos) {
        throw new RangeError(`${this.path}: append: seq ${seq} has pos ${entry.pos}, before the previous pos ${pos}`);
      }
      if (!isKnownKind(entry.kind)) throw new RangeError(`${this.path}: append: seq ${seq} has unknown kind ${String(entry.kind)}`);
      if (!(entry.payload instanceof Uint8Array)) throw new TypeError(`${this.path}: append: seq ${seq} payload is not a Uint8Array`);
      if (entry.payload.byteLength > limit) {
        throw new RangeError(`${this.path}: append: seq ${seq} payload of ${entry.payload.byteLength} bytes cannot fit in one block (max ${limit})`);
      }
      seq++;
      pos = entry.pos;
    }
    for (const entry of entries) {
      this.pending.push(entry);
      this.pendingBytes += entry.payload.byteLength + ENTRY_OVERHEAD_MAX_BYTES;
    }
    this.seqNext = seq;
    this.lastPos = pos;
    if (this.pendingBytes >= this.blockBytes) this.flush();
  }

  /**
   * Write the buffered entries: one block, or several if they exceed the batch limit. On
   * TraceFullError the entries not written stay buffered and the file holds only whole blocks.
   */
  flush(): void {
    this.assertWritable();
    while (this.pending.length > 0) {
      // Take the longest prefix whose worst-case encoding fits one batch.
      let count = 0;
      let bytes = BATCH_OVERHEAD_MAX_BYTES;
      while (count < this.pending.length) {
        const next = this.pending[count]!.payload.byteLength + ENTRY_OVERHEAD_MAX_BYTES;
        if (count > 0 && bytes + next > this.maxBatchBytes) break;
        bytes += next;
        count++;
      }
      const block = count === this.pending.length ? this.pending : this.pending.slice(0, count);
      this.writeBlock(block, count === this.pending.length && this.outputsRecordEnds.length > 0);
      this.pending = count === this.pending.length ? [] : this.pending.slice(count);
      this.pendingBytes -= bytes - BATCH_OVERHEAD_MAX_BYTES;
    }
    this.pendingBytes = 0;
    if (this.outputsRecordEnds.length > 0) this.writeOutputs();
  }

  /**
   * Write the buffered task outputs as outputs blocks. They are optional: a block that would take
   * the trace past maxBytes is dropped (counted in outputsDropped), never an error.
   */
  private writeOutputs(): void {
    const w = this.outputsPending;
    const ends = this.outputsRecordEnds;
    this.outputsRecordEnds = [];
    const blockAt = FRAME_PREFIX_BYTES;
    try {
      if (w.length - blockAt + OUTPUTS_CRC_BYTES <= this.maxBatchBytes) {
        // The common case: the records fit one block, framed where they were encoded.
        endOutputsBlock(w, blockAt, this.outputsCountAt, ends.length);
        w.setU32At(0, w.length - blockAt);
        this.writeOutputsFrame(w.view(0, w.length), ends.length);
      } else {
        this.writeOutputsSplit(w, ends);
      }
    } finally {
      w.reset();
      if (w.capacity > MAX_KEPT_OUTPUTS_WRITER_BYTES) this.outputsPending = new ByteWriter(16 * 1024);
      // The entries block goes out whatever became of the outputs, unless a write already failed.
      if (this.broken === null) this.writeHeld();
      else this.held = null;
    }
  }

  /** Pending records over several blocks, each as large as fits; a record that fits none alone is dropped. */
  private writeOutputsSplit(pending: ByteWriter, ends: readonly number[]): void {
    const b = this.outputsWriter;
    let recordAt = FRAME_PREFIX_BYTES + OUTPUTS_BLOCK_HEAD_BYTES;
    let i = 0;
    try {
      while (i < ends.length) {
        b.reset();
        b.skip(FRAME_PREFIX_BYTES);
        const countAt = beginOutputsBlock(b);
        let count = 0;
        for (; i < ends.length; i++) {
          const record = pending.view(recordAt, ends[i]!);
          if (b.length - FRAME_PREFIX_BYTES + record.byteLength + OUTPUTS_CRC_BYTES > this.maxBatchBytes) {
            if (count > 0) break;
            this.outputsDropped++;
          } else {
            b.raw(record, 'outputs record');
            count++;
          }
          recordAt = ends[i]!;
        }
        if (count === 0) break;
        endOutputsBlock(b, FRAME_PREFIX_BYTES, countAt, count);
        b.setU32At(0, b.length - FRAME_PREFIX_BYTES);
        this.writeOutputsFrame(b.view(0, b.length), count);
      }
    } finally {
      b.reset();
      if (b.capacity > MAX_KEPT_OUTPUTS_WRITER_BYTES) this.outputsWriter = new ByteWriter(16 * 1024);
    }
  }

  /**
   * One outputs block (`frame`, with its length prefix set) after the entries: with the held entries
   * block in one write when it can be. Dropped (counted) if it would take the trace past maxBytes.
   */
  private writeOutputsFrame(frame: Uint8Array, count: number): void {
    const held = this.held;
    const heldBytes = held === null ? 0 : held.byteLength;
    const total = (this.segmentBytes === null ? this.written : this.writtenBefore + this.written) + heldBytes;
    if (total + frame.byteLength > this.maxBytes) {
      this.outputsDropped += count;
      return;
    }
    const rotates = this.segmentBytes !== null && this.blocksInSegment + (held === null ? 0 : 1) > 0 && this.written + heldBytes + frame.byteLength > this.segmentBytes;
    if (held !== null && !rotates) {
      this.held = null;
      this.writeFrame(held, frame);
    } else {
      this.writeHeld();
      // Rotating: the next segment starts at the next entry's seq (the entries are all written).
      if (rotates) this.rotate(this.seqNext);
      this.writeFrame(frame);
    }
    this.outputsWritten += count;
  }

  /** Write the held entries block, if any, by itself. */
  private writeHeld(): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    this.writeFrame(held);
  }

  /** `hold`: keep the encoded block in `held` for writeOutputs to write with the outputs after it. */
  private writeBlock(entries: readonly Entry[], hold = false): void {
    const w = this.writer;
    w.reset();
    // Encode with room for the u32 frame length right before the batch, so the frame is one
    // contiguous range of the writer's buffer and goes to the file without another copy.
    const { start, end } = encodeBatchInto(w, entries, { maxBytes: this.maxBatchBytes, headroomBytes: FRAME_PREFIX_BYTES });
    const frameAt = start - FRAME_PREFIX_BYTES;
    w.setU32At(frameAt, end - start);
    const frame = w.view(frameAt, end);
    this.ensureRoom(frame.byteLength, entries[0]!.seq);
    if (hold) this.held = frame;
    else this.writeFrame(frame);
    w.reset();
  }

  /**
   * One or two whole blocks in one positioned write (writev for two). On failure the file is cut back
   * to its last whole block and further writes are refused: we cannot tell what the disk holds if even
   * that fails, and if the cut fails too the reader sees a torn tail, which is what torn tails are for.
   */
  private writeFrame(first: Uint8Array, second?: Uint8Array): void {
    const fd = this.fd!;
    try {
      if (second) writevFully(fd, first, second, this.written);
      else writeFully(fd, first, this.written);
    } catch (err) {
      this.broken = err instanceof Error ? err : new Error(String(err));
      try {
        fs.ftruncateSync(fd, this.written);
      } catch {
        // a torn tail (above)
      }
      throw err;
    }
    const blocks = second ? 2 : 1;
    this.written += first.byteLength + (second?.byteLength ?? 0);
    this.blockCount += blocks;
    this.blocksInSegment += blocks;
  }

  /**
   * The one place that decides what happens at the size limit: without segments it refuses; with
   * segments it closes this file and continues in the next segment (same header, with the segment's
   * number and first seq = the block's first seq) before the block is written.
   */
  private ensureRoom(frameBytes: number, firstSeq: number): void {
    if (this.segmentBytes === null) {
      if (this.written + frameBytes > this.maxBytes) throw new TraceFullError(this.path, this.maxBytes, this.written, frameBytes);
      return;
    }
    if (this.writtenBefore + this.written + frameBytes > this.maxBytes) {
      throw new TraceFullError(this.path, this.maxBytes, this.writtenBefore + this.written, frameBytes);
    }
    if (this.blocksInSegment > 0 && this.written + frameBytes > this.segmentBytes) this.rotate(firstSeq);
  }

  private rotate(firstSeq: number): void {
    const index = this.segmentIndex + 1;
    const next = traceSegmentPath(this.path, index);
    const headerBytes = encodeTraceHeader({ ...this.header, segment: { index, firstSeq } });
    const old = this.fd!;
    this.fd = null;
    try {
      fs.fsyncSync(old);
    } finally {
      fs.closeSync(old);
    }
    let fd: number;
    try {
      fd = fs.openSync(next, this.overwrite ? 'w' : 'wx');
    } catch (err) {
      this.broken = err instanceof Error ? err : new Error(String(err));
      throw err;
    }
    try {
      writeFully(fd, headerBytes, 0);
      fs.fsyncSync(fd);
      syncDirectory(path.dirname(next));
    } catch (err) {
      fs.closeSync(fd);
      this.broken = err instanceof Error ? err : new Error(String(err));
      throw err;
    }
    this.fd = fd;
    this.writtenBefore += this.written;
    this.written = headerBytes.byteLength;
    this.segmentIndex = index;
    this.blocksInSegment = 0;
  }

  /** Make everything written so far durable. Buffered entries are not written (call flush first). */
  sync(): void {
    this.assertWritable();
    fs.fsyncSync(this.fd!);
  }

  /** Flush, fsync and close. The fd is closed even if flushing fails. Idempotent. */
  close(): void {
    if (this.fd === null) return;
    try {
      if (this.broken === null) {
        this.flush();
        // flush() may have rotated: sync whichever segment is open now.
        if (this.fd !== null) fs.fsyncSync(this.fd);
      }
    } finally {
      const fd = this.fd;
      this.fd = null;
      if (fd !== null) fs.closeSync(fd);
    }
  }

  private assertWritable(): void {
    if (this.broken !== null) throw new Error(`${this.path}: trace writer failed earlier: ${this.broken.message}`);
    if (this.fd === null) throw new Error(`${this.path}: trace writer is closed`);
  }
}

/**
 * For a live loop's onTask: keeps each task's outputs and console lines in `trace` (capped per task
 * by header.outputs.maxBytesPerTask), or null when the trace keeps none. A writer that is closed or
 * failed is left alone (the entries' own append reports a failed trace).
 */
export function traceOutputsHook(trace: TraceWriter): ((seq: number, result: { outputs: readonly EmittedOutput[]; console: ReadonlyArray<{ level: string; text: string }> }) => void) | null {
  const max = trace.outputsMaxBytesPerTask;
  if (max === null) return null;
  return (seq, result) => {
    if (!trace.writable) return;
    trace.appendTaskOutputs(seq, result.outputs, result.console);
  };
}

/** `first` then `second` at `position`: one writev, finished by plain writes if the kernel took less. */
function writevFully(fd: number, first: Uint8Array, second: Uint8Array, position: number): void {
  const done = fs.writevSync(fd, [first, second], position);
  if (done < first.byteLength) {
    writeFully(fd, first.subarray(done), position + done);
    writeFully(fd, second, position + first.byteLength);
  } else if (done < first.byteLength + second.byteLength) {
    writeFully(fd, second.subarray(done - first.byteLength), position + done);
  }
}

function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += fs.writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
  }
}

/** fsync a directory so a newly created file's name survives a crash (best effort: not on Windows). */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some platforms and filesystems cannot fsync a directory; the data itself was synced.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

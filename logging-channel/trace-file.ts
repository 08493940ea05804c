// Trace files: a self-contained recording (header + log) that replays anywhere.
//
// Layout:
//   8 bytes  magic "FTJSTRC1" (the last character is the format version)
//   u32      header length (little-endian)
//            header JSON (UTF-8): TraceHeader
//   u32      CRC-32 of every byte before it (magic, length and JSON)
//   blocks, each: u32 length, then one batch (codec.ts; the batch carries its own CRC-32), or, in
//            format 2, an outputs block (task-outputs.ts: what tasks emitted, trace-only, no seq)
//
// Format 2 ("FTJSTRC2") is format 1 plus outputs blocks, declared by `header.outputs`. This build
// writes format 1 when a trace keeps no outputs (so older builds read it) and reads both.
//
// Blocks are appended as the run goes, one write() per block, so a crash leaves whole blocks plus at
// most one torn block at the end. A reader can always tell the two apart: a torn block either runs
// past the end of the file or fails its checksum, and no valid block follows it. Damage that IS
// followed by valid blocks is corruption, never "just a torn tail", and is always an error.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { ByteWriter, CodecError } from './bytes.js';
import { BATCH_MAGIC, decodeBatch, encodeBatchInto, MAX_BATCH_BYTES, MIN_BATCH_BYTES, readBatchHeader } from './codec.js';
import { type Entry, isKnownKind } from './entry.js';
import { OutputsOrder } from './outputs-order.js';
import { captureTaskOutputs, decodeOutputsBlock, type EmittedOutput, encodeOutputsBlocks, OUTPUTS_MAGIC, type TaskOutputsRecord } from './task-outputs.js';

export type { TaskOutputsRecord } from './task-outputs.js';

/** Magic of a format-1 trace ("FTJSTRC" + the format version digit). */
export const TRACE_MAGIC = 'FTJSTRC1';
/** The newest trace format (2: outputs blocks). */
export const TRACE_FORMAT_VERSION = 2;
/** Formats this build reads and writes. */
export const TRACE_FORMAT_VERSIONS: readonly number[] = [1, 2];
export type TraceFormatVersion = 1 | 2;
/** Upper bound on the header JSON (it holds the guest's sources), in bytes. */
export const MAX_TRACE_HEADER_BYTES = 64 * 1024 * 1024;
/** Default limit on a trace file's size, in bytes. */
export const DEFAULT_MAX_TRACE_BYTES = 1024 * 1024 * 1024;
/** Default amount of buffered entry bytes at which append() writes a block by itself. */
export const DEFAULT_BLOCK_BYTES = 256 * 1024;

const MAGIC_BYTES = Buffer.from(TRACE_MAGIC, 'latin1');
/** The magic of a trace of format `version`. */
function magicFor(version: number): Buffer {
  return Buffer.from(`FTJSTRC${version}`, 'latin1');
}
/** "FTJSTRC" without the version digit: a file with this prefix is a trace of some format. */
const MAGIC_FAMILY_BYTES = 7;
const U32_BYTES = 4;
/** Magic + header length. */
const HEADER_PREFIX_BYTES = MAGIC_BYTES.byteLength + U32_BYTES;
const FRAME_PREFIX_BYTES = U32_BYTES;
/** Upper bound of a batch's own framing (magic, restLength, firstSeq, count, posBase, CRC). */
const BATCH_OVERHEAD_MAX_BYTES = 1 + 5 + 8 + 8 + 8 + 4;
/** Upper bound of one entry's framing inside a batch (kind, posDelta, payload length). */
const ENTRY_OVERHEAD_MAX_BYTES = 1 + 8 + 8;
/** Read-ahead for the block reader: blocks are sliced out of chunks of this size. */
const READ_CHUNK_BYTES = 1024 * 1024;

export interface TraceHeader {
  /** 1, or 2 when the trace also keeps what tasks emitted (`outputs`). */
  formatVersion: TraceFormatVersion;
  engine: { name: string; version: string; wasmSha256: string };
  guest: { entry: string; sources: Array<{ name: string; sha256: string; text: string }>; hash: string };
  /** Config, env and limits the VM was booted with. */
  boot: Record<string, unknown>;
  /** ISO-8601 time the trace was created. */
  createdAt: string;
  /** Id of the node that recorded it. */
  node?: string;
  /**
   * Set on the second and later segments of a rotated trace (`file.1`, `file.2`, ...): the segment's
   * number and the seq of its first entry. The first segment (`file`) has none.
   */
  segment?: { index: number; firstSeq: number };
  /**
   * Format 2: the trace also holds outputs blocks (task-outputs.ts), keeping at most this many bytes
   * of each task's outputs and console lines. A task may still have none (a backup's trace: it emits
   * only once it is live).
   */
  outputs?: { maxBytesPerTask: number };
}

export type TraceErrorCode = 'NOT_A_TRACE' | 'UNSUPPORTED_VERSION' | 'CORRUPT' | 'TRUNCATED';

/** A trace that cannot be read. `offset` is the file byte offset of the header or block at fault. */
export class TraceError extends Error {
  override name = 'TraceError';
  constructor(
    readonly code: TraceErrorCode,
    readonly path: string,
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

/** The trace reached its size limit (`maxBytes`). Nothing partial was written. */
export class TraceFullError extends Error {
  override name = 'TraceFullError';
  readonly code = 'TRACE_FULL';
  constructor(
    readonly path: string,
    readonly limitBytes: number,
    readonly bytesWritten: number,
    readonly blockBytes: number,
  ) {
    super(`${path}: trace size limit reached: a ${blockBytes}-byte block would take the file from ${bytesWritten} ` + `to ${bytesWritten + blockBytes} bytes, above maxBytes ${limitBytes}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Header

/** Why `value` is not a TraceHeader, or null if it is one. formatVersion is checked by the caller. */
function headerProblem(value: unknown): string | null {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const isString = (v: unknown): v is string => typeof v === 'string';
  if (!isObject(value)) return 'header is not a JSON object';
  const { engine, guest, boot, createdAt, node } = value;
  if (!isObject(engine)) return 'header.engine is not an object';
  for (const key of ['name', 'version', 'wasmSha256']) {
    if (!isString(engine[key])) return `header.engine.${key} is not a string`;
  }
  if (!isObject(guest)) return 'header.guest is not an object';
  if (!isString(guest['entry'])) return 'header.guest.entry is not a string';
  if (!isString(guest['hash'])) return 'header.guest.hash is not a string';
  const sources = guest['sources'];
  if (!Array.isArray(sources)) return 'header.guest.sources is not an array';
  for (let i = 0; i < sources.length; i++) {
    const source: unknown = sources[i];
    if (!isObject(source)) return `header.guest.sources[${i}] is not an object`;
    for (const key of ['name', 'sha256', 'text']) {
      if (!isString(source[key])) return `header.guest.sources[${i}].${key} is not a string`;
    }
  }
  if (!isObject(boot)) return 'header.boot is not an object';
  if (!isString(createdAt)) return 'header.createdAt is not a string';
  if (node !== undefined && !isString(node)) return 'header.node is not a string';
  const segment = value['segment'];
  if (segment !== undefined) {
    if (!isObject(segment)) return 'header.segment is not an object';
    if (!Number.isSafeInteger(segment['index']) || (segment['index'] as number) < 1) return 'header.segment.index is not a positive integer';
    if (!Number.isSafeInteger(segment['firstSeq']) || (segment['firstSeq'] as number) < 1) return 'header.segment.firstSeq is not a positive integer';
  }
  const outputs = value['outputs'];
  if (outputs !== undefined) {
    if (value['formatVersion'] === 1) return 'header.outputs needs formatVersion 2';
    if (!isObject(outputs)) return 'header.outputs is not an object';
    if (!Number.isSafeInteger(outputs['maxBytesPerTask']) || (outputs['maxBytesPerTask'] as number) < 1) return 'header.outputs.maxBytesPerTask is not a positive integer';
  }
  return null;
}

/** The header as it sits at the start of the file: magic, length, JSON, CRC. */
export function encodeTraceHeader(header: TraceHeader): Uint8Array {
  const version = (header as { formatVersion: unknown }).formatVersion;
  if (!TRACE_FORMAT_VERSIONS.includes(version as number)) {
    throw new TypeError(`trace header: formatVersion must be one of ${TRACE_FORMAT_VERSIONS.join(', ')}`);
  }
  const problem = headerProblem(header);
  if (problem !== null) throw new TypeError(`trace header: ${problem}`);
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.byteLength > MAX_TRACE_HEADER_BYTES) {
    throw new RangeError(`trace header: ${json.byteLength} bytes of JSON, above MAX_TRACE_HEADER_BYTES ${MAX_TRACE_HEADER_BYTES}`);
  }
  const out = Buffer.alloc(HEADER_PREFIX_BYTES + json.byteLength + U32_BYTES);
  magicFor(version as number).copy(out, 0);
  out.writeUInt32LE(json.byteLength, MAGIC_BYTES.byteLength);
  json.copy(out, HEADER_PREFIX_BYTES);
  const crcAt = HEADER_PREFIX_BYTES + json.byteLength;
  out.writeUInt32LE(crc32(out.subarray(0, crcAt)), crcAt);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

// ---------------------------------------------------------------------------------------------
// Writer

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
  /** Task outputs records waiting for the next flush (written after the entries). */
  private pendingOutputs: TaskOutputsRecord[] = [];
  private lastOutputsSeq = 0;
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
    this.assertWritable();
    if (!this.keepsOutputs) throw new Error(`${this.path}: appendOutputs: this trace keeps no outputs (its header has no outputs field)`);
    if (!Number.isSafeInteger(record.seq) || record.seq >= this.seqNext || record.seq <= this.lastOutputsSeq) {
      throw new RangeError(`${this.path}: appendOutputs: seq ${record.seq} is not an appended TaskEnd after seq ${this.lastOutputsSeq}`);
    }
    this.lastOutputsSeq = record.seq;
    this.pendingOutputs.push(record);
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
      this.writeBlock(block);
      this.pending = count === this.pending.length ? [] : this.pending.slice(count);
      this.pendingBytes -= bytes - BATCH_OVERHEAD_MAX_BYTES;
    }
    this.pendingBytes = 0;
    if (this.pendingOutputs.length > 0) this.writeOutputs();
  }

  /**
   * Write the buffered task outputs as outputs blocks. They are optional: a block that would take
   * the trace past maxBytes is dropped (counted in outputsDropped), never an error.
   */
  private writeOutputs(): void {
    const records = this.pendingOutputs;
    this.pendingOutputs = [];
    const w = this.outputsWriter;
    try {
      this.outputsDropped += encodeOutputsBlocks(w, records, this.maxBatchBytes, FRAME_PREFIX_BYTES, (start, end, count) => {
        const frameAt = start - FRAME_PREFIX_BYTES;
        w.setU32At(frameAt, end - start);
        const frame = w.view(frameAt, end);
        const total = this.segmentBytes === null ? this.written : this.writtenBefore + this.written;
        if (total + frame.byteLength > this.maxBytes) {
          this.outputsDropped += count;
          return;
        }
        // Rotating: the next segment starts at the next entry's seq (the entries are all written).
        if (this.segmentBytes !== null && this.blocksInSegment > 0 && this.written + frame.byteLength > this.segmentBytes) this.rotate(this.seqNext);
        this.writeFrame(frame);
        this.outputsWritten += count;
      });
    } finally {
      w.reset();
      if (w.capacity > 4 * 1024 * 1024) this.outputsWriter = new ByteWriter(16 * 1024);
    }
  }

  private writeBlock(entries: readonly Entry[]): void {
    const w = this.writer;
    w.reset();
    // Encode with room for the u32 frame length right before the batch, so the frame is one
    // contiguous range of the writer's buffer and goes to the file without another copy.
    const { start, end } = encodeBatchInto(w, entries, { maxBytes: this.maxBatchBytes, headroomBytes: FRAME_PREFIX_BYTES });
    const frameAt = start - FRAME_PREFIX_BYTES;
    w.setU32At(frameAt, end - start);
    const frame = w.view(frameAt, end);
    this.ensureRoom(frame.byteLength, entries[0]!.seq);
    this.writeFrame(frame);
    w.reset();
  }

  /** One positioned write of a whole block; on failure the file is cut back to its last whole block. */
  private writeFrame(frame: Uint8Array): void {
    const fd = this.fd!;
    try {
      writeFully(fd, frame, this.written);
    } catch (err) {
      // Cut the torn block off so the file stays whole blocks, then refuse further writes: we
      // cannot tell what the disk holds if even that fails.
      this.broken = err instanceof Error ? err : new Error(String(err));
      try {
        fs.ftruncateSync(fd, this.written);
      } catch {
        // The reader will see a torn tail instead; that is what torn tails are for.
      }
      throw err;
    }
    this.written += frame.byteLength;
    this.blockCount++;
    this.blocksInSegment++;
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
    trace.appendOutputs(captureTaskOutputs(seq, result.outputs, result.console, max));
  };
}

/** The file of segment `index` of the rotated trace `first` (`first` itself for 0). */
export function traceSegmentPath(first: string, index: number): string {
  return index === 0 ? first : `${first}.${index}`;
}

/**
 * The files of a trace: `first`, then `first.1`, `first.2`, ... as long as they exist. A later
 * segment after a missing one is an error (the trace would silently end early).
 */
export function traceSegmentPaths(first: string): string[] {
  const paths = [first];
  for (let i = 1; fs.existsSync(traceSegmentPath(first, i)); i++) paths.push(traceSegmentPath(first, i));
  const base = path.basename(first);
  let names: string[] = [];
  try {
    names = fs.readdirSync(path.dirname(first));
  } catch {
    // Unreadable directory: the files themselves will say what is wrong.
  }
  for (const name of names) {
    if (!name.startsWith(`${base}.`)) continue;
    const index = Number(name.slice(base.length + 1));
    if (Number.isSafeInteger(index) && index > paths.length - 1 && String(index) === name.slice(base.length + 1)) {
      throw new TraceError('CORRUPT', first, 0, `${first}: segment ${paths.length} of this rotated trace is missing (${traceSegmentPath(first, paths.length)}), but segment ${index} exists`);
    }
  }
  return paths;
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

// ---------------------------------------------------------------------------------------------
// Reader

export interface TraceReadOptions {
  /** Stop at a torn or corrupt final block and report it in `truncated` instead of throwing. */
  lenient?: boolean;
  /** Largest batch accepted in a block (MAX_BATCH_BYTES by default). */
  maxBatchBytes?: number;
  /**
   * Called for each outputs block (format 2) as the iteration passes it; iteration itself yields
   * only the blocks of entries. The records' bodies are views into the block as read.
   */
  onOutputs?: (block: OutputsBlock) => void;
  /** @internal Shared by the segments of a rotated trace: an outputs block may follow its tasks across a rotation. */
  outputsOrder?: OutputsOrder;
}

/** An outputs block (task-outputs.ts): what tasks emitted, keyed by their TaskEnd seq. */
export interface OutputsBlock {
  /** File offset of the block's u32 length. */
  offset: number;
  byteLength: number;
  /** TaskEnd seqs of its first and last record. */
  firstSeq: number;
  lastSeq: number;
  records: TaskOutputsRecord[];
  /** Index of the segment it is in (set by SegmentedTraceReader). */
  segment?: number;
}

export interface TraceBlock {
  /** File offset of the block's u32 length. */
  offset: number;
  /** Bytes of the block in the file, length prefix included. */
  byteLength: number;
  firstSeq: number;
  lastSeq: number;
  /** Payloads are views into the block's bytes (no copy). */
  entries: Entry[];
}

export interface TraceTruncation {
  /** File offset where reading stopped: the start of the torn or corrupt final block. */
  atOffset: number;
  reason: string;
}

/** Reads a file through one handle with read-ahead; returned bytes are views into fresh chunks. */
class FileSource {
  private chunk = new Uint8Array(0);
  private chunkAt = 0;

  constructor(
    private readonly handle: fs.promises.FileHandle,
    readonly size: number,
  ) {}

  /** Up to `length` bytes at `position` (fewer only at the end of the file). */
  async read(position: number, length: number): Promise<Uint8Array> {
    length = Math.max(0, Math.min(length, this.size - position));
    if (position >= this.chunkAt && position + length <= this.chunkAt + this.chunk.byteLength) {
      return this.chunk.subarray(position - this.chunkAt, position - this.chunkAt + length);
    }
    // A fresh chunk each time: views handed out earlier (entry payloads) must never be overwritten.
    const chunkLength = Math.min(Math.max(length, READ_CHUNK_BYTES), this.size - position);
    const chunk = new Uint8Array(chunkLength);
    let filled = 0;
    while (filled < chunkLength) {
      const { bytesRead } = await this.handle.read(chunk, filled, chunkLength - filled, position + filled);
      if (bytesRead === 0) break; // The file shrank under us; the caller sees a short read.
      filled += bytesRead;
    }
    this.chunk = chunk.subarray(0, filled);
    this.chunkAt = position;
    return this.chunk.subarray(0, Math.min(length, filled));
  }
}

/** Streaming reader: the header at once, then blocks one at a time. */
export class TraceReader {
  /** Set when a lenient read stopped before the end of the file. */
  truncated: TraceTruncation | undefined;
  private offset: number;
  private expectedSeq: number | null = null;
  private lastPos = 0;
  private lastSeq = 0;
  private started = false;

  private constructor(
    readonly path: string,
    readonly header: TraceHeader,
    /** Bytes of the file's header section (magic to header CRC). */
    readonly headerBytes: number,
    private readonly source: FileSource,
    private readonly handle: fs.promises.FileHandle,
    private readonly lenient: boolean,
    private readonly maxBatchBytes: number,
    private readonly onOutputs: ((block: OutputsBlock) => void) | undefined,
    private readonly outputsOrder: OutputsOrder,
  ) {
    this.offset = headerBytes;
  }

  /** @internal use openTraceReader */
  static async open(filePath: string, opts: TraceReadOptions): Promise<TraceReader> {
    const handle = await fs.promises.open(filePath, 'r');
    try {
      const { size } = await handle.stat();
      const source = new FileSource(handle, size);
      const { header, headerBytes } = await readHeader(filePath, source);
      return new TraceReader(filePath, header, headerBytes, source, handle, opts.lenient === true, opts.maxBatchBytes ?? MAX_BATCH_BYTES, opts.onOutputs, opts.outputsOrder ?? new OutputsOrder());
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Bytes of the file read and found good so far (header + whole valid blocks). */
  get validBytes(): number {
    return this.offset;
  }

  get fileBytes(): number {
    return this.source.size;
  }

  [Symbol.asyncIterator](): AsyncIterator<TraceBlock> {
    return this.blocks();
  }

  /** The blocks in file order. Can be iterated once. */
  async *blocks(): AsyncGenerator<TraceBlock> {
    if (this.started) throw new Error(`${this.path}: a TraceReader can be iterated only once`);
    this.started = true;
    const size = this.source.size;
    while (this.offset < size) {
      const at = this.offset;
      const result = await this.readBlock(at);
      if ('problem' in result) {
        await this.stop(at, result.problem, result.pastEnd);
        return;
      }
      if ('outputs' in result) {
        const misplaced = this.outputsOrder.check(result.outputs.records);
        if (misplaced !== null) this.fail('CORRUPT', at, `: ${misplaced}`);
        this.offset = at + result.outputs.byteLength;
        this.onOutputs?.(result.outputs);
        continue;
      }
      const block = result.block;
      this.outputsOrder.entries(block.entries);
      this.offset = at + block.byteLength;
      this.expectedSeq = block.lastSeq + 1;
      this.lastSeq = block.lastSeq;
      this.lastPos = block.entries[block.entries.length - 1]!.pos;
      yield block;
    }
  }

  private async readBlock(at: number): Promise<FrameResult> {
    const result = await this.decodeFrame(at);
    if (!('block' in result)) return result;
    const { block } = result;
    const first = block.entries[0]!;
    if (this.expectedSeq !== null && first.seq !== this.expectedSeq) {
      this.fail('CORRUPT', at, `${seqLabel(first.seq, block.lastSeq)}: seq gap: block starts at seq ${first.seq}, expected seq ${this.expectedSeq} after seq ${this.lastSeq}`);
    }
    if (first.pos < this.lastPos) {
      this.fail('CORRUPT', at, `${seqLabel(first.seq, block.lastSeq)}: pos goes backwards: seq ${first.seq} has pos ${first.pos} after pos ${this.lastPos} at seq ${this.lastSeq}`);
    }
    return result;
  }

  /**
   * The block at file offset `offset`, read on its own (random access: it does not disturb the
   * iteration). For offsets an iteration has already validated, such as a block index built from it.
   */
  async readBlockAt(offset: number): Promise<TraceBlock> {
    const result = await this.decodeFrame(offset);
    if ('problem' in result) this.fail(result.pastEnd ? 'TRUNCATED' : 'CORRUPT', offset, `: ${result.problem}`);
    if ('outputs' in result) this.fail('CORRUPT', offset, ': an outputs block where a block of entries was expected');
    return result.block;
  }

  /** The outputs block at file offset `offset` (random access, like readBlockAt). */
  async readOutputsAt(offset: number): Promise<OutputsBlock> {
    const result = await this.decodeFrame(offset);
    if ('problem' in result) this.fail(result.pastEnd ? 'TRUNCATED' : 'CORRUPT', offset, `: ${result.problem}`);
    if (!('outputs' in result)) this.fail('CORRUPT', offset, ': a block of entries where an outputs block was expected');
    return result.outputs;
  }

  private async decodeFrame(at: number): Promise<FrameResult> {
    const size = this.source.size;
    if (size - at < FRAME_PREFIX_BYTES) {
      return { problem: `file ends inside a block length (${size - at} of ${FRAME_PREFIX_BYTES} bytes)`, pastEnd: true };
    }
    const prefix = await this.source.read(at, FRAME_PREFIX_BYTES);
    const length = new DataView(prefix.buffer, prefix.byteOffset, FRAME_PREFIX_BYTES).getUint32(0, true);
    if (length < MIN_BATCH_BYTES || length > this.maxBatchBytes) {
      return { problem: `impossible block length ${length} (a block holds ${MIN_BATCH_BYTES}..${this.maxBatchBytes} bytes)`, pastEnd: false };
    }
    const batchAt = at + FRAME_PREFIX_BYTES;
    if (batchAt + length > size) {
      return { problem: `block of ${length} bytes runs past the end of the file (${size - batchAt} present)`, pastEnd: true };
    }
    const bytes = await this.source.read(batchAt, length);
    if (bytes[0] === OUTPUTS_MAGIC) {
      if (this.header.formatVersion < 2) return { problem: 'an outputs block in a format-1 trace', pastEnd: false };
      let records: TaskOutputsRecord[];
      try {
        records = decodeOutputsBlock(bytes);
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        return { problem: `${err.detail} at byte ${batchAt + err.offset}`, pastEnd: false };
      }
      const firstSeq = records[0]?.seq ?? 0;
      const lastSeq = records[records.length - 1]?.seq ?? 0;
      return { outputs: { offset: at, byteLength: FRAME_PREFIX_BYTES + length, firstSeq, lastSeq, records } };
    }
    let entries: Entry[];
    try {
      entries = decodeBatch(bytes, undefined, { maxBytes: this.maxBatchBytes });
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      return { problem: `${err.detail} at byte ${batchAt + err.offset}`, pastEnd: false };
    }
    const first = entries[0]!;
    const last = entries[entries.length - 1]!;
    return { block: { offset: at, byteLength: FRAME_PREFIX_BYTES + length, firstSeq: first.seq, lastSeq: last.seq, entries } };
  }

  /**
   * A block at `at` is torn or damaged. It is a torn tail only if no valid block follows it (a crash
   * tears at most the last write); otherwise it is corruption and always an error.
   */
  private async stop(at: number, problem: string, pastEnd: boolean): Promise<void> {
    const label = await this.describeSeqs(at);
    const later = await findValidBlockAfter(this.source, at, this.maxBatchBytes);
    if (later !== null) {
      this.fail('CORRUPT', at, `${label}: ${problem}; a valid block follows at byte ${later}, so this is not a torn tail`);
    }
    if (this.lenient) {
      this.truncated = { atOffset: at, reason: problem };
      return;
    }
    this.fail(pastEnd ? 'TRUNCATED' : 'CORRUPT', at, `${label}: ${problem}`);
  }

  /** "(seqs a..b)" as declared by a damaged block when that agrees with the seq expected there. */
  private async describeSeqs(at: number): Promise<string> {
    const after = this.expectedSeq === null ? '' : ` (after seq ${this.lastSeq})`;
    try {
      const bytes = await this.source.read(at + FRAME_PREFIX_BYTES, 32);
      const declared = readBatchHeader(bytes);
      if (this.expectedSeq === null || declared.firstSeq === this.expectedSeq) {
        return ` (seqs ${declared.firstSeq}..${declared.lastSeq})`;
      }
    } catch {
      // The header itself is damaged; fall back to what we know.
    }
    return after;
  }

  private fail(code: TraceErrorCode, at: number, what: string): never {
    const noun = code === 'TRUNCATED' ? 'truncated block' : 'corrupt block';
    throw new TraceError(code, this.path, at, `${this.path}: ${noun} at byte ${at}${what}`);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

type FrameResult = { block: TraceBlock } | { outputs: OutputsBlock } | { problem: string; pastEnd: boolean };

function seqLabel(firstSeq: number, lastSeq: number): string {
  return ` (seqs ${firstSeq}..${lastSeq})`;
}

async function readHeader(filePath: string, source: FileSource): Promise<{ header: TraceHeader; headerBytes: number }> {
  const fail = (code: TraceErrorCode, offset: number, what: string): never => {
    throw new TraceError(code, filePath, offset, `${filePath}: ${what}`);
  };
  const size = source.size;
  const prefix = await source.read(0, HEADER_PREFIX_BYTES);
  const magicPresent = Math.min(prefix.byteLength, MAGIC_BYTES.byteLength);
  const family = Math.min(magicPresent, MAGIC_FAMILY_BYTES);
  if (!Buffer.from(prefix.buffer, prefix.byteOffset, family).equals(MAGIC_BYTES.subarray(0, family))) {
    fail('NOT_A_TRACE', 0, `not a trace file (it does not start with "${TRACE_MAGIC}")`);
  }
  const magicVersion = magicPresent === MAGIC_BYTES.byteLength ? String.fromCharCode(prefix[MAGIC_FAMILY_BYTES]!) : '1';
  if (!TRACE_FORMAT_VERSIONS.map(String).includes(magicVersion)) {
    fail('UNSUPPORTED_VERSION', 0, `trace file format "${magicVersion}" is not supported (this build reads formats ${TRACE_FORMAT_VERSIONS.join(' and ')})`);
  }
  if (prefix.byteLength < HEADER_PREFIX_BYTES) {
    fail('TRUNCATED', 0, `truncated header: the file has only ${size} bytes`);
  }
  const jsonLength = new DataView(prefix.buffer, prefix.byteOffset, HEADER_PREFIX_BYTES).getUint32(MAGIC_BYTES.byteLength, true);
  if (jsonLength > MAX_TRACE_HEADER_BYTES) {
    fail('CORRUPT', 0, `corrupt header: declares ${jsonLength} bytes of JSON, above MAX_TRACE_HEADER_BYTES ${MAX_TRACE_HEADER_BYTES}`);
  }
  const headerBytes = HEADER_PREFIX_BYTES + jsonLength + U32_BYTES;
  if (headerBytes > size) {
    fail('TRUNCATED', 0, `truncated header: it needs ${headerBytes} bytes, the file has ${size}`);
  }
  const all = await source.read(0, headerBytes);
  const crcAt = headerBytes - U32_BYTES;
  const stored = new DataView(all.buffer, all.byteOffset + crcAt, U32_BYTES).getUint32(0, true);
  const computed = crc32(all.subarray(0, crcAt));
  if (stored !== computed) {
    fail('CORRUPT', 0, `corrupt header: checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)}) at byte ${crcAt}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(all.buffer, all.byteOffset + HEADER_PREFIX_BYTES, jsonLength).toString('utf8'));
  } catch (err) {
    return fail('CORRUPT', HEADER_PREFIX_BYTES, `corrupt header: invalid JSON: ${(err as Error).message}`);
  }
  const version = (parsed as { formatVersion?: unknown } | null)?.formatVersion;
  if (!TRACE_FORMAT_VERSIONS.includes(version as number)) {
    fail('UNSUPPORTED_VERSION', HEADER_PREFIX_BYTES, `trace header formatVersion ${JSON.stringify(version)} is not supported (this build reads ${TRACE_FORMAT_VERSIONS.join(' and ')})`);
  }
  if (String(version) !== magicVersion) {
    fail('CORRUPT', HEADER_PREFIX_BYTES, `corrupt header: formatVersion ${JSON.stringify(version)} but the magic says format ${magicVersion}`);
  }
  const problem = headerProblem(parsed);
  if (problem !== null) fail('CORRUPT', HEADER_PREFIX_BYTES, `corrupt header: ${problem}`);
  return { header: parsed as TraceHeader, headerBytes };
}

/**
 * The offset of the first whole, checksum-valid block that starts after `from`, or null. Scans byte
 * by byte (a damaged length means block boundaries are unknown) in windows, doing the CRC only
 * where the magic and a plausible length line up. Runs only after a failure.
 */
async function findValidBlockAfter(source: FileSource, from: number, maxBatchBytes: number): Promise<number | null> {
  const size = source.size;
  const minFrame = FRAME_PREFIX_BYTES + MIN_BATCH_BYTES;
  const windowBytes = 4 * 1024 * 1024;
  for (let windowAt = from + 1; windowAt + minFrame <= size; ) {
    // Overlap by one minimal frame so candidates near a window's end are seen whole.
    const window = await source.read(windowAt, windowBytes + minFrame);
    const view = new DataView(window.buffer, window.byteOffset, window.byteLength);
    const lastCandidate = Math.min(window.byteLength - minFrame, windowBytes - 1);
    for (let i = 0; i <= lastCandidate; i++) {
      const magic = window[i + FRAME_PREFIX_BYTES];
      if (magic !== BATCH_MAGIC && magic !== OUTPUTS_MAGIC) continue;
      const length = view.getUint32(i, true);
      const at = windowAt + i;
      if (length < MIN_BATCH_BYTES || length > maxBatchBytes || at + FRAME_PREFIX_BYTES + length > size) continue;
      const bytes = await source.read(at + FRAME_PREFIX_BYTES, length);
      try {
        if (magic === OUTPUTS_MAGIC) decodeOutputsBlock(bytes);
        else decodeBatch(bytes, undefined, { maxBytes: maxBatchBytes });
        return at;
      } catch {
        // Not a block; keep looking.
      }
    }
    windowAt += windowBytes;
  }
  return null;
}

/** Open a trace for streaming: the header is read and checked now, blocks as you iterate. */
export async function openTraceReader(filePath: string, opts: TraceReadOptions = {}): Promise<TraceReader> {
  return TraceReader.open(filePath, opts);
}

export interface TraceContents {
  header: TraceHeader;
  entries: Entry[];
  blocks: number;
  /** Bytes read and found good: header + whole valid blocks (the file size unless truncated). */
  bytes: number;
  truncated?: TraceTruncation;
  /** Task outputs records (format 2 traces that keep them; empty otherwise), in file order. */
  outputs: TaskOutputsRecord[];
}

/** Read a whole trace. Entry payloads are views into the blocks as read (one copy of the file). */
export async function readTrace(filePath: string, opts: TraceReadOptions = {}): Promise<TraceContents> {
  const outputs: TaskOutputsRecord[] = [];
  const reader = await openTraceReader(filePath, {
    ...opts,
    onOutputs: (block) => {
      for (const r of block.records) outputs.push(r);
      opts.onOutputs?.(block);
    },
  });
  try {
    const entries: Entry[] = [];
    let blocks = 0;
    for await (const block of reader) {
      for (const entry of block.entries) entries.push(entry);
      blocks++;
    }
    const out: TraceContents = { header: reader.header, entries, blocks, bytes: reader.validBytes, outputs };
    if (reader.truncated !== undefined) out.truncated = reader.truncated;
    return out;
  } finally {
    await reader.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Rotated traces: segments read as one

export interface SegmentBlock extends TraceBlock {
  /** Index of the segment (0 for the first file) the block is in. */
  segment: number;
}

/**
 * Reads a trace and its rotated segments (`file`, `file.1`, `file.2`, ...) as one: every segment's
 * header must be the first one's (same guest, engine and boot config) with the next segment number,
 * and each segment must start at the seq after the previous one's last. Only the last segment may
 * end torn (with `lenient`); earlier segments were closed whole by the writer.
 */
export class SegmentedTraceReader {
  /** Set when a lenient read stopped before the end of the last segment. */
  truncated: TraceTruncation | undefined;
  private started = false;

  private constructor(
    readonly paths: string[],
    readonly readers: TraceReader[],
  ) {}

  static async open(first: string, opts: TraceReadOptions = {}): Promise<SegmentedTraceReader> {
    const paths = traceSegmentPaths(first);
    const readers: TraceReader[] = [];
    const outputsOrder = new OutputsOrder();
    try {
      for (let i = 0; i < paths.length; i++) {
        const last = i === paths.length - 1;
        const onOutputs = opts.onOutputs;
        const segment = i;
        readers.push(
          await TraceReader.open(paths[i]!, {
            ...opts,
            lenient: last && opts.lenient === true,
            outputsOrder,
            ...(onOutputs ? { onOutputs: (block: OutputsBlock) => onOutputs({ ...block, segment }) } : {}),
          }),
        );
      }
      const head = readers[0]!.header;
      if (head.segment !== undefined) {
        throw new TraceError('CORRUPT', first, 0, `${first}: this is segment ${head.segment.index} of a rotated trace (it starts at seq ${head.segment.firstSeq}); pass the trace's first file`);
      }
      for (let i = 1; i < readers.length; i++) {
        const h = readers[i]!.header;
        const why =
          h.segment?.index !== i
            ? `its header says segment ${h.segment?.index ?? 'none'}`
            : h.guest.hash !== head.guest.hash
              ? 'it holds another guest'
              : h.engine.wasmSha256 !== head.engine.wasmSha256 || h.engine.version !== head.engine.version
                ? 'it was written by another engine'
                : JSON.stringify(h.boot) !== JSON.stringify(head.boot)
                  ? 'its boot config differs'
                  : null;
        if (why !== null) throw new TraceError('CORRUPT', paths[i]!, 0, `${paths[i]}: not segment ${i} of ${first}: ${why}`);
      }
    } catch (err) {
      await Promise.all(readers.map((r) => r.close()));
      throw err;
    }
    return new SegmentedTraceReader(paths, readers);
  }

  get header(): TraceHeader {
    return this.readers[0]!.header;
  }

  /** Bytes of all segment files. */
  get fileBytes(): number {
    return this.readers.reduce((sum, r) => sum + r.fileBytes, 0);
  }

  /** Bytes read and found good so far, over all segments. */
  get validBytes(): number {
    return this.readers.reduce((sum, r) => sum + r.validBytes, 0);
  }

  /** Bytes of all segments' blocks (their files without their headers): the total for a progress bar. */
  get blockBytes(): number {
    return this.readers.reduce((sum, r) => sum + r.fileBytes - r.headerBytes, 0);
  }

  /** Bytes of blocks read so far (entries and outputs blocks), over all segments: what blockBytes counts. */
  get blockBytesRead(): number {
    return this.readers.reduce((sum, r) => sum + r.validBytes - r.headerBytes, 0);
  }

  [Symbol.asyncIterator](): AsyncIterator<SegmentBlock> {
    return this.blocks();
  }

  /** Every segment's blocks, in order. Can be iterated once. */
  async *blocks(): AsyncGenerator<SegmentBlock> {
    if (this.started) throw new Error(`${this.paths[0]}: a SegmentedTraceReader can be iterated only once`);
    this.started = true;
    let lastSeq: number | null = null;
    for (let i = 0; i < this.readers.length; i++) {
      const reader = this.readers[i]!;
      const expected = i === 0 ? null : reader.header.segment!.firstSeq;
      if (i > 0 && lastSeq !== null && expected !== lastSeq + 1) {
        throw new TraceError('CORRUPT', reader.path, 0, `${reader.path}: segment ${i} starts at seq ${expected}, but segment ${i - 1} ends at seq ${lastSeq}`);
      }
      let first = true;
      for await (const block of reader) {
        if (first && expected !== null && block.firstSeq !== expected) {
          throw new TraceError('CORRUPT', reader.path, block.offset, `${reader.path}: segment ${i} says it starts at seq ${expected}, its first block starts at seq ${block.firstSeq}`);
        }
        first = false;
        lastSeq = block.lastSeq;
        yield { ...block, segment: i };
      }
      if (reader.truncated) this.truncated = reader.truncated;
      if (first && expected !== null) lastSeq = expected - 1;
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.readers.map((r) => r.close()));
  }
}

/** Open a trace and its rotated segments for streaming, as one trace. */
export async function openTraceSegments(first: string, opts: TraceReadOptions = {}): Promise<SegmentedTraceReader> {
  return SegmentedTraceReader.open(first, opts);
}

// Reading a trace (format: trace-format.ts): the header at once, then blocks one at a time,
// telling a torn final block (a crash mid-write) from corruption.

import * as fs from 'node:fs';
import { CodecError } from './bytes.js';
import { BATCH_MAGIC, decodeBatch, MAX_BATCH_BYTES, MIN_BATCH_BYTES, readBatchHeader } from './codec.js';
import type { Entry } from './entry.js';
import { OutputsOrder } from './outputs-order.js';
import { decodeOutputsBlock, OUTPUTS_MAGIC, type TaskOutputsRecord } from './task-outputs.js';
import { checkTracePrefix, decodeTraceHeader, FRAME_PREFIX_BYTES, TRACE_PREFIX_BYTES, TraceError, type TraceErrorCode, type TraceHeader } from './trace-format.js';

/** Read-ahead for the block reader: blocks are sliced out of chunks of this size. */
const READ_CHUNK_BYTES = 1024 * 1024;

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
  const { headerBytes, magicVersion } = checkTracePrefix(filePath, await source.read(0, TRACE_PREFIX_BYTES), source.size);
  return { header: decodeTraceHeader(filePath, await source.read(0, headerBytes), magicVersion), headerBytes };
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

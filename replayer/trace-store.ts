// Random access to a trace for the debugger and `ftjs inspect`: the trace (all its rotated segments) is
// read front to back once, lazily, as far as it is needed, and every block read is remembered in a
// compact index (segment, file offset, seqs, positions, the guest clock and epoch before it). Any
// entry the index covers can then be read again by seq with one positioned read of its block. Blocks
// are kept in a small LRU cache, so memory stays bounded whatever the length of the trace; the index
// costs about 80 bytes per block.

import { CodecError, decodeClockReading, decodeEpochMark } from '../logging-channel/codec.js';
import { type Entry, Kind } from '../logging-channel/entry.js';
import type { TaskOutputsRecord } from '../logging-channel/task-outputs.js';
import type { TraceHeader } from '../logging-channel/trace-format.js';
import { type OutputsBlock, openTraceReader, type TraceReader, type TraceTruncation } from '../logging-channel/trace-reader.js';
import { openTraceSegments, type SegmentBlock, type SegmentedTraceReader } from '../logging-channel/trace-segments.js';
import { MalformedLogError } from './task-assembler.js';

export interface TraceStoreOptions {
  lenient?: boolean;
  /** Blocks kept in memory (LRU). */
  cacheBlocks?: number;
}

export interface BlockInfo {
  segment: number;
  offset: number;
  bytes: number;
  firstSeq: number;
  lastSeq: number;
  firstPos: number;
  lastPos: number;
  /** The last clock value the guest was given before this block (0 if none yet). */
  clockBefore: number;
  /** The epoch in force before this block (0 if no Epoch entry yet). */
  epochBefore: number;
}

const COLUMNS = 9;

/** The time a Clock entry gives the guest (the first reading seeds Math.random with a random fraction; the guest's clock continues from its integer part). */
export function guestClock(payload: Uint8Array): number {
  const reading = decodeClockReading(payload);
  return reading.readIndex === 0 ? Math.floor(reading.timeMs) : reading.timeMs;
}

/**
 * How far past the block holding a TaskEnd the store reads to find its outputs record. The writer puts
 * a task's record in an outputs block right after the entries written in the same flush (one event
 * loop tick), so it is never far; this bounds the search in a trace where a task has none.
 */
const OUTPUTS_LOOKAHEAD_BLOCKS = 64;

/** Where the outputs blocks are: segment, offset, first and last TaskEnd seq of each. */
class OutputsTable {
  private data = new Float64Array(4 * 256);
  length = 0;
  push(b: OutputsBlock): void {
    if ((this.length + 1) * 4 > this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    const o = this.length * 4;
    this.data[o] = b.segment ?? 0;
    this.data[o + 1] = b.offset;
    this.data[o + 2] = b.firstSeq;
    this.data[o + 3] = b.lastSeq;
    this.length++;
  }
  segment(i: number): number {
    return this.data[i * 4]!;
  }
  offset(i: number): number {
    return this.data[i * 4 + 1]!;
  }
  firstSeq(i: number): number {
    return this.data[i * 4 + 2]!;
  }
  lastSeq(i: number): number {
    return this.data[i * 4 + 3]!;
  }
  /** Index of the block whose record range holds `seq`, or -1. */
  find(seq: number): number {
    let lo = 0;
    let hi = this.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.lastSeq(mid) < seq) lo = mid + 1;
      else if (this.firstSeq(mid) > seq) hi = mid - 1;
      else return mid;
    }
    return -1;
  }
}

/** A growable table of numbers, one row per block. */
class BlockTable {
  private data = new Float64Array(COLUMNS * 1024);
  length = 0;

  push(b: BlockInfo): void {
    if ((this.length + 1) * COLUMNS > this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    const o = this.length * COLUMNS;
    const d = this.data;
    d[o] = b.segment;
    d[o + 1] = b.offset;
    d[o + 2] = b.bytes;
    d[o + 3] = b.firstSeq;
    d[o + 4] = b.lastSeq;
    d[o + 5] = b.firstPos;
    d[o + 6] = b.lastPos;
    d[o + 7] = b.clockBefore;
    d[o + 8] = b.epochBefore;
    this.length++;
  }

  get(i: number): BlockInfo {
    const o = i * COLUMNS;
    const d = this.data;
    return { segment: d[o]!, offset: d[o + 1]!, bytes: d[o + 2]!, firstSeq: d[o + 3]!, lastSeq: d[o + 4]!, firstPos: d[o + 5]!, lastPos: d[o + 6]!, clockBefore: d[o + 7]!, epochBefore: d[o + 8]! };
  }

  firstSeq(i: number): number {
    return this.data[i * COLUMNS + 3]!;
  }

  lastSeq(i: number): number {
    return this.data[i * COLUMNS + 4]!;
  }

  lastPos(i: number): number {
    return this.data[i * COLUMNS + 6]!;
  }
}

export class TraceStore {
  private readonly table = new BlockTable();
  private readonly outputsTable = new OutputsTable();
  /** Status counts of the recorded responses (from outputs blocks), as far as the trace is read. */
  readonly recordedStatuses = new Map<number, number>();
  recordedOutputs = 0;
  recordedTasks = 0;
  private readonly cache = new Map<number, Entry[]>();
  private iterator: AsyncIterator<SegmentBlock> | null;
  private randomReaders: Array<TraceReader | null>;
  private clock = 0;
  private epoch = 0;
  private readBytesTotal = 0;
  private scanning: Promise<boolean> | null = null;
  /** The whole trace has been read (or a lenient read stopped at a torn tail). */
  done = false;

  private constructor(
    readonly path: string,
    private readonly reader: SegmentedTraceReader,
    private readonly cacheBlocks: number,
  ) {
    this.iterator = reader.blocks();
    this.randomReaders = reader.paths.map(() => null);
  }

  static async open(path: string, options: TraceStoreOptions = {}): Promise<TraceStore> {
    let store: TraceStore | null = null;
    const reader = await openTraceSegments(path, { lenient: options.lenient ?? false, onOutputs: (block) => store?.indexOutputs(block) });
    store = new TraceStore(path, reader, options.cacheBlocks ?? 256);
    return store;
  }

  private indexOutputs(block: OutputsBlock): void {
    if (block.records.length === 0) return;
    this.outputsTable.push(block);
    this.recordedTasks += block.records.length;
    for (const r of block.records) {
      for (const o of r.outputs) {
        this.recordedOutputs++;
        if (o.kind === 'response') this.recordedStatuses.set(o.status, (this.recordedStatuses.get(o.status) ?? 0) + 1);
      }
    }
  }

  /** Whether the trace keeps what tasks emitted (format 2 with header.outputs). */
  get keepsOutputs(): boolean {
    return this.header.outputs !== undefined;
  }

  /**
   * What the task whose TaskEnd is `endSeq` emitted, as the recording node kept it, or null: the
   * trace keeps no outputs (an older trace, or recorded with --trace-outputs-max-bytes 0), or none for
   * this task (a backup's trace before it went live).
   */
  async taskOutputs(endSeq: number): Promise<TaskOutputsRecord | null> {
    if (!this.keepsOutputs || !(await this.ensureSeq(endSeq))) return null;
    const holding = this.blockIndexOf(endSeq);
    // Read on until an outputs block reaches the seq (records come in TaskEnd order), or far enough.
    while (!this.done && (this.outputsTable.length === 0 || this.outputsTable.lastSeq(this.outputsTable.length - 1) < endSeq)) {
      if (this.table.length - 1 - holding >= OUTPUTS_LOOKAHEAD_BLOCKS) break;
      if (!(await this.scanNext())) break;
    }
    const i = this.outputsTable.find(endSeq);
    if (i < 0) return null;
    const segment = this.outputsTable.segment(i);
    let reader = this.randomReaders[segment];
    if (!reader) {
      reader = await openTraceReader(this.reader.paths[segment]!);
      this.randomReaders[segment] = reader;
    }
    const block = await reader.readOutputsAt(this.outputsTable.offset(i));
    return block.records.find((r) => r.seq === endSeq) ?? null;
  }

  get header(): TraceHeader {
    return this.reader.header;
  }

  get segments(): string[] {
    return this.reader.paths;
  }

  get truncated(): TraceTruncation | null {
    return this.reader.truncated ?? null;
  }

  /** Bytes of all the trace's files. */
  get totalBytes(): number {
    return this.reader.fileBytes;
  }

  /** Bytes of the blocks indexed so far. */
  get indexedBytes(): number {
    return this.readBytesTotal;
  }

  /** Bytes of all the trace's blocks (its files without their headers): the whole, for a progress bar. */
  get blockBytes(): number {
    return this.reader.blockBytes;
  }

  /** Bytes of blocks read so far (of entries and of outputs): the part of blockBytes done. */
  get blockBytesRead(): number {
    return this.reader.blockBytesRead;
  }

  get blockCount(): number {
    return this.table.length;
  }

  block(i: number): BlockInfo {
    return this.table.get(i);
  }

  /** The last seq indexed so far (0 if none). */
  get indexedLastSeq(): number {
    return this.table.length === 0 ? 0 : this.table.lastSeq(this.table.length - 1);
  }

  get firstSeq(): number {
    return this.table.length === 0 ? 1 : this.table.firstSeq(0);
  }

  /** Reads and indexes the next block. False at the end of the trace. */
  scanNext(): Promise<boolean> {
    // One scan at a time: concurrent callers share it.
    this.scanning ??= this.doScan().finally(() => (this.scanning = null));
    return this.scanning;
  }

  private async doScan(): Promise<boolean> {
    if (this.done || !this.iterator) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.done = true;
      this.iterator = null;
      return false;
    }
    const block = next.value;
    const entries = block.entries;
    this.table.push({
      segment: block.segment,
      offset: block.offset,
      bytes: block.byteLength,
      firstSeq: block.firstSeq,
      lastSeq: block.lastSeq,
      firstPos: entries[0]!.pos,
      lastPos: entries[entries.length - 1]!.pos,
      clockBefore: this.clock,
      epochBefore: this.epoch,
    });
    this.readBytesTotal += block.byteLength;
    for (const entry of entries) {
      try {
        if (entry.kind === Kind.Clock) this.clock = guestClock(entry.payload);
        else if (entry.kind === Kind.Epoch) this.epoch = decodeEpochMark(entry.payload).epoch;
      } catch (error) {
        // A payload that does not decode passed its block's CRC: the log is malformed (or was edited).
        if (!(error instanceof CodecError)) throw error;
        throw new MalformedLogError(`${this.path}: malformed log at seq ${entry.seq}: ${error.message}`);
      }
    }
    this.remember(this.table.length - 1, entries);
    return true;
  }

  /** Indexes blocks until `seq` is covered. False if the trace ends before it. */
  async ensureSeq(seq: number): Promise<boolean> {
    while (this.indexedLastSeq < seq) if (!(await this.scanNext())) return false;
    return true;
  }

  /** Indexes the whole trace. */
  async scanAll(): Promise<void> {
    while (await this.scanNext()) {
      /* keep going */
    }
  }

  /** Index of the block holding `seq`, or -1 (the seq must be indexed). */
  blockIndexOf(seq: number): number {
    let lo = 0;
    let hi = this.table.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.table.lastSeq(mid) < seq) lo = mid + 1;
      else if (this.table.firstSeq(mid) > seq) hi = mid - 1;
      else return mid;
    }
    return -1;
  }

  /** Index of the first indexed block whose last entry is at `pos` or later, or -1. */
  blockIndexOfPos(pos: number): number {
    let lo = 0;
    let hi = this.table.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.table.lastPos(mid) >= pos) {
        found = mid;
        hi = mid - 1;
      } else lo = mid + 1;
    }
    return found;
  }

  /** The entries of block `i` (indexed). */
  async blockEntries(i: number): Promise<Entry[]> {
    const cached = this.cache.get(i);
    if (cached) {
      this.cache.delete(i);
      this.cache.set(i, cached);
      return cached;
    }
    const info = this.table.get(i);
    let reader = this.randomReaders[info.segment];
    if (!reader) {
      reader = await openTraceReader(this.reader.paths[info.segment]!);
      this.randomReaders[info.segment] = reader;
    }
    const block = await reader.readBlockAt(info.offset);
    this.remember(i, block.entries);
    return block.entries;
  }

  private remember(i: number, entries: Entry[]): void {
    this.cache.set(i, entries);
    while (this.cache.size > this.cacheBlocks) this.cache.delete(this.cache.keys().next().value!);
  }

  /** The entry with this seq, or null past the end of the trace. */
  async entry(seq: number): Promise<Entry | null> {
    if (seq < 1 || !(await this.ensureSeq(seq))) return null;
    const i = this.blockIndexOf(seq);
    if (i < 0) return null;
    const entries = await this.blockEntries(i);
    return entries[seq - this.table.firstSeq(i)] ?? null;
  }

  /** Entries from `from` through `to` (inclusive), as far as the trace goes. */
  async range(from: number, to: number): Promise<Entry[]> {
    const out: Entry[] = [];
    from = Math.max(from, this.firstSeq);
    for (let seq = from; seq <= to; ) {
      if (!(await this.ensureSeq(seq))) break;
      const i = this.blockIndexOf(seq);
      const entries = await this.blockEntries(i);
      const first = this.table.firstSeq(i);
      for (let k = seq - first; k < entries.length && seq <= to; k++, seq++) out.push(entries[k]!);
    }
    return out;
  }

  /** Blocks' entries from the one holding `seq` on, the first trimmed to start at `seq`. */
  async *blocksFrom(seq: number): AsyncGenerator<Entry[]> {
    if (!(await this.ensureSeq(seq))) return;
    let i = this.blockIndexOf(seq);
    const first = await this.blockEntries(i);
    yield first.slice(seq - this.table.firstSeq(i));
    for (i++; ; i++) {
      if (i >= this.table.length && !(await this.scanNext())) return;
      yield await this.blockEntries(i);
    }
  }

  /** The last clock value given to the guest at or before `seq` (0 if none). */
  async clockAt(seq: number): Promise<number> {
    if (seq < 1 || (this.table.length === 0 && !(await this.ensureSeq(1)))) return 0;
    if (!(await this.ensureSeq(seq))) return this.clock;
    const i = this.blockIndexOf(seq);
    if (i < 0) return 0;
    const info = this.table.get(i);
    let clock = info.clockBefore;
    const entries = await this.blockEntries(i);
    for (let k = 0; k <= seq - info.firstSeq && k < entries.length; k++) {
      if (entries[k]!.kind === Kind.Clock) clock = guestClock(entries[k]!.payload);
    }
    return clock;
  }

  /** The epoch in force at `seq` (0 before any Epoch entry). */
  async epochAt(seq: number): Promise<{ epoch: number; nodeId: string | null }> {
    if (!(await this.ensureSeq(seq))) return { epoch: this.epoch, nodeId: null };
    let i = this.blockIndexOf(seq);
    if (i < 0) return { epoch: 0, nodeId: null };
    // Search back for the Epoch entry itself (for its node id), block by block.
    let limit = seq;
    const info0 = this.table.get(i);
    for (let walked = 0; i >= 0; i--, walked++) {
      if (walked === 64) return { epoch: info0.epochBefore, nodeId: null };
      const info = this.table.get(i);
      const entries = await this.blockEntries(i);
      for (let k = Math.min(limit - info.firstSeq, entries.length - 1); k >= 0; k--) {
        const e = entries[k]!;
        if (e.kind === Kind.Epoch) {
          const mark = decodeEpochMark(e.payload);
          return { epoch: mark.epoch, nodeId: mark.nodeId };
        }
      }
      if (info.epochBefore === 0) return { epoch: 0, nodeId: null };
      limit = info.firstSeq - 1;
    }
    return { epoch: 0, nodeId: null };
  }

  async close(): Promise<void> {
    await this.reader.close();
    await Promise.all(this.randomReaders.map((r) => r?.close()));
  }
}

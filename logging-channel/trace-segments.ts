// Rotated traces: a trace written as segments (`file`, `file.1`, `file.2`, ...; TraceWriter's
// segmentBytes), named here and read back as one trace.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OutputsOrder } from './outputs-order.js';
import { TraceError, type TraceHeader } from './trace-format.js';
import { type OutputsBlock, type TraceBlock, TraceReader, type TraceReadOptions, type TraceTruncation } from './trace-reader.js';

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

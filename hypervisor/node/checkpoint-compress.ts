// Compressing a checkpoint's memory image without stalling the guest's traffic (issue 19).
//
// Deflating 207 MiB in one call kept a thread-pool thread busy for 300 ms at the node's priority, above
// the niced VM worker (hypervisor/worker/vm-worker.ts): on two shared cores the guest's traffic then
// stalled 56–187 ms. Three changes, none touching the file format:
//
// - Pieces. The memory is deflated in independent chunks of CHECKPOINT_CHUNK_BYTES, each ended by a
//   full flush (byte-aligned, no reference into the previous chunk), and the pieces are concatenated
//   with a final empty block: one ordinary raw deflate stream, which any reader inflates in one call.
// - Reuse. A chunk whose page hashes (the snapshot's, kept by the VM for its state hash) are those of
//   the chunk compressed for the previous checkpoint is not compressed again: its piece is reused. A
//   chunk of zero pages reuses the one zero piece. So a checkpoint costs compression in proportion to
//   the memory written since the last one, not to the memory's size; and the restore's check stays as
//   it was (the whole image against the header's state hash).
// - Pacing. Chunks that must be compressed go to the thread pool one at a time, and after each the
//   compressor waits so that it keeps a thread busy at most `dutyPercent` of the wall time: the VM
//   worker gets a core between chunks. The file's CRC and writes (checkpoint-file.ts) are paced the
//   same way, in 1 MiB batches: writing a 150 MB image is a copy into the page cache on a thread-pool
//   thread, and its gaps were as long as compression's (random-text guest, shared machine).
//
// Memory: the previous checkpoint's pieces (its compressed size) and 32 B of page hash per 4 KiB page
// (0.8% of the memory) stay held between checkpoints.
// A first checkpoint of 200 MiB is about 3,300 pieces: one thread-pool round trip each, all through
// one zlib stream (piece-deflater.ts: a stream per piece churned ~700 MB of zlib state through the
// main thread's GC).

import { pageHashes as hashPages, PAGE_BYTES, PAGE_DIGEST_BYTES } from '../vm/page-delta.js';
import { PieceDeflater } from './piece-deflater.js';

/**
 * Memory deflated as one piece: 16 pages. The VM worker waits behind at most one piece on a shared core.
 * Level 1 deflates random text at about 60 MB/s of CPU and JSON at about 210 MB/s (bench machine): a
 * piece costs at most about 1 ms (one of 256 KiB took 4 ms). Independent pieces cost no measurable
 * ratio there (JSON 0.212 against 0.213 as one stream; the 32 KiB window starts empty in each).
 */
export const CHECKPOINT_CHUNK_BYTES = 64 * 1024;
/** Percent of wall time a checkpoint's compression may keep a thread busy (the rest it waits). */
export const DEFAULT_COMPRESS_DUTY_PERCENT = 50;
export const COMPRESS_DUTY_FLAG = '--checkpoint-compress-percent';
/**
 * Chunks looked at (reused ones cost a compare of their page hashes, ~1 µs) between two turns of the
 * event loop: a warm checkpoint of 200 MiB is ~3,300 chunks of which a dozen are deflated.
 */
export const SCAN_YIELD_CHUNKS = 256;
/** Waits shorter than this are carried over to the next chunk (a timer cannot wait less). */
const MIN_WAIT_MS = 1;

/** A final fixed-Huffman block holding only its end code: closes a stream of full-flushed pieces. */
const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

/** Checks a duty cycle in percent; the error names the flag. */
export function checkDutyPercent(percent: number): number {
  if (!Number.isSafeInteger(percent) || percent < 1 || percent > 100)
    throw new RangeError(`${COMPRESS_DUTY_FLAG} must be an integer from 1 to 100 (percent of the time compression may run), got ${percent}`);
  return percent;
}

export interface CompressedMemory {
  /** Concatenated, one raw deflate stream of the whole memory. */
  pieces: Buffer[];
  compressedBytes: number;
  /** Chunks deflated now, reused from the previous checkpoint, and zero (the shared zero piece). */
  compressedChunks: number;
  reusedChunks: number;
  zeroChunks: number;
  /** Wall time spent waiting on deflate, and waiting to let the VM run. */
  busyMs: number;
  idleMs: number;
}

export interface CompressorOptions {
  level: number;
  dutyPercent?: number;
  chunkBytes?: number;
  /** Injected for tests on simulated time. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  deflate?: (chunk: Uint8Array, level: number) => Promise<Buffer>;
}

interface Piece {
  /** The page hashes of the chunk it was compressed from. */
  key: Buffer;
  piece: Buffer;
}

/**
 * Runs work (a thread-pool job, or a slice of the main thread's) and then waits so that the work takes
 * at most `percent` of the wall time: after work that took t ms, t × (100 − percent) / percent ms.
 */
export class DutyCycle {
  busyMs = 0;
  idleMs = 0;
  private owedIdleMs = 0;

  constructor(
    readonly percent: number,
    private readonly now: () => number = () => performance.now(),
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  ) {
    checkDutyPercent(percent);
  }

  async run<T>(work: () => T | Promise<T>): Promise<T> {
    const t0 = this.now();
    const result = await work();
    const busy = this.now() - t0;
    this.busyMs += busy;
    this.owedIdleMs += (busy * (100 - this.percent)) / this.percent;
    if (this.owedIdleMs >= MIN_WAIT_MS) {
      const t1 = this.now();
      await this.sleep(this.owedIdleMs);
      const slept = this.now() - t1;
      this.idleMs += slept;
      this.owedIdleMs = Math.max(0, this.owedIdleMs - slept);
    }
    return result;
  }
}

/** One per checkpoint writer: it keeps the pieces of its last checkpoint to reuse in the next. */
export class MemoryCompressor {
  readonly level: number;
  readonly dutyPercent: number;
  readonly chunkBytes: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly deflate: ((chunk: Uint8Array, level: number) => Promise<Buffer>) | undefined;
  private previous: Array<Piece | undefined> = [];
  private readonly zeroPieces = new Map<number, Buffer>();
  private readonly zeroHashes: Buffer;

  constructor(options: CompressorOptions) {
    this.level = options.level;
    this.dutyPercent = checkDutyPercent(options.dutyPercent ?? DEFAULT_COMPRESS_DUTY_PERCENT);
    this.chunkBytes = options.chunkBytes ?? CHECKPOINT_CHUNK_BYTES;
    if (!Number.isSafeInteger(this.chunkBytes) || this.chunkBytes <= 0 || this.chunkBytes % PAGE_BYTES !== 0)
      throw new RangeError(`checkpoint chunk of ${this.chunkBytes} bytes: it must be a positive multiple of ${PAGE_BYTES}`);
    this.now = options.now ?? (() => performance.now());
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.deflate = options.deflate;
    this.zeroHashes = Buffer.from(hashPages(new Uint8Array(this.chunkBytes)));
  }

  /** A fresh duty cycle at this compressor's share: the checkpoint's file writes are paced by one too. */
  pacer(): DutyCycle {
    return new DutyCycle(this.dutyPercent, this.now, this.sleep);
  }

  /**
   * `memory` as one raw deflate stream, in pieces. `pageHashes` (page-delta.ts format, of this very
   * memory) lets unchanged chunks reuse the previous call's pieces; without them every chunk is deflated.
   */
  async compress(memory: Uint8Array, pageHashes?: Uint8Array): Promise<CompressedMemory> {
    const { chunkBytes } = this;
    const chunks = Math.ceil(memory.byteLength / chunkBytes);
    const keyed = pageHashes !== undefined && memory.byteLength % PAGE_BYTES === 0 && pageHashes.byteLength === (memory.byteLength / PAGE_BYTES) * PAGE_DIGEST_BYTES;
    const out: CompressedMemory = { pieces: [], compressedBytes: 0, compressedChunks: 0, reusedChunks: 0, zeroChunks: 0, busyMs: 0, idleMs: 0 };
    const next: Array<Piece | undefined> = [];
    const pacer = this.pacer();
    // One zlib stream for the whole checkpoint (piece-deflater.ts), unless a test injected its own.
    const deflater = this.deflate ? null : new PieceDeflater(this.level);
    const deflatePaced = (chunk: Uint8Array): Promise<Buffer> => pacer.run(() => (deflater ? deflater.deflate(chunk) : this.deflate!(chunk, this.level)));
    let unyielded = 0;
    try {
      for (let i = 0; i < chunks; i++) {
        const from = i * chunkBytes;
        const chunk = memory.subarray(from, Math.min(memory.byteLength, from + chunkBytes));
        let piece: Buffer;
        if (keyed) {
          const key = pageHashes.subarray((from / PAGE_BYTES) * PAGE_DIGEST_BYTES, ((from + chunk.byteLength) / PAGE_BYTES) * PAGE_DIGEST_BYTES);
          const before = this.previous[i];
          const zeroKey = this.zeroHashes.subarray(0, key.byteLength);
          let keep: Buffer;
          if (zeroKey.equals(key)) {
            piece = this.zeroPieces.get(chunk.byteLength) ?? (await deflatePaced(chunk));
            this.zeroPieces.set(chunk.byteLength, piece);
            out.zeroChunks++;
            keep = zeroKey; // never changed: shared, not copied
          } else if (before?.key.equals(key)) {
            piece = before.piece;
            out.reusedChunks++;
            keep = before.key;
          } else {
            piece = await deflatePaced(chunk);
            out.compressedChunks++;
            // Copied: the caller's page hashes may be reused or changed after this returns.
            keep = Buffer.from(key);
          }
          next[i] = { key: keep, piece };
        } else {
          piece = await deflatePaced(chunk);
          out.compressedChunks++;
        }
        out.pieces.push(piece);
        out.compressedBytes += piece.byteLength;
        // A long run of reused chunks runs without awaiting anything: let the event loop turn.
        if (++unyielded >= SCAN_YIELD_CHUNKS) {
          unyielded = 0;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    } finally {
      deflater?.close();
    }
    out.busyMs = pacer.busyMs;
    out.idleMs = pacer.idleMs;
    out.pieces.push(FINAL_BLOCK);
    out.compressedBytes += FINAL_BLOCK.byteLength;
    // Without page hashes nothing can be matched next time: what was kept is stale either way.
    this.previous = keyed ? next : [];
    return out;
  }
}

// Deflating a checkpoint's pieces (checkpoint-compress.ts) through ONE zlib stream per checkpoint.
//
// zlib.deflateRaw(buffer) makes a new zlib stream per call: a native handle whose ~260 KiB of deflate
// state is reported to V8 as external memory and freed only when the handle is collected. A first
// checkpoint of 200 MiB is ~2,700 pieces: ~700 MB of external memory churned through the main
// thread's heap, which answered with mark-compacts and weak-callback passes of 3–4 ms each on the
// main thread while the guest's traffic waited (pauses bench, --trace-gc and gc performance entries).
//
// One stream instead: each piece is written with Z_FULL_FLUSH as its flush, which ends its output
// byte-aligned AND resets the compressor's history, so the next piece refers to nothing before it.
// Each piece is thus what the format needs (checkpoint-compress.ts): a run of non-final deflate blocks
// that decodes on its own, in any position of the stream, whichever checkpoint it was made for.

import { constants, createDeflateRaw, type DeflateRaw } from 'node:zlib';

/** zlib's output buffer: a 64 KiB piece of random text deflates to ~50 KiB, in one native call. */
const OUTPUT_CHUNK_BYTES = 128 * 1024;

export class PieceDeflater {
  private readonly stream: DeflateRaw;
  private out: Buffer[] = [];
  private failed: Error | null = null;
  /** The piece in progress's reject: a stream error never calls the flush's callback. */
  private pending: ((error: Error) => void) | null = null;

  constructor(level: number) {
    // Every write is deflated with a full flush: one piece per write, one thread-pool job per piece.
    this.stream = createDeflateRaw({ level, chunkSize: OUTPUT_CHUNK_BYTES, flush: constants.Z_FULL_FLUSH });
    this.stream.on('data', (data: Buffer) => this.out.push(data));
    this.stream.on('error', (error: Error) => {
      this.failed = error;
      this.pending?.(error);
      this.pending = null;
    });
  }

  /** `chunk` deflated as one self-contained piece (full flush). One piece at a time. */
  deflate(chunk: Uint8Array): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.pending) return Promise.reject(new Error('PieceDeflater: one piece at a time'));
    return new Promise<Buffer>((resolve, reject) => {
      this.pending = reject;
      // The write's callback runs once its output was pushed: every 'data' since is this piece.
      this.stream.write(chunk, () => {
        if (this.pending !== reject) return; // failed meanwhile: rejected by the error handler
        this.pending = null;
        const piece = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out);
        this.out = [];
        resolve(piece);
      });
    });
  }

  /** Frees the native state now rather than at the handle's collection. */
  close(): void {
    this.stream.close();
  }
}

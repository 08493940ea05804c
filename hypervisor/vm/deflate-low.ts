// Compression of a snapshot's memory that never competes with the guest for the CPU: a memory held in
// a SharedArrayBuffer (the VM's kept copy) is deflated by a short-lived worker thread at the lowest
// priority (deflate-worker.ts); any other memory on libuv's thread pool, as before (handing a private
// buffer to a thread would copy it on the main thread first).

import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { deflateRaw } from 'node:zlib';

const deflateRawAsync = promisify(deflateRaw);

/** deflate-raw of `data` at `level` (the same bytes whichever thread compresses). */
export async function deflateRawLowPriority(data: Uint8Array, level: number): Promise<Uint8Array> {
  if (!(data.buffer instanceof SharedArrayBuffer)) return deflateRawAsync(data, { level, chunkSize: 1024 * 1024 });
  const worker = new Worker(new URL('./deflate-worker.js', import.meta.url), { workerData: { data, level }, stdout: false, stderr: false });
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      worker.once('message', (out: Uint8Array) => resolve(new Uint8Array(out.buffer, out.byteOffset, out.byteLength)));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`deflate worker exited with code ${code} before answering`)));
    });
  } finally {
    void worker.terminate();
  }
}

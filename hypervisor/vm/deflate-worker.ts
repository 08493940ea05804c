// A thread that compresses one shared memory image at the lowest priority: a checkpoint's or a join's
// deflate of the VM's kept copy (kept-copy.ts). On libuv's thread pool the same work ran
// at the node's priority, above the VM worker (niced, hypervisor/worker/vm-worker.ts): on two shared cores the guest's
// traffic stalled tens of ms at a time while 200 MiB were compressed. Reads the SharedArrayBuffer
// itself: nothing is copied to get the bytes here.

import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { deflateRawSync } from 'node:zlib';

if (!parentPort) throw new Error('deflate-worker must run as a worker thread');
if (process.platform === 'linux') setPriority(0, 19);
const { data, level } = workerData as { data: Uint8Array; level: number };
const out = deflateRawSync(data, { level, chunkSize: 1024 * 1024 });
parentPort.postMessage(out, [out.buffer as ArrayBuffer]);

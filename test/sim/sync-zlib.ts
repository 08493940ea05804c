// Imported first by the simulator (sim.ts): node:zlib's callback API runs on the libuv threadpool, so
// a snapshot's compression (hypervisor/vm/snapshot-wire.ts, for a join) would finish at a real time
// no seed controls, between virtual events. Here the same functions compress synchronously and call
// back in a microtask: the world runs every microtask an event started before the next event, so a
// join takes the same virtual time, in the same order, on every run of a seed. The bytes are zlib's own.

import zlib from 'node:zlib';

type Callback = (error: Error | null, result?: Buffer) => void;

function synchronous(run: (buffer: zlib.InputType, options: zlib.ZlibOptions) => Buffer): (buffer: zlib.InputType, options: zlib.ZlibOptions | Callback, callback?: Callback) => void {
  return (buffer, options, callback) => {
    const cb = (typeof options === 'function' ? options : callback)!;
    const opts = typeof options === 'function' ? {} : options;
    let result: Buffer;
    try {
      result = run(buffer, opts);
    } catch (error) {
      queueMicrotask(() => cb(error as Error));
      return;
    }
    queueMicrotask(() => cb(null, result));
  };
}

Object.assign(zlib, {
  deflateRaw: synchronous((b, o) => zlib.deflateRawSync(b, o)),
  inflateRaw: synchronous((b, o) => zlib.inflateRawSync(b, o)),
});

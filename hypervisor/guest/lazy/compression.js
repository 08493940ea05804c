// CompressionStream / DecompressionStream (lazy module, hypervisor/guest/web/lazy.js) over fflate,
// computed in the guest: deterministic (a pure function of the input, the same on every node and in
// every replay), its state in guest memory like any other (snapshots need nothing from the host).
// The gzip header carries no time (mtime 0, as browsers write it).
/* global __ftjs_imports */
import { Deflate, Gunzip, Gzip, Inflate, Unzlib, Zlib } from 'fflate';

const { TransformStream, viewBufferSource } = __ftjs_imports;

const FORMATS = ['deflate', 'deflate-raw', 'gzip'];

function formatOf(format, what) {
  const f = String(format);
  if (!FORMATS.includes(f)) throw new TypeError(`Failed to construct '${what}': Unsupported compression format: '${f}' (supported: ${FORMATS.join(', ')})`);
  return f;
}

function chunkBytes(chunk, what) {
  const view = viewBufferSource(chunk);
  if (view === null) throw new TypeError(`${what}: chunk must be an ArrayBuffer or an ArrayBufferView`);
  return view;
}

/**
 * A TransformStream driving one fflate stream (`engine`): push each chunk, finish on flush. Input that
 * ends early fails (fflate's "unexpected EOF"); bytes after the end of the compressed data are not
 * detected (fflate reads them as the start of another gzip member, or ignores them).
 */
function flateTransform(engine, what) {
  let out = null;
  engine.ondata = (data) => {
    if (data.byteLength > 0) out.enqueue(data.slice());
  };
  const push = (controller, data, final) => {
    out = controller;
    try {
      engine.push(data, final);
    } catch (error) {
      throw new TypeError(`${what}: ${error && error.message ? error.message : String(error)}`);
    } finally {
      out = null;
    }
  };
  return new TransformStream({
    transform(chunk, controller) {
      const bytes = chunkBytes(chunk, what);
      if (bytes.byteLength > 0) push(controller, bytes, false);
    },
    flush(controller) {
      push(controller, new Uint8Array(0), true);
    },
  });
}

class CompressionStream {
  #transform;
  constructor(format) {
    if (arguments.length < 1) throw new TypeError("Failed to construct 'CompressionStream': 1 argument required, but only 0 present.");
    const f = formatOf(format, 'CompressionStream');
    const engine = f === 'gzip' ? new Gzip({ level: 6, mtime: 0 }) : f === 'deflate' ? new Zlib({ level: 6 }) : new Deflate({ level: 6 });
    this.#transform = flateTransform(engine, 'CompressionStream');
  }
  get readable() {
    return this.#transform.readable;
  }
  get writable() {
    return this.#transform.writable;
  }
}
Object.defineProperty(CompressionStream.prototype, Symbol.toStringTag, { value: 'CompressionStream', configurable: true });

class DecompressionStream {
  #transform;
  constructor(format) {
    if (arguments.length < 1) throw new TypeError("Failed to construct 'DecompressionStream': 1 argument required, but only 0 present.");
    const f = formatOf(format, 'DecompressionStream');
    const engine = f === 'gzip' ? new Gunzip() : f === 'deflate' ? new Unzlib() : new Inflate();
    this.#transform = flateTransform(engine, 'DecompressionStream');
  }
  get readable() {
    return this.#transform.readable;
  }
  get writable() {
    return this.#transform.writable;
  }
}
Object.defineProperty(DecompressionStream.prototype, Symbol.toStringTag, { value: 'DecompressionStream', configurable: true });

export { CompressionStream, DecompressionStream };

// WHATWG Streams for the guest (lazy module, hypervisor/guest/web/lazy.js): the reference
// implementation's port (web-streams-polyfill), plus TextEncoderStream / TextDecoderStream and the
// helpers the platform's bodies use. Evaluated on first use with intrinsics captured at boot.
/* global __ftjs_imports */
import {
  ByteLengthQueuingStrategy,
  CountQueuingStrategy,
  ReadableByteStreamController,
  ReadableStream,
  ReadableStreamBYOBReader,
  ReadableStreamBYOBRequest,
  ReadableStreamDefaultController,
  ReadableStreamDefaultReader,
  TransformStream,
  TransformStreamDefaultController,
  WritableStream,
  WritableStreamDefaultController,
  WritableStreamDefaultWriter,
} from 'web-streams-polyfill';

const { TextEncoder, TextDecoder, viewBufferSource } = __ftjs_imports;

// The spec's stream async iterators inherit from %AsyncIteratorPrototype% (so they have its
// [Symbol.asyncIterator] and any helpers it gains); the polyfill's prototype is a plain object.
Object.setPrototypeOf(
  Object.getPrototypeOf(new ReadableStream().values()),
  Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype),
);

function setTag(ctor, tag) {
  Object.defineProperty(ctor.prototype, Symbol.toStringTag, { value: tag, configurable: true });
}

class TextEncoderStream {
  #transform;
  constructor() {
    const encoder = new TextEncoder();
    let pendingHigh = null; // a lone high surrogate at the end of the last chunk
    this.#transform = new TransformStream({
      transform(chunk, controller) {
        let s = String(chunk);
        if (pendingHigh !== null) {
          s = pendingHigh + s;
          pendingHigh = null;
        }
        const last = s.charCodeAt(s.length - 1);
        if (last >= 0xd800 && last <= 0xdbff) {
          pendingHigh = s[s.length - 1];
          s = s.slice(0, -1);
        }
        if (s.length > 0) controller.enqueue(encoder.encode(s));
      },
      flush(controller) {
        if (pendingHigh !== null) controller.enqueue(new Uint8Array([0xef, 0xbf, 0xbd]));
      },
    });
  }
  get encoding() {
    this.#transform;
    return 'utf-8';
  }
  get readable() {
    return this.#transform.readable;
  }
  get writable() {
    return this.#transform.writable;
  }
}
setTag(TextEncoderStream, 'TextEncoderStream');

class TextDecoderStream {
  #decoder;
  #transform;
  constructor(label = 'utf-8', options = undefined) {
    const decoder = new TextDecoder(label, options);
    this.#decoder = decoder;
    this.#transform = new TransformStream({
      transform(chunk, controller) {
        const view = viewBufferSource(chunk);
        if (view === null) throw new TypeError('TextDecoderStream: chunk must be an ArrayBuffer or an ArrayBufferView');
        const s = decoder.decode(view, { stream: true });
        if (s.length > 0) controller.enqueue(s);
      },
      flush(controller) {
        const s = decoder.decode();
        if (s.length > 0) controller.enqueue(s);
      },
    });
  }
  get encoding() {
    return this.#decoder.encoding;
  }
  get fatal() {
    return this.#decoder.fatal;
  }
  get ignoreBOM() {
    return this.#decoder.ignoreBOM;
  }
  get readable() {
    return this.#transform.readable;
  }
  get writable() {
    return this.#transform.writable;
  }
}
setTag(TextDecoderStream, 'TextDecoderStream');

// ---------- helpers for the platform's bodies (hypervisor/guest/web/streams.js) ----------

// Streams made from whole bytes, with their source: while it is untouched, the bytes can be taken
// whole (the fast path of a body that was only looked at, e.g. `new Response(res.body, res)`).
const byteSources = new WeakMap();

/** A ReadableStream of `bytes` (one chunk, a fresh copy handed out on the first read). */
function bytesStream(bytes) {
  const source = { bytes, taken: false };
  const stream = new ReadableStream(
    {
      type: 'bytes',
      pull(controller) {
        if (!source.taken) {
          source.taken = true;
          if (bytes.byteLength > 0) controller.enqueue(bytes.slice());
        }
        controller.close();
      },
      cancel() {
        source.taken = true;
      },
    },
    { highWaterMark: 0 },
  );
  byteSources.set(stream, source);
  return stream;
}

/**
 * The bytes of a stream made by bytesStream that nothing has read or locked, taking them; else null.
 * The stream is then as a read one is: locked (by a reader kept here) and disturbed.
 */
function takeIntactBytes(stream) {
  const source = byteSources.get(stream);
  if (source === undefined || source.taken || stream.locked) return null;
  source.taken = true;
  stream.getReader().cancel();
  return source.bytes;
}

function isReadableStream(value) {
  return value instanceof ReadableStream;
}

function isDisturbed(stream) {
  return stream._disturbed === true;
}

/** Reads a whole byte stream: a Promise of a Uint8Array (chunks must be Uint8Arrays, as fetch requires). */
function readAllBytes(stream, what) {
  const intact = takeIntactBytes(stream);
  if (intact !== null) return Promise.resolve(intact);
  const reader = stream.getReader();
  const chunks = [];
  let total = 0;
  const step = () =>
    reader.read().then(({ done, value }) => {
      if (done) {
        if (chunks.length === 1) return chunks[0];
        const out = new Uint8Array(total);
        let offset = 0;
        for (const c of chunks) {
          out.set(c, offset);
          offset += c.byteLength;
        }
        return out;
      }
      if (!(value instanceof Uint8Array)) {
        const error = new TypeError(what + ': the body stream gave a chunk that is not a Uint8Array');
        reader.cancel(error);
        throw error;
      }
      chunks.push(value);
      total += value.byteLength;
      return step();
    });
  return step();
}

export {
  ByteLengthQueuingStrategy,
  CountQueuingStrategy,
  ReadableByteStreamController,
  ReadableStream,
  ReadableStreamBYOBReader,
  ReadableStreamBYOBRequest,
  ReadableStreamDefaultController,
  ReadableStreamDefaultReader,
  TransformStream,
  TransformStreamDefaultController,
  WritableStream,
  WritableStreamDefaultController,
  WritableStreamDefaultWriter,
  TextEncoderStream,
  TextDecoderStream,
  bytesStream,
  takeIntactBytes,
  isReadableStream,
  isDisturbed,
  readAllBytes,
};

// Installs the WHATWG Streams globals (and Compression Streams) as lazy globals: the modules
// (hypervisor/guest/lazy/streams.js, compression.js) are evaluated on first use, not at every boot.
// The platform's bodies reach streams through the functions here, which never load the module
// for a body that is only bytes (the hot path of every request).

import { lazyGlobals, lazyModule, provideIntrinsic } from './lazy.js';

const STREAM_GLOBALS = [
  'ReadableStream', 'ReadableStreamDefaultReader', 'ReadableStreamBYOBReader', 'ReadableStreamBYOBRequest',
  'ReadableStreamDefaultController', 'ReadableByteStreamController', 'WritableStream', 'WritableStreamDefaultWriter',
  'WritableStreamDefaultController', 'TransformStream', 'TransformStreamDefaultController', 'ByteLengthQueuingStrategy',
  'CountQueuingStrategy', 'TextEncoderStream', 'TextDecoderStream',
];
const COMPRESSION_GLOBALS = ['CompressionStream', 'DecompressionStream'];

let platformImports = null;
let exports = null;
/** Whether the streams module was loaded: before it, no value can be a stream (checked on every body). */
export let streamsLoaded = false;

/** The streams module's exports (loads it on first call). */
export function streams() {
  if (exports === null) {
    exports = lazyModule('streams', platformImports);
    streamsLoaded = true;
  }
  return exports;
}

/** True when `value` is a guest ReadableStream; never loads the module (no stream exists before it is loaded). */
export function isReadableStream(value) {
  return streamsLoaded && exports.isReadableStream(value);
}

/** Called once by platform.js with the platform classes and helpers the lazy modules use. */
export function installStreams(imports) {
  platformImports = imports;
  for (const name of ['AbortController', 'AbortSignal', 'DOMException', 'TextEncoder', 'TextDecoder']) provideIntrinsic(name, imports[name]);
  lazyGlobals(STREAM_GLOBALS, streams);
  lazyGlobals(COMPRESSION_GLOBALS, () => lazyModule('compression', { ...streams(), viewBufferSource: imports.viewBufferSource }));
}

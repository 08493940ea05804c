// The `crypto` global: getRandomValues and randomUUID, whose bytes come from the recorded entropy
// input (host op 6, so replay reproduces them), and crypto.subtle (subtle.js). It lives in the web
// glue rather than in runtime.js so that a bare context with the glue and a test host (the Web
// Platform Tests runner, test/web-apis.test.ts) has the same `crypto` a VM has.

import { DOMException, defineGlobal } from './platform.js';
import { subtle } from './subtle.js';

const host = globalThis.__ftjs_host;
const OP_ENTROPY = 6;
/** crypto.getRandomValues's limit (Web Crypto): more is a QuotaExceededError. */
const MAX_RANDOM_BYTES = 65536;

// Intrinsics, captured at boot: the guest may patch the builtins.
const NativeUint8Array = Uint8Array;
const isView = ArrayBuffer.isView;
const hasInstance = Function.prototype[Symbol.hasInstance];
const instanceOf = (value, ctor) => typeof ctor === 'function' && hasInstance.call(ctor, value);
const NonIntegerViews = [Float32Array, Float64Array, DataView, globalThis.Float16Array];
const getter = (proto, name) => Object.getOwnPropertyDescriptor(proto, name).get;
const TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype);
const taBuffer = getter(TypedArrayProto, 'buffer');
const taByteOffset = getter(TypedArrayProto, 'byteOffset');
const taByteLength = getter(TypedArrayProto, 'byteLength');
const u8Set = Uint8Array.prototype.set;

function randomBytes(length) {
  return new NativeUint8Array(host(OP_ENTROPY, length));
}

const hex = [];
for (let i = 0; i < 256; i++) hex.push((i < 16 ? '0' : '') + i.toString(16));

const crypto = {
  getRandomValues(array) {
    if (!isView(array) || instanceOf(array, NonIntegerViews[0]) || instanceOf(array, NonIntegerViews[1]) ||
        instanceOf(array, NonIntegerViews[2]) || instanceOf(array, NonIntegerViews[3])) {
      // As Node 20 and the spec: a DOMException, not a TypeError.
      throw new DOMException('crypto.getRandomValues: the data argument must be an integer-type TypedArray', 'TypeMismatchError');
    }
    const byteLength = taByteLength.call(array);
    if (byteLength > MAX_RANDOM_BYTES) {
      throw new DOMException('crypto.getRandomValues: ' + byteLength + ' bytes requested, at most 65536 allowed', 'QuotaExceededError');
    }
    u8Set.call(new NativeUint8Array(taBuffer.call(array), taByteOffset.call(array), byteLength), randomBytes(byteLength));
    return array;
  },
  randomUUID() {
    const b = randomBytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let s = '';
    for (let i = 0; i < 16; i++) {
      s += hex[b[i]];
      if (i === 3 || i === 5 || i === 7 || i === 9) s += '-';
    }
    return s;
  },
  subtle,
};
defineGlobal('crypto', crypto);

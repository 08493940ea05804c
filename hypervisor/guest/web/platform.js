// ftjs guest web platform: WinterTC / Workers-style web APIs for a bare QuickJS context.
//
// This module is bundled with the rest of hypervisor/guest/web/ into one script the guest VM
// evaluates at boot (hypervisor/vm/glue-build.ts). It has no host
// dependencies at all: it never calls a host function, never reads the clock (Date.now, new
// Date()) or Math.random, and keeps all state inside the objects it creates, so that a replayed
// VM behaves bit-for-bit like the recorded one. Built-ins it relies on at call time (escape,
// decodeURIComponent) are captured at boot, so guest monkey-patching cannot change its behaviour.
//
// Installed globals (non-enumerable, writable, configurable, as in browsers):
//   DOMException, Event, EventTarget, AbortController, AbortSignal, TextEncoder, TextDecoder,
//   atob, btoa, URL, URLSearchParams, Headers, Blob, Request, Response, structuredClone.
//
// Hypervisor interface: `globalThis.__ftjs_web` (captured then deleted by the hypervisor), see the
// end of this file. Notes for its users:
//   * makeRequest() does not validate and does not copy: the headers array and the body (a
//     Uint8Array, or a string the host already decoded) become owned by the Request (do not mutate
//     them afterwards). Header names are lower-cased lazily, when the service first reads
//     `request.headers`. The inbound request's headers are mutable (the spec would make them
//     immutable; being lenient breaks nothing).
//   * makeResponse() headers are immutable (guard "immutable"), response type is "basic".
//   * responseParts()/requestParts() return headers in insertion order with lower-cased names,
//     values of repeated names combined with ", ", except set-cookie which stays one entry per
//     cookie. The headers array and its entries may be internal: read them at once, never mutate
//     them. The body is null, a string, or a Uint8Array, in the form the service gave it: a string
//     body (given as a string, Response.json(), URLSearchParams, ...) stays a string, for the host
//     to UTF-8 encode natively (it is always well-formed: lone surrogates were replaced by U+FFFD);
//     other bodies are the internal Uint8Array itself (not a copy): treat it as read-only.
//
// Deliberate choices / known gaps (all documented again where they matter):
//   * Bodies are kept internally in the form they were given (a string is UTF-8 encoded only when
//     bytes are asked for), or as a ReadableStream (hypervisor/guest/web/streams.js, loaded lazily).
//     The `body` getter of Request/Response returns null when there is no body, otherwise a
//     ReadableStream: for a string or bytes body it is made on first read of `body` and replaces
//     the bytes; while nothing has read or locked it, consumers (text(), the hypervisor's
//     responseParts) still take the bytes whole, without running the stream.
//   * The record form of HeadersInit ({name: value}) reads the own enumerable string keys with
//     Object.keys() (the spec interleaves the enumerability checks with the reads; only a getter
//     that deletes or hides a later key can tell the difference).
//   * URL hosts: UTS #46 ToASCII (tr46, as whatwg-url) in idna.js, loaded on the first host that
//     is not plain ASCII.
//   * URL path percent-encoding follows Node 20 / current browsers (`^` is not encoded in paths),
//     and opaque paths use the "strip trailing spaces" rule, as Node 20 does.
//   * TextDecoder decodes UTF-8 here; encoding.js adds UTF-16LE/BE and windows-1252.
//   * FormData and File are in forms.js (they plug into the bodies through setFormBodyHooks).
//     AbortSignal.timeout() runs on the runtime's timers (useTimer). ReadableStream is in
//     streams.js (loaded on first use); crypto is not provided here.

import { installStreams, isReadableStream, streams, streamsLoaded } from './streams.js';
// Boot-time intrinsics for the request/response/body paths (the guest may replace the globals).
import { uncurryThis, ArrayIndexOf, StringCodePointAt, ArrayIsArray, ArrayIterator, ArrayMap, ArrayPush, ArraySlice, ArraySort, RegExpExec, StringCharCodeAt, StringIndexOf, StringSlice, StringToLowerCase, StringToUpperCase, MapCtor, MapDelete, MapGet, MapHas, MapSet, MapSize, PromiseResolve, PromiseReject, PromiseThen, SetAdd, SetCtor, SetDelete, SetHas, TypedArraySlice } from './primordials.js';

import { uts46ToASCII } from './idna.js';

const kInternal = Object.freeze({}); // private construction token, never leaves the bundle
// Natives captured at boot, so later monkey-patching by guest code cannot affect this file.
const nativeEscape = escape;
const nativeDecodeURIComponent = decodeURIComponent;
const EOF = -1;
const EMPTY_BYTES = new Uint8Array(0); // shared, never mutated

/** re.test(s) through the boot-time exec (RegExp.prototype.test looks `exec` up on the regex). */
function regExpTest(re, s) {
  return RegExpExec(re, s) !== null;
}
/** x.indexOf(...) of the boot-time String or Array method, whichever `x` is. */
function indexOfOf(x, search, from) {
  return typeof x === 'string' ? StringIndexOf(x, search, from) : ArrayIndexOf(x, search, from);
}
/** x.slice(...) of the boot-time String, Array or TypedArray method, whichever `x` is. */
function sliceOf(x, start, end) {
  if (typeof x === 'string') return StringSlice(x, start, end);
  if (ArrayIsArray(x)) return ArraySlice(x, start, end);
  return TypedArraySlice(x, start, end);
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

function defineGlobal(name, value) {
  Object.defineProperty(globalThis, name, { value, writable: true, enumerable: false, configurable: true });
}

function setTag(ctor, tag) {
  Object.defineProperty(ctor.prototype, Symbol.toStringTag, { value: tag, configurable: true });
}

// WebIDL DOMString / USVString conversions.
function toDOMString(v) {
  if (typeof v === 'string') return v;
  if (typeof v === 'symbol') throw new TypeError('Cannot convert a Symbol value to a string');
  return String(v);
}
function toUSVString(v) {
  const s = toDOMString(v);
  return s.isWellFormed() ? s : s.toWellFormed();
}
function isObjectLike(v) {
  return (typeof v === 'object' && v !== null) || typeof v === 'function';
}
function requireArgs(n, want, what) {
  if (n < want) throw new TypeError(`${what}: ${want} argument${want === 1 ? '' : 's'} required, but only ${n} present.`);
}

// Captured now: the hypervisor's runtime.js deletes the SharedArrayBuffer global after boot.
const SAB = typeof SharedArrayBuffer === 'function' ? SharedArrayBuffer : null;
function isArrayBufferLike(v) {
  return v instanceof ArrayBuffer || (SAB !== null && v instanceof SAB);
}

// Copy any BufferSource into a fresh Uint8Array; returns null if v is not a BufferSource.
function copyBufferSource(v) {
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice();
  if (isArrayBufferLike(v)) return new Uint8Array(v).slice();
  return null;
}
// View (no copy) of any BufferSource, or null.
function viewBufferSource(v) {
  if (ArrayBuffer.isView(v)) return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (isArrayBufferLike(v)) return new Uint8Array(v);
  return null;
}

function concatBytes(chunks, total) {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (let i = 0; i < chunks.length; i++) {
    out.set(chunks[i], off);
    off += chunks[i].length;
  }
  return out;
}

// Report an exception from a callback that must not propagate (event listeners): it surfaces as
// an unhandled promise rejection, which the host can observe, instead of being lost.
function reportException(e) {
  PromiseReject(e);
}

// ---------------------------------------------------------------------------------------------
// DOMException
// ---------------------------------------------------------------------------------------------

const DOM_ERROR_CODES = [
  ['IndexSizeError', 1, 'INDEX_SIZE_ERR'], ['DOMStringSizeError', 2, 'DOMSTRING_SIZE_ERR'],
  ['HierarchyRequestError', 3, 'HIERARCHY_REQUEST_ERR'], ['WrongDocumentError', 4, 'WRONG_DOCUMENT_ERR'],
  ['InvalidCharacterError', 5, 'INVALID_CHARACTER_ERR'], ['NoDataAllowedError', 6, 'NO_DATA_ALLOWED_ERR'],
  ['NoModificationAllowedError', 7, 'NO_MODIFICATION_ALLOWED_ERR'], ['NotFoundError', 8, 'NOT_FOUND_ERR'],
  ['NotSupportedError', 9, 'NOT_SUPPORTED_ERR'], ['InUseAttributeError', 10, 'INUSE_ATTRIBUTE_ERR'],
  ['InvalidStateError', 11, 'INVALID_STATE_ERR'], ['SyntaxError', 12, 'SYNTAX_ERR'],
  ['InvalidModificationError', 13, 'INVALID_MODIFICATION_ERR'], ['NamespaceError', 14, 'NAMESPACE_ERR'],
  ['InvalidAccessError', 15, 'INVALID_ACCESS_ERR'], ['ValidationError', 16, 'VALIDATION_ERR'],
  ['TypeMismatchError', 17, 'TYPE_MISMATCH_ERR'], ['SecurityError', 18, 'SECURITY_ERR'],
  ['NetworkError', 19, 'NETWORK_ERR'], ['AbortError', 20, 'ABORT_ERR'],
  ['URLMismatchError', 21, 'URL_MISMATCH_ERR'], ['QuotaExceededError', 22, 'QUOTA_EXCEEDED_ERR'],
  ['TimeoutError', 23, 'TIMEOUT_ERR'], ['InvalidNodeTypeError', 24, 'INVALID_NODE_TYPE_ERR'],
  ['DataCloneError', 25, 'DATA_CLONE_ERR'],
];
const domCodeByName = new MapCtor();
for (const [n, c] of DOM_ERROR_CODES) MapSet(domCodeByName, n, c);

class DOMException extends Error {
  #name;
  #message;
  constructor(message = '', options = 'Error') {
    super();
    this.#message = toDOMString(message);
    // The options-bag form ({ name, cause }) is part of the current WebIDL spec.
    if (isObjectLike(options)) {
      this.#name = options.name === undefined ? 'Error' : toDOMString(options.name);
      if ('cause' in options) {
        Object.defineProperty(this, 'cause', { value: options.cause, writable: true, configurable: true, enumerable: false });
      }
    } else {
      this.#name = toDOMString(options);
    }
  }
  get name() { return this.#name; }
  get message() { return this.#message; }
  get code() { return MapGet(domCodeByName, this.#name) || 0; }
}
setTag(DOMException, 'DOMException');
// WebIDL attributes are enumerable (class getters are not).
for (const k of ['name', 'message', 'code']) {
  const d = Object.getOwnPropertyDescriptor(DOMException.prototype, k);
  d.enumerable = true;
  Object.defineProperty(DOMException.prototype, k, d);
}
for (const [, c, k] of DOM_ERROR_CODES) {
  Object.defineProperty(DOMException, k, { value: c, enumerable: true });
  Object.defineProperty(DOMException.prototype, k, { value: c, enumerable: true });
}

// ---------------------------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------------------------

// Encode a JS string as UTF-8. Lone surrogates become U+FFFD (EF BF BD).
function utf8Encode(str) {
  const len = str.length;
  // Optimistic single pass assuming ASCII (the common case).
  const ascii = new Uint8Array(len);
  let i = 0;
  for (; i < len; i++) {
    const c = str.charCodeAt(i);
    if (c >= 0x80) break;
    ascii[i] = c;
  }
  if (i === len) return ascii;
  // Count the exact length of the non-ASCII remainder.
  let n = i;
  for (let j = i; j < len; j++) {
    const c = str.charCodeAt(j);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xD800 && c <= 0xDBFF && j + 1 < len && (str.charCodeAt(j + 1) & 0xFC00) === 0xDC00) { n += 4; j++; }
    else n += 3;
  }
  const out = new Uint8Array(n);
  out.set(ascii.subarray(0, i));
  let p = i;
  for (let j = i; j < len; j++) {
    let c = str.charCodeAt(j);
    if (c < 0x80) { out[p++] = c; continue; }
    if (c < 0x800) { out[p++] = 0xC0 | (c >> 6); out[p++] = 0x80 | (c & 0x3F); continue; }
    if (c >= 0xD800 && c <= 0xDFFF) {
      if (c <= 0xDBFF && j + 1 < len) {
        const d = str.charCodeAt(j + 1);
        if ((d & 0xFC00) === 0xDC00) {
          c = 0x10000 + ((c - 0xD800) << 10) + (d - 0xDC00);
          j++;
          out[p++] = 0xF0 | (c >> 18);
          out[p++] = 0x80 | ((c >> 12) & 0x3F);
          out[p++] = 0x80 | ((c >> 6) & 0x3F);
          out[p++] = 0x80 | (c & 0x3F);
          continue;
        }
      }
      c = 0xFFFD;
    }
    out[p++] = 0xE0 | (c >> 12);
    out[p++] = 0x80 | ((c >> 6) & 0x3F);
    out[p++] = 0x80 | (c & 0x3F);
  }
  return out;
}

const CHUNK = 8192;
const fromCharCode = String.fromCharCode;
const reflectApply = Reflect.apply;
const NON_ASCII_RE = /[^\x00-\x7F]/;
// Bytes (each < 256) to a string of the same code units.
function latin1ToString(bytes, start, end) {
  if (end - start <= CHUNK) return String.fromCharCode.apply(null, start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end));
  let s = '';
  for (let i = start; i < end; i += CHUNK) s += String.fromCharCode.apply(null, bytes.subarray(i, Math.min(end, i + CHUNK)));
  return s;
}

function decodeFailure() {
  return new TypeError('The encoded data was not valid for encoding utf-8');
}

// The WHATWG UTF-8 decoder. `st` is null for a one-shot decode (flushes at the end), or a
// mutable state object {need, seen, cp, lower, upper} for streaming. Throws TypeError when
// `fatal` and an error is found; otherwise errors become U+FFFD exactly as the spec says.
function utf8DecodeCore(bytes, fatal, st) {
  const len = bytes.length;
  if (len === 0) return '';
  if (st === null || st.need === 0) {
    // Native fast paths: bytes -> Latin-1 string, which is the result if it is all ASCII.
    // Otherwise escape() gives %XX for every non-ASCII byte and decodeURIComponent() decodes
    // UTF-8. ECMAScript's Decode throws on anything that is not well-formed UTF-8 (overlong
    // forms, surrogates, > U+10FFFF, truncation), so when it succeeds the result is exactly
    // what the spec decoder produces (and no state is pending).
    const latin1 = latin1ToString(bytes, 0, len);
    if (!regExpTest(NON_ASCII_RE, latin1)) return latin1;
    try {
      return nativeDecodeURIComponent(nativeEscape(latin1));
    } catch {
      // fall through to the exact decoder for error handling
    }
  }
  let need = 0, seen = 0, cp = 0, lower = 0x80, upper = 0xBF;
  if (st !== null) { need = st.need; seen = st.seen; cp = st.cp; lower = st.lower; upper = st.upper; }
  let i = 0;
  const units = new Uint16Array(len + 4);
  let n = 0;
  for (; i < len; i++) {
    const b = bytes[i];
    if (need === 0) {
      if (b < 0x80) { units[n++] = b; continue; }
      if (b >= 0xC2 && b <= 0xDF) { need = 1; cp = b & 0x1F; continue; }
      if (b >= 0xE0 && b <= 0xEF) {
        if (b === 0xE0) lower = 0xA0; else if (b === 0xED) upper = 0x9F;
        need = 2; cp = b & 0x0F; continue;
      }
      if (b >= 0xF0 && b <= 0xF4) {
        if (b === 0xF0) lower = 0x90; else if (b === 0xF4) upper = 0x8F;
        need = 3; cp = b & 0x07; continue;
      }
      if (fatal) { if (st !== null) resetDecodeState(st); throw decodeFailure(); }
      units[n++] = 0xFFFD;
      continue;
    }
    if (b < lower || b > upper) {
      cp = 0; need = 0; seen = 0; lower = 0x80; upper = 0xBF;
      if (fatal) { if (st !== null) resetDecodeState(st); throw decodeFailure(); }
      units[n++] = 0xFFFD;
      i--; // reprocess this byte
      continue;
    }
    lower = 0x80; upper = 0xBF;
    cp = (cp << 6) | (b & 0x3F);
    if (++seen !== need) continue;
    if (cp > 0xFFFF) {
      cp -= 0x10000;
      units[n++] = 0xD800 | (cp >> 10);
      units[n++] = 0xDC00 | (cp & 0x3FF);
    } else {
      units[n++] = cp;
    }
    cp = 0; need = 0; seen = 0;
  }
  if (st === null) {
    if (need !== 0) {
      if (fatal) throw decodeFailure();
      units[n++] = 0xFFFD;
    }
  } else {
    st.need = need; st.seen = seen; st.cp = cp; st.lower = lower; st.upper = upper;
  }
  let s = '';
  for (let k = 0; k < n; k += CHUNK) s += String.fromCharCode.apply(null, units.subarray(k, Math.min(n, k + CHUNK)));
  return s;
}
function resetDecodeState(st) {
  st.need = 0; st.seen = 0; st.cp = 0; st.lower = 0x80; st.upper = 0xBF;
}
// "UTF-8 decode without BOM" (replacement mode).
function utf8DecodeNoBOM(bytes) {
  return utf8DecodeCore(bytes, false, null);
}
// "UTF-8 decode" (replacement mode, a leading BOM is dropped): used by text()/json().
function utf8DecodeStripBOM(bytes) {
  if (bytes.length >= 3 && bytes[0] === 0xEF && bytes[1] === 0xBB && bytes[2] === 0xBF) bytes = bytes.subarray(3);
  return utf8DecodeCore(bytes, false, null);
}

const UTF8_LABELS = new SetCtor(['unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'utf-8', 'utf8', 'x-unicode20utf8']);

class TextEncoder {
  get encoding() { return 'utf-8'; }
  encode(input = '') {
    return utf8Encode(toDOMString(input));
  }
  encodeInto(source, destination) {
    requireArgs(arguments.length, 2, "Failed to execute 'encodeInto' on 'TextEncoder'");
    const src = toDOMString(source);
    if (!(destination instanceof Uint8Array)) throw new TypeError("Failed to execute 'encodeInto' on 'TextEncoder': parameter 2 is not of type 'Uint8Array'.");
    const dest = destination;
    const cap = dest.length;
    const len = src.length;
    let read = 0, written = 0;
    while (read < len) {
      let c = src.charCodeAt(read);
      if (c < 0x80) {
        if (written >= cap) break;
        dest[written++] = c; read++; continue;
      }
      if (c < 0x800) {
        if (written + 2 > cap) break;
        dest[written++] = 0xC0 | (c >> 6); dest[written++] = 0x80 | (c & 0x3F); read++; continue;
      }
      if (c >= 0xD800 && c <= 0xDBFF && read + 1 < len && (src.charCodeAt(read + 1) & 0xFC00) === 0xDC00) {
        if (written + 4 > cap) break;
        c = 0x10000 + ((c - 0xD800) << 10) + (src.charCodeAt(read + 1) - 0xDC00);
        dest[written++] = 0xF0 | (c >> 18);
        dest[written++] = 0x80 | ((c >> 12) & 0x3F);
        dest[written++] = 0x80 | ((c >> 6) & 0x3F);
        dest[written++] = 0x80 | (c & 0x3F);
        read += 2;
        continue;
      }
      if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;
      if (written + 3 > cap) break;
      dest[written++] = 0xE0 | (c >> 12);
      dest[written++] = 0x80 | ((c >> 6) & 0x3F);
      dest[written++] = 0x80 | (c & 0x3F);
      read++;
    }
    return { read, written };
  }
}
setTag(TextEncoder, 'TextEncoder');

// Encodings other than UTF-8 live in encoding.js: lookup(label) gives null or a decoder
// { name, bom (drop a leading U+FEFF), decode(bytes, fatal, state|null, flush) } (setTextDecoderHooks).
let legacyEncodings = null;
export function setTextDecoderHooks(hooks) {
  legacyEncodings = hooks;
}

class TextDecoder {
  #fatal;
  #ignoreBOM;
  #state = null; // streaming state, null when idle
  #bomSeen = false;
  #legacy = null; // a decoder from encoding.js, null for UTF-8
  constructor(label = 'utf-8', options = undefined) {
    const l = label === 'utf-8' ? label : toDOMString(label).replace(/^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, '').toLowerCase();
    if (!SetHas(UTF8_LABELS, l)) {
      this.#legacy = legacyEncodings === null ? null : legacyEncodings.lookup(l);
      if (this.#legacy === null) throw new RangeError(`The "${label}" encoding is not supported`);
    }
    if (options !== undefined && options !== null && !isObjectLike(options)) throw new TypeError('TextDecoder options must be an object');
    this.#fatal = options ? Boolean(options.fatal) : false;
    this.#ignoreBOM = options ? Boolean(options.ignoreBOM) : false;
  }
  get encoding() { return this.#legacy === null ? 'utf-8' : this.#legacy.name; }
  get fatal() { return this.#fatal; }
  get ignoreBOM() { return this.#ignoreBOM; }
  decode(input = undefined, options = undefined) {
    let bytes;
    if (input === undefined || input === null) bytes = new Uint8Array(0);
    else {
      bytes = viewBufferSource(input);
      if (bytes === null) throw new TypeError("Failed to execute 'decode' on 'TextDecoder': The provided value is not of type '(ArrayBuffer or ArrayBufferView)'");
    }
    const stream = options !== undefined && options !== null ? Boolean(options.stream) : false;
    const legacy = this.#legacy;
    let st = this.#state;
    if (stream && st === null) st = this.#state = legacy !== null ? legacy.newState() : { need: 0, seen: 0, cp: 0, lower: 0x80, upper: 0xBF };
    let out;
    try {
      if (legacy !== null) out = legacy.decode(bytes, this.#fatal, st, !stream);
      else if (st === null) out = utf8DecodeCore(bytes, this.#fatal, null);
      else {
        out = utf8DecodeCore(bytes, this.#fatal, st);
        if (!stream) {
          // flush
          if (st.need !== 0) {
            resetDecodeState(st);
            if (this.#fatal) throw decodeFailure();
            out += '\uFFFD';
          }
        }
      }
    } catch (e) {
      this.#state = null;
      this.#bomSeen = false;
      throw e;
    }
    if (!this.#ignoreBOM && !this.#bomSeen && out.length > 0 && (legacy === null || legacy.bom)) {
      this.#bomSeen = true;
      if (out.charCodeAt(0) === 0xFEFF) out = out.slice(1);
    }
    if (!stream) {
      this.#state = null;
      this.#bomSeen = false;
    }
    return out;
  }
}
setTag(TextDecoder, 'TextDecoder');

// ---------------------------------------------------------------------------------------------
// Base64 (atob / btoa)
// ---------------------------------------------------------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_REV = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_REV[B64.charCodeAt(i)] = i;

function btoa(data) {
  requireArgs(arguments.length, 1, 'btoa');
  const s = toDOMString(data);
  const len = s.length;
  const out = new Uint8Array(((len + 2) / 3 | 0) * 4);
  let p = 0, i = 0;
  for (; i + 2 < len; i += 3) {
    const a = s.charCodeAt(i), b = s.charCodeAt(i + 1), c = s.charCodeAt(i + 2);
    if ((a | b | c) > 0xFF) throw new DOMException('Invalid character', 'InvalidCharacterError');
    out[p++] = B64.charCodeAt(a >> 2);
    out[p++] = B64.charCodeAt(((a & 3) << 4) | (b >> 4));
    out[p++] = B64.charCodeAt(((b & 15) << 2) | (c >> 6));
    out[p++] = B64.charCodeAt(c & 63);
  }
  if (i < len) {
    const a = StringCharCodeAt(s, i), b = i + 1 < len ? StringCharCodeAt(s, i + 1) : 0;
    if ((a | b) > 0xFF) throw new DOMException('Invalid character', 'InvalidCharacterError');
    out[p++] = StringCharCodeAt(B64, a >> 2);
    out[p++] = StringCharCodeAt(B64, ((a & 3) << 4) | (b >> 4));
    out[p++] = i + 1 < len ? StringCharCodeAt(B64, (b & 15) << 2) : 61;
    out[p++] = 61;
  }
  return latin1ToString(out, 0, p);
}

const ASCII_WS_RE = /[\t\n\f\r ]/g;
// Forgiving-base64 decode to bytes. On failure returns BASE64_BAD_CHAR or BASE64_BAD_LENGTH
// (both are failures per spec; the distinction only selects Node's error message).
const BASE64_BAD_CHAR = 1, BASE64_BAD_LENGTH = 2;
function base64DecodeBytes(s) {
  if (regExpTest(/[\t\n\f\r ]/, s)) s = s.replace(ASCII_WS_RE, '');
  let len = s.length;
  if (len % 4 === 0 && len > 0) {
    if (StringCharCodeAt(s, len - 1) === 61) { len--; if (StringCharCodeAt(s, len - 1) === 61) len--; }
  }
  for (let i = 0; i < len; i++) {
    const c = StringCharCodeAt(s, i);
    if (c >= 128 || B64_REV[c] < 0) return BASE64_BAD_CHAR;
  }
  if (len % 4 === 1) return BASE64_BAD_LENGTH;
  const out = new Uint8Array((len * 3) >> 2);
  let buf = 0, bits = 0, p = 0;
  for (let i = 0; i < len; i++) {
    const v = B64_REV[StringCharCodeAt(s, i)];
    buf = (buf << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[p++] = (buf >> bits) & 0xFF;
    }
  }
  return p === out.length ? out : out.subarray(0, p);
}

function atob(data) {
  requireArgs(arguments.length, 1, 'atob');
  const bytes = base64DecodeBytes(toDOMString(data));
  if (bytes === BASE64_BAD_CHAR) throw new DOMException('Invalid character', 'InvalidCharacterError');
  if (bytes === BASE64_BAD_LENGTH) throw new DOMException('The string to be decoded is not correctly encoded.', 'InvalidCharacterError');
  return latin1ToString(bytes, 0, bytes.length);
}

// ---------------------------------------------------------------------------------------------
// Percent-encoding
// ---------------------------------------------------------------------------------------------

const SET_C0 = 1, SET_FRAGMENT = 2, SET_QUERY = 4, SET_SPECIAL_QUERY = 8, SET_PATH = 16,
  SET_USERINFO = 32, SET_COMPONENT = 64, SET_FORM = 128;
const ENCODE_SETS = new Uint8Array(128);
(function () {
  const has = (list, c) => indexOfOf(list, String.fromCharCode(c)) >= 0;
  for (let c = 0; c < 128; c++) {
    let f = 0;
    const c0 = c < 0x20 || c === 0x7F;
    if (c0) f |= SET_C0;
    if (c0 || has(' "<>`', c)) f |= SET_FRAGMENT;
    const q = c0 || has(' "#<>', c);
    if (q) f |= SET_QUERY;
    if (q || c === 0x27) f |= SET_SPECIAL_QUERY;
    // Path set as implemented by Node 20 and browsers (without the 2025 addition of "^").
    const path = q || has('?`{}', c);
    if (path) f |= SET_PATH;
    const ui = path || has('/:;=@[\\]^|', c);
    if (ui) f |= SET_USERINFO;
    const comp = ui || has('$%&+,', c);
    if (comp) f |= SET_COMPONENT;
    if (comp || has("!'()~", c)) f |= SET_FORM;
    ENCODE_SETS[c] = f;
  }
})();
const HEX_BYTE = [];
for (let i = 0; i < 256; i++) ArrayPush(HEX_BYTE, '%' + (i < 16 ? '0' : '') + i.toString(16).toUpperCase());

function pctEncodeCodePoint(cp) {
  if (cp < 0x80) return HEX_BYTE[cp];
  if (cp < 0x800) return HEX_BYTE[0xC0 | (cp >> 6)] + HEX_BYTE[0x80 | (cp & 0x3F)];
  if (cp < 0x10000) return HEX_BYTE[0xE0 | (cp >> 12)] + HEX_BYTE[0x80 | ((cp >> 6) & 0x3F)] + HEX_BYTE[0x80 | (cp & 0x3F)];
  return HEX_BYTE[0xF0 | (cp >> 18)] + HEX_BYTE[0x80 | ((cp >> 12) & 0x3F)] + HEX_BYTE[0x80 | ((cp >> 6) & 0x3F)] + HEX_BYTE[0x80 | (cp & 0x3F)];
}

// UTF-8 percent-encode every code point of s that is in the encode set `bit` (non-ASCII code
// points are always in every set). With spaceAsPlus, U+0020 becomes "+" (form encoding).
function pctEncode(s, bit, spaceAsPlus) {
  const n = s.length;
  let i = 0;
  for (; i < n; i++) {
    const c = StringCharCodeAt(s, i);
    if (c >= 0x80 || (ENCODE_SETS[c] & bit) !== 0) break;
  }
  if (i === n) return s;
  let out = sliceOf(s, 0, i);
  let start = i;
  for (; i < n; i++) {
    const c = StringCharCodeAt(s, i);
    if (c < 0x80) {
      if ((ENCODE_SETS[c] & bit) !== 0) {
        out += sliceOf(s, start, i) + (spaceAsPlus && c === 0x20 ? '+' : HEX_BYTE[c]);
        start = i + 1;
      }
      continue;
    }
    out += sliceOf(s, start, i);
    let cp = c;
    if (c >= 0xD800 && c <= 0xDFFF) {
      if (c <= 0xDBFF && i + 1 < n && (StringCharCodeAt(s, i + 1) & 0xFC00) === 0xDC00) {
        cp = 0x10000 + ((c - 0xD800) << 10) + (StringCharCodeAt(s, i + 1) - 0xDC00);
        i++;
      } else {
        cp = 0xFFFD;
      }
    }
    out += pctEncodeCodePoint(cp);
    start = i + 1;
  }
  return out + sliceOf(s, start);
}

function hexVal(b) {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  return -1;
}

// Percent-decode a string to bytes (the string is UTF-8 encoded first).
function pctDecodeToBytes(s) {
  const bytes = utf8Encode(s);
  const len = bytes.length;
  const out = new Uint8Array(len);
  let n = 0;
  for (let i = 0; i < len; i++) {
    const b = bytes[i];
    if (b === 0x25 && i + 2 < len) {
      const h = hexVal(bytes[i + 1]), l = hexVal(bytes[i + 2]);
      if (h >= 0 && l >= 0) { out[n++] = (h << 4) | l; i += 2; continue; }
    }
    out[n++] = b;
  }
  return out.subarray(0, n);
}

// application/x-www-form-urlencoded value decoding ("+" is space, then percent-decode, then
// UTF-8 decode without BOM). decodeURIComponent is used as a native fast path: when it
// succeeds every escape formed valid UTF-8, which is exactly what the spec would produce.
function formDecode(s) {
  if (indexOfOf(s, '+') >= 0) s = s.replaceAll('+', ' ');
  if (!s.isWellFormed()) s = s.toWellFormed();
  if (indexOfOf(s, '%') < 0) return s;
  try {
    return nativeDecodeURIComponent(s);
  } catch {
    return utf8DecodeNoBOM(pctDecodeToBytes(s));
  }
}

function formParse(s) {
  const list = [];
  if (s === '') return list;
  let start = 0;
  const len = s.length;
  while (start <= len) {
    let amp = indexOfOf(s, '&', start);
    if (amp < 0) amp = len;
    if (amp > start) {
      const seq = sliceOf(s, start, amp);
      const eq = indexOfOf(seq, '=');
      if (eq < 0) ArrayPush(list, [formDecode(seq), '']);
      else ArrayPush(list, [formDecode(sliceOf(seq, 0, eq)), formDecode(sliceOf(seq, eq + 1))]);
    }
    start = amp + 1;
  }
  return list;
}

function formSerialize(list) {
  let out = '';
  for (let i = 0; i < list.length; i++) {
    if (i > 0) out += '&';
    out += pctEncode(list[i][0], SET_FORM, true) + '=' + pctEncode(list[i][1], SET_FORM, true);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// URL parsing (WHATWG URL Standard, basic URL parser)
// ---------------------------------------------------------------------------------------------

const SPECIAL_PORTS = new MapCtor([['ftp', 21], ['file', null], ['http', 80], ['https', 443], ['ws', 80], ['wss', 443]]);
function isSpecialScheme(s) { return MapHas(SPECIAL_PORTS, s); }
function defaultPort(s) { const p = MapGet(SPECIAL_PORTS, s); return p === undefined ? null : p; }

// URL record: { scheme, username, password, host (string|null; serialized), port (number|null),
//               path (string[] or string when opaque), query (string|null), fragment (string|null) }
function newURLRecord() {
  return { scheme: '', username: '', password: '', host: null, port: null, path: [], query: null, fragment: null };
}
function copyURLRecordInto(dst, src) {
  dst.scheme = src.scheme; dst.username = src.username; dst.password = src.password;
  dst.host = src.host; dst.port = src.port; dst.path = src.path; dst.query = src.query; dst.fragment = src.fragment;
}
function includesCredentials(u) { return u.username !== '' || u.password !== ''; }
function cannotHaveCredentialsOrPort(u) { return u.host === null || u.host === '' || u.scheme === 'file'; }
function hasOpaquePath(u) { return typeof u.path === 'string'; }

function isAlpha(c) { return (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A); }
function isDigit(c) { return c >= 0x30 && c <= 0x39; }
function isHexDigit(c) { return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66); }

function isWindowsDriveLetter(s) {
  if (s.length !== 2 || !isAlpha(StringCharCodeAt(s, 0))) return false;
  const c = StringCharCodeAt(s, 1);
  return c === 0x3A || c === 0x7C;
}
function isNormalizedWindowsDriveLetter(s) {
  return s.length === 2 && isAlpha(StringCharCodeAt(s, 0)) && StringCharCodeAt(s, 1) === 0x3A;
}
function startsWithWindowsDriveLetter(input, p) {
  if (input.length - p < 2) return false;
  if (!isAlpha(StringCharCodeAt(input, p))) return false;
  const c1 = StringCharCodeAt(input, p + 1);
  if (c1 !== 0x3A && c1 !== 0x7C) return false;
  if (input.length - p === 2) return true;
  const c2 = StringCharCodeAt(input, p + 2);
  return c2 === 0x2F || c2 === 0x5C || c2 === 0x3F || c2 === 0x23;
}
function isSingleDot(s) {
  return s === '.' || (s.length === 3 && StringToLowerCase(s) === '%2e');
}
function isDoubleDot(s) {
  if (s === '..') return true;
  const l = s.length;
  if (l !== 4 && l !== 6) return false;
  const t = StringToLowerCase(s);
  return t === '.%2e' || t === '%2e.' || t === '%2e%2e';
}
function shortenPath(u) {
  const path = u.path;
  if (u.scheme === 'file' && path.length === 1 && isNormalizedWindowsDriveLetter(path[0])) return;
  path.pop();
}

// --- hosts ---

const FORBIDDEN_HOST_RE = /[\x00\t\n\r #/:<>?@[\\\]^|]/;
const FORBIDDEN_DOMAIN_RE = /[\x00-\x20#%/:<>?@[\\\]^|\x7F]/;

function parseIPv4Number(s) {
  if (s === '') return null;
  let radix = 10;
  if (s.length >= 2 && StringCharCodeAt(s, 0) === 0x30 && (StringCharCodeAt(s, 1) | 0x20) === 0x78) { s = sliceOf(s, 2); radix = 16; }
  else if (s.length >= 2 && StringCharCodeAt(s, 0) === 0x30) { s = sliceOf(s, 1); radix = 8; }
  if (s === '') return 0;
  const re = radix === 10 ? /^[0-9]+$/ : radix === 16 ? /^[0-9A-Fa-f]+$/ : /^[0-7]+$/;
  if (!regExpTest(re, s)) return null;
  return parseInt(s, radix);
}
function endsInNumber(s) {
  const parts = s.split('.');
  if (parts[parts.length - 1] === '') {
    if (parts.length === 1) return false;
    parts.pop();
  }
  const last = parts[parts.length - 1];
  if (last !== '' && regExpTest(/^[0-9]+$/, last)) return true;
  return parseIPv4Number(last) !== null;
}
function parseIPv4(s) {
  const parts = s.split('.');
  if (parts[parts.length - 1] === '' && parts.length > 1) parts.pop();
  if (parts.length > 4) return null;
  const nums = [];
  for (let i = 0; i < parts.length; i++) {
    const n = parseIPv4Number(parts[i]);
    if (n === null) return null;
    ArrayPush(nums, n);
  }
  const last = nums.length - 1;
  for (let i = 0; i < last; i++) if (nums[i] > 255) return null;
  if (nums[last] >= 256 ** (5 - nums.length)) return null;
  let v = nums[last];
  for (let i = 0; i < last; i++) v += nums[i] * 256 ** (3 - i);
  return v;
}
function serializeIPv4(n) {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function parseIPv6(input) {
  const address = [0, 0, 0, 0, 0, 0, 0, 0];
  const len = input.length;
  let pieceIndex = 0, compress = null, p = 0;
  const at = (i) => (i < len ? StringCharCodeAt(input, i) : EOF);
  if (at(p) === 0x3A) {
    if (at(p + 1) !== 0x3A) return null;
    p += 2;
    pieceIndex++;
    compress = pieceIndex;
  }
  while (at(p) !== EOF) {
    if (pieceIndex === 8) return null;
    if (at(p) === 0x3A) {
      if (compress !== null) return null;
      p++;
      pieceIndex++;
      compress = pieceIndex;
      continue;
    }
    let value = 0, length = 0;
    while (length < 4 && isHexDigit(at(p))) {
      value = value * 0x10 + hexVal(at(p));
      p++;
      length++;
    }
    if (at(p) === 0x2E) {
      if (length === 0) return null;
      p -= length;
      if (pieceIndex > 6) return null;
      let numbersSeen = 0;
      while (at(p) !== EOF) {
        let ipv4Piece = null;
        if (numbersSeen > 0) {
          if (at(p) === 0x2E && numbersSeen < 4) p++;
          else return null;
        }
        if (!isDigit(at(p))) return null;
        while (isDigit(at(p))) {
          const number = at(p) - 0x30;
          if (ipv4Piece === null) ipv4Piece = number;
          else if (ipv4Piece === 0) return null;
          else ipv4Piece = ipv4Piece * 10 + number;
          if (ipv4Piece > 255) return null;
          p++;
        }
        address[pieceIndex] = address[pieceIndex] * 0x100 + ipv4Piece;
        numbersSeen++;
        if (numbersSeen === 2 || numbersSeen === 4) pieceIndex++;
      }
      if (numbersSeen !== 4) return null;
      break;
    } else if (at(p) === 0x3A) {
      p++;
      if (at(p) === EOF) return null;
    } else if (at(p) !== EOF) {
      return null;
    }
    address[pieceIndex] = value;
    pieceIndex++;
  }
  if (compress !== null) {
    let swaps = pieceIndex - compress;
    pieceIndex = 7;
    while (pieceIndex !== 0 && swaps > 0) {
      const t = address[pieceIndex];
      address[pieceIndex] = address[compress + swaps - 1];
      address[compress + swaps - 1] = t;
      pieceIndex--;
      swaps--;
    }
  } else if (pieceIndex !== 8) {
    return null;
  }
  return address;
}
function serializeIPv6(a) {
  // Longest run (>1) of zero pieces, first one on ties.
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (a[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && a[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  let out = '';
  let ignore0 = false;
  for (let i = 0; i < 8; i++) {
    if (ignore0 && a[i] === 0) continue;
    ignore0 = false;
    if (best === i) {
      out += i === 0 ? '::' : ':';
      ignore0 = true;
      continue;
    }
    out += a[i].toString(16);
    if (i !== 7) out += ':';
  }
  return out;
}

function domainToASCII(domain) {
  const result = uts46ToASCII(domain);
  if (result === null || result === '' || regExpTest(FORBIDDEN_DOMAIN_RE, result)) return null;
  return result;
}

// Returns the serialized host, or null on failure.
function parseHost(input, isOpaque) {
  if (StringCharCodeAt(input, 0) === 0x5B) {
    if (StringCharCodeAt(input, input.length - 1) !== 0x5D) return null;
    const a = parseIPv6(sliceOf(input, 1, -1));
    return a === null ? null : '[' + serializeIPv6(a) + ']';
  }
  if (isOpaque) {
    if (regExpTest(FORBIDDEN_HOST_RE, input)) return null;
    return pctEncode(input, SET_C0, false);
  }
  const domain = indexOfOf(input, '%') < 0 ? (input.isWellFormed() ? input : input.toWellFormed()) : utf8DecodeNoBOM(pctDecodeToBytes(input));
  const ascii = domainToASCII(domain);
  if (ascii === null) return null;
  if (endsInNumber(ascii)) {
    const v4 = parseIPv4(ascii);
    return v4 === null ? null : serializeIPv4(v4);
  }
  return ascii;
}

// --- the state machine ---

const S_SCHEME_START = 1, S_SCHEME = 2, S_NO_SCHEME = 3, S_SPECIAL_RELATIVE_OR_AUTHORITY = 4,
  S_PATH_OR_AUTHORITY = 5, S_RELATIVE = 6, S_RELATIVE_SLASH = 7, S_SPECIAL_AUTHORITY_SLASHES = 8,
  S_SPECIAL_AUTHORITY_IGNORE_SLASHES = 9, S_AUTHORITY = 10, S_HOST = 11, S_HOSTNAME = 12, S_PORT = 13,
  S_FILE = 14, S_FILE_SLASH = 15, S_FILE_HOST = 16, S_PATH_START = 17, S_PATH = 18, S_OPAQUE_PATH = 19,
  S_QUERY = 20, S_FRAGMENT = 21;

const C0_SPACE_TRIM_RE = /^[\x00-\x20]+|[\x00-\x20]+$/g;
const TAB_NEWLINE_RE = /[\t\n\r]/g;

// The basic URL parser. Returns the URL record, or null on failure. With a state override it
// mutates `url` in place (the return value then only distinguishes failure).
function basicParse(input, base, url, override) {
  if (url === null) {
    url = newURLRecord();
    const c0 = input.length > 0 ? StringCharCodeAt(input, 0) : 0x21;
    const cl = input.length > 0 ? StringCharCodeAt(input, input.length - 1) : 0x21;
    if (c0 <= 0x20 || cl <= 0x20) input = input.replace(C0_SPACE_TRIM_RE, '');
  }
  if (indexOfOf(input, '\t') >= 0 || indexOfOf(input, '\n') >= 0 || indexOfOf(input, '\r') >= 0) input = input.replace(TAB_NEWLINE_RE, '');
  let state = override || S_SCHEME_START;
  let buffer = '';
  let atSignSeen = false, insideBrackets = false, passwordTokenSeen = false;
  const len = input.length;
  let special = isSpecialScheme(url.scheme);
  let p = 0;
  for (;;) {
    const c = p < len ? StringCharCodeAt(input, p) : EOF;
    switch (state) {
      case S_SCHEME_START:
        if (isAlpha(c)) {
          buffer += String.fromCharCode(c | 0x20);
          state = S_SCHEME;
        } else if (!override) {
          state = S_NO_SCHEME;
          p--;
        } else {
          return null;
        }
        break;

      case S_SCHEME:
        if (isAlpha(c)) {
          buffer += String.fromCharCode(c | 0x20);
        } else if (isDigit(c) || c === 0x2B || c === 0x2D || c === 0x2E) {
          buffer += String.fromCharCode(c);
        } else if (c === 0x3A) {
          if (override) {
            if (isSpecialScheme(url.scheme) !== isSpecialScheme(buffer)) return url;
            if ((includesCredentials(url) || url.port !== null) && buffer === 'file') return url;
            if (url.scheme === 'file' && url.host === '') return url;
          }
          url.scheme = buffer;
          special = isSpecialScheme(buffer);
          if (override) {
            if (url.port === defaultPort(url.scheme)) url.port = null;
            return url;
          }
          buffer = '';
          if (url.scheme === 'file') {
            state = S_FILE;
          } else if (special && base !== null && base.scheme === url.scheme) {
            state = S_SPECIAL_RELATIVE_OR_AUTHORITY;
          } else if (special) {
            state = S_SPECIAL_AUTHORITY_SLASHES;
          } else if (p + 1 < len && StringCharCodeAt(input, p + 1) === 0x2F) {
            state = S_PATH_OR_AUTHORITY;
            p++;
          } else {
            url.path = '';
            state = S_OPAQUE_PATH;
          }
        } else if (!override) {
          buffer = '';
          state = S_NO_SCHEME;
          p = -1;
        } else {
          return null;
        }
        break;

      case S_NO_SCHEME:
        if (base === null || (hasOpaquePath(base) && c !== 0x23)) return null;
        if (hasOpaquePath(base) && c === 0x23) {
          url.scheme = base.scheme;
          special = isSpecialScheme(url.scheme);
          url.path = base.path;
          url.query = base.query;
          url.fragment = '';
          state = S_FRAGMENT;
        } else if (base.scheme !== 'file') {
          state = S_RELATIVE;
          p--;
        } else {
          state = S_FILE;
          p--;
        }
        break;

      case S_SPECIAL_RELATIVE_OR_AUTHORITY:
        if (c === 0x2F && p + 1 < len && StringCharCodeAt(input, p + 1) === 0x2F) {
          state = S_SPECIAL_AUTHORITY_IGNORE_SLASHES;
          p++;
        } else {
          state = S_RELATIVE;
          p--;
        }
        break;

      case S_PATH_OR_AUTHORITY:
        if (c === 0x2F) state = S_AUTHORITY;
        else { state = S_PATH; p--; }
        break;

      case S_RELATIVE:
        url.scheme = base.scheme;
        special = isSpecialScheme(url.scheme);
        if (c === 0x2F || (special && c === 0x5C)) {
          state = S_RELATIVE_SLASH;
        } else {
          url.username = base.username;
          url.password = base.password;
          url.host = base.host;
          url.port = base.port;
          url.path = sliceOf(base.path);
          url.query = base.query;
          if (c === 0x3F) {
            url.query = '';
            state = S_QUERY;
          } else if (c === 0x23) {
            url.fragment = '';
            state = S_FRAGMENT;
          } else if (c !== EOF) {
            url.query = null;
            shortenPath(url);
            state = S_PATH;
            p--;
          }
        }
        break;

      case S_RELATIVE_SLASH:
        if (special && (c === 0x2F || c === 0x5C)) {
          state = S_SPECIAL_AUTHORITY_IGNORE_SLASHES;
        } else if (c === 0x2F) {
          state = S_AUTHORITY;
        } else {
          url.username = base.username;
          url.password = base.password;
          url.host = base.host;
          url.port = base.port;
          state = S_PATH;
          p--;
        }
        break;

      case S_SPECIAL_AUTHORITY_SLASHES:
        if (c === 0x2F && p + 1 < len && StringCharCodeAt(input, p + 1) === 0x2F) {
          state = S_SPECIAL_AUTHORITY_IGNORE_SLASHES;
          p++;
        } else {
          state = S_SPECIAL_AUTHORITY_IGNORE_SLASHES;
          p--;
        }
        break;

      case S_SPECIAL_AUTHORITY_IGNORE_SLASHES:
        if (c !== 0x2F && c !== 0x5C) {
          state = S_AUTHORITY;
          p--;
        }
        break;

      case S_AUTHORITY:
        if (c === 0x40) {
          if (atSignSeen) buffer = '%40' + buffer;
          atSignSeen = true;
          if (passwordTokenSeen) {
            url.password += pctEncode(buffer, SET_USERINFO, false);
          } else {
            const k = indexOfOf(buffer, ':');
            if (k < 0) {
              url.username += pctEncode(buffer, SET_USERINFO, false);
            } else {
              passwordTokenSeen = true;
              url.username += pctEncode(sliceOf(buffer, 0, k), SET_USERINFO, false);
              url.password += pctEncode(sliceOf(buffer, k + 1), SET_USERINFO, false);
            }
          }
          buffer = '';
        } else if (c === EOF || c === 0x2F || c === 0x3F || c === 0x23 || (special && c === 0x5C)) {
          if (atSignSeen && buffer === '') return null;
          p -= buffer.length + 1;
          buffer = '';
          state = S_HOST;
        } else {
          buffer += String.fromCharCode(c);
        }
        break;

      case S_HOST:
      case S_HOSTNAME:
        if (override && url.scheme === 'file') {
          p--;
          state = S_FILE_HOST;
        } else if (c === 0x3A && !insideBrackets) {
          if (buffer === '') return null;
          if (override === S_HOSTNAME) return null;
          const host = parseHost(buffer, !special);
          if (host === null) return null;
          url.host = host;
          buffer = '';
          state = S_PORT;
        } else if (c === EOF || c === 0x2F || c === 0x3F || c === 0x23 || (special && c === 0x5C)) {
          p--;
          if (special && buffer === '') return null;
          if (override && buffer === '' && (includesCredentials(url) || url.port !== null)) return null;
          const host = parseHost(buffer, !special);
          if (host === null) return null;
          url.host = host;
          buffer = '';
          state = S_PATH_START;
          if (override) return url;
        } else {
          if (c === 0x5B) insideBrackets = true;
          else if (c === 0x5D) insideBrackets = false;
          buffer += String.fromCharCode(c);
        }
        break;

      case S_PORT:
        if (isDigit(c)) {
          buffer += String.fromCharCode(c);
        } else if (c === EOF || c === 0x2F || c === 0x3F || c === 0x23 || (special && c === 0x5C) || override) {
          if (buffer !== '') {
            const port = parseInt(buffer, 10);
            if (port > 65535) return null;
            url.port = port === defaultPort(url.scheme) ? null : port;
            buffer = '';
            if (override) return url;
          }
          if (override) return null;
          state = S_PATH_START;
          p--;
        } else {
          return null;
        }
        break;

      case S_FILE:
        url.scheme = 'file';
        special = true;
        url.host = '';
        if (c === 0x2F || c === 0x5C) {
          state = S_FILE_SLASH;
        } else if (base !== null && base.scheme === 'file') {
          url.host = base.host;
          url.path = sliceOf(base.path);
          url.query = base.query;
          if (c === 0x3F) {
            url.query = '';
            state = S_QUERY;
          } else if (c === 0x23) {
            url.fragment = '';
            state = S_FRAGMENT;
          } else if (c !== EOF) {
            url.query = null;
            if (!startsWithWindowsDriveLetter(input, p)) shortenPath(url);
            else url.path = [];
            state = S_PATH;
            p--;
          }
        } else {
          state = S_PATH;
          p--;
        }
        break;

      case S_FILE_SLASH:
        if (c === 0x2F || c === 0x5C) {
          state = S_FILE_HOST;
        } else {
          if (base !== null && base.scheme === 'file') {
            url.host = base.host;
            if (!startsWithWindowsDriveLetter(input, p) && base.path.length > 0 && isNormalizedWindowsDriveLetter(base.path[0])) {
              ArrayPush(url.path, base.path[0]);
            }
          }
          state = S_PATH;
          p--;
        }
        break;

      case S_FILE_HOST:
        if (c === EOF || c === 0x2F || c === 0x5C || c === 0x3F || c === 0x23) {
          p--;
          if (!override && isWindowsDriveLetter(buffer)) {
            state = S_PATH; // the buffer is kept and becomes the first path segment
          } else if (buffer === '') {
            url.host = '';
            if (override) return url;
            state = S_PATH_START;
          } else {
            let host = parseHost(buffer, false);
            if (host === null) return null;
            if (host === 'localhost') host = '';
            url.host = host;
            if (override) return url;
            buffer = '';
            state = S_PATH_START;
          }
        } else {
          buffer += String.fromCharCode(c);
        }
        break;

      case S_PATH_START:
        if (special) {
          state = S_PATH;
          if (c !== 0x2F && c !== 0x5C) p--;
        } else if (!override && c === 0x3F) {
          url.query = '';
          state = S_QUERY;
        } else if (!override && c === 0x23) {
          url.fragment = '';
          state = S_FRAGMENT;
        } else if (c !== EOF) {
          state = S_PATH;
          if (c !== 0x2F) p--;
        } else if (override && url.host === null) {
          ArrayPush(url.path, '');
        }
        break;

      case S_PATH:
        if (c === EOF || c === 0x2F || (special && c === 0x5C) || (!override && (c === 0x3F || c === 0x23))) {
          const slash = c === 0x2F || (special && c === 0x5C);
          // The buffer holds the raw segment; it is percent-encoded when appended. Dot-segment
          // and drive-letter checks give the same answers on raw and encoded forms.
          if (isDoubleDot(buffer)) {
            shortenPath(url);
            if (!slash) ArrayPush(url.path, '');
          } else if (isSingleDot(buffer)) {
            if (!slash) ArrayPush(url.path, '');
          } else {
            if (url.scheme === 'file' && url.path.length === 0 && isWindowsDriveLetter(buffer)) {
              buffer = buffer.charAt(0) + ':';
            }
            ArrayPush(url.path, pctEncode(buffer, SET_PATH, false));
          }
          buffer = '';
          if (c === 0x3F) {
            url.query = '';
            state = S_QUERY;
          } else if (c === 0x23) {
            url.fragment = '';
            state = S_FRAGMENT;
          }
        } else {
          let j = p + 1;
          for (; j < len; j++) {
            const d = StringCharCodeAt(input, j);
            if (d === 0x2F || (special && d === 0x5C) || (!override && (d === 0x3F || d === 0x23))) break;
          }
          buffer += sliceOf(input, p, j);
          p = j - 1;
        }
        break;

      case S_OPAQUE_PATH:
        if (c === 0x3F) {
          url.query = '';
          state = S_QUERY;
        } else if (c === 0x23) {
          url.fragment = '';
          state = S_FRAGMENT;
        } else if (c !== EOF) {
          let j = p + 1;
          for (; j < len; j++) {
            const d = StringCharCodeAt(input, j);
            if (d === 0x3F || d === 0x23) break;
          }
          url.path += pctEncode(sliceOf(input, p, j), SET_C0, false);
          p = j - 1;
        }
        break;

      case S_QUERY:
        if ((!override && c === 0x23) || c === EOF) {
          url.query += pctEncode(buffer, special ? SET_SPECIAL_QUERY : SET_QUERY, false);
          buffer = '';
          if (c === 0x23) {
            url.fragment = '';
            state = S_FRAGMENT;
          }
        } else {
          let j = override ? len : indexOfOf(input, '#', p + 1);
          if (j < 0) j = len;
          buffer += sliceOf(input, p, j);
          p = j - 1;
        }
        break;

      case S_FRAGMENT:
        if (c !== EOF) {
          url.fragment += pctEncode(sliceOf(input, p), SET_FRAGMENT, false);
          p = len - 1;
        }
        break;
    }
    if (p >= len) break;
    p++;
  }
  return url;
}

function serializePath(u) {
  const path = u.path;
  if (typeof path === 'string') return path;
  let out = '';
  for (let i = 0; i < path.length; i++) out += '/' + path[i];
  return out;
}

function serializeURL(u, excludeFragment) {
  let out = u.scheme + ':';
  if (u.host !== null) {
    out += '//';
    if (u.username !== '' || u.password !== '') {
      out += u.username;
      if (u.password !== '') out += ':' + u.password;
      out += '@';
    }
    out += u.host;
    if (u.port !== null) out += ':' + u.port;
  } else if (typeof u.path !== 'string' && u.path.length > 1 && u.path[0] === '') {
    out += '/.';
  }
  out += serializePath(u);
  if (u.query !== null) out += '?' + u.query;
  if (!excludeFragment && u.fragment !== null) out += '#' + u.fragment;
  return out;
}

function serializeOrigin(u) {
  switch (u.scheme) {
    case 'blob': {
      const inner = basicParse(serializePath(u), null, null, 0);
      if (inner !== null && (inner.scheme === 'http' || inner.scheme === 'https')) return serializeOrigin(inner);
      return 'null';
    }
    case 'ftp': case 'http': case 'https': case 'ws': case 'wss':
      return u.scheme + '://' + u.host + (u.port !== null ? ':' + u.port : '');
    default:
      return 'null';
  }
}

function stripTrailingSpacesFromOpaquePath(u) {
  if (!hasOpaquePath(u) || u.fragment !== null || u.query !== null) return;
  let e = u.path.length;
  while (e > 0 && StringCharCodeAt(u.path, e - 1) === 0x20) e--;
  if (e !== u.path.length) u.path = sliceOf(u.path, 0, e);
}

// An IPv4 address already in its serialized form (four decimal parts 0-255, no leading zero, no
// trailing dot): the host parser returns it unchanged. Hosts such as 127.0.0.1 are common in the
// Host header, and the full parser's domain-to-ASCII step costs ~20x the fast path.
const IPV4_PART = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4_CANONICAL = '(?:' + IPV4_PART + '\\.){3}' + IPV4_PART;

// Fast path for the overwhelmingly common absolute URL shape
//   (http|https|ws|wss|ftp)://(lower-case-domain|canonical IPv4)[:port][/path][?query][#fragment]
// made only of characters that need no percent-encoding, and already in its serialized form
// (the only change the parser would make is adding a missing "/" path). Anything else (upper
// case, IPv6 or non-canonical IPv4 addresses, credentials, backslashes, dot segments, default or
// zero-padded ports, non-ASCII, whitespace, ...) goes through the full state machine, so results are identical;
// the fast path only skips work. Such a URL is kept as its href string plus two offsets.
const FAST_URL_RE = (function () {
  const cls = (bit, extraExcluded) => {
    let out = '';
    for (let c = 0x21; c < 0x7F; c++) {
      if ((ENCODE_SETS[c] & bit) !== 0 || extraExcluded.indexOf(String.fromCharCode(c)) >= 0) continue;
      out += '\\x' + c.toString(16).padStart(2, '0');
    }
    return '[' + out + ']';
  };
  // Groups: 1 everything before the path, 2 scheme, 3 port, 4 path ('' when absent). The host's
  // last label must start with a letter (otherwise it could be a number: IPv4 logic), and a path
  // segment must not be a dot segment ("." or "..", also percent-encoded).
  return new RegExp(
    '^((https?|wss?|ftp)://(?:(?:[a-z0-9_-]+\\.)*[a-z][a-z0-9_-]*\\.?|' + IPV4_CANONICAL + ')(?::([0-9]{1,5}))?)' +
    '((?:/(?!(?:\\.|%2[eE]){1,2}(?:[/?#]|$))' + cls(SET_PATH, '/\\?#') + '*)*)' +
    '(?:\\?' + cls(SET_SPECIAL_QUERY, '#') + '*)?' +
    '(?:#' + cls(SET_FRAGMENT, '') + '*)?$');
})();
let fastPS = 0, fastPE = 0; // side results of fastHref(): path start and end offsets in the href
// The href of `input` if it has the fast shape (see above), else null.
function fastHref(input) {
  const m = RegExpExec(FAST_URL_RE, input);
  if (m === null) return null;
  const ps = m[1].length;
  if (m[3] !== undefined && !fastPortOK(m[3], m[2])) return null;
  const path = m[4];
  fastPS = ps;
  if (path === '') {
    fastPE = ps + 1;
    return sliceOf(input, 0, ps) + '/' + sliceOf(input, ps);
  }
  fastPE = ps + path.length;
  return input;
}
// Whether an explicit port is serialized as given: not the scheme's default, no leading zero.
function fastPortOK(port, scheme) {
  if (port.length > 1 && StringCharCodeAt(port, 0) === 0x30) return false;
  const n = +port;
  return n <= 65535 && n !== MapGet(SPECIAL_PORTS, scheme);
}
// The URL record of a fast-shape href.
function fastRecord(h, ps, pe) {
  const hs = h.indexOf(':') + 3;
  let he = h.indexOf(':', hs);
  if (he < 0 || he > ps) he = ps;
  const f = h.indexOf('#', pe);
  return {
    scheme: h.slice(0, hs - 3), username: '', password: '', host: h.slice(hs, he),
    port: he < ps ? +h.slice(he + 1, ps) : null,
    path: h.slice(ps + 1, pe).split('/'),
    query: h.charCodeAt(pe) === 0x3F ? h.slice(pe + 1, f < 0 ? h.length : f) : null,
    fragment: f < 0 ? null : h.slice(f + 1),
  };
}

// Parse a string into a URL record (throws TypeError "Invalid URL" on failure).
function parseURLOrThrow(url, base) {
  const s = toUSVString(url);
  let b = null;
  if (base !== undefined) {
    b = basicParse(toUSVString(base), null, null, 0);
    if (b === null) throw new TypeError('Invalid URL');
  }
  const h = fastHref(s);
  if (h !== null) return fastRecord(h, fastPS, fastPE);
  const r = basicParse(s, b, null, 0);
  if (r === null) throw new TypeError('Invalid URL');
  return r;
}

// ---------------------------------------------------------------------------------------------
// URLSearchParams
// ---------------------------------------------------------------------------------------------

let spCreateForURL; // (record) => URLSearchParams linked to the record
let spSetList; // (sp, list)

const ITER_ENTRIES = 0, ITER_KEYS = 1, ITER_VALUES = 2;
let spList; // (URLSearchParams) => its live list, set in the class's static block

class URLSearchParams {
  #list = [];
  #rec = null; // linked URL record, or null
  constructor(init = '') {
    if (init === kInternal) return;
    // Node treats null like the empty string (the spec would stringify it to "null").
    if (init === null || init === undefined) return;
    if (isObjectLike(init)) {
      const iter = init[Symbol.iterator];
      if (iter !== undefined) {
        if (typeof iter !== 'function') throw new TypeError('URLSearchParams: Symbol.iterator is not a function');
        for (const pair of init) {
          if (!isObjectLike(pair) || typeof pair[Symbol.iterator] !== 'function') throw new TypeError('Each query pair must be an iterable [name, value] tuple');
          const arr = Array.from(pair);
          if (arr.length !== 2) throw new TypeError('Each query pair must be an iterable [name, value] tuple');
          ArrayPush(this.#list, [toUSVString(arr[0]), toUSVString(arr[1])]);
        }
      } else {
        // record<USVString, USVString>: keys that become equal as USVStrings (lone surrogates)
        // keep the first one's place and the last one's value.
        const byKey = new MapCtor();
        for (const key of Reflect.ownKeys(init)) {
          if (typeof key !== 'string') continue;
          const desc = Reflect.getOwnPropertyDescriptor(init, key);
          if (desc === undefined || !desc.enumerable) continue;
          const k = toUSVString(key), v = toUSVString(init[key]);
          const entry = MapGet(byKey, k);
          if (entry !== undefined) entry[1] = v;
          else { const e = [k, v]; MapSet(byKey, k, e); ArrayPush(this.#list, e); }
        }
      }
      return;
    }
    let s = toUSVString(init);
    if (s.charCodeAt(0) === 0x3F) s = s.slice(1);
    this.#list = formParse(s);
  }

  #update() {
    const rec = this.#rec;
    if (rec === null) return;
    const s = formSerialize(this.#list);
    rec.query = s === '' ? null : s;
    if (s === '') stripTrailingSpacesFromOpaquePath(rec);
  }

  get size() { return this.#list.length; }

  append(name, value) {
    requireArgs(arguments.length, 2, "Failed to execute 'append' on 'URLSearchParams'");
    ArrayPush(this.#list, [toUSVString(name), toUSVString(value)]);
    this.#update();
  }
  delete(name, value = undefined) {
    requireArgs(arguments.length, 1, "Failed to execute 'delete' on 'URLSearchParams'");
    const n = toUSVString(name);
    const list = this.#list;
    let w = 0;
    if (value === undefined) {
      for (let i = 0; i < list.length; i++) if (list[i][0] !== n) list[w++] = list[i];
    } else {
      const v = toUSVString(value);
      for (let i = 0; i < list.length; i++) if (list[i][0] !== n || list[i][1] !== v) list[w++] = list[i];
    }
    list.length = w;
    this.#update();
  }
  get(name) {
    requireArgs(arguments.length, 1, "Failed to execute 'get' on 'URLSearchParams'");
    const n = toUSVString(name);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) if (list[i][0] === n) return list[i][1];
    return null;
  }
  getAll(name) {
    requireArgs(arguments.length, 1, "Failed to execute 'getAll' on 'URLSearchParams'");
    const n = toUSVString(name);
    const out = [];
    const list = this.#list;
    for (let i = 0; i < list.length; i++) if (list[i][0] === n) ArrayPush(out, list[i][1]);
    return out;
  }
  has(name, value = undefined) {
    requireArgs(arguments.length, 1, "Failed to execute 'has' on 'URLSearchParams'");
    const n = toUSVString(name);
    const list = this.#list;
    if (value === undefined) {
      for (let i = 0; i < list.length; i++) if (list[i][0] === n) return true;
    } else {
      const v = toUSVString(value);
      for (let i = 0; i < list.length; i++) if (list[i][0] === n && list[i][1] === v) return true;
    }
    return false;
  }
  set(name, value) {
    requireArgs(arguments.length, 2, "Failed to execute 'set' on 'URLSearchParams'");
    const n = toUSVString(name), v = toUSVString(value);
    const list = this.#list;
    let found = false, w = 0;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] === n) {
        if (found) continue;
        found = true;
        list[w++] = [n, v];
      } else {
        list[w++] = list[i];
      }
    }
    list.length = w;
    if (!found) ArrayPush(list, [n, v]);
    this.#update();
  }
  sort() {
    // Stable sort by name in UTF-16 code unit order.
    const list = this.#list;
    const idx = list.map((e, i) => i);
    idx.sort((a, b) => {
      const x = list[a][0], y = list[b][0];
      return x < y ? -1 : x > y ? 1 : a - b;
    });
    this.#list = idx.map((i) => list[i]);
    this.#update();
  }
  toString() {
    return formSerialize(this.#list);
  }
  forEach(callback, thisArg = undefined) {
    if (typeof callback !== 'function') throw new TypeError("Failed to execute 'forEach' on 'URLSearchParams': parameter 1 is not of type 'Function'.");
    const list = this.#list;
    for (let i = 0; i < list.length; i++) callback.call(thisArg, list[i][1], list[i][0], this);
  }
  // WebIDL pair iterators are live: they index into the current list on every next().
  entries() { return new URLSearchParamsIterator(this, ITER_ENTRIES); }
  keys() { return new URLSearchParamsIterator(this, ITER_KEYS); }
  values() { return new URLSearchParamsIterator(this, ITER_VALUES); }

  static {
    spList = (sp) => sp.#list;
    spCreateForURL = (rec) => {
      const sp = new URLSearchParams(kInternal);
      sp.#rec = rec;
      sp.#list = rec.query === null ? [] : formParse(rec.query);
      return sp;
    };
    spSetList = (sp, list) => { sp.#list = list; };
  }
}
URLSearchParams.prototype[Symbol.iterator] = URLSearchParams.prototype.entries;
setTag(URLSearchParams, 'URLSearchParams');

class URLSearchParamsIterator {
  #params;
  #kind;
  #index = 0;
  constructor(params, kind) {
    this.#params = params;
    this.#kind = kind;
  }
  next() {
    const list = spList(this.#params);
    if (this.#index >= list.length) return { value: undefined, done: true };
    const e = list[this.#index++];
    const kind = this.#kind;
    return { value: kind === ITER_ENTRIES ? [e[0], e[1]] : kind === ITER_KEYS ? e[0] : e[1], done: false };
  }
}
Object.setPrototypeOf(URLSearchParamsIterator.prototype, Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())));
delete URLSearchParamsIterator.prototype.constructor;
Object.defineProperty(URLSearchParamsIterator.prototype, Symbol.toStringTag, { value: 'URLSearchParams Iterator', configurable: true });
Object.defineProperty(URLSearchParamsIterator.prototype, 'next', { enumerable: true });

// ---------------------------------------------------------------------------------------------
// URL
// ---------------------------------------------------------------------------------------------

class URL {
  // The URL record, or (fast form, until a record is needed) the href string, with the path's
  // start and end offsets in #ps and #pe.
  #u;
  #ps = 0;
  #pe = 0;
  #sp = null;
  constructor(url, base = undefined) {
    // (no arity check: `new URL()` parses "undefined" and throws "Invalid URL" anyway; touching
    // `arguments` would cost an allocation on every construction)
    const s = typeof url === 'string' ? url : toUSVString(url);
    let b = null;
    if (base !== undefined) {
      b = basicParse(toUSVString(base), null, null, 0);
      if (b === null) throw new TypeError('Invalid URL');
    }
    // fastHref(), inlined (this is the hot path)
    const m = RegExpExec(FAST_URL_RE, s);
    if (m !== null && (m[3] === undefined || fastPortOK(m[3], m[2]))) {
      const ps = m[1].length;
      const path = m[4];
      this.#ps = ps;
      if (path === '') {
        this.#u = sliceOf(s, 0, ps) + '/' + sliceOf(s, ps);
        this.#pe = ps + 1;
      } else {
        this.#u = s;
        this.#pe = ps + path.length;
      }
      return;
    }
    const r = basicParse(typeof url === 'string' ? toUSVString(s) : s, b, null, 0);
    if (r === null) throw new TypeError('Invalid URL');
    this.#u = r;
  }

  static canParse(url, base = undefined) {
    requireArgs(arguments.length, 1, "Failed to execute 'canParse' on 'URL'");
    try {
      parseURLOrThrow(url, base);
      return true;
    } catch {
      return false;
    }
  }
  static parse(url, base = undefined) {
    requireArgs(arguments.length, 1, "Failed to execute 'parse' on 'URL'");
    try {
      return new URL(url, base);
    } catch {
      return null;
    }
  }

  // The URL record (built from the fast form on first need).
  #rec() {
    const u = this.#u;
    return typeof u === 'string' ? (this.#u = fastRecord(u, this.#ps, this.#pe)) : u;
  }
  #resyncParams() {
    if (this.#sp !== null) spSetList(this.#sp, this.#u.query === null ? [] : formParse(this.#u.query));
  }

  get href() {
    const u = this.#u;
    return typeof u === 'string' ? u : serializeURL(u, false);
  }
  set href(value) {
    const r = basicParse(toUSVString(value), null, null, 0);
    if (r === null) throw new TypeError('Invalid URL');
    copyURLRecordInto(this.#rec(), r);
    this.#resyncParams();
  }
  get origin() {
    const u = this.#u;
    return typeof u === 'string' ? sliceOf(u, 0, this.#ps) : serializeOrigin(u);
  }
  get protocol() {
    const u = this.#u;
    return typeof u === 'string' ? sliceOf(u, 0, StringIndexOf(u, ':') + 1) : u.scheme + ':';
  }
  set protocol(value) {
    basicParse(toUSVString(value) + ':', null, this.#rec(), S_SCHEME_START);
  }
  get username() {
    const u = this.#u;
    return typeof u === 'string' ? '' : u.username;
  }
  set username(value) {
    const u = this.#rec();
    if (cannotHaveCredentialsOrPort(u)) return;
    u.username = pctEncode(toUSVString(value), SET_USERINFO, false);
  }
  get password() {
    const u = this.#u;
    return typeof u === 'string' ? '' : u.password;
  }
  set password(value) {
    const u = this.#rec();
    if (cannotHaveCredentialsOrPort(u)) return;
    u.password = pctEncode(toUSVString(value), SET_USERINFO, false);
  }
  get host() {
    const u = this.#u;
    if (typeof u === 'string') return sliceOf(u, StringIndexOf(u, ':') + 3, this.#ps);
    if (u.host === null) return '';
    return u.port === null ? u.host : u.host + ':' + u.port;
  }
  set host(value) {
    const u = this.#rec();
    if (hasOpaquePath(u)) return;
    basicParse(toUSVString(value), null, u, S_HOST);
  }
  get hostname() {
    const u = this.#u;
    if (typeof u === 'string') {
      const ps = this.#ps;
      const hs = StringIndexOf(u, ':') + 3;
      const c = StringIndexOf(u, ':', hs);
      return sliceOf(u, hs, c >= 0 && c < ps ? c : ps);
    }
    return u.host === null ? '' : u.host;
  }
  set hostname(value) {
    const u = this.#rec();
    if (hasOpaquePath(u)) return;
    basicParse(toUSVString(value), null, u, S_HOSTNAME);
  }
  get port() {
    const u = this.#u;
    if (typeof u === 'string') {
      const ps = this.#ps;
      const c = StringIndexOf(u, ':', StringIndexOf(u, ':') + 3);
      return c >= 0 && c < ps ? sliceOf(u, c + 1, ps) : '';
    }
    return u.port === null ? '' : String(u.port);
  }
  set port(value) {
    const u = this.#rec();
    if (cannotHaveCredentialsOrPort(u)) return;
    const v = toUSVString(value);
    if (v === '') u.port = null;
    else basicParse(v, null, u, S_PORT);
  }
  get pathname() {
    const u = this.#u;
    return typeof u === 'string' ? sliceOf(u, this.#ps, this.#pe) : serializePath(u);
  }
  set pathname(value) {
    const u = this.#rec();
    if (hasOpaquePath(u)) return;
    u.path = [];
    basicParse(toUSVString(value), null, u, S_PATH_START);
  }
  get search() {
    const u = this.#u;
    if (typeof u === 'string') {
      const pe = this.#pe;
      if (StringCharCodeAt(u, pe) !== 0x3F) return '';
      let e = StringIndexOf(u, '#', pe);
      if (e < 0) e = u.length;
      return e - pe === 1 ? '' : sliceOf(u, pe, e);
    }
    const q = u.query;
    return q === null || q === '' ? '' : '?' + q;
  }
  set search(value) {
    const u = this.#rec();
    let v = toUSVString(value);
    if (v === '') {
      u.query = null;
      if (this.#sp !== null) spSetList(this.#sp, []);
      stripTrailingSpacesFromOpaquePath(u);
      return;
    }
    if (StringCharCodeAt(v, 0) === 0x3F) v = sliceOf(v, 1);
    u.query = '';
    basicParse(v, null, u, S_QUERY);
    this.#resyncParams();
  }
  get searchParams() {
    let sp = this.#sp;
    if (sp === null) sp = this.#sp = spCreateForURL(this.#rec());
    return sp;
  }
  get hash() {
    const u = this.#u;
    if (typeof u === 'string') {
      const f = StringIndexOf(u, '#', this.#pe);
      return f < 0 || f === u.length - 1 ? '' : sliceOf(u, f);
    }
    const f = u.fragment;
    return f === null || f === '' ? '' : '#' + f;
  }
  set hash(value) {
    const u = this.#rec();
    let v = toUSVString(value);
    if (v === '') {
      u.fragment = null;
      stripTrailingSpacesFromOpaquePath(u);
      return;
    }
    if (StringCharCodeAt(v, 0) === 0x23) v = sliceOf(v, 1);
    u.fragment = '';
    basicParse(v, null, u, S_FRAGMENT);
  }
  toString() {
    const u = this.#u;
    return typeof u === 'string' ? u : serializeURL(u, false);
  }
  toJSON() {
    const u = this.#u;
    return typeof u === 'string' ? u : serializeURL(u, false);
  }
}
setTag(URL, 'URL');
for (const k of ['href', 'origin', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'searchParams', 'hash', 'toString', 'toJSON']) {
  const d = Object.getOwnPropertyDescriptor(URL.prototype, k);
  d.enumerable = true;
  Object.defineProperty(URL.prototype, k, d);
}

// ---------------------------------------------------------------------------------------------
// Events and abort signals (minimal)
// ---------------------------------------------------------------------------------------------

let eventSetTarget; // (event, target|null)
let eventImmediateStopped; // (event) => boolean
let eventSetDispatching; // (event, boolean)

class Event {
  #type;
  #bubbles;
  #cancelable;
  #composed;
  #defaultPrevented = false;
  #target = null;
  #dispatching = false;
  #stop = false;
  #stopImmediate = false;
  constructor(type, eventInitDict = undefined) {
    requireArgs(arguments.length, 1, "Failed to construct 'Event'");
    this.#type = toDOMString(type);
    const d = eventInitDict;
    this.#bubbles = d ? Boolean(d.bubbles) : false;
    this.#cancelable = d ? Boolean(d.cancelable) : false;
    this.#composed = d ? Boolean(d.composed) : false;
  }
  get type() { return this.#type; }
  get bubbles() { return this.#bubbles; }
  get cancelable() { return this.#cancelable; }
  get composed() { return this.#composed; }
  get defaultPrevented() { return this.#defaultPrevented; }
  get returnValue() { return !this.#defaultPrevented; }
  get target() { return this.#target; }
  get srcElement() { return this.#target; }
  get currentTarget() { return this.#dispatching ? this.#target : null; }
  get eventPhase() { return this.#dispatching ? 2 : 0; }
  get isTrusted() { return false; }
  get timeStamp() { return 0; } // deterministic: no clock in the guest
  get cancelBubble() { return this.#stop; }
  set cancelBubble(v) { if (v) this.#stop = true; }
  composedPath() { return this.#dispatching && this.#target !== null ? [this.#target] : []; }
  preventDefault() { if (this.#cancelable) this.#defaultPrevented = true; }
  stopPropagation() { this.#stop = true; }
  stopImmediatePropagation() { this.#stop = true; this.#stopImmediate = true; }

  static {
    eventSetTarget = (e, t) => { e.#target = t; };
    eventImmediateStopped = (e) => e.#stopImmediate;
    eventSetDispatching = (e, v) => {
      if (v && e.#dispatching) throw new DOMException('The event is already being dispatched.', 'InvalidStateError');
      e.#dispatching = v;
    };
  }
}
setTag(Event, 'Event');
for (const [k, v] of [['NONE', 0], ['CAPTURING_PHASE', 1], ['AT_TARGET', 2], ['BUBBLING_PHASE', 3]]) {
  Object.defineProperty(Event, k, { value: v, enumerable: true });
  Object.defineProperty(Event.prototype, k, { value: v, enumerable: true });
}

function flattenListenerOptions(options) {
  if (typeof options === 'boolean') return { capture: options, once: false, signal: null };
  if (!isObjectLike(options)) return { capture: false, once: false, signal: null };
  return { capture: Boolean(options.capture), once: Boolean(options.once), signal: options.signal === undefined ? null : options.signal };
}

class EventTarget {
  #listeners = null; // Map<type, Array<{callback, capture, once, removed}>>
  addEventListener(type, callback, options = undefined) {
    requireArgs(arguments.length, 2, "Failed to execute 'addEventListener' on 'EventTarget'");
    if (callback === null || callback === undefined) return;
    if (!isObjectLike(callback)) throw new TypeError("Failed to execute 'addEventListener' on 'EventTarget': parameter 2 is not of type 'Object'.");
    const t = toDOMString(type);
    const o = flattenListenerOptions(options);
    if (o.signal !== null && !(o.signal instanceof AbortSignal)) throw new TypeError("Failed to execute 'addEventListener' on 'EventTarget': member signal is not of type 'AbortSignal'.");
    if (o.signal !== null && o.signal.aborted) return;
    const map = this.#listeners || (this.#listeners = new MapCtor());
    let list = MapGet(map, t);
    if (list === undefined) MapSet(map, t, (list = []));
    for (let i = 0; i < list.length; i++) if (list[i].callback === callback && list[i].capture === o.capture) return;
    const entry = { callback, capture: o.capture, once: o.once, removed: false };
    ArrayPush(list, entry);
    if (o.signal !== null) {
      o.signal.addEventListener('abort', () => this.#remove(t, entry));
    }
  }
  removeEventListener(type, callback, options = undefined) {
    requireArgs(arguments.length, 2, "Failed to execute 'removeEventListener' on 'EventTarget'");
    const map = this.#listeners;
    if (map === null) return;
    const t = toDOMString(type);
    const list = MapGet(map, t);
    if (list === undefined) return;
    const capture = typeof options === 'boolean' ? options : isObjectLike(options) ? Boolean(options.capture) : false;
    for (let i = 0; i < list.length; i++) {
      if (list[i].callback === callback && list[i].capture === capture) {
        this.#remove(t, list[i]);
        return;
      }
    }
  }
  #remove(type, entry) {
    entry.removed = true;
    const list = this.#listeners && MapGet(this.#listeners, type);
    if (!list) return;
    const i = list.indexOf(entry);
    if (i >= 0) list.splice(i, 1);
  }
  dispatchEvent(event) {
    if (!(event instanceof Event)) throw new TypeError("Failed to execute 'dispatchEvent' on 'EventTarget': parameter 1 is not of type 'Event'.");
    eventSetDispatching(event, true);
    eventSetTarget(event, this);
    try {
      const list = this.#listeners && MapGet(this.#listeners, event.type);
      if (list !== undefined && list !== null && list.length > 0) {
        const snapshot = list.slice();
        for (let i = 0; i < snapshot.length; i++) {
          const l = snapshot[i];
          if (l.removed) continue;
          if (l.once) this.#remove(event.type, l);
          try {
            if (typeof l.callback === 'function') l.callback.call(this, event);
            else {
              const h = l.callback.handleEvent;
              if (typeof h === 'function') h.call(l.callback, event);
            }
          } catch (e) {
            reportException(e);
          }
          if (eventImmediateStopped(event)) break;
        }
      }
    } finally {
      eventSetDispatching(event, false);
    }
    return !event.defaultPrevented;
  }
}
setTag(EventTarget, 'EventTarget');

let signalAbort; // (signal, reason)
let newSignal; // () => AbortSignal
let dependentSignal; // (signals) => AbortSignal
let abortState; // (signal) => [aborted, reason]
let addAbortAlgorithm; // (signal, (reason) => void)
const NOT_ABORTED = Object.freeze([false, undefined]);
// The runtime's setTimeout (runtime.js hands it over through __ftjs_web.useTimer): a timeout signal
// fires through a recorded guest timer.
let guestTimer = null; // (callback, ms) => id

function defaultAbortReason() {
  return new DOMException('This operation was aborted', 'AbortError');
}

class AbortSignal extends EventTarget {
  #aborted = false;
  #reason = undefined;
  #onabort = null;
  #onabortInstalled = false;
  #dependents = null;
  #algorithms = null; // the spec's abort algorithms (internal: fetch cancels its request with one)
  constructor(key) {
    if (key !== kInternal) throw new TypeError('Illegal constructor');
    super();
  }
  get aborted() { return this.#aborted; }
  get reason() { return this.#reason; }
  throwIfAborted() {
    if (this.#aborted) throw this.#reason;
  }
  get onabort() { return this.#onabort; }
  set onabort(v) {
    this.#onabort = typeof v === 'function' || isObjectLike(v) ? v : null;
    if (this.#onabort !== null && !this.#onabortInstalled) {
      this.#onabortInstalled = true;
      this.addEventListener('abort', (e) => {
        const h = this.#onabort;
        if (typeof h === 'function') h.call(this, e);
      });
    }
  }
  static abort(reason = undefined) {
    const s = new AbortSignal(kInternal);
    s.#aborted = true;
    s.#reason = reason === undefined ? defaultAbortReason() : reason;
    return s;
  }
  static timeout(ms) {
    // WebIDL [EnforceRange] unsigned long long.
    const n = Number(ms);
    if (!Number.isFinite(n) || Math.trunc(n) < 0 || Math.trunc(n) > Number.MAX_SAFE_INTEGER) {
      throw new TypeError(`Failed to execute 'timeout' on 'AbortSignal': Value is outside the 'unsigned long long' value range.`);
    }
    if (guestTimer === null) throw new DOMException('AbortSignal.timeout() needs the runtime\'s timers', 'NotSupportedError');
    const s = new AbortSignal(kInternal);
    // A guest timer: its firing is a recorded timer event, so replay aborts at the same point.
    guestTimer(() => signalAbort(s, new DOMException('The operation was aborted due to timeout', 'TimeoutError')), Math.trunc(n));
    return s;
  }
  static any(signals) {
    const list = Array.from(signals);
    for (const s of list) if (!(s instanceof AbortSignal)) throw new TypeError("Failed to execute 'any' on 'AbortSignal': Failed to convert value to 'AbortSignal'.");
    return dependentSignal(list);
  }

  static {
    newSignal = () => new AbortSignal(kInternal);
    abortState = (s) => (s.#aborted ? [true, s.#reason] : NOT_ABORTED);
    addAbortAlgorithm = (s, fn) => ArrayPush(s.#algorithms || (s.#algorithms = []), fn);
    dependentSignal = (list) => {
      const r = new AbortSignal(kInternal);
      for (const s of list) {
        if (s.#aborted) {
          r.#aborted = true;
          r.#reason = s.#reason;
          return r;
        }
      }
      for (const s of list) ArrayPush(s.#dependents || (s.#dependents = []), r);
      return r;
    };
    const runAbortAlgorithms = (s) => {
      const list = s.#algorithms;
      s.#algorithms = null;
      if (list !== null) for (const fn of list) fn(s.#reason);
    };
    signalAbort = (s, reason) => {
      if (s.#aborted) return;
      s.#aborted = true;
      s.#reason = reason === undefined ? defaultAbortReason() : reason;
      const deps = s.#dependents;
      s.#dependents = null;
      runAbortAlgorithms(s);
      const fire = [];
      if (deps !== null) {
        for (const d of deps) {
          if (d.#aborted) continue;
          d.#aborted = true;
          d.#reason = s.#reason;
          ArrayPush(fire, d);
        }
      }
      s.dispatchEvent(new Event('abort'));
      for (const d of fire) runAbortAlgorithms(d);
      for (const d of fire) {
        const dd = d.#dependents;
        d.#dependents = null;
        d.dispatchEvent(new Event('abort'));
        if (dd !== null) for (const x of dd) signalAbort(x, d.#reason);
      }
    };
  }
}
setTag(AbortSignal, 'AbortSignal');

class AbortController {
  #signal = newSignal();
  get signal() { return this.#signal; }
  abort(reason = undefined) {
    signalAbort(this.#signal, reason);
  }
}
setTag(AbortController, 'AbortController');

// ---------------------------------------------------------------------------------------------
// Blob (minimal)
// ---------------------------------------------------------------------------------------------

let blobBytes; // (blob) => Uint8Array (internal, never mutated)
let makeBlob; // (bytes, type) => Blob

function normalizeBlobType(t) {
  return regExpTest(/[^\x20-\x7E]/, t) ? '' : t.toLowerCase();
}

class Blob {
  #bytes = EMPTY_BYTES;
  #type = '';
  constructor(blobParts = undefined, options = undefined) {
    if (blobParts === kInternal) return;
    if (blobParts !== undefined) {
      if (!isObjectLike(blobParts) || typeof blobParts[Symbol.iterator] !== 'function') {
        throw new TypeError("Failed to construct 'Blob': The provided value cannot be converted to a sequence.");
      }
      const chunks = [];
      let total = 0;
      for (const part of blobParts) {
        let b;
        if (part instanceof Blob) b = part.#bytes;
        else {
          b = copyBufferSource(part);
          if (b === null) b = utf8Encode(toDOMString(part));
        }
        ArrayPush(chunks, b);
        total += b.length;
      }
      // Parts are fresh copies or immutable Blob bytes, so a single part can be used as is.
      this.#bytes = chunks.length === 0 ? EMPTY_BYTES : concatBytes(chunks, total);
    }
    if (options !== undefined && options !== null) {
      if (!isObjectLike(options)) throw new TypeError("Failed to construct 'Blob': The provided value is not of type 'BlobPropertyBag'.");
      if (options.endings !== undefined) {
        const e = toDOMString(options.endings);
        if (e !== 'transparent' && e !== 'native') throw new TypeError(`Failed to construct 'Blob': The provided value '${e}' is not a valid enum value of type EndingType.`);
      }
      if (options.type !== undefined) this.#type = normalizeBlobType(toDOMString(options.type));
    }
  }
  get size() { return this.#bytes.length; }
  get type() { return this.#type; }
  slice(start = undefined, end = undefined, contentType = undefined) {
    const size = this.#bytes.length;
    let s = start === undefined ? 0 : Math.trunc(Number(start)) || 0;
    let e = end === undefined ? size : Math.trunc(Number(end)) || 0;
    s = s < 0 ? Math.max(size + s, 0) : Math.min(s, size);
    e = e < 0 ? Math.max(size + e, 0) : Math.min(e, size);
    const b = new Blob(kInternal);
    b.#bytes = e > s ? this.#bytes.slice(s, e) : EMPTY_BYTES;
    b.#type = contentType === undefined ? '' : normalizeBlobType(toDOMString(contentType));
    return b;
  }
  text() {
    return PromiseResolve(utf8DecodeStripBOM(this.#bytes));
  }
  arrayBuffer() {
    return PromiseResolve(TypedArraySlice(this.#bytes).buffer);
  }
  bytes() {
    return PromiseResolve(TypedArraySlice(this.#bytes));
  }
  stream() {
    return streams().bytesStream(this.#bytes);
  }

  static {
    blobBytes = (b) => b.#bytes;
    makeBlob = (bytes, type) => {
      const b = new Blob(kInternal);
      b.#bytes = bytes;
      b.#type = type;
      return b;
    };
  }
}
setTag(Blob, 'Blob');

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

// A header list is an Array of [lowerCaseName, value] entries: one entry per name, in the order
// names were first added, the values of a repeated name combined with ", " (set-cookie too; its
// separate values are also kept in a `cookies` array, see listForWire). Entries are never
// mutated (combining a value replaces the entry), so one entry can be shared by many lists.
//
// Cost notes (QuickJS is an interpreter: a builtin call is cheap, an interpreted loop over
// characters is not, and every object or private field allocated costs): names and values are
// validated with a cache lookup first; small lists are searched linearly, long ones
// (> INDEX_MIN entries) get a Map index built on demand; Request and Response keep their header
// list (or the hypervisor's raw pairs) and only build a Headers object when `headers` is read.

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_HEADER_VALUE_RE = /[\0\r\n]|[^\0-\xFF]/;
// Matches every value that is not already normalised and valid (leading or trailing HTTP
// whitespace, NUL/CR/LF, a code unit above 0xFF); a value it does not match is used as is.
const HEADER_VALUE_SLOW_RE = /^[\t\n\r ]|[\t\n\r ]$|[\0\r\n]|[^\0-\xFF]/;
const GUARD_NONE = 0, GUARD_IMMUTABLE = 1;
const INDEX_MIN = 8;
const isArray = Array.isArray;
const reflectOwnKeys = Reflect.ownKeys;
const NON_LATIN1_RE = /[^\x00-\xFF]/;
const propertyIsEnumerable = uncurryThis(Object.prototype.propertyIsEnumerable);
const ARRAY_ITERATOR = Array.prototype[Symbol.iterator];
const NO_HEADERS = Object.freeze([]); // shared empty header list (copied before any change)

// Validation results for recently seen header names and values: one Map lookup instead of a
// regular expression test plus toLowerCase(). Bounded (cleared when full), and their contents
// depend only on the strings seen, so behaviour stays deterministic.
const CACHE_MAX = 128;
let nameCache = new MapCtor(); // name as given -> lower-cased name (valid names only)
let valueCache = new MapCtor(); // value as given -> normalised value (valid values only)
// name as given -> { raw: value as given, entry: [lower-cased name, normalised value] }: the
// list entry for the last valid value seen with that name (entries are immutable, so shared).
let entryCache = new MapCtor();
const SYMBOL_ITERATOR = Symbol.iterator;

function isHTTPWhitespace(c) { return c === 0x20 || c === 0x09 || c === 0x0A || c === 0x0D; }
function normalizeHeaderValue(v) {
  const len = v.length;
  if (len === 0) return v;
  let s = 0, e = len;
  while (s < e && isHTTPWhitespace(StringCharCodeAt(v, s))) s++;
  while (e > s && isHTTPWhitespace(StringCharCodeAt(v, e - 1))) e--;
  return s === 0 && e === len ? v : sliceOf(v, s, e);
}
// The lower-cased form of a valid header name (TypeError otherwise).
function headerName(name, what) {
  let lower = MapGet(nameCache, name);
  if (lower !== undefined) return lower;
  if (!regExpTest(TOKEN_RE, name)) throw new TypeError(`${what}: "${name}" is an invalid header name.`);
  lower = StringToLowerCase(name);
  if (name.length <= 64) {
    if (MapSize(nameCache) >= CACHE_MAX) nameCache = new MapCtor(); // not .size/.clear(): the guest may patch Map.prototype
    MapSet(nameCache, name, lower);
  }
  return lower;
}
// The normalised form of a valid header value (TypeError otherwise).
function headerValue(value, what) {
  let v = MapGet(valueCache, value);
  if (v !== undefined) return v;
  v = value;
  if (regExpTest(HEADER_VALUE_SLOW_RE, value)) {
    v = normalizeHeaderValue(value);
    if (regExpTest(BAD_HEADER_VALUE_RE, v)) throw new TypeError(`${what}: "${v}" is an invalid header value.`);
  }
  if (value.length <= 128) {
    if (MapSize(valueCache) >= CACHE_MAX) valueCache = new MapCtor(); // not .size/.clear(): the guest may patch Map.prototype
    MapSet(valueCache, value, v);
  }
  return v;
}
// The list entry for a name and value given by the service (validated; TypeError otherwise).
function headerEntry(name, value) {
  const c = MapGet(entryCache, name);
  if (c !== undefined && c.raw === value) return c.entry;
  const entry = [headerName(name, 'Headers.append'), headerValue(value, 'Headers.append')];
  if (value.length > 128) return entry;
  if (c !== undefined) {
    c.raw = value;
    c.entry = entry;
  } else if (name.length <= 64) {
    if (MapSize(entryCache) >= CACHE_MAX) entryCache = new MapCtor(); // not .size/.clear(): the guest may patch Map.prototype
    MapSet(entryCache, name, { raw: value, entry });
  }
  return entry;
}
// Lower-case a trusted header name (from the hypervisor: not validated).
function lowerName(name) {
  let lower = MapGet(nameCache, name);
  if (lower !== undefined) return lower;
  lower = StringToLowerCase(name);
  if (name.length <= 64 && regExpTest(TOKEN_RE, name)) {
    if (MapSize(nameCache) >= CACHE_MAX) nameCache = new MapCtor(); // not .size/.clear(): the guest may patch Map.prototype
    MapSet(nameCache, name, lower);
  }
  return lower;
}

function listFind(list, name) {
  for (let i = 0; i < list.length; i++) if (list[i][0] === name) return i;
  return -1;
}
function makeIndex(list) {
  const index = new MapCtor();
  for (let i = 0; i < list.length; i++) MapSet(index, list[i][0], i);
  return index;
}
// Add an entry to a list being built; `index` is null or a Map index of it. Returns the (new) index.
function listAddEntry(list, index, entry) {
  const name = entry[0];
  let j = -1;
  if (index !== null) {
    const k = MapGet(index, name);
    if (k !== undefined) j = k;
  } else {
    for (let i = 0; i < list.length; i++) if (list[i][0] === name) { j = i; break; }
  }
  if (j >= 0) {
    list[j] = [name, list[j][1] + ', ' + entry[1]];
    return index;
  }
  if (index !== null) MapSet(index, name, list.length);
  ArrayPush(list, entry);
  return index === null && list.length > INDEX_MIN ? makeIndex(list) : index;
}
function addCookie(cookies, value) {
  if (cookies === null) return [value];
  ArrayPush(cookies, value);
  return cookies;
}
// The list as the hypervisor wants it: set-cookie values as separate entries.
function listForWire(list, cookies) {
  if (cookies === null) return list;
  const out = [];
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    if (e[0] === 'set-cookie') {
      for (let k = 0; k < cookies.length; k++) ArrayPush(out, ['set-cookie', cookies[k]]);
    } else {
      ArrayPush(out, e);
    }
  }
  return out;
}
function compareEntries(a, b) {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}
// One [name, value] pair of a sequence<sequence<ByteString>>, as strings.
function headerPair(pair) {
  if (!isObjectLike(pair) || typeof pair[Symbol.iterator] !== 'function') throw new TypeError('Headers constructor: expected name/value pair to be length 2, found 0.');
  const arr = isArray(pair) ? pair : Array.from(pair);
  if (arr.length !== 2) throw new TypeError(`Headers constructor: expected name/value pair to be length 2, found ${arr.length}.`);
  return arr;
}

let buildList; // (init: HeadersInit) => list (validated); its set-cookie values are left in builtCookies
let builtCookies = null;
let builtContentType = false; // whether the list buildList() last returned has a content-type entry
let headersWrap; // (list, cookies, guard) => Headers owning list and cookies
let headersFromRaw; // (pairs, guard) => Headers, trusted pairs (names lower-cased here, no validation)
let headersListOf; // (h) => list for the hypervisor (internal, read-only; set-cookie expanded)
let headersHasLower; // (h, lowerName) => boolean
let headersGetLower; // (h, lowerName) => string|null
let headersAppendTrusted; // (h, lowerName, value)
let headersGuardOf; // (h) => guard
let headersClone; // (h, guard) => Headers
let headersFind; // (h, lowerName) => position in the list, or -1
let headersSorted; // (h) => sorted entries, set-cookie expanded ("sort and combine")
let headersListRef; // (h) => its header list itself (read-only)
// Counts changes to any Headers' list, so that an iterator can tell in O(1) that nothing changed.
let headersEpoch = 0;

// Rarely needed state of a Headers object, allocated on demand (each private field costs time
// at construction, in the interpreter).
function headersExtra(guard, cookies, index) {
  return { guard, cookies, index };
}

class Headers {
  #list = null; // header list (see above)
  #x = null; // null, or extras: { guard, cookies (string[] of set-cookie values or null), index (Map or null) }
  constructor(init = undefined) {
    if (init === kInternal) return;
    if (init === undefined) {
      this.#list = [];
      return;
    }
    this.#list = buildList(init);
    if (builtCookies !== null) this.#x = headersExtra(GUARD_NONE, builtCookies, null);
  }

  append(name, value) {
    requireArgs(arguments.length, 2, "Failed to execute 'append' on 'Headers'");
    name = toDOMString(name);
    value = toDOMString(value);
    const lower = headerName(name, 'Headers.append');
    value = headerValue(value, 'Headers.append');
    const x = this.#x;
    if (x !== null && x.guard === GUARD_IMMUTABLE) throw new TypeError('immutable');
    headersAppendTrusted(this, lower, value);
  }
  delete(name) {
    requireArgs(arguments.length, 1, "Failed to execute 'delete' on 'Headers'");
    const lower = headerName(toDOMString(name), 'Headers.delete');
    const x = this.#x;
    if (x !== null && x.guard === GUARD_IMMUTABLE) throw new TypeError('immutable');
    const j = headersFind(this, lower);
    if (j < 0) return;
    this.#list.splice(j, 1);
    headersEpoch++;
    if (x !== null) {
      x.index = null;
      if (lower === 'set-cookie') x.cookies = null;
    }
  }
  get(name) {
    requireArgs(arguments.length, 1, "Failed to execute 'get' on 'Headers'");
    if (typeof name !== 'string') name = toDOMString(name);
    let lower = MapGet(nameCache, name);
    if (lower === undefined) lower = headerName(name, 'Headers.get');
    const j = headersFind(this, lower);
    return j < 0 ? null : this.#list[j][1];
  }
  getSetCookie() {
    const x = this.#x;
    return x === null || x.cookies === null ? [] : sliceOf(x.cookies);
  }
  has(name) {
    requireArgs(arguments.length, 1, "Failed to execute 'has' on 'Headers'");
    return headersFind(this, headerName(toDOMString(name), 'Headers.has')) >= 0;
  }
  set(name, value) {
    requireArgs(arguments.length, 2, "Failed to execute 'set' on 'Headers'");
    name = toDOMString(name);
    value = toDOMString(value);
    const lower = headerName(name, 'Headers.set');
    value = headerValue(value, 'Headers.set');
    let x = this.#x;
    if (x !== null && x.guard === GUARD_IMMUTABLE) throw new TypeError('immutable');
    const list = this.#list;
    const j = headersFind(this, lower);
    headersEpoch++;
    if (j >= 0) {
      list[j] = [lower, value];
    } else {
      if (x !== null && x.index !== null) MapSet(x.index, lower, list.length);
      ArrayPush(list, [lower, value]);
    }
    if (lower === 'set-cookie') {
      if (x === null) x = this.#x = headersExtra(GUARD_NONE, null, null);
      x.cookies = [value];
    }
  }

  forEach(callback, thisArg = undefined) {
    if (typeof callback !== 'function') throw new TypeError("Failed to execute 'forEach' on 'Headers': parameter 1 is not of type 'Function'.");
    const pairs = headersSorted(this);
    for (let i = 0; i < pairs.length; i++) callback.call(thisArg, pairs[i][1], pairs[i][0], this);
  }
  // Live, as WebIDL iterables are: next() sees the current list, sorted and combined.
  entries() { return new HeadersIterator(this, ITER_ENTRIES); }
  keys() { return new HeadersIterator(this, ITER_KEYS); }
  values() { return new HeadersIterator(this, ITER_VALUES); }

  static {
    buildList = (init) => {
      if ((typeof init !== 'object' || init === null) && typeof init !== 'function') {
        throw new TypeError('Headers constructor: Argument 1 could not be converted to one of: sequence<sequence<ByteString>>, record<ByteString, ByteString>.');
      }
      // Another Headers is a sequence: copy its list directly unless its iteration was replaced.
      if (#list in init && init[SYMBOL_ITERATOR] === headersEntries) {
        const x = init.#x;
        const list = sliceOf(init.#list);
        builtCookies = x === null || x.cookies === null ? null : sliceOf(x.cookies);
        builtContentType = listFind(list, 'content-type') >= 0;
        return list;
      }
      let list;
      let index = null;
      let cookies = null;
      let contentType = false;
      const iter = init[SYMBOL_ITERATOR];
      if (iter === undefined || iter === null) {
        // record<ByteString, ByteString>: own keys in property order; each one's descriptor is
        // read just before its value (observable with proxies and getters); symbols throw.
        const keys = reflectOwnKeys(init);
        let first = true;
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i];
          // [[GetOwnProperty]] without allocating a descriptor (this is every Response's path).
          if (!propertyIsEnumerable(init, key)) continue;
          if (typeof key === 'symbol') throw new TypeError('Headers constructor: a record key cannot be a Symbol');
          // The key becomes a ByteString before its value is read; a cached key is a known-good name.
          const c = MapGet(entryCache, key);
          if (c === undefined && regExpTest(NON_LATIN1_RE, key)) throw new TypeError(`Headers constructor: "${key}" is not a valid ByteString`);
          const v = init[key];
          const str = typeof v === 'string' ? v : toDOMString(v);
          const entry = c !== undefined && c.raw === str ? c.entry : headerEntry(key, str);
          if (first) { list = [entry]; first = false; }
          else index = listAddEntry(list, index, entry);
          const name = entry[0];
          if (name === 'content-type') contentType = true;
          else if (name === 'set-cookie') cookies = addCookie(cookies, entry[1]);
        }
        if (list === undefined) list = [];
      } else {
        if (typeof iter !== 'function') throw new TypeError('Headers constructor: Symbol.iterator is not a function');
        list = [];
        if (iter === ARRAY_ITERATOR && isArray(init)) {
          for (let i = 0; i < init.length; i++) {
            const arr = headerPair(init[i]);
            const entry = headerEntry(toDOMString(arr[0]), toDOMString(arr[1]));
            index = listAddEntry(list, index, entry);
            const name = entry[0];
            if (name === 'content-type') contentType = true;
            else if (name === 'set-cookie') cookies = addCookie(cookies, entry[1]);
          }
        } else {
          for (const pair of init) {
            const arr = headerPair(pair);
            const entry = headerEntry(toDOMString(arr[0]), toDOMString(arr[1]));
            index = listAddEntry(list, index, entry);
            const name = entry[0];
            if (name === 'content-type') contentType = true;
            else if (name === 'set-cookie') cookies = addCookie(cookies, entry[1]);
          }
        }
      }
      builtCookies = cookies;
      builtContentType = contentType;
      return list;
    };
    headersWrap = (list, cookies, guard) => {
      const h = new Headers(kInternal);
      h.#list = list;
      if (cookies !== null || guard !== GUARD_NONE) h.#x = headersExtra(guard, cookies, null);
      return h;
    };
    headersFromRaw = (pairs, guard) => {
      const list = [];
      let index = null;
      let cookies = null;
      for (let i = 0; i < pairs.length; i++) {
        const pair = pairs[i];
        const raw = pair[0];
        const name = lowerName(raw);
        // a trusted pair is never mutated: it can be the entry itself when its name is lower case
        index = listAddEntry(list, index, name === raw && pair.length === 2 ? pair : [name, pair[1]]);
        if (name === 'set-cookie') cookies = addCookie(cookies, pair[1]);
      }
      const h = new Headers(kInternal);
      h.#list = list;
      if (cookies !== null || guard !== GUARD_NONE || index !== null) h.#x = headersExtra(guard, cookies, index);
      return h;
    };
    headersFind = (h, name) => {
      const list = h.#list;
      const x = h.#x;
      let index = x === null ? null : x.index;
      if (index === null) {
        if (list.length <= INDEX_MIN) {
          for (let i = 0; i < list.length; i++) if (list[i][0] === name) return i;
          return -1;
        }
        index = makeIndex(list);
        if (x === null) h.#x = headersExtra(GUARD_NONE, null, index);
        else x.index = index;
      }
      const j = MapGet(index, name);
      return j === undefined ? -1 : j;
    };
    // Append a lower-cased name and a normalised value (no validation, no guard check).
    headersAppendTrusted = (h, name, value) => {
      const list = h.#list;
      headersEpoch++;
      const j = headersFind(h, name);
      let x = h.#x;
      if (j >= 0) {
        list[j] = [name, list[j][1] + ', ' + value];
      } else {
        if (x !== null && x.index !== null) MapSet(x.index, name, list.length);
        ArrayPush(list, [name, value]);
      }
      if (name === 'set-cookie') {
        if (x === null) x = h.#x = headersExtra(GUARD_NONE, null, null);
        x.cookies = addCookie(x.cookies, value);
      }
    };
    headersListRef = (h) => h.#list;
    headersSorted = (h) => {
      const sorted = ArraySort(sliceOf(h.#list), compareEntries);
      const x = h.#x;
      return x === null || x.cookies === null ? sorted : listForWire(sorted, x.cookies);
    };
    headersListOf = (h) => {
      const x = h.#x;
      return x === null || x.cookies === null ? h.#list : listForWire(h.#list, x.cookies);
    };
    headersHasLower = (h, n) => headersFind(h, n) >= 0;
    headersGetLower = (h, n) => {
      const j = headersFind(h, n);
      return j < 0 ? null : h.#list[j][1];
    };
    headersGuardOf = (h) => (h.#x === null ? GUARD_NONE : h.#x.guard);
    headersClone = (h, guard) => {
      const x = h.#x;
      return headersWrap(sliceOf(h.#list), x === null || x.cookies === null ? null : sliceOf(x.cookies), guard);
    };
  }
}
Headers.prototype[Symbol.iterator] = Headers.prototype.entries;
const headersEntries = Headers.prototype.entries;
setTag(Headers, 'Headers');
// WebIDL operations are enumerable (class methods are not).
for (const k of ['append', 'delete', 'get', 'getSetCookie', 'has', 'set', 'forEach', 'entries', 'keys', 'values']) {
  const d = Object.getOwnPropertyDescriptor(Headers.prototype, k);
  if (d === undefined) continue;
  d.enumerable = true;
  Object.defineProperty(Headers.prototype, k, d);
}

class HeadersIterator {
  #headers;
  #kind;
  #index = 0;
  #seen = null; // the list entries #sorted was made from (entries are replaced, never mutated)
  #sorted = null;
  #epoch = -1; // headersEpoch when #seen was last found current
  constructor(headers, kind) {
    this.#headers = headers;
    this.#kind = kind;
  }
  next() {
    if (this.#epoch !== headersEpoch) {
      const list = headersListRef(this.#headers);
      if (this.#sorted === null || !sameEntries(this.#seen, list)) {
        this.#seen = list.slice();
        this.#sorted = headersSorted(this.#headers);
      }
      this.#epoch = headersEpoch;
    }
    const pairs = this.#sorted;
    if (this.#index >= pairs.length) return { value: undefined, done: true };
    const p = pairs[this.#index++];
    const kind = this.#kind;
    return { value: kind === ITER_ENTRIES ? [p[0], p[1]] : kind === ITER_KEYS ? p[0] : p[1], done: false };
  }
}
function sameEntries(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
Object.setPrototypeOf(HeadersIterator.prototype, Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())));
delete HeadersIterator.prototype.constructor;
Object.defineProperty(HeadersIterator.prototype, Symbol.toStringTag, { value: 'Headers Iterator', configurable: true });
Object.defineProperty(HeadersIterator.prototype, 'next', { enumerable: true });

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

// A body is kept in the form it was given: a string (a USVString: well-formed, UTF-8 encoded
// only when bytes are asked for, by arrayBuffer()/bytes()/blob()/`body`, or by the hypervisor's
// host side, which encodes natively), or a Uint8Array that nothing outside references and that is
// never mutated, or null.

const TEXT_PLAIN = 'text/plain;charset=UTF-8';
const FORM_URLENCODED = 'application/x-www-form-urlencoded;charset=UTF-8';
const JSONparse = JSON.parse;
const JSONstringify = JSON.stringify;
// Shared header list entries (entries are never mutated).
const ENTRY_TEXT_PLAIN = ['content-type', TEXT_PLAIN];
const ENTRY_JSON = ['content-type', 'application/json'];
function contentTypeEntry(type) {
  return type === TEXT_PLAIN ? ENTRY_TEXT_PLAIN : ['content-type', type];
}

// "Extract a body": returns the body (see above) and leaves the Content-Type to use (or null) in
// `extractedType` (avoids allocating a result pair on the hot path). Read it right after the call.
let extractedType = null;
function extractBody(init) {
  if (typeof init === 'string') {
    extractedType = TEXT_PLAIN;
    return init.isWellFormed() ? init : init.toWellFormed();
  }
  if (isObjectLike(init)) {
    const b = copyBufferSource(init);
    if (b !== null) {
      extractedType = null;
      return b;
    }
    if (init instanceof URLSearchParams) {
      const s = init.toString();
      extractedType = FORM_URLENCODED;
      return s;
    }
    if (init instanceof Blob) {
      const t = init.type;
      extractedType = t !== '' ? t : null;
      return blobBytes(init); // Blob bytes are never mutated, no copy needed
    }
    if (isReadableStream(init)) {
      if (init.locked || streams().isDisturbed(init)) throw new TypeError('Response body object should not be disturbed or locked');
      extractedType = null;
      return init;
    }
  }
  if (formBodyHooks !== null && formBodyHooks.isFormData(init)) {
    const r = formBodyHooks.serialize(init);
    extractedType = r.type;
    return r.body;
  }
  const s = toUSVString(init);
  extractedType = TEXT_PLAIN;
  return s;
}

// FormData lives in forms.js; it plugs its body serializer and parser in here (setFormBodyHooks).
let formBodyHooks = null; // { isFormData(v), serialize(fd) => { body, type }, parse(bytes, contentType) => Promise<FormData> }
export function setFormBodyHooks(hooks) {
  formBodyHooks = hooks;
}

// text() of a body (null, string or bytes): UTF-8 decode, dropping a leading BOM.
function bodyText(b) {
  if (typeof b === 'string') return StringCharCodeAt(b, 0) === 0xFEFF ? sliceOf(b, 1) : b;
  if (b === null) return '';
  if (b.length <= CHUNK) {
    const s = reflectApply(fromCharCode, null, b);
    if (!regExpTest(NON_ASCII_RE, s)) return s; // all ASCII (so no BOM either)
  }
  return utf8DecodeStripBOM(b);
}
// A fresh Uint8Array of a body's bytes.
function bodyBytesCopy(b) {
  if (typeof b === 'string') return utf8Encode(b);
  return b === null ? new Uint8Array(0) : sliceOf(b);
}

function bodyUnusable() {
  return new TypeError('Body is unusable: Body has already been read');
}

const BODY_TEXT = 0, BODY_JSON = 1, BODY_ARRAYBUFFER = 2, BODY_BYTES = 3, BODY_BLOB = 4, BODY_FORMDATA = 5;
// A body that is a ReadableStream (not a string, bytes or null).
function isStreamBody(b) {
  return streamsLoaded && b !== null && typeof b === 'object' && isReadableStream(b);
}
// A stream body that cannot be read (any more): consumers reject with this.
function streamBodyUnusable(b) {
  return b.locked || streams().isDisturbed(b);
}
function consumeBody(kind, b, contentType) {
  if (isStreamBody(b)) {
    return PromiseThen(streams().readAllBytes(b, 'Body'), (bytes) => consumeBody(kind, bytes, contentType));
  }
  switch (kind) {
    case BODY_TEXT:
      return PromiseResolve(bodyText(b));
    case BODY_JSON: {
      try {
        return PromiseResolve(JSONparse(bodyText(b)));
      } catch (e) {
        return PromiseReject(e);
      }
    }
    case BODY_ARRAYBUFFER:
      return PromiseResolve(bodyBytesCopy(b).buffer);
    case BODY_BYTES:
      return PromiseResolve(bodyBytesCopy(b));
    case BODY_FORMDATA:
      return formBodyHooks.parse(typeof b === 'string' ? utf8Encode(b) : b === null ? EMPTY_BYTES : b, contentType);
    default: {
      const bytes = typeof b === 'string' ? utf8Encode(b) : b === null ? EMPTY_BYTES : b;
      return PromiseResolve(makeBlob(bytes, contentType === null ? '' : normalizeBlobType(contentType)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

const NORMALIZED_METHODS = new SetCtor(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);
const FORBIDDEN_METHODS = new SetCtor(['CONNECT', 'TRACE', 'TRACK']);
// Common method strings -> their normalised form (a Map lookup instead of validation).
const METHOD_CACHE = new MapCtor([['PATCH', 'PATCH'], ['patch', 'patch']]);
for (const m of NORMALIZED_METHODS) {
  MapSet(METHOD_CACHE, m, m);
  MapSet(METHOD_CACHE, StringToLowerCase(m), m);
}
const REQUEST_ENUMS = {
  mode: ['same-origin', 'no-cors', 'cors', 'navigate'],
  credentials: ['omit', 'same-origin', 'include'],
  cache: ['default', 'no-store', 'reload', 'no-cache', 'force-cache', 'only-if-cached'],
  redirect: ['follow', 'error', 'manual'],
  referrerPolicy: ['', 'no-referrer', 'no-referrer-when-downgrade', 'same-origin', 'origin', 'strict-origin', 'origin-when-cross-origin', 'strict-origin-when-cross-origin', 'unsafe-url'],
  priority: ['high', 'low', 'auto'],
  duplex: ['half'],
};
const REQUEST_ENUM_KEYS = Object.keys(REQUEST_ENUMS);
const REQUEST_DEFAULTS = {
  mode: 'cors', credentials: 'same-origin', cache: 'default', referrer: 'about:client', referrerPolicy: '',
  integrity: '', keepalive: false, priority: 'auto', duplex: 'half', destination: '',
};

function normalizeMethod(v) {
  if (typeof v === 'string') {
    const known = MapGet(METHOD_CACHE, v);
    if (known !== undefined) return known;
  }
  const m = toDOMString(v);
  if (!regExpTest(TOKEN_RE, m)) throw new TypeError(`'${m}' is not a valid HTTP method.`);
  const up = StringToUpperCase(m);
  if (SetHas(FORBIDDEN_METHODS, up)) throw new TypeError(`'${m}' HTTP method is unsupported.`);
  return SetHas(NORMALIZED_METHODS, up) ? up : m;
}

// The serialized URL of a Request input that is not a Request.
function requestURL(input) {
  const s = typeof input === 'string' ? input : toUSVString(input);
  const href = fastHref(s);
  if (href !== null) return href;
  const u = typeof input === 'string' ? toUSVString(s) : s;
  const rec = basicParse(u, null, null, 0);
  if (rec === null) throw new TypeError(`Failed to parse URL from ${u}`);
  if (includesCredentials(rec)) throw new TypeError(`Request cannot be constructed from a URL that includes credentials: ${u}`);
  return serializeURL(rec, false);
}

let requestFast; // (method, url, rawHeaders, body) => Request
let requestSetBody; // (r, body) => void
let requestPartsOf; // (r) => parts
let requestSignalOf; // (r) => AbortSignal | null (a dependent of the one given, or null)
let requestConsume; // (r, kind) => Promise

class Request {
  #method = 'GET';
  #url = '';
  // Headers; or, until `headers` is first read, an Array of trusted [name, value] pairs (names
  // not necessarily lower-cased; never mutated, so it can be shared) or null (no headers).
  #hdr = null;
  #body = null; // string | Uint8Array | null (see Bodies)
  #used = false;
  // Rarely needed state, allocated on demand (each private field costs time at construction):
  // null, or { signal (AbortSignal|null, created lazily), redirect, opts (other RequestInit
  // members that were given explicitly, or null), bodyView (memoised `body` bytes, or null) }.
  #x = null;

  constructor(input, init = undefined) {
    if (input === kInternal) return;
    // (no arity check: `new Request()` fails to parse "undefined" and throws a TypeError anyway)
    let dict = null;
    if (init !== undefined && init !== null) {
      if (!isObjectLike(init)) throw new TypeError("Failed to construct 'Request': The provided init is not an object.");
      dict = init;
    }
    let src = null;
    let redirect = 'follow', opts = null, signalSrc = null;
    if (isObjectLike(input) && #method in input) {
      src = input;
      this.#method = src.#method;
      this.#url = src.#url;
      const sx = src.#x;
      if (sx !== null) {
        redirect = sx.redirect;
        opts = sx.opts;
        signalSrc = sx.signal;
      }
    } else {
      this.#url = requestURL(input);
    }

    let initBody;
    let hdr = null; // becomes #hdr: Headers, an Array (see #hdr), or null
    let shared = false; // hdr is the input request's pair array (must not be changed)
    if (dict !== null) {
      const method = dict.method;
      if (method !== undefined) this.#method = normalizeMethod(method);
      let own = null; // copy-on-write of the input's options
      for (let i = 0; i < REQUEST_ENUM_KEYS.length; i++) {
        const key = REQUEST_ENUM_KEYS[i];
        const v = dict[key];
        if (v === undefined) continue;
        const s = toDOMString(v);
        if (!REQUEST_ENUMS[key].includes(s)) throw new TypeError(`Failed to construct 'Request': The provided value '${s}' is not a valid enum value of type Request${key[0].toUpperCase()}${key.slice(1)}.`);
        if (key === 'mode' && s === 'navigate') throw new TypeError("Failed to construct 'Request': Cannot construct a Request with a RequestInit whose mode member is set as 'navigate'.");
        if (key === 'redirect') redirect = s;
        else (own || (own = { ...opts }))[key] = s;
      }
      const referrer = dict.referrer;
      if (referrer !== undefined) (own || (own = { ...opts })).referrer = toUSVString(referrer);
      const integrity = dict.integrity;
      if (integrity !== undefined) (own || (own = { ...opts })).integrity = toDOMString(integrity);
      const keepalive = dict.keepalive;
      if (keepalive !== undefined) (own || (own = { ...opts })).keepalive = Boolean(keepalive);
      if (own !== null) opts = own;
      const signal = dict.signal;
      if (signal !== undefined) {
        if (signal !== null && !(signal instanceof AbortSignal)) throw new TypeError("Failed to construct 'Request': member signal is not of type AbortSignal.");
        signalSrc = signal;
      }
      const headers = dict.headers;
      if (headers !== undefined) {
        const list = buildList(headers);
        hdr = builtCookies === null ? list : headersWrap(list, builtCookies, GUARD_NONE);
      }
      initBody = dict.body;
    }
    if (hdr === null && src !== null) {
      const h = src.#hdr;
      if (isArray(h)) {
        hdr = h;
        shared = true;
      } else if (h !== null) {
        hdr = headersClone(h, GUARD_NONE);
      }
    }
    const signal = signalSrc !== null ? dependentSignal([signalSrc]) : null;
    if (redirect !== 'follow' || opts !== null || signal !== null) this.#x = { signal, redirect, opts, bodyView: null };

    const inputBody = src !== null ? src.#body : null;
    const hasInitBody = initBody !== undefined && initBody !== null;
    if ((hasInitBody || inputBody !== null) && (this.#method === 'GET' || this.#method === 'HEAD')) {
      throw new TypeError('Request with GET/HEAD method cannot have body.');
    }
    if (hasInitBody) {
      this.#body = extractBody(initBody);
      const type = extractedType;
      if (type !== null) {
        if (hdr === null) {
          hdr = [contentTypeEntry(type)];
        } else if (isArray(hdr) && !shared) {
          if (listFind(hdr, 'content-type') < 0) ArrayPush(hdr, contentTypeEntry(type));
        } else {
          if (shared) hdr = headersFromRaw(hdr, GUARD_NONE);
          if (!headersHasLower(hdr, 'content-type')) headersAppendTrusted(hdr, 'content-type', type);
        }
      }
    } else if (inputBody !== null) {
      // Only a body taken over from the input needs the input to be usable (a new body replaces it).
      if (src.#used) throw new TypeError('Cannot construct a Request with a Request object that has already been used.');
      this.#body = inputBody;
      src.#used = true; // the input's body is transferred to the new request
    }
    this.#hdr = hdr;
  }

  get method() { return this.#method; }
  get url() { return this.#url; }
  get headers() {
    const h = this.#hdr;
    if (h === null) return (this.#hdr = headersWrap([], null, GUARD_NONE));
    if (isArray(h)) return (this.#hdr = headersFromRaw(h, GUARD_NONE));
    return h;
  }
  get destination() { return ''; }
  get referrer() { return requestOpt(this.#x, 'referrer'); }
  get referrerPolicy() { return requestOpt(this.#x, 'referrerPolicy'); }
  get mode() { return requestOpt(this.#x, 'mode'); }
  get credentials() { return requestOpt(this.#x, 'credentials'); }
  get cache() { return requestOpt(this.#x, 'cache'); }
  get redirect() { return this.#x === null ? 'follow' : this.#x.redirect; }
  get integrity() { return requestOpt(this.#x, 'integrity'); }
  get keepalive() { return requestOpt(this.#x, 'keepalive'); }
  get isReloadNavigation() { return false; }
  get isHistoryNavigation() { return false; }
  get duplex() { return 'half'; }
  get signal() {
    let x = this.#x;
    if (x === null) x = this.#x = { signal: null, redirect: 'follow', opts: null, bodyView: null };
    let s = x.signal;
    if (s === null) s = x.signal = newSignal();
    return s;
  }

  // A ReadableStream (made on first read from a string or bytes body, see file header), or null.
  get body() {
    const b = this.#body;
    if (b === null || isStreamBody(b)) return b;
    const stream = (this.#body = streams().bytesStream(typeof b === 'string' ? utf8Encode(b) : b));
    // A body consumed before it was a stream: its stream is as a read one, locked and disturbed.
    if (this.#used) streams().takeIntactBytes(stream);
    return stream;
  }
  get bodyUsed() {
    const b = this.#body;
    return this.#used || (isStreamBody(b) && streams().isDisturbed(b));
  }

  text() {
    if (this.#used) return PromiseReject(bodyUnusable());
    const b = this.#body;
    if (b === null) return PromiseResolve('');
    if (isStreamBody(b)) return requestConsume(this, BODY_TEXT);
    this.#used = true;
    return PromiseResolve(bodyText(b));
  }
  json() { return requestConsume(this, BODY_JSON); }
  arrayBuffer() { return requestConsume(this, BODY_ARRAYBUFFER); }
  bytes() { return requestConsume(this, BODY_BYTES); }
  blob() { return requestConsume(this, BODY_BLOB); }
  formData() { return requestConsume(this, BODY_FORMDATA); }

  clone() {
    if (this.bodyUsed) throw new TypeError('Request.clone: Body has already been consumed.');
    const r = new Request(kInternal);
    r.#method = this.#method;
    r.#url = this.#url;
    const h = this.#hdr;
    r.#hdr = h === null || isArray(h) ? h : headersClone(h, GUARD_NONE); // arrays are never mutated
    r.#body = cloneBody(this, this.#body); // bodies are never mutated, sharing is safe (streams are teed)
    const x = this.#x;
    if (x !== null) {
      r.#x = { signal: x.signal === null ? null : dependentSignal([x.signal]), redirect: x.redirect, opts: x.opts, bodyView: null };
    }
    return r;
  }

  static {
    requestSetBody = (r, b) => { r.#body = b; };
    requestFast = (method, url, rawHeaders, body) => {
      const r = new Request(kInternal);
      r.#method = method;
      r.#url = url;
      r.#hdr = rawHeaders;
      r.#body = body;
      return r;
    };
    requestSignalOf = (r) => (r.#x === null ? null : r.#x.signal);
    requestPartsOf = (r) => {
      if (!(isObjectLike(r) && #method in r)) throw new TypeError('requestParts: argument is not a Request');
      const h = r.#hdr;
      return {
        method: r.#method,
        url: r.#url,
        headers: h === null ? [] : headersListOf(isArray(h) ? headersFromRaw(h, GUARD_NONE) : h),
        body: r.#body,
      };
    };
    requestConsume = (r, kind) => {
      const b = r.#body;
      if (r.#used || (isStreamBody(b) && streamBodyUnusable(b))) return PromiseReject(bodyUnusable());
      if (b !== null) r.#used = true;
      return consumeBody(kind, b, kind >= BODY_BLOB ? headersGetLower(r.headers, 'content-type') : null);
    };
  }
}
// The body of a clone of `owner` (whose body is `b`): a stream is teed, the owner keeping one branch.
function cloneBody(owner, b) {
  if (!isStreamBody(b)) return b;
  const [mine, theirs] = b.tee();
  if (owner instanceof Request) requestSetBody(owner, mine);
  else responseSetBody(owner, mine);
  return theirs;
}
function requestOpt(x, k) {
  const o = x === null ? null : x.opts;
  return o !== null && o[k] !== undefined ? o[k] : REQUEST_DEFAULTS[k];
}
setTag(Request, 'Request');

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

const REASON_PHRASE_RE = /^[\t\x20-\x7E\x80-\xFF]*$/;
const REDIRECT_STATUSES = new SetCtor([301, 302, 303, 307, 308]);

// WebIDL "unsigned short" conversion (modulo 2^16).
function toUint16(v) {
  if (typeof v === 'number' && (v & 0xFFFF) === v) return v;
  const n = Number(v);
  if (!Number.isFinite(n)) return 0;
  let x = Math.trunc(n) % 65536;
  if (x < 0) x += 65536;
  return x;
}

let responseFast; // (status, statusText, headers(Headers), body, type, url) => Response
let responseSetBody; // (r, body) => void
let responsePartsOf; // (r) => parts
let responseHeadOf; // (r) => the head's JSON (headJson); the body is left in responseBodyOut
let responseBodyOut = null;
let responseConsume; // (r, kind) => Promise

class Response {
  #status = 200;
  // Headers; or, until `headers` is first read, the validated header list (no set-cookie entries,
  // guard "none"; NO_HEADERS when empty) as an Array.
  #hdr = NO_HEADERS;
  #body = null; // string | Uint8Array | null (see Bodies)
  #used = false;
  // Rarely needed state, allocated on demand (each private field costs time at construction):
  // null (statusText "", type "default", url "", no memoised body), or { statusText, type, url, bodyView }.
  #x = null;

  constructor(body = null, init) { // (Response.length is 0, as in Node)
    if (body === kInternal) return;
    let status = 200, statusText = '', headers;
    if (init !== undefined && init !== null) {
      if (!isObjectLike(init)) throw new TypeError("Failed to construct 'Response': The provided init is not an object.");
      const s = init.status;
      if (s !== undefined) status = typeof s === 'number' && (s & 0xFFFF) === s ? s : toUint16(s);
      const t = init.statusText;
      if (t !== undefined) statusText = toDOMString(t);
      headers = init.headers;
    }
    if (status < 200 || status > 599) throw new RangeError('init["status"] must be in the range of 200 to 599, inclusive.');
    if (statusText !== '' && !regExpTest(REASON_PHRASE_RE, statusText)) throw new TypeError('Invalid statusText');
    this.#status = status;
    if (statusText !== '') this.#x = { statusText, type: 'default', url: '', bodyView: null };
    let list = NO_HEADERS, cookies = null, hasType = false;
    if (headers !== undefined) {
      list = buildList(headers);
      cookies = builtCookies;
      hasType = builtContentType;
    }
    if (body !== null && body !== undefined) {
      if (status === 204 || status === 205 || status === 304) throw new TypeError(`Response constructor: Invalid response status code ${status}`);
      let entry = ENTRY_TEXT_PLAIN;
      if (typeof body === 'string') {
        this.#body = body.isWellFormed() ? body : body.toWellFormed();
      } else {
        this.#body = extractBody(body);
        entry = extractedType === null ? null : contentTypeEntry(extractedType);
      }
      if (entry !== null && !hasType) {
        if (list === NO_HEADERS) list = [entry];
        else ArrayPush(list, entry);
      }
    }
    this.#hdr = cookies === null ? list : headersWrap(list, cookies, GUARD_NONE);
  }

  static error() {
    return responseFast(0, '', headersWrap([], null, GUARD_IMMUTABLE), null, 'error', '');
  }
  static redirect(url, status = 302) {
    requireArgs(arguments.length, 1, "Failed to execute 'redirect' on 'Response'");
    const s = toUSVString(url);
    const rec = basicParse(s, null, null, 0);
    if (rec === null) throw new TypeError(`Failed to parse URL from ${s}`);
    const st = toUint16(status);
    if (!SetHas(REDIRECT_STATUSES, st)) throw new RangeError(`Invalid status code ${st}`);
    return responseFast(st, '', headersWrap([['location', serializeURL(rec, false)]], null, GUARD_IMMUTABLE), null, 'default', '');
  }
  static json(data, init = undefined) {
    const text = JSONstringify(data);
    if (text === undefined) throw new TypeError('Value is not JSON serializable');
    let status = 200, statusText = '', headers;
    if (init !== undefined && init !== null) {
      if (!isObjectLike(init)) throw new TypeError("Failed to execute 'json' on 'Response': The provided init is not an object.");
      const s = init.status;
      if (s !== undefined) status = typeof s === 'number' && (s & 0xFFFF) === s ? s : toUint16(s);
      const t = init.statusText;
      if (t !== undefined) statusText = toDOMString(t);
      headers = init.headers;
    }
    let list = NO_HEADERS, cookies = null, hasType = false;
    if (headers !== undefined) {
      list = buildList(headers);
      cookies = builtCookies;
      hasType = builtContentType;
    }
    if (status < 200 || status > 599) throw new RangeError('init["status"] must be in the range of 200 to 599, inclusive.');
    if (statusText !== '' && !regExpTest(REASON_PHRASE_RE, statusText)) throw new TypeError('Invalid statusText');
    if (status === 204 || status === 205 || status === 304) throw new TypeError(`Response constructor: Invalid response status code ${status}`);
    if (!hasType) {
      if (list === NO_HEADERS) list = [ENTRY_JSON];
      else ArrayPush(list, ENTRY_JSON);
    }
    const r = new Response(kInternal);
    r.#status = status;
    if (statusText !== '') r.#x = { statusText, type: 'default', url: '', bodyView: null };
    r.#hdr = cookies === null ? list : headersWrap(list, cookies, GUARD_NONE);
    r.#body = text; // JSON.stringify() output is always well-formed
    return r;
  }

  get type() { return this.#x === null ? 'default' : this.#x.type; }
  get url() { return this.#x === null ? '' : this.#x.url; }
  get redirected() { return false; }
  get status() { return this.#status; }
  get ok() { return this.#status >= 200 && this.#status <= 299; }
  get statusText() { return this.#x === null ? '' : this.#x.statusText; }
  get headers() {
    const h = this.#hdr;
    if (!isArray(h)) return h;
    return (this.#hdr = headersWrap(h === NO_HEADERS ? [] : h, null, GUARD_NONE));
  }

  // A ReadableStream (made on first read from a string or bytes body, see file header), or null.
  get body() {
    const b = this.#body;
    if (b === null || isStreamBody(b)) return b;
    const stream = (this.#body = streams().bytesStream(typeof b === 'string' ? utf8Encode(b) : b));
    // A body consumed before it was a stream: its stream is as a read one, locked and disturbed.
    if (this.#used) streams().takeIntactBytes(stream);
    return stream;
  }
  get bodyUsed() {
    const b = this.#body;
    return this.#used || (isStreamBody(b) && streams().isDisturbed(b));
  }

  text() {
    if (this.#used) return PromiseReject(bodyUnusable());
    const b = this.#body;
    if (b === null) return PromiseResolve('');
    if (isStreamBody(b)) return responseConsume(this, BODY_TEXT);
    this.#used = true;
    return PromiseResolve(bodyText(b));
  }
  json() { return responseConsume(this, BODY_JSON); }
  arrayBuffer() { return responseConsume(this, BODY_ARRAYBUFFER); }
  bytes() { return responseConsume(this, BODY_BYTES); }
  blob() { return responseConsume(this, BODY_BLOB); }
  formData() { return responseConsume(this, BODY_FORMDATA); }

  clone() {
    if (this.bodyUsed) throw new TypeError('Response.clone: Body has already been consumed.');
    const r = new Response(kInternal);
    r.#status = this.#status;
    const h = this.#hdr;
    r.#hdr = isArray(h) ? (h === NO_HEADERS ? h : sliceOf(h)) : headersClone(h, headersGuardOf(h));
    r.#body = cloneBody(this, this.#body); // bodies are never mutated, sharing is safe (streams are teed)
    const x = this.#x;
    if (x !== null) r.#x = { statusText: x.statusText, type: x.type, url: x.url, bodyView: null };
    return r;
  }

  static {
    responseSetBody = (r, b) => { r.#body = b; };
    responseFast = (status, statusText, headers, body, type, url) => {
      const r = new Response(kInternal);
      r.#status = status;
      r.#hdr = headers;
      r.#body = body;
      if (statusText !== '' || type !== 'default' || url !== '') r.#x = { statusText, type, url, bodyView: null };
      return r;
    };
    responsePartsOf = (r) => {
      if (!(isObjectLike(r) && #status in r)) throw new TypeError('responseParts: argument is not a Response');
      const h = r.#hdr;
      const x = r.#x;
      return { status: r.#status, statusText: x === null ? '' : x.statusText, headers: isArray(h) ? h : headersListOf(h), body: r.#body };
    };
    responseHeadOf = (r) => {
      if (!(isObjectLike(r) && #status in r)) throw new TypeError('responseParts: argument is not a Response');
      const h = r.#hdr;
      const x = r.#x;
      responseBodyOut = r.#body;
      return headJson(r.#status, x === null ? '' : x.statusText, isArray(h) ? h : headersListOf(h));
    };
    responseConsume = (r, kind) => {
      const b = r.#body;
      if (r.#used || (isStreamBody(b) && streamBodyUnusable(b))) return PromiseReject(bodyUnusable());
      if (b !== null) r.#used = true;
      let ct = null;
      if (kind >= BODY_BLOB) {
        const h = r.#hdr;
        if (isArray(h)) {
          const j = listFind(h, 'content-type');
          if (j >= 0) ct = h[j][1];
        } else {
          ct = headersGetLower(h, 'content-type');
        }
      }
      return consumeBody(kind, b, ct);
    };
  }
}
setTag(Response, 'Response');

// ---------------------------------------------------------------------------------------------
// structuredClone
// ---------------------------------------------------------------------------------------------

const objToString = Object.prototype.toString;
const ERROR_CTORS = {
  Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError,
};
const UNCLONEABLE_TAGS = new SetCtor([
  '[object Promise]', '[object WeakMap]', '[object WeakSet]', '[object WeakRef]', '[object FinalizationRegistry]',
  '[object Generator]', '[object AsyncGenerator]', '[object Proxy]', '[object Module]',
  // Streams are transferable, not cloneable (no transfer of streams here).
  '[object ReadableStream]', '[object WritableStream]', '[object TransformStream]',
]);
const PLATFORM_UNCLONEABLE = [Headers, Request, Response, URL, URLSearchParams, AbortController, EventTarget, Event, TextEncoder, TextDecoder];
const getRegExpSource = Object.getOwnPropertyDescriptor(RegExp.prototype, 'source').get;
const getRegExpFlags = Object.getOwnPropertyDescriptor(RegExp.prototype, 'flags').get;
const getMapSize = Object.getOwnPropertyDescriptor(Map.prototype, 'size').get;
const getSetSize = Object.getOwnPropertyDescriptor(Set.prototype, 'size').get;
const getABByteLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength').get;
const TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype);
const getTypedArrayTag = Object.getOwnPropertyDescriptor(TypedArrayProto, Symbol.toStringTag).get;
const typedArraySlice = TypedArrayProto.slice;

function dataCloneError(v) {
  let what;
  if (typeof v === 'function') what = `${v.name ? `function ${v.name}` : 'function'}() {}`;
  else if (typeof v === 'symbol') what = v.toString();
  else what = `#<${(v && v.constructor && v.constructor.name) || 'Object'}>`;
  return new DOMException(`${what} could not be cloned.`, 'DataCloneError');
}

function isBrand(fn, v) {
  try {
    fn.call(v);
    return true;
  } catch {
    return false;
  }
}

function defineOwn(obj, key, value) {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

// Serializable platform objects of other modules (CryptoKey): tag → function that clones one, or
// answers undefined if `v` only pretends to have the tag.
const platformCloners = new MapCtor();
function registerCloner(tag, clone) {
  MapSet(platformCloners, tag, clone);
}

function cloneValue(v, memory) {
  const t = typeof v;
  if (t === 'symbol' || t === 'function') throw dataCloneError(v);
  if (t !== 'object' || v === null) return v;
  const seen = MapGet(memory, v);
  if (seen !== undefined) return seen;

  if (Array.isArray(v)) {
    const out = new Array(v.length);
    MapSet(memory, v, out);
    for (const k of Object.keys(v)) defineOwn(out, k, cloneValue(v[k], memory));
    return out;
  }

  const tag = objToString.call(v);
  let out;
  switch (tag) {
    case '[object Object]':
      break;
    case '[object Date]':
      if (isBrand(Date.prototype.getTime, v)) { out = new Date(Date.prototype.getTime.call(v)); MapSet(memory, v, out); return out; }
      break;
    case '[object RegExp]':
      if (isBrand(getRegExpSource, v) && v !== RegExp.prototype) { out = new RegExp(getRegExpSource.call(v), getRegExpFlags.call(v)); MapSet(memory, v, out); return out; }
      break;
    case '[object Boolean]':
      if (isBrand(Boolean.prototype.valueOf, v)) { out = Object(Boolean.prototype.valueOf.call(v)); MapSet(memory, v, out); return out; }
      break;
    case '[object Number]':
      if (isBrand(Number.prototype.valueOf, v)) { out = Object(Number.prototype.valueOf.call(v)); MapSet(memory, v, out); return out; }
      break;
    case '[object String]':
      if (isBrand(String.prototype.valueOf, v)) { out = Object(String.prototype.valueOf.call(v)); MapSet(memory, v, out); return out; }
      break;
    case '[object BigInt]':
      if (isBrand(BigInt.prototype.valueOf, v)) { out = Object(BigInt.prototype.valueOf.call(v)); MapSet(memory, v, out); return out; }
      break;
    case '[object Symbol]':
      throw dataCloneError(v);
    case '[object Map]':
      if (isBrand(getMapSize, v)) {
        out = new MapCtor();
        MapSet(memory, v, out);
        const entries = Array.from(Map.prototype.entries.call(v));
        for (const [k, val] of entries) MapSet(out, cloneValue(k, memory), cloneValue(val, memory));
        return out;
      }
      break;
    case '[object Set]':
      if (isBrand(getSetSize, v)) {
        out = new SetCtor();
        MapSet(memory, v, out);
        const values = Array.from(Set.prototype.values.call(v));
        for (const val of values) SetAdd(out, cloneValue(val, memory));
        return out;
      }
      break;
    case '[object ArrayBuffer]':
      if (isBrand(getABByteLength, v)) {
        if (v.detached) throw new DOMException('An ArrayBuffer is detached and could not be cloned.', 'DataCloneError');
        if (v.resizable) {
          out = new ArrayBuffer(v.byteLength, { maxByteLength: v.maxByteLength });
          new Uint8Array(out).set(new Uint8Array(v));
        } else {
          out = ArrayBuffer.prototype.slice.call(v, 0);
        }
        MapSet(memory, v, out);
        return out;
      }
      break;
    case '[object SharedArrayBuffer]':
      MapSet(memory, v, v);
      return v;
    case '[object DataView]':
      if (ArrayBuffer.isView(v) && getTypedArrayTag.call(v) === undefined) {
        let offset, length;
        try {
          offset = v.byteOffset;
          length = v.byteLength;
        } catch {
          throw new DOMException('A DataView out of bounds of its resized ArrayBuffer could not be cloned.', 'DataCloneError');
        }
        const buf = cloneValue(v.buffer, memory);
        out = new DataView(buf, offset, length);
        MapSet(memory, v, out);
        return out;
      }
      break;
    case '[object Error]': {
      let name = v.name;
      if (typeof name !== 'string' || !Object.prototype.hasOwnProperty.call(ERROR_CTORS, name)) name = 'Error';
      const md = Object.getOwnPropertyDescriptor(v, 'message');
      const message = md !== undefined && 'value' in md ? toDOMString(md.value) : undefined;
      out = message === undefined ? new ERROR_CTORS[name]() : new ERROR_CTORS[name](message);
      MapSet(memory, v, out);
      const sd = Object.getOwnPropertyDescriptor(v, 'stack');
      if (sd !== undefined && typeof sd.value === 'string') Object.defineProperty(out, 'stack', { value: sd.value, writable: true, configurable: true, enumerable: false });
      const cd = Object.getOwnPropertyDescriptor(v, 'cause');
      if (cd !== undefined && 'value' in cd) Object.defineProperty(out, 'cause', { value: cloneValue(cd.value, memory), writable: true, configurable: true, enumerable: false });
      return out;
    }
    case '[object DOMException]':
      if (v instanceof DOMException) {
        out = new DOMException(v.message, v.name);
        MapSet(memory, v, out);
        return out;
      }
      break;
    case '[object Blob]':
      if (v instanceof Blob) {
        out = makeBlob(blobBytes(v), v.type);
        MapSet(memory, v, out);
        return out;
      }
      break;
    default: {
      if (SetHas(UNCLONEABLE_TAGS, tag)) throw dataCloneError(v);
      const cloner = MapGet(platformCloners, tag);
      if (cloner !== undefined) {
        out = cloner(v);
        if (out !== undefined) {
          MapSet(memory, v, out);
          return out;
        }
      }
      if (ArrayBuffer.isView(v)) {
        const name = getTypedArrayTag.call(v);
        if (name !== undefined) {
          // Out of bounds of a shrunk resizable buffer: every TypedArray method validates that.
          try { typedArraySlice.call(v, 0, 0); } catch {
            throw new DOMException('A TypedArray out of bounds of its resized ArrayBuffer could not be cloned.', 'DataCloneError');
          }
          const buf = cloneValue(v.buffer, memory);
          out = new globalThis[name](buf, v.byteOffset, v.length);
          MapSet(memory, v, out);
          return out;
        }
      }
    }
  }
  for (let i = 0; i < PLATFORM_UNCLONEABLE.length; i++) if (v instanceof PLATFORM_UNCLONEABLE[i]) throw dataCloneError(v);
  out = {};
  MapSet(memory, v, out);
  for (const k of Object.keys(v)) defineOwn(out, k, cloneValue(v[k], memory));
  return out;
}

function structuredClone(value, options = undefined) {
  requireArgs(arguments.length, 1, "Failed to execute 'structuredClone'");
  const memory = new MapCtor();
  let transfer = null;
  if (options !== undefined && options !== null) {
    if (!isObjectLike(options)) throw new TypeError("Failed to execute 'structuredClone': The provided value is not of type 'StructuredSerializeOptions'.");
    if (options.transfer !== undefined) {
      transfer = Array.from(options.transfer);
      const seen = new SetCtor();
      for (const b of transfer) {
        if (!isObjectLike(b)) throw new TypeError("Failed to execute 'structuredClone': transfer list entries must be objects");
        if (!(b instanceof ArrayBuffer)) throw new DOMException('Value not transferable', 'DataCloneError');
        if (SetHas(seen, b)) throw new DOMException('ArrayBuffer at index is a duplicate of an earlier ArrayBuffer.', 'DataCloneError');
        if (b.detached) throw new DOMException('An ArrayBuffer is detached and could not be cloned.', 'DataCloneError');
        SetAdd(seen, b);
      }
    }
  }
  const out = cloneValue(value, memory);
  if (transfer !== null) {
    // Transferred buffers were copied during the clone; detach the originals now.
    for (const b of transfer) b.transfer(0);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Install
// ---------------------------------------------------------------------------------------------

defineGlobal('DOMException', DOMException);
defineGlobal('Event', Event);
defineGlobal('EventTarget', EventTarget);
defineGlobal('AbortController', AbortController);
defineGlobal('AbortSignal', AbortSignal);
defineGlobal('TextEncoder', TextEncoder);
defineGlobal('TextDecoder', TextDecoder);
defineGlobal('atob', atob);
defineGlobal('btoa', btoa);
defineGlobal('URL', URL);
defineGlobal('URLSearchParams', URLSearchParams);
defineGlobal('Blob', Blob);
defineGlobal('Headers', Headers);
defineGlobal('Request', Request);
defineGlobal('Response', Response);
defineGlobal('structuredClone', structuredClone);
installStreams({ AbortController, AbortSignal, DOMException, TextEncoder, TextDecoder, viewBufferSource });

// A response's head as the hypervisor's respond call takes it: the same string as
// JSON.stringify([status, statusText, list]), built by concatenation: with the parts object it replaces,
// ~2 µs less per response in the interpreter (issue 19, guest19: JSON.stringify is generic, with
// toJSON and replacer checks and a property lookup per element). A string of printable ASCII without
// `"` or `\` (every header name, and nearly every value) is quoted as it is; the quoted form of a short
// string is remembered (bounded, as the header caches above), anything else goes to JSON.stringify.
const JSON_PLAIN_RE = /^[\x20\x21\x23-\x5B\x5D-\x7E]*$/;
let quotedCache = new MapCtor(); // string -> its JSON (strings of up to 128 characters)
let quotedCount = 0;
function jsonQuoted(s) {
  let q = MapGet(quotedCache, s);
  if (q !== undefined) return q;
  q = regExpTest(JSON_PLAIN_RE, s) ? '"' + s + '"' : JSONstringify(s);
  if (s.length <= 128) {
    if (quotedCount >= CACHE_MAX) {
      quotedCache = new MapCtor(); // not clear(): the guest may patch Map.prototype
      quotedCount = 0;
    }
    MapSet(quotedCache, s, q);
    quotedCount++;
  }
  return q;
}
function headJson(status, statusText, list) {
  let out = '[' + status + ',' + (statusText === '' ? '""' : jsonQuoted(statusText)) + ',[';
  for (let i = 0; i < list.length; i++) {
    const e = list[i];
    out += (i === 0 ? '[' : ',[') + jsonQuoted(e[0]) + ',' + jsonQuoted(e[1]) + ']';
  }
  return out + ']]';
}

// Hypervisor interface (captured, then deleted, by the hypervisor).
const hypervisorInterface = {
  // Inbound request: no validation (the hypervisor's HTTP layer already parsed it). Headers are
  // materialised lazily; their names are lower-cased then.
  makeRequest: requestFast, // (method, url, headers, body): one call less per request than a wrapper
  // Outbound fetch result: immutable headers, type "basic".
  makeResponse(status, statusText, headers, body, url) {
    return responseFast(status, statusText, headersFromRaw(headers, GUARD_IMMUTABLE), body, 'basic', url);
  },
  responseParts(r) {
    return responsePartsOf(r);
  },
  // responseParts(r) for the respond call, in one step and without the parts object: the head as
  // JSON.stringify([status, statusText, headers]) (see headJson); the body (as responseParts gives
  // it) is left in responseBody, to read right after.
  responseHead(r) {
    const head = responseHeadOf(r);
    hypervisorInterface.responseBody = responseBodyOut;
    responseBodyOut = null;
    return head;
  },
  responseBody: null,
  requestParts(r) {
    return requestPartsOf(r);
  },
  toRequest(input, init) {
    return new Request(input, init);
  },
  // The signal fetch must honour (null when none was given), its state, and an abort hook that
  // guest patches to AbortSignal/EventTarget cannot reach.
  requestSignal(r) {
    return requestSignalOf(r);
  },
  abortState(signal) {
    return abortState(signal);
  },
  onAbort(signal, fn) {
    addAbortAlgorithm(signal, fn);
  },
  useTimer(setTimer) {
    guestTimer = setTimer;
  },
  // Streamed bodies (hypervisor/guest/web/streams.js): whether `body` (from responseParts/requestParts)
  // is a ReadableStream; its bytes when it is an untouched stream made from bytes (else null); a
  // Promise of all its bytes.
  isStream(body) {
    return isStreamBody(body);
  },
  intactBytes(stream) {
    return streams().takeIntactBytes(stream);
  },
  readAll(stream) {
    return streams().readAllBytes(stream, 'fetch');
  },
};

globalThis.__ftjs_web = hypervisorInterface;

// For the other modules of the guest web platform (forms.js, encoding.js, subtle.js, ...).
export { Blob, blobBytes, makeBlob, DOMException, defineGlobal, registerCloner, setTag, isObjectLike, toUSVString, requireArgs, utf8Encode, utf8DecodeNoBOM, latin1ToString, formParse };

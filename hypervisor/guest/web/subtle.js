// crypto.subtle for the guest: the WebIDL half (argument conversion, CryptoKey objects, promises,
// DOMExceptions). The cryptography runs in the host (hypervisor/subtle/, host op 8, at host speed),
// as a pure function of what this module sends it, so a replaying backup computes the same bytes.
// Anything random (generated keys, PSS salts) is drawn here from the recorded entropy input (host
// op 6, the bytes crypto.getRandomValues reads) when the host asks for it, so replay reproduces it.
//
// Keys live here, in guest memory (snapshot rule: no host handles): a CryptoKey holds its material
// as an ArrayBuffer (raw for secret keys, SPKI/PKCS #8 DER for public/private keys).
//
// Wire: host(8, json, ...ArrayBuffers) → [json, ...ArrayBuffers], byte strings referenced in the JSON
// as {"$b": index}. Answers: {ok}, {error: {name, message}}, or {entropy: n} ("ask again with n
// entropy bytes").

import { DOMException, defineGlobal, registerCloner, setTag } from './platform.js';

const host = globalThis.__ftjs_host;
const OP_ENTROPY = 6;
const OP_CRYPTO = 13;

// Intrinsics, captured at boot: the guest may patch the builtins.
const JSONparse = JSON.parse;
const JSONstringify = JSON.stringify;
const isArray = Array.isArray;
const isView = ArrayBuffer.isView;
const reflectApply = Reflect.apply;
const objectFreeze = Object.freeze;
const objectKeys = Object.keys;
const hasOwn = Object.hasOwn;
const arrayIncludes = Array.prototype.includes;
const StringCtor = String;
const NumberCtor = Number;
const numberIsFinite = Number.isFinite;
const getter = (proto, name) => Object.getOwnPropertyDescriptor(proto, name).get;
const abByteLength = getter(ArrayBuffer.prototype, 'byteLength');
const TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype);
const taBuffer = getter(TypedArrayProto, 'buffer');
const taByteOffset = getter(TypedArrayProto, 'byteOffset');
const taByteLength = getter(TypedArrayProto, 'byteLength');
const dvBuffer = getter(DataView.prototype, 'buffer');
const dvByteOffset = getter(DataView.prototype, 'byteOffset');
const dvByteLength = getter(DataView.prototype, 'byteLength');
const u8Set = Uint8Array.prototype.set;
const u8Slice = Uint8Array.prototype.slice;

const kConstruct = objectFreeze({});
const USAGES = ['encrypt', 'decrypt', 'sign', 'verify', 'deriveKey', 'deriveBits', 'wrapKey', 'unwrapKey'];
const FORMATS = ['raw', 'spki', 'pkcs8', 'jwk'];
const JWK_STRINGS = ['kty', 'use', 'alg', 'crv', 'x', 'y', 'd', 'n', 'e', 'p', 'q', 'dp', 'dq', 'qi', 'k'];
const BYTE_MEMBERS = ['publicExponent', 'iv', 'counter', 'additionalData', 'salt', 'info', 'label', 'context'];
const NUMBER_MEMBERS = ['length', 'modulusLength', 'saltLength', 'tagLength', 'iterations'];

function fail(method, message) {
  return new TypeError("Failed to execute '" + method + "' on 'SubtleCrypto': " + message);
}

const NativeArrayBuffer = ArrayBuffer;
const hasInstance = Function.prototype[Symbol.hasInstance];

/** For values this module made (no exception, which costs tens of µs in QuickJS). */
function isOwnArrayBuffer(value) {
  return reflectApply(hasInstance, NativeArrayBuffer, [value]);
}

/** For values from the guest: a genuine ArrayBuffer, not one with a forged prototype. */
function isArrayBuffer(value) {
  if (value === null || typeof value !== 'object' || isView(value)) return false;
  try {
    reflectApply(abByteLength, value, []);
    return true;
  } catch {
    return false;
  }
}

/** A copy of a BufferSource's bytes as a fresh ArrayBuffer, or undefined if `value` is not one. */
function bytesOf(value) {
  let view;
  if (isView(value)) {
    const isTyped = !(value instanceof DataView);
    view = new Uint8Array(
      reflectApply(isTyped ? taBuffer : dvBuffer, value, []),
      reflectApply(isTyped ? taByteOffset : dvByteOffset, value, []),
      reflectApply(isTyped ? taByteLength : dvByteLength, value, []),
    );
  } else if (isArrayBuffer(value)) view = new Uint8Array(value);
  else return undefined;
  const copy = new Uint8Array(view.length);
  reflectApply(u8Set, copy, [view]);
  return copy.buffer;
}

function bufferSource(method, value, what) {
  const bytes = bytesOf(value);
  if (bytes === undefined) throw fail(method, what + ' is not instance of ArrayBuffer, Buffer, TypedArray, or DataView.');
  return bytes;
}

// ---------- CryptoKey ----------

class CryptoKey {
  #desc;
  #algorithm;
  constructor(token, desc) {
    if (token !== kConstruct) throw new TypeError('Illegal constructor');
    this.#desc = desc;
    this.#algorithm = publicAlgorithm(desc.algorithm);
  }
  get type() {
    return this.#desc.type;
  }
  get extractable() {
    return this.#desc.extractable;
  }
  get algorithm() {
    return this.#algorithm;
  }
  get usages() {
    const usages = this.#desc.usages;
    const copy = [];
    for (let i = 0; i < usages.length; i++) copy[i] = usages[i];
    return copy;
  }
  static descOf(key) {
    return #desc in key ? key.#desc : undefined;
  }
}
setTag(CryptoKey, 'CryptoKey');
const descOf = CryptoKey.descOf;
delete CryptoKey.descOf;

function isCryptoKey(value) {
  return value !== null && typeof value === 'object' && descOf(value) !== undefined;
}

/** CryptoKey.algorithm as the guest sees it: hash as {name}, publicExponent as a Uint8Array. */
function publicAlgorithm(algorithm) {
  const result = { name: algorithm.name };
  if (algorithm.modulusLength !== undefined) {
    result.modulusLength = algorithm.modulusLength;
    result.publicExponent = new Uint8Array(reflectApply(u8Slice, new Uint8Array(algorithm.publicExponent), []));
  }
  if (algorithm.hash !== undefined) result.hash = { name: algorithm.hash.name };
  if (algorithm.length !== undefined) result.length = algorithm.length;
  if (algorithm.namedCurve !== undefined) result.namedCurve = algorithm.namedCurve;
  return result;
}

function requireKey(method, value, what) {
  const desc = isCryptoKey(value) ? descOf(value) : undefined;
  if (desc === undefined) throw fail(method, what + ' is not of type CryptoKey.');
  return desc;
}

// ---------- argument conversion ----------

/** AlgorithmIdentifier → the plain object the host normalizes (bytes as ArrayBuffers). */
function algorithmOf(method, value) {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return { name: StringCtor(value) };
  const result = {};
  const name = value.name;
  if (name !== undefined) result.name = StringCtor(name);
  const hash = value.hash;
  if (hash !== undefined) result.hash = hash !== null && typeof hash === 'object' ? algorithmOf(method, hash) : { name: StringCtor(hash) };
  const namedCurve = value.namedCurve;
  if (namedCurve !== undefined) result.namedCurve = StringCtor(namedCurve);
  for (let i = 0; i < NUMBER_MEMBERS.length; i++) {
    const member = value[NUMBER_MEMBERS[i]];
    if (member !== undefined) result[NUMBER_MEMBERS[i]] = NumberCtor(member);
  }
  for (let i = 0; i < BYTE_MEMBERS.length; i++) {
    const member = value[BYTE_MEMBERS[i]];
    // Not a BufferSource: sent as null, for the host to reject with its TypeError.
    if (member !== undefined) result[BYTE_MEMBERS[i]] = bytesOf(member) ?? null;
  }
  const publicKey = value.public;
  if (publicKey !== undefined) result.public = isCryptoKey(publicKey) ? descOf(publicKey) : null;
  return result;
}

function usagesOf(method, value) {
  if (value === null || typeof value !== 'object') throw fail(method, 'keyUsages is not iterable.');
  const usages = [];
  for (const item of value) {
    const usage = StringCtor(item);
    if (!reflectApply(arrayIncludes, USAGES, [usage])) throw fail(method, "value '" + usage + "' is not a valid enum value of type KeyUsage.");
    usages[usages.length] = usage;
  }
  return usages;
}

function formatOf(method, value) {
  const format = StringCtor(value);
  if (!reflectApply(arrayIncludes, FORMATS, [format])) throw fail(method, "1st argument value '" + format + "' is not a valid enum value of type KeyFormat.");
  return format;
}

function jwkOf(method, value) {
  if (value === null || typeof value !== 'object') throw fail(method, 'keyData is not a JsonWebKey.');
  // A BufferSource goes to the host as bytes: it decides which error comes first, as Node does.
  const bytes = bytesOf(value);
  if (bytes !== undefined) return bytes;
  const jwk = {};
  for (let i = 0; i < JWK_STRINGS.length; i++) {
    const member = value[JWK_STRINGS[i]];
    if (member !== undefined) jwk[JWK_STRINGS[i]] = StringCtor(member);
  }
  const ext = value.ext;
  if (ext !== undefined) jwk.ext = !!ext;
  const ops = value.key_ops;
  if (ops !== undefined) {
    const list = [];
    for (const op of ops) list[list.length] = StringCtor(op);
    jwk.key_ops = list;
  }
  return jwk;
}

function requireArgs(method, args, count) {
  if (args.length < count) throw fail(method, count + ' arguments required, but only ' + args.length + ' present.');
}

// ---------- the host call ----------

// A key's JSON on the wire up to its material's buffer index, computed once per key (keys go to the
// host with every operation). Only keys carry it, so the guest cannot forge one.
const kWire = Symbol('wire');

function keyWire(desc, buffers) {
  let prefix = desc[kWire];
  if (prefix === undefined) {
    const algorithm = desc.algorithm;
    // The host reads a key's algorithm but never its publicExponent: not sent.
    const sent = { name: algorithm.name, hash: algorithm.hash, length: algorithm.length, namedCurve: algorithm.namedCurve, modulusLength: algorithm.modulusLength };
    prefix = '{"type":' + quote(desc.type) + ',"extractable":' + (desc.extractable ? 'true' : 'false') +
      ',"algorithm":' + encode(sent, buffers) + ',"usages":' + encode(desc.usages, buffers) + ',"material":{"$b":';
    desc[kWire] = prefix;
  }
  buffers[buffers.length] = desc.material;
  return prefix + (buffers.length - 1) + '}}';
}

// JSON.stringify costs ~2 µs a call in QuickJS; the strings sent are mostly names that need no escape.
const PLAIN_STRING_RE = /^[\w\-. ]*$/;
const regExpTest = RegExp.prototype.test;
function quote(text) {
  return reflectApply(regExpTest, PLAIN_STRING_RE, [text]) ? '"' + text + '"' : JSONstringify(text);
}

/** JSON with ArrayBuffers moved out into `buffers` (written by hand: JSON.stringify would consult toJSON). */
function encode(value, buffers) {
  if (value === null || value === undefined) return 'null';
  const type = typeof value;
  if (type === 'string') return quote(value);
  if (type === 'boolean') return value ? 'true' : 'false';
  if (type === 'number') return numberIsFinite(value) ? '' + value : 'null';
  if (kWire in value) return keyWire(value, buffers);
  if (isOwnArrayBuffer(value)) {
    buffers[buffers.length] = value;
    return '{"$b":' + (buffers.length - 1) + '}';
  }
  let out;
  if (isArray(value)) {
    out = '[';
    for (let i = 0; i < value.length; i++) out += (i ? ',' : '') + encode(value[i], buffers);
    return out + ']';
  }
  out = '{';
  let first = true;
  const keys = objectKeys(value);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (value[key] === undefined) continue;
    out += (first ? '' : ',') + quote(key) + ':' + encode(value[key], buffers);
    first = false;
  }
  return out + '}';
}

function call(request) {
  for (;;) {
    const buffers = [];
    const json = encode(request, buffers);
    const args = [OP_CRYPTO, json];
    for (let i = 0; i < buffers.length; i++) args[i + 2] = buffers[i];
    const answerParts = reflectApply(host, undefined, args);
    if (typeof answerParts === 'number') return answerParts === 1;
    if (isOwnArrayBuffer(answerParts)) return answerParts;
    const answer = JSONparse(answerParts[0], (key, value) =>
      value !== null && typeof value === 'object' && hasOwn(value, '$b') ? answerParts[value.$b + 1] : value,
    );
    if (answer.entropy !== undefined) {
      if (request.entropy !== undefined) throw new DOMException('crypto host op asked for entropy twice', 'OperationError');
      request.entropy = host(OP_ENTROPY, answer.entropy);
      continue;
    }
    if (answer.error !== undefined) {
      const error = answer.error;
      throw error.name === 'TypeError' ? new TypeError(error.message) : new DOMException(error.message, error.name);
    }
    return answer.ok;
  }
}

function newKey(desc) {
  desc[kWire] = undefined; // marks it a key (see keyWire)
  return new CryptoKey(kConstruct, desc);
}

function keyOrPair(result) {
  return result.privateKey !== undefined ? { publicKey: newKey(result.publicKey), privateKey: newKey(result.privateKey) } : newKey(result);
}

// ---------- SubtleCrypto ----------

class SubtleCrypto {
  constructor(token) {
    if (token !== kConstruct) throw new TypeError('Illegal constructor');
  }
  async digest(algorithm, data) {
    requireArgs('digest', arguments, 2);
    const alg = algorithmOf('digest', algorithm);
    return call({ op: 'digest', alg, data: bufferSource('digest', data, '2nd argument') });
  }
  async generateKey(algorithm, extractable, keyUsages) {
    requireArgs('generateKey', arguments, 3);
    const alg = algorithmOf('generateKey', algorithm);
    return keyOrPair(call({ op: 'generateKey', alg, extractable: !!extractable, usages: usagesOf('generateKey', keyUsages) }));
  }
  async importKey(format, keyData, algorithm, extractable, keyUsages) {
    requireArgs('importKey', arguments, 5);
    format = formatOf('importKey', format);
    const data = format === 'jwk' ? jwkOf('importKey', keyData) : bufferSource('importKey', keyData, '2nd argument');
    const alg = algorithmOf('importKey', algorithm);
    return newKey(call({ op: 'importKey', format, keyData: data, alg, extractable: !!extractable, usages: usagesOf('importKey', keyUsages) }));
  }
  async exportKey(format, key) {
    requireArgs('exportKey', arguments, 2);
    format = formatOf('exportKey', format);
    return call({ op: 'exportKey', format, key: requireKey('exportKey', key, '2nd argument') });
  }
  async sign(algorithm, key, data) {
    requireArgs('sign', arguments, 3);
    const alg = algorithmOf('sign', algorithm);
    const desc = requireKey('sign', key, '2nd argument');
    return call({ op: 'sign', alg, key: desc, data: bufferSource('sign', data, '3rd argument') });
  }
  async verify(algorithm, key, signature, data) {
    requireArgs('verify', arguments, 4);
    const alg = algorithmOf('verify', algorithm);
    const desc = requireKey('verify', key, '2nd argument');
    const sig = bufferSource('verify', signature, '3rd argument');
    return call({ op: 'verify', alg, key: desc, signature: sig, data: bufferSource('verify', data, '4th argument') });
  }
  async encrypt(algorithm, key, data) {
    requireArgs('encrypt', arguments, 3);
    const alg = algorithmOf('encrypt', algorithm);
    const desc = requireKey('encrypt', key, '2nd argument');
    return call({ op: 'encrypt', alg, key: desc, data: bufferSource('encrypt', data, '3rd argument') });
  }
  async decrypt(algorithm, key, data) {
    requireArgs('decrypt', arguments, 3);
    const alg = algorithmOf('decrypt', algorithm);
    const desc = requireKey('decrypt', key, '2nd argument');
    return call({ op: 'decrypt', alg, key: desc, data: bufferSource('decrypt', data, '3rd argument') });
  }
  async deriveBits(algorithm, baseKey, length) {
    requireArgs('deriveBits', arguments, 2);
    const alg = algorithmOf('deriveBits', algorithm);
    const desc = requireKey('deriveBits', baseKey, '2nd argument');
    return call({ op: 'deriveBits', alg, key: desc, length: length === undefined || length === null ? null : NumberCtor(length) });
  }
  async deriveKey(algorithm, baseKey, derivedKeyType, extractable, keyUsages) {
    requireArgs('deriveKey', arguments, 5);
    const alg = algorithmOf('deriveKey', algorithm);
    const desc = requireKey('deriveKey', baseKey, '2nd argument');
    const derivedAlg = algorithmOf('deriveKey', derivedKeyType);
    const usages = usagesOf('deriveKey', keyUsages);
    return newKey(call({ op: 'deriveKey', alg, key: desc, derivedAlg, extractable: !!extractable, usages }));
  }
  async wrapKey(format, key, wrappingKey, wrapAlgorithm) {
    requireArgs('wrapKey', arguments, 4);
    format = formatOf('wrapKey', format);
    const desc = requireKey('wrapKey', key, '2nd argument');
    const wrapping = requireKey('wrapKey', wrappingKey, '3rd argument');
    return call({ op: 'wrapKey', format, key: desc, wrappingKey: wrapping, alg: algorithmOf('wrapKey', wrapAlgorithm) });
  }
  async unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm, extractable, keyUsages) {
    requireArgs('unwrapKey', arguments, 7);
    format = formatOf('unwrapKey', format);
    const data = bufferSource('unwrapKey', wrappedKey, '2nd argument');
    const unwrapping = requireKey('unwrapKey', unwrappingKey, '3rd argument');
    const alg = algorithmOf('unwrapKey', unwrapAlgorithm);
    const unwrappedAlg = algorithmOf('unwrapKey', unwrappedKeyAlgorithm);
    const usages = usagesOf('unwrapKey', keyUsages);
    return newKey(call({ op: 'unwrapKey', format, data, unwrappingKey: unwrapping, alg, unwrappedAlg, extractable: !!extractable, usages }));
  }
}
setTag(SubtleCrypto, 'SubtleCrypto');

// structuredClone(key) gives another CryptoKey with the same material (as in Node).
registerCloner('[object CryptoKey]', (value) => {
  const desc = descOf(value);
  return desc === undefined ? undefined : newKey(desc);
});

defineGlobal('CryptoKey', CryptoKey);
defineGlobal('SubtleCrypto', SubtleCrypto);
// crypto.js installs `crypto` and puts this on it.
export const subtle = new SubtleCrypto(kConstruct);

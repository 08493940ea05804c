// The host half of crypto.subtle: one host op (HostOp.Crypto) whose answer is a pure function of its
// arguments, so the primary and a replaying backup compute the same bytes. Requests and answers are
// JSON in which byte strings travel as separate ArrayBuffers, referenced as {"$b": index}.
//
// Request: {op, ...arguments} (see dispatch). Answer: the result if it is bytes or a boolean, else
// {ok: result}, {error: {name, message}}, or {entropy: n}: "draw n bytes from the recorded entropy
// input and ask again with them as `entropy`".

import { type Algorithm, digestBlockBits, normalize } from './algorithms.js';
import { dataError, operationError, SubtleError, typeError } from './errors.js';
import { generateKey } from './generate.js';
import { exportKey, importKey, type KeyFormat } from './import-export.js';
import { checkKeyFor, type KeyDesc, type KeyUsage } from './keys.js';
import { cipher, decrypt, deriveBits, digest, encrypt, sign, verify } from './operations.js';

export interface WireMessage {
  json: string;
  buffers: Uint8Array[];
}

type Request = Record<string, unknown> & { op: string };

/**
 * What the guest gets back: the result itself when it is bytes (most operations) or a boolean
 * (verify), the cheap common cases; otherwise the JSON answer and its buffers.
 */
export type SubtleAnswer = Uint8Array | boolean | WireMessage;

export function subtleHostOp(message: WireMessage): SubtleAnswer {
  let answer: unknown;
  try {
    const request = JSON.parse(message.json, (_key, value: unknown) => {
      if (value !== null && typeof value === 'object' && typeof (value as { $b?: unknown }).$b === 'number') {
        const bytes = message.buffers[(value as { $b: number }).$b];
        if (!bytes) throw new TypeError('crypto host op: missing buffer');
        return bytes;
      }
      return value;
    }) as Request;
    answer = dispatch(request);
  } catch (error) {
    answer = error instanceof SubtleError ? { error: { name: error.errorName, message: error.message } } : { error: { name: 'OperationError', message: (error as Error)?.message ?? String(error) } };
  }
  const ok = (answer as { ok?: unknown }).ok;
  if (ok instanceof Uint8Array || typeof ok === 'boolean') return ok;
  const buffers: Uint8Array[] = [];
  return { json: JSON.stringify(encode(answer, buffers)), buffers };
}

/** Replaces every byte string (Buffer included, whose toJSON would otherwise win) by a buffer reference. */
function encode(value: unknown, buffers: Uint8Array[]): unknown {
  if (value instanceof Uint8Array) {
    buffers.push(value);
    return { $b: buffers.length - 1 };
  }
  if (Array.isArray(value)) return value.map((item) => encode(item, buffers));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) if (item !== undefined) out[key] = encode(item, buffers);
    return out;
  }
  return value;
}

const bytes = (value: unknown): Uint8Array => value as Uint8Array;
const key = (value: unknown): KeyDesc => value as KeyDesc;
const usages = (value: unknown): KeyUsage[] => value as KeyUsage[];
const entropy = (request: Request): Uint8Array | undefined => request.entropy as Uint8Array | undefined;

function dispatch(r: Request): unknown {
  const ok = (result: unknown): unknown => (result !== null && typeof result === 'object' && 'entropy' in result ? result : { ok: result });
  switch (r.op) {
    case 'digest':
      return ok(digest(normalize('digest', r.alg), bytes(r.data)));
    case 'generateKey':
      return ok(generateKey(normalize('generateKey', r.alg), r.extractable === true, usages(r.usages), entropy(r)));
    case 'importKey':
      return ok(importKey(r.format as KeyFormat, r.keyData as Uint8Array, normalize('importKey', r.alg), r.extractable === true, usages(r.usages)));
    case 'exportKey':
      return ok(exportKey(r.format as KeyFormat, key(r.key)));
    case 'sign':
      return ok(sign(normalize('sign', r.alg), key(r.key), bytes(r.data), entropy(r)));
    case 'verify':
      return ok(verify(normalize('verify', r.alg), key(r.key), bytes(r.signature), bytes(r.data)));
    case 'encrypt':
      return ok(encrypt(normalize('encrypt', r.alg), key(r.key), bytes(r.data), entropy(r)));
    case 'decrypt':
      return ok(decrypt(normalize('decrypt', r.alg), key(r.key), bytes(r.data)));
    case 'deriveBits':
      return ok(deriveBits(normalize('deriveBits', r.alg), key(r.key), r.length as number | null));
    case 'deriveKey':
      return ok(deriveKeyOp(r));
    case 'wrapKey':
      return ok(wrapKey(r));
    case 'unwrapKey':
      return ok(unwrapKey(r));
    default:
      throw new TypeError(`crypto host op: unknown operation ${String(r.op)}`);
  }
}

/** §14.3.7 "get key length" for deriveKey's derivedKeyType. */
function keyLength(algorithm: Algorithm): number | null {
  if (algorithm.name.startsWith('AES-')) {
    const length = algorithm.length!;
    if (length !== 128 && length !== 192 && length !== 256) throw operationError('AES key length must be 128, 192, or 256 bits');
    return length;
  }
  if (algorithm.name === 'HMAC') {
    if (algorithm.length === 0) throw typeError('HMAC key length must not be 0');
    return algorithm.length ?? digestBlockBits(algorithm.hash!);
  }
  return null;
}

function deriveKeyOp(r: Request): unknown {
  const algorithm = normalize('deriveBits', r.alg);
  const importAlgorithm = normalize('importKey', r.derivedAlg);
  const length = keyLength(normalize('get key length', r.derivedAlg));
  const bits = deriveBits(algorithm, key(r.key), length, 'deriveKey');
  return importKey('raw', bits, importAlgorithm, r.extractable === true, usages(r.usages));
}

const encoder = new TextEncoder();

function wrapKey(r: Request): unknown {
  const algorithm = normalize('wrapKey', r.alg);
  const wrapping = key(r.wrappingKey);
  checkKeyFor(wrapping, algorithm, 'wrapKey');
  const exported = exportKey(r.format as KeyFormat, key(r.key));
  const data = exported instanceof Uint8Array ? exported : encoder.encode(JSON.stringify(exported));
  return cipher(algorithm, wrapping, data, true, entropy(r));
}

function unwrapKey(r: Request): unknown {
  const algorithm = normalize('unwrapKey', r.alg);
  const importAlgorithm = normalize('importKey', r.unwrappedAlg);
  const unwrapping = key(r.unwrappingKey);
  checkKeyFor(unwrapping, algorithm, 'unwrapKey');
  const data = cipher(algorithm, unwrapping, bytes(r.data), false, undefined) as Uint8Array;
  let keyData: Uint8Array | object = data;
  if (r.format === 'jwk') {
    try {
      keyData = JSON.parse(new TextDecoder().decode(data)) as object;
    } catch {
      throw dataError('The unwrapped key is not valid JSON');
    }
    if (keyData === null || typeof keyData !== 'object') throw dataError('The unwrapped key is not a JWK');
  }
  return importKey(r.format as KeyFormat, keyData as Uint8Array, importAlgorithm, r.extractable === true, usages(r.usages));
}

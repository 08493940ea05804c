// CryptoKeys as the host sees them: plain data that lives in the guest (snapshot rule: no host
// handles), and their conversion to and from Node KeyObjects. Key material is raw bytes for secret
// keys, SPKI DER for public keys and PKCS #8 DER for private keys, whatever format they came in.

import { createHash, createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import type { Algorithm } from './algorithms.js';
import { invalidAccess, syntaxError } from './errors.js';

export type KeyType = 'secret' | 'private' | 'public';
export type KeyUsage = 'encrypt' | 'decrypt' | 'sign' | 'verify' | 'deriveKey' | 'deriveBits' | 'wrapKey' | 'unwrapKey';

/** The algorithm a key carries (CryptoKey.algorithm). */
export interface KeyAlgorithm {
  name: string;
  length?: number;
  hash?: { name: string };
  namedCurve?: string;
  modulusLength?: number;
  publicExponent?: Uint8Array;
}

export interface KeyDesc {
  type: KeyType;
  extractable: boolean;
  algorithm: KeyAlgorithm;
  usages: KeyUsage[];
  material: Uint8Array;
}

const SIGN: Record<KeyType, KeyUsage[]> = { secret: [], private: ['sign'], public: ['verify'] };
const CIPHER: KeyUsage[] = ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'];
const DERIVE: KeyUsage[] = ['deriveKey', 'deriveBits'];

/** The usages a key of this algorithm and type may have. */
export function allowedUsages(algorithm: string, type: KeyType): KeyUsage[] {
  switch (algorithm) {
    case 'HMAC':
      return ['sign', 'verify'];
    case 'AES-CTR':
    case 'AES-CBC':
    case 'AES-GCM':
      return CIPHER;
    case 'AES-KW':
      return ['wrapKey', 'unwrapKey'];
    case 'PBKDF2':
    case 'HKDF':
      return DERIVE;
    case 'ECDH':
    case 'X25519':
    case 'X448':
      return type === 'private' ? DERIVE : [];
    case 'RSA-OAEP':
      return type === 'private' ? ['decrypt', 'unwrapKey'] : type === 'public' ? ['encrypt', 'wrapKey'] : [];
    default:
      return SIGN[type];
  }
}

/** What Node calls the family in its "Unsupported key usage for …" message. */
function family(algorithm: string): string {
  if (algorithm.startsWith('AES-')) return 'an AES key';
  if (algorithm.startsWith('RSA')) return 'an RSA key';
  if (algorithm === 'ECDSA' || algorithm === 'ECDH' || algorithm === 'Ed25519' || algorithm === 'Ed448') return `an ${algorithm} key`;
  return `a ${algorithm} key`;
}

/** SyntaxError unless every usage is one an algorithm's key(s) may have (pair: either half's). */
export function checkUsages(algorithm: string, usages: KeyUsage[], types: KeyType[]): void {
  const allowed = new Set(types.flatMap((type) => allowedUsages(algorithm, type)));
  for (const usage of usages) if (!allowed.has(usage)) throw syntaxError(`Unsupported key usage for ${family(algorithm)}`);
}

/** The usages (deduplicated, in the caller's order, as Node 20 keeps them) a key of `type` gets. */
export function usagesFor(algorithm: string, type: KeyType, usages: KeyUsage[]): KeyUsage[] {
  const allowed = allowedUsages(algorithm, type);
  return [...new Set(usages)].filter((usage) => allowed.includes(usage));
}

export function makeKey(type: KeyType, extractable: boolean, algorithm: KeyAlgorithm, usages: KeyUsage[], material: Uint8Array): KeyDesc {
  return { type, extractable, algorithm, usages: usagesFor(algorithm.name, type, usages), material };
}

/** The checks every operation starts with (§14.3): same algorithm, and the key allows the usage. */
export function checkKeyFor(key: KeyDesc, algorithm: Algorithm, usage: KeyUsage): void {
  if (key.algorithm.name !== algorithm.name || !key.usages.includes(usage)) {
    throw invalidAccess(usage === 'sign' || usage === 'verify' ? `Unable to use this key to ${usage}` : 'The requested operation is not valid for the provided key');
  }
}

/**
 * Parsed keys by type and material digest, most recently used last. Parsing a DER key costs OpenSSL
 * 0.3-1.7 ms, more than most operations with it; Node's webcrypto parses once per CryptoKey, and this
 * cache of a pure function does the same for keys in use. It is not VM state: a miss only costs time.
 */
const parsedKeys = new Map<string, KeyObject>();
export const PARSED_KEY_CACHE_ENTRIES = 256;

export function keyObject(key: KeyDesc): KeyObject {
  const material = Buffer.from(key.material.buffer, key.material.byteOffset, key.material.byteLength);
  if (key.type === 'secret') return createSecretKey(material);
  const id = key.type + createHash('sha256').update(material).digest('base64');
  let object = parsedKeys.get(id);
  if (object) {
    parsedKeys.delete(id);
  } else {
    object = key.type === 'private' ? createPrivateKey({ key: material, format: 'der', type: 'pkcs8' }) : createPublicKey({ key: material, format: 'der', type: 'spki' });
    if (parsedKeys.size >= PARSED_KEY_CACHE_ENTRIES) parsedKeys.delete(parsedKeys.keys().next().value!);
  }
  parsedKeys.set(id, object);
  return object;
}

/** The material a KeyObject is stored as in the guest. */
export function materialOf(object: KeyObject): Uint8Array {
  if (object.type === 'secret') return new Uint8Array(object.export());
  if (object.type === 'private') return new Uint8Array(object.export({ format: 'der', type: 'pkcs8' }));
  return new Uint8Array(object.export({ format: 'der', type: 'spki' }));
}

/** Minimal big-endian bytes of a non-negative integer (RSA's publicExponent). */
export function bigintBytes(value: bigint): Uint8Array {
  let hex = value.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function bytesBigint(bytes: Uint8Array): bigint {
  return bytes.byteLength === 0 ? 0n : BigInt('0x' + Buffer.from(bytes).toString('hex'));
}

/** Node's curve names (asymmetricKeyDetails.namedCurve) for the WebCrypto ones. */
/** The OKP algorithms (RFC 8037): Node's key type, key size, and the PKCS #8 DER before the private key. */
export const OKP: Record<string, { nodeType: string; bytes: number; pkcs8Prefix: string }> = {
  Ed25519: { nodeType: 'ed25519', bytes: 32, pkcs8Prefix: '302e020100300506032b657004220420' },
  Ed448: { nodeType: 'ed448', bytes: 57, pkcs8Prefix: '3047020100300506032b6571043b0439' },
  X25519: { nodeType: 'x25519', bytes: 32, pkcs8Prefix: '302e020100300506032b656e04220420' },
  X448: { nodeType: 'x448', bytes: 56, pkcs8Prefix: '3046020100300506032b656f043a0438' },
};

export const OPENSSL_CURVES: Record<string, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' };
export const CURVE_BYTES: Record<string, number> = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };
/** The order n of each curve's base point. */
export const CURVE_ORDERS: Record<string, bigint> = {
  'P-256': 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  'P-384': 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  'P-521': 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
};

/** a⁻¹ mod m (extended Euclid), for ECDSA signing and RSA key derivation. */
export function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [a % m, m];
  let [oldS, s] = [1n, 0n];
  while (r) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return ((oldS % m) + m) % m;
}

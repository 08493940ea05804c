// Algorithm normalization (WebCrypto §18.4 "normalize an algorithm"): which algorithm names each
// operation accepts, and the dictionary each one's parameters are converted to. The guest already
// turned BufferSource members into bytes and numeric members into numbers (WebIDL ToNumber); here
// the names are matched case-insensitively, required members checked and ranges enforced, with the
// error types Node 20's webcrypto gives.

import { notSupported, typeError } from './errors.js';

export type Operation = 'digest' | 'generateKey' | 'importKey' | 'sign' | 'verify' | 'encrypt' | 'decrypt' | 'deriveBits' | 'get key length' | 'wrapKey' | 'unwrapKey';

/** A normalized algorithm: the canonical name plus the members its dictionary type has. */
export interface Algorithm {
  name: string;
  hash?: Algorithm;
  length?: number | null;
  namedCurve?: string;
  modulusLength?: number;
  publicExponent?: Uint8Array;
  saltLength?: number;
  iv?: Uint8Array;
  counter?: Uint8Array;
  additionalData?: Uint8Array;
  tagLength?: number;
  salt?: Uint8Array;
  info?: Uint8Array;
  iterations?: number;
  public?: unknown;
  label?: Uint8Array;
  context?: Uint8Array;
}

type MemberKind = 'bytes' | 'ulong' | 'ushort' | 'octet' | 'string' | 'hash' | 'key';
interface Member {
  name: keyof Algorithm;
  kind: MemberKind;
  required: boolean;
}
interface Dictionary {
  type: string;
  members: Member[];
}

const req = (name: keyof Algorithm, kind: MemberKind): Member => ({ name, kind, required: true });
const opt = (name: keyof Algorithm, kind: MemberKind): Member => ({ name, kind, required: false });

const NONE: Dictionary = { type: 'Algorithm', members: [] };
const RSA_GEN: Dictionary = { type: 'RsaHashedKeyGenParams', members: [req('modulusLength', 'ulong'), req('publicExponent', 'bytes'), req('hash', 'hash')] };
const RSA_IMPORT: Dictionary = { type: 'RsaHashedImportParams', members: [req('hash', 'hash')] };
const RSA_PSS: Dictionary = { type: 'RsaPssParams', members: [req('saltLength', 'ulong')] };
const EC_GEN: Dictionary = { type: 'EcKeyGenParams', members: [req('namedCurve', 'string')] };
const EC_IMPORT: Dictionary = { type: 'EcKeyImportParams', members: [req('namedCurve', 'string')] };
const RSA_OAEP: Dictionary = { type: 'RsaOaepParams', members: [opt('label', 'bytes')] };
const ED448: Dictionary = { type: 'Ed448Params', members: [opt('context', 'bytes')] };
const ECDSA: Dictionary = { type: 'EcdsaParams', members: [req('hash', 'hash')] };
const ECDH_DERIVE: Dictionary = { type: 'EcdhKeyDeriveParams', members: [req('public', 'key')] };
const HMAC_GEN: Dictionary = { type: 'HmacKeyGenParams', members: [req('hash', 'hash'), opt('length', 'ulong')] };
const HMAC_IMPORT: Dictionary = { type: 'HmacImportParams', members: [req('hash', 'hash'), opt('length', 'ulong')] };
const AES_GEN: Dictionary = { type: 'AesKeyGenParams', members: [req('length', 'ushort')] };
const AES_DERIVED: Dictionary = { type: 'AesDerivedKeyParams', members: [req('length', 'ushort')] };
const AES_CTR: Dictionary = { type: 'AesCtrParams', members: [req('counter', 'bytes'), req('length', 'octet')] };
const AES_CBC: Dictionary = { type: 'AesCbcParams', members: [req('iv', 'bytes')] };
const AES_GCM: Dictionary = { type: 'AesGcmParams', members: [req('iv', 'bytes'), opt('additionalData', 'bytes'), opt('tagLength', 'octet')] };
const HKDF: Dictionary = { type: 'HkdfParams', members: [req('hash', 'hash'), req('salt', 'bytes'), req('info', 'bytes')] };
const PBKDF2: Dictionary = { type: 'Pbkdf2Params', members: [req('hash', 'hash'), req('salt', 'bytes'), req('iterations', 'ulong')] };

const AES = ['AES-CTR', 'AES-CBC', 'AES-GCM', 'AES-KW'];
const AES_ENCRYPT: Record<string, Dictionary> = { 'AES-CTR': AES_CTR, 'AES-CBC': AES_CBC, 'AES-GCM': AES_GCM };
const ENCRYPT: Record<string, Dictionary> = { ...AES_ENCRYPT, 'RSA-OAEP': RSA_OAEP };

/** The spec's table of supported algorithms per operation (those ftjs implements). */
const SUPPORTED: Record<Operation, Record<string, Dictionary>> = {
  digest: { 'SHA-1': NONE, 'SHA-256': NONE, 'SHA-384': NONE, 'SHA-512': NONE },
  generateKey: {
    'RSASSA-PKCS1-v1_5': RSA_GEN,
    'RSA-PSS': RSA_GEN,
    'RSA-OAEP': RSA_GEN,
    ECDSA: EC_GEN,
    ECDH: EC_GEN,
    Ed25519: NONE,
    Ed448: NONE,
    X25519: NONE,
    X448: NONE,
    HMAC: HMAC_GEN,
    ...Object.fromEntries(AES.map((name) => [name, AES_GEN])),
  },
  importKey: {
    'RSASSA-PKCS1-v1_5': RSA_IMPORT,
    'RSA-PSS': RSA_IMPORT,
    'RSA-OAEP': RSA_IMPORT,
    ECDSA: EC_IMPORT,
    ECDH: EC_IMPORT,
    Ed25519: NONE,
    Ed448: NONE,
    X25519: NONE,
    X448: NONE,
    HMAC: HMAC_IMPORT,
    PBKDF2: NONE,
    HKDF: NONE,
    ...Object.fromEntries(AES.map((name) => [name, NONE])),
  },
  sign: { 'RSASSA-PKCS1-v1_5': NONE, 'RSA-PSS': RSA_PSS, ECDSA, Ed25519: NONE, Ed448: ED448, HMAC: NONE },
  verify: { 'RSASSA-PKCS1-v1_5': NONE, 'RSA-PSS': RSA_PSS, ECDSA, Ed25519: NONE, Ed448: ED448, HMAC: NONE },
  encrypt: ENCRYPT,
  decrypt: ENCRYPT,
  deriveBits: { ECDH: ECDH_DERIVE, X25519: ECDH_DERIVE, X448: ECDH_DERIVE, HKDF, PBKDF2 },
  'get key length': {
    ...Object.fromEntries(AES.map((name) => [name, AES_DERIVED])),
    HMAC: HMAC_IMPORT,
    HKDF: NONE,
    PBKDF2: NONE,
  },
  wrapKey: { ...ENCRYPT, 'AES-KW': NONE },
  unwrapKey: { ...ENCRYPT, 'AES-KW': NONE },
};

const canonicalNames = new Map<string, string>();
for (const table of Object.values(SUPPORTED)) for (const name of Object.keys(table)) canonicalNames.set(name.toUpperCase(), name);

const PREFIX = 'Failed to normalize algorithm: ';

/** Normalizes `raw` (the guest's algorithm: {name, ...members}) for `op`. */
export function normalize(op: Operation, raw: unknown): Algorithm {
  const given = raw as Record<string, unknown>;
  if (given === null || typeof given !== 'object') throw typeError(`${PREFIX}the algorithm must be a string or an object`);
  if (given.name === undefined) {
    throw typeError(`${PREFIX}passed algorithm can not be converted to 'Algorithm' because 'name' is required in 'Algorithm'.`);
  }
  const name = canonicalNames.get(String(given.name).toUpperCase());
  const dictionary = name === undefined ? undefined : SUPPORTED[op][name];
  if (name === undefined || dictionary === undefined) throw notSupported('Unrecognized algorithm name');
  const result: Algorithm = { name };
  for (const member of dictionary.members) {
    const value = given[member.name];
    if (value === undefined) {
      if (member.required) {
        throw typeError(`${PREFIX}passed algorithm can not be converted to '${dictionary.type}' because '${member.name}' is required in '${dictionary.type}'.`);
      }
      continue;
    }
    (result as unknown as Record<string, unknown>)[member.name] = convertMember(member, dictionary.type, value);
  }
  return result;
}

const RANGES: Partial<Record<MemberKind, number>> = { ulong: 0xffffffff, ushort: 0xffff, octet: 0xff };

function convertMember(member: Member, type: string, value: unknown): unknown {
  switch (member.kind) {
    case 'bytes':
      if (!(value instanceof Uint8Array)) {
        throw typeError(`${PREFIX}'${member.name}' of '${type}' (passed algorithm) is not instance of ArrayBuffer, Buffer, TypedArray, or DataView.`);
      }
      return value;
    case 'string':
      return String(value);
    case 'hash':
      return normalize('digest', value);
    case 'key':
      if (value === null || typeof value !== 'object') throw typeError(`${PREFIX}'${member.name}' of '${type}' (passed algorithm) is not of type CryptoKey.`);
      return value;
    default: {
      // [EnforceRange] integer conversion of a number the guest already took through ToNumber.
      const max = RANGES[member.kind]!;
      const n = typeof value === 'number' ? value : Number.NaN;
      if (!Number.isFinite(n) || Math.trunc(n) < 0 || Math.trunc(n) > max) {
        throw typeError(`${PREFIX}'${member.name}' of '${type}' (passed algorithm) is outside the expected range of 0 to ${max}.`);
      }
      return Math.trunc(n);
    }
  }
}

/** Node's hash names → OpenSSL digest names. */
export function digestName(hash: Algorithm): string {
  return hash.name.replace('-', '').toLowerCase();
}

/** Bytes of a hash's output. */
export function digestBytes(hash: Algorithm): number {
  return { 'SHA-1': 20, 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 }[hash.name] ?? 0;
}

/** Block size in bits: HMAC's default key length. */
export function digestBlockBits(hash: Algorithm): number {
  return hash.name === 'SHA-384' || hash.name === 'SHA-512' ? 1024 : 512;
}

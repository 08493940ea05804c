// The crypto.subtle operations that use a key: sign, verify, encrypt, decrypt, deriveBits, wrap and
// unwrap. Each is a pure function of its arguments (randomness, the PSS salt, comes in as entropy
// bytes the guest drew), computed with node:crypto, or @noble/curves for RFC 6979 ECDSA signing.

import {
  type CipherGCMTypes,
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  diffieHellman,
  hkdfSync,
  sign as nodeSign,
  verify as nodeVerify,
  pbkdf2Sync,
  timingSafeEqual,
} from 'node:crypto';
import { type Algorithm, digestBytes, digestName } from './algorithms.js';
import { ecdsaSign } from './ecdsa.js';
import { invalidAccess, notSupported, operationError } from './errors.js';
import type { NeedEntropy } from './generate.js';
import { checkKeyFor, type KeyDesc, keyObject } from './keys.js';
import { oaepDecrypt, oaepEncrypt, oaepMaxMessageBytes } from './oaep.js';
import { pssSign } from './pss.js';

/**
 * Most PBKDF2 iterations one deriveBits may ask for. The VM waits for a host op and cannot be
 * preempted inside it; a million SHA-256 iterations take about half a second. (workerd allows 100,000.)
 */
export const MAX_PBKDF2_ITERATIONS = 1_000_000;

const buf = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export function digest(algorithm: Algorithm, data: Uint8Array): Uint8Array {
  return createHash(digestName(algorithm)).update(data).digest();
}

function requireType(key: KeyDesc, type: KeyDesc['type'], usage: 'sign' | 'verify'): void {
  if (key.type !== type) throw invalidAccess(`Unable to use this key to ${usage}`);
}

export function sign(algorithm: Algorithm, key: KeyDesc, data: Uint8Array, entropy: Uint8Array | undefined): Uint8Array | NeedEntropy {
  checkKeyFor(key, algorithm, 'sign');
  const name = algorithm.name;
  if (name === 'HMAC') return createHmac(digestName(key.algorithm.hash!), buf(key.material)).update(data).digest();
  requireType(key, 'private', 'sign');
  const object = keyObject(key);
  switch (name) {
    case 'RSASSA-PKCS1-v1_5':
      return nodeSign(digestName(key.algorithm.hash!), data, { key: object, padding: constants.RSA_PKCS1_PADDING });
    case 'RSA-PSS': {
      const saltBytes = algorithm.saltLength!;
      const emLen = Math.ceil((key.algorithm.modulusLength! - 1) / 8);
      if (emLen < digestBytes(key.algorithm.hash!) + saltBytes + 2) throw operationError('The salt is too long for this key and hash');
      if (!entropy) return { entropy: saltBytes };
      return pssSign(object, digestName(key.algorithm.hash!), data, entropy.subarray(0, saltBytes));
    }
    case 'ECDSA': {
      const d = Buffer.from(object.export({ format: 'jwk' }).d!, 'base64url');
      return ecdsaSign(key.algorithm.namedCurve!, algorithm.hash!.name, d, createHash(digestName(algorithm.hash!)).update(data).digest());
    }
    default: // Ed25519, Ed448: deterministic by construction (RFC 8032)
      if (algorithm.context !== undefined && algorithm.context.byteLength > 0) throw notSupported('Non zero-length context is not yet supported.');
      return nodeSign(null, data, object);
  }
}

export function verify(algorithm: Algorithm, key: KeyDesc, signature: Uint8Array, data: Uint8Array): boolean {
  checkKeyFor(key, algorithm, 'verify');
  const name = algorithm.name;
  if (name === 'HMAC') {
    const expected = createHmac(digestName(key.algorithm.hash!), buf(key.material)).update(data).digest();
    return expected.length === signature.byteLength && timingSafeEqual(expected, signature);
  }
  requireType(key, 'public', 'verify');
  if (algorithm.context !== undefined && algorithm.context.byteLength > 0) throw notSupported('Non zero-length context is not yet supported.');
  const object = keyObject(key);
  try {
    switch (name) {
      case 'RSASSA-PKCS1-v1_5':
        return nodeVerify(digestName(key.algorithm.hash!), data, { key: object, padding: constants.RSA_PKCS1_PADDING }, signature);
      case 'RSA-PSS':
        return nodeVerify(digestName(key.algorithm.hash!), data, { key: object, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: algorithm.saltLength! }, signature);
      case 'ECDSA':
        return nodeVerify(digestName(algorithm.hash!), data, { key: object, dsaEncoding: 'ieee-p1363' }, signature);
      default:
        return nodeVerify(null, data, object, signature);
    }
  } catch {
    return false; // a malformed signature does not verify
  }
}

const GCM_TAG_BITS = new Set([32, 64, 96, 104, 112, 120, 128]);

export function encrypt(algorithm: Algorithm, key: KeyDesc, data: Uint8Array, entropy: Uint8Array | undefined): Uint8Array | NeedEntropy {
  checkKeyFor(key, algorithm, 'encrypt');
  return cipher(algorithm, key, data, true, entropy);
}

export function decrypt(algorithm: Algorithm, key: KeyDesc, data: Uint8Array): Uint8Array {
  checkKeyFor(key, algorithm, 'decrypt');
  return cipher(algorithm, key, data, false, undefined) as Uint8Array;
}

/** RSA-OAEP or AES in the mode `algorithm` names, after the caller checked the key's usage. */
export function cipher(algorithm: Algorithm, key: KeyDesc, data: Uint8Array, encrypting: boolean, entropy: Uint8Array | undefined): Uint8Array | NeedEntropy {
  if (algorithm.name === 'RSA-OAEP') return rsaOaep(algorithm, key, data, encrypting, entropy);
  const bits = key.algorithm.length!;
  const keyBytes = buf(key.material);
  switch (algorithm.name) {
    case 'AES-CBC': {
      if (algorithm.iv!.byteLength !== 16) throw operationError('algorithm.iv must contain exactly 16 bytes');
      const make = encrypting ? createCipheriv : createDecipheriv;
      const c = make(`aes-${bits}-cbc`, keyBytes, algorithm.iv!);
      try {
        return Buffer.concat([c.update(data), c.final()]);
      } catch {
        throw operationError('The operation failed for an operation-specific reason');
      }
    }
    case 'AES-GCM': {
      const tagBits = algorithm.tagLength ?? 128;
      if (!GCM_TAG_BITS.has(tagBits)) throw operationError(`${tagBits} is not a valid AES-GCM tag length`);
      if (algorithm.iv!.byteLength === 0) throw operationError('algorithm.iv must not be empty');
      const tagBytes = tagBits / 8;
      const aad = algorithm.additionalData;
      if (encrypting) {
        const c = createCipheriv(`aes-${bits}-gcm` as CipherGCMTypes, keyBytes, algorithm.iv!, { authTagLength: tagBytes });
        if (aad) c.setAAD(aad);
        return Buffer.concat([c.update(data), c.final(), c.getAuthTag()]);
      }
      if (data.byteLength < tagBytes) throw operationError('The provided data is too small.');
      const c = createDecipheriv(`aes-${bits}-gcm` as CipherGCMTypes, keyBytes, algorithm.iv!, { authTagLength: tagBytes });
      if (aad) c.setAAD(aad);
      c.setAuthTag(data.subarray(data.byteLength - tagBytes));
      try {
        return Buffer.concat([c.update(data.subarray(0, data.byteLength - tagBytes)), c.final()]);
      } catch {
        throw operationError('The operation failed for an operation-specific reason');
      }
    }
    case 'AES-CTR':
      return aesCtr(bits, keyBytes, algorithm.counter!, algorithm.length!, data);
    default: // AES-KW (wrapKey / unwrapKey only)
      return aesKw(bits, keyBytes, data, encrypting);
  }
}

function rsaOaep(algorithm: Algorithm, key: KeyDesc, data: Uint8Array, encrypting: boolean, entropy: Uint8Array | undefined): Uint8Array | NeedEntropy {
  if (key.type !== (encrypting ? 'public' : 'private')) throw invalidAccess('The requested operation is not valid for the provided key');
  const hash = digestName(key.algorithm.hash!);
  const label = algorithm.label ?? new Uint8Array(0);
  if (!encrypting) return oaepDecrypt(keyObject(key), hash, data, label);
  const hashBytes = digestBytes(key.algorithm.hash!);
  if (data.byteLength > oaepMaxMessageBytes(key.algorithm.modulusLength!, hashBytes)) throw operationError('The data is too long for this key and hash');
  if (!entropy) return { entropy: hashBytes };
  return oaepEncrypt(keyObject(key), hash, data, label, entropy.subarray(0, hashBytes));
}

/** AES-CTR where only the low `length` bits of the counter block count (and wrap), as the spec says. */
function aesCtr(bits: number, key: Buffer, counter: Uint8Array, length: number, data: Uint8Array): Uint8Array {
  if (counter.byteLength !== 16) throw operationError('algorithm.counter must contain exactly 16 bytes');
  if (length === 0 || length > 128) throw operationError('algorithm.length must be between 1 and 128');
  const blocks = BigInt(Math.ceil(data.byteLength / 16));
  const counterValue = BigInt('0x' + Buffer.from(counter).toString('hex'));
  const lowMask = (1n << BigInt(length)) - 1n;
  if (blocks > lowMask + 1n) throw operationError('The counter would repeat: the data is too long for algorithm.length');
  const toBlock = (value: bigint): Buffer => Buffer.from(value.toString(16).padStart(32, '0'), 'hex');
  const run = (start: bigint, part: Uint8Array): Buffer => createCipheriv(`aes-${bits}-ctr`, key, toBlock(start)).update(part);
  const untilWrap = lowMask + 1n - (counterValue & lowMask);
  if (blocks <= untilWrap) return run(counterValue, data);
  const split = Number(untilWrap) * 16;
  return Buffer.concat([run(counterValue, data.subarray(0, split)), run(counterValue & ~lowMask, data.subarray(split))]);
}

function aesKw(bits: number, key: Buffer, data: Uint8Array, wrapping: boolean): Uint8Array {
  if (data.byteLength % 8 !== 0 || data.byteLength < (wrapping ? 16 : 24)) throw operationError('AES-KW data must be a multiple of 8 bytes, at least 16');
  const iv = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
  const c = (wrapping ? createCipheriv : createDecipheriv)(`id-aes${bits}-wrap`, key, iv);
  try {
    return Buffer.concat([c.update(data), c.final()]);
  } catch {
    throw operationError('The operation failed for an operation-specific reason');
  }
}

export function deriveBits(algorithm: Algorithm, key: KeyDesc, length: number | null, usage: 'deriveBits' | 'deriveKey' = 'deriveBits'): Uint8Array {
  checkKeyFor(key, algorithm, usage);
  if (algorithm.name === 'ECDH' || algorithm.name === 'X25519' || algorithm.name === 'X448') return ecdh(algorithm, key, length);
  if (length === null) throw operationError('length cannot be null');
  if (length % 8 !== 0) throw operationError('length must be a multiple of 8');
  const hash = digestName(algorithm.hash!);
  if (algorithm.name === 'PBKDF2') {
    if (algorithm.iterations === 0) throw operationError('iterations cannot be zero');
    if (algorithm.iterations! > MAX_PBKDF2_ITERATIONS) {
      throw notSupported(`PBKDF2 with ${algorithm.iterations} iterations: ftjs allows at most ${MAX_PBKDF2_ITERATIONS} (the VM cannot be preempted inside a host operation)`);
    }
    return pbkdf2Sync(buf(key.material), algorithm.salt!, algorithm.iterations!, length / 8, hash);
  }
  if (length / 8 > 255 * digestBytes(algorithm.hash!)) throw operationError('The operation failed for an operation-specific reason');
  if (length === 0) return new Uint8Array(0);
  return new Uint8Array(hkdfSync(hash, buf(key.material), algorithm.salt!, algorithm.info!, length / 8));
}

function ecdh(algorithm: Algorithm, key: KeyDesc, length: number | null): Uint8Array {
  const peer = algorithm.public as KeyDesc;
  if (key.type !== 'private') throw invalidAccess('The requested operation is not valid for the provided key');
  if (peer.type !== 'public') throw invalidAccess('algorithm.public must be a public key');
  if (peer.algorithm.name !== key.algorithm.name) throw invalidAccess('Key algorithm mismatch');
  if (peer.algorithm.namedCurve !== key.algorithm.namedCurve) throw invalidAccess('The public and private keys must be on the same curve');
  const secret = diffieHellman({ privateKey: keyObject(key), publicKey: keyObject(peer) });
  if (length === null) return secret;
  if (length > secret.byteLength * 8) throw operationError('derived bit length is too large');
  const out = secret.subarray(0, Math.ceil(length / 8));
  if (length % 8) out[out.length - 1]! &= 0xff << (8 - (length % 8));
  return out;
}

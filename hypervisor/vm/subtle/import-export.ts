// importKey and exportKey (§14.3.9–10) for every algorithm ftjs supports, in the formats each has:
// raw, jwk, spki, pkcs8. Parsing and serialising is Node's (KeyObject), so the bytes match Node's
// webcrypto; the WebCrypto checks around it (usages, JWK members, curves) are done here.

import { createPrivateKey, createPublicKey, ECDH, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { Algorithm } from './algorithms.js';
import { dataError, invalidAccess, notSupported, SubtleError, syntaxError, typeError } from './errors.js';
import { bigintBytes, CURVE_BYTES, checkUsages, type KeyAlgorithm, type KeyDesc, type KeyType, type KeyUsage, keyObject, makeKey, materialOf, OKP, OPENSSL_CURVES } from './keys.js';

export type KeyFormat = 'raw' | 'jwk' | 'spki' | 'pkcs8';

const RSA = new Set(['RSASSA-PKCS1-v1_5', 'RSA-PSS', 'RSA-OAEP']);
const EC = new Set(['ECDSA', 'ECDH']);
const AES_ALG_SUFFIX: Record<string, string> = { 'AES-CTR': 'CTR', 'AES-CBC': 'CBC', 'AES-GCM': 'GCM', 'AES-KW': 'KW' };
const HASH_SUFFIX: Record<string, string> = { 'SHA-1': '1', 'SHA-256': '256', 'SHA-384': '384', 'SHA-512': '512' };

/** The JWK "alg" a key exports with (undefined: none). */
function jwkAlg(algorithm: KeyAlgorithm): string | undefined {
  const hash = algorithm.hash ? HASH_SUFFIX[algorithm.hash.name] : undefined;
  switch (algorithm.name) {
    case 'HMAC':
      return `HS${hash}`;
    case 'RSASSA-PKCS1-v1_5':
      return `RS${hash}`;
    case 'RSA-PSS':
      return `PS${hash}`;
    case 'RSA-OAEP':
      return hash === '1' ? 'RSA-OAEP' : `RSA-OAEP-${hash}`;
    case 'Ed25519':
    case 'Ed448':
      return algorithm.name; // as Node 20 (RFC 8037 would say EdDSA)
    default:
      return algorithm.name in AES_ALG_SUFFIX ? `A${algorithm.length}${AES_ALG_SUFFIX[algorithm.name]}` : undefined;
  }
}

export function importKey(format: KeyFormat, keyData: Uint8Array | JsonWebKey, algorithm: Algorithm, extractable: boolean, usages: KeyUsage[]): KeyDesc {
  const name = algorithm.name;
  let key: KeyDesc;
  // (Node checks the format PBKDF2 and HKDF support before the type of keyData.)
  if ((name === 'PBKDF2' || name === 'HKDF') && format !== 'raw') throw notSupported(`Unable to import ${name} key with format ${format}`);
  if (format === 'jwk' && keyData instanceof Uint8Array) throw typeError('keyData must be a JsonWebKey for the jwk format');
  if (name === 'HMAC' || name in AES_ALG_SUFFIX) key = importSecret(format, keyData, algorithm, extractable, usages);
  else if (name === 'PBKDF2' || name === 'HKDF') {
    checkUsages(name, usages, ['secret']);
    if (extractable) throw syntaxError(`${name} keys are not extractable`);
    key = makeKey('secret', false, { name }, usages, (keyData as Uint8Array).slice());
  } else key = importAsymmetric(format, keyData, algorithm, extractable, usages);
  if ((key.type === 'secret' || key.type === 'private') && key.usages.length === 0) {
    throw syntaxError(`Usages cannot be empty when importing a ${key.type} key.`);
  }
  return key;
}

function checkJwkCommon(jwk: JsonWebKey, kty: string, use: string, extractable: boolean, usages: KeyUsage[]): void {
  if (jwk.kty !== kty) throw dataError(`Invalid JWK "kty" Parameter`);
  if (usages.length > 0 && jwk.use !== undefined && jwk.use !== use) throw dataError(`Invalid JWK "use" Parameter`);
  if (jwk.key_ops !== undefined) {
    if (!Array.isArray(jwk.key_ops)) throw dataError(`Invalid JWK "key_ops" Parameter`);
    for (const usage of usages) if (!jwk.key_ops.includes(usage)) throw dataError('Key operations and usage mismatch');
  }
  if (jwk.ext === false && extractable) throw dataError('JWK "ext" Parameter and extractable mismatch');
}

function importSecret(format: KeyFormat, keyData: Uint8Array | JsonWebKey, algorithm: Algorithm, extractable: boolean, usages: KeyUsage[]): KeyDesc {
  const name = algorithm.name;
  checkUsages(name, usages, ['secret']);
  let bytes: Uint8Array;
  if (format === 'raw') bytes = (keyData as Uint8Array).slice();
  else if (format === 'jwk') {
    const jwk = keyData as JsonWebKey;
    checkJwkCommon(jwk, 'oct', name === 'HMAC' ? 'sig' : 'enc', extractable, usages);
    if (typeof jwk.k !== 'string') throw dataError('Invalid JWK "k" Parameter');
    bytes = new Uint8Array(Buffer.from(jwk.k, 'base64url'));
    const expected = jwkAlg(name === 'HMAC' ? { name, hash: algorithm.hash } : { name, length: bytes.byteLength * 8 });
    if (jwk.alg !== undefined && jwk.alg !== expected) throw dataError('JWK "alg" does not match the requested algorithm');
  } else throw notSupported(`Unable to import ${name} key with format ${format}`);
  const bits = bytes.byteLength * 8;
  if (name === 'HMAC') {
    if (bits === 0) throw dataError('Zero-length key is not supported');
    // Node 20 wants length to be the key's exact size (the spec allows up to 7 bits fewer).
    if (algorithm.length !== undefined && algorithm.length !== null && algorithm.length !== bits) throw dataError('Invalid key length');
    return makeKey('secret', extractable, { name, length: bits, hash: { name: algorithm.hash!.name } }, usages, bytes);
  }
  if (bits !== 128 && bits !== 192 && bits !== 256) throw dataError('Invalid key length');
  return makeKey('secret', extractable, { name, length: bits }, usages, bytes);
}

function importAsymmetric(format: KeyFormat, keyData: Uint8Array | JsonWebKey, algorithm: Algorithm, extractable: boolean, usages: KeyUsage[]): KeyDesc {
  const name = algorithm.name;
  if (EC.has(name) && !(algorithm.namedCurve! in OPENSSL_CURVES)) throw notSupported(`Unsupported named curve ${algorithm.namedCurve}`);
  let object: KeyObject;
  try {
    object = parseAsymmetric(format, keyData, algorithm, extractable, usages);
  } catch (error) {
    // Node's own parse errors (TypeErrors among them: ERR_CRYPTO_INVALID_JWK) are bad key data.
    if (error instanceof SubtleError) throw error;
    throw dataError('Invalid keyData');
  }
  if (format === 'jwk' && object.type === 'private' && !RSA.has(name)) checkJwkPair(keyData as JsonWebKey, object);
  // A compressed EC point exports uncompressed (as Node and the WPT expect): parse it again from its JWK.
  if (object.type === 'public' && EC.has(name)) object = createPublicKey({ key: object.export({ format: 'jwk' }), format: 'jwk' });
  const type = object.type as KeyType;
  checkUsages(name, usages, [type]);
  const details = object.asymmetricKeyDetails ?? {};
  let keyAlgorithm: KeyAlgorithm;
  if (RSA.has(name)) {
    if (object.asymmetricKeyType !== 'rsa') throw dataError('Invalid key type');
    keyAlgorithm = { name, modulusLength: details.modulusLength!, publicExponent: bigintBytes(details.publicExponent!), hash: { name: algorithm.hash!.name } };
  } else if (EC.has(name)) {
    if (object.asymmetricKeyType !== 'ec') throw dataError('Invalid key type');
    if (details.namedCurve !== OPENSSL_CURVES[algorithm.namedCurve!]) throw dataError('Named curve mismatch');
    keyAlgorithm = { name, namedCurve: algorithm.namedCurve! };
  } else {
    if (object.asymmetricKeyType !== OKP[name]!.nodeType) throw dataError('Invalid key type');
    keyAlgorithm = { name };
  }
  return makeKey(type, extractable, keyAlgorithm, usages, materialOf(object));
}

function parseAsymmetric(format: KeyFormat, keyData: Uint8Array | JsonWebKey, algorithm: Algorithm, extractable: boolean, usages: KeyUsage[]): KeyObject {
  const name = algorithm.name;
  switch (format) {
    case 'spki':
      return createPublicKey({ key: Buffer.from(keyData as Uint8Array), format: 'der', type: 'spki' });
    case 'pkcs8':
      return createPrivateKey({ key: Buffer.from(keyData as Uint8Array), format: 'der', type: 'pkcs8' });
    case 'raw':
      if (RSA.has(name)) throw notSupported(`Unable to import ${name} key with format raw`);
      return createPublicKey({ key: rawPublicJwk(name, algorithm.namedCurve, keyData as Uint8Array), format: 'jwk' });
    case 'jwk': {
      const jwk = keyData as JsonWebKey;
      checkJwk(jwk, algorithm, extractable, usages);
      return jwk.d !== undefined ? createPrivateKey({ key: jwk, format: 'jwk' }) : createPublicKey({ key: jwk, format: 'jwk' });
    }
  }
}

/** A private JWK's public part (x, y) must be the one its private part (d) gives: Node does not check. */
function checkJwkPair(jwk: JsonWebKey, object: KeyObject): void {
  const derived = createPublicKey(object).export({ format: 'jwk' });
  if (jwk.x !== derived.x || (derived.y !== undefined && jwk.y !== derived.y)) throw dataError('Invalid key pair');
}

function checkJwk(jwk: JsonWebKey, algorithm: Algorithm, extractable: boolean, usages: KeyUsage[]): void {
  const name = algorithm.name;
  if (RSA.has(name)) {
    checkJwkCommon(jwk, 'RSA', name === 'RSA-OAEP' ? 'enc' : 'sig', extractable, usages);
    const expected = jwkAlg({ name, hash: algorithm.hash });
    if (jwk.alg !== undefined && jwk.alg !== expected) throw dataError('JWK "alg" does not match the requested algorithm');
  } else if (EC.has(name)) {
    checkJwkCommon(jwk, 'EC', name === 'ECDSA' ? 'sig' : 'enc', extractable, usages);
    if (jwk.crv !== algorithm.namedCurve) throw dataError('JWK "crv" does not match the requested algorithm');
    if (name === 'ECDSA' && jwk.alg !== undefined && jwk.alg !== { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }[algorithm.namedCurve!]) {
      throw dataError('JWK "alg" does not match the requested algorithm');
    }
  } else {
    checkJwkCommon(jwk, 'OKP', name.startsWith('Ed') ? 'sig' : 'enc', extractable, usages);
    if (jwk.crv !== name) throw dataError('JWK "crv" Parameter and algorithm name mismatch');
    if (name.startsWith('Ed') && jwk.alg !== undefined && jwk.alg !== name && jwk.alg !== 'EdDSA') throw dataError('JWK "alg" does not match the requested algorithm');
  }
}

/** A raw public key (an EC point, compressed or not, or an OKP key) as a JWK Node can parse. */
function rawPublicJwk(name: string, curve: string | undefined, raw: Uint8Array): JsonWebKey {
  if (name in OKP) {
    if (raw.byteLength !== OKP[name]!.bytes) throw dataError('Invalid keyData');
    return { kty: 'OKP', crv: name, x: Buffer.from(raw).toString('base64url') };
  }
  const size = CURVE_BYTES[curve!]!;
  const point = ECDH.convertKey(Buffer.from(raw), OPENSSL_CURVES[curve!]!, undefined, undefined, 'uncompressed') as Buffer;
  return { kty: 'EC', crv: curve, x: point.subarray(1, 1 + size).toString('base64url'), y: point.subarray(1 + size).toString('base64url') };
}

export function exportKey(format: KeyFormat, key: KeyDesc): Uint8Array | JsonWebKey {
  if (!key.extractable) throw invalidAccess('key is not extractable');
  const name = key.algorithm.name;
  switch (format) {
    case 'raw':
      if (key.type === 'secret') return key.material.slice();
      if (RSA.has(name)) throw notSupported(`Unable to export ${name} key with format raw`);
      if (key.type !== 'public') throw invalidAccess(`Unable to export a raw ${name} private key`);
      return rawPublic(key);
    case 'spki':
    case 'pkcs8':
      if (key.type !== (format === 'spki' ? 'public' : 'private')) throw invalidAccess(`Unable to export a ${key.type} key using ${format} format`);
      return key.material.slice();
    case 'jwk': {
      if (name === 'PBKDF2' || name === 'HKDF') throw notSupported(`Unable to export ${name} key with format jwk`);
      const jwk: JsonWebKey = { key_ops: key.usages, ext: key.extractable, ...keyObject(key).export({ format: 'jwk' }) };
      const alg = jwkAlg(key.algorithm);
      if (alg !== undefined) jwk.alg = alg;
      return jwk;
    }
  }
}

function rawPublic(key: KeyDesc): Uint8Array {
  const jwk = keyObject(key).export({ format: 'jwk' });
  const x = Buffer.from(jwk.x!, 'base64url');
  if (key.algorithm.name in OKP) return new Uint8Array(x);
  return new Uint8Array(Buffer.concat([Buffer.from([4]), x, Buffer.from(jwk.y!, 'base64url')]));
}

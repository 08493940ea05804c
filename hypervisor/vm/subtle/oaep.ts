// RSA-OAEP encryption with a seed the guest drew from its recorded entropy: EME-OAEP encoding (RFC
// 8017 §7.1.1) here, then OpenSSL's raw RSA public operation. (Node's own OAEP draws the seed
// itself and would diverge on replay.) Decryption has no randomness: it is OpenSSL's.

import { constants, createHash, type KeyObject, privateDecrypt, publicEncrypt } from 'node:crypto';
import { operationError } from './errors.js';
import { mgf1 } from './pss.js';

export function oaepEncrypt(key: KeyObject, hash: string, message: Uint8Array, label: Uint8Array, seed: Uint8Array): Uint8Array {
  const k = Math.ceil(key.asymmetricKeyDetails!.modulusLength! / 8);
  const lHash = createHash(hash).update(label).digest();
  const hLen = lHash.length;
  if (message.byteLength > k - 2 * hLen - 2) throw operationError('The data is too long for this key and hash');
  const db = Buffer.concat([lHash, Buffer.alloc(k - message.byteLength - 2 * hLen - 2), Buffer.from([1]), message]);
  const dbMask = mgf1(hash, Buffer.from(seed), db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= dbMask[i]!;
  const maskedSeed = Buffer.from(seed);
  const seedMask = mgf1(hash, db, hLen);
  for (let i = 0; i < hLen; i++) maskedSeed[i]! ^= seedMask[i]!;
  return new Uint8Array(publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, Buffer.concat([Buffer.from([0]), maskedSeed, db])));
}

/** The length of a message `oaepEncrypt` accepts, to check before drawing the seed. */
export function oaepMaxMessageBytes(modulusBits: number, hashBytes: number): number {
  return Math.ceil(modulusBits / 8) - 2 * hashBytes - 2;
}

export function oaepDecrypt(key: KeyObject, hash: string, data: Uint8Array, label: Uint8Array): Uint8Array {
  try {
    return new Uint8Array(privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash, oaepLabel: label }, data));
  } catch {
    throw operationError('The operation failed for an operation-specific reason');
  }
}

// RSA-PSS signing with a salt the guest drew from its recorded entropy: EMSA-PSS-ENCODE (RFC 8017
// §9.1.1) here, then OpenSSL's raw RSA private operation (deterministic; its blinding does not change
// the result). Node's own PSS signing draws the salt itself and would diverge on replay.

import { constants, createHash, type KeyObject, privateEncrypt } from 'node:crypto';
import { operationError } from './errors.js';

export function mgf1(hash: string, seed: Buffer, length: number): Buffer {
  const blocks: Buffer[] = [];
  for (let counter = 0, size = 0; size < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    const block = createHash(hash).update(seed).update(c).digest();
    blocks.push(block);
    size += block.length;
  }
  return Buffer.concat(blocks).subarray(0, length);
}

export function pssSign(key: KeyObject, hash: string, message: Uint8Array, salt: Uint8Array): Uint8Array {
  const modulusBits = key.asymmetricKeyDetails!.modulusLength!;
  const k = Math.ceil(modulusBits / 8);
  const emBits = modulusBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const mHash = createHash(hash).update(message).digest();
  const hLen = mHash.length;
  if (emLen < hLen + salt.byteLength + 2) throw operationError('The salt is too long for this key and hash');
  const h = createHash(hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  const db = Buffer.alloc(emLen - hLen - 1);
  db[emLen - salt.byteLength - hLen - 2] = 1;
  Buffer.from(salt).copy(db, emLen - salt.byteLength - hLen - 1);
  const mask = mgf1(hash, h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >> (8 * emLen - emBits);
  const em = Buffer.alloc(k); // leading zero byte when emLen < k
  Buffer.concat([db, h, Buffer.from([0xbc])]).copy(em, k - emLen);
  return new Uint8Array(privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, em));
}

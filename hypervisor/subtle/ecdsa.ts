// ECDSA signing with RFC 6979 deterministic nonces (@noble/curves, audited): the signature is a
// pure function of key and message, so it may be computed on both nodes. Node's own ECDSA draws a
// fresh nonce per signature and would diverge on replay. Verification stays with Node (OpenSSL).

import { p256, p384 } from '@noble/curves/nist';
import { sha1 } from '@noble/hashes/legacy';
import { sha256, sha384, sha512 } from '@noble/hashes/sha2';
import type { CurveFnWithCreate } from '@noble/curves/_shortw_utils';
import type { CurveFn } from '@noble/curves/abstract/weierstrass';
import type { CHash } from '@noble/hashes/utils';

const CURVES: Record<string, CurveFnWithCreate> = { 'P-256': p256, 'P-384': p384 };
const HASHES: Record<string, CHash> = { 'SHA-1': sha1, 'SHA-256': sha256, 'SHA-384': sha384, 'SHA-512': sha512 };
// RFC 6979's HMAC_DRBG uses the message's hash function, so a curve instance per (curve, hash).
const instances = new Map<string, CurveFn>();

function curveWithHash(curve: string, hash: string): CurveFn {
  const id = `${curve}/${hash}`;
  let instance = instances.get(id);
  if (!instance) {
    instance = CURVES[curve]!.create(HASHES[hash]!);
    instances.set(id, instance);
  }
  return instance;
}

/** IEEE P1363 (r || s) signature of `digest` (the message's hash) with private scalar `d`. */
export function ecdsaSign(curve: string, hash: string, d: Uint8Array, digest: Uint8Array): Uint8Array {
  // lowS false: P-256/P-384 signatures are not normalised (RFC 6979's vectors are not either).
  return curveWithHash(curve, hash).sign(digest, d, { lowS: false, prehash: false }).toCompactRawBytes();
}

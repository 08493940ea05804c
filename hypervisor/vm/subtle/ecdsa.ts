// ECDSA signing with RFC 6979 deterministic nonces: the signature is a pure function of key and
// message, so both nodes compute the same bytes (Node's own ECDSA draws a fresh nonce per signature
// and would diverge on replay). k comes from RFC 6979 §3.2's HMAC_DRBG (node:crypto HMAC); the point
// k·G from OpenSSL (an ECDH key whose private key is k, its constant-time scalar multiplication);
// r and s are a few BigInt operations mod n. Verification stays with Node (OpenSSL).
//
// (@noble/curves does the same in pure JS, but took 0.4-1.2 s to warm up per curve and hash, then
// 6-8 ms a signature, on a loaded 2-core machine; this took 0.6-4 ms there, mostly OpenSSL's k·G.)
// The BigInt steps are not constant-time; k·G, where the secret nonce is used on its own, is.

import { createECDH, createHmac } from 'node:crypto';
import { CURVE_BYTES, CURVE_ORDERS, modInverse, OPENSSL_CURVES } from './keys.js';

const toBigint = (bytes: Uint8Array): bigint => (bytes.byteLength === 0 ? 0n : BigInt('0x' + Buffer.from(bytes).toString('hex')));
const toBytes = (value: bigint, length: number): Buffer => Buffer.from(value.toString(16).padStart(length * 2, '0'), 'hex');

/** IEEE P1363 (r || s) signature of `digest` (the message's hash, by `hash`) with private scalar `d`. */
export function ecdsaSign(curve: string, hash: string, dBytes: Uint8Array, digest: Uint8Array): Uint8Array {
  const n = CURVE_ORDERS[curve]!;
  const size = CURVE_BYTES[curve]!; // rlen / 8
  const qlen = n.toString(2).length; // 521 for P-521: not a whole number of bytes
  const hmacName = hash.replace('-', '').toLowerCase();
  const bits2int = (bytes: Uint8Array): bigint => {
    const value = toBigint(bytes);
    return bytes.byteLength * 8 > qlen ? value >> BigInt(bytes.byteLength * 8 - qlen) : value;
  };
  const d = toBigint(dBytes);
  const e = bits2int(digest);
  const hmac = (key: Buffer, ...parts: Buffer[]): Buffer => {
    const h = createHmac(hmacName, key);
    for (const part of parts) h.update(part);
    return h.digest();
  };
  // RFC 6979 §3.2 steps b-f.
  const x = toBytes(d, size);
  const h1 = toBytes(e % n, size);
  const hlen = hmac(Buffer.alloc(0)).length;
  let v: Buffer = Buffer.alloc(hlen, 1);
  let k: Buffer = Buffer.alloc(hlen, 0);
  k = hmac(k, v, Buffer.from([0]), x, h1);
  v = hmac(k, v);
  k = hmac(k, v, Buffer.from([1]), x, h1);
  v = hmac(k, v);
  const ecdh = createECDH(OPENSSL_CURVES[curve]!);
  for (;;) {
    // Step h: candidates until one gives a valid signature.
    let t: Buffer = Buffer.alloc(0);
    while (t.length < size) {
      v = hmac(k, v);
      t = Buffer.concat([t, v]);
    }
    const nonce = bits2int(t.subarray(0, size));
    if (nonce >= 1n && nonce < n) {
      ecdh.setPrivateKey(toBytes(nonce, size));
      const r = toBigint(ecdh.getPublicKey().subarray(1, 1 + size)) % n;
      const s = (modInverse(nonce, n) * ((e + r * d) % n)) % n;
      if (r !== 0n && s !== 0n) return new Uint8Array(Buffer.concat([toBytes(r, size), toBytes(s, size)]));
    }
    k = hmac(k, v, Buffer.from([0]));
    v = hmac(k, v);
  }
}

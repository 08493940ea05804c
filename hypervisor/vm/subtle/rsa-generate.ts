// RSA key generation as a pure function of a seed the guest drew from its recorded entropy, so a
// replay regenerates the same key without the key being logged (keys can be large; a seed is 32 bytes).
//
// Random bits come from AES-256-CTR keyed with the seed (the core of NIST SP 800-90A's CTR_DRBG).
// Each prime has its top two bits set, so that n has exactly modulusLength bits, and gcd(p - 1, e)
// = 1. Primality is OpenSSL's (crypto.checkPrimeSync, its default rounds for the size): it never
// rejects a prime, and accepts a composite with probability at most 2^-128 (Miller-Rabin with
// witnesses of its own choosing), so the result depends on the seed alone, except with that
// probability, at which a replay would stop at the divergence check rather than go astray.

import { checkPrimeSync, createCipheriv, createPrivateKey } from 'node:crypto';
import { bytesBigint, modInverse } from './keys.js';

/**
 * Largest modulus ftjs generates. The VM waits for a host op and cannot be preempted inside it: a
 * 4096-bit key takes 3-4 s on a loaded 2-core machine, an 8192-bit one could take a minute.
 * (Importing larger keys is fine: that is cheap.)
 */
export const MAX_RSA_MODULUS_BITS = 4096;
export const RSA_SEED_BYTES = 32;

class Stream {
  private readonly cipher;
  constructor(seed: Uint8Array) {
    this.cipher = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
  }
  next(length: number): Buffer {
    return this.cipher.update(Buffer.alloc(length));
  }
}

const b64 = (value: bigint): string => {
  let hex = value.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  return Buffer.from(hex, 'hex').toString('base64url');
};

function gcd(a: bigint, b: bigint): bigint {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Odd primes below 2^16, for the sieve. Computed at the first key generation, not when the module
 * loads: every VM worker loads this module, and the sieve cost 3–12 ms of its start (issue 19).
 */
let smallPrimes: number[] | undefined;
function oddPrimesBelow65536(): number[] {
  smallPrimes ??= sieve();
  return smallPrimes;
}

function sieve(): number[] {
  const limit = 1 << 16;
  const composite = new Uint8Array(limit);
  const primes: number[] = [];
  for (let i = 3; i < limit; i += 2) {
    if (composite[i]) continue;
    primes.push(i);
    for (let j = i * i; j < limit; j += 2 * i) composite[j] = 1;
  }
  return primes;
}
/** How far an incremental search goes from one random start before drawing another. */
const MAX_SEARCH_STEP = 1 << 20;

/**
 * A prime of exactly `bits` bits with its top two bits set and gcd(p - 1, e) = 1: an incremental
 * search (as OpenSSL's) from a random odd start, sieved by the primes below 2^16 so that only about
 * one candidate in ten reaches OpenSSL's primality test.
 */
function prime(bits: number, e: bigint, stream: Stream): bigint {
  const top = (3n << BigInt(bits - 2)) | 1n;
  const mask = (1n << BigInt(bits)) - 1n;
  const sievePrimes = oddPrimesBelow65536();
  for (;;) {
    const start = (bytesBigint(stream.next(Math.ceil(bits / 8))) & mask) | top;
    const residues = sievePrimes.map((p) => Number(start % BigInt(p)));
    search: for (let step = 0; step < MAX_SEARCH_STEP; step += 2) {
      for (let i = 0; i < sievePrimes.length; i++) if ((residues[i]! + step) % sievePrimes[i]! === 0) continue search;
      const candidate = start + BigInt(step);
      if (candidate > mask) break; // ran past `bits` bits: draw a new start
      if (gcd(candidate - 1n, e) !== 1n) continue;
      if (checkPrimeSync(candidate)) return candidate;
    }
  }
}

/** A PKCS #8 DER RSA private key of `modulusBits` bits, determined by `seed`. */
export function generateRsa(modulusBits: number, publicExponent: bigint, seed: Uint8Array): Buffer {
  const stream = new Stream(seed);
  const pBits = Math.ceil(modulusBits / 2);
  const qBits = modulusBits - pBits;
  for (;;) {
    let p = prime(pBits, publicExponent, stream);
    let q = prime(qBits, publicExponent, stream);
    if (p === q) continue;
    if (p < q) [p, q] = [q, p];
    const n = p * q;
    const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
    const d = modInverse(publicExponent, lambda);
    const jwk = {
      kty: 'RSA',
      n: b64(n),
      e: b64(publicExponent),
      d: b64(d),
      p: b64(p),
      q: b64(q),
      dp: b64(d % (p - 1n)),
      dq: b64(d % (q - 1n)),
      qi: b64(modInverse(q, p)),
    };
    return createPrivateKey({ key: jwk, format: 'jwk' }).export({ format: 'der', type: 'pkcs8' });
  }
}

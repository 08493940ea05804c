// generateKey (§14.3.6) as a pure function of the algorithm and entropy bytes the guest drew through
// its recorded entropy input. A first call without entropy validates and answers how many bytes it
// needs; the guest draws them and calls again. So replay regenerates every key byte for byte.
//   secret keys:  the entropy bytes are the key;
//   EC keys:      d = (c mod (n - 1)) + 1 for c of bitlen(n) + 64 entropy bits (FIPS 186-4 B.4.1);
//   Ed25519, Ed448, X25519, X448: entropy bytes are the private key (RFC 8032's seed, RFC 7748's k);
//   RSA:          a 32-byte seed, expanded deterministically (rsa-generate.ts).

import { createECDH, createPrivateKey, createPublicKey } from 'node:crypto';
import { type Algorithm, digestBlockBits } from './algorithms.js';
import { notSupported, operationError, syntaxError, typeError } from './errors.js';
import { bigintBytes, bytesBigint, CURVE_BYTES, CURVE_ORDERS, checkUsages, type KeyDesc, type KeyUsage, makeKey, materialOf, OKP, OPENSSL_CURVES } from './keys.js';
import { generateRsa, MAX_RSA_MODULUS_BITS, RSA_SEED_BYTES } from './rsa-generate.js';

/** A generated HMAC key is entropy bytes, and one entropy request is at most 64 KiB (hypervisor/vm/vm.ts). */
export const MAX_HMAC_KEY_BITS = 65536 * 8;

export interface KeyPair {
  privateKey: KeyDesc;
  publicKey: KeyDesc;
}
export interface NeedEntropy {
  entropy: number;
}

export function generateKey(algorithm: Algorithm, extractable: boolean, usages: KeyUsage[], entropy: Uint8Array | undefined): KeyDesc | KeyPair | NeedEntropy {
  const name = algorithm.name;
  if (name === 'HMAC' || name.startsWith('AES-')) {
    checkUsages(name, usages, ['secret']);
    let bits: number;
    if (name === 'HMAC') {
      bits = algorithm.length ?? digestBlockBits(algorithm.hash!);
      if (bits === 0) throw operationError('Zero-length key is not supported');
      if (bits % 8 !== 0) throw typeError(`The property 'algorithm.length' must be a multiple of 8. Received ${bits}`);
      if (bits > MAX_HMAC_KEY_BITS) throw operationError(`HMAC keys ftjs generates are at most ${MAX_HMAC_KEY_BITS} bits (the entropy one request may draw)`);
    } else {
      bits = algorithm.length!;
      if (bits !== 128 && bits !== 192 && bits !== 256) throw operationError('AES key length must be 128, 192, or 256 bits');
    }
    if (usages.length === 0) throw syntaxError('Usages cannot be empty when creating a key.');
    const bytes = Math.ceil(bits / 8);
    if (!entropy) return { entropy: bytes };
    const keyAlgorithm = name === 'HMAC' ? { name, length: bits, hash: { name: algorithm.hash!.name } } : { name, length: bits };
    return makeKey('secret', extractable, keyAlgorithm, usages, entropy.slice(0, bytes));
  }
  checkUsages(name, usages, ['private', 'public']);
  let pkcs8: Buffer;
  if (name === 'ECDSA' || name === 'ECDH') {
    const curve = algorithm.namedCurve!;
    const order = CURVE_ORDERS[curve];
    if (!order) throw notSupported(`Unsupported named curve ${curve}`);
    checkPrivateUsages(name, usages);
    const bytes = Math.ceil((order.toString(2).length + 64) / 8);
    if (!entropy) return { entropy: bytes };
    pkcs8 = ecPrivateKey(curve, (bytesBigint(entropy.subarray(0, bytes)) % (order - 1n)) + 1n);
  } else if (name in OKP) {
    const okp = OKP[name]!;
    checkPrivateUsages(name, usages);
    if (!entropy) return { entropy: okp.bytes };
    pkcs8 = Buffer.concat([Buffer.from(okp.pkcs8Prefix, 'hex'), entropy.subarray(0, okp.bytes)]);
  } else {
    const bits = algorithm.modulusLength!;
    const e = bytesBigint(algorithm.publicExponent!);
    if (bits < 512 || bits > MAX_RSA_MODULUS_BITS)
      throw operationError(`RSA modulusLength must be between 512 and ${MAX_RSA_MODULUS_BITS} bits (ftjs generates keys deterministically in the host, and the VM waits)`);
    if (e < 3n || e % 2n === 0n || e >= 1n << 32n) throw operationError('Invalid public exponent');
    checkPrivateUsages(name, usages);
    if (!entropy) return { entropy: RSA_SEED_BYTES };
    pkcs8 = generateRsa(bits, e, entropy.subarray(0, RSA_SEED_BYTES));
  }
  const privateObject = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  const publicObject = createPublicKey(privateObject);
  const keyAlgorithm =
    name === 'ECDSA' || name === 'ECDH'
      ? { name, namedCurve: algorithm.namedCurve! }
      : name in OKP
        ? { name }
        : { name, modulusLength: algorithm.modulusLength!, publicExponent: bigintBytes(bytesBigint(algorithm.publicExponent!)), hash: { name: algorithm.hash!.name } };
  return {
    // Node 20 makes the public half extractable whatever the caller asked.
    publicKey: makeKey('public', true, keyAlgorithm, usages, materialOf(publicObject)),
    privateKey: makeKey('private', extractable, keyAlgorithm, usages, materialOf(privateObject)),
  };
}

function checkPrivateUsages(name: string, usages: KeyUsage[]): void {
  const privateUsages = name === 'ECDH' || name === 'X25519' || name === 'X448' ? ['deriveKey', 'deriveBits'] : name === 'RSA-OAEP' ? ['decrypt', 'unwrapKey'] : ['sign'];
  if (!usages.some((usage) => privateUsages.includes(usage))) throw syntaxError('Usages cannot be empty when creating a key.');
}

function ecPrivateKey(curve: string, d: bigint): Buffer {
  const size = CURVE_BYTES[curve]!;
  const dBytes = Buffer.from(d.toString(16).padStart(size * 2, '0'), 'hex');
  const ecdh = createECDH(OPENSSL_CURVES[curve]!);
  ecdh.setPrivateKey(dBytes);
  const point = ecdh.getPublicKey();
  const jwk = {
    kty: 'EC',
    crv: curve,
    d: dBytes.toString('base64url'),
    x: point.subarray(1, 1 + size).toString('base64url'),
    y: point.subarray(1 + size).toString('base64url'),
  };
  return createPrivateKey({ key: jwk, format: 'jwk' }).export({ format: 'der', type: 'pkcs8' });
}

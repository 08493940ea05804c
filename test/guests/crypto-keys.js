// A guest that generates keys and signs with them (test/crypto.test.ts records it and replays it):
//
//   GET /keys   generates an ECDSA P-256, P-384 and P-521, RSA-PSS, RSASSA-PKCS1-v1_5, Ed25519, HMAC,
//               AES-GCM and ECDH key (all randomness from the recorded entropy input), keeps them,
//               and answers their public halves (JWK) and secret keys (raw, hex)
//   POST /sign  signs the body with every key kept (ECDSA, RSA-PSS with a 32-byte salt, RSASSA,
//               Ed25519, HMAC), encrypts it with AES-GCM under a random IV, and derives an ECDH
//               secret with a fresh key pair; logs a digest of it all to the console

const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
const subtle = crypto.subtle;
const RSA = { modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
let keys = null;

async function generate() {
  return {
    p256: await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']),
    p384: await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify']),
    p521: await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-521' }, true, ['sign', 'verify']),
    pss: await subtle.generateKey({ name: 'RSA-PSS', ...RSA }, true, ['sign', 'verify']),
    pkcs1: await subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', ...RSA, modulusLength: 1024 }, true, ['sign', 'verify']),
    ed25519: await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']),
    hmac: await subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, true, ['sign', 'verify']),
    aes: await subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt']),
    ecdh: await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']),
  };
}

async function describeKeys() {
  const out = {};
  for (const [name, key] of Object.entries(keys)) {
    out[name] = key.publicKey ? await subtle.exportKey('jwk', key.publicKey) : hex(await subtle.exportKey('raw', key));
  }
  return out;
}

async function sign(data) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const peer = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
  const result = {
    p256: hex(await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.p256.privateKey, data)),
    p384: hex(await subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, keys.p384.privateKey, data)),
    p521: hex(await subtle.sign({ name: 'ECDSA', hash: 'SHA-512' }, keys.p521.privateKey, data)),
    pss: hex(await subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, keys.pss.privateKey, data)),
    pkcs1: hex(await subtle.sign('RSASSA-PKCS1-v1_5', keys.pkcs1.privateKey, data)),
    ed25519: hex(await subtle.sign('Ed25519', keys.ed25519.privateKey, data)),
    hmac: hex(await subtle.sign('HMAC', keys.hmac, data)),
    iv: hex(iv),
    aes: hex(await subtle.encrypt({ name: 'AES-GCM', iv }, keys.aes, data)),
    ecdhPeer: await subtle.exportKey('jwk', peer.publicKey),
    ecdh: hex(await subtle.deriveBits({ name: 'ECDH', public: peer.publicKey }, keys.ecdh.privateKey, 256)),
  };
  result.verified = await subtle.verify({ name: 'RSA-PSS', saltLength: 32 }, keys.pss.publicKey, await hexBytes(result.pss), data);
  console.log('signed', data.byteLength, 'bytes:', hex(await subtle.digest('SHA-256', new TextEncoder().encode(JSON.stringify(result)))));
  return result;
}

async function hexBytes(text) {
  return new Uint8Array(text.match(/../g).map((h) => parseInt(h, 16)));
}

export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === '/keys') {
      keys = await generate();
      const described = await describeKeys();
      console.log('keys', hex(await subtle.digest('SHA-256', new TextEncoder().encode(JSON.stringify(described)))));
      return Response.json(described);
    }
    if (path === '/sign' && keys) return Response.json(await sign(new Uint8Array(await request.arrayBuffer())));
    return new Response('GET /keys first, then POST /sign', { status: 404 });
  },
};

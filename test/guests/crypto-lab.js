// A guest for test/crypto.test.ts: POST a JSON list of crypto.subtle programs (crypto-cases.js), get
// back the description of every call's result, computed by the guest's crypto.subtle.
// GET /globals reports how the crypto globals behave.
import { runPrograms } from './crypto-cases.js';

const errorName = (f) => {
  try {
    f();
    return 'no error';
  } catch (error) {
    return error.name;
  }
};

/** structuredClone of a CryptoKey: another key that works the same. */
async function cloneKey() {
  const key = await crypto.subtle.importKey('raw', new Uint8Array(16), { name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
  const copy = structuredClone({ key }).key;
  const sign = async (k) => Array.from(new Uint8Array(await crypto.subtle.sign('HMAC', k, new Uint8Array(3)))).join(',');
  return {
    tag: Object.prototype.toString.call(copy),
    distinct: copy !== key,
    same: (await sign(copy)) === (await sign(key)) && JSON.stringify(copy.algorithm) === JSON.stringify(key.algorithm) && copy.usages.join() === key.usages.join(),
  };
}

/** What crypto.getRandomValues does with each kind of argument (shared with the test, run in Node too). */
export function randomValuesErrors() {
  const cases = [new Float32Array(1), new Float64Array(1), new DataView(new ArrayBuffer(1)), 5, new ArrayBuffer(4), new BigInt64Array(2), new Uint8ClampedArray(2), new Int16Array(3), new Uint8Array(65536), new Uint8Array(65537)];
  return cases.map((value) => {
    try {
      return crypto.getRandomValues(value) === value ? 'same array' : 'another array';
    } catch (error) {
      return error.constructor.name + ':' + error.name;
    }
  });
}

export default {
  async fetch(request) {
    if (new URL(request.url).pathname === '/globals') {
      const key = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      return Response.json({
        cryptoKey: errorName(() => new CryptoKey()),
        subtleCrypto: errorName(() => new SubtleCrypto()),
        subtleIsSubtleCrypto: crypto.subtle instanceof SubtleCrypto,
        tag: Object.prototype.toString.call(crypto.subtle),
        keyTag: Object.prototype.toString.call(key),
        methods: Object.getOwnPropertyNames(SubtleCrypto.prototype).filter((name) => name !== 'constructor').sort(),
        clone: await cloneKey(),
        getRandomValues: randomValuesErrors(),
        uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()),
      });
    }
    return Response.json(await runPrograms(crypto.subtle, await request.json()));
  },
};

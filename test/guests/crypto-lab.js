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
      });
    }
    return Response.json(await runPrograms(crypto.subtle, await request.json()));
  },
};

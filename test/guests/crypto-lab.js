// A guest for test/crypto.test.ts: POST a JSON list of crypto.subtle programs (crypto-cases.js), get
// back the description of every call's result, computed by the guest's crypto.subtle.
import { runPrograms } from './crypto-cases.js';

export default {
  async fetch(request) {
    return Response.json(await runPrograms(crypto.subtle, await request.json()));
  },
};

// A tiny interpreter of crypto.subtle "programs", run unchanged by Node (against its webcrypto) and
// inside the guest (test/guests/crypto-lab.js), so test/crypto.test.ts can compare the two byte for
// byte. A program is a list of calls; an argument may be {hex} (bytes), {utf8} (text as bytes), or
// "$name" / "$name.privateKey" (a result saved with `as`). Each call's result is described in JSON:
// bytes as hex, keys by type/extractable/algorithm/usages, errors by constructor and name.

const HEX = '0123456789abcdef';

export function toHex(buffer) {
  const bytes = new Uint8Array(buffer);
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i] >> 4] + HEX[bytes[i] & 15];
  return out;
}

export function fromHex(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function resolve(value, saved) {
  if (typeof value === 'string' && value.startsWith('$')) {
    const [name, member] = value.slice(1).split('.');
    if (!(name in saved)) throw new Error('no saved result ' + name);
    return member ? saved[name][member] : saved[name];
  }
  if (Array.isArray(value)) return value.map((item) => resolve(item, saved));
  if (value !== null && typeof value === 'object') {
    if (typeof value.hex === 'string') return fromHex(value.hex);
    if (typeof value.utf8 === 'string') return new TextEncoder().encode(value.utf8);
    const out = {};
    for (const key of Object.keys(value)) out[key] = resolve(value[key], saved);
    return out;
  }
  return value;
}

export function describe(value) {
  if (value instanceof ArrayBuffer) return { hex: toHex(value) };
  if (value instanceof Uint8Array) return { hex: toHex(value) };
  if (value !== null && typeof value === 'object' && Object.prototype.toString.call(value) === '[object CryptoKey]') {
    return { type: value.type, extractable: value.extractable, algorithm: describe(value.algorithm), usages: value.usages };
  }
  if (Array.isArray(value)) return value.map(describe);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const key of Object.keys(value)) out[key] = describe(value[key]);
    return out;
  }
  return value;
}

/** Runs each program; returns, per program, the description of every call's result. */
export async function runPrograms(subtle, programs) {
  const results = [];
  for (const program of programs) {
    const saved = {};
    const out = [];
    for (const call of program) {
      try {
        const result = await subtle[call.op](...resolve(call.args, saved));
        if (call.as) saved[call.as] = result;
        out.push(describe(result));
      } catch (error) {
        out.push({ error: error?.constructor?.name + ':' + error?.name });
      }
    }
    results.push(out);
  }
  return results;
}

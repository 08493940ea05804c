// CPU and memory abuse, on purpose. The host must contain every one of these
// and the VM must keep serving afterwards (see GET /count).
//
//   GET /                   route description
//   GET /spin?ms=N          busy-loops on Date.now() for N ms, returns iterations
//   GET /work?n=N           counts primes below N (deterministic)
//   GET /forever            while (true) {} -- the host has to preempt it
//   GET /recurse?depth=N    naive recursion N deep (deep => stack overflow); &kind=stringify|parse|flat:
//                           the engine's own recursion over data N deep (JSON.stringify, JSON.parse, flat)
//   GET /alloc?mb=N&kind=k  allocates and holds N MiB (kind: buffer | array | string)
//   GET /throw              throws an Error
//   GET /reject             rejects after a microtask hop
//   GET /count              { started, completed } requests so far

let started = 0;
let completed = 0;

function json(data, status = 200, extraHeaders = {}) {
  return new Response(JSON.stringify(data), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...extraHeaders },
  });
}

class BadRequest extends Error {}

function intParam(url, name, min, max) {
  const raw = url.searchParams.get(name);
  if (raw === null) throw new BadRequest(`missing query parameter ${name}`);
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new BadRequest(`${name} must be an integer between ${min} and ${max}`);
  }
  return value;
}

function spin(url) {
  const ms = intParam(url, 'ms', 0, 600_000);
  const start = Date.now();
  let iterations = 0;
  let now = start;
  while (now - start < ms) {
    now = Date.now();
    iterations++;
  }
  return json({ ms, elapsed: now - start, iterations });
}

function countPrimes(n) {
  if (n < 3) return 0;
  const composite = new Uint8Array(n);
  let count = 1; // 2
  for (let i = 3; i < n; i += 2) {
    if (composite[i]) continue;
    count++;
    for (let j = i * i; j < n; j += 2 * i) composite[j] = 1;
  }
  return count;
}

function work(url) {
  const n = intParam(url, 'n', 0, 50_000_000);
  // A second, purely arithmetic loop so the result depends on more than the sieve.
  let checksum = 0;
  for (let i = 0; i < Math.min(n, 1_000_000); i++) checksum = (checksum * 31 + i) % 1_000_000_007;
  return json({ n, primes: countPrimes(n), checksum });
}

function forever() {
  let i = 0;
  // eslint-disable-next-line no-constant-condition
  while (true) {
    i++;
  }
  // unreachable
  return json({ i });
}

function depthOf(n) {
  if (n === 0) return 0;
  return 1 + depthOf(n - 1);
}

function nested(depth) {
  let v = [];
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

function recurse(url) {
  const depth = intParam(url, 'depth', 0, 1_000_000_000);
  switch (url.searchParams.get('kind') ?? 'js') {
    case 'stringify':
      return json({ length: JSON.stringify(nested(depth)).length });
    case 'parse':
      return json({ type: typeof JSON.parse('['.repeat(depth) + ']'.repeat(depth)) });
    case 'flat':
      return json({ length: nested(depth).flat(Infinity).length });
    default:
      return json({ depth: depthOf(depth) });
  }
}

function alloc(url) {
  const mb = intParam(url, 'mb', 0, 1_000_000);
  const kind = url.searchParams.get('kind') ?? 'buffer';
  const MiB = 1024 * 1024;
  const held = [];
  let bytes = 0;
  switch (kind) {
    case 'buffer':
      while (bytes < mb * MiB) {
        const chunk = new Uint8Array(MiB);
        chunk.fill(held.length & 0xff); // touch every page
        held.push(chunk);
        bytes += MiB;
      }
      break;
    case 'array':
      // Plain JS values on the GC heap; ~8 bytes a slot as an estimate.
      while (bytes < mb * MiB) {
        const chunk = new Array(MiB / 8);
        for (let i = 0; i < chunk.length; i++) chunk[i] = i * 0.5;
        held.push(chunk);
        bytes += MiB;
      }
      break;
    case 'string':
      // Distinct one-byte strings of 1 MiB each.
      while (bytes < mb * MiB) {
        held.push(`${held.length}:`.padEnd(MiB, 'x'));
        bytes += MiB;
      }
      break;
    default:
      throw new BadRequest('kind must be buffer, array or string');
  }
  return json({ mb, kind, chunks: held.length, bytes });
}

async function reject() {
  await Promise.resolve();
  throw new Error('deliberate rejection from /reject');
}

const ROUTES = {
  '/': () => json({
    name: 'cpu',
    routes: [
      'GET /spin?ms=N',
      'GET /work?n=N',
      'GET /forever',
      'GET /recurse?depth=N&kind=js|stringify|parse|flat',
      'GET /alloc?mb=N&kind=buffer|array|string',
      'GET /throw',
      'GET /reject',
      'GET /count',
    ],
  }),
  '/spin': spin,
  '/work': work,
  '/forever': forever,
  '/recurse': recurse,
  '/alloc': alloc,
  '/throw': () => {
    throw new Error('deliberate error from /throw');
  },
  '/reject': reject,
  '/count': () => json({ started, completed }),
};

export default {
  async fetch(request) {
    started++;
    const url = new URL(request.url);
    const handler = Object.hasOwn(ROUTES, url.pathname) ? ROUTES[url.pathname] : null;
    let response;
    if (!handler) {
      response = json({ error: 'not found' }, 404);
    } else if (request.method !== 'GET') {
      response = json({ error: 'method not allowed', allow: 'GET' }, 405, { allow: 'GET' });
    } else {
      try {
        response = await handler(url);
      } catch (err) {
        if (!(err instanceof BadRequest)) throw err; // let the host see real failures
        response = json({ error: err.message }, 400);
      }
    }
    completed++;
    return response;
  },
};

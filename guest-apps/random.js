// Heavy use of the nondeterministic inputs: Date, Math.random, crypto.
//
//   GET  /               route description
//   GET  /roll?n=&sides= dice rolls (Math.random)
//   GET  /uuid?n=        crypto.randomUUID()
//   GET  /bytes?n=       hex of crypto.getRandomValues(new Uint8Array(n))
//   GET  /now            every way of reading the clock
//   POST /shuffle        Fisher-Yates shuffle of the JSON array body
//   GET  /state          running hash of everything generated so far
//
// /state makes a divergence between a recording and its replay visible in a
// single response: every generated value is folded into the hash.

let hash = 0x811c9dc5; // FNV-1a, 32 bit
const counts = { rolls: 0, uuids: 0, bytes: 0, clockReads: 0, shuffles: 0, requests: 0 };
let last = null;

function absorb(value) {
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  for (let i = 0; i < s.length; i++) {
    hash ^= s.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  last = s.length > 200 ? s.slice(0, 200) + '...' : s;
}

function json(data, status = 200, extraHeaders = {}) {
  return new Response(JSON.stringify(data), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...extraHeaders },
  });
}

function methodNotAllowed(allow) {
  return json({ error: 'method not allowed', allow }, 405, { allow });
}

class BadRequest extends Error {}

function intParam(url, name, min, max, fallback) {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new BadRequest(`${name} must be an integer between ${min} and ${max}`);
  }
  return value;
}

function roll(url) {
  const n = intParam(url, 'n', 1, 1000, 1);
  const sides = intParam(url, 'sides', 2, 1000, 6);
  const rolls = [];
  for (let i = 0; i < n; i++) rolls.push(1 + Math.floor(Math.random() * sides));
  const sum = rolls.reduce((a, b) => a + b, 0);
  counts.rolls += n;
  absorb(rolls);
  return json({ sides, rolls, sum });
}

function uuids(url) {
  const n = intParam(url, 'n', 1, 100, 1);
  const list = [];
  for (let i = 0; i < n; i++) list.push(crypto.randomUUID());
  counts.uuids += n;
  absorb(list);
  return json({ uuids: list });
}

function bytes(url) {
  const n = intParam(url, 'n', 1, 65536, 16);
  const buf = crypto.getRandomValues(new Uint8Array(n));
  let hex = '';
  for (const b of buf) hex += b.toString(16).padStart(2, '0');
  counts.bytes += n;
  absorb(hex);
  return json({ n, hex });
}

function tryCall(fn) {
  try {
    return fn();
  } catch (err) {
    return `unsupported: ${err && err.message}`;
  }
}

function now() {
  const d = new Date();
  const reading = {
    dateNow: Date.now(),
    getTime: d.getTime(),
    valueOf: +d,
    toString: d.toString(),
    toISOString: d.toISOString(),
    toUTCString: d.toUTCString(),
    toDateString: d.toDateString(),
    toTimeString: d.toTimeString(),
    toJSON: d.toJSON(),
    dateCalledAsFunction: Date(),
    timezoneOffset: d.getTimezoneOffset(),
    fields: {
      year: d.getFullYear(),
      month: d.getMonth(),
      date: d.getDate(),
      day: d.getDay(),
      hours: d.getHours(),
      minutes: d.getMinutes(),
      seconds: d.getSeconds(),
      ms: d.getMilliseconds(),
      utcHours: d.getUTCHours(),
    },
    toLocaleString: tryCall(() => d.toLocaleString()),
    toLocaleDateString: tryCall(() => d.toLocaleDateString()),
    toLocaleTimeString: tryCall(() => d.toLocaleTimeString()),
    epochToString: new Date(0).toString(),
    parsedLocal: new Date(2024, 0, 15, 12, 30).getTime(),
    parsedString: Date.parse('2024-01-15T12:30:00'),
    performanceNow: performance.now(),
  };
  counts.clockReads++;
  absorb(reading);
  return json(reading);
}

async function shuffle(request) {
  let items;
  try {
    items = await request.json();
  } catch {
    throw new BadRequest('body must be a JSON array');
  }
  if (!Array.isArray(items)) throw new BadRequest('body must be a JSON array');
  if (items.length > 10_000) throw new BadRequest('at most 10000 items');
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  counts.shuffles++;
  absorb(items);
  return json({ shuffled: items });
}

async function route(request) {
  const url = new URL(request.url);
  const { pathname } = url;
  const method = request.method;
  const allow = pathname === '/shuffle' ? 'POST' : 'GET';
  const known = ['/', '/roll', '/uuid', '/bytes', '/now', '/shuffle', '/state'];
  if (!known.includes(pathname)) return json({ error: 'not found' }, 404);
  if (method !== allow) return methodNotAllowed(allow);

  switch (pathname) {
    case '/':
      return json({
        name: 'random',
        routes: ['GET /roll?n=&sides=', 'GET /uuid?n=', 'GET /bytes?n=', 'GET /now', 'POST /shuffle', 'GET /state'],
      });
    case '/roll':
      return roll(url);
    case '/uuid':
      return uuids(url);
    case '/bytes':
      return bytes(url);
    case '/now':
      return now();
    case '/shuffle':
      return shuffle(request);
    case '/state':
      return json({ hash: hash.toString(16).padStart(8, '0'), counts, last });
  }
}

export default {
  async fetch(request) {
    counts.requests++;
    try {
      return await route(request);
    } catch (err) {
      if (err instanceof BadRequest) return json({ error: err.message }, 400);
      throw err;
    }
  },
};

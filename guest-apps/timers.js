// Timers, microtasks and ctx.waitUntil.
//
//   GET  /                          route description
//   POST /schedule?ms=N&tag=x       setTimeout -> appends { type: 'timeout' } to the log
//   POST /interval?ms=N&count=k     setInterval that fires k times, then clears itself
//   POST /background?ms=N&tag=x     responds at once; ctx.waitUntil keeps a timer alive
//   GET  /delay?ms=N                responds after awaiting a timer of N ms
//   POST /cancel/:id                cancels a pending timeout or interval
//   GET  /pending                   ids of timers that have not fired / finished yet
//   GET  /events?since=n            the event log (events with seq > n)
//   GET  /order                     observed microtask vs timer ordering
//
// Ids are small integers handed out in request order, starting at 1.

const MAX_MS = 60_000;
const MAX_COUNT = 1_000;

const events = [];
const pending = new Map(); // id -> { kind, handle, tag, ms, scheduledAt }
let nextId = 1;
let seq = 0;

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

function intParam(url, name, { min, max, fallback }) {
  const raw = url.searchParams.get(name);
  if (raw === null) {
    if (fallback === undefined) throw new BadRequest(`missing query parameter ${name}`);
    return fallback;
  }
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new BadRequest(`${name} must be an integer between ${min} and ${max}`);
  }
  return value;
}

function log(type, fields) {
  const event = { seq: ++seq, type, at: Date.now(), ...fields };
  events.push(event);
  if (events.length > 5_000) events.shift();
  return event;
}

function schedule(url) {
  const ms = intParam(url, 'ms', { min: 0, max: MAX_MS });
  const tag = url.searchParams.get('tag') ?? '';
  const id = nextId++;
  const scheduledAt = Date.now();
  const handle = setTimeout(() => {
    pending.delete(id);
    log('timeout', { id, tag, ms, late: Date.now() - scheduledAt - ms });
  }, ms);
  pending.set(id, { kind: 'timeout', handle, tag, ms, scheduledAt });
  return json({ id, kind: 'timeout', ms, tag, scheduledAt }, 201);
}

function interval(url) {
  const ms = intParam(url, 'ms', { min: 1, max: MAX_MS });
  const count = intParam(url, 'count', { min: 1, max: MAX_COUNT, fallback: 3 });
  const tag = url.searchParams.get('tag') ?? '';
  const id = nextId++;
  const scheduledAt = Date.now();
  let tick = 0;
  const handle = setInterval(() => {
    tick++;
    log('interval', { id, tag, tick, of: count });
    if (tick >= count) {
      clearInterval(handle);
      pending.delete(id);
      log('interval-done', { id, tag, ticks: tick });
    }
  }, ms);
  pending.set(id, { kind: 'interval', handle, tag, ms, scheduledAt });
  return json({ id, kind: 'interval', ms, count, tag, scheduledAt }, 201);
}

function background(url, ctx) {
  const ms = intParam(url, 'ms', { min: 0, max: MAX_MS });
  const tag = url.searchParams.get('tag') ?? '';
  const id = nextId++;
  const startedAt = Date.now();
  const work = (async () => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    // A microtask hop after the timer, just to make the chain non-trivial.
    await Promise.resolve();
    log('background', { id, tag, ms, tookAtLeast: Date.now() - startedAt });
  })();
  ctx.waitUntil(work);
  return json({ id, kind: 'background', ms, tag, startedAt }, 202);
}

async function delay(url) {
  const ms = intParam(url, 'ms', { min: 0, max: MAX_MS });
  const start = Date.now();
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return json({ requested: ms, elapsed: Date.now() - start, elapsedPrecise: performance.now() - t0 });
}

function cancel(rawId) {
  const id = Number(rawId);
  if (rawId === '' || !Number.isInteger(id) || id < 1) throw new BadRequest('timer id must be a positive integer');
  const entry = pending.get(id);
  if (!entry) return json({ error: `no pending timer ${id}` }, 404);
  if (entry.kind === 'interval') clearInterval(entry.handle);
  else clearTimeout(entry.handle);
  pending.delete(id);
  log('cancelled', { id, kind: entry.kind, tag: entry.tag });
  return json({ ok: true, id, kind: entry.kind });
}

async function order() {
  const seen = [];
  seen.push('sync-start');
  setTimeout(() => {
    seen.push('timeout-0a');
    queueMicrotask(() => seen.push('microtask-in-timeout-0a'));
  }, 0);
  setTimeout(() => seen.push('timeout-0b'), 0);
  setTimeout(() => seen.push('timeout-10'), 10);
  const cancelled = setTimeout(() => seen.push('cancelled-timeout (must not appear)'), 5);
  clearTimeout(cancelled);
  queueMicrotask(() => {
    seen.push('microtask-1');
    queueMicrotask(() => seen.push('microtask-nested'));
  });
  Promise.resolve().then(() => seen.push('promise-then'));
  seen.push('sync-end');
  await new Promise((resolve) => setTimeout(resolve, 30));
  seen.push('after-await-30');

  const expected = [
    'sync-start',
    'sync-end',
    'microtask-1',
    'promise-then',
    'microtask-nested',
    'timeout-0a',
    'microtask-in-timeout-0a',
    'timeout-0b',
    'timeout-10',
    'after-await-30',
  ];
  const matches = seen.length === expected.length && seen.every((s, i) => s === expected[i]);
  return json({ order: seen, expected, matches });
}

async function route(request, ctx) {
  const url = new URL(request.url);
  const { pathname } = url;
  const method = request.method;

  switch (pathname) {
    case '/':
      if (method !== 'GET') return methodNotAllowed('GET');
      return json({
        name: 'timers',
        routes: [
          'POST /schedule?ms=N&tag=x',
          'POST /interval?ms=N&count=k',
          'POST /background?ms=N&tag=x',
          'GET /delay?ms=N',
          'POST /cancel/:id',
          'GET /pending',
          'GET /events?since=n',
          'GET /order',
        ],
      });
    case '/schedule':
      if (method !== 'POST') return methodNotAllowed('POST');
      return schedule(url);
    case '/interval':
      if (method !== 'POST') return methodNotAllowed('POST');
      return interval(url);
    case '/background':
      if (method !== 'POST') return methodNotAllowed('POST');
      return background(url, ctx);
    case '/delay':
      if (method !== 'GET') return methodNotAllowed('GET');
      return delay(url);
    case '/pending':
      if (method !== 'GET') return methodNotAllowed('GET');
      return json({
        pending: [...pending.entries()].map(([id, p]) => ({ id, kind: p.kind, tag: p.tag, ms: p.ms })),
      });
    case '/events': {
      if (method !== 'GET') return methodNotAllowed('GET');
      const since = intParam(url, 'since', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 });
      return json({ events: events.filter((e) => e.seq > since), lastSeq: seq });
    }
    case '/order':
      if (method !== 'GET') return methodNotAllowed('GET');
      return order();
  }

  if (pathname.startsWith('/cancel/')) {
    if (method !== 'POST') return methodNotAllowed('POST');
    return cancel(pathname.slice('/cancel/'.length));
  }

  return json({ error: 'not found' }, 404);
}

export default {
  async fetch(request, env, ctx) {
    try {
      return await route(request, ctx);
    } catch (err) {
      if (err instanceof BadRequest) return json({ error: err.message }, 400);
      throw err;
    }
  },
};

// Outbound fetch to an upstream configured through env.UPSTREAM
// (e.g. "http://127.0.0.1:8080", no trailing slash needed).
//
//   GET  /                    route description
//   GET  /proxy?path=/x       fetches UPSTREAM + path -> { status, body, contentType }
//   POST /notify              POSTs { event, payload, sentAt } as JSON to UPSTREAM/hook
//                             -> { status, body } of the upstream response
//   GET  /fanout?paths=/a,/b  fetches several upstream paths concurrently
//   GET  /fetch?url=...       fetches an absolute URL (used to exercise network errors)
//
// A failed fetch (connection refused, DNS, ...) becomes 502 { error }.

function json(data, status = 200, extraHeaders = {}) {
  return new Response(JSON.stringify(data), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...extraHeaders },
  });
}

function methodNotAllowed(allow) {
  return json({ error: 'method not allowed', allow }, 405, { allow });
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let requestsSent = 0;

function upstreamBase(env) {
  const base = env && env.UPSTREAM;
  if (typeof base !== 'string' || base === '') throw new HttpError(500, 'UPSTREAM is not configured');
  return base.endsWith('/') ? base.slice(0, -1) : base;
}

function checkPath(path) {
  if (path === null || path === '') throw new HttpError(400, 'missing query parameter path');
  if (!path.startsWith('/') || path.startsWith('//')) throw new HttpError(400, 'path must start with a single /');
  return path;
}

async function send(url, init) {
  requestsSent++;
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new HttpError(502, `upstream fetch failed: ${err && err.message ? err.message : String(err)}`);
  }
  let body;
  try {
    body = await response.text();
  } catch (err) {
    throw new HttpError(502, `upstream body failed: ${err && err.message ? err.message : String(err)}`);
  }
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    body,
  };
}

async function proxy(url, env) {
  const path = checkPath(url.searchParams.get('path'));
  const result = await send(upstreamBase(env) + path, { headers: { accept: 'application/json, text/plain, */*' } });
  return json(result);
}

async function notify(request, env) {
  const text = await request.text();
  let payload = null;
  if (text !== '') {
    try {
      payload = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'body must be valid JSON (or empty)');
    }
  }
  const result = await send(upstreamBase(env) + '/hook', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ event: 'notify', payload, sentAt: Date.now() }),
  });
  return json({ status: result.status, body: result.body });
}

async function fanout(url, env) {
  const raw = url.searchParams.get('paths');
  if (!raw) throw new HttpError(400, 'missing query parameter paths');
  const paths = raw.split(',').map(checkPath);
  if (paths.length > 16) throw new HttpError(400, 'at most 16 paths');
  const base = upstreamBase(env);
  // Started together, completed in whatever order the network decides.
  const completionOrder = [];
  const results = await Promise.all(
    paths.map(async (path) => {
      const r = await send(base + path);
      completionOrder.push(path);
      return { path, status: r.status, body: r.body };
    }),
  );
  return json({ results, completionOrder });
}

async function direct(url) {
  const target = url.searchParams.get('url');
  if (!target) throw new HttpError(400, 'missing query parameter url');
  let parsed;
  try {
    parsed = new URL(target);
  } catch {
    throw new HttpError(400, 'url must be an absolute URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new HttpError(400, 'only http and https URLs are allowed');
  }
  return json(await send(parsed.href));
}

async function route(request, env) {
  const url = new URL(request.url);
  const method = request.method;
  switch (url.pathname) {
    case '/':
      if (method !== 'GET') return methodNotAllowed('GET');
      return json({
        name: 'outbound',
        upstreamConfigured: typeof (env && env.UPSTREAM) === 'string',
        requestsSent,
        routes: ['GET /proxy?path=/x', 'POST /notify', 'GET /fanout?paths=/a,/b', 'GET /fetch?url=...'],
      });
    case '/proxy':
      if (method !== 'GET') return methodNotAllowed('GET');
      return proxy(url, env);
    case '/notify':
      if (method !== 'POST') return methodNotAllowed('POST');
      return notify(request, env);
    case '/fanout':
      if (method !== 'GET') return methodNotAllowed('GET');
      return fanout(url, env);
    case '/fetch':
      if (method !== 'GET') return methodNotAllowed('GET');
      return direct(url);
    default:
      return json({ error: 'not found' }, 404);
  }
}

export default {
  async fetch(request, env) {
    try {
      return await route(request, env);
    } catch (err) {
      if (err instanceof HttpError) return json({ error: err.message }, err.status);
      throw err;
    }
  },
};

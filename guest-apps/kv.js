// A small in-memory key/value store.
//
//   GET    /            route description
//   GET    /kv          { keys: [...] } (sorted)
//   GET    /kv/:key     { key, value } | 404
//   PUT    /kv/:key     body = value (text) -> { ok: true }
//   DELETE /kv/:key     { ok: true, deleted: boolean }
//
// Keys are URL-decoded from the path. State lives in the module (the VM
// persists between requests). This is the benchmark target: keep it lean.

const store = new Map();

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

function json(data, status = 200, extraHeaders) {
  const headers = extraHeaders ? { ...JSON_HEADERS, ...extraHeaders } : JSON_HEADERS;
  return new Response(JSON.stringify(data), { status, headers });
}

function methodNotAllowed(allow) {
  return json({ error: 'method not allowed', allow }, 405, { allow });
}

const ROUTES = {
  name: 'kv',
  routes: [
    'GET /kv',
    'GET /kv/:key',
    'PUT /kv/:key',
    'DELETE /kv/:key',
  ],
};

export default {
  async fetch(request) {
    const { pathname } = new URL(request.url);
    const method = request.method;

    if (pathname.startsWith('/kv/')) {
      let key;
      try {
        key = decodeURIComponent(pathname.slice(4));
      } catch {
        return json({ error: 'malformed key encoding' }, 400);
      }
      if (key === '') return json({ error: 'empty key' }, 400);

      switch (method) {
        case 'GET':
        case 'HEAD': {
          const value = store.get(key);
          if (value === undefined) return json({ error: 'not found', key }, 404);
          return json({ key, value });
        }
        case 'PUT': {
          store.set(key, await request.text());
          return json({ ok: true });
        }
        case 'DELETE':
          return json({ ok: true, deleted: store.delete(key) });
        default:
          return methodNotAllowed('GET, HEAD, PUT, DELETE');
      }
    }

    if (pathname === '/kv') {
      if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed('GET, HEAD');
      return json({ keys: [...store.keys()].sort() });
    }

    if (pathname === '/') {
      if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed('GET, HEAD');
      return json(ROUTES);
    }

    return json({ error: 'not found' }, 404);
  },
};

// A Hono app in TypeScript, as a Workers user writes one: npm's `hono`, bundled by ftjs at boot.
// It exercises what real services lean on: jwt sign/verify, basicAuth, etag (and its 304), cors, a
// validator, parseBody (urlencoded and multipart) and streamText. Its state is an in-memory key/value
// store (the VM persists between requests), so drills and benchmarks can write and read it.
//
//   GET    /                 route list
//   GET    /kv               { keys } (sorted)
//   GET    /kv/:key          { key, value } | 404
//   PUT    /kv/:key          body = value (text) → { ok: true }
//   DELETE /kv/:key          { ok: true, deleted }
//   POST   /kv-form          form (urlencoded or multipart) key=…&value=… (validated) → { ok, key }
//   GET    /search?q=&limit= keys containing q (validated query) → { q, limit, keys }
//   GET    /etag/kv/:key     the value as text, with an ETag; If-None-Match → 304
//   POST   /form             any form (parseBody): fields and files echoed as JSON
//   GET    /stream?n=        streamText: n lines
//   POST   /auth/token       JSON { sub, role, iat? } (validated) → { token } (HS256)
//   GET    /auth/me          Authorization: Bearer <token> (jwt middleware) → the payload
//   POST   /auth/verify      JSON { token } → { valid, payload } | 401
//   GET    /admin/stats      basicAuth (env ADMIN_USER / ADMIN_PASSWORD) → { keys, bytes }
//   GET    /clock            the guest's clock, UTC and local
//   GET    /boom             throws (onError logs it and answers 500)
//
// cors: every route answers the origin https://app.example.com (preflight included).

import { Hono, type Context } from 'hono';
import { basicAuth } from 'hono/basic-auth';
import { cors } from 'hono/cors';
import { etag } from 'hono/etag';
import { HTTPException } from 'hono/http-exception';
import { jwt, sign, verify } from 'hono/jwt';
import { streamText } from 'hono/streaming';
import { validator } from 'hono/validator';

type Bindings = {
  JWT_SECRET?: string;
  ADMIN_USER?: string;
  ADMIN_PASSWORD?: string;
};
type Env = { Bindings: Bindings };

interface Claims {
  sub: string;
  role: 'admin' | 'user';
  iat: number;
  exp: number;
}

const ROLES = ['admin', 'user'] as const;
const TOKEN_TTL_S = 3600;
const MAX_SEARCH_LIMIT = 100;
const MAX_STREAM_LINES = 1000;

const store = new Map<string, string>();

const jwtSecret = (c: Context<Env>): string => c.env?.JWT_SECRET ?? 'dev-secret-change-me';

const app = new Hono<Env>();

app.use(
  '*',
  cors({
    origin: 'https://app.example.com',
    allowMethods: ['GET', 'PUT', 'POST', 'DELETE'],
    allowHeaders: ['Content-Type', 'Authorization'],
    exposeHeaders: ['ETag'],
    maxAge: 600,
    credentials: true,
  }),
);

app.get('/', (c) =>
  c.json({
    name: 'hono',
    routes: ['GET /kv', 'GET /kv/:key', 'PUT /kv/:key', 'DELETE /kv/:key', 'POST /kv-form', 'GET /search', 'GET /etag/kv/:key', 'POST /form', 'GET /stream', 'POST /auth/token', 'GET /auth/me', 'POST /auth/verify', 'GET /admin/stats', 'GET /clock'],
  }),
);

// ---------- key/value ----------

app.get('/kv', (c) => c.json({ keys: [...store.keys()].sort() }));

app.get('/kv/:key', (c) => {
  const key = c.req.param('key');
  const value = store.get(key);
  return value === undefined ? c.json({ error: 'not found', key }, 404) : c.json({ key, value });
});

app.put('/kv/:key', async (c) => {
  store.set(c.req.param('key'), await c.req.text());
  return c.json({ ok: true });
});

app.delete('/kv/:key', (c) => c.json({ ok: true, deleted: store.delete(c.req.param('key')) }));

app.post(
  '/kv-form',
  validator('form', (form, c) => {
    const key = form['key'];
    const value = form['value'];
    if (typeof key !== 'string' || key === '') return c.json({ error: 'form field "key" is required' }, 400);
    if (typeof value !== 'string') return c.json({ error: 'form field "value" must be text' }, 400);
    return { key, value };
  }),
  (c) => {
    const { key, value } = c.req.valid('form');
    store.set(key, value);
    return c.json({ ok: true, key }, 201);
  },
);

app.get(
  '/search',
  validator('query', (query, c) => {
    const q = query['q'];
    if (typeof q !== 'string' || q === '') return c.json({ error: 'query parameter "q" is required' }, 400);
    const limit = query['limit'] === undefined ? 10 : Number(query['limit']);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SEARCH_LIMIT) return c.json({ error: `limit must be an integer from 1 to ${MAX_SEARCH_LIMIT}` }, 400);
    return { q, limit };
  }),
  (c) => {
    const { q, limit } = c.req.valid('query');
    const keys = [...store.keys()].filter((k) => k.includes(q)).sort().slice(0, limit);
    return c.json({ q, limit, keys });
  },
);

// ---------- etag ----------

app.use('/etag/*', etag());

app.get('/etag/kv/:key', (c) => {
  const value = store.get(c.req.param('key'));
  return value === undefined ? c.text('not found', 404) : c.text(value);
});

// ---------- forms ----------

app.post('/form', async (c) => {
  const body = await c.req.parseBody({ all: true });
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(body)) {
    const values = Array.isArray(value) ? value : [value];
    const described = await Promise.all(values.map(async (v) => (typeof v === 'string' ? v : { file: v.name, type: v.type, size: v.size, text: await v.text() })));
    fields[name] = described.length === 1 ? described[0] : described;
  }
  return c.json({ contentType: c.req.header('content-type')?.split(';')[0] ?? null, fields });
});

// ---------- streaming ----------

app.get('/stream', (c) => {
  const n = Number(c.req.query('n') ?? 3);
  if (!Number.isInteger(n) || n < 0 || n > MAX_STREAM_LINES) throw new HTTPException(400, { message: `n must be an integer from 0 to ${MAX_STREAM_LINES}` });
  return streamText(c, async (stream) => {
    for (let i = 1; i <= n; i++) {
      await stream.writeln(`line ${i} of ${n}`);
      await stream.sleep(1);
    }
  });
});

// ---------- jwt ----------

app.post(
  '/auth/token',
  validator('json', (body: unknown, c) => {
    const { sub, role, iat } = (body ?? {}) as Record<string, unknown>;
    if (typeof sub !== 'string' || sub === '') return c.json({ error: '"sub" must be a non-empty string' }, 400);
    if (!ROLES.includes(role as Claims['role'])) return c.json({ error: `"role" must be one of ${ROLES.join(', ')}` }, 400);
    if (iat !== undefined && !Number.isSafeInteger(iat)) return c.json({ error: '"iat" must be an integer (seconds)' }, 400);
    return { sub, role: role as Claims['role'], iat: iat as number | undefined };
  }),
  async (c) => {
    const { sub, role, iat } = c.req.valid('json');
    const issuedAt = iat ?? Math.floor(Date.now() / 1000);
    const claims: Claims = { sub, role, iat: issuedAt, exp: issuedAt + TOKEN_TTL_S };
    return c.json({ token: await sign({ ...claims }, jwtSecret(c), 'HS256') });
  },
);

app.use('/auth/me', (c, next) => jwt({ secret: jwtSecret(c), alg: 'HS256' })(c, next));

app.get('/auth/me', (c) => {
  const claims = c.get('jwtPayload') as Claims;
  return c.json({ sub: claims.sub, role: claims.role });
});

app.post('/auth/verify', async (c) => {
  const { token } = await c.req.json<{ token?: unknown }>();
  if (typeof token !== 'string') return c.json({ valid: false, error: '"token" must be a string' }, 400);
  try {
    return c.json({ valid: true, payload: await verify(token, jwtSecret(c), 'HS256') });
  } catch (error) {
    return c.json({ valid: false, error: (error as Error).name }, 401);
  }
});

// ---------- basic auth ----------

app.use('/admin/*', (c, next) => basicAuth({ username: c.env?.ADMIN_USER ?? 'admin', password: c.env?.ADMIN_PASSWORD ?? 'admin-password' })(c, next));

app.get('/admin/stats', (c) => {
  let bytes = 0;
  for (const [k, v] of store) bytes += k.length + v.length;
  return c.json({ keys: store.size, bytes });
});

// ---------- clock and errors ----------

app.get('/clock', (c) => {
  const now = new Date();
  return c.json({ iso: now.toISOString(), local: now.toString(), offsetMin: now.getTimezoneOffset() });
});

app.get('/boom', () => {
  throw new Error('boom from a Hono route');
});

app.notFound((c) => c.json({ error: 'not found', path: c.req.path }, 404));

app.onError((error, c) => {
  if (error instanceof HTTPException) return error.getResponse();
  console.error(error);
  return c.json({ error: error.message }, 500);
});

export default app;

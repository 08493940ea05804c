// guest-apps/hono (a Hono app in TypeScript, npm's hono bundled at boot) under `ftjs run` serves every
// route exactly as plain Node's `app.fetch(new Request(...))` does on the same bundle: status, every
// header the app sets, body. The run is recorded under TZ=UTC and replayed under TZ=Pacific/Chatham.
//
// Both sides see the same requests in the same order (the app keeps state). Where a later request
// needs a value from an earlier answer (a token, an ETag), it takes Node's, so a route is tested on its
// own even when an earlier one fails under ftjs.

import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { both, type Fetcher, header, importBundle, multipart, type RouteRequest, type Seen } from './guest-compare.js';
import { type FtjsProcess, replayJson, startRun, tempDir } from './helpers.js';

const ENTRY = 'guest-apps/hono/src/index.ts';
const ENV = { JWT_SECRET: 'test-jwt-secret-0123456789', ADMIN_USER: 'ops', ADMIN_PASSWORD: 'pa55word' };
const ORIGIN = 'https://app.example.com';
const JSON_BODY = { 'content-type': 'application/json' };
const FORM_BODY = { 'content-type': 'application/x-www-form-urlencoded' };
const BOUNDARY = '----ftjs-test-boundary-7MA4YWxkTrZu0gW';
const MULTIPART = { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };
/** Fixed issue time of the signed tokens: both sides then sign the same claims (the routes accept `iat`). */
const ISSUED_AT_S = Math.floor(Date.now() / 1000);

interface Context {
  token?: string;
  etag?: string;
}

interface Step {
  name: string;
  request: (ctx: Context) => RouteRequest;
  /** What the route returns depends on the clock: compare status and headers, not the body. */
  clockDependent?: boolean;
  /** Keeps what later steps need, from Node's answer. */
  keep?: (node: Seen, ctx: Context) => void;
}

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
const base64url = (text: string) => Buffer.from(text).toString('base64url');
/** The token with its claims swapped for others, signature kept: a forgery. */
const forged = (token: string) => {
  const [head, , signature] = token.split('.');
  return `${head}.${base64url(JSON.stringify({ sub: 'eve', role: 'admin', iat: ISSUED_AT_S, exp: ISSUED_AT_S + 3600 }))}.${signature}`;
};

const STEPS: Step[] = [
  { name: 'route list', request: () => ({ method: 'GET', path: '/' }) },
  { name: 'kv write', request: () => ({ method: 'PUT', path: '/kv/alpha', body: 'one' }) },
  { name: 'kv write another', request: () => ({ method: 'PUT', path: '/kv/alphabet', body: 'two' }) },
  { name: 'kv read', request: () => ({ method: 'GET', path: '/kv/alpha' }) },
  { name: 'kv miss is 404', request: () => ({ method: 'GET', path: '/kv/zzz' }) },
  { name: 'kv list', request: () => ({ method: 'GET', path: '/kv' }) },
  { name: 'validator (query): valid', request: () => ({ method: 'GET', path: '/search?q=alpha&limit=1' }) },
  { name: 'validator (query): missing q is 400', request: () => ({ method: 'GET', path: '/search' }) },
  { name: 'validator (query): bad limit is 400', request: () => ({ method: 'GET', path: '/search?q=a&limit=1000' }) },
  { name: 'validator (form, urlencoded): valid', request: () => ({ method: 'POST', path: '/kv-form', headers: FORM_BODY, body: 'key=form-key&value=form+value%21' }) },
  { name: 'validator (form, urlencoded): missing key is 400', request: () => ({ method: 'POST', path: '/kv-form', headers: FORM_BODY, body: 'value=x' }) },
  {
    name: 'validator (form, multipart): valid',
    request: () => ({
      method: 'POST',
      path: '/kv-form',
      headers: MULTIPART,
      body: multipart(BOUNDARY, [
        { name: 'key', value: 'multi-key' },
        { name: 'value', value: 'multi value ✓' },
      ]),
    }),
  },
  { name: 'kv read of a form-written key', request: () => ({ method: 'GET', path: '/kv/multi-key' }) },
  { name: 'parseBody (urlencoded), repeated fields', request: () => ({ method: 'POST', path: '/form', headers: FORM_BODY, body: 'a=1&a=2&b=x%20y&empty=' }) },
  {
    name: 'parseBody (multipart) with a file',
    request: () => ({
      method: 'POST',
      path: '/form',
      headers: MULTIPART,
      body: multipart(BOUNDARY, [
        { name: 'title', value: 'report' },
        { name: 'upload', value: 'line one\nline two ✓\n', filename: 'notes.txt', type: 'text/plain' },
      ]),
    }),
  },
  { name: 'etag: a response with an ETag', request: () => ({ method: 'GET', path: '/etag/kv/alpha' }), keep: (node, ctx) => (ctx.etag = header(node, 'etag')) },
  { name: 'etag: If-None-Match answers 304', request: (ctx) => ({ method: 'GET', path: '/etag/kv/alpha', headers: { 'if-none-match': ctx.etag ?? '"none"' } }) },
  { name: 'etag: the value changes', request: () => ({ method: 'PUT', path: '/kv/alpha', body: 'uno' }) },
  { name: 'etag: a stale If-None-Match answers 200 with a new ETag', request: (ctx) => ({ method: 'GET', path: '/etag/kv/alpha', headers: { 'if-none-match': ctx.etag ?? '"none"' } }) },
  {
    name: 'cors: preflight',
    request: () => ({ method: 'OPTIONS', path: '/kv/alpha', headers: { origin: ORIGIN, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type' } }),
  },
  { name: 'cors: a simple request', request: () => ({ method: 'GET', path: '/kv/alpha', headers: { origin: ORIGIN } }) },
  {
    name: 'jwt: sign',
    request: () => ({ method: 'POST', path: '/auth/token', headers: JSON_BODY, body: JSON.stringify({ sub: 'ada', role: 'admin', iat: ISSUED_AT_S }) }),
    keep: (node, ctx) => (ctx.token = (JSON.parse(node.body) as { token?: string }).token),
  },
  { name: 'jwt: sign with a bad role is 400', request: () => ({ method: 'POST', path: '/auth/token', headers: JSON_BODY, body: JSON.stringify({ sub: 'ada', role: 'root' }) }) },
  { name: 'jwt: middleware accepts the token', request: (ctx) => ({ method: 'GET', path: '/auth/me', headers: { authorization: `Bearer ${ctx.token}` } }) },
  { name: 'jwt: middleware without a token is 401', request: () => ({ method: 'GET', path: '/auth/me' }) },
  { name: 'jwt: middleware refuses a forged token', request: (ctx) => ({ method: 'GET', path: '/auth/me', headers: { authorization: `Bearer ${forged(ctx.token ?? 'a.b.c')}` } }) },
  { name: 'jwt: verify accepts the token', request: (ctx) => ({ method: 'POST', path: '/auth/verify', headers: JSON_BODY, body: JSON.stringify({ token: ctx.token }) }) },
  { name: 'jwt: verify refuses a forged token', request: (ctx) => ({ method: 'POST', path: '/auth/verify', headers: JSON_BODY, body: JSON.stringify({ token: forged(ctx.token ?? 'a.b.c') }) }) },
  { name: 'basicAuth: right credentials', request: () => ({ method: 'GET', path: '/admin/stats', headers: basic(ENV.ADMIN_USER, ENV.ADMIN_PASSWORD) }) },
  { name: 'basicAuth: wrong password is 401', request: () => ({ method: 'GET', path: '/admin/stats', headers: basic(ENV.ADMIN_USER, 'guess') }) },
  { name: 'basicAuth: no credentials is 401', request: () => ({ method: 'GET', path: '/admin/stats' }) },
  { name: 'streamText', request: () => ({ method: 'GET', path: '/stream?n=4' }) },
  { name: 'streamText: bad n is 400 (HTTPException)', request: () => ({ method: 'GET', path: '/stream?n=-1' }) },
  { name: 'clock', request: () => ({ method: 'GET', path: '/clock' }), clockDependent: true },
  { name: 'a throwing route is 500 (onError)', request: () => ({ method: 'GET', path: '/boom' }) },
  { name: 'no route is 404 (notFound)', request: () => ({ method: 'GET', path: '/nowhere' }) },
];

describe('Hono app: ftjs run against plain Node, route by route', () => {
  const trace = path.join(tempDir(), 'hono.trace');
  const ctx: Context = {};
  let node: FtjsProcess & { url: string };
  let app: Fetcher;

  beforeAll(async () => {
    app = await importBundle(ENTRY);
    node = await startRun(ENTRY, { record: trace, env: ENV, processEnv: { TZ: 'UTC' } });
  });
  afterAll(async () => {
    await node?.stop();
  });

  for (const step of STEPS) {
    test(step.name, async () => {
      const route = step.request(ctx);
      const { ftjs, node: expected } = await both(node.url, app, ENV, route);
      step.keep?.(expected, ctx);
      if (step.clockDependent) {
        expect({ status: ftjs.status, headers: ftjs.headers }).toEqual({ status: expected.status, headers: expected.headers });
      } else {
        expect(ftjs).toEqual(expected);
      }
    });
  }

  test('the recording (TZ=UTC) replays under TZ=Pacific/Chatham and verifies; its guest error names the .ts line', async () => {
    await node.stop();
    const replay = await replayJson(trace, { TZ: 'Pacific/Chatham' });
    expect(replay.summary.divergence).toBeNull();
    expect(replay.summary.ok).toBe(true);
    expect(replay.code).toBe(0);
    expect(replay.summary.tasks).toBeGreaterThanOrEqual(STEPS.length + 1);
    const boom = replay.console.find((l) => l.text.includes('boom from a Hono route'));
    expect(boom?.text).toMatch(/guest-apps\/hono\/src\/index\.ts:\d+:\d+/);
  });
});

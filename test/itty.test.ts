// guest-apps/itty (itty-router from npm, bundled at boot) under `ftjs run` serves every route exactly
// as plain Node's `router.fetch(new Request(...))` on the same bundle; its recording (TZ=UTC) replays
// under TZ=Pacific/Chatham and verifies.

import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { both, type Fetcher, importBundle, type RouteRequest } from './guest-compare.js';
import { type FtjsProcess, replayJson, startRun, tempDir } from './helpers.js';

const ENTRY = 'guest-apps/itty/index.js';
const ORIGIN = 'https://app.example.com';
const JSON_BODY = { 'content-type': 'application/json' };

const ROUTES: Array<[name: string, route: RouteRequest]> = [
  ['index', { method: 'GET', path: '/' }],
  ['text with a path parameter', { method: 'GET', path: '/hello/w%C3%B6rld' }],
  ['empty list', { method: 'GET', path: '/todos' }],
  ['create', { method: 'POST', path: '/todos', headers: JSON_BODY, body: JSON.stringify({ title: '  write the loader ' }) }],
  ['create another', { method: 'POST', path: '/todos', headers: JSON_BODY, body: JSON.stringify({ title: 'test it' }) }],
  ['create without a title is 400', { method: 'POST', path: '/todos', headers: JSON_BODY, body: JSON.stringify({ nope: 1 }) }],
  ['read one', { method: 'GET', path: '/todos/1' }],
  ['patch', { method: 'PATCH', path: '/todos/1', headers: JSON_BODY, body: JSON.stringify({ done: true }) }],
  ['filtered list with a header', { method: 'GET', path: '/todos?done=true' }],
  ['delete', { method: 'DELETE', path: '/todos/2' }],
  ['deleted is 404', { method: 'GET', path: '/todos/2' }],
  ['kv write', { method: 'PUT', path: '/kv/greeting', body: 'hi there' }],
  ['kv read', { method: 'GET', path: '/kv/greeting' }],
  ['kv miss is 404', { method: 'GET', path: '/kv/nothing' }],
  ['cors preflight', { method: 'OPTIONS', path: '/todos', headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } }],
  ['cors on a response', { method: 'GET', path: '/todos', headers: { origin: ORIGIN } }],
  ['cors from another origin', { method: 'GET', path: '/todos/1', headers: { origin: 'https://evil.example' } }],
  ['a throwing route is 500', { method: 'GET', path: '/boom' }],
  ['no route is 404', { method: 'GET', path: '/nowhere' }],
];

describe('itty-router app: ftjs run against plain Node, route by route', () => {
  const trace = path.join(tempDir(), 'itty.trace');
  let node: FtjsProcess & { url: string };
  let app: Fetcher;

  beforeAll(async () => {
    app = await importBundle(ENTRY);
    node = await startRun(ENTRY, { record: trace, processEnv: { TZ: 'UTC' } });
  });
  afterAll(async () => {
    await node?.stop();
  });

  for (const [name, route] of ROUTES) {
    test(`${route.method} ${route.path}: ${name}`, async () => {
      const { ftjs, node: expected } = await both(node.url, app, {}, route);
      expect(ftjs).toEqual(expected);
    });
  }

  test('the recording (TZ=UTC) replays under TZ=Pacific/Chatham and verifies', async () => {
    await node.stop();
    const replay = await replayJson(trace, { TZ: 'Pacific/Chatham' });
    expect(replay.summary.divergence).toBeNull();
    expect(replay.summary.ok).toBe(true);
    expect(replay.code).toBe(0);
    // Boot plus one task per route.
    expect(replay.summary.tasks).toBeGreaterThanOrEqual(ROUTES.length + 1);
  });
});

// The front door's stop: a request in flight when the pair goes down gets its answer (502, the live
// node failed), not a reset connection; a retriable one stops waiting for a live node.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { Router } from '../dist/cli/router.js';
import { ProtectionWatch } from '../dist/cli/up-watch.js';
import { waitFor } from './helpers.js';

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('stop() lets a request whose node dies in flight get its 502, and stops waiting for a live node', async () => {
  // A node that is live, and holds /slow until the test kills it.
  const held: http.ServerResponse[] = [];
  const node = http.createServer((req, res) => {
    if (req.url === '/_ft/health') return void res.end('ok');
    held.push(res);
  });
  const nodeUrl = await listen(node);
  const router = new Router({ nodes: [{ name: 'primary', url: nodeUrl }], healthIntervalMs: 20, waitForLiveMs: 60_000, logger: pino({ level: 'silent' }) });
  const door = await listen(router.server);
  router.start();
  try {
    await waitFor(() => router.liveNode === 'primary', 'the door to find the live node');
    const unkeyed = fetch(`${door}/slow`);
    await waitFor(() => held.length === 1, 'the request to reach the node');

    const stopped = router.stop();
    held[0]!.socket!.destroy(); // the node dies with the request in flight
    node.closeAllConnections();
    const res = await unkeyed;
    expect(res.status).toBe(502);
    expect(await res.text()).toContain('the live node (primary) failed');
    await stopped;
    await expect(fetch(`${door}/`)).rejects.toThrow(); // no longer accepting
  } finally {
    node.close();
    node.closeAllConnections();
    await router.stop(0);
  }
});

test('a retriable request waiting for a live node is answered 503 once the door stops, not after --wait', async () => {
  const router = new Router({ nodes: [], healthIntervalMs: 20, waitForLiveMs: 60_000, logger: pino({ level: 'silent' }) });
  const door = await listen(router.server);
  router.start();
  const keyed = fetch(`${door}/kv/a`, { method: 'PUT', body: 'x', headers: { 'idempotency-key': 'k1' } });
  // The request is parked in the door (no node is live); stopping answers it within the drain. (A
  // connection accepted before its request was read is idle, and a stop closes it: wait for the request.)
  await waitFor(() => router.requestsInFlight === 1, 'the request to reach the door');
  await router.stop();
  const res = await keyed;
  expect(res.status).toBe(503);
  expect(await res.text()).toContain('the front door is stopping');
});

test('`up` counts the service as having served once the front door has found a live node, before its own status watch polls', async () => {
  // A node that dies right after the door found it live must not be taken for a pair that never
  // started (up stopped the whole service then: "the front door is stopping").
  const node = http.createServer((req, res) => void res.end(req.url === '/_ft/health' ? 'ok' : ''));
  const nodeUrl = await listen(node);
  const router = new Router({ nodes: [{ name: 'primary', url: nodeUrl }], healthIntervalMs: 20, waitForLiveMs: 1_000, logger: pino({ level: 'silent' }) });
  const watch = new ProtectionWatch({ logger: pino({ level: 'silent' }), adminToken: null, router });
  try {
    expect(watch.everLive).toBe(false);
    router.start();
    await waitFor(() => router.liveNode === 'primary', 'the door to find the live node');
    node.close();
    node.closeAllConnections();
    await waitFor(() => router.liveNode === null, 'the door to lose the node');
    expect(watch.everLive).toBe(true);
  } finally {
    node.close();
    await router.stop(0);
  }
});

// Exactly-once for clients: the Idempotency-Key table is replicated VM state, so a retry after a
// failover (to the other node) returns the original response instead of running again.

import { afterEach, expect, test } from 'vitest';
import { type PairProcesses, send, startPair, startRun, status, waitFor } from './helpers.js';

let pair: PairProcesses | null = null;
afterEach(async () => {
  await pair?.stop();
  pair = null;
});

/** Starts a request and returns once the node has run its task (it may still await a timer); not its response. */
async function runningAfter(url: string, start: () => Promise<Response>): Promise<{ response: Promise<Response> }> {
  const before = (await status(url)).tasks as number;
  const response = start();
  response.catch(() => {}); // a failing test stops the node under it: not an unhandled rejection too
  await waitFor(async () => ((await status(url)).tasks as number) > before, 'the request to start running');
  return { response }; // wrapped: an async function would otherwise wait for the response itself
}

test('a retry that arrives while the original is still running waits for it and gets the same response', async () => {
  const node = await startRun('guest-apps/timers.js');
  try {
    const headers = { 'idempotency-key': 'slow-1' };
    const [first, second] = await Promise.all([
      fetch(`${node.url}/delay?ms=300`, { headers }),
      new Promise<Response>((resolve) => setTimeout(() => resolve(fetch(`${node.url}/delay?ms=300`, { headers })), 50)),
    ]);
    const [a, b] = [await first.text(), await second.text()];
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(b).toBe(a);
    expect([first.headers.get('idempotent-replayed'), second.headers.get('idempotent-replayed')]).toEqual([null, 'true']);
  } finally {
    await node.stop();
  }
});

test('the key table is bounded by --idempotency-max-keys: the oldest finished key is forgotten first', async () => {
  const node = await startRun('guest-apps/kv.js', { args: ['--idempotency-max-keys', '2'] });
  try {
    const put = (key: string, value: string) => send(node.url, { method: 'PUT', path: '/kv/x', body: value, headers: { 'idempotency-key': key } });
    await put('k1', 'one');
    await put('k2', 'two');
    await put('k3', 'three'); // evicts k1
    const again = await fetch(`${node.url}/kv/x`, { method: 'PUT', body: 'two', headers: { 'idempotency-key': 'k2' } });
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const forgotten = await fetch(`${node.url}/kv/x`, { method: 'PUT', body: 'one', headers: { 'idempotency-key': 'k1' } });
    expect(forgotten.headers.get('idempotent-replayed')).toBeNull();
    expect(JSON.parse((await send(node.url, { method: 'GET', path: '/kv/x' })).body).value).toBe('one');
  } finally {
    await node.stop();
  }
});

test('a key still running at the head of the table does not block eviction: the oldest finished keys go, new keys are admitted', async () => {
  const node = await startRun('guest-apps/timers.js', { args: ['--idempotency-max-keys', '2'] });
  try {
    const keyed = (key: string, path: string) => fetch(`${node.url}${path}`, { headers: { 'idempotency-key': key } });
    // The oldest entry runs long (a 3 s timer); its waiters need it, so it must stay.
    const slow = await runningAfter(node.url, () => keyed('slow', '/delay?ms=3000'));
    expect((await keyed('a', '/delay?ms=0')).status).toBe(200);
    // The table is full (slow running, a finished): a, not slow, makes room for b.
    const b = await keyed('b', '/delay?ms=0');
    expect(b.status, await b.clone().text()).toBe(200);
    expect((await keyed('c', '/delay?ms=0')).status).toBe(200);
    // slow is still there: a retry waits for it and gets its response.
    const retry = await keyed('slow', '/delay?ms=3000');
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(await retry.text()).toBe(await (await slow.response).text());
    // a was dropped to make room for b (so it runs afresh); c is remembered.
    expect((await keyed('a', '/delay?ms=0')).headers.get('idempotent-replayed')).toBeNull();
    expect((await keyed('c', '/delay?ms=0')).headers.get('idempotent-replayed')).toBe('true');
  } finally {
    await node.stop();
  }
});

test('with every key in the table still running, a new key is refused with 503', async () => {
  const node = await startRun('guest-apps/timers.js', { args: ['--idempotency-max-keys', '2'] });
  try {
    const keyed = (key: string) => fetch(`${node.url}/delay?ms=1000`, { headers: { 'idempotency-key': key } });
    const running = [await runningAfter(node.url, () => keyed('r1')), await runningAfter(node.url, () => keyed('r2'))];
    const refused = await keyed('r3');
    expect(refused.status).toBe(503);
    expect(await refused.text()).toContain('--idempotency-max-keys=2');
    for (const r of await Promise.all(running.map((r) => r.response))) expect(r.status).toBe(200);
  } finally {
    await node.stop();
  }
});

test('--idempotency-ttl-ms: a key is replayed within its TTL and runs afresh after it', async () => {
  const node = await startRun('guest-apps/kv.js', { args: ['--idempotency-ttl-ms', '2000'] });
  try {
    const put = (value: string) => fetch(`${node.url}/kv/ttl`, { method: 'PUT', body: value, headers: { 'idempotency-key': 'ttl-1' } });
    expect((await put('v')).status).toBe(200);
    const within = await put('v');
    expect(within.headers.get('idempotent-replayed')).toBe('true');
    // Past the TTL (no other key arrives to evict it), the same key runs again as a new request.
    const fresh = await waitFor(
      async () => {
        const res = await put('v');
        return res.headers.get('idempotent-replayed') === null ? res : null;
      },
      'the key to expire',
      20_000,
      100,
    );
    expect(fresh.status).toBe(200);
    // ... and is remembered again from then on.
    expect((await put('v')).headers.get('idempotent-replayed')).toBe('true');
  } finally {
    await node.stop();
  }
});

test('go-live re-issues an outbound fetch that started on the dead primary; a keyed retry gets its result', async () => {
  // An upstream that holds its first answer until told to (the primary dies meanwhile).
  const { createServer } = await import('node:http');
  const seen: string[] = [];
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const upstream = createServer((req, res) => {
    seen.push(req.url ?? '');
    const answer = () => res.end(JSON.stringify({ answer: 42, attempt: seen.length }));
    if (seen.length === 1) void held.then(answer);
    else answer();
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
  try {
    pair = await startPair('guest-apps/outbound.js', {
      heartbeatTimeoutMs: 600,
      primaryArgs: ['--env', `UPSTREAM=${upstreamUrl}`, '--allow-fetch', '127.0.0.1'],
      backupArgs: ['--allow-fetch', '127.0.0.1'],
    });
    const { primary, backup } = pair;
    const headers = { 'idempotency-key': 'proxy-1' };
    const first = fetch(`${primary.url}/proxy?path=/slow`, { headers }).catch(() => null);
    await waitFor(() => seen.length === 1, 'the primary to start the outbound fetch');
    primary.child.kill('SIGKILL');
    await first; // the client's connection died with the primary
    await waitFor(async () => (await fetch(`${backup.url}/_ft/health`)).status === 200, 'the backup to go live');
    // The backup re-issued the fetch the log shows started and never completed.
    await waitFor(() => seen.length === 2, 'the re-issued fetch');
    expect(seen).toEqual(['/slow', '/slow']);
    const retry = await fetch(`${backup.url}/proxy?path=/slow`, { headers });
    expect(retry.status).toBe(200);
    const body = (await retry.json()) as { status: number; body: string };
    expect(body.status).toBe(200);
    expect(JSON.parse(body.body)).toEqual({ answer: 42, attempt: 2 });
  } finally {
    release();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  }
});

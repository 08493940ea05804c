// fetch honours AbortSignal end to end on `ftjs run`: an aborted signal sends nothing, an abort in
// flight rejects the guest's promise and cancels the real outbound request, AbortSignal.timeout fires
// through a recorded timer; FormData bodies cross the wire; and the recording replays exactly.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FtjsProcess, replayJson, send, startRun, tempDir, waitFor } from './helpers.js';

const APP = 'test/guests/platform-extras.js';
let upstream: http.Server;
let upstreamUrl = '';
const hangs: Array<{ url: string; closedEarly: boolean }> = [];
const echoes: Array<{ contentType: string; body: string }> = [];

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    if (req.url?.startsWith('/hang')) {
      const entry = { url: req.url, closedEarly: false };
      hangs.push(entry);
      // Never answered: the only way this request ends is the client going away.
      res.on('close', () => (entry.closedEarly = !res.writableEnded));
      return;
    }
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      echoes.push({ contentType: req.headers['content-type'] ?? '', body });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ contentType: req.headers['content-type'], body }));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});

afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

describe('fetch with an AbortSignal, on ftjs run, recorded and replayed', () => {
  let node: (FtjsProcess & { url: string }) | null = null;
  const trace = path.join(tempDir(), 'aborts.trace');
  afterAll(async () => {
    await node?.stop('SIGKILL');
  });

  it('serves, then replays under another time zone with the same outputs and state', async () => {
    node = await startRun(APP, { record: trace, env: { UPSTREAM: upstreamUrl }, processEnv: { TZ: 'UTC' }, args: ['--allow-fetch', '127.0.0.1'] });
    const get = async (p: string) => JSON.parse((await send(node!.url, { method: 'GET', path: p })).body);

    // Already aborted: rejected with the reason, nothing reaches the upstream.
    expect(await get('/pre-aborted')).toEqual({ ok: false, reason: 'stopped before it started' });
    // Aborted in the task that started it: the fetch never leaves either.
    expect(await get('/abort-same-task')).toEqual({ ok: false, name: 'Error', message: 'changed my mind' });
    expect(hangs.filter((h) => h.url === '/hang?pre' || h.url === '/hang?same-task')).toEqual([]);

    // An abort in flight (from another request's task, through AbortSignal.any), once the upstream
    // holds the request: the fetch rejects with an AbortError and the real request is cancelled.
    const held = get('/held?id=1');
    await waitFor(() => hangs.find((h) => h.url === '/hang?held'), 'the upstream to receive the held request');
    expect(await get('/abort?id=1')).toEqual({ aborted: true });
    expect(await held).toMatchObject({ ok: false, name: 'AbortError' });
    await waitFor(() => hangs.find((h) => h.url === '/hang?held')?.closedEarly, 'the upstream to see the aborted request cancelled');

    // AbortSignal.timeout: a TimeoutError after the delay (a recorded timer), and the real request is
    // cancelled. (1 s: time for the request to reach the upstream first, even on a loaded machine.)
    const timedOut = await get('/timeout?ms=1000');
    expect(timedOut).toMatchObject({ ok: false, name: 'TimeoutError', message: 'The operation was aborted due to timeout', waitedAtLeast: true });
    await waitFor(() => hangs.find((h) => h.url === '/hang?timeout')?.closedEarly, 'the upstream to see the timed-out request cancelled');

    // A signal that never fires does not disturb a fetch that completes.
    expect(await get('/completes')).toMatchObject({ ok: true, status: 200 });

    // A FormData body leaves as multipart with a boundary drawn from the recorded entropy.
    const upload = await get('/form-upload');
    const boundary = /boundary=(----formdata-ftjs-[0-9a-f]{24})$/.exec(upload.contentType)?.[1];
    expect(boundary).toBeTruthy();
    expect(upload.body).toBe(
      `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nftjs\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="h.txt"\r\nContent-Type: text/plain\r\n\r\nh\xc3\xa9llo\r\n--${boundary}--\r\n`,
    );

    // request.formData() on an inbound multipart request (sent by Node's own FormData).
    const fd = new FormData();
    fd.append('a', '1');
    fd.append('f', new Blob(['data']), 'd.bin');
    const parsed = await fetch(`${node.url}/parse`, { method: 'POST', body: fd });
    expect(await parsed.json()).toEqual([
      ['a', '1'],
      ['f', 'd.bin', 'application/octet-stream', 'data'],
    ]);
    const urlencoded = await fetch(`${node.url}/parse`, { method: 'POST', body: new URLSearchParams({ x: 'y z' }) });
    expect(await urlencoded.json()).toEqual([['x', 'y z']]);

    expect(await get('/platform')).toEqual({ ua: expect.stringMatching(/^ftjs\/\d+\.\d+\.\d+/), cores: 1, utf16: 'hi', w1252: '€é', pattern: '7' });

    await node.stop('SIGINT');
    expect(node.exitCode).toBe(0);
    const final = node.find((l) => l.msg === 'final state');
    const consoleLines = node.lines.filter((l) => l.guest === true).map((l) => l.msg);
    node = null;

    const replay = await replayJson(trace, { TZ: 'Pacific/Chatham' });
    expect(replay.summary.divergence).toBeNull();
    expect(replay.summary.ok).toBe(true);
    expect(replay.summary.finalStateHash).toBe(final?.stateHash);
    expect(replay.console.map((c) => c.text)).toEqual(consoleLines);
  }, 60_000);
});

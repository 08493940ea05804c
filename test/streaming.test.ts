// Streamed responses (issue 14, "Streaming"): a guest whose Response body is a ReadableStream fed by
// timers reaches the client progressively (HTTP chunked), from `ftjs run` and from a pair; each chunk
// is an output of the task that produced it and obeys the Output Rule (with the backup stopped, no
// chunk after the first held one leaves); the traces replay and verify. Real processes, real sockets.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { deflateRawSync, deflateSync, gunzipSync, gzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import { afterEach, describe, expect, test } from 'vitest';
import { type FtjsProcess, type PairProcesses, replayJson, startPair, startRun, status, tempDir, waitFor, waitInSync } from './helpers.js';

const GUEST = 'test/guests/streaming.js';

let run: (FtjsProcess & { url: string }) | null = null;
let pair: PairProcesses | null = null;
afterEach(async () => {
  await run?.stop('SIGKILL');
  run = null;
  await pair?.stop();
  pair = null;
});

interface Arrival<T> {
  value: T;
  /** When the client had the line (Date.now(), the same clock the guest's recorded clock reads live). */
  atMs: number;
}

/**
 * Reads until the body's text so far includes `wanted`. A body that ends first fails the test (a bare
 * `while (!text.includes(...)) text += (await reader.read()).value` spins forever on an ended stream).
 */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, wanted: string): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes(wanted)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the body ended before "${wanted}" arrived; it had: ${JSON.stringify(text)}`);
    text += decoder.decode(value, { stream: true });
  }
  return text;
}

/** Reads a streamed body line by line as it arrives; `onLine` sees each line the moment it is complete. */
async function readLines(res: Response, onLine?: (line: string, index: number) => void): Promise<Array<Arrival<string>>> {
  const lines: Array<Arrival<string>> = [];
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      lines.push({ value: line, atMs: Date.now() });
      onLine?.(line, lines.length - 1);
    }
  }
  return lines;
}

/**
 * Each chunk reached the client before the guest produced the one two after it (by the guest's recorded
 * clock): a body held back until the end fails this for every chunk. Two, not one: the client's own
 * reading can lag one 100 ms gap on a loaded 2-core machine (measured: up to 123 ms at load 18), and a
 * body held to its end still fails the looser check.
 */
function expectProgressive(arrivals: Array<Arrival<string>>, producedAt: (line: string) => number): void {
  expect(arrivals.length).toBeGreaterThanOrEqual(3);
  for (let i = 0; i + 2 < arrivals.length; i++) {
    expect(arrivals[i]!.atMs, `chunk ${i} arrived before chunk ${i + 2} was produced`).toBeLessThan(producedAt(arrivals[i + 2]!.value));
  }
}

const chunkTime = (line: string) => (JSON.parse(line) as { at: number }).at;
const textTime = (line: string) => Number(/ at (\d+)$/.exec(line)![1]);

describe('streamed responses from ftjs run', () => {
  test('5 chunks 100 ms apart (timers) arrive progressively, chunked; a Hono-style streamText too; the trace replays under another TZ', async () => {
    const trace = path.join(tempDir(), 'stream.trace');
    run = await startRun(GUEST, { record: trace });
    const res = await fetch(`${run.url}/stream?n=5&gap=100`);
    expect(res.status).toBe(200);
    expect(res.headers.get('transfer-encoding')).toBe('chunked');
    expect(res.headers.get('content-length')).toBeNull();
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = await readLines(res);
    expect(lines.map((l) => (JSON.parse(l.value) as { i: number }).i)).toEqual([0, 1, 2, 3, 4]);
    // Timers 100 ms apart on the guest's clock, and each chunk out before the next existed.
    for (let i = 1; i < 5; i++) expect(chunkTime(lines[i]!.value) - chunkTime(lines[i - 1]!.value)).toBeGreaterThanOrEqual(100);
    expectProgressive(lines, chunkTime);
    // eslint-disable-next-line no-console
    console.log(`[run] chunk produced -> at the client (ms): ${lines.map((l) => l.atMs - chunkTime(l.value)).join(', ')}`);

    // Hono's streamText: a TransformStream's readable as the body, writer.write() over time.
    const text = await fetch(`${run.url}/text?n=4&gap=100`);
    expect(text.headers.get('content-type')).toBe('text/plain; charset=UTF-8');
    expect(text.headers.get('x-content-type-options')).toBe('nosniff');
    const textLines = await readLines(text);
    expect(textLines.map((l) => l.value.replace(/ at \d+$/, ''))).toEqual(['line 0', 'line 1', 'line 2', 'line 3']);
    expectProgressive(textLines, textTime);

    await run.stop('SIGTERM');
    run = null;
    const replay = await replayJson(trace, { TZ: 'Pacific/Chatham' });
    expect(replay.summary.divergence).toBeNull();
    expect(replay.code).toBe(0);
    expect(replay.console.filter((c) => /^produced chunk \d$/.test(c.text)).length).toBe(5);
  });

  test('request bodies are streams, bodies pipe through TextDecoderStream and (De)CompressionStream, round trips with node:zlib', async () => {
    run = await startRun(GUEST);
    const echo = await (await fetch(`${run.url}/echo`, { method: 'POST', body: 'héllo, streamed body' })).json();
    expect(echo).toEqual({ sizes: ['[object Uint8Array]:21'], text: 'héllo, streamed body', used: true });

    const input = Buffer.from('compress me '.repeat(500));
    // Guest compresses, Node decompresses: the three formats.
    const gz = Buffer.from(await (await fetch(`${run.url}/gzip?format=gzip`, { method: 'POST', body: input })).arrayBuffer());
    expect(gz.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(gz.readUInt32LE(4)).toBe(0); // no time in the header: the output is a pure function of the input
    expect(gunzipSync(gz)).toEqual(input);
    const zl = Buffer.from(await (await fetch(`${run.url}/gzip?format=deflate`, { method: 'POST', body: input })).arrayBuffer());
    expect(inflateSync(zl)).toEqual(input);
    const raw = Buffer.from(await (await fetch(`${run.url}/gzip?format=deflate-raw`, { method: 'POST', body: input })).arrayBuffer());
    expect(inflateRawSync(raw)).toEqual(input);
    // Node compresses, the guest decompresses.
    for (const [format, data] of [
      ['gzip', gzipSync(input)],
      ['deflate', deflateSync(input)],
      ['deflate-raw', deflateRawSync(input)],
    ] as const) {
      const back = await fetch(`${run.url}/gunzip?format=${format}`, { method: 'POST', body: data });
      expect(Buffer.from(await back.arrayBuffer()), format).toEqual(input);
    }
    // Corrupt input: the stream errors, the response is cut off (the client's read fails).
    const bad = await fetch(`${run.url}/gunzip?format=gzip`, { method: 'POST', body: gzipSync(input).subarray(0, 40) });
    await expect(bad.arrayBuffer()).rejects.toThrow();
    await run.waitForLog((l) => /Uncaught \(response stream\) TypeError: DecompressionStream/.test(l.msg), 'the guest error for the truncated gzip');

    expect(await (await fetch(`${run.url}/blob`)).text()).toBe('from a blob');
    const plain = await fetch(`${run.url}/plain`);
    expect(plain.headers.get('content-length')).toBe('10');
    expect(await plain.text()).toBe('plain body');
  });

  test('an outbound fetch with a stream body sends it whole; an upstream body passed on untouched goes out whole, not chunked', async () => {
    const received: string[] = [];
    const upstream = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (c: string) => (body += c));
      req.on('end', () => {
        received.push(body);
        res.writeHead(201, { 'content-type': 'text/x-echo' }).end(`echo: ${body}`);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    try {
      run = await startRun(GUEST, { args: ['--allow-fetch', '127.0.0.1'] });
      const to = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`;
      const res = await fetch(`${run.url}/proxy?to=${encodeURIComponent(to)}`);
      expect(received).toEqual(['streamed upstream body']);
      expect(res.status).toBe(201);
      expect(res.headers.get('content-type')).toBe('text/x-echo');
      expect(res.headers.get('content-length')).toBe(String('echo: streamed upstream body'.length));
      expect(await res.text()).toBe('echo: streamed upstream body');
    } finally {
      upstream.close();
    }
  });

  test('a stream that fails cuts the response off; non-byte chunks are a named error; the limits hold, with their flags', async () => {
    run = await startRun(GUEST, { args: ['--max-streamed-response-bytes', '20000', '--max-open-streams', '1'] });
    const failing = await fetch(`${run.url}/fail`);
    expect(failing.status).toBe(200);
    const seen: string[] = [];
    await expect(readLines(failing, (line) => seen.push(line))).rejects.toThrow();
    expect(seen).toEqual(['part', 'part']);
    await run.waitForLog((l) => /Uncaught \(response stream\) Error: the source broke/.test(l.msg), 'the stream error in the log');

    const strings = await fetch(`${run.url}/strings`);
    await expect(strings.text()).rejects.toThrow();
    await run.waitForLog((l) => /must give Uint8Array chunks, got string/.test(l.msg), 'the chunk type error');

    // Past --max-streamed-response-bytes the response is cut off and the guest's stream cancelled.
    const endless = await fetch(`${run.url}/endless`);
    await expect(endless.arrayBuffer()).rejects.toThrow();
    await run.waitForLog((l) => /passed the limit of 20000 bytes \(--max-streamed-response-bytes\)/.test(l.msg), 'the limit error');

    // One stream open at a time: a second gets 503 naming the flag; once the first ends, streams work again.
    const first = await fetch(`${run.url}/hold`);
    const reader = first.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('open\n');
    const second = await fetch(`${run.url}/hold`);
    expect(second.status).toBe(503);
    expect(await second.text()).toContain('--max-open-streams');
    expect(await (await fetch(`${run.url}/release`)).text()).toBe('released');
    expect((await reader.read()).done).toBe(true);
    const lines = await readLines(await fetch(`${run.url}/stream?n=2&gap=1`));
    expect(lines.length).toBe(2);
  });

  test("a client that goes away cancels the guest's stream by a recorded event: its slot is free again, and the trace replays", async () => {
    const trace = path.join(tempDir(), 'cancel.trace');
    run = await startRun(GUEST, { record: trace, args: ['--max-open-streams', '1'] });
    const abort = new AbortController();
    const res = await fetch(`${run.url}/ticks?gap=20`, { signal: abort.signal });
    const reader = res.body!.getReader();
    await readUntil(reader, 'tick 2');
    abort.abort();
    const line = await run.waitForLog((l) => /^ticks cancelled after \d+: AbortError: the client closed the connection$/.test(l.msg), 'the guest to see the cancel');
    // The one stream slot is free again.
    const again = await fetch(`${run.url}/stream?n=2&gap=1`);
    expect(again.status).toBe(200);
    expect((await readLines(again)).length).toBe(2);
    await run.stop('SIGTERM');
    run = null;
    const replay = await replayJson(trace, { TZ: 'Pacific/Chatham' });
    expect(replay.summary.divergence).toBeNull();
    expect(replay.code).toBe(0);
    expect(replay.console.some((c) => c.text === line.msg)).toBe(true);
  });

  test('an Idempotency-Key request with a streamed body: the retry gets the whole stored body', async () => {
    run = await startRun(GUEST);
    const headers = { 'idempotency-key': 'stream-once' };
    const first = await fetch(`${run.url}/stream?n=3&gap=20`, { headers });
    const firstLines = (await readLines(first)).map((l) => l.value);
    expect(firstLines.length).toBe(3);
    const retry = await fetch(`${run.url}/stream?n=3&gap=20`, { headers });
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect((await retry.text()).split('\n').filter(Boolean)).toEqual(firstLines);
    // The guest ran once: three chunks produced, not six.
    expect(run.lines.filter((l) => /^produced chunk \d$/.test(l.msg)).length).toBe(3);
  });
});

describe('streamed responses from a pair', () => {
  test('5 chunks 100 ms apart arrive progressively through the Output Rule; both traces replay', async () => {
    const dir = tempDir();
    const primaryTrace = path.join(dir, 'primary.trace');
    pair = await startPair(GUEST, { primaryArgs: ['--trace', primaryTrace] });
    const res = await fetch(`${pair.primary.url}/stream?n=5&gap=100`);
    expect(res.headers.get('transfer-encoding')).toBe('chunked');
    const lines = await readLines(res);
    expect(lines.map((l) => (JSON.parse(l.value) as { i: number }).i)).toEqual([0, 1, 2, 3, 4]);
    expectProgressive(lines, chunkTime);
    // eslint-disable-next-line no-console
    console.log(`[pair] chunk produced -> at the client (ms): ${lines.map((l) => l.atMs - chunkTime(l.value)).join(', ')}`);
    const textLines = await readLines(await fetch(`${pair.primary.url}/text?n=3&gap=100`));
    expect(textLines.length).toBe(3);
    expectProgressive(textLines, textTime);
    await waitInSync(pair.primary.url, pair.backup.url);
    expect((await status(pair.backup.url)).divergence).toBeNull();
    await pair.primary.stop('SIGTERM');
    const replay = await replayJson(primaryTrace, { TZ: 'Pacific/Chatham' });
    expect(replay.summary.divergence).toBeNull();
    expect(replay.code).toBe(0);
  });

  test("a backup that takes over mid-stream cancels the stream (its client was the dead primary's) by a recorded event", async () => {
    // The limits travel in the boot config: the backup runs with the primary's --max-open-streams.
    pair = await startPair(GUEST, { primaryArgs: ['--max-open-streams', '1'] });
    const { primary, backup } = pair;
    const res = await fetch(`${primary.url}/ticks?gap=50`);
    const reader = res.body!.getReader();
    await readUntil(reader, 'tick 2');
    // The backup has replayed the stream's start: it holds an open stream in its VM.
    await waitFor(async () => ((await status(backup.url)).replayedSeq as number) >= ((await status(primary.url)).seq as number) - 2, 'the backup to replay the stream');
    primary.child.kill('SIGKILL');
    await reader.read().catch(() => null); // the client's connection died with the primary
    await waitFor(async () => (await fetch(`${backup.url}/_ft/health`)).status === 200, 'the backup to go live');
    await backup.waitForLog((l) => /^ticks cancelled after \d+: AbortError: the client closed the connection$/.test(l.msg), 'the new live node to cancel the orphaned stream');
    // Its one stream slot is free for new clients.
    const lines = await readLines(await fetch(`${backup.url}/stream?n=2&gap=1`));
    expect(lines.length).toBe(2);
  });

  test('with the backup stopped, no chunk after the first held one leaves; after SIGCONT the rest arrive, in order', async () => {
    // Lag control would stop running tasks (timers too) once the lag passes --max-lag-ms: set it past the test.
    pair = await startPair(GUEST, { heartbeatMs: 200, heartbeatTimeoutMs: 10_000, primaryArgs: ['--max-lag-ms', '8000'] });
    const { primary, backup } = pair;
    await waitInSync(primary.url, backup.url);
    let stoppedAt = Infinity;
    let resumedAt = Infinity;
    const res = await fetch(`${primary.url}/stream?n=5&gap=300`);
    // The head and chunk 0 come from the request's own task and leave once the running backup acks it;
    // the backup is stopped the moment chunk 0 is here, long before the timer produces chunk 1.
    const reading = readLines(res, (_line, index) => {
      if (index === 0) {
        backup.child.kill('SIGSTOP');
        stoppedAt = Date.now();
      }
    });
    await waitFor(() => stoppedAt < Infinity, 'chunk 0 to arrive');
    // Chunks 1..4 and the end are produced while the backup is stopped (execution never waits) and held.
    await primary.waitForLog((l) => l.msg === 'produced chunk 4', 'the guest to produce chunk 4', 10_000);
    await waitFor(async () => ((await status(primary.url)).heldOutputs as number) >= 5, 'chunks 1..4 and the end held on the primary');
    const producedWhileStopped = primary.lines.filter((l) => /^produced chunk [1-4]$/.test(l.msg)).length;
    expect(producedWhileStopped).toBe(4);

    resumedAt = Date.now();
    backup.child.kill('SIGCONT');
    const lines = await reading;
    expect(lines.map((l) => (JSON.parse(l.value) as { i: number }).i)).toEqual([0, 1, 2, 3, 4]);
    expect(lines[0]!.atMs).toBeLessThanOrEqual(stoppedAt);
    for (const later of lines.slice(1)) {
      // Produced while the backup was stopped, and out only once it could acknowledge.
      expect(chunkTime(later.value)).toBeLessThan(resumedAt);
      expect(later.atMs).toBeGreaterThanOrEqual(resumedAt);
    }
    expect((await status(primary.url)).heldOutputs).toBe(0);
    await waitInSync(primary.url, backup.url);
    expect((await status(backup.url)).divergence).toBeNull();
  });
});

// The TaskEnd hash is in every trace: hashing a task's framed bytes in one call (issue 19) must give
// exactly the bytes the streaming form gave, for any output, header, body and console line, or old
// traces would stop replaying. The reference below is the streaming form as it was, written out here.

import { createHash } from 'node:crypto';
import { expect, test } from 'vitest';
import { type HashedOutput, taskHash, taskHashStreaming } from '../dist/logging-channel/task-outputs.js';

function metaOf(o: HashedOutput): string {
  switch (o.kind) {
    case 'response':
    case 'head':
      return JSON.stringify([o.kind, o.requestId, o.status, o.statusText, o.headers]);
    case 'fetch':
      return JSON.stringify(['fetch', o.fetchId, o.method, o.url, o.headers]);
    case 'chunk':
      return JSON.stringify(['chunk', o.requestId]);
    case 'end':
      return JSON.stringify(['end', o.requestId, o.error]);
  }
}

function reference(outputs: readonly HashedOutput[], consoleLines: ReadonlyArray<{ level: string; text: string }>): Uint8Array {
  const h = createHash('sha256');
  for (const o of outputs) {
    const meta = metaOf(o);
    h.update(`${meta.length}:${meta}${o.body.byteLength}:`);
    h.update(o.body);
  }
  for (const line of consoleLines) h.update(`console:${line.level}:${line.text.length}:${line.text}`);
  return new Uint8Array(h.digest().subarray(0, 16));
}

/** A small deterministic PRNG (mulberry32): the cases are the same on every run. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ASCII, JSON escapes, 2-, 3- and 4-byte UTF-8, and lone surrogates (which a guest can produce).
const PIECES = ['a', 'Z', '0', ' ', '"', '\\', '\n', '\u0001', 'é', 'ü', '€', '中', '😀', '\ud800', '\udfff', 'x\ud83dy'];

function text(rand: () => number, maxUnits: number): string {
  let s = '';
  const n = Math.floor(rand() * maxUnits);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(rand() * PIECES.length)]!;
  return s;
}

function body(rand: () => number, maxBytes: number): Uint8Array {
  const b = new Uint8Array(Math.floor(rand() * maxBytes));
  for (let i = 0; i < b.byteLength; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

function headers(rand: () => number): Array<[string, string]> {
  return Array.from({ length: Math.floor(rand() * 4) }, () => [text(rand, 12), text(rand, 30)] as [string, string]);
}

function output(rand: () => number, maxBody: number): HashedOutput {
  const id = Math.floor(rand() * 2 ** 40);
  switch (Math.floor(rand() * 5)) {
    case 0:
      return { kind: 'response', requestId: id, status: 200 + Math.floor(rand() * 400), statusText: text(rand, 8), headers: headers(rand), body: body(rand, maxBody) };
    case 1:
      return { kind: 'head', requestId: id, status: 200, statusText: text(rand, 8), headers: headers(rand), body: new Uint8Array(0) };
    case 2:
      return { kind: 'fetch', fetchId: id, method: text(rand, 6), url: `https://example.com/${text(rand, 40)}`, headers: headers(rand), body: body(rand, maxBody) };
    case 3:
      return { kind: 'chunk', requestId: id, body: body(rand, maxBody) };
    default:
      return { kind: 'end', requestId: id, error: rand() < 0.5 ? null : text(rand, 20), body: new Uint8Array(0) };
  }
}

test('one-shot task hash = the streaming form, over 2,000 random tasks with any text and bodies', () => {
  const rand = prng(19);
  for (let i = 0; i < 2000; i++) {
    const outputs = Array.from({ length: Math.floor(rand() * 4) }, () => output(rand, 300));
    const lines = Array.from({ length: Math.floor(rand() * 3) }, () => ({ level: ['log', 'warn', 'error'][Math.floor(rand() * 3)]!, text: text(rand, 60) }));
    const want = reference(outputs, lines);
    expect(taskHash(outputs, lines), `task ${i}`).toEqual(want);
    expect(new Uint8Array(taskHashStreaming(outputs, lines).subarray(0, 16)), `task ${i}`).toEqual(want);
  }
});

test('a task too large for the scratch buffer is hashed streaming, to the same bytes; the next small one still one-shot', () => {
  const rand = prng(7);
  const big: HashedOutput = { kind: 'response', requestId: 1, status: 200, statusText: 'OK', headers: [['content-type', 'application/octet-stream']], body: body(rand, 1) };
  const large = new Uint8Array(600 * 1024);
  for (let i = 0; i < large.byteLength; i += 997) large[i] = i & 0xff;
  const cases: Array<[HashedOutput[], Array<{ level: string; text: string }>]> = [
    [[{ ...big, body: large }], []],
    [[big], [{ level: 'log', text: '😀'.repeat(100_000) }]], // 200,000 units: past the cap counted as 3 bytes each
    [[big, { kind: 'chunk', requestId: 1, body: large.subarray(0, 200 * 1024) }], [{ level: 'log', text: 'x'.repeat(80_000) }]],
    [[big], [{ level: 'log', text: 'small again' }]],
  ];
  for (const [outputs, lines] of cases) expect(taskHash(outputs, lines)).toEqual(reference(outputs, lines));
});

test('the hash is a fresh 16-byte array each time (the scratch buffer is reused, never handed out)', () => {
  const o: HashedOutput[] = [{ kind: 'chunk', requestId: 1, body: new Uint8Array([1, 2, 3]) }];
  const a = taskHash(o, []);
  const b = taskHash([{ kind: 'chunk', requestId: 2, body: new Uint8Array([4]) }], []);
  expect(a.byteLength).toBe(16);
  expect(a.buffer.byteLength).toBe(16);
  expect(a).toEqual(reference(o, []));
  expect(b).not.toEqual(a);
});

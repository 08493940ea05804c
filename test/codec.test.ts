// Codec tests: the byte writer/reader, every payload codec, and the batch codec's round trips and
// rejection paths. They run against the compiled output (build first: npx tsc -p tsconfig.json).

import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ByteReader, ByteWriter, CodecError, MAX_VARUINT, varuintSize } from '../dist/logging-channel/bytes.js';
import {
  BATCH_MAGIC,
  decodeBatch,
  decodeClockReading,
  decodeEpochMark,
  decodeFetchResultEvent,
  decodePayload,
  decodeRequestEvent,
  decodeTaskEnd,
  decodeTimerEvent,
  encodeBatch,
  encodeBatchInto,
  encodeClockReading,
  encodeEpochMark,
  encodeFetchResultEvent,
  encodeRequestEvent,
  encodeTaskEnd,
  encodeTimerEvent,
  MAX_BATCH_BYTES,
  MAX_CLOCK_READ_INDEX,
  MIN_BATCH_BYTES,
  readBatchHeader,
} from '../dist/logging-channel/codec.js';
import { type Entry, Kind, type KindCode, type RequestEvent } from '../dist/logging-channel/entry.js';

const enc = new TextEncoder();

function expectCodecError(fn: () => unknown, pattern?: RegExp): CodecError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a CodecError').toBeInstanceOf(CodecError);
  if (pattern !== undefined) expect((caught as Error).message).toMatch(pattern);
  return caught as CodecError;
}

function hash16(seed: number): Uint8Array {
  return Uint8Array.from({ length: 16 }, (_, i) => (seed * 31 + i * 7) & 0xff);
}

function allBytes(): Uint8Array {
  return Uint8Array.from({ length: 256 }, (_, i) => i);
}

/** Plain copies so toEqual compares values, not views into a shared buffer. */
function plain(entries: Entry[]): Array<{ seq: number; pos: number; kind: number; payload: string }> {
  return entries.map((e) => ({ seq: e.seq, pos: e.pos, kind: e.kind, payload: Buffer.from(e.payload).toString('hex') }));
}

describe('ByteWriter / ByteReader', () => {
  const varuints = [0, 1, 127, 128, 255, 16383, 16384, 2 ** 21 - 1, 2 ** 21, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35 + 12345, 2 ** 49 - 1, 2 ** 52, MAX_VARUINT - 1, MAX_VARUINT];

  it('round-trips varuints across every size boundary, canonically', () => {
    const w = new ByteWriter(4);
    for (const v of varuints) w.varuint(v);
    const bytes = w.finish();
    expect(bytes.byteLength).toBe(varuints.reduce((n, v) => n + varuintSize(v), 0));
    const r = new ByteReader(bytes);
    for (const v of varuints) expect(r.varuint()).toBe(v);
    r.expectEnd();
    expect(varuintSize(MAX_VARUINT)).toBe(8);
    expect(varuintSize(127)).toBe(1);
    expect(varuintSize(128)).toBe(2);
  });

  it('encodes LEB128 exactly (spot checks)', () => {
    const w = new ByteWriter();
    w.varuint(300);
    w.varuint(2 ** 32);
    expect([...w.finish()]).toEqual([0xac, 0x02, 0x80, 0x80, 0x80, 0x80, 0x10]);
  });

  it('rejects varuints it cannot encode', () => {
    const w = new ByteWriter();
    for (const bad of [-1, 1.5, MAX_VARUINT + 1, 2 ** 60, NaN, Infinity]) {
      expectCodecError(() => w.varuint(bad, 'thing'), /cannot encode thing/);
    }
    expect(w.length).toBe(0);
  });

  it('rejects malformed varuints with what and where', () => {
    expectCodecError(() => new ByteReader(Uint8Array.of(0x80, 0x00)).varuint(), /non-canonical/);
    const skipOne = new ByteReader(Uint8Array.of(5, 0x80, 0x00));
    skipOne.u8();
    expect(expectCodecError(() => skipOne.varuint('count'), /non-canonical varuint count at byte 1/).offset).toBe(1);
    expectCodecError(() => new ByteReader(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)).varuint('x'), /exceeds 2\^53-1 at byte 0/);
    expectCodecError(() => new ByteReader(new Uint8Array(9).fill(0x81)).varuint('x'), /longer than 8 bytes/);
    expectCodecError(() => new ByteReader(Uint8Array.of(0x81, 0x81), 0, 2, 'ctx').varuint('len'), /^ctx: truncated: varuint len runs past the end at byte 0$/);
  });

  it('reads every string as the UTF-8 decoder does: ASCII of any length, at any offset, and non-ASCII; invalid UTF-8 refused', () => {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const texts: string[] = [];
    for (const n of [0, 1, 31, 32, 33, 100, 255, 256, 257, 1000]) {
      const ascii = Array.from({ length: n }, (_, i) => String.fromCharCode(32 + ((i * 7) % 95))).join('');
      texts.push(ascii, `${ascii}é`, `é${ascii}`, `${ascii.slice(0, n >> 1)}\u007f😀${ascii.slice(n >> 1)}`, ascii.replace(/./g, '\u0001'));
    }
    const w = new ByteWriter();
    w.u8(0xaa); // so that every string starts at an odd offset
    for (const t of texts) w.str(t);
    const bytes = w.finish();
    // A view into a larger buffer: offsets are the view's own.
    const padded = new Uint8Array(bytes.byteLength + 10);
    padded.set(bytes, 5);
    for (const input of [bytes, padded.subarray(5, 5 + bytes.byteLength)]) {
      const r = new ByteReader(input);
      r.u8();
      for (const t of texts) {
        const s = r.str('text');
        expect(s).toBe(t);
        expect(s).toBe(decoder.decode(new TextEncoder().encode(t)));
      }
      r.expectEnd();
    }
    for (const bad of [Uint8Array.of(2, 0x41, 0x80), Uint8Array.of(1, 0xff), Uint8Array.of(3, 0x41, 0xc3, 0x28)]) expectCodecError(() => new ByteReader(bad).str('name'), /name is not valid UTF-8/);
  });

  it('bounds-checks every fixed-size read and names it', () => {
    const bytes = Uint8Array.of(1, 2, 3);
    expectCodecError(() => new ByteReader(bytes, 3).u8('kind'), /kind needs 1 bytes, only 0 left at byte 3/);
    expectCodecError(() => new ByteReader(bytes).u32('crc'), /crc needs 4 bytes, only 3 left at byte 0/);
    expectCodecError(() => new ByteReader(bytes).f64('time'), /time needs 8 bytes/);
    expectCodecError(() => new ByteReader(bytes).raw(4, 'hash'), /hash needs 4 bytes/);
    expectCodecError(() => new ByteReader(Uint8Array.of(9, 1, 2)).bytes('body'), /body declares 9 bytes, only 2 left at byte 0/);
    // The end bound is honoured even when the buffer goes on.
    expectCodecError(() => new ByteReader(Uint8Array.of(1, 2, 3, 4, 5), 0, 2).u32('x'), /only 2 left/);
  });

  it('round-trips u8, u32, f64, bytes, raw, and strings', () => {
    const w = new ByteWriter(1);
    const floats = [0, -0, 1.5, -1e300, Number.MIN_VALUE, Infinity, -Infinity, NaN, Math.PI];
    w.u8(0);
    w.u8(255);
    w.u32(0);
    w.u32(0xffffffff);
    for (const f of floats) w.f64(f);
    w.bytes(new Uint8Array(0));
    w.bytes(allBytes());
    w.raw(Uint8Array.of(9, 8));
    const strings = ['', 'GET', 'héllo wörld', '日本語', '🎉 emoji 👍🏽', '\u0000nul', '\uFEFFbom first', 'x'.repeat(1000)];
    for (const s of strings) w.str(s);
    const r = new ByteReader(w.finish());
    expect(r.u8()).toBe(0);
    expect(r.u8()).toBe(255);
    expect(r.u32()).toBe(0);
    expect(r.u32()).toBe(0xffffffff);
    for (const f of floats) expect(Object.is(r.f64(), f)).toBe(true);
    expect(r.bytes().byteLength).toBe(0);
    expect([...r.bytes()]).toEqual([...allBytes()]);
    expect([...r.raw(2)]).toEqual([9, 8]);
    for (const s of strings) expect(r.str()).toBe(s);
    r.expectEnd();
  });

  it('rejects lone surrogates on encode and invalid UTF-8 on decode', () => {
    const w = new ByteWriter();
    expectCodecError(() => w.str('a\uD800b', 'url'), /cannot encode url: lone surrogate U\+D800 at index 1/);
    expectCodecError(() => w.str('\uDC00', 'url'), /lone surrogate/);
    expectCodecError(() => w.str('end\uD83D', 'url'), /lone surrogate/);
    expect(w.length).toBe(0);
    expectCodecError(() => new ByteReader(Uint8Array.of(2, 0xc3, 0x28)).str('name'), /name is not valid UTF-8 at byte 0/);
    expectCodecError(() => new ByteReader(Uint8Array.of(1, 0xff)).str('name'), /not valid UTF-8/);
    // Long invalid strings take the decoder path rather than the ASCII fast path.
    const long = new Uint8Array(41).fill(0x61);
    long[0] = 40;
    long[40] = 0x80;
    expectCodecError(() => new ByteReader(long).str('value'), /not valid UTF-8/);
  });

  it('rejects bad u8/u32 values', () => {
    const w = new ByteWriter();
    expectCodecError(() => w.u8(256), /not a u8/);
    expectCodecError(() => w.u8(-1), /not a u8/);
    expectCodecError(() => w.u32(2 ** 32), /not a u32/);
    expectCodecError(() => w.u32(1.5), /not a u32/);
  });

  it('finish() returns a copy; view() aliases; the buffer is reused after reset()', () => {
    const w = new ByteWriter(8);
    w.raw(Uint8Array.of(1, 2, 3));
    const copy = w.finish();
    const view = w.view();
    w.reset();
    w.raw(Uint8Array.of(7, 7, 7));
    expect([...copy]).toEqual([1, 2, 3]);
    expect([...view]).toEqual([7, 7, 7]);
    const capacity = w.capacity;
    for (let i = 0; i < 10; i++) {
      w.reset();
      w.raw(new Uint8Array(8));
    }
    expect(w.capacity).toBe(capacity);
  });

  it('grows across many small writes without losing data', () => {
    const w = new ByteWriter(1);
    for (let i = 0; i < 100_000; i++) w.varuint(i * 977);
    const r = new ByteReader(w.finish());
    let mismatches = 0;
    for (let i = 0; i < 100_000; i++) if (r.varuint() !== i * 977) mismatches++;
    expect(mismatches).toBe(0);
    r.expectEnd();
  });

  it('patches reserved space', () => {
    const w = new ByteWriter();
    const at = w.skip(5);
    w.u8(42);
    w.setU32At(at, 0xdeadbeef);
    expect(w.setVaruintAt(at + 4, 5)).toBe(1);
    expect(() => w.setU32At(4, 1)).toThrow(RangeError);
    const r = new ByteReader(w.finish());
    expect(r.u32()).toBe(0xdeadbeef);
    expect(r.u8()).toBe(5);
    expect(r.u8()).toBe(42);
  });
});

describe('payload codecs', () => {
  const requests: RequestEvent[] = [
    {
      requestId: 1,
      method: 'GET',
      url: '/kv/key',
      headers: [
        ['host', 'localhost:8080'],
        ['accept', '*/*'],
      ],
      body: new Uint8Array(0),
    },
    { requestId: 0, method: 'PROPFIND', url: '', headers: [], body: allBytes() },
    {
      requestId: MAX_VARUINT,
      method: 'get',
      url: '/ünïcödé/路径?q=🎉',
      headers: [
        ['x-émoji', 'v👍'],
        ['HOST', 'Upper'],
        ['host', ''],
        ['host', 'dup'],
      ],
      body: enc.encode('{"a":1}'),
    },
    { requestId: 77, method: 'PUT', url: 'http://example.com/' + 'a'.repeat(5000), headers: [['content-type', 'application/octet-stream']], body: new Uint8Array(200_000).fill(0xab) },
  ];

  it('Request round-trips (tabled and literal methods/header names, unicode, binary and empty bodies)', () => {
    for (const request of requests) {
      const decoded = decodeRequestEvent(encodeRequestEvent(request));
      expect({ ...decoded, body: [...decoded.body] }).toEqual({ ...request, body: [...request.body] });
    }
  });

  it('Timer round-trips', () => {
    for (const timerId of [0, 1, 300, MAX_VARUINT]) expect(decodeTimerEvent(encodeTimerEvent({ timerId }))).toEqual({ timerId });
  });

  it('FetchResult round-trips responses and errors', () => {
    const cases = [
      {
        fetchId: 1,
        error: null,
        status: 200,
        statusText: 'OK',
        headers: [
          ['content-type', 'text/plain'],
          ['x-custom', 'ü'],
        ] as Array<[string, string]>,
        body: enc.encode('hello'),
      },
      { fetchId: 0, error: null, status: 0, statusText: '', headers: [], body: new Uint8Array(0) },
      { fetchId: MAX_VARUINT, error: null, status: 999, statusText: 'Weird 🎉', headers: [], body: allBytes() },
      { fetchId: 5, error: 'network error: ECONNREFUSED 127.0.0.1:9', status: 0, statusText: '', headers: [], body: new Uint8Array(0) },
      { fetchId: 6, error: '', status: 0, statusText: '', headers: [], body: new Uint8Array(0) },
    ];
    for (const c of cases) {
      const d = decodeFetchResultEvent(encodeFetchResultEvent(c));
      expect({ ...d, body: [...d.body] }).toEqual({ ...c, body: [...c.body] });
    }
  });

  it('FetchResult refuses an error with non-empty fields and bad statuses', () => {
    expectCodecError(() => encodeFetchResultEvent({ fetchId: 1, error: 'x', status: 500, statusText: '', headers: [], body: new Uint8Array(0) }), /error result must have status 0/);
    expectCodecError(() => encodeFetchResultEvent({ fetchId: 1, error: null, status: 1000, statusText: '', headers: [], body: new Uint8Array(0) }), /status 1000/);
    // outcome byte 2
    expectCodecError(() => decodeFetchResultEvent(Uint8Array.of(1, 2)), /^FetchResult payload: unknown outcome 2 at byte 1$/);
    // status 1000 = varuint e8 07
    expectCodecError(() => decodeFetchResultEvent(Uint8Array.of(1, 0, 0xe8, 0x07, 0, 0, 0)), /status 1000 is not in 0..999 at byte 2/);
  });

  it('Clock round-trips integers compactly and everything else exactly', () => {
    const times = [0, 1, Date.now(), 1_700_000_000_000, MAX_VARUINT, 1234.5678, 0.1, -5, -0, NaN, Infinity, -Infinity, 2 ** 60];
    for (const readIndex of [0, 1, 63, 64, 1_000_000, MAX_CLOCK_READ_INDEX]) {
      for (const timeMs of times) {
        const d = decodeClockReading(encodeClockReading({ readIndex, timeMs }));
        expect(d.readIndex).toBe(readIndex);
        expect(Object.is(d.timeMs, timeMs)).toBe(true);
      }
    }
    expect(encodeClockReading({ readIndex: 5, timeMs: 1_700_000_000_000 }).byteLength).toBe(7);
    expect(encodeClockReading({ readIndex: 5, timeMs: 1234.5 }).byteLength).toBe(9);
    expectCodecError(() => encodeClockReading({ readIndex: MAX_CLOCK_READ_INDEX + 1, timeMs: 0 }), /readIndex/);
    expectCodecError(() => encodeClockReading({ readIndex: -1, timeMs: 0 }), /readIndex/);
  });

  it('TaskEnd round-trips and insists on a 16-byte hash', () => {
    for (const outputCount of [0, 1, 1000, MAX_VARUINT]) {
      const d = decodeTaskEnd(encodeTaskEnd({ outputCount, hash: hash16(outputCount % 100) }));
      expect(d.outputCount).toBe(outputCount);
      expect([...d.hash]).toEqual([...hash16(outputCount % 100)]);
    }
    expect(encodeTaskEnd({ outputCount: 1, hash: hash16(1) }).byteLength).toBe(17);
    expectCodecError(() => encodeTaskEnd({ outputCount: 1, hash: new Uint8Array(15) }), /16 bytes/);
    expectCodecError(() => encodeTaskEnd({ outputCount: 1, hash: new Uint8Array(32) }), /16 bytes/);
    expectCodecError(() => decodeTaskEnd(Uint8Array.of(1, ...new Uint8Array(15))), /^TaskEnd payload: truncated: hash needs 16 bytes, only 15 left at byte 1$/);
  });

  it('Epoch round-trips', () => {
    for (const mark of [
      { epoch: 0, nodeId: '' },
      { epoch: 1, nodeId: 'node-a' },
      { epoch: MAX_VARUINT, nodeId: 'nœud-β-🎉' },
    ]) {
      expect(decodeEpochMark(encodeEpochMark(mark))).toEqual(mark);
    }
  });

  const samples: Array<[string, Uint8Array, (p: Uint8Array) => unknown]> = [
    ['Request', encodeRequestEvent(requests[2]!), decodeRequestEvent],
    ['Timer', encodeTimerEvent({ timerId: 300 }), decodeTimerEvent],
    ['FetchResult', encodeFetchResultEvent({ fetchId: 3, error: null, status: 201, statusText: 'Created', headers: [['etag', 'W/"1"']], body: Uint8Array.of(1, 2) }), decodeFetchResultEvent],
    ['FetchResult', encodeFetchResultEvent({ fetchId: 3, error: 'timeout', status: 0, statusText: '', headers: [], body: new Uint8Array(0) }), decodeFetchResultEvent],
    ['Clock', encodeClockReading({ readIndex: 9, timeMs: 1.25 }), decodeClockReading],
    ['Clock', encodeClockReading({ readIndex: 9, timeMs: 1_700_000_000_000 }), decodeClockReading],
    ['TaskEnd', encodeTaskEnd({ outputCount: 2, hash: hash16(2) }), decodeTaskEnd],
    ['Epoch', encodeEpochMark({ epoch: 3, nodeId: 'n1' }), decodeEpochMark],
  ];

  it('every payload decoder rejects truncation at every length, naming the kind and the offset', () => {
    for (const [kind, payload, decode] of samples) {
      for (let n = 0; n < payload.byteLength; n++) {
        const err = expectCodecError(() => decode(payload.subarray(0, n)));
        expect(err.message.startsWith(`${kind} payload: `), err.message).toBe(true);
        expect(err.message).toMatch(/at byte \d+$/);
        expect(err.offset).toBeLessThanOrEqual(n);
      }
    }
  });

  it('every payload decoder rejects trailing bytes', () => {
    for (const [kind, payload, decode] of samples) {
      const longer = new Uint8Array(payload.byteLength + 1);
      longer.set(payload);
      expectCodecError(() => decode(longer), new RegExp(`^${kind} payload: 1 trailing bytes after ${kind} at byte ${payload.byteLength}$`));
    }
  });

  it('rejects unknown table entries and absurd header counts', () => {
    // requestId 1, method tag 2*63+1 (no such method)
    expectCodecError(() => decodeRequestEvent(Uint8Array.of(1, 127, 0, 0, 0)), /method refers to unknown table entry 63 at byte 1/);
    // requestId 1, GET, url "", header count 100 with 1 byte left
    expectCodecError(() => decodeRequestEvent(Uint8Array.of(1, 1, 0, 100, 0)), /header count 100 cannot fit/);
  });

  it('decodePayload dispatches on kind and checks empty payloads', () => {
    expect(decodePayload(Kind.Timer, encodeTimerEvent({ timerId: 4 }))).toEqual({ kind: 'Timer', value: { timerId: 4 } });
    expect(decodePayload(Kind.Entropy, Uint8Array.of(1, 2)).kind).toBe('Entropy');
    expect(decodePayload(Kind.Boot, new Uint8Array(0))).toEqual({ kind: 'Boot', value: null });
    expect(decodePayload(Kind.Noop, new Uint8Array(0))).toEqual({ kind: 'Noop', value: null });
    expect(decodePayload(Kind.Preempt, new Uint8Array(0))).toEqual({ kind: 'Preempt', value: null });
    expect(decodePayload(Kind.Request, encodeRequestEvent(requests[0]!)).kind).toBe('Request');
    expect(decodePayload(Kind.Epoch, encodeEpochMark({ epoch: 1, nodeId: 'a' })).kind).toBe('Epoch');
    expect(decodePayload(Kind.TaskEnd, encodeTaskEnd({ outputCount: 0, hash: hash16(0) })).kind).toBe('TaskEnd');
    expect(decodePayload(Kind.Clock, encodeClockReading({ readIndex: 0, timeMs: 0 })).kind).toBe('Clock');
    expect(decodePayload(Kind.FetchResult, samples[2]![1]).kind).toBe('FetchResult');
    expectCodecError(() => decodePayload(Kind.Noop, Uint8Array.of(0)), /Noop payload: must be empty/);
    expectCodecError(() => decodePayload(99, new Uint8Array(0)), /unknown kind 99/);
  });
});

// ---------------------------------------------------------------------------------------------

function entry(seq: number, pos: number, kind: KindCode, payload: Uint8Array = new Uint8Array(0)): Entry {
  return { seq, pos, kind, payload };
}

function sampleEntries(firstSeq = 1, firstPos = 0): Entry[] {
  let seq = firstSeq;
  let pos = firstPos;
  const out: Entry[] = [];
  out.push(entry(seq++, pos, Kind.Boot));
  out.push(entry(seq++, (pos += 1000), Kind.Clock, encodeClockReading({ readIndex: 0, timeMs: 1_700_000_000_000 })));
  out.push(entry(seq++, (pos += 10), Kind.TaskEnd, encodeTaskEnd({ outputCount: 0, hash: hash16(1) })));
  out.push(entry(seq++, pos, Kind.Request, encodeRequestEvent({ requestId: 1, method: 'POST', url: '/x', headers: [['content-type', 'text/plain']], body: enc.encode('hi') })));
  out.push(entry(seq++, (pos += 5), Kind.Entropy, allBytes()));
  out.push(entry(seq++, (pos += 70000), Kind.Preempt));
  out.push(entry(seq++, (pos += 3), Kind.TaskEnd, encodeTaskEnd({ outputCount: 1, hash: hash16(2) })));
  out.push(entry(seq++, pos, Kind.Timer, encodeTimerEvent({ timerId: 1 })));
  out.push(entry(seq++, pos, Kind.FetchResult, encodeFetchResultEvent({ fetchId: 1, error: 'boom', status: 0, statusText: '', headers: [], body: new Uint8Array(0) })));
  out.push(entry(seq++, pos, Kind.Noop));
  out.push(entry(seq++, pos, Kind.Epoch, encodeEpochMark({ epoch: 2, nodeId: 'b' })));
  return out;
}

/** Build a batch by hand (recomputing the CRC) to reach the checks behind the checksum. */
function craftBatch(fields: {
  magic?: number;
  firstSeq: number;
  count: number;
  posBase: number;
  entries: Array<[kind: number, delta: number, payload: Uint8Array]>;
  extra?: Uint8Array;
  restDelta?: number;
}): Uint8Array {
  const body = new ByteWriter();
  body.varuint(fields.firstSeq);
  body.varuint(fields.count);
  body.varuint(fields.posBase);
  for (const [kind, delta, payload] of fields.entries) {
    body.u8(kind);
    body.varuint(delta);
    body.bytes(payload);
  }
  if (fields.extra) body.raw(fields.extra);
  const bodyBytes = body.finish();
  const w = new ByteWriter();
  w.u8(fields.magic ?? BATCH_MAGIC);
  w.varuint(bodyBytes.byteLength + 4 + (fields.restDelta ?? 0));
  w.raw(bodyBytes);
  w.u32(crc32(w.view()));
  return w.finish();
}

describe('batch codec', () => {
  it('round-trips a batch of every kind', () => {
    const entries = sampleEntries(1);
    const bytes = encodeBatch(entries);
    expect(plain(decodeBatch(bytes))).toEqual(plain(entries));
    expect(readBatchHeader(bytes)).toEqual({ byteLength: bytes.byteLength, firstSeq: 1, count: entries.length, lastSeq: entries.length });
  });

  it('round-trips positions and seqs near 2^53', () => {
    const base = MAX_VARUINT - 100;
    const entries = [entry(base, 0, Kind.Noop), entry(base + 1, 2 ** 40, Kind.Noop), entry(base + 2, MAX_VARUINT - 1, Kind.Noop), entry(base + 3, MAX_VARUINT, Kind.Preempt)];
    expect(plain(decodeBatch(encodeBatch(entries)))).toEqual(plain(entries));
    const single = [entry(MAX_VARUINT, MAX_VARUINT, Kind.Noop)];
    expect(plain(decodeBatch(encodeBatch(single)))).toEqual(plain(single));
  });

  it('round-trips a single entry, equal positions, and empty and large payloads', () => {
    for (const entries of [
      [entry(1, 0, Kind.Boot)],
      [entry(5, 7, Kind.Noop), entry(6, 7, Kind.Noop), entry(7, 7, Kind.Noop)],
      [entry(9, 1, Kind.Entropy, new Uint8Array(1_000_000).fill(3)), entry(10, 2, Kind.Entropy, new Uint8Array(0))],
    ]) {
      expect(plain(decodeBatch(encodeBatch(entries)))).toEqual(plain(entries));
    }
  });

  it('decodes consecutive batches with `at` and returns payload views', () => {
    const a = encodeBatch(sampleEntries(1));
    const b = encodeBatch(sampleEntries(12, 1_000_000));
    const both = new Uint8Array(a.byteLength + b.byteLength + 3);
    both.set(a, 0);
    both.set(b, a.byteLength);
    const at = { offset: 0 };
    const first = decodeBatch(both, at);
    expect(at.offset).toBe(a.byteLength);
    const second = decodeBatch(both, at);
    expect(at.offset).toBe(a.byteLength + b.byteLength);
    expect(plain([...first, ...second])).toEqual(plain([...sampleEntries(1), ...sampleEntries(12, 1_000_000)]));
    expect(second[0]!.payload.buffer).toBe(both.buffer);
    // Without `at`, the 3 trailing bytes are an error.
    expectCodecError(() => decodeBatch(both.subarray(a.byteLength)), new RegExp(`3 trailing bytes after the batch at byte ${b.byteLength}`));
  });

  it('encodeBatchInto appends after existing bytes and leaves headroom', () => {
    const w = new ByteWriter();
    w.raw(Uint8Array.of(1, 2, 3));
    const { start, end } = encodeBatchInto(w, sampleEntries(1), { headroomBytes: 4 });
    expect(start).toBeGreaterThanOrEqual(3 + 4);
    expect([...w.view(0, 3)]).toEqual([1, 2, 3]);
    expect(plain(decodeBatch(w.view(start, end)))).toEqual(plain(sampleEntries(1)));
    // A failed encode leaves the writer as it was.
    expectCodecError(() => encodeBatchInto(w, [entry(1, 0, Kind.Noop), entry(3, 0, Kind.Noop)]));
    expect(w.length).toBe(end);
  });

  it('refuses to encode invalid batches', () => {
    expectCodecError(() => encodeBatch([]), /at least one entry/);
    expectCodecError(() => encodeBatch([entry(0, 0, Kind.Noop)]), /first seq 0/);
    expectCodecError(() => encodeBatch([entry(1, 0, Kind.Noop), entry(3, 0, Kind.Noop)]), /seqs must be dense: entry 1 has seq 3, expected 2/);
    expectCodecError(() => encodeBatch([entry(1, 10, Kind.Noop), entry(2, 9, Kind.Noop)]), /pos goes backwards at seq 2: 9 after 10/);
    expectCodecError(() => encodeBatch([entry(1, -1, Kind.Noop)]), /pos -1/);
    expectCodecError(() => encodeBatch([entry(1, 1.5, Kind.Noop)]), /pos 1.5/);
    expectCodecError(() => encodeBatch([entry(1, 0, 42 as KindCode)]), /unknown kind 42/);
    expectCodecError(() => encodeBatch([{ seq: 1, pos: 0, kind: Kind.Noop, payload: [1, 2] as unknown as Uint8Array }]), /not a Uint8Array/);
    expectCodecError(() => encodeBatch([entry(MAX_VARUINT, 0, Kind.Noop), entry(MAX_VARUINT + 1, 0, Kind.Noop)]), /exceed 2\^53-1/);
    expectCodecError(
      () =>
        decodeBatch(
          craftBatch({
            firstSeq: MAX_VARUINT,
            count: 2,
            posBase: 0,
            entries: [
              [Kind.Noop, 0, new Uint8Array(0)],
              [Kind.Noop, 0, new Uint8Array(0)],
            ],
          }),
        ),
      /exceed 2\^53-1/,
    );
  });

  it('enforces the batch size limit on both sides', () => {
    expect(MAX_BATCH_BYTES).toBe(4 * 1024 * 1024);
    expectCodecError(() => encodeBatch([entry(1, 0, Kind.Entropy, new Uint8Array(MAX_BATCH_BYTES))]), /exceeds the 4194304-byte batch limit/);
    const small = [entry(1, 0, Kind.Entropy, new Uint8Array(100))];
    expectCodecError(() => encodeBatch(small, { maxBytes: 100 }), /exceeds the 100-byte batch limit/);
    const ok = encodeBatch(small);
    expectCodecError(() => decodeBatch(ok, undefined, { maxBytes: 100 }), new RegExp(`declares ${ok.byteLength} bytes, above the 100-byte batch limit`));
    // A declared size above the default limit, in a 10-byte buffer: refused before anything else.
    const huge = new ByteWriter();
    huge.u8(BATCH_MAGIC);
    huge.varuint(MAX_BATCH_BYTES);
    huge.raw(new Uint8Array(5));
    expectCodecError(() => decodeBatch(huge.finish()), /declares 4194309 bytes, above the 4194304-byte batch limit/);
    // Exactly at the limit is fine.
    const exact = encodeBatch(small, { maxBytes: ok.byteLength });
    expect(decodeBatch(exact, undefined, { maxBytes: ok.byteLength })).toHaveLength(1);
  });

  it('rejects bad magic, bad checksum, truncation and trailing bytes with offsets', () => {
    const bytes = encodeBatch(sampleEntries(1));
    const badMagic = bytes.slice();
    badMagic[0] = 0x00;
    expect(expectCodecError(() => decodeBatch(badMagic), /^batch: bad magic 0x00 \(expected 0xf1\) at byte 0$/).offset).toBe(0);
    const badCrc = bytes.slice();
    badCrc[20]! ^= 0x01;
    const crcErr = expectCodecError(() => decodeBatch(badCrc), /^batch: checksum mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\) at byte \d+$/);
    expect(crcErr.offset).toBe(bytes.byteLength - 4);
    expectCodecError(() => decodeBatch(bytes.subarray(0, bytes.byteLength - 1)), /truncated: declares \d+ bytes, only \d+ present at byte 0/);
    expectCodecError(() => decodeBatch(new Uint8Array(0)), /truncated: magic needs 1 bytes/);
    const longer = new Uint8Array(bytes.byteLength + 1);
    longer.set(bytes);
    expectCodecError(() => decodeBatch(longer), /1 trailing bytes after the batch/);
  });

  it('rejects structural problems behind a valid checksum, naming the seq', () => {
    const p3 = Uint8Array.of(1, 2, 3);
    expectCodecError(
      () =>
        decodeBatch(
          craftBatch({
            firstSeq: 5,
            count: 2,
            posBase: 0,
            entries: [
              [Kind.Noop, 0, new Uint8Array(0)],
              [42, 0, new Uint8Array(0)],
            ],
          }),
        ),
      /unknown kind 42 \(0x2a\) in entry seq 6 at byte \d+/,
    );
    expectCodecError(() => decodeBatch(craftBatch({ firstSeq: 0, count: 1, posBase: 0, entries: [[Kind.Noop, 0, p3]] })), /firstSeq is 0/);
    expectCodecError(() => decodeBatch(craftBatch({ firstSeq: 1, count: 0, posBase: 0, entries: [], extra: p3 })), /count is 0/);
    expectCodecError(() => decodeBatch(craftBatch({ firstSeq: 1, count: 1000, posBase: 0, entries: [[Kind.Noop, 0, p3]] })), /count 1000 cannot fit/);
    expectCodecError(
      () =>
        decodeBatch(
          craftBatch({
            firstSeq: 1,
            count: 2,
            posBase: 0,
            entries: [
              [Kind.Noop, 0, p3],
              [Kind.Noop, 0, p3],
            ],
            extra: Uint8Array.of(0),
          }),
        ),
      /1 unparsed bytes after the last entry \(seq 2\)/,
    );
    expectCodecError(
      () =>
        decodeBatch(
          craftBatch({
            firstSeq: 1,
            count: 2,
            posBase: MAX_VARUINT,
            entries: [
              [Kind.Noop, 0, p3],
              [Kind.Noop, 1, p3],
            ],
          }),
        ),
      /pos of seq 2 exceeds 2\^53-1/,
    );
    // Second entry claims a 50-byte payload with 3 bytes left before the CRC.
    const overrun = craftBatch({ firstSeq: 1, count: 2, posBase: 0, entries: [[Kind.Noop, 0, p3]], extra: Uint8Array.of(Kind.Noop, 0, 50, 1, 2, 3) });
    expectCodecError(() => decodeBatch(overrun), /payload of seq 2 declares 50 bytes, only 3 left in the batch/);
    expectCodecError(() => decodeBatch(craftBatch({ firstSeq: 7, count: 1, posBase: 0, entries: [[Kind.Noop, 0, p3]], magic: 0xf2 })), /bad magic 0xf2/);
    // Positions cannot go backwards: the delta is unsigned, so there is no byte pattern for it.
  });

  it('detects every single-byte corruption of a small batch', () => {
    const entries = [
      entry(41, 1000, Kind.Request, encodeRequestEvent({ requestId: 3, method: 'GET', url: '/kv/a', headers: [['host', 'h']], body: new Uint8Array(0) })),
      entry(42, 1800, Kind.TaskEnd, encodeTaskEnd({ outputCount: 1, hash: hash16(9) })),
    ];
    const bytes = encodeBatch(entries);
    const payloadStart = 8; // magic, length, seq, count, posBase(2), kind, delta (first payload starts after these)
    for (let i = 0; i < bytes.byteLength; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const copy = bytes.slice();
        copy[i]! ^= mask;
        const err = expectCodecError(() => decodeBatch(copy));
        expect(err.message).toMatch(/at byte \d+/);
        if (i >= payloadStart && i < bytes.byteLength - 4) expect(err.message).toMatch(/checksum mismatch|truncated|trailing|declares/);
        if (i > 1 && i < bytes.byteLength - 4) {
          // A flip behind the length is always the checksum's to find.
          expect(err.message).toMatch(/checksum mismatch/);
        }
      }
    }
  });

  it('rejects truncation at every length', () => {
    const bytes = encodeBatch(sampleEntries(3, 12345));
    for (let n = 0; n < bytes.byteLength; n++) {
      const err = expectCodecError(() => decodeBatch(bytes.subarray(0, n)));
      expect(err.message).toMatch(/truncated|below the minimum/);
    }
    expect(MIN_BATCH_BYTES).toBe(encodeBatch([entry(1, 0, Kind.Noop)]).byteLength);
  });
});

describe('size: bytes per request', () => {
  // A request costs one Request entry + one TaskEnd entry (16-byte hash). Overhead = the batch bytes
  // those two entries take minus the request's own bytes (method, url, header names and values, body).
  function ownBytes(r: RequestEvent): number {
    return enc.encode(r.method).byteLength + enc.encode(r.url).byteLength + r.headers.reduce((n, [k, v]) => n + enc.encode(k).byteLength + enc.encode(v).byteLength, 0) + r.body.byteLength;
  }
  const headers: Array<[string, string]> = [
    ['host', 'localhost:8080'],
    ['user-agent', 'curl/8.5.0'],
    ['accept', '*/*'],
  ];
  const get = (id: number): RequestEvent => ({ requestId: id, method: 'GET', url: '/kv/key', headers, body: new Uint8Array(0) });
  const put = (id: number): RequestEvent => ({ requestId: id, method: 'PUT', url: '/kv/key', headers: [...headers, ['content-type', 'application/octet-stream']], body: new Uint8Array(32).fill(7) });

  // The same requests with header names outside the name table (case differs): pure framing cost.
  const literal =
    (make: (id: number) => RequestEvent) =>
    (id: number): RequestEvent => {
      const r = make(id);
      return { ...r, headers: r.headers.map(([k, v]) => [k.toUpperCase(), v] as [string, string]) };
    };

  function perRequest(make: (id: number) => RequestEvent, count: number, firstId: number): number {
    const entries: Entry[] = [];
    let seq = 1;
    let pos = 5_000_000;
    for (let i = 0; i < count; i++) {
      entries.push(entry(seq++, pos, Kind.Request, encodeRequestEvent(make(firstId + i))));
      pos += 4000; // a few thousand interrupt polls per request
      entries.push(entry(seq++, pos, Kind.TaskEnd, encodeTaskEnd({ outputCount: 1, hash: hash16(i) })));
    }
    return encodeBatch(entries).byteLength / count - ownBytes(make(firstId));
  }

  it('stays within 40 bytes of overhead per request', () => {
    const rows = {
      'GET, 1 request per batch': perRequest(get, 1, 1),
      'GET, 100 per batch, ids ~1e3': perRequest(get, 100, 1000),
      'GET, 100 per batch, ids ~1e6': perRequest(get, 100, 1_000_000),
      'PUT 32B, 1 request per batch': perRequest(put, 1, 1),
      'PUT 32B, 100 per batch, ids ~1e3': perRequest(put, 100, 1000),
      'PUT 32B, 100 per batch, ids ~1e6': perRequest(put, 100, 1_000_000),
      'GET, 100 per batch, ids ~1e6, untabled header names': perRequest(literal(get), 100, 1_000_000),
      'PUT 32B, 100 per batch, ids ~1e6, untabled header names': perRequest(literal(put), 100, 1_000_000),
      'GET, 1 per batch, untabled header names': perRequest(literal(get), 1, 1),
    };
    for (const [k, v] of Object.entries(rows)) (rows as Record<string, number>)[k] = Math.round(v * 100) / 100;
    console.log('overhead bytes per request (beyond its own bytes):', rows);
    expect(rows['GET, 100 per batch, ids ~1e6']).toBeLessThanOrEqual(40);
    expect(rows['PUT 32B, 100 per batch, ids ~1e6']).toBeLessThanOrEqual(40);
    expect(rows['GET, 100 per batch, ids ~1e6, untabled header names']).toBeLessThanOrEqual(40);
    expect(rows['PUT 32B, 100 per batch, ids ~1e6, untabled header names']).toBeLessThanOrEqual(40);
  });
});

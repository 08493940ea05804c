// Trace file tests: writing and reading, torn and corrupt tails (lenient and strict), corruption in
// the middle, seq gaps, header damage and foreign files. Real temporary directories throughout.
// They run against the compiled output (build first: npx tsc -p tsconfig.json).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBatch, encodeClockReading, encodeRequestEvent, encodeTaskEnd } from '../dist/logging-channel/codec.js';
import { type Entry, Kind, type KindCode } from '../dist/logging-channel/entry.js';
import { encodeTraceHeader, TraceError, TraceFullError, type TraceHeader } from '../dist/logging-channel/trace-format.js';
import { openTraceReader, readTrace } from '../dist/logging-channel/trace-reader.js';
import { TraceWriter } from '../dist/logging-channel/trace-writer.js';

let dir: string;
let counter = 0;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ftjs-trace-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
function tmp(name = 'trace'): string {
  return path.join(dir, `${name}-${++counter}.ftr`);
}

const header: TraceHeader = {
  formatVersion: 1,
  engine: { name: 'quickjs-emscripten', version: '0.32.0', wasmSha256: 'ab'.repeat(32) },
  guest: { entry: 'main.js', sources: [{ name: 'main.js', sha256: 'cd'.repeat(32), text: 'export default { fetch() { return new Response("héllo 🎉") } }' }], hash: 'ef'.repeat(32) },
  boot: { env: { A: '1' }, limits: { memoryBytes: 64 << 20 }, config: { port: 8080 } },
  createdAt: '2025-01-02T03:04:05.678Z',
  node: 'node-a',
};

function hash16(seed: number): Uint8Array {
  return Uint8Array.from({ length: 16 }, (_, i) => (seed * 13 + i) & 0xff);
}

/** A realistic log: Boot, then request/clock/task-end triples. */
function makeEntries(count: number, firstSeq = 1): Entry[] {
  const out: Entry[] = [];
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const seq = firstSeq + i;
    let kind: KindCode;
    let payload: Uint8Array;
    if (seq === 1) {
      kind = Kind.Boot;
      payload = new Uint8Array(0);
    } else if (seq % 3 === 2) {
      kind = Kind.Request;
      payload = encodeRequestEvent({ requestId: seq, method: 'GET', url: `/kv/${seq}`, headers: [['host', 'x']], body: new Uint8Array(0) });
    } else if (seq % 3 === 0) {
      kind = Kind.Clock;
      payload = encodeClockReading({ readIndex: seq, timeMs: 1_700_000_000_000 + seq });
      pos += 17;
    } else {
      kind = Kind.TaskEnd;
      payload = encodeTaskEnd({ outputCount: 1, hash: hash16(seq) });
      pos += 1000;
    }
    out.push({ seq, pos, kind, payload });
  }
  return out;
}

function plain(entries: Entry[]): string[] {
  return entries.map((e) => `${e.seq}/${e.pos}/${e.kind}/${Buffer.from(e.payload).toString('hex')}`);
}

/** Write a trace with blocks of the given sizes; returns the path and each block's file offset. */
async function writeTrace(blockSizes: number[]): Promise<{ file: string; entries: Entry[]; offsets: number[]; size: number }> {
  const file = tmp();
  const total = blockSizes.reduce((a, b) => a + b, 0);
  const entries = makeEntries(total);
  const w = await TraceWriter.open(file, header);
  const offsets: number[] = [];
  let at = 0;
  for (const n of blockSizes) {
    offsets.push(w.bytesWritten);
    w.append(entries.slice(at, at + n));
    w.flush();
    at += n;
  }
  w.close();
  return { file, entries, offsets, size: fs.statSync(file).size };
}

async function expectTraceError(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<TraceError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected TraceError ${code}`).toBeInstanceOf(TraceError);
  const err = caught as TraceError;
  expect(err.code, err.message).toBe(code);
  if (pattern !== undefined) expect(err.message).toMatch(pattern);
  return err;
}

function copyWith(file: string, edit: (bytes: Buffer) => Buffer): string {
  const out = tmp('edited');
  fs.writeFileSync(out, edit(fs.readFileSync(file)));
  return out;
}

/** Build a trace by hand from encoded batches (to produce what the writer refuses to). */
function craftTrace(batches: Uint8Array[], headerBytes = encodeTraceHeader(header)): string {
  const parts: Uint8Array[] = [headerBytes];
  for (const b of batches) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.byteLength);
    parts.push(len, b);
  }
  const file = tmp('crafted');
  fs.writeFileSync(file, Buffer.concat(parts));
  return file;
}

function craftHeader(json: string, magic = 'FTJSTRC1'): Uint8Array {
  const body = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(12 + body.byteLength + 4);
  out.write(magic, 0, 'latin1');
  out.writeUInt32LE(body.byteLength, 8);
  body.copy(out, 12);
  out.writeUInt32LE(crc32(out.subarray(0, 12 + body.byteLength)), 12 + body.byteLength);
  return out;
}

describe('TraceWriter + readTrace', () => {
  it('round-trips the header and the entries across several blocks', async () => {
    const { file, entries, offsets, size } = await writeTrace([1, 10, 100, 7]);
    const trace = await readTrace(file);
    expect(trace.header).toEqual(header);
    expect(plain(trace.entries)).toEqual(plain(entries));
    expect(trace.blocks).toBe(4);
    expect(trace.bytes).toBe(size);
    expect(trace.truncated).toBeUndefined();
    expect(offsets[0]).toBe(encodeTraceHeader(header).byteLength);
    expect(fs.readFileSync(file).subarray(0, 8).toString('latin1')).toBe('FTJSTRC1');
  });

  it('reads a trace with a header and no blocks', async () => {
    const { file } = await writeTrace([]);
    const trace = await readTrace(file);
    expect(trace.entries).toEqual([]);
    expect(trace.blocks).toBe(0);
  });

  it('streams blocks with their offsets and seq ranges', async () => {
    const { file, offsets } = await writeTrace([3, 4, 5]);
    const reader = await openTraceReader(file);
    expect(reader.header.node).toBe('node-a');
    const seen: Array<[number, number, number, number]> = [];
    for await (const block of reader) seen.push([block.offset, block.firstSeq, block.lastSeq, block.entries.length]);
    await reader.close();
    expect(seen).toEqual([
      [offsets[0], 1, 3, 3],
      [offsets[1], 4, 7, 4],
      [offsets[2], 8, 12, 5],
    ]);
    expect(reader.validBytes).toBe(reader.fileBytes);
  });

  it('buffers appends and writes a block only at flush (or at blockBytes)', async () => {
    const file = tmp();
    const entries = makeEntries(1000);
    const w = await TraceWriter.open(file, header, { blockBytes: 4096 });
    const headerBytes = w.bytesWritten;
    w.append(entries.slice(0, 2));
    expect(w.pendingEntries).toBe(2);
    expect(fs.statSync(file).size).toBe(headerBytes);
    for (const e of entries.slice(2)) w.append([e]);
    expect(w.blocksWritten).toBeGreaterThan(1);
    w.close();
    w.close(); // idempotent
    const trace = await readTrace(file);
    expect(plain(trace.entries)).toEqual(plain(entries));
    expect(trace.blocks).toBe(w.blocksWritten);
  });

  it('splits a flush into several blocks when entries exceed the batch limit', async () => {
    const file = tmp();
    const entries: Entry[] = Array.from({ length: 10 }, (_, i) => ({ seq: i + 1, pos: i, kind: Kind.Entropy, payload: new Uint8Array(300).fill(i) }));
    const w = await TraceWriter.open(file, header, { maxBatchBytes: 1024, blockBytes: 1 << 20 });
    w.append(entries);
    w.close();
    expect(w.blocksWritten).toBeGreaterThanOrEqual(4);
    const trace = await readTrace(file, { maxBatchBytes: 1024 });
    expect(plain(trace.entries)).toEqual(plain(entries));
    // A single payload that cannot fit one block is refused at append time.
    const w2 = await TraceWriter.open(tmp(), header, { maxBatchBytes: 1024 });
    expect(() => w2.append([{ seq: 1, pos: 0, kind: Kind.Entropy, payload: new Uint8Array(1024) }])).toThrow(/cannot fit in one block/);
    w2.close();
  });

  it('insists that appends continue the seq and never move pos backwards', async () => {
    const w = await TraceWriter.open(tmp(), header);
    const entries = makeEntries(10);
    expect(() => w.append([entries[1]!])).toThrow(/seq 2 does not continue the trace \(expected 1\)/);
    w.append(entries.slice(0, 5));
    expect(() => w.append([entries[6]!])).toThrow(/seq 7 does not continue the trace \(expected 6\)/);
    // A bad entry in the middle of a call rejects the whole call.
    expect(() => w.append([entries[5]!, { ...entries[6]!, seq: 8 }])).toThrow(/expected 7/);
    expect(w.nextSeq).toBe(6);
    expect(() => w.append([{ ...entries[5]!, pos: 0 }])).toThrow(/before the previous pos/);
    expect(() => w.append([{ ...entries[5]!, kind: 99 as KindCode }])).toThrow(/unknown kind 99/);
    w.append(entries.slice(5));
    w.close();
    expect(() => w.append([])).toThrow(/closed/);
  });

  it('starts at firstSeq when told to', async () => {
    const file = tmp();
    const entries = makeEntries(5, 101);
    const w = await TraceWriter.open(file, header, { firstSeq: 101 });
    w.append(entries);
    w.close();
    expect(plain((await readTrace(file)).entries)).toEqual(plain(entries));
  });

  it('never clobbers an existing file unless asked', async () => {
    const { file } = await writeTrace([3]);
    await expect(TraceWriter.open(file, header)).rejects.toThrow(/EEXIST/);
    const w = await TraceWriter.open(file, header, { overwrite: true });
    w.close();
    expect((await readTrace(file)).blocks).toBe(0);
  });

  it('refuses an invalid header', async () => {
    await expect(TraceWriter.open(tmp(), { ...header, formatVersion: 3 as 1 })).rejects.toThrow(/formatVersion must be one of 1, 2/);
    await expect(TraceWriter.open(tmp(), { ...header, outputs: { maxBytesPerTask: 1024 } })).rejects.toThrow(/header.outputs needs formatVersion 2/);
    await expect(TraceWriter.open(tmp(), { ...header, engine: { ...header.engine, version: 3 as unknown as string } })).rejects.toThrow(/header.engine.version is not a string/);
  });

  it('stops at maxBytes with a clear error, leaving whole blocks and the entries buffered', async () => {
    const file = tmp();
    const headerBytes = encodeTraceHeader(header).byteLength;
    const w = await TraceWriter.open(file, header, { maxBytes: headerBytes + 400 });
    const entries = makeEntries(200);
    w.append(entries.slice(0, 5));
    w.flush();
    w.append(entries.slice(5));
    let err: unknown;
    try {
      w.flush();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TraceFullError);
    expect((err as TraceFullError).code).toBe('TRACE_FULL');
    expect((err as Error).message).toMatch(/trace size limit reached: a \d+-byte block would take the file from \d+ to \d+ bytes, above maxBytes \d+/);
    expect(w.pendingEntries).toBe(195);
    expect(fs.statSync(file).size).toBeLessThanOrEqual(headerBytes + 400);
    expect(() => w.close()).toThrow(TraceFullError);
    const trace = await readTrace(file);
    expect(plain(trace.entries)).toEqual(plain(entries.slice(0, 5)));
    await expect(TraceWriter.open(tmp(), header, { maxBytes: 10 })).rejects.toThrow(TraceFullError);
  });

  it('holds 100k entries without trouble', async () => {
    const file = tmp();
    const entries = makeEntries(100_000);
    const w = await TraceWriter.open(file, header);
    for (let i = 0; i < entries.length; i += 3) w.append(entries.slice(i, i + 3));
    w.close();
    const trace = await readTrace(file);
    expect(trace.entries.length).toBe(100_000);
    expect(trace.entries[99_999]!.seq).toBe(100_000);
    expect(plain(trace.entries.slice(-50))).toEqual(plain(entries.slice(-50)));
    // Payloads are views into the blocks read, not copies per entry.
    expect(trace.entries[10]!.payload.buffer).toBe(trace.entries[11]!.payload.buffer);
  });
});

describe('torn and corrupt tails', () => {
  it('reads a trace truncated at every byte of its last block: lenient stops, strict says TRUNCATED', async () => {
    const { file, entries, offsets, size } = await writeTrace([5, 6, 9]);
    const lastAt = offsets[2]!;
    const full = fs.readFileSync(file);
    for (let cut = lastAt; cut < size; cut++) {
      const cutFile = tmp('cut');
      fs.writeFileSync(cutFile, full.subarray(0, cut));
      const trace = await readTrace(cutFile, { lenient: true });
      expect(plain(trace.entries)).toEqual(plain(entries.slice(0, 11)));
      expect(trace.blocks).toBe(2);
      expect(trace.bytes).toBe(lastAt);
      if (cut === lastAt) {
        expect(trace.truncated).toBeUndefined();
        expect((await readTrace(cutFile)).blocks).toBe(2);
      } else {
        expect(trace.truncated?.atOffset).toBe(lastAt);
        expect(trace.truncated?.reason).toMatch(/file ends inside a block length|runs past the end of the file/);
        const err = await expectTraceError(readTrace(cutFile), 'TRUNCATED', new RegExp(`: truncated block at byte ${lastAt}`));
        expect(err.offset).toBe(lastAt);
        expect(err.path).toBe(cutFile);
      }
      fs.rmSync(cutFile);
    }
  });

  it('treats every flipped byte in the last block as a damaged tail (lenient) or an error (strict)', async () => {
    const { file, entries, offsets, size } = await writeTrace([5, 6, 9]);
    const lastAt = offsets[2]!;
    for (let i = lastAt; i < size; i++) {
      const bad = copyWith(file, (b) => {
        b[i]! ^= 0xff;
        return b;
      });
      const trace = await readTrace(bad, { lenient: true });
      expect(plain(trace.entries)).toEqual(plain(entries.slice(0, 11)));
      expect(trace.truncated?.atOffset).toBe(lastAt);
      // A damaged length may point past the end of the file (TRUNCATED); anything else is CORRUPT.
      const code = trace.truncated!.reason.includes('past the end') ? 'TRUNCATED' : 'CORRUPT';
      if (i >= lastAt + 4) expect(code).toBe('CORRUPT');
      const err = await expectTraceError(readTrace(bad), code);
      expect(err.offset).toBe(lastAt);
      fs.rmSync(bad);
    }
  });

  it('names the block, its seqs and the cause in strict errors', async () => {
    const { file, offsets, size } = await writeTrace([5, 6, 9]);
    const bad = copyWith(file, (b) => {
      b[size - 10]! ^= 0x01;
      return b;
    });
    const err = await expectTraceError(readTrace(bad), 'CORRUPT');
    expect(err.message).toBe(`${bad}: corrupt block at byte ${offsets[2]} (seqs 12..20): ${err.message.split(': ').slice(-1)[0]}`);
    expect(err.message).toMatch(new RegExp(`corrupt block at byte ${offsets[2]} \\(seqs 12\\.\\.20\\): checksum mismatch \\(stored 0x[0-9a-f]+, computed 0x[0-9a-f]+\\) at byte ${size - 4}$`));
  });

  it('treats a zero-filled tail (a crash after the file grew) as torn', async () => {
    const { file, entries, size } = await writeTrace([4, 4]);
    const padded = copyWith(file, (b) => Buffer.concat([b, Buffer.alloc(4096)]));
    const trace = await readTrace(padded, { lenient: true });
    expect(plain(trace.entries)).toEqual(plain(entries));
    expect(trace.truncated).toEqual({ atOffset: size, reason: expect.stringMatching(/impossible block length 0/) });
    await expectTraceError(readTrace(padded), 'CORRUPT', /impossible block length 0/);
  });
});

describe('corruption in the middle', () => {
  it('is an error even when lenient, for every flipped byte of a middle block', async () => {
    const { file, offsets } = await writeTrace([5, 6, 9]);
    for (let i = offsets[1]!; i < offsets[2]!; i++) {
      const bad = copyWith(file, (b) => {
        b[i]! ^= 0xff;
        return b;
      });
      for (const lenient of [false, true]) {
        const err = await expectTraceError(readTrace(bad, { lenient }), 'CORRUPT');
        expect(err.offset).toBe(offsets[1]);
        expect(err.message).toMatch(new RegExp(`corrupt block at byte ${offsets[1]}`));
      }
      fs.rmSync(bad);
    }
  });

  it('does not mistake a damaged length that points past the end for a torn tail', async () => {
    const { file, offsets, size } = await writeTrace([5, 6, 9]);
    const bad = copyWith(file, (b) => {
      // A plausible length (under the batch limit) that now "runs past the end of the file".
      b.writeUInt32LE(size - offsets[1]! + 10, offsets[1]!);
      return b;
    });
    const err = await expectTraceError(readTrace(bad, { lenient: true }), 'CORRUPT', /runs past the end of the file.*a valid block follows at byte \d+, so this is not a torn tail/);
    expect(err.offset).toBe(offsets[1]);
    expect(err.message).toContain(`valid block follows at byte ${offsets[2]}`);
  });

  it('detects a seq gap between blocks, naming both seqs', async () => {
    const entries = makeEntries(10);
    const file = craftTrace([encodeBatch(entries.slice(0, 3)), encodeBatch(entries.slice(5, 8))]);
    for (const lenient of [false, true]) {
      const err = await expectTraceError(readTrace(file, { lenient }), 'CORRUPT', /\(seqs 6\.\.8\): seq gap: block starts at seq 6, expected seq 4 after seq 3/);
      expect(err.offset).toBe(encodeTraceHeader(header).byteLength + 4 + encodeBatch(entries.slice(0, 3)).byteLength);
    }
    // An overlap (a repeated block) is a gap too.
    const again = craftTrace([encodeBatch(entries.slice(0, 3)), encodeBatch(entries.slice(0, 3))]);
    await expectTraceError(readTrace(again), 'CORRUPT', /block starts at seq 1, expected seq 4/);
  });

  it('detects pos going backwards across blocks', async () => {
    const a: Entry[] = [{ seq: 1, pos: 500, kind: Kind.Noop, payload: new Uint8Array(0) }];
    const b: Entry[] = [{ seq: 2, pos: 499, kind: Kind.Noop, payload: new Uint8Array(0) }];
    await expectTraceError(readTrace(craftTrace([encodeBatch(a), encodeBatch(b)])), 'CORRUPT', /pos goes backwards: seq 2 has pos 499 after pos 500 at seq 1/);
  });

  it('rejects a block whose length disagrees with its batch', async () => {
    const entries = makeEntries(6);
    const first = encodeBatch(entries.slice(0, 3));
    const second = encodeBatch(entries.slice(3));
    const padded = new Uint8Array(first.byteLength + 2);
    padded.set(first);
    await expectTraceError(readTrace(craftTrace([padded, second])), 'CORRUPT', /2 trailing bytes after the batch/);
  });
});

describe('header problems', () => {
  it('rejects every flipped byte of the header, in both modes', async () => {
    const { file } = await writeTrace([3]);
    const headerBytes = encodeTraceHeader(header).byteLength;
    for (let i = 0; i < headerBytes; i++) {
      const bad = copyWith(file, (b) => {
        b[i]! ^= 0x01;
        return b;
      });
      const expected = i < 7 ? 'NOT_A_TRACE' : i === 7 ? 'UNSUPPORTED_VERSION' : null;
      for (const lenient of [false, true]) {
        let caught: unknown;
        try {
          await readTrace(bad, { lenient });
        } catch (err) {
          caught = err;
        }
        expect(caught, `flip at ${i}`).toBeInstanceOf(TraceError);
        const code = (caught as TraceError).code;
        if (expected !== null) expect(code).toBe(expected);
        else expect(['CORRUPT', 'TRUNCATED']).toContain(code);
        if (i >= 12) expect((caught as TraceError).message).toMatch(/corrupt header: checksum mismatch/);
      }
      fs.rmSync(bad);
    }
  });

  it('says TRUNCATED for a file cut inside its header', async () => {
    const { file } = await writeTrace([3]);
    const full = fs.readFileSync(file);
    const headerBytes = encodeTraceHeader(header).byteLength;
    for (let cut = 0; cut < headerBytes; cut++) {
      const cutFile = tmp('cut');
      fs.writeFileSync(cutFile, full.subarray(0, cut));
      const err = await expectTraceError(readTrace(cutFile, { lenient: true }), 'TRUNCATED', /truncated header/);
      expect(err.offset).toBe(0);
      fs.rmSync(cutFile);
    }
  });

  it('says NOT_A_TRACE for foreign files', async () => {
    const foreign = tmp('foreign');
    fs.writeFileSync(foreign, '{"formatVersion":1,"hello":"world"}\n');
    await expectTraceError(readTrace(foreign), 'NOT_A_TRACE', /not a trace file \(it does not start with "FTJSTRC1"\)/);
    const png = tmp('png');
    fs.writeFileSync(png, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]));
    await expectTraceError(readTrace(png, { lenient: true }), 'NOT_A_TRACE');
    const short = tmp('short');
    fs.writeFileSync(short, 'XY');
    await expectTraceError(readTrace(short), 'NOT_A_TRACE');
  });

  it('says UNSUPPORTED_VERSION for a newer magic or formatVersion', async () => {
    await expectTraceError(readTrace(craftTrace([], craftHeader(JSON.stringify(header), 'FTJSTRC3'))), 'UNSUPPORTED_VERSION', /format "3" is not supported/);
    await expectTraceError(readTrace(craftTrace([], craftHeader(JSON.stringify({ ...header, formatVersion: 3 })))), 'UNSUPPORTED_VERSION', /formatVersion 3 is not supported/);
    // A format-2 header behind a format-1 magic (or the reverse) is damage, not a version.
    await expectTraceError(readTrace(craftTrace([], craftHeader(JSON.stringify({ ...header, formatVersion: 2 })))), 'CORRUPT', /the magic says format 1/);
  });

  it('says CORRUPT for a well-checksummed header that is not valid', async () => {
    await expectTraceError(readTrace(craftTrace([], craftHeader('{not json'))), 'CORRUPT', /corrupt header: invalid JSON/);
    await expectTraceError(
      readTrace(craftTrace([], craftHeader(JSON.stringify({ ...header, guest: { ...header.guest, sources: [{ name: 'a' }] } })))),
      'CORRUPT',
      /header.guest.sources\[0\].sha256 is not a string/,
    );
    const huge = Buffer.from(craftHeader('{}'));
    huge.writeUInt32LE(0xffffffff, 8);
    await expectTraceError(readTrace(craftTrace([], huge)), 'CORRUPT', /declares 4294967295 bytes of JSON, above MAX_TRACE_HEADER_BYTES/);
  });
});

describe('outputs blocks (format 2): what tasks emitted, trace-only', () => {
  const v2: TraceHeader = { ...header, formatVersion: 2, outputs: { maxBytesPerTask: 64 } };
  const taskEnds = (entries: Entry[]) => entries.filter((e) => e.kind === Kind.TaskEnd).map((e) => e.seq);

  async function writeWithOutputs(file: string, count: number) {
    const { captureTaskOutputs, recordTaskHash } = await import('../dist/logging-channel/task-outputs.js');
    const entries = makeEntries(count);
    const w = await TraceWriter.open(file, v2, { blockBytes: 200 });
    const records = [];
    for (const e of entries) {
      if (e.kind !== Kind.TaskEnd) {
        w.append([e]);
        continue;
      }
      const body = new TextEncoder().encode(`body of ${e.seq} `.repeat(e.seq % 7 === 0 ? 20 : 1));
      const emitted = [{ kind: 'response' as const, requestId: e.seq, status: 200 + (e.seq % 2), statusText: 'OK', headers: [['content-type', 'text/plain']] as Array<[string, string]>, body }];
      const lines = [{ level: 'log', text: `line ${e.seq}` }];
      // The TaskEnd carries the hash of what the task emitted, as a VM's does: a reader checks whole records against it.
      const whole = captureTaskOutputs(e.seq, emitted, lines, 1 << 20);
      e.payload = encodeTaskEnd({ outputCount: 1, hash: recordTaskHash(whole)! });
      w.append([e]);
      const record = captureTaskOutputs(e.seq, emitted, lines, v2.outputs!.maxBytesPerTask);
      w.appendOutputs(record);
      records.push(record);
    }
    w.close();
    return { entries, records, writer: w };
  }

  it('round-trip next to the entries, keyed by TaskEnd seq, without changing the entries or their seqs', async () => {
    const file = tmp('outputs');
    const { entries, records, writer } = await writeWithOutputs(file, 60);
    expect(writer.outputsWritten).toBe(records.length);
    expect(fs.readFileSync(file).subarray(0, 8).toString('latin1')).toBe('FTJSTRC2');
    const trace = await readTrace(file);
    expect(plain(trace.entries)).toEqual(plain(entries));
    expect(trace.outputs.map((r) => r.seq)).toEqual(taskEnds(entries));
    const cut = trace.outputs.find((r) => r.seq % 7 === 0)!;
    expect(cut.truncated).toBe(true);
    expect(cut.outputs[0]!.bodyBytes).toBeGreaterThan(64);
    expect(cut.outputs[0]!.body.byteLength).toBeLessThan(64);
    const whole = trace.outputs.find((r) => r.seq % 7 !== 0)!;
    expect(whole.truncated).toBe(false);
    expect(new TextDecoder().decode(whole.outputs[0]!.body)).toBe(`body of ${whole.seq} `);
    expect(whole.console).toEqual([{ level: 'log', text: `line ${whole.seq}`, textBytes: `line ${whole.seq}`.length }]);
    // The same entries as a format-1 trace: the outputs blocks are all the difference.
    const plainFile = tmp('plain');
    const w1 = await TraceWriter.open(plainFile, header, { blockBytes: 200 });
    for (const e of entries) w1.append([e]);
    w1.close();
    expect((await readTrace(plainFile)).outputs).toEqual([]);
  });

  it('a torn outputs block at the tail is a torn tail (--lenient); a damaged one mid-file is corruption', async () => {
    const file = tmp('outputs-torn');
    await writeWithOutputs(file, 31);
    const offsets: Array<{ offset: number; outputs: boolean }> = [];
    const reader = await openTraceReader(file, { onOutputs: (b) => offsets.push({ offset: b.offset, outputs: true }) });
    for await (const b of reader) offsets.push({ offset: b.offset, outputs: false });
    await reader.close();
    offsets.sort((a, b) => a.offset - b.offset);
    expect(offsets[offsets.length - 1]!.outputs).toBe(true);
    const torn = tmp('torn');
    fs.writeFileSync(torn, fs.readFileSync(file).subarray(0, fs.statSync(file).size - 3));
    await expectTraceError(readTrace(torn), 'TRUNCATED');
    expect((await readTrace(torn, { lenient: true })).truncated).toBeDefined();
    const mid = offsets.find((o, i) => o.outputs && i < offsets.length - 2)!;
    const damaged = tmp('damaged');
    const bytes = fs.readFileSync(file);
    bytes[mid.offset + 9] = bytes[mid.offset + 9]! ^ 0x10;
    fs.writeFileSync(damaged, bytes);
    await expectTraceError(readTrace(damaged, { lenient: true }), 'CORRUPT', new RegExp(`at byte ${mid.offset}.*a valid block follows`));
  });

  it('an outputs block duplicated, moved ahead of its tasks or naming a seq that is no TaskEnd is refused as corruption', async () => {
    const file = tmp('outputs-moved');
    await writeWithOutputs(file, 40);
    const bytes = fs.readFileSync(file);
    const frames: Array<{ offset: number; end: number; outputs: boolean }> = [];
    const reader = await openTraceReader(file, { onOutputs: (b) => frames.push({ offset: b.offset, end: b.offset + b.byteLength, outputs: true }) });
    for await (const b of reader) frames.push({ offset: b.offset, end: b.offset + b.byteLength, outputs: false });
    await reader.close();
    frames.sort((a, b) => a.offset - b.offset);
    const headerEnd = frames[0]!.offset;
    const at = frames.findIndex((f, i) => f.outputs && i > 2 && !frames[i - 1]!.outputs);
    const outputs = frames[at]!;
    const slice = (f: { offset: number; end: number }) => bytes.subarray(f.offset, f.end);
    const rebuilt = (order: Array<{ offset: number; end: number }>) => {
      const out = tmp('reordered');
      fs.writeFileSync(out, Buffer.concat([bytes.subarray(0, headerEnd), ...order.map(slice)]));
      return out;
    };
    const duplicated = [...frames.slice(0, at + 1), outputs, ...frames.slice(at + 1)];
    await expectTraceError(readTrace(rebuilt(duplicated)), 'CORRUPT', /comes after the record for seq \d+ \(a duplicated or moved outputs block\)/);
    const ahead = [...frames.slice(0, at - 1), outputs, frames[at - 1]!, ...frames.slice(at + 1)];
    await expectTraceError(readTrace(rebuilt(ahead), { lenient: true }), 'CORRUPT', /not a TaskEnd read before it/);
    const first = [outputs, ...frames.filter((_, i) => i !== at)];
    await expectTraceError(readTrace(rebuilt(first)), 'CORRUPT', new RegExp(`corrupt block at byte ${headerEnd}: outputs record names seq`));
    // A body edited and the block's CRC fixed up, as an attacker would: the record no longer hashes to its TaskEnd's.
    const edited = Buffer.from(bytes);
    const body = edited.indexOf('body of ', outputs.offset);
    expect(body).toBeGreaterThan(outputs.offset);
    expect(body).toBeLessThan(outputs.end);
    edited.write('BODY', body, 'latin1');
    edited.writeUInt32LE(crc32(edited.subarray(outputs.offset + 4, outputs.end - 4)), outputs.end - 4);
    const alteredFile = tmp('altered');
    fs.writeFileSync(alteredFile, edited);
    await expectTraceError(readTrace(alteredFile), 'CORRUPT', /outputs record for seq \d+ does not hash to its TaskEnd's hash .*: it was altered/);
    // Moved later, past the next block of entries but still in order, it describes the same tasks: read as before.
    const later = frames.findIndex((f, i) => i > at + 1 && f.outputs);
    const delayed = [...frames.slice(0, at), frames[at + 1]!, outputs, ...frames.slice(at + 2)];
    expect(frames[at + 1]!.outputs).toBe(false);
    expect(later).toBeGreaterThan(at + 1);
    expect((await readTrace(rebuilt(delayed))).outputs).toEqual((await readTrace(file)).outputs);
  });

  it('captureTaskOutputs keeps metadata, then bodies, then console lines, within the cap, and says what it cut', async () => {
    const { captureTaskOutputs } = await import('../dist/logging-channel/task-outputs.js');
    const body = new Uint8Array(100).fill(65);
    const r = captureTaskOutputs(
      9,
      [{ kind: 'fetch', fetchId: 1, method: 'POST', url: 'http://x/y', headers: [['a', 'b']], body }],
      [
        { level: 'error', text: 'é'.repeat(40) },
        { level: 'log', text: 'gone' },
      ],
      80,
    );
    expect(r.truncated).toBe(true);
    const f = r.outputs[0]!;
    expect(f.kind === 'fetch' && f.url).toBe('http://x/y');
    expect(f.bodyBytes).toBe(100);
    // 4 (POST) + 10 (url) + 2 (header) = 16 bytes of metadata: 64 left for the body, none for the console.
    expect(f.body.byteLength).toBe(64);
    expect(r.console).toEqual([]);
    expect(r.consoleOmitted).toBe(2);
    const small = captureTaskOutputs(9, [], [{ level: 'error', text: 'é'.repeat(40) }], 11);
    // A cut never splits a character.
    expect(small.console[0]!.text).toBe('é'.repeat(5));
    expect(small.console[0]!.textBytes).toBe(80);
  });

  it('a task far under the cap is kept exactly as the measuring path keeps one that just fits', async () => {
    const { captureTaskOutputs, encodeOutputsBlocks } = await import('../dist/logging-channel/task-outputs.js');
    const { ByteWriter } = await import('../dist/logging-channel/bytes.js');
    const body = new TextEncoder().encode('{"key":"k1","value":"v"}');
    const outputs = [
      { kind: 'response' as const, requestId: 7, status: 200, statusText: 'OK é', headers: [['content-type', 'application/json; charset=utf-8']] as [string, string][], body },
      { kind: 'fetch' as const, fetchId: 2, method: 'PUT', url: 'http://up/\u{1F600}', headers: [['x', 'lone \ud800']] as [string, string][], body },
      { kind: 'head' as const, requestId: 8, status: 206, statusText: '', headers: [], body: new Uint8Array(0) },
      { kind: 'chunk' as const, requestId: 8, body },
      { kind: 'end' as const, requestId: 8, error: 'Error: ☃', body: new Uint8Array(0) },
    ];
    const lines = [
      { level: 'log', text: 'plain' },
      { level: 'warn', text: 'ünïcode \ud83d' },
    ];
    const bytesOf = (cap: number) => {
      const w = new ByteWriter(64);
      const out: Uint8Array[] = [];
      encodeOutputsBlocks(w, [captureTaskOutputs(5, outputs, lines, cap)], 1 << 20, 0, (start, end) => out.push(w.view(start, end).slice()));
      return out[0]!;
    };
    // Every byte the measuring path counts: status texts, header names and values, method, url, error, bodies, console texts.
    const utf8 = (t: string) => Buffer.byteLength(t, 'utf8');
    const exact =
      utf8('OK é') +
      utf8('content-type') +
      utf8('application/json; charset=utf-8') +
      utf8('PUT') +
      utf8('http://up/\u{1F600}') +
      utf8('x') +
      utf8('lone \ud800') +
      utf8('Error: ☃') +
      3 * body.byteLength +
      utf8('plain') +
      utf8('ünïcode \ud83d');
    const justFits = captureTaskOutputs(5, outputs, lines, exact + 1);
    const farUnder = captureTaskOutputs(5, outputs, lines, 1 << 20);
    expect(justFits.truncated).toBe(false);
    expect(farUnder).toEqual(justFits);
    expect(bytesOf(1 << 20)).toEqual(bytesOf(exact + 1));
    // The count is the measuring path's own: at exactly that cap all is kept, one byte less cuts the last line.
    expect(captureTaskOutputs(5, outputs, lines, exact).truncated).toBe(false);
    expect(captureTaskOutputs(5, outputs, lines, exact - 1).truncated).toBe(true);
  });

  it('ByteWriter.str writes short ASCII byte by byte with the same bytes as the UTF-8 path', async () => {
    const { ByteReader, ByteWriter, CodecError } = await import('../dist/logging-channel/bytes.js');
    const texts = ['', 'GET', 'content-type', 'x'.repeat(127), 'x'.repeat(128), 'é', `${'a'.repeat(60)}é`, '\u{1F600}', '\u007f\u0000'];
    for (const text of texts) {
      const w = new ByteWriter(1);
      w.str(text);
      const expected = Buffer.concat([Buffer.from(varuint(Buffer.byteLength(text, 'utf8'))), Buffer.from(text, 'utf8')]);
      expect(Buffer.from(w.view(0, w.length))).toEqual(expected);
      expect(new ByteReader(w.view(0, w.length), 0, w.length, 'test').str()).toBe(text);
    }
    // A lone surrogate after ASCII still has no exact UTF-8 form, short or not.
    expect(() => new ByteWriter(1).str('ab\ud800')).toThrow(CodecError);
    expect(() => new ByteWriter(1).str(42 as unknown as string)).toThrow(CodecError);
  });

  it("a streamed response's head, chunk and end outputs round-trip through an outputs block", async () => {
    const { captureTaskOutputs, decodeOutputsBlock, encodeOutputsBlocks } = await import('../dist/logging-channel/task-outputs.js');
    const { ByteWriter } = await import('../dist/logging-channel/bytes.js');
    const empty = new Uint8Array(0);
    const record = captureTaskOutputs(
      12,
      [
        { kind: 'head', requestId: 3, status: 206, statusText: 'Partial', headers: [['content-type', 'text/plain']], body: empty },
        { kind: 'chunk', requestId: 3, body: new TextEncoder().encode('chunk one') },
        { kind: 'end', requestId: 3, error: 'Error: the source broke', body: empty },
        { kind: 'end', requestId: 4, error: null, body: empty },
      ],
      [],
      1024,
    );
    const w = new ByteWriter(256);
    const blocks: Uint8Array[] = [];
    encodeOutputsBlocks(w, [record], 4096, 0, (start, end) => blocks.push(w.view(start, end).slice()));
    const [decoded] = decodeOutputsBlock(blocks[0]!);
    expect(decoded!.seq).toBe(12);
    expect(
      decoded!.outputs.map((o) => [o.kind, 'requestId' in o ? o.requestId : null, 'status' in o ? o.status : null, 'error' in o ? o.error : null, o.headers, new TextDecoder().decode(o.body)]),
    ).toEqual([
      ['head', 3, 206, null, [['content-type', 'text/plain']], ''],
      ['chunk', 3, 0, null, [], 'chunk one'],
      ['end', 3, 0, 'Error: the source broke', [], ''],
      ['end', 4, 0, null, [], ''],
    ]);
  });

  it('a flush writes its entries and outputs in one write, yet the entries go out when the outputs do not fit', async () => {
    const { captureTaskOutputs, recordTaskHash } = await import('../dist/logging-channel/task-outputs.js');
    const { openTraceSegments } = await import('../dist/logging-channel/trace-segments.js');
    const entries = makeEntries(4); // Boot, Request, Clock, TaskEnd (seq 4)
    const record = () => captureTaskOutputs(4, [{ kind: 'response', requestId: 2, status: 200, statusText: 'OK', headers: [], body: new Uint8Array(40) }], [], 64);
    entries[3]!.payload = encodeTaskEnd({ outputCount: 1, hash: recordTaskHash(record())! });
    // The size of the file with the entries block alone.
    const alone = tmp('alone');
    const a = await TraceWriter.open(alone, v2);
    a.append(entries);
    a.close();
    const entriesOnlyBytes = fs.statSync(alone).size;

    // Room for the entries block and not for the outputs block after it: the outputs are dropped, the entries kept.
    const full = tmp('full');
    const b = await TraceWriter.open(full, v2, { maxBytes: entriesOnlyBytes });
    b.append(entries);
    b.appendOutputs(record());
    b.flush();
    expect(b.outputsDropped).toBe(1);
    expect(b.blocksWritten).toBe(1);
    b.close();
    expect(fs.statSync(full).size).toBe(entriesOnlyBytes);
    expect(plain((await readTrace(full)).entries)).toEqual(plain(entries));

    // With room for both: one write, two blocks, both read back.
    const both = tmp('both');
    const c = await TraceWriter.open(both, v2);
    c.append(entries);
    c.appendOutputs(record());
    c.flush();
    expect(c.blocksWritten).toBe(2);
    c.close();
    const read = await readTrace(both);
    expect(plain(read.entries)).toEqual(plain(entries));
    expect(read.outputs.map((r) => r.seq)).toEqual([4]);

    // Segments: the outputs block would take the first segment past its bound, so it starts the next one.
    const seg = tmp('seg');
    const d = await TraceWriter.open(seg, v2, { segmentBytes: entriesOnlyBytes + 10 });
    d.append(entries);
    d.appendOutputs(record());
    d.flush();
    d.close();
    expect(d.segments).toBe(2);
    const kept: number[] = [];
    const segmented: Entry[] = [];
    const reader = await openTraceSegments(seg, { onOutputs: (block) => kept.push(...block.records.map((r) => r.seq)) });
    for await (const block of reader) segmented.push(...block.entries);
    await reader.close();
    expect(plain(segmented)).toEqual(plain(entries));
    expect(kept).toEqual([4]);
  });

  it('appendTaskOutputs writes the same file as appendOutputs(captureTaskOutputs(...)), split over blocks or in one', async () => {
    const { captureTaskOutputs } = await import('../dist/logging-channel/task-outputs.js');
    const wide: TraceHeader = { ...v2, outputs: { maxBytesPerTask: 4096 } };
    const emittedFor = (seq: number) => {
      // Every 5th task is past the per-task cap (cut to 4 KiB); those and every 7th are too large for a 1 KiB block alone (dropped).
      const size = seq % 7 === 0 ? 2000 : seq % 5 === 0 ? 5000 : 30 + (seq % 11);
      const outputs = [
        {
          kind: 'response' as const,
          requestId: seq,
          status: 200,
          statusText: seq % 2 ? 'OK' : 'Ökay',
          headers: [['content-type', 'text/plain']] as [string, string][],
          body: new Uint8Array(size).fill(seq),
        },
        { kind: 'chunk' as const, requestId: seq, body: new Uint8Array(3) },
      ];
      const lines = seq % 3 ? [{ level: 'log', text: `line ${seq} é` }] : [];
      return { outputs, lines };
    };
    const write = async (file: string, maxBatchBytes: number, direct: boolean) => {
      const entries = makeEntries(120);
      const w = await TraceWriter.open(file, wide, { maxBatchBytes, blockBytes: 600 });
      for (const e of entries) {
        w.append([e]);
        if (e.kind !== Kind.TaskEnd) continue;
        const { outputs, lines } = emittedFor(e.seq);
        if (direct) w.appendTaskOutputs(e.seq, outputs, lines);
        else w.appendOutputs(captureTaskOutputs(e.seq, outputs, lines, 4096));
      }
      w.close();
      return { bytes: fs.readFileSync(file), dropped: w.outputsDropped, written: w.outputsWritten };
    };
    for (const maxBatchBytes of [1024, 1 << 20]) {
      const viaRecords = await write(tmp('records'), maxBatchBytes, false);
      const direct = await write(tmp('direct'), maxBatchBytes, true);
      // Same bytes but for the header's createdAt, which is the same object here: the whole file.
      expect(direct.bytes.equals(viaRecords.bytes), `maxBatchBytes ${maxBatchBytes}`).toBe(true);
      expect([direct.dropped, direct.written]).toEqual([viaRecords.dropped, viaRecords.written]);
      // TaskEnds at seq 4, 7, ..., 118: 6 multiples of 7 and 7 other multiples of 5.
      expect(direct.dropped).toBe(maxBatchBytes === 1024 ? 13 : 0);
    }
  });

  it('appendOutputs refuses a trace without outputs and a record for a seq not yet appended', async () => {
    const w1 = await TraceWriter.open(tmp(), header);
    expect(() => w1.appendOutputs({ seq: 1, truncated: false, outputs: [], console: [], consoleOmitted: 0 })).toThrow(/keeps no outputs/);
    w1.close();
    const w2 = await TraceWriter.open(tmp(), v2);
    w2.append(makeEntries(4));
    expect(() => w2.appendOutputs({ seq: 5, truncated: false, outputs: [], console: [], consoleOmitted: 0 })).toThrow(/not an appended TaskEnd/);
    w2.close();
  });
});

/** Unsigned LEB128, written out independently of the codec under test. */
function varuint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

// WHATWG Streams, Encoding streams and Compression Streams in the guest (hypervisor/guest/lazy/),
// and bodies as streams: each probe runs in a bare QuickJS context with the built web glue (its lazy
// modules handed over by a host function, as the VM does) and in Node 20, whose native streams are
// the reference; the JSON of the results must agree. Then what is ftjs's own: lazy loading (nothing
// evaluated at boot), boot-captured intrinsics, and compressed bytes checked with node:zlib.

import { readFileSync } from 'node:fs';
import { gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import variant from '@jitl/quickjs-wasmfile-release-sync';
import type { QuickJSContext, QuickJSRuntime, QuickJSWASMModule } from 'quickjs-emscripten-core';
import { newQuickJSWASMModuleFromVariant } from 'quickjs-emscripten-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { splitWebGlue } from '../dist/hypervisor/vm/glue.js';

const WEB = splitWebGlue(readFileSync(new URL('../dist/hypervisor/vm/guest/web.js', import.meta.url), 'utf8'));
const OP_LAZY_MODULE = 9;

let mod: QuickJSWASMModule;
let rt: QuickJSRuntime;
let ctx: QuickJSContext;
let lazyLoads: string[] = [];

function evalOrThrow(c: QuickJSContext, code: string): unknown {
  const r = c.evalCode(code);
  if (r.error) {
    const e = c.dump(r.error);
    r.error.dispose();
    throw new Error(`QuickJS evaluation failed: ${JSON.stringify(e)}`);
  }
  const v = c.dump(r.value);
  r.value.dispose();
  return v;
}

function bootContext(): QuickJSContext {
  const c = rt.newContext();
  const host = c.newFunction('host', (op, name) => {
    if (c.getNumber(op) !== OP_LAZY_MODULE) return undefined;
    const moduleName = c.getString(name);
    lazyLoads.push(moduleName);
    const code = WEB.lazy[moduleName];
    return code === undefined ? undefined : c.newString(code);
  });
  c.setProp(c.global, '__ftjs_host', host);
  host.dispose();
  evalOrThrow(c, WEB.boot);
  evalOrThrow(c, 'delete globalThis.__ftjs_host; delete globalThis.__ftjs_web;');
  return c;
}

/** Runs `body` (an async function body) in the guest context; returns its JSON result or the error's name. */
function inGuest(body: string, c: QuickJSContext = ctx): unknown {
  evalOrThrow(c, `globalThis.__probe = (async () => { ${body} })().then((v) => JSON.stringify({ v }), (e) => JSON.stringify({ err: e && e.name, msg: String(e && e.message) })); undefined;`);
  for (let round = 0; round < 10_000 && c.runtime.hasPendingJob(); round++) {
    const jobs = c.runtime.executePendingJobs();
    if (jobs.error) {
      const e = c.dump(jobs.error);
      jobs.error.dispose();
      throw new Error(`pending job failed: ${JSON.stringify(e)}`);
    }
    jobs.dispose();
  }
  const p = c.getProp(c.global, '__probe');
  const st = c.getPromiseState(p);
  p.dispose();
  if (st.type !== 'fulfilled') throw new Error(`probe did not settle: ${st.type}`);
  const out = c.dump(st.value) as string;
  st.value.dispose();
  return JSON.parse(out);
}

async function inNode(body: string): Promise<unknown> {
  const fn = (0, eval)(`(async () => { ${body} })`) as () => Promise<unknown>;
  return fn().then(
    (v) => JSON.parse(JSON.stringify({ v })),
    (e: Error) => ({ err: e?.name, msg: String(e?.message) }),
  );
}

beforeAll(async () => {
  mod = await newQuickJSWASMModuleFromVariant(variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0]);
  rt = mod.newRuntime();
  ctx = bootContext();
});

afterAll(() => {
  ctx?.dispose();
  rt?.dispose();
});

const READ_ALL = `
  const readAll = async (stream) => { const out = []; for await (const c of stream) out.push(c instanceof Uint8Array ? ['u8', ...c] : c); return out; };
  const bytesOf = (s) => Array.from(new TextEncoder().encode(s));
`;

/** Probes whose results must equal Node 20's (errors compared by name). */
const PROBES: Record<string, string> = {
  'pipeThrough a TransformStream, then TextEncoderStream and TextDecoderStream': `${READ_ALL}
    const upper = new TransformStream({ transform(chunk, c) { c.enqueue(chunk.toUpperCase()); } });
    const source = ReadableStream.from(['hé', 'llo ', '€!']);
    const text = source.pipeThrough(upper).pipeThrough(new TextEncoderStream()).pipeThrough(new TextDecoderStream());
    return readAll(text);`,
  'TextEncoderStream joins a surrogate pair split across chunks; a lone one at the end is U+FFFD': `${READ_ALL}
    const enc = (parts) => readAll(ReadableStream.from(parts).pipeThrough(new TextEncoderStream()));
    return [await enc(['a\\uD83D', '\\uDE00b']), await enc(['x\\uD83D']), new TextEncoderStream().encoding];`,
  'TextDecoderStream decodes characters split across chunks, honours fatal and the BOM': `${READ_ALL}
    const dec = (chunks, label, opts) => readAll(ReadableStream.from(chunks.map((c) => new Uint8Array(c))).pipeThrough(new TextDecoderStream(label, opts)));
    const s = new TextDecoderStream('utf-8', { fatal: true, ignoreBOM: true });
    return [await dec([[0xE2], [0x82, 0xAC], [0xEF, 0xBB]], 'utf-8'), await dec([[0xEF, 0xBB, 0xBF, 0x41]]), [s.encoding, s.fatal, s.ignoreBOM],
      await dec([[0xFF]], 'utf-8', { fatal: true }).catch((e) => e.name), await dec([[0xE2, 0x82]]),
      await readAll(ReadableStream.from(['no bytes']).pipeThrough(new TextDecoderStream())).catch((e) => e.name)];`,
  'tee gives both branches every chunk; cancel of one branch keeps the other': `${READ_ALL}
    const [a, b] = ReadableStream.from([1, 2, 3]).tee();
    const [c, d] = ReadableStream.from(['x', 'y']).tee();
    const readD = readAll(d);
    c.cancel('nope');
    return [await readAll(a), await readAll(b), await readD];`,
  'pipeTo a WritableStream: chunks, close, abort and backpressure through desiredSize': `
    const written = [];
    let closed = false;
    const ws = new WritableStream({ write(c) { written.push(c); }, close() { closed = true; } }, new CountQueuingStrategy({ highWaterMark: 2 }));
    const writer = ws.getWriter();
    const sizes = [writer.desiredSize];
    const first = writer.write('a'); sizes.push(writer.desiredSize);
    await first; writer.releaseLock();
    await ReadableStream.from(['b', 'c']).pipeTo(ws);
    const aborted = new WritableStream({ write() { throw new Error('write failed'); } });
    const failure = await ReadableStream.from(['z']).pipeTo(aborted).catch((e) => e.message);
    return [written, closed, sizes, failure, ws.locked];`,
  'a byte stream with a BYOB reader fills the caller’s buffer; autoAllocateChunkSize for the default reader': `
    const make = () => new ReadableStream({ type: 'bytes', start(c) { c.enqueue(new Uint8Array([1, 2, 3, 4, 5, 6])); c.close(); } });
    const reader = make().getReader({ mode: 'byob' });
    const first = await reader.read(new Uint8Array(4));
    const second = await reader.read(new Uint8Array(4));
    const third = await reader.read(new Uint8Array(4));
    let n = 0;
    const auto = new ReadableStream({ type: 'bytes', autoAllocateChunkSize: 3, pull(c) { const v = c.byobRequest.view; v[0] = ++n; c.byobRequest.respond(1); if (n === 2) c.close(); } });
    const got = [];
    for await (const chunk of auto) got.push([chunk.constructor.name, ...chunk]);
    return [[...first.value], first.done, [...second.value], third.done, third.value && third.value.byteLength, got];`,
  'queuing strategies: sizes, highWaterMark and the controller’s desiredSize': `
    const b = new ByteLengthQueuingStrategy({ highWaterMark: 10 });
    const c = new CountQueuingStrategy({ highWaterMark: 3 });
    let controller;
    new ReadableStream({ start(ctl) { controller = ctl; } }, b);
    const d0 = controller.desiredSize; controller.enqueue(new Uint8Array(4)); const d1 = controller.desiredSize;
    return [b.highWaterMark, b.size(new Uint8Array(7)), c.highWaterMark, c.size('anything'), d0, d1, Object.prototype.toString.call(b)];`,
  'Response and Request bodies are streams: async iteration yields Uint8Array, bodyUsed, a second read is refused': `${READ_ALL}
    const r = new Response('héllo');
    const body = r.body;
    const before = [body instanceof ReadableStream, r.bodyUsed, r.body === body];
    const chunks = await readAll(body);
    const again = await r.text().catch((e) => e.name);
    const q = new Request('http://x/', { method: 'POST', body: ReadableStream.from([new Uint8Array([104, 105])]), duplex: 'half' });
    const s = new Response(ReadableStream.from([new Uint8Array([123, 34, 97, 34, 58]), new Uint8Array([49, 125])]));
    return [before, chunks, r.bodyUsed, again, await q.text(), q.bodyUsed, await s.json(), new Response(null).body, new Response('').body instanceof ReadableStream];`,
  'a locked or disturbed stream cannot become a body; a body stream of non-bytes fails the read': `
    const locked = new ReadableStream(); locked.getReader();
    const read = ReadableStream.from([new Uint8Array([1])]); const rd = read.getReader(); await rd.read(); rd.releaseLock();
    return [(() => { try { new Response(locked); return 'ok'; } catch (e) { return e.name; } })(),
      (() => { try { new Response(read); return 'ok'; } catch (e) { return e.name; } })(),
      await new Response(ReadableStream.from(['text'])).text().catch((e) => e.name)];`,
  'clone() tees a stream body; Blob.stream(); arrayBuffer and blob of a streamed body': `
    const r = new Response(ReadableStream.from([new Uint8Array([97]), new Uint8Array([98])]), { headers: { 'content-type': 'text/x' } });
    const c = r.clone();
    const blob = new Blob(['blob ', 'parts']);
    const fromBlob = [];
    for await (const chunk of blob.stream()) fromBlob.push(...chunk);
    const b = await new Response(ReadableStream.from([new Uint8Array([1, 2])]), { headers: { 'content-type': 'a/b' } }).blob();
    return [await r.text(), await c.text(), fromBlob, b.size, b.type, new Uint8Array(await new Response(blob.stream()).arrayBuffer()).length];`,
  'errors: an errored stream rejects reads; cancel reason reaches the source; releaseLock and closed': `
    let reason;
    const s = new ReadableStream({ start(c) { c.error(new TypeError('boom')); } });
    const r = s.getReader();
    const e1 = await r.read().catch((e) => [e.name, e.message]);
    const cancelled = new ReadableStream({ cancel(why) { reason = why; } });
    await cancelled.cancel('because');
    const t = new ReadableStream({ start(c) { c.close(); } }).getReader();
    await t.closed;
    return [e1, reason, (await t.read()).done, await r.closed.catch((e) => e.message)];`,
  'CompressionStream and DecompressionStream round trip every format; bad input and bad formats fail': `
    const text = 'round trip '.repeat(200);
    const out = [];
    for (const f of ['gzip', 'deflate', 'deflate-raw']) {
      const packed = new Blob([text]).stream().pipeThrough(new CompressionStream(f));
      out.push(await new Response(packed.pipeThrough(new DecompressionStream(f))).text() === text);
    }
    const bad = await new Response(ReadableStream.from([new Uint8Array([1, 2, 3, 4])]).pipeThrough(new DecompressionStream('gzip'))).arrayBuffer().then(() => 'ok', () => 'failed');
    const fmt = (() => { try { new CompressionStream('brotli'); return 'ok'; } catch (e) { return e.name; } })();
    return [out, bad, fmt, Object.prototype.toString.call(new CompressionStream('gzip'))];`,
  'interface objects: names, toStringTag, prototype methods, getters': `
    const names = ['ReadableStream', 'WritableStream', 'TransformStream', 'ReadableStreamDefaultReader', 'ReadableStreamBYOBReader',
      'WritableStreamDefaultWriter', 'ByteLengthQueuingStrategy', 'CountQueuingStrategy', 'TextEncoderStream', 'TextDecoderStream',
      'CompressionStream', 'DecompressionStream'];
    return names.map((n) => [n, typeof globalThis[n], globalThis[n].name, Object.getOwnPropertyDescriptor(globalThis, n).enumerable]).concat([
      ['rs', ['cancel', 'getReader', 'pipeThrough', 'pipeTo', 'tee', 'values'].map((m) => typeof ReadableStream.prototype[m])],
      ['asyncIterator', typeof ReadableStream.prototype[Symbol.asyncIterator]],
      ['tes', typeof new TextEncoderStream().readable, typeof new TextDecoderStream().writable]]);`,
};

describe('streams in the guest, compared with Node 20', () => {
  test.each(Object.entries(PROBES))('%s', async (_name, body) => {
    const expected = await inNode(body);
    expect(inGuest(body)).toEqual(expected);
  });
});

describe("what is ftjs's own", () => {
  test('the streams and compression modules are evaluated on first use only, and the globals then become data properties', () => {
    lazyLoads = [];
    const c = bootContext();
    try {
      expect(lazyLoads).toEqual([]);
      // Plain bodies never load streams: the hot path of every request.
      expect(
        inGuest(
          `return [await new Response('x').text(), await new Request('http://h/', { method: 'POST', body: 'y' }).text(), typeof Object.getOwnPropertyDescriptor(globalThis, 'ReadableStream').get]`,
          c,
        ),
      ).toEqual({ v: ['x', 'y', 'function'] });
      expect(lazyLoads).toEqual([]);
      expect(
        inGuest(
          `const R = ReadableStream; const d = Object.getOwnPropertyDescriptor(globalThis, 'ReadableStream'); return [typeof R, 'value' in d, d.writable, d.enumerable, d.configurable, typeof Object.getOwnPropertyDescriptor(globalThis, 'CompressionStream').get]`,
          c,
        ),
      ).toEqual({ v: ['function', true, true, false, true, 'function'] });
      expect(lazyLoads).toEqual(['streams']);
      inGuest(`return typeof CompressionStream`, c);
      expect(lazyLoads).toEqual(['streams', 'compression']);
      // A guest may replace a lazy global before it was ever read, as any other global.
      expect(inGuest(`globalThis.TransformStream = 42; return [TransformStream, typeof WritableStream]`, c)).toEqual({ v: [42, 'function'] });
    } finally {
      c.dispose();
    }
  });

  test('the lazy modules run on the intrinsics captured at boot, whatever the guest replaced before first use', () => {
    lazyLoads = [];
    const c = bootContext();
    try {
      // (Read with a reader: Response.text() itself is the eager platform's, which uses the global Promise.)
      const out = inGuest(
        `const decoder = new TextDecoder();
        const boom = () => { throw new Error('patched global used'); };
        globalThis.Promise = boom; globalThis.queueMicrotask = boom; globalThis.TextEncoder = boom; globalThis.TextDecoder = boom;
        globalThis.AbortController = boom; globalThis.DOMException = boom; globalThis.DataView = boom; globalThis.Uint16Array = boom;
        const packed = new Blob(['intrinsics']).stream().pipeThrough(new CompressionStream('gzip')).pipeThrough(new DecompressionStream('gzip'));
        let text = '';
        for await (const chunk of packed.pipeThrough(new TransformStream())) text += decoder.decode(chunk, { stream: true });
        const ws = new WritableStream({ write() {} });
        return [text, typeof ws.getWriter().closed];`,
        c,
      ) as { v?: unknown[]; err?: string; msg?: string };
      expect(out.err, out.msg).toBeUndefined();
      expect(out.v![0]).toBe('intrinsics');
    } finally {
      c.dispose();
    }
  });

  test('errors the spec names (where Node 20 is looser): corrupt or truncated input and a non-byte chunk are TypeErrors', () => {
    const out = inGuest(`
      const run = (format, chunks, compress) => new Response(ReadableStream.from(chunks).pipeThrough(compress ? new CompressionStream(format) : new DecompressionStream(format))).arrayBuffer().catch((e) => [e.name, e.message]);
      const whole = new Uint8Array(await new Response(new Blob(['abc'.repeat(50)]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());
      return [await run('gzip', [new Uint8Array([1, 2, 3, 4])]), await run('gzip', [whole.subarray(0, 12)]), await run('gzip', ['str'], true)];`) as { v: Array<[string, string]> };
    expect(out.v[0]![0]).toBe('TypeError');
    expect(out.v[1]).toEqual(['TypeError', expect.stringMatching(/DecompressionStream: .*(EOF|ended)/i)]);
    expect(out.v[2]).toEqual(['TypeError', 'CompressionStream: chunk must be an ArrayBuffer or an ArrayBufferView']);
  });

  test('structuredClone refuses streams with a DataCloneError, as the HTML spec says (Node 20 throws a TypeError)', () => {
    expect(inGuest(`return [new ReadableStream(), new WritableStream(), new TransformStream()].map((s) => { try { structuredClone(s); return 'cloned'; } catch (e) { return e.name; } });`)).toEqual({
      v: ['DataCloneError', 'DataCloneError', 'DataCloneError'],
    });
  });

  test('compressed bytes from the guest decompress with node:zlib; gzip carries no time, so output is a pure function of input', () => {
    const text = 'ftjs '.repeat(1000);
    const bytes = (format: string) =>
      Buffer.from(
        (
          inGuest(`return Array.from(new Uint8Array(await new Response(new Blob([${JSON.stringify(text)}]).stream().pipeThrough(new CompressionStream('${format}'))).arrayBuffer()));`) as {
            v: number[];
          }
        ).v,
      );
    const gz = bytes('gzip');
    expect(gunzipSync(gz).toString()).toBe(text);
    expect(gz.readUInt32LE(4)).toBe(0);
    expect(bytes('gzip')).toEqual(gz);
    expect(inflateSync(bytes('deflate')).toString()).toBe(text);
    expect(inflateRawSync(bytes('deflate-raw')).toString()).toBe(text);
  });
});

// The guest's per-request path (issue 19, guest19): what the cheaper glue hands the host must be what
// the old one handed it. The respond call's head is built by concatenation (web.responseHead) instead
// of JSON.stringify, and the handler's ctx is an ExecutionContext instance instead of an object
// literal; an Idempotency-Key is looked for only when the host digested the body.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBootConfig } from '../dist/hypervisor/vm/boot-config.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import { type LiveEvent, Vm } from '../dist/hypervisor/vm/vm.js';
import { LivePort } from '../dist/recorder/live-port.js';
import { GuestWeb } from './web-harness.js';

describe('web.responseHead', () => {
  let web: GuestWeb;
  beforeAll(async () => {
    web = await GuestWeb.create();
  });

  /** For each response `expr` builds: [head, JSON.stringify of responseParts' head, body is responseParts' body]. */
  const compare = (expr: string) =>
    web.probe(`(() => {
      const out = [];
      for (const r of ${expr}) {
        const parts = __web.responseParts(r);
        const head = __web.responseHead(r);
        const body = __web.responseBody;
        out.push([head, JSON.stringify([parts.status, parts.statusText, parts.headers]), body === parts.body]);
      }
      return out;
    })()`);

  it('is JSON.stringify([status, statusText, headers]) of responseParts, and leaves its body', () => {
    const r = compare(`[
      new Response('ok'),
      new Response(null, { status: 204 }),
      new Response('{}', { status: 404, statusText: 'Not "Found" \\\\ here', headers: { 'Content-Type': 'application/json; charset=utf-8' } }),
      new Response('x', { statusText: 'caf\\u00e9', headers: [['X-Quote', 'a"b'], ['X-Backslash', 'a\\\\b'], ['X-Tab', 'a\\tb'], ['X-Del', 'a\\u007fb'], ['X-Latin1', 'caf\\u00e9'], ['X-Empty', '']] }),
      new Response('y', { headers: [['Set-Cookie', 'a=1'], ['set-cookie', 'b=2'], ['X-Dup', '1'], ['x-dup', '2']] }),
      new Response(new Uint8Array([1, 2, 3]), { headers: new Headers({ 'X-From': 'Headers' }) }),
      Response.json({ a: 1 }, { status: 201 }),
      Response.redirect('http://example.com/a b', 301),
      Response.error(),
      (() => { const r = new Response('z'); r.headers.append('X-Late', '1'); return r; })(),
    ]`);
    expect(r.err).toBeUndefined();
    const rows = r.v as Array<[string, string, boolean]>;
    expect(rows).toHaveLength(10);
    for (const [head, expected, sameBody] of rows) {
      expect(head).toBe(expected);
      expect(sameBody).toBe(true);
    }
    // Escapes went through JSON.stringify: the host parses them back to the values given.
    expect(JSON.parse(rows[3]![0])).toEqual([
      200,
      'café',
      [
        ['x-quote', 'a"b'],
        ['x-backslash', 'a\\b'],
        ['x-tab', 'a\tb'],
        ['x-del', 'a\u007fb'],
        ['x-latin1', 'café'],
        ['x-empty', ''],
        ['content-type', 'text/plain;charset=UTF-8'],
      ],
    ]);
  });

  it('stays exact past its cache of quoted strings (more distinct values than it keeps)', () => {
    const r = compare(`Array.from({ length: 400 }, (_, i) => new Response('v', { headers: { 'X-N': 'value-' + (i % 300) + (i % 7 === 0 ? '"' : '') } }))`);
    const rows = r.v as Array<[string, string, boolean]>;
    expect(rows).toHaveLength(400);
    for (const [head, expected] of rows) expect(head).toBe(expected);
  });

  it('rejects what is not a Response with TypeError, as responseParts does', () => {
    for (const e of ['__web.responseHead({})', '__web.responseHead(null)', '__web.responseHead(new Request("http://h/"))', '__web.responseHead(Object.create(Response.prototype))']) {
      expect(web.probe(e).err, e).toBe('TypeError');
    }
  });
});

describe('a request through a VM', () => {
  let dir: string;
  let vm: Vm;
  const encoder = new TextEncoder();
  const run = (event: LiveEvent) => vm.runLive(event);
  const get = (url: string, headers: Array<[string, string]> = []): LiveEvent => ({ kind: 'request', method: 'GET', url: `http://vm${url}`, headers, body: new Uint8Array(0) });
  const post = (url: string, body: string, headers: Array<[string, string]> = []): LiveEvent => ({ kind: 'request', method: 'POST', url: `http://vm${url}`, headers, body: encoder.encode(body) });
  const text = (body: Uint8Array | string) => (typeof body === 'string' ? body : new TextDecoder().decode(body));

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ftjs-guest19-'));
    writeFileSync(
      path.join(dir, 'app.js'),
      `let last = null;
      let runs = 0;
      export default {
        async fetch(request, env, ctx) {
          const url = new URL(request.url);
          if (url.pathname === '/ctx') {
            const fresh = ctx !== last;
            last = ctx;
            return Response.json({
              fresh,
              own: Object.keys(ctx),
              name: ctx.constructor.name,
              methods: [typeof ctx.waitUntil, typeof ctx.passThroughOnException],
              pass: ctx.passThroughOnException(),
            });
          }
          if (url.pathname === '/wait') {
            const { waitUntil } = ctx; // detached from ctx, as Workers allows
            waitUntil(Promise.reject(new Error('background failed')));
            ctx.waitUntil(Promise.resolve(1));
            return new Response('answered');
          }
          if (url.pathname === '/keyed') {
            runs++;
            return new Response('run ' + runs + ': ' + (await request.text()), { headers: { 'X-Q': 'say "hi"' }, statusText: 'Fine' });
          }
          if (url.pathname === '/patch') {
            for (const name of ['get', 'set', 'has', 'delete', 'clear']) Map.prototype[name] = () => { throw new Error('patched Map.prototype.' + name); };
            return new Response('patched');
          }
          if (url.pathname === '/n') return new Response('n', { headers: { 'X-N': 'value-' + url.search } });
          return new Response('?', { status: 404 });
        },
      };`,
    );
    const config = makeBootConfig(loadGuest(path.join(dir, 'app.js')), {});
    let live: Vm | null = null;
    const port = new LivePort({ push: (e) => live!.sink.push(e) }, { taskBudgetMs: 10_000 });
    live = await Vm.create(config, port);
    vm = live;
    expect(vm.bootLive().divergence).toBeNull();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives each request a fresh ctx whose methods are on its prototype, as workerd does', () => {
    const first = run(get('/ctx'));
    const second = run(get('/ctx'));
    for (const result of [first, second]) {
      expect(result.outputs[0]).toMatchObject({ kind: 'response', status: 200, headers: [['content-type', 'application/json']] });
      expect(JSON.parse(text(result.outputs[0]!.body))).toEqual({ fresh: true, own: [], name: 'ExecutionContext', methods: ['function', 'function'] });
    }
  });

  it('reports a rejected waitUntil promise, even from a detached waitUntil, after the response', () => {
    const result = run(get('/wait'));
    expect(result.outputs[0]).toMatchObject({ kind: 'response', status: 200 });
    expect(text(result.outputs[0]!.body)).toBe('answered');
    expect(result.console.map((l) => l.text).filter((t) => t.startsWith('Uncaught (waitUntil)'))).toEqual([expect.stringContaining('Error: background failed')]);
  });

  it('answers a retry with the same Idempotency-Key from the kept response, and runs an unkeyed request each time', () => {
    const key: Array<[string, string]> = [['idempotency-key', 'k-1']];
    const a = run(post('/keyed', 'one', key));
    const b = run(post('/keyed', 'one', key));
    const c = run(post('/keyed', 'one'));
    expect(a.outputs[0]).toMatchObject({
      status: 200,
      statusText: 'Fine',
      headers: [
        ['x-q', 'say "hi"'],
        ['content-type', 'text/plain;charset=UTF-8'],
      ],
    });
    expect(text(a.outputs[0]!.body)).toBe('run 1: one');
    expect(b.outputs[0]).toMatchObject({
      status: 200,
      headers: [
        ['x-q', 'say "hi"'],
        ['content-type', 'text/plain;charset=UTF-8'],
        ['idempotent-replayed', 'true'],
      ],
    });
    expect(text(b.outputs[0]!.body)).toBe('run 1: one');
    expect(text(c.outputs[0]!.body)).toBe('run 2: one');
  });

  // Last: it leaves Map.prototype patched in this VM.
  it('answers past the quoted-string cache with Map.prototype patched by the guest', () => {
    expect(text(run(get('/patch')).outputs[0]!.body)).toBe('patched');
    for (let i = 0; i < 300; i++) {
      const result = run(get(`/n?${i}`));
      expect(result.outputs[0]).toMatchObject({
        kind: 'response',
        status: 200,
        headers: [
          ['x-n', `value-?${i}`],
          ['content-type', 'text/plain;charset=UTF-8'],
        ],
      });
    }
  });
});

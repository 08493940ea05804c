// navigator and URLPattern in the guest web platform. URLPattern is the urlpattern-polyfill package,
// evaluated lazily on first use: compared here with the same package running in Node.

import { readFileSync } from 'node:fs';
import { URLPattern as NodeURLPattern } from 'urlpattern-polyfill/urlpattern';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestWeb } from './web-harness.js';

let web: GuestWeb;
beforeAll(async () => {
  web = await GuestWeb.create();
});
afterAll(() => web?.dispose());

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('navigator', () => {
  it('has a deterministic userAgent naming the ftjs version, and one hardware thread', () => {
    expect(web.probe(`[navigator.userAgent, navigator.hardwareConcurrency, Object.prototype.toString.call(navigator), navigator instanceof Navigator]`)).toEqual({
      v: [`ftjs/${version}`, 1, '[object Navigator]', true],
    });
    expect(web.probe(`new Navigator()`).err).toBe('TypeError');
  });
});

describe('URLPattern', () => {
  it('is not evaluated until first used, then becomes an ordinary global', () => {
    const fresh = `(() => { const d = Object.getOwnPropertyDescriptor(globalThis, 'URLPattern'); return [typeof d.get, d.enumerable]; })()`;
    const ctx = web; // the shared context has not touched URLPattern yet
    expect(ctx.probe(fresh)).toEqual({ v: ['function', false] });
    expect(ctx.probe(`typeof URLPattern`)).toEqual({ v: 'function' });
    expect(
      ctx.probe(`(() => { const d = Object.getOwnPropertyDescriptor(globalThis, 'URLPattern'); return [typeof d.value, d.writable, d.enumerable, d.configurable, URLPattern === URLPattern]; })()`),
    ).toEqual({
      v: ['function', true, false, true, true],
    });
    // Nothing of the polyfill's internals leaks into the global scope.
    expect(ctx.probe(`Object.getOwnPropertyNames(globalThis).filter((k) => /lazy|Part$/i.test(k))`)).toEqual({ v: [] });
  });

  const cases: Array<[string | Record<string, string>, string, string?]> = [
    ['/books/:id', 'https://example.com/books/123', 'https://example.com'],
    [{ pathname: '/books/:id(\\d+)' }, 'https://example.com/books/abc'],
    [{ pathname: '/api/*' }, 'https://x.test/api/v1/users?x=1'],
    [{ hostname: '{:sub.}?example.com', pathname: '/:a/:b?' }, 'https://shop.example.com/p'],
    ['https://*.example.com/files/:name.:ext', 'https://cdn.example.com/files/report.pdf'],
    [{ search: 'q=:query' }, 'https://e.com/?q=ftjs'],
  ];
  it.each(cases)('matches %j against %s as the polyfill does in Node', (pattern, url, base) => {
    const node = (() => {
      const p = base === undefined ? new NodeURLPattern(pattern as never) : new NodeURLPattern(pattern as string, base);
      const r = p.exec(url);
      return [p.test(url), r ? [r.pathname.groups, r.hostname.groups, r.search.groups] : null, p.pathname, p.hostname];
    })();
    const args = base === undefined ? JSON.stringify(pattern) : `${JSON.stringify(pattern)}, ${JSON.stringify(base)}`;
    const mine = web.probe(`(() => { const p = new URLPattern(${args}); const r = p.exec(${JSON.stringify(url)});
      return [p.test(${JSON.stringify(url)}), r ? [r.pathname.groups, r.hostname.groups, r.search.groups] : null, p.pathname, p.hostname]; })()`);
    expect(mine).toEqual({ v: JSON.parse(JSON.stringify(node)) });
  });

  it('throws a TypeError for an invalid pattern', () => {
    expect(web.probe(`new URLPattern({ pathname: '/(' })`).err).toBe('TypeError');
  });
});

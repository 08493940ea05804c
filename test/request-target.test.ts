// The edge decides what a request names: an operator endpoint (after normalizing the path) or the
// guest's URL, whose origin comes from a validated Host and whose path from the request-target.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyTarget, hostProblem, normalizePath, normalizePathSlow, publicOrigin } from '../dist/hypervisor/node/request-target.js';
import { type FtjsProcess, startRun } from './helpers.js';

describe('classifyTarget', () => {
  it('refuses a Host that is not a host[:port] authority', () => {
    for (const host of ['a@evil.com:99/x?', 'evil.com/x', 'evil.com?x', 'evil.com#x', 'a b', 'evil.com:99999', 'evil.com:8x', '[::1', 'e\\vil.com', '']) {
      expect(hostProblem(host), host).not.toBeNull();
      expect(classifyTarget('/h', host, null).kind, host).toBe('bad');
    }
    for (const host of ['example.com', 'example.com:8080', '127.0.0.1:1', '[::1]:80', '[::1]', 'xn--bcher-kva.example', 'a-b.c_d~e']) expect(hostProblem(host), host).toBeNull();
    expect(classifyTarget('/h', undefined, null)).toEqual({ kind: 'bad', status: 400, reason: 'no Host header' });
  });

  it('takes the path and query from the request-target, and the origin from Host or the public URL', () => {
    expect(classifyTarget('/h?x=1', 'example.com:8080', null)).toEqual({ kind: 'guest', url: 'http://example.com:8080/h?x=1' });
    expect(classifyTarget('/h?x=1#frag', 'example.com', 'https://api.example.org')).toEqual({ kind: 'guest', url: 'https://api.example.org/h?x=1' });
    expect(classifyTarget('http://other.example/p/q?z', 'example.com', null)).toEqual({ kind: 'guest', url: 'http://example.com/p/q?z' });
    expect(new URL((classifyTarget('//evil.com/x', 'example.com', null) as { url: string }).url).host).toBe('example.com');
    expect(classifyTarget('*', 'example.com', null).kind).toBe('bad');
  });

  it('matches /_ft/ after normalization, so no spelling of it reaches the guest', () => {
    for (const target of ['/_ft/status', '/%5Fft/status', '/%5fft/status', '//_ft/status', '/a/../_ft/status', '/./_ft/status', '/_ft//status', 'http://x/_ft/status']) {
      expect(classifyTarget(target, 'example.com', null), target).toEqual({ kind: 'operator', endpoint: 'status', query: '' });
    }
    expect(classifyTarget('/_ft/anything?x', 'example.com', null)).toEqual({ kind: 'operator', endpoint: 'anything', query: '?x' });
    expect(classifyTarget('/_ftx/status', 'example.com', null).kind).toBe('guest');
    expect(normalizePath('/a/%2F/b')).toBe('/a/%2F/b');
    expect(normalizePath('/a/b/')).toBe('/a/b/');
  });

  it('normalizes every path as the general form does (the fast path takes only paths that are their own normal form)', () => {
    const parts = ['/', 'a', 'B', '.', '..', '%', '%5F', '%2f', '%7e', '%zz', '_ft', '~', '-', '?', ';', ':', '@', '+'];
    let seed = 19;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 20_000; i++) {
      let path = '/';
      const n = Math.floor(next() * 9);
      for (let j = 0; j < n; j++) path += parts[Math.floor(next() * parts.length)];
      expect(normalizePath(path), path).toBe(normalizePathSlow(path));
    }
    for (const path of ['/', '/a', '/a/', '/.well-known/x', '/a/.', '/a/..', '/..', '//', '/a//b', '/%41', '']) expect(normalizePath(path), path).toBe(normalizePathSlow(path));
  });

  it('checks every Host that differs from the last good one (the check is remembered for one string only)', () => {
    expect(classifyTarget('/h', 'example.com', null).kind).toBe('guest');
    expect(classifyTarget('/h', 'example.com', null).kind).toBe('guest');
    expect(classifyTarget('/h', 'example.com/x', null).kind).toBe('bad');
    expect(classifyTarget('/h', 'a@example.com', null).kind).toBe('bad');
    expect(classifyTarget('/h', 'example.com', null)).toEqual({ kind: 'guest', url: 'http://example.com/h' });
  });

  it('accepts only an origin as --public-url', () => {
    expect(publicOrigin('https://api.example.org')).toBe('https://api.example.org');
    expect(() => publicOrigin('https://api.example.org/base')).toThrow(/must be an origin/);
    expect(() => publicOrigin('ftp://x')).toThrow(/http or https/);
    expect(() => publicOrigin('nope')).toThrow(/not a URL/);
  });
});

/** One raw HTTP/1.1 exchange (the Host header exactly as given). */
function raw(url: string, requestHead: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
    socket.write(`${requestHead}\r\nConnection: close\r\n\r\n`);
  });
}

describe('the front door of a running node', () => {
  let node: FtjsProcess & { url: string };
  beforeAll(async () => {
    node = await startRun('test/guests/echo-url.js');
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('answers 400 to a Host that would move the guest pathname, and gives the guest the request-target path', async () => {
    const bad = await raw(node.url, 'GET /h HTTP/1.1\r\nHost: a@evil.com:99/x?');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error).toMatch(/is not a host\[:port\] authority/);
    const good = await raw(node.url, 'GET /h?q=1 HTTP/1.1\r\nHost: example.com:8080');
    expect(good.status).toBe(200);
    expect(JSON.parse(good.body)).toEqual({ url: 'http://example.com:8080/h?q=1', host: 'example.com:8080', pathname: '/h', search: '?q=1' });
  });

  it('serves operator endpoints under any spelling of /_ft/ and never passes /_ft/ to the guest', async () => {
    for (const target of ['/%5Fft/status?hash=0', '//_ft/status?hash=0', '/x/../_ft/status?hash=0']) {
      const r = await raw(node.url, `GET ${target} HTTP/1.1\r\nHost: localhost`);
      expect(r.status, target).toBe(200);
      expect(JSON.parse(r.body), target).toHaveProperty('seq');
    }
    const health = await raw(node.url, 'GET //_ft/health HTTP/1.1\r\nHost: localhost');
    expect(JSON.parse(health.body)).toHaveProperty('live');
    const other = await raw(node.url, 'GET /_ft/anything HTTP/1.1\r\nHost: localhost');
    expect(other.status).toBe(404);
    expect(JSON.parse(other.body).error).toMatch(/never reaches the guest/);
  });
});

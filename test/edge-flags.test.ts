// The node's edge flags on real processes: the egress policy (--allow-fetch) as the guest's outbound
// fetch, --public-url, the admin token, and the arbiter flags' start-up errors.

import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type FtjsProcess, ftjs, startRun, TEST_SECRET, tempDir } from './helpers.js';

let upstream: http.Server;
let upstreamUrl = '';
const hits: string[] = [];

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    hits.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'text/plain' }).end('upstream says hi');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(() => upstream.close());

async function guestFetch(node: { url: string }, target: string): Promise<{ status: number; body: { error?: string; status?: number; body?: string } }> {
  const res = await fetch(`${node.url}/fetch?url=${encodeURIComponent(target)}`);
  return { status: res.status, body: (await res.json()) as { error?: string } };
}

describe('egress policy (--allow-fetch)', () => {
  test('by default the guest cannot reach loopback, private, metadata addresses or its own node', async () => {
    const node = await startRun('guest-apps/outbound.js', { env: { UPSTREAM: upstreamUrl } });
    try {
      const own = await guestFetch(node, `${node.url}/_ft/status`);
      expect(own.status).toBe(502);
      expect(own.body.error).toMatch(/refused by the egress policy: .*this node's own port/);
      for (const target of [upstreamUrl, 'http://[::1]:9/', 'http://10.1.2.3/', 'http://169.254.169.254/latest/meta-data/']) {
        const r = await guestFetch(node, target);
        expect(r.status, target).toBe(502);
        expect(r.body.error, target).toMatch(/refused by the egress policy: .*(loopback, link-local, private or reserved range|own port)/);
      }
      // A name is checked on the address it resolves to (localhost → 127.0.0.1).
      const byName = await guestFetch(node, upstreamUrl.replace('127.0.0.1', 'localhost'));
      expect(byName.body.error).toMatch(/refused by the egress policy/);
      expect(hits).toEqual([]);
    } finally {
      await node.stop();
    }
  });

  test("--allow-fetch 127.0.0.1 opens a local upstream, but never the node's own ports", async () => {
    const node = await startRun('guest-apps/outbound.js', { env: { UPSTREAM: upstreamUrl }, args: ['--allow-fetch', '127.0.0.1'] });
    try {
      const ok = await guestFetch(node, `${upstreamUrl}/allowed`);
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ status: 200, body: 'upstream says hi' });
      expect(hits).toContain('/allowed');
      const own = await guestFetch(node, `${node.url}/_ft/status`);
      expect(own.body.error).toMatch(/this node's own port/);
    } finally {
      await node.stop();
    }
  });

  test('a bad --allow-fetch value is an error naming it', async () => {
    const r = await ftjs(['run', 'guest-apps/kv.js', '--port', '0', '--allow-fetch', 'not a host!']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--allow-fetch "not a host!" is not a host name/);
  });
});

describe('edge of the front door', () => {
  test('--public-url sets the origin the guest sees; the Host header no longer does', async () => {
    const guest = path.join(tempDir(), 'url.js');
    writeFileSync(guest, 'export default { fetch(request) { return new Response(JSON.stringify({ url: request.url })); } };\n');
    const node = await startRun(guest, { args: ['--public-url', 'https://api.example.com'] });
    try {
      const res = await fetch(`${node.url}/where?x=1`, { headers: { host: 'evil.example:99' } });
      expect(await res.json()).toEqual({ url: 'https://api.example.com/where?x=1' });
    } finally {
      await node.stop();
    }
  });

  test('FTJS_ADMIN_TOKEN guards /_ft/status; /_ft/health stays open', async () => {
    const token = 'admin-token-0123456789';
    const node: FtjsProcess & { url: string } = await startRun('guest-apps/kv.js', { processEnv: { FTJS_ADMIN_TOKEN: token } });
    try {
      expect((await fetch(`${node.url}/_ft/status`)).status).toBe(401);
      expect((await fetch(`${node.url}/_ft/status`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      expect((await fetch(`${node.url}/_ft/health`)).status).toBe(200);
    } finally {
      await node.stop();
    }
  });

  test('--admin-token-file: a short token is refused at start', async () => {
    const file = path.join(tempDir(), 'token');
    writeFileSync(file, 'short\n');
    const r = await ftjs(['run', 'guest-apps/kv.js', '--port', '0', '--admin-token-file', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/must be at least 16 characters/);
  });
});

describe('arbiter flags', () => {
  test('a missing --shared-dir is an error at start naming it', async () => {
    const missing = path.join(tmpdir(), `ftjs-no-such-dir-${process.pid}`);
    const r = await ftjs(['primary', 'guest-apps/kv.js', '--port', '0', '--replication-port', '0', '--shared-dir', missing], { FTJS_SECRET: TEST_SECRET });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`--shared-dir ${missing} does not exist (create it, or pass --create-shared-dir)`);
  });

  test('no arbiter at all is an error that names both choices', async () => {
    const r = await ftjs(['backup', '--primary', 'ws://127.0.0.1:9', '--port', '0'], { FTJS_SECRET: TEST_SECRET });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--shared-dir <dir>.*or --arbiter etcd:/);
  });

  test('with --arbiter etcd, checkpoints need --checkpoint-dir', async () => {
    const r = await ftjs(['primary', 'guest-apps/kv.js', '--port', '0', '--replication-port', '0', '--arbiter', 'etcd://127.0.0.1:9/x', '--checkpoint-every', '100'], { FTJS_SECRET: TEST_SECRET });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('checkpoints need --checkpoint-dir with --arbiter etcd://127.0.0.1:9/x');
  });

  test('a backup that cannot reach its primary says so every few seconds, with the attempts and the last error', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-shared-'));
    const { spawnFtjs } = await import('./helpers.js');
    const backup = spawnFtjs(['backup', '--primary', 'ws://127.0.0.1:9', '--port', '0', '--shared-dir', dir], { FTJS_SECRET: TEST_SECRET });
    try {
      const line = await backup.waitForLog((l) => typeof l.attempts === 'number', 'a repeated unreachable warning', 15_000);
      expect(line.msg).toMatch(/cannot reach the primary at ws:\/\/127.0.0.1:9: \d+ attempts failed; last error: .*ECONNREFUSED/);
      expect(line.attempts as number).toBeGreaterThan(1);
    } finally {
      await backup.stop('SIGKILL');
    }
  });
});

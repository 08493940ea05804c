// The boot-image cache as `ftjs run` meets it (issue 19, cold start): the bundled command and worker
// boot from a kept image only when engine, code, glue and guest are the very ones the image was kept
// for; a changed guest misses; a corrupt image file is refused by name and the node boots fresh; a
// directory that cannot be written costs the images, is said once, and never the boot.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { type FtjsProcess, type LogLine, replayJson, runSteps, send, startRun, tempDir, waitFor } from './helpers.js';

const KV_V1 = `export default { async fetch(request) { return new Response('v1 ' + new URL(request.url).pathname); } };\n`;
const KV_V2 = KV_V1.replace("'v1 '", "'v2 '");

const booted = (node: FtjsProcess): Promise<LogLine> => node.waitForLog((l) => l.msg === 'guest booted', 'boot');
const images = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.img'));

/** Boots `entry` once with `env` so that its two images are on disk, and stops. */
async function keepImages(entry: string, env: Record<string, string>, cache: string, expected: number): Promise<void> {
  const node = await startRun(entry, { processEnv: env });
  try {
    expect((await booted(node)).bootImage).toMatchObject({ source: expect.stringMatching(/captured|disk/), guest: 'captured' });
    // The worker writes images in the background: wait for them before stopping.
    await waitFor(() => images(cache).length >= expected, `${expected} images on disk`);
  } finally {
    await node.stop();
  }
}

test('a kept image serves its guest; a changed guest misses it and serves its own code', async () => {
  const dir = tempDir('ftjs-guest-');
  const cache = tempDir('ftjs-cache-');
  const env = { FTJS_BOOT_CACHE_DIR: cache };
  const entry = path.join(dir, 'app.js');
  writeFileSync(entry, KV_V1);
  await keepImages(entry, env, cache, 2);

  const hit = await startRun(entry, { processEnv: env });
  try {
    expect((await booted(hit)).bootImage).toMatchObject({ source: 'disk', guest: 'disk' });
    expect((await send(hit.url, { method: 'GET', path: '/a' })).body).toBe('v1 /a');
  } finally {
    await hit.stop();
  }

  // Same size, one byte changed: the glue image still fits, the guest's does not.
  writeFileSync(entry, KV_V2);
  const miss = await startRun(entry, { processEnv: env });
  try {
    expect((await booted(miss)).bootImage).toMatchObject({ source: 'disk', guest: 'captured' });
    expect((await send(miss.url, { method: 'GET', path: '/a' })).body).toBe('v2 /a');
  } finally {
    await miss.stop();
  }
});

test('a corrupt image file is refused with a message naming it, the node boots fresh, and its trace replays without images', async () => {
  const cache = tempDir('ftjs-cache-');
  const env = { FTJS_BOOT_CACHE_DIR: cache };
  await keepImages('guest-apps/kv.js', env, cache, 2);
  // Flip one byte in the page data of every image (past the header: the header is JSON).
  for (const name of images(cache)) {
    const file = path.join(cache, name);
    const bytes = readFileSync(file);
    bytes[bytes.length - 100]! ^= 0xff;
    writeFileSync(file, bytes);
  }
  const trace = path.join(tempDir(), 'kv.trace');
  const node = await startRun('guest-apps/kv.js', { processEnv: env, record: trace });
  try {
    const boot = await booted(node);
    expect(boot.bootImage).toMatchObject({ source: 'captured', guest: 'captured' });
    const warning = await node.waitForLog((l) => l.level === 40 && String(l.msg).startsWith('boot image cache:'), 'the warning');
    expect(warning.msg).toMatch(/\.img: checksum mismatch \(corrupt file\); removed/);
    const results = await runSteps(node.url, [
      { method: 'PUT', path: '/kv/a', body: '1' },
      { method: 'GET', path: '/kv/a' },
    ]);
    expect(results.map((r) => r.status)).toEqual([200, 200]);
  } finally {
    await node.stop();
  }
  const replayed = await replayJson(trace, { FTJS_BOOT_CACHE_DIR: 'off' });
  expect(replayed.code).toBe(0);
  expect(replayed.summary.divergence).toBeNull();
});

test('a cache directory that cannot be created is said once and the node serves without images', async () => {
  const blocker = path.join(tempDir('ftjs-cache-'), 'a-file');
  writeFileSync(blocker, 'not a directory');
  const node = await startRun('guest-apps/kv.js', { processEnv: { FTJS_BOOT_CACHE_DIR: path.join(blocker, 'images') } });
  try {
    const warning = await node.waitForLog((l) => l.level === 40 && String(l.msg).startsWith('boot image cache:'), 'the warning');
    expect(warning.msg).toMatch(/cannot be written \(ENOTDIR\): booting without kept images/);
    expect((await send(node.url, { method: 'PUT', path: '/kv/x', body: 'y' })).status).toBe(200);
    expect((await send(node.url, { method: 'GET', path: '/kv/x' })).body).toContain('y');
  } finally {
    await node.stop();
  }
  expect(node.lines.filter((l) => String(l.msg).startsWith('boot image cache:'))).toHaveLength(1);
});

// The guest bundle cache (hypervisor/vm/bundle-cache.ts): a cold start reuses the last bundle only
// while everything it was built from is unchanged, on real files bundled by the real esbuild.

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bundleGuest, stopBundler } from '../dist/hypervisor/vm/bundle.js';
import { readCachedBundle, writeCachedBundle } from '../dist/hypervisor/vm/bundle-cache.js';

let root: string;
let project: string;
let env: NodeJS.ProcessEnv;
let entry: string;

/** Backdates every file and folder of the project: the cache keeps no bundle of files changed around its build. */
function backdate(): void {
  const past = Date.now() / 1000 - 60;
  const walk = (dir: string) => {
    for (const item of readdirSync(dir, { withFileTypes: true })) {
      const at = path.join(dir, item.name);
      if (item.isDirectory()) walk(at);
      utimesSync(at, past, past);
    }
    utimesSync(dir, past, past);
  };
  walk(project);
}

async function buildAndKeep(): Promise<{ hash: string; kept: boolean }> {
  const started = Date.now();
  const bundled = await bundleGuest(entry);
  return { hash: bundled.hash, kept: await writeCachedBundle(entry, bundled.inputs, bundled, started, env) };
}

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'ftjs-bundle-cache-'));
  env = { FTJS_BOOT_CACHE_DIR: path.join(root, 'cache') };
  project = path.join(root, 'project');
  mkdirSync(path.join(project, 'src'), { recursive: true });
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'p', type: 'module' }));
  writeFileSync(path.join(project, 'src', 'util.js'), 'export const greeting = "hello";\n');
  writeFileSync(path.join(project, 'src', 'index.js'), 'import { greeting } from "./util";\nexport default { fetch() { return new Response(greeting); } };\n');
  entry = path.join(project, 'src', 'index.js');
  backdate();
});

afterEach(async () => {
  await stopBundler();
  rmSync(root, { recursive: true, force: true });
});

describe('guest bundle cache', () => {
  it('gives back the very bundle esbuild built while nothing changed', async () => {
    const { hash, kept } = await buildAndKeep();
    expect(kept).toBe(true);
    const cached = readCachedBundle(entry, env);
    expect(cached?.hash).toBe(hash);
    expect(cached?.sources[0]?.text).toContain('"hello"');
    // Another entry of the same project has no cached bundle.
    expect(readCachedBundle(path.join(project, 'src', 'util.js'), env)).toBeNull();
  });

  it('misses once an input file changed', async () => {
    await buildAndKeep();
    writeFileSync(path.join(project, 'src', 'util.js'), 'export const greeting = "changed";\n');
    backdate();
    expect(readCachedBundle(entry, env)).toBeNull();
    // The rebuild is kept and served.
    const { hash } = await buildAndKeep();
    expect(readCachedBundle(entry, env)?.hash).toBe(hash);
    expect(readCachedBundle(entry, env)?.sources[0]?.text).toContain('"changed"');
  });

  it('misses once a file that could change how an import resolves appears next to an input', async () => {
    await buildAndKeep();
    // "./util" would now resolve to util.ts before util.js.
    writeFileSync(path.join(project, 'src', 'util.ts'), 'export const greeting: string = "from ts";\n');
    backdate();
    expect(readCachedBundle(entry, env)).toBeNull();
  });

  it('misses once a package.json between an input and the project root changed', async () => {
    await buildAndKeep();
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'p', type: 'module', browser: { './src/util.js': false } }));
    backdate();
    expect(readCachedBundle(entry, env)).toBeNull();
  });

  it('refuses a cache file whose bundle text was altered', async () => {
    await buildAndKeep();
    const dir = path.join(env.FTJS_BOOT_CACHE_DIR!, 'bundles');
    const [name] = readdirSync(dir);
    const file = path.join(dir, name!);
    writeFileSync(file, readFileSync(file, 'utf8').replace('hello', 'HELLO'));
    expect(readCachedBundle(entry, env)).toBeNull();
    writeFileSync(file, '{ not json');
    expect(readCachedBundle(entry, env)).toBeNull();
  });

  it('keeps its files within FTJS_BUNDLE_CACHE_MAX_MB, the least recently written removed first; a bad value is an error', async () => {
    const other = path.join(project, 'src', 'other.js');
    writeFileSync(other, 'export default { fetch() { return new Response("other"); } };\n');
    backdate();
    await buildAndKeep();
    const dir = path.join(env.FTJS_BOOT_CACHE_DIR!, 'bundles');
    const [first] = readdirSync(dir);
    const oneFileMb = readFileSync(path.join(dir, first!)).byteLength / (1024 * 1024);
    // Room for one bundle file and a half: writing a second removes the first.
    env = { ...env, FTJS_BUNDLE_CACHE_MAX_MB: String(oneFileMb * 1.5) };
    const past = Date.now() / 1000 - 30;
    utimesSync(path.join(dir, first!), past, past);
    const bundled = await bundleGuest(other);
    expect(await writeCachedBundle(other, bundled.inputs, bundled, Date.now(), env)).toBe(true);
    expect(readdirSync(dir)).toHaveLength(1);
    expect(readCachedBundle(other, env)?.sources[0]?.text).toContain('"other"');
    expect(readCachedBundle(entry, env)).toBeNull();
    await expect(writeCachedBundle(other, bundled.inputs, bundled, Date.now(), { ...env, FTJS_BUNDLE_CACHE_MAX_MB: 'lots' })).rejects.toThrow(
      /FTJS_BUNDLE_CACHE_MAX_MB must be a number of MiB >= 0, got "lots"/,
    );
  });

  it('keeps nothing when the cache is off, or when an input changed around the build', async () => {
    const off = { FTJS_BOOT_CACHE_DIR: 'off' };
    const bundled = await bundleGuest(entry);
    expect(await writeCachedBundle(entry, bundled.inputs, bundled, Date.now(), off)).toBe(false);
    expect(readCachedBundle(entry, off)).toBeNull();
    // Touched just now: the digests taken after the build might not be of what esbuild read.
    writeFileSync(path.join(project, 'src', 'util.js'), 'export const greeting = "hello";\n');
    const started = Date.now();
    const again = await bundleGuest(entry);
    expect(await writeCachedBundle(entry, again.inputs, again, started, env)).toBe(false);
    expect(readCachedBundle(entry, env)).toBeNull();
  });
});

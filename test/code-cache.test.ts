// The VM worker's V8 code cache (issue 19, cold start; hypervisor/worker/code-cache.ts): a script
// compiles from a cache file only when the file is this script's, whole and unaltered, and V8 accepts
// it. A corrupt, truncated, foreign or rejected file is refused by name, removed, and rewritten from
// this compile; a cache that cannot be written never fails the script. End to end, `ftjs run` with
// corrupt cache files (its worker's and its command's) says so once each and serves.

import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { expect, test } from 'vitest';
import { wrapBundle } from '../dist/hypervisor/worker/cached-bundle.js';
import { CODE_CACHE_EXTENSION, codeCacheFile, codeCacheKey, encodeCodeCache } from '../dist/hypervisor/worker/code-cache.js';
import { send, startRun, tempDir, waitFor } from './helpers.js';

/** A script big enough that V8's cache of it is more than a header: 200 functions, called. */
function source(tag: string): string {
  const fns = Array.from({ length: 200 }, (_, i) => `function f${i}(x) { return x * ${i} + ${JSON.stringify(tag)}.length; }`).join('\n');
  return `(function () {\n${fns}\nlet s = 0; for (let i = 0; i < 200; i++) s += eval('f' + i)(i); return ${JSON.stringify(tag)} + ':' + s;\n})`;
}
const expected = (tag: string) => `${tag}:${Array.from({ length: 200 }, (_, i) => i * i + tag.length).reduce((a, b) => a + b, 0)}`;
const CODE_CACHE_MODULE = fileURLToPath(new URL('../dist/hypervisor/worker/code-cache.js', import.meta.url));
const cacheFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(CODE_CACHE_EXTENSION));

/**
 * Compiles and runs `src` through the cache in `dir` in a fresh process, saving afterwards as the worker
 * does: in this process V8's own compilation cache would answer for a source compiled before, and the
 * file would never be consulted.
 */
function compileAndRun(src: string, dir: string | null, filename = '/somewhere/bundle.cjs', maxFiles?: number): { cache: string; problems: string[]; value: string } {
  const program = `
    import { compileCached } from ${JSON.stringify(CODE_CACHE_MODULE)};
    const [src, dir, filename, maxFiles] = JSON.parse(process.argv[1]);
    const compiled = compileCached({ source: src, filename, dir, ...(maxFiles ? { maxFiles } : {}) });
    const value = compiled.script.runInThisContext()();
    compiled.save();
    process.stdout.write(JSON.stringify({ cache: compiled.cache, problems: compiled.problems, value }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', program, JSON.stringify([src, dir, filename, maxFiles])], { encoding: 'utf8' });
  return JSON.parse(out);
}

test('a first compile writes the cache, the next compiles from it, and both run the same code', () => {
  const dir = path.join(tempDir('ftjs-code-cache-'), 'cache'); // created on the first write
  const first = compileAndRun(source('a'), dir);
  expect(first).toMatchObject({ cache: 'absent', problems: [], value: expected('a') });
  const file = codeCacheFile(dir, codeCacheKey(source('a')));
  expect(existsSync(file)).toBe(true);
  expect((statSync(file).mode & 0o777).toString(8)).toBe('600');
  const second = compileAndRun(source('a'), dir);
  expect(second).toMatchObject({ cache: 'used', problems: [], value: expected('a') });
  // No path enters the key: another file name, and a copy of the directory elsewhere, find the cache.
  expect(compileAndRun(source('a'), dir, '/elsewhere/other-name.cjs').cache).toBe('used');
  const moved = tempDir('ftjs-code-cache-moved-');
  for (const f of cacheFiles(dir)) copyFileSync(path.join(dir, f), path.join(moved, f));
  expect(compileAndRun(source('a'), moved).cache).toBe('used');
  // A changed script is another key: it compiles from source and keeps its own file beside.
  expect(compileAndRun(source('b'), dir)).toMatchObject({ cache: 'absent', value: expected('b') });
  expect(cacheFiles(dir)).toHaveLength(2);
});

test.each([
  ['a flipped payload byte', (b: Buffer) => (b[b.length - 10]! ^= 0x40), /corrupt \(payload SHA-256 differs\)/],
  ['a truncated file', (b: Buffer) => b.subarray(0, b.length - 100), /truncated or padded/],
  ['an empty file', () => Buffer.alloc(0), /bad magic/],
  ['a file of another kind', (b: Buffer) => Buffer.concat([Buffer.from('FTJSIMG1'), b.subarray(8)]), /bad magic/],
  ['a flipped key byte', (b: Buffer) => (b[12]! ^= 0x01), /made for another bundle or Node \(key differs\)/],
] as Array<[string, (b: Buffer) => Buffer | number, RegExp]>)('%s is refused by name, removed, and rewritten from the compile', (_name, damage, reason) => {
  const dir = tempDir('ftjs-code-cache-');
  compileAndRun(source('a'), dir);
  const file = codeCacheFile(dir, codeCacheKey(source('a')));
  const bytes = readFileSync(file);
  const damaged = damage(bytes);
  writeFileSync(file, Buffer.isBuffer(damaged) ? damaged : bytes);
  const refused = compileAndRun(source('a'), dir);
  expect(refused).toMatchObject({ cache: 'refused', value: expected('a') });
  expect(refused.problems).toHaveLength(1);
  expect(refused.problems[0]).toContain(file);
  expect(refused.problems[0]).toMatch(reason);
  expect(refused.problems[0]).toMatch(/refused, compiled from source, rewritten/);
  // Rewritten whole by the save: the next compile uses it.
  expect(compileAndRun(source('a'), dir)).toMatchObject({ cache: 'used', problems: [] });
});

test("another script's cache under this script's key is rejected by V8, said, and rewritten", () => {
  const dir = tempDir('ftjs-code-cache-');
  const other = new vm.Script(source('another script'));
  (other.runInThisContext() as () => string)();
  const key = codeCacheKey(source('a'));
  // Whole and with a valid checksum, but V8's data of another source: only V8's own check can tell.
  writeFileSync(codeCacheFile(dir, key), encodeCodeCache(key, other.createCachedData()));
  const rejected = compileAndRun(source('a'), dir);
  expect(rejected).toMatchObject({ cache: 'rejected', value: expected('a') });
  expect(rejected.problems).toEqual([expect.stringMatching(/rejected by V8 .*compiled from source, rewritten/)]);
  expect(compileAndRun(source('a'), dir)).toMatchObject({ cache: 'used', problems: [] });
});

test('no directory: no cache read or written; an unwritable one never fails the compile', () => {
  expect(compileAndRun(source('a'), null)).toMatchObject({ cache: 'off', problems: [], value: expected('a') });
  const blocker = path.join(tempDir('ftjs-code-cache-'), 'a-file');
  writeFileSync(blocker, 'not a directory');
  const unwritable = compileAndRun(source('a'), path.join(blocker, 'cache'));
  expect(unwritable).toMatchObject({ cache: 'absent', problems: [], value: expected('a') });
});

test('the directory keeps the most recently used cache files only', () => {
  const dir = tempDir('ftjs-code-cache-');
  const tags = ['a', 'b', 'c'];
  for (const [i, tag] of tags.entries()) {
    compileAndRun(source(tag), dir, 'x.cjs', 2);
    // Distinct ages without waiting: each file is older than the next.
    const t = new Date(Date.UTC(2026, 0, 1, 0, 0, i));
    utimesSync(codeCacheFile(dir, codeCacheKey(source(tag))), t, t);
  }
  compileAndRun(source('d'), dir, 'x.cjs', 2);
  expect(cacheFiles(dir).sort()).toEqual([codeCacheFile(dir, codeCacheKey(source('c'))), codeCacheFile(dir, codeCacheKey(source('d')))].map((f) => path.basename(f)).sort());
});

/** The cache file of a built script (dist/bundle/`name`) in `dir`. */
const scriptCacheFile = (dir: string, name: string) => codeCacheFile(dir, codeCacheKey(wrapBundle(readFileSync(fileURLToPath(new URL(`../dist/bundle/${name}`, import.meta.url)), 'utf8'))));

test('ftjs run: corrupt code cache files are said once each, the node serves, and the files are rewritten', async () => {
  const cache = tempDir('ftjs-cache-');
  const env = { FTJS_BOOT_CACHE_DIR: cache };
  const files = [scriptCacheFile(cache, 'vm-worker.cjs'), scriptCacheFile(cache, 'ftjs.cjs')];
  const first = await startRun('guest-apps/kv.js', { processEnv: env });
  try {
    expect((await send(first.url, { method: 'GET', path: '/kv/x' })).status).toBe(404);
    await waitFor(() => files.every((f) => existsSync(f)), "the worker's and the command's code caches");
  } finally {
    await first.stop();
  }
  const corrupt = files.map((file) => {
    const bytes = readFileSync(file);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(file, bytes);
    return bytes;
  });
  const second = await startRun('guest-apps/kv.js', { processEnv: env });
  try {
    // The worker's, in the boot's log line; the command's, on stderr before its logger exists.
    const warning = await second.waitForLog((l) => l.level === 40 && String(l.msg).includes('V8 code cache'), 'the warning');
    expect(String(warning.msg)).toContain(files[0]);
    expect(String(warning.msg)).toMatch(/corrupt \(payload SHA-256 differs\): refused, compiled from source, rewritten/);
    expect(second.stderr).toContain(`ftjs: V8 code cache ${files[1]}: corrupt (payload SHA-256 differs): refused, compiled from source, rewritten`);
    expect((await send(second.url, { method: 'PUT', path: '/kv/x', body: 'y' })).status).toBe(200);
    expect((await send(second.url, { method: 'GET', path: '/kv/x' })).body).toContain('y');
    await waitFor(() => files.every((f, i) => existsSync(f) && !readFileSync(f).equals(corrupt[i]!)), 'the rewritten cache files');
  } finally {
    await second.stop();
  }
  expect(second.lines.filter((l) => String(l.msg).includes('V8 code cache'))).toHaveLength(1);
  expect(second.stderr.split('V8 code cache')).toHaveLength(2);
  // The rewritten files are used without a word: read and kept in place (inode), marked as used (mtime).
  const old = new Date(Date.UTC(2020, 0, 1));
  for (const f of files) utimesSync(f, old, old);
  const inodes = files.map((f) => statSync(f).ino);
  const third = await startRun('guest-apps/kv.js', { processEnv: env });
  try {
    expect((await send(third.url, { method: 'GET', path: '/kv/x' })).status).toBe(404);
  } finally {
    await third.stop();
  }
  expect(third.lines.filter((l) => String(l.msg).includes('V8 code cache'))).toHaveLength(0);
  expect(third.stderr).not.toContain('V8 code cache');
  expect(files.map((f) => statSync(f).ino)).toEqual(inodes);
  for (const f of files) expect(statSync(f).mtimeMs).toBeGreaterThan(old.getTime());
});

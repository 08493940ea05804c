// V8's code cache for the VM worker's bundle and the `ftjs` command's (issue 19, cold start). Node 20
// compiles every ES module from its source at each start (module.enableCompileCache came in Node 22),
// and a VM worker is the critical path of a cold start: it spent ~20 ms of CPU loading its bundle before
// it could boot. Built as one CommonJS script (cli/cli-bundle-build.ts) and compiled through vm.Script,
// a bundle can be compiled from the code V8 serialised in an earlier process (`cachedData`) instead of
// its source.
//
// A cache file is never trusted as it is. It is keyed by the bundle's SHA-256 and the Node and V8
// versions and architecture (V8's own check of the source is only its length), and carries the SHA-256
// of its payload, checked before V8 sees it; V8 then checks its version and flags and may still reject
// it (`cachedDataRejected`: another V8 build, or other flags on the command line). A file that fails any
// of these is removed and written again from this process, and the problem is said once (the worker's
// in the first boot's reply, the command's on stderr). The key holds no path: a project moved or
// copied elsewhere finds its cache.

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';

const MAGIC = Buffer.from('FTJSJSC1', 'latin1');
/** magic, key (32 bytes), SHA-256 of the payload (32 bytes), payload length (u32 LE). */
const HEADER_BYTES = MAGIC.length + 32 + 32 + 4;
/** Code cache files kept in the directory (one per build and Node version): the least recently used go first. */
export const DEFAULT_CODE_CACHE_FILES = 4;
/** Extension of a code cache file in the cache directory. */
export const CODE_CACHE_EXTENSION = '.jscache';
/** A temporary file this old was left by a writer that died (as boot-image.ts). */
const STALE_TEMP_MS = 60_000;

export interface CachedScriptOptions {
  /** The script's source, a function expression (the bundle wrapped in its module parameters). */
  source: string;
  /** Its file name, for stack traces only (it enters no key). */
  filename: string;
  /** The cache directory, or null for none (FTJS_BOOT_CACHE_DIR=off). */
  dir: string | null;
  /** Files kept (DEFAULT_CODE_CACHE_FILES). */
  maxFiles?: number;
}

export interface CachedScript {
  script: vm.Script;
  /** How the script was compiled: from a verified cache V8 accepted, or from source (and why). */
  cache: 'used' | 'absent' | 'off' | 'refused' | 'rejected';
  /** What was wrong with the file found, if anything (said once, in the first boot's reply). */
  problems: string[];
  /** Writes the cache from what V8 has compiled by now, if no good one was used; never throws. */
  save(): void;
}

/** Read errors that mean "no cache file here" (a directory that cannot exist is said by the boot-image cache). */
const NO_FILE = ['ENOENT', 'ENOTDIR'];

function sha256(data: string | Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Everything the compiled code depends on, hashed: a different Node, V8 or bundle is a different file. */
export function codeCacheKey(source: string): Buffer {
  const parts = { magic: MAGIC.toString('latin1'), node: process.version, v8: process.versions.v8, arch: process.arch, source: sha256(source).toString('hex') };
  return sha256(JSON.stringify(parts));
}

export function codeCacheFile(dir: string, key: Buffer): string {
  return path.join(dir, `${key.toString('hex')}${CODE_CACHE_EXTENSION}`);
}

export function encodeCodeCache(key: Buffer, data: Uint8Array): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  key.copy(header, MAGIC.length);
  sha256(data).copy(header, MAGIC.length + 32);
  header.writeUInt32LE(data.length, MAGIC.length + 64);
  return Buffer.concat([header, data]);
}

/** The payload of a cache file for `key`; throws, naming what is wrong, for any other file. */
export function decodeCodeCache(file: Buffer, key: Buffer): Buffer {
  if (file.length < HEADER_BYTES || !file.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not a code cache file (bad magic)');
  if (!file.subarray(MAGIC.length, MAGIC.length + 32).equals(key)) throw new Error('made for another bundle or Node (key differs)');
  const length = file.readUInt32LE(MAGIC.length + 64);
  if (file.length !== HEADER_BYTES + length) throw new Error(`truncated or padded (${file.length} bytes, header says ${HEADER_BYTES + length})`);
  const data = file.subarray(HEADER_BYTES);
  if (!sha256(data).equals(file.subarray(MAGIC.length + 32, MAGIC.length + 64))) throw new Error('corrupt (payload SHA-256 differs)');
  return data;
}

/** Compiles `source`, from a verified cache file when there is one that V8 accepts. */
export function compileCached(options: CachedScriptOptions): CachedScript {
  const problems: string[] = [];
  const key = codeCacheKey(options.source);
  const file = options.dir ? codeCacheFile(options.dir, key) : null;
  let cachedData: Buffer | undefined;
  let cache: CachedScript['cache'] = file ? 'absent' : 'off';
  if (file) {
    let bytes: Buffer | null = null;
    try {
      bytes = readFileSync(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (!NO_FILE.includes(code ?? '')) problems.push(`V8 code cache ${file}: unreadable (${code ?? (error as Error).message}): compiled from source`);
    }
    if (bytes) {
      try {
        cachedData = decodeCodeCache(bytes, key);
      } catch (error) {
        cache = 'refused';
        problems.push(`V8 code cache ${file}: ${(error as Error).message}: refused, compiled from source, rewritten`);
        remove(file);
      }
    }
  }
  const script = new vm.Script(options.source, { filename: options.filename, ...(cachedData ? { cachedData } : {}) });
  if (cachedData) {
    if (script.cachedDataRejected) {
      cache = 'rejected';
      problems.push(`V8 code cache ${file}: rejected by V8 (another V8 build or flags): compiled from source, rewritten`);
    } else {
      cache = 'used';
      touch(file!);
    }
  }
  let saved = false;
  const save = () => {
    if (saved || !file || cache === 'used') return;
    saved = true;
    writeCodeCache(options.dir!, key, script.createCachedData(), options.maxFiles ?? DEFAULT_CODE_CACHE_FILES);
  };
  return { script, cache, problems, save };
}

function touch(file: string): void {
  try {
    const now = new Date();
    utimesSync(file, now, now); // the least recently used go first
  } catch {
    // evicted meanwhile: the script in hand is compiled all the same
  }
}

/** Writes the file whole, then renames it into place (a reader sees the old file, no file, or the new one), then trims the directory. */
function writeCodeCache(dir: string, key: Buffer, data: Uint8Array, maxFiles: number): void {
  const file = codeCacheFile(dir, key);
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(temp, encodeCodeCache(key, data), { mode: 0o600 });
    renameSync(temp, file);
    evict(dir, maxFiles);
  } catch {
    // A cache that cannot be written costs the next start its compile, nothing else; an unwritable
    // directory is said by the boot-image cache, which shares it.
    remove(temp);
  }
}

/** Removes `file` if it can; a cache file left behind is verified like any other by its next reader. */
function remove(file: string): void {
  try {
    rmSync(file, { force: true });
  } catch {
    // ENOTDIR, EACCES: nothing was written there
  }
}

function evict(dir: string, maxFiles: number): void {
  const names = readdirSync(dir);
  for (const name of names.filter((n) => n.includes(`${CODE_CACHE_EXTENSION}.`) && n.endsWith('.tmp'))) {
    const s = statSync(path.join(dir, name), { throwIfNoEntry: false });
    if (s && Date.now() - s.mtimeMs > STALE_TEMP_MS) rmSync(path.join(dir, name), { force: true });
  }
  const files = names
    .filter((n) => n.endsWith(CODE_CACHE_EXTENSION))
    .map((n) => ({ file: path.join(dir, n), used: statSync(path.join(dir, n), { throwIfNoEntry: false })?.mtimeMs ?? 0 }))
    .sort((a, b) => b.used - a.used);
  for (const f of files.slice(maxFiles)) rmSync(f.file, { force: true });
}

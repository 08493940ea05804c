// A cache of guest bundles, so that a node whose guest has not changed since the last boot skips
// esbuild (loading it, starting its service process, resolving and bundling): about 30-50 ms of a
// ~200 ms cold start to the first 200 (BENCHMARKS.md, issue 19).
//
// A bundle is a pure function of esbuild's version, ftjs's bundle settings, the entry, the files it
// read and how their imports resolved. An entry is kept under a key of the first three and is used
// only when every input file still has the SHA-256 it had, and every folder that held an input still
// lists the same names (a file added next to an input can change how an import resolves: `./util`
// to a new util.ts before util.js, a new node_modules folder) with the same package.json and
// tsconfig.json/jsconfig.json in each folder from an input up to the project root. Anything else
// missing, unreadable or different is a miss, and esbuild runs as before. The bundle's own text is
// checked against its recorded SHA-256 and guest hash on the way out, like any cached artefact.
//
// Lives next to the boot images (FTJS_BOOT_CACHE_DIR, default ~/.cache/ftjs/boot-images; "off"
// disables both), in a bundles/ folder; one small JSON file per entry, rewritten on a miss, at most
// FTJS_BUNDLE_CACHE_MAX_MB (default 64) of them, the least recently written removed first.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootCacheDirFromEnv } from './cache-dir.js';
import { type GuestCode, type GuestSource, guestHash, sha256Hex } from './sources.js';

/** What a cached bundle gives back: the guest code and what the CLI logs about it. */
export interface CachedBundle extends GuestCode {
  projectRoot: string;
  inputFiles: number;
  warnings: string[];
}

interface CacheFile {
  version: 1;
  entryPath: string;
  /** Input file → SHA-256 of its bytes. */
  inputs: Record<string, string>;
  /** Folder → SHA-256 of its sorted entry names and of its resolution files (see folderDigest). */
  folders: Record<string, string>;
  bundle: CachedBundle;
}

/** Files whose content changes how esbuild resolves and transforms what is in their folder and below. */
const RESOLUTION_FILES = ['package.json', 'tsconfig.json', 'jsconfig.json'];

let settingsDigest: string | undefined;
/** esbuild's version and ftjs's bundle settings (the compiled bundle.js and node-builtins.js). */
function bundlerDigest(): string {
  if (settingsDigest) return settingsDigest;
  const here = path.dirname(fileURLToPath(import.meta.url));
  const esbuildVersion = (createRequire(import.meta.url)('esbuild/package.json') as { version: string }).version;
  const hash = createHash('sha256').update(`esbuild ${esbuildVersion}\n`);
  for (const file of ['bundle.js', 'node-builtins.js']) hash.update(readFileSync(path.join(here, file)));
  settingsDigest = hash.digest('hex');
  return settingsDigest;
}

function cacheFileOf(dir: string, entryPath: string): string {
  return path.join(dir, 'bundles', `${sha256Hex(`${bundlerDigest()}\0${entryPath}`).slice(0, 32)}.json`);
}

/** The folders whose listings and resolution files a bundle of `inputs` depends on. */
function foldersOf(inputs: string[], projectRoot: string): string[] {
  const folders = new Set<string>();
  for (const input of inputs) {
    for (let dir = path.dirname(input); ; dir = path.dirname(dir)) {
      folders.add(dir);
      if (dir === projectRoot || !dir.startsWith(projectRoot) || path.dirname(dir) === dir) break;
    }
  }
  return [...folders].sort();
}

/** SHA-256 of a folder's sorted names and of the bytes of its resolution files (absent: marked). */
function folderDigest(dir: string): string {
  const names = readdirSync(dir).sort();
  const hash = createHash('sha256').update(names.join('\0'));
  for (const name of RESOLUTION_FILES) {
    hash.update(`\0${name}\0`);
    if (names.includes(name)) hash.update(readFileSync(path.join(dir, name)));
  }
  return hash.digest('hex');
}

function fileDigest(file: string): string {
  return sha256Hex(readFileSync(file));
}

/** The cached bundle of `entryPath`, or null (no cache, no entry, or anything changed). Never throws. */
export function readCachedBundle(entryPath: string, env: NodeJS.ProcessEnv = process.env): CachedBundle | null {
  try {
    const dir = bootCacheDirFromEnv(env);
    if (!dir) return null;
    const entry = path.resolve(entryPath);
    const cached = JSON.parse(readFileSync(cacheFileOf(dir, entry), 'utf8')) as CacheFile;
    if (cached.version !== 1 || cached.entryPath !== entry) return null;
    for (const [file, digest] of Object.entries(cached.inputs)) if (fileDigest(file) !== digest) return null;
    for (const [folder, digest] of Object.entries(cached.folders)) if (folderDigest(folder) !== digest) return null;
    const bundle = cached.bundle;
    const sources: GuestSource[] = bundle.sources;
    if (sources.length === 0 || sources.some((s) => sha256Hex(s.text) !== s.sha256) || guestHash(sources) !== bundle.hash) return null;
    return bundle;
  } catch {
    return null;
  }
}

/** Bytes of bundle files the cache keeps (FTJS_BUNDLE_CACHE_MAX_MB); the least recently written go first. */
export const DEFAULT_BUNDLE_CACHE_MAX_BYTES = 64 * 1024 * 1024;

function bundleCacheMaxBytes(env: NodeJS.ProcessEnv): number {
  const configured = env.FTJS_BUNDLE_CACHE_MAX_MB;
  if (configured === undefined || configured === '') return DEFAULT_BUNDLE_CACHE_MAX_BYTES;
  const mb = Number(configured);
  if (!Number.isFinite(mb) || mb < 0) throw new Error(`FTJS_BUNDLE_CACHE_MAX_MB must be a number of MiB >= 0, got ${JSON.stringify(configured)}`);
  return Math.floor(mb * 1024 * 1024);
}

/** Keeps the newest bundle files of `dir` within `maxBytes` (the one just written first: it is the newest). */
function evictBundles(dir: string, maxBytes: number): void {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .map((name) => {
      const stat = statSync(path.join(dir, name), { throwIfNoEntry: false });
      return { file: path.join(dir, name), bytes: stat?.size ?? 0, mtimeMs: stat?.mtimeMs ?? 0 };
    })
    .sort((a, b) => b.mtimeMs - a.mtimeMs);
  let total = 0;
  for (const f of files) {
    total += f.bytes;
    if (total > maxBytes) rmSync(f.file, { force: true });
  }
}

/** Slack for file systems with coarse timestamps: a file changed this close to a build is not trusted. */
const MTIME_SLACK_MS = 2000;

/**
 * Keeps `bundle`, built from `inputs` (absolute paths) by a build that started at `buildStartedMs`
 * (wall clock), for the next boot of `entryPath`. Best effort: a cache that cannot be written costs
 * the next boot esbuild, nothing else. Not kept: inputs that are not files (a plugin's virtual
 * module), and a bundle whose inputs or folders changed around the build (the digests taken now
 * might not be of the bytes esbuild read).
 */
export async function writeCachedBundle(entryPath: string, inputs: string[], bundle: CachedBundle, buildStartedMs: number, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const maxBytes = bundleCacheMaxBytes(env); // a bad setting is an error, not a cache miss
  try {
    const dir = bootCacheDirFromEnv(env);
    if (!dir) return false;
    const entry = path.resolve(entryPath);
    if (!inputs.every((file) => path.isAbsolute(file) && statSync(file).isFile())) return false;
    const folders = foldersOf(inputs, bundle.projectRoot);
    if ([...inputs, ...folders].some((at) => statSync(at).mtimeMs > buildStartedMs - MTIME_SLACK_MS)) return false;
    const file: CacheFile = {
      version: 1,
      entryPath: entry,
      inputs: Object.fromEntries(inputs.map((input) => [input, fileDigest(input)])),
      folders: Object.fromEntries(folders.map((folder) => [folder, folderDigest(folder)])),
      bundle: { entry: bundle.entry, sources: bundle.sources, hash: bundle.hash, projectRoot: bundle.projectRoot, inputFiles: bundle.inputFiles, warnings: bundle.warnings },
    };
    const target = cacheFileOf(dir, entry);
    // Private as the boot images are: a guest's code may hold what its owner would not share.
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    const temp = `${target}.${process.pid}.tmp`;
    await writeFile(temp, JSON.stringify(file), { mode: 0o600 });
    await rename(temp, target);
    evictBundles(path.dirname(target), maxBytes);
    return true;
  } catch {
    return false;
  }
}

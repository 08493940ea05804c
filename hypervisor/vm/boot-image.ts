// Boot images: the VM's whole state right after the hypervisor's glue has booted and before the guest
// runs, kept so that the next VM with the same engine, glue and limits starts from a memory copy
// instead of calibrating and evaluating the glue again (most of a boot: notes/quickjs.md, BENCHMARKS).
//
// Why a copy is exact: under boot format 2 (vm.ts) everything up to that point is a pure function of
// the engine, the hypervisor code, the glue and the limits. The one input the engine took there, the
// clock read in JS_NewContext that seeds Math.random, gets a constant; the real seed comes from the
// entropy input right after, on both paths. A boot that takes any other input or makes a host call
// before the guest is not captured. So a VM booted from an image is bit for bit the VM an uncached boot
// builds (test/boot-image.test.ts compares state hashes and positions, and replays a trace recorded
// with images on a VM without them).
//
// Two levels: images in this thread's memory (most recent few), and files in a cache directory
// (default ~/.cache/ftjs/boot-images, FTJS_BOOT_CACHE_DIR, or FTJS_BOOT_CACHE_DIR=off), each verified
// by its SHA-256 before use and keyed by everything the boot depends on, including the hypervisor's own
// code, so that a changed build never reads another build's image.

import { createHash } from 'node:crypto';
import { accessSync, existsSync, constants as fsConstants, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootCacheDirFromEnv } from './cache-dir.js';
import { ENGINE_WASM_SHA256 } from './engine.js';
import type { Glue } from './glue.js';
import type { VmLimits } from './limits.js';
import type { PositionState } from './position.js';
import type { BootConfig, ConsoleLine } from './vm.js';

/**
 * The boot sequence a boot config asks for. Absent (traces written before it): the engine's first clock
 * read seeds Math.random and is recorded, host function after calibration, no images. 2: the sequence
 * in vm.ts bootSequence, whose pre-guest part is cacheable.
 */
export const BOOT_FORMAT = 2;
/** File format of a boot image on disk. */
const IMAGE_MAGIC = 'FTJSIMG1';
/** Granularity of the sparse copy: only pages that are not all zero are kept. */
export const IMAGE_PAGE_BYTES = 4096;
/** Images kept in a thread's memory. */
export const DEFAULT_MEMORY_IMAGES = 4;
/** Bytes of image files the cache directory may hold; the least recently used go first. */
export const DEFAULT_BOOT_CACHE_MAX_BYTES = 256 * 1024 * 1024;
/** A temporary file this old was left by a writer that died. */
const STALE_TEMP_MS = 60_000;

/** Where the pre-guest boot left the things the host holds pointers to. */
export interface BootLayout {
  contextPointer: number;
  /** The JSValue* of the global object quickjs-emscripten holds (context.global). */
  globalPointer: number;
  /** The JSValue* of the runtime glue's dispatch function. */
  dispatchPointer: number;
  counterAddress: number;
  randomStateAddress: number;
}

/**
 * An image taken after the guest's boot task too: when the guest's top level took no input (no clock,
 * entropy or Math.random, no timer or fetch), the post-boot memory differs between boots only in
 * Math.random's state, which the hypervisor writes anyway. Then the guest need not be compiled again.
 */
export interface GuestPhase {
  /** The position after the guest's boot task. */
  position: PositionState;
  /** The position before it, where the seed is drawn (the memory holds the counter as it is after). */
  seedPos: number;
  booted: boolean;
  bootMessage: string | null;
  console: ConsoleLine[];
}

export interface BootImage {
  key: string;
  memoryBytes: number;
  layout: BootLayout;
  position: PositionState;
  handlerCalls: number;
  /** The pages the boot's prefix (runtime, context, host function) leaves not all zero: in a fresh memory, all the others are. */
  prefixPages: number[];
  guest?: GuestPhase;
  /** Indices of the IMAGE_PAGE_BYTES pages that are not all zero, ascending. */
  pages: Uint32Array;
  /** Those pages, in order. */
  data: Uint8Array;
}

export class BootImageError extends Error {
  override name = 'BootImageError';
}

export interface BootKeyInput {
  glue: Glue;
  limits: Pick<VmLimits, 'memoryLimitBytes' | 'maxStackBytes'>;
  bootFormat?: number;
}

/** Defined (true) by cli/cli-bundle-build.ts in the bundled command and worker; undeclared in tsc's output. */
declare const FTJS_BUNDLED: boolean | undefined;

let codeHash: string | undefined;

/**
 * SHA-256 over the hypervisor's code (every module next to this one, or the bundle it was built into):
 * the boot sequence, the module loader and anything they call. Any change of it is a new key.
 */
function hypervisorCodeHash(): string {
  if (codeHash) return codeHash;
  const h = createHash('sha256');
  const dir = fileURLToPath(new URL('.', import.meta.url));
  const own = ['vm.js', 'engine.js', 'position.js', 'random-state.js', 'boot-image.js'];
  // Built by cli/cli-bundle-build.ts, the code that runs is the VM worker's bundle (dist/bundle/vm-worker.cjs, one file), not the files next to this module's tsc output.
  const files =
    typeof FTJS_BUNDLED === 'boolean'
      ? [fileURLToPath(new URL('../../bundle/vm-worker.cjs', import.meta.url))]
      : own.every((f) => existsSync(path.join(dir, f)))
        ? readdirSync(dir)
            .filter((f) => f.endsWith('.js'))
            .sort()
            .map((f) => path.join(dir, f))
        : [fileURLToPath(import.meta.url)];
  for (const file of files) h.update(`${path.basename(file)}\0`).update(readFileSync(file));
  try {
    const require = createRequire(import.meta.url);
    h.update((require('quickjs-emscripten-core/package.json') as { version: string }).version);
  } catch {
    /* bundled: its code is in the bundle hashed above */
  }
  codeHash = h.digest('hex');
  return codeHash;
}

/** Everything the pre-guest boot depends on. The guest, env and the other limits do not enter it. */
export function bootImageKey(input: BootKeyInput): string {
  const parts = {
    image: IMAGE_MAGIC,
    bootFormat: input.bootFormat ?? 1,
    engine: ENGINE_WASM_SHA256,
    code: hypervisorCodeHash(),
    glue: input.glue.sha256,
    memoryLimitBytes: input.limits.memoryLimitBytes,
    maxStackBytes: input.limits.maxStackBytes,
  };
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** An image of the VM after the guest's boot task: the pre-guest key plus everything the guest's boot sees. */
export function guestImageKey(config: BootConfig): string {
  const parts = { boot: bootImageKey(config), guest: config.guestHash, entry: config.entry, env: config.env, limits: config.limits, ...(config.preload ? { preload: config.preload } : {}) };
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

const ZERO_PAGE = new Uint8Array(IMAGE_PAGE_BYTES);

/** The pages of `memory` that are not all zero. */
export function nonZeroPages(memory: WebAssembly.Memory): number[] {
  const bytes = Buffer.from(memory.buffer);
  const count = bytes.byteLength / IMAGE_PAGE_BYTES;
  const kept: number[] = [];
  for (let i = 0; i < count; i++) {
    if (bytes.compare(ZERO_PAGE, 0, IMAGE_PAGE_BYTES, i * IMAGE_PAGE_BYTES, (i + 1) * IMAGE_PAGE_BYTES) !== 0) kept.push(i);
  }
  return kept;
}

/** The non-zero pages of `memory`. */
export function captureMemory(memory: WebAssembly.Memory): { pages: Uint32Array; data: Uint8Array } {
  const bytes = Buffer.from(memory.buffer);
  const kept = nonZeroPages(memory);
  const data = new Uint8Array(kept.length * IMAGE_PAGE_BYTES);
  kept.forEach((page, j) => data.set(bytes.subarray(page * IMAGE_PAGE_BYTES, (page + 1) * IMAGE_PAGE_BYTES), j * IMAGE_PAGE_BYTES));
  return { pages: Uint32Array.from(kept), data };
}

/**
 * Makes `memory`, fresh but for the boot's prefix, equal to the image's memory: its pages copied in,
 * and the prefix's pages it does not hold zeroed. No other page is touched: reading or writing the
 * rest of a fresh memory would fault every page in (7–35 ms for 16 MiB).
 */
export function applyImageMemory(memory: WebAssembly.Memory, image: BootImage): void {
  const bytes = new Uint8Array(memory.buffer);
  if (bytes.byteLength < image.memoryBytes) throw new BootImageError(`boot image memory is ${image.memoryBytes} bytes, the VM has only ${bytes.byteLength}`);
  const held = new Set(image.pages);
  for (const page of image.prefixPages) if (!held.has(page)) bytes.fill(0, page * IMAGE_PAGE_BYTES, (page + 1) * IMAGE_PAGE_BYTES);
  image.pages.forEach((page, j) => bytes.set(image.data.subarray(j * IMAGE_PAGE_BYTES, (j + 1) * IMAGE_PAGE_BYTES), page * IMAGE_PAGE_BYTES));
}

interface ImageHeader {
  key: string;
  memoryBytes: number;
  layout: BootLayout;
  position: PositionState;
  handlerCalls: number;
  prefixPages: number[];
  guest?: GuestPhase;
  pageCount: number;
  /** SHA-256 over the page index table and the page data. */
  sha256: string;
}

function digest(pages: Uint32Array, data: Uint8Array): string {
  return createHash('sha256')
    .update(new Uint8Array(pages.buffer, pages.byteOffset, pages.byteLength))
    .update(data)
    .digest('hex');
}

export function encodeImage(image: BootImage): Uint8Array {
  const header: ImageHeader = {
    key: image.key,
    memoryBytes: image.memoryBytes,
    layout: image.layout,
    position: image.position,
    handlerCalls: image.handlerCalls,
    prefixPages: image.prefixPages,
    ...(image.guest ? { guest: image.guest } : {}),
    pageCount: image.pages.length,
    sha256: digest(image.pages, image.data),
  };
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(IMAGE_MAGIC.length + 4);
  prefix.write(IMAGE_MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(json.byteLength, IMAGE_MAGIC.length);
  // The page table starts 4-byte aligned so that it can be read in place.
  const pad = Buffer.alloc((4 - ((prefix.byteLength + json.byteLength) % 4)) % 4);
  return Buffer.concat([prefix, json, pad, new Uint8Array(image.pages.buffer, image.pages.byteOffset, image.pages.byteLength), image.data]);
}

/** Parses and verifies an image file's bytes; throws BootImageError naming what is wrong. */
export function decodeImage(bytes: Uint8Array, expectedKey: string): BootImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.byteLength < IMAGE_MAGIC.length + 4 || buf.toString('latin1', 0, IMAGE_MAGIC.length) !== IMAGE_MAGIC) throw new BootImageError('not a boot image (bad magic)');
  const jsonBytes = buf.readUInt32LE(IMAGE_MAGIC.length);
  let offset = IMAGE_MAGIC.length + 4;
  if (offset + jsonBytes > buf.byteLength) throw new BootImageError('truncated header');
  const header = JSON.parse(buf.toString('utf8', offset, offset + jsonBytes)) as ImageHeader;
  offset += jsonBytes;
  offset += (4 - (offset % 4)) % 4;
  if (header.key !== expectedKey) throw new BootImageError(`image is for key ${String(header.key).slice(0, 12)}…, expected ${expectedKey.slice(0, 12)}…`);
  const tableBytes = header.pageCount * 4;
  if (offset + tableBytes + header.pageCount * IMAGE_PAGE_BYTES !== buf.byteLength) throw new BootImageError('size does not match its page count');
  const pages = new Uint32Array(buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + tableBytes));
  const data = new Uint8Array(buf.buffer, buf.byteOffset + offset + tableBytes, header.pageCount * IMAGE_PAGE_BYTES);
  if (digest(pages, data) !== header.sha256) throw new BootImageError('checksum mismatch (corrupt file)');
  const maxPage = header.memoryBytes / IMAGE_PAGE_BYTES;
  if (!Array.isArray(header.prefixPages) || !header.prefixPages.every((p) => Number.isInteger(p) && p >= 0 && p < maxPage)) throw new BootImageError('prefix pages out of range');
  for (let j = 0; j < pages.length; j++) if (pages[j]! >= maxPage || (j > 0 && pages[j]! <= pages[j - 1]!)) throw new BootImageError('page table out of order or out of range');
  return {
    key: header.key,
    memoryBytes: header.memoryBytes,
    layout: header.layout,
    position: header.position,
    handlerCalls: header.handlerCalls,
    prefixPages: header.prefixPages,
    ...(header.guest ? { guest: header.guest } : {}),
    pages,
    data,
  };
}

export interface BootImageCacheOptions {
  /** Directory of image files; null keeps images in memory only. */
  dir: string | null;
  maxDiskBytes?: number;
  maxMemoryImages?: number;
}

/** What happened to the boot image at a boot (reported by the VM worker, logged by the node). */
export interface BootImageUse {
  /** 'memory' | 'disk': booted from an image; 'captured': booted in full and kept an image; 'none': neither. */
  source: 'memory' | 'disk' | 'captured' | 'none';
  /** Why there was no image to use or keep, if any. */
  reason?: string;
  /** Image files found bad (and removed) or not written since the last boot. */
  problems?: string[];
  /** The guest's boot task: run from an image of its end state ('memory' | 'disk'), run and kept ('captured'), or run. */
  guest?: 'memory' | 'disk' | 'captured' | 'none';
  /** Why the guest's boot was not kept, if it was not. */
  guestReason?: string;
}

export class BootImageCache {
  private readonly images = new Map<string, BootImage>();
  /** Images another thread read from this cache's files and verified (adoptRead), not yet asked for. */
  private readonly preread = new Map<string, BootImage>();
  private readonly maxDiskBytes: number;
  private readonly maxMemoryImages: number;
  /** Problems met reading or writing files (a cache never fails a boot). */
  readonly problems: string[] = [];
  private writing: Promise<void> = Promise.resolve();

  /** Set when the directory cannot be written: images are then read from it if there, and kept in memory only. */
  private readonly readOnly: boolean = false;

  constructor(readonly options: BootImageCacheOptions) {
    this.maxDiskBytes = options.maxDiskBytes ?? DEFAULT_BOOT_CACHE_MAX_BYTES;
    this.maxMemoryImages = options.maxMemoryImages ?? DEFAULT_MEMORY_IMAGES;
    const why = options.dir ? unwritableReason(options.dir) : null;
    if (why) {
      // Said once: the first boot reports it (BootImageUse.problems); no later write is tried.
      this.problems.push(`boot image cache ${options.dir} cannot be written (${why}): booting without kept images (FTJS_BOOT_CACHE_DIR relocates the cache, =off disables it)`);
      this.readOnly = true;
    }
  }

  private file(key: string): string {
    return path.join(this.options.dir!, `${key}.img`);
  }

  /** The image for `key`, from memory or a verified file; null if there is none (or it is bad: then it is removed). */
  get(key: string): { image: BootImage; source: 'memory' | 'disk' } | null {
    const kept = this.images.get(key);
    if (kept) {
      this.images.delete(key);
      this.images.set(key, kept); // most recently used last
      return { image: kept, source: 'memory' };
    }
    if (!this.options.dir) return null;
    const file = this.file(key);
    const read = this.preread.get(key);
    this.preread.clear(); // offered for the next boot only
    if (read) {
      this.remember(read);
      try {
        const now = new Date();
        utimesSync(file, now, now);
      } catch {
        // evicted since it was read: the image in hand is verified all the same
      }
      return { image: read, source: 'disk' };
    }
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch {
      return null;
    }
    try {
      const image = decodeImage(bytes, key);
      this.remember(image);
      const now = new Date();
      utimesSync(file, now, now); // least recently used is evicted first
      return { image, source: 'disk' };
    } catch (error) {
      this.problems.push(`${file}: ${(error as Error).message}; removed`);
      rmSync(file, { force: true });
      return null;
    }
  }

  /**
   * An image of this cache's directory that another thread of this process has read and verified with
   * decodeImage (readVerifiedImage): the next get() of its key takes it instead of reading the file.
   * The main thread does this while the VM worker is still starting (issue 19, cold start).
   */
  adoptRead(image: BootImage): void {
    this.preread.set(image.key, image);
  }

  /** Keeps `image` in memory and, in the background, on disk (written whole, then renamed into place). */
  put(image: BootImage): void {
    this.remember(image);
    const dir = this.options.dir;
    if (!dir || this.readOnly) return;
    this.writing = this.writing.then(async () => {
      const file = this.file(image.key);
      const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      try {
        // A guest's image holds what its top level keeps, its env included: for this user only.
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await writeFile(temp, encodeImage(image), { mode: 0o600 });
        await rename(temp, file);
        this.evict();
      } catch (error) {
        this.problems.push(`${file}: ${(error as Error).message}`);
        rmSync(temp, { force: true });
      }
    });
  }

  /** Resolves when the files of every put so far are written (tests, and a process about to exit). */
  flush(): Promise<void> {
    return this.writing;
  }

  private remember(image: BootImage): void {
    this.images.set(image.key, image);
    while (this.images.size > this.maxMemoryImages) this.images.delete(this.images.keys().next().value!);
  }

  private evict(): void {
    const dir = this.options.dir!;
    const names = readdirSync(dir);
    // Temporary files of writers that died before their rename.
    for (const f of names.filter((n) => n.endsWith('.tmp'))) {
      const s = statSync(path.join(dir, f), { throwIfNoEntry: false });
      if (s && Date.now() - s.mtimeMs > STALE_TEMP_MS) rmSync(path.join(dir, f), { force: true });
    }
    const files = names
      .filter((f) => f.endsWith('.img'))
      .map((f) => {
        const s = statSync(path.join(dir, f), { throwIfNoEntry: false });
        return { file: path.join(dir, f), bytes: s?.size ?? 0, used: s?.mtimeMs ?? 0 };
      })
      .sort((a, b) => b.used - a.used);
    let total = 0;
    for (const f of files) {
      total += f.bytes;
      if (total > this.maxDiskBytes) rmSync(f.file, { force: true });
    }
  }
}

/** Why `dir` cannot hold cache files (created if missing), or null when it can. */
function unwritableReason(dir: string): string | null {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, fsConstants.W_OK);
    return null;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  }
}

/**
 * The image file of `key` in `dir`, read and verified as get() verifies it; null if there is none or it
 * does not verify (the VM worker's own get() then finds the bad file, reports and removes it).
 */
export function readVerifiedImage(key: string, dir: string | null = bootCacheDirFromEnv()): BootImage | null {
  if (!dir) return null;
  try {
    return decodeImage(readFileSync(path.join(dir, `${key}.img`)), key);
  } catch {
    return null;
  }
}

let processCache: BootImageCache | undefined;

/** FTJS_BOOT_CACHE_MAX_MB, else DEFAULT_BOOT_CACHE_MAX_BYTES. */
export function bootCacheMaxBytesFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const configured = env.FTJS_BOOT_CACHE_MAX_MB;
  if (configured === undefined || configured === '') return DEFAULT_BOOT_CACHE_MAX_BYTES;
  const mb = Number(configured);
  if (!Number.isFinite(mb) || mb < 0) throw new BootImageError(`FTJS_BOOT_CACHE_MAX_MB must be a number of MiB >= 0, got ${JSON.stringify(configured)}`);
  return Math.floor(mb * 1024 * 1024);
}

/** This thread's cache, configured from the environment. */
export function defaultBootImageCache(): BootImageCache {
  processCache ??= new BootImageCache({ dir: bootCacheDirFromEnv(), maxDiskBytes: bootCacheMaxBytesFromEnv() });
  return processCache;
}

// Loads the pinned QuickJS build and wraps every emscripten import through which the host could leak
// into the guest. The clock goes to the input port; local time and time zone are fixed to UTC; the
// environment is empty. Anything we do not recognise fails the boot: an engine upgrade must be a
// deliberate act, re-measured, never a silent change of what the guest can see.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { QuickJSSyncVariant, QuickJSWASMModule } from 'quickjs-emscripten-core';
import { DirtyPages } from './dirty-pages.js';
import { trackedEngineWasm } from './tracked-wasm.js';

export const ENGINE_NAME = 'quickjs-emscripten/release-sync';
export const ENGINE_VERSION = '0.32.0';
/** SHA-256 of the pinned emscripten-module.wasm; the import identification below was measured on it. */
export const ENGINE_WASM_SHA256 = '105c3bed22d457e43e3d1c3c1c6959fda62a8fe06f0fc8a985303c3a2be72232';

const WASM_PAGE_BYTES = 65536;
const WASM_MAX_PAGES = 32768;
/** The engine's own footprint before any guest allocation (the default initial memory of the build). */
export const DEFAULT_INITIAL_MEMORY_BYTES = 16 * 1024 * 1024;

export class EngineError extends Error {
  override name = 'EngineError';
}

/** What the engine asks of the hypervisor: the clock. Everything else is answered deterministically. */
export interface EngineClock {
  /** Milliseconds since the epoch, as the guest must see it. */
  nowMs(): number;
}

export interface Engine {
  module: QuickJSWASMModule;
  memory: WebAssembly.Memory;
  wasmSha256: string;
  /** Pages of `memory` written since last asked (dirty-pages.ts). */
  dirty: DirtyPages;
  /** The memory's maximum size (it never grows past). */
  maxMemoryBytes: number;
}

type ImportRole = 'date_now' | 'localtime' | 'tzset' | 'environ_get' | 'environ_sizes_get' | 'setitimer' | 'passthrough';

// Every import of the pinned build, recognised by what its glue source does (names are minified).
// Passthrough imports touch nothing nondeterministic: assertions, abort, exit, fd stubs, heap resize,
// and the quickjs-emscripten callbacks. Anything not in this table fails the boot. The package ships
// the same glue twice, as an ES module (emscripten-module.mjs: in process, and the tests) and as
// CommonJS (emscripten-module.cjs: the bundled VM worker, cli/cli-bundle-build.ts), minified apart:
// where a pattern names a minified identifier it takes any (measured on both).
/** fd_write: decodes the bytes written with its TextDecoder (`la` in the .mjs glue, `ha` in the .cjs). */
const FD_WRITE = /\b\w+\.decode\(p\.buffer\?p\.subarray\(0,l\)/;
const IMPORT_TABLE: Array<[ImportRole, (source: string) => boolean]> = [
  ['date_now', (s) => /^\(\)\s*=>\s*Date\.now\(\)$/.test(s)],
  ['localtime', (s) => s.includes('getTimezoneOffset') && s.includes('getSeconds')],
  ['tzset', (s) => s.includes('getTimezoneOffset') && s.includes('UTC')],
  ['setitimer', (s) => s.includes('setTimeout')],
  ['environ_get', (s) => /for\s*\(\s*\w+ of \w+\(\)\)/.test(s)],
  ['environ_sizes_get', (s) => /=\w+\(\);\w+\[a>>2\]=b\.length/.test(s)],
  ['passthrough', (s) => s.includes('Assertion failed')], // __assert_fail
  ['passthrough', (s) => /^\(\)=>\w+\(""\)$/.test(s)], // abort
  ['passthrough', (s) => s === '()=>{Q=!1;S=0}'], // keepalive clear
  ['passthrough', (s) => s === '()=>52' || s === 'function(){return 70}'], // fd_close / fd_seek stubs
  ['passthrough', (s) => FD_WRITE.test(s)], // fd_write to stdout/stderr: QuickJS never prints in this build
  ['passthrough', (s) => s.includes('.grow(')], // emscripten_resize_heap
  ['passthrough', (s) => s.includes('onExit')], // proc_exit
  ['passthrough', (s) => /\b\w\.callbacks\./.test(s)], // quickjs-emscripten host callbacks
];

function classify(source: string): ImportRole | null {
  for (const [role, matches] of IMPORT_TABLE) if (matches(source)) return role;
  return null;
}

const REQUIRED_ROLES: ImportRole[] = ['date_now', 'localtime', 'tzset', 'environ_get', 'environ_sizes_get'];

let verified: { bytes: Buffer; sha256: string } | undefined;

/** The pinned engine's wasm, read once and checked against its pinned hash. */
function verifiedWasm(): { bytes: Buffer; sha256: string } {
  if (verified) return verified;
  const require = createRequire(import.meta.url);
  const pkg = require('@jitl/quickjs-wasmfile-release-sync/package.json') as { version: string };
  if (pkg.version !== ENGINE_VERSION) {
    throw new EngineError(
      `engine build mismatch: @jitl/quickjs-wasmfile-release-sync is ${pkg.version}, ftjs is pinned to ${ENGINE_VERSION}; ` +
        `reinstall with 'npm ci' (the import identification and position counter were measured on ${ENGINE_VERSION})`,
    );
  }
  const bytes = readFileSync(require.resolve('@jitl/quickjs-wasmfile-release-sync/wasm'));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== ENGINE_WASM_SHA256) {
    throw new EngineError(`engine build mismatch: emscripten-module.wasm has sha256 ${sha256}, ftjs is pinned to ${ENGINE_WASM_SHA256}; reinstall with 'npm ci'`);
  }
  verified = { bytes, sha256 };
  return verified;
}

let prepared: Promise<{ module: WebAssembly.Module; sha256: string }> | undefined;

/**
 * Compiles the engine (once per thread) and loads quickjs-emscripten, in the background: a VM worker
 * calls it as it starts, so that the compile overlaps the main thread's work before the boot request.
 */
export function prepareEngine(): Promise<{ module: WebAssembly.Module; sha256: string }> {
  prepared ??= (async () => {
    const { bytes, sha256 } = verifiedWasm();
    const loadVariant = async () => {
      const variant = (await import('@jitl/quickjs-wasmfile-release-sync')).default as unknown as QuickJSSyncVariant;
      await Promise.all([variant.importFFI(), variant.importModuleLoader()]); // the emscripten glue, loaded by the first boot otherwise
    };
    const [module] = await Promise.all([WebAssembly.compile(trackedEngineWasm(bytes, sha256) as unknown as BufferSource), import('quickjs-emscripten-core'), loadVariant()]);
    return { module, sha256 };
  })();
  return prepared;
}

export function engineWasmSha256(): string {
  return verifiedWasm().sha256;
}

/**
 * Boots a fresh WebAssembly instance of QuickJS with wrapped imports.
 * `initialMemoryBytes` must equal the memory size of a snapshot that will be copied in (growing
 * after boot leaves emscripten's heap views stale).
 */
export async function bootEngine(clock: EngineClock, initialMemoryBytes: number, maximumMemoryBytes: number): Promise<Engine> {
  const { module: wasmModule, sha256 } = await prepareEngine();
  if (initialMemoryBytes % WASM_PAGE_BYTES !== 0) throw new EngineError(`initial memory ${initialMemoryBytes} is not a multiple of 64 KiB`);
  // This build's malloc cannot size its blocks (no malloc_usable_size), so QuickJS's own memory
  // limit undercounts badly. The WASM memory's maximum is the limit that holds: past it the heap
  // cannot grow, malloc fails, and the guest gets a catchable out-of-memory error.
  const maximumPages = Math.min(WASM_MAX_PAGES, Math.ceil(Math.max(maximumMemoryBytes, initialMemoryBytes) / WASM_PAGE_BYTES));
  const memory = new WebAssembly.Memory({ initial: initialMemoryBytes / WASM_PAGE_BYTES, maximum: maximumPages });
  const dirty = new DirtyPages(memory);

  // Loaded here, not at import: a node's main thread needs this module's constants, not the engine.
  const { newQuickJSWASMModuleFromVariant, newVariant } = await import('quickjs-emscripten-core');
  const releaseSync = (await import('@jitl/quickjs-wasmfile-release-sync')).default as unknown as QuickJSSyncVariant;
  const variant = newVariant(releaseSync, {
    wasmMemory: memory,
    emscriptenModule: {
      instantiateWasm(imports: WebAssembly.Imports, onSuccess: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void) {
        wrapImports(imports, memory, clock, dirty);
        const instance = new WebAssembly.Instance(wasmModule, imports);
        const exports = trackHostWrites(instance.exports, dirty);
        onSuccess({ exports } as WebAssembly.Instance, wasmModule);
        return exports;
      },
    } as never,
  });
  const module = await newQuickJSWASMModuleFromVariant(variant);
  return { module, memory, wasmSha256: sha256, dirty, maxMemoryBytes: maximumPages * WASM_PAGE_BYTES };
}

/** The pinned wasm's export names of malloc and stackAlloc (either glue: _malloc=b.v, …=b.Na). */
const MALLOC_EXPORT = 'v';
const STACK_ALLOC_EXPORT = 'Na';

/**
 * The glue writes into memory from JS only into blocks it has just taken from malloc or stackAlloc
 * (strings and buffers passed in, out-parameters): report each such block as written.
 */
function trackHostWrites(exports: WebAssembly.Exports, dirty: DirtyPages): WebAssembly.Exports {
  const malloc = exports[MALLOC_EXPORT];
  const stackAlloc = exports[STACK_ALLOC_EXPORT];
  if (typeof malloc !== 'function' || typeof stackAlloc !== 'function') {
    throw new EngineError(`engine build mismatch: exports ${MALLOC_EXPORT} (malloc) or ${STACK_ALLOC_EXPORT} (stackAlloc) missing`);
  }
  const allocating = (alloc: (bytes: number) => number) => (bytes: number) => {
    const pointer = alloc(bytes);
    dirty.markRange(pointer, bytes);
    return pointer;
  };
  return { ...exports, [MALLOC_EXPORT]: allocating(malloc as (bytes: number) => number), [STACK_ALLOC_EXPORT]: allocating(stackAlloc as (bytes: number) => number) };
}

export function wrapImports(imports: WebAssembly.Imports, memory: WebAssembly.Memory, clock: EngineClock, dirty?: DirtyPages): void {
  const table = imports.a as Record<string, unknown> | undefined;
  if (!table) throw new EngineError('engine build mismatch: no import module "a"; is this the pinned quickjs-emscripten build?');
  const found = new Map<ImportRole, string>();
  for (const [name, value] of Object.entries(table)) {
    if (typeof value !== 'function') continue;
    const source = value.toString();
    const role = classify(source);
    if (role === null) throw new EngineError(`engine build mismatch: unrecognised emscripten import "a.${name}": ${source.slice(0, 120)}`);
    if (role === 'passthrough') {
      // fd_write reports the bytes written through an out-parameter: a host write into memory.
      if (dirty && FD_WRITE.test(source)) table[name] = markingOut(value as (...args: number[]) => number, 3, dirty);
      continue;
    }
    if (found.has(role)) throw new EngineError(`engine build mismatch: two imports look like ${role} ("a.${found.get(role)}" and "a.${name}")`);
    found.set(role, name);
    table[name] = replacement(role, memory, clock, dirty);
  }
  for (const role of REQUIRED_ROLES) {
    if (!found.has(role)) throw new EngineError(`engine build mismatch: could not identify the ${role} import; refusing to boot a VM that could read the host's ${role}`);
  }
}

function i32(memory: WebAssembly.Memory): Int32Array {
  return new Int32Array(memory.buffer);
}

/** `fn`, reporting the 4-byte out-parameter at argument `index` as written. */
function markingOut(fn: (...args: number[]) => number, index: number, dirty: DirtyPages): (...args: number[]) => number {
  return (...args: number[]) => {
    const result = fn(...args);
    dirty.markRange(args[index]!, 4);
    return result;
  };
}

function replacement(role: ImportRole, memory: WebAssembly.Memory, clock: EngineClock, dirty?: DirtyPages): (...args: never[]) => unknown {
  const wrote = (address: number, bytes: number): void => dirty?.markRange(address, bytes);
  switch (role) {
    case 'date_now':
      return () => clock.nowMs();
    case 'localtime':
      // localtime_r(time, tm): the guest lives in UTC whatever the host's TZ.
      return ((timeSeconds: bigint | number, tmPtr: number) => {
        const t = Number(timeSeconds);
        const d = new Date(t * 1000);
        const heap = i32(memory);
        const base = tmPtr >> 2;
        const year = d.getUTCFullYear();
        const startOfYear = Date.UTC(year, 0, 1);
        heap[base + 0] = d.getUTCSeconds();
        heap[base + 1] = d.getUTCMinutes();
        heap[base + 2] = d.getUTCHours();
        heap[base + 3] = d.getUTCDate();
        heap[base + 4] = d.getUTCMonth();
        heap[base + 5] = year - 1900;
        heap[base + 6] = d.getUTCDay();
        heap[base + 7] = Math.floor((d.getTime() - startOfYear) / 86400000);
        heap[base + 8] = 0; // tm_isdst
        heap[base + 9] = 0; // tm_gmtoff
        wrote(tmPtr, 40);
      }) as never;
    case 'tzset':
      // tzset_js(timezone, daylight, std_name, dst_name): UTC, no DST.
      return ((timezonePtr: number, daylightPtr: number, stdNamePtr: number, dstNamePtr: number) => {
        const heap = i32(memory);
        heap[timezonePtr >> 2] = 0;
        heap[daylightPtr >> 2] = 0;
        const bytes = new Uint8Array(memory.buffer);
        bytes.set([0x55, 0x54, 0x43, 0], stdNamePtr); // "UTC\0"
        bytes.set([0x55, 0x54, 0x43, 0], dstNamePtr);
        for (const [at, n] of [
          [timezonePtr, 4],
          [daylightPtr, 4],
          [stdNamePtr, 4],
          [dstNamePtr, 4],
        ] as const)
          wrote(at, n);
      }) as never;
    case 'environ_sizes_get':
      return ((countPtr: number, bufSizePtr: number) => {
        const heap = i32(memory);
        heap[countPtr >> 2] = 0;
        heap[bufSizePtr >> 2] = 0;
        wrote(countPtr, 4);
        wrote(bufSizePtr, 4);
        return 0;
      }) as never;
    case 'environ_get':
      return (() => 0) as never;
    case 'setitimer':
      return (() => {
        throw new EngineError('the engine asked for a host timer (setitimer); ftjs guests get timers only through the input port');
      }) as never;
    case 'passthrough':
      throw new EngineError('passthrough has no replacement');
  }
}

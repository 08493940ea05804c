// The hypervisor's guest-side code (web APIs and the runtime glue) is part of what a VM is booted
// from, like the guest's own sources: it travels in the boot config, so a backup and any replay run
// exactly the glue the recording ran, whatever version of ftjs is installed where they run.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync } from 'node:zlib';
import { sha256Hex } from './sources.js';

export interface Glue {
  web: string;
  runtime: string;
  /** Chunks the guest glue compiles on first use (host op LazyGlue), by name: the Intl polyfill and its data. */
  lazy?: Record<string, string>;
  sha256: string;
}

let loaded: Glue | undefined;

/** The glue this build of ftjs ships (read once). */
export function localGlue(): Glue {
  if (!loaded) {
    // Built by hypervisor/vm/glue-build.ts (npm run build): the web platform and its polyfills in one script.
    const built = new URL('./guest/web.js', import.meta.url);
    let web: string;
    try {
      web = readFileSync(built, 'utf8');
    } catch (error) {
      throw new Error(`the guest web platform is not built (${fileURLToPath(built)}: ${(error as NodeJS.ErrnoException).code}); run npm run build`);
    }
    const runtime = readFileSync(new URL('../../../hypervisor/guest/runtime.js', import.meta.url), 'utf8');
    const lazyFile = new URL('./guest/lazy.json', import.meta.url);
    let lazy: Record<string, string>;
    try {
      lazy = JSON.parse(readFileSync(lazyFile, 'utf8')) as Record<string, string>;
    } catch (error) {
      throw new Error(`the guest's lazy glue (Intl) is not built (${fileURLToPath(lazyFile)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); run npm run build`);
    }
    loaded = { web, runtime, lazy, sha256: glueHash(web, runtime, lazy) };
  }
  return loaded;
}

/** The last glue hashed and its hash: every welcome a backup gets carries the same megabyte of glue. */
let lastHashed: { web: string; runtime: string; lazy: Record<string, string>; sha256: string } | null = null;

export function glueHash(web: string, runtime: string, lazy: Record<string, string> = {}): string {
  const last = lastHashed;
  if (last !== null && last.web === web && last.runtime === runtime && sameChunks(last.lazy, lazy)) return last.sha256;
  const sha256 = hashGlue(web, runtime, lazy);
  lastHashed = { web, runtime, lazy: { ...lazy }, sha256 };
  return sha256;
}

function sameChunks(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

function hashGlue(web: string, runtime: string, lazy: Record<string, string>): string {
  // A glue without lazy chunks hashes as it did before they existed, so older traces still verify.
  const chunks = Object.keys(lazy)
    .sort()
    .map((name) => `\n${name} ${sha256Hex(lazy[name]!)}`)
    .join('');
  return sha256Hex(`${sha256Hex(web)}\n${sha256Hex(runtime)}${chunks}`);
}

/** The source of lazy chunk `name` (hypervisor/vm/lazy-glue-build.ts stores it brotli-compressed, base64). */
export function lazyGlueSource(glue: Glue, name: string): string | undefined {
  const stored = glue.lazy && Object.hasOwn(glue.lazy, name) ? glue.lazy[name]! : undefined;
  if (stored === undefined) return undefined;
  if (!stored.startsWith('br64:')) return stored;
  return brotliDecompressSync(Buffer.from(stored.slice('br64:'.length), 'base64')).toString('utf8');
}

/**
 * Separates the web glue's boot script from its lazy modules (hypervisor/vm/glue-build.ts). The whole
 * string is what is hashed and recorded; only `boot` is evaluated at boot. A glue without the marker
 * (an older build) is all boot script.
 */
export const LAZY_MODULES_MARKER = '\n//# ftjs-lazy-modules\n';

export function splitWebGlue(web: string): { boot: string; lazy: Record<string, string> } {
  const at = web.indexOf(LAZY_MODULES_MARKER);
  if (at < 0) return { boot: web, lazy: {} };
  return { boot: web.slice(0, at), lazy: JSON.parse(web.slice(at + LAZY_MODULES_MARKER.length)) as Record<string, string> };
}

/**
 * Globals a lazy module sees as they were at boot (the parameters of its wrapper function, in this
 * order; hypervisor/guest/web/lazy.js passes the values it captured). Changing the list changes the glue.
 */
export const LAZY_INTRINSICS = [
  'Object',
  'Function',
  'Array',
  'Promise',
  'Symbol',
  'Error',
  'TypeError',
  'RangeError',
  'Reflect',
  'Math',
  'Number',
  'String',
  'ArrayBuffer',
  'DataView',
  'Uint8Array',
  'Uint16Array',
  'Uint32Array',
  'Int8Array',
  'Int16Array',
  'Int32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
  'Uint8ClampedArray',
  'Map',
  'Set',
  'WeakMap',
  'JSON',
  'queueMicrotask',
  'AbortController',
  'AbortSignal',
  'DOMException',
  'TextEncoder',
  'TextDecoder',
  'globalThis',
  'self',
  'global',
  'window',
] as const;

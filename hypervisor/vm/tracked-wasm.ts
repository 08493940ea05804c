// The engine's wasm with write tracking (wasm-dirty.ts). The rewrite takes ~300 ms on this machine,
// too long for every VM worker's start, so `npm run build` writes it next to this module, named for the
// pinned wasm's hash and the rewrite's version; a missing file is rewritten on first use and kept.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { instrumentStores } from './wasm-dirty.js';

/** Bumped whenever wasm-dirty.ts changes what it emits: older files are then ignored. */
const REWRITE_VERSION = 2;

function cachePath(sha256: string): string {
  return fileURLToPath(new URL(`./engine-tracked-${sha256.slice(0, 16)}-v${REWRITE_VERSION}.wasm`, import.meta.url));
}

/** The tracked module for the pinned wasm `bytes` (whose SHA-256 the caller has checked). */
export function trackedEngineWasm(bytes: Uint8Array, sha256: string): Uint8Array {
  const file = cachePath(sha256);
  try {
    return readFileSync(file);
  } catch {
    // not built yet: rewrite now
  }
  const tracked = instrumentStores(bytes).bytes;
  try {
    const temp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    writeFileSync(temp, tracked);
    renameSync(temp, file);
  } catch {
    // a read-only install: rewrite again next time
  }
  return tracked;
}

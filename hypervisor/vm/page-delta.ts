// Page hashing and page deltas over a WASM linear memory: which pages of a memory differ from a base,
// the changed pages gathered into one buffer, and a new memory rebuilt from a base plus those pages.
//
// Why hashes: the two memories usually live on different machines (a backup offers the hashes of the
// memory it holds; the primary compares its own against them), so they can only be compared by digest.
// WASM gives no write tracking (no mprotect, no dirty bits on linear memory), so "tracked" pages would
// need engine instrumentation; hashing is the cheap thing we can do from outside.
//
// Why SHA-256 per page: measured on the bench machine (AMD EPYC with SHA extensions, Node 20), SHA-256
// over 40 MiB in 64 KiB pages takes ~27 ms, the same as SHA-1 and 2.4x faster than MD5; a JS 2x32-bit
// hash took ~22 ms and is not collision-resistant. (In 4 KiB pages the per-call overhead adds ~60%.)
// SHA-256 also lets the whole-memory digest be a hash list over the page digests (memoryDigest), so one
// pass yields both the page hashes and the digest.
//
// Pages: page i covers bytes [i * pageBytes, min((i + 1) * pageBytes, memoryBytes)); only the last may
// be short (never for pages up to 64 KiB: WASM memory is a whole number of 64 KiB pages).

import { createHash, hash } from 'node:crypto';

/**
 * Default bytes per page: the OS page, not the 64 KiB WASM page. QuickJS's allocator scatters a few
 * writes over many pages, so smaller pages send far fewer unchanged bytes (bench/snapshot-delta.ts,
 * 33 MiB memory: after 10 writes a delta is 115 KB in 4 KiB pages vs 1.0 MB in 64 KiB pages; after
 * 1000 writes 3.0 MB vs 12.1 MB, where the full snapshot is 12.7 MB), for ~1.5x the hashing time
 * and hashes of 1/128 of the memory (a 2 GiB memory needs 16 MiB of them: see pageBytesFor).
 */
export const PAGE_BYTES = 4 * 1024;
/** Bytes of one page digest (SHA-256). logging-channel/auth.ts SNAPSHOT_BASE_DIGEST_BYTES must match. */
export const PAGE_DIGEST_BYTES = 32;
/** Largest page size handled (page arithmetic stays within 32-bit integers). */
export const MAX_PAGE_BYTES = 2 ** 30;
/** Domain tag of memoryDigest, so it can never be mistaken for a SHA-256 of some other bytes. */
const MEMORY_DIGEST_TAG = 'ftjs-page-hash-list/v1';

export class PageDeltaError extends Error {
  override name = 'PageDeltaError';
}

function checkPageBytes(pageBytes: number): void {
  if (!Number.isSafeInteger(pageBytes) || pageBytes <= 0 || pageBytes > MAX_PAGE_BYTES || (pageBytes & (pageBytes - 1)) !== 0) {
    throw new PageDeltaError(`pageBytes must be a power of two from 1 to ${MAX_PAGE_BYTES}, got ${pageBytes}`);
  }
}

/** Pages of a memory of `memoryBytes` (the last one may be short). */
export function pageCount(memoryBytes: number, pageBytes = PAGE_BYTES): number {
  checkPageBytes(pageBytes);
  if (!Number.isSafeInteger(memoryBytes) || memoryBytes < 0) throw new PageDeltaError(`memoryBytes must be an integer >= 0, got ${memoryBytes}`);
  return Math.ceil(memoryBytes / pageBytes);
}

/**
 * The smallest page size, PAGE_BYTES or a larger power of two, whose hashes for a memory of
 * `memoryBytes` take at most `maxHashBytes` (e.g. to fit an offer in one frame of the channel).
 */
export function pageBytesFor(memoryBytes: number, maxHashBytes: number): number {
  for (let pageBytes = PAGE_BYTES; pageBytes <= MAX_PAGE_BYTES; pageBytes *= 2) {
    if (pageCount(memoryBytes, pageBytes) * PAGE_DIGEST_BYTES <= maxHashBytes) return pageBytes;
  }
  throw new PageDeltaError(`no page size up to ${MAX_PAGE_BYTES} keeps the hashes of ${memoryBytes} bytes within ${maxHashBytes} bytes`);
}

/** The bytes of page `index` of `memory` (a view, not a copy). */
export function pageOf(memory: Uint8Array, index: number, pageBytes = PAGE_BYTES): Uint8Array {
  return memory.subarray(index * pageBytes, Math.min((index + 1) * pageBytes, memory.byteLength));
}

/** SHA-256 of every page, concatenated: PAGE_DIGEST_BYTES per page, in page order. */
export function pageHashes(memory: Uint8Array, pageBytes = PAGE_BYTES): Uint8Array {
  const pages = pageCount(memory.byteLength, pageBytes);
  const out = new Uint8Array(pages * PAGE_DIGEST_BYTES);
  // crypto.hash (one shot) rather than createHash: less per-call overhead, which shows with small pages.
  for (let i = 0; i < pages; i++) out.set(hash('sha256', pageOf(memory, i, pageBytes), 'buffer'), i * PAGE_DIGEST_BYTES);
  return out;
}

/**
 * The digest of a whole memory, from its page hashes: SHA-256 over a tag, pageBytes, memoryBytes and
 * the page digests (a hash list: as collision-resistant as SHA-256 of the memory itself, but free once
 * the page hashes exist, where a separate SHA-256 pass over 40 MiB costs another ~27 ms). Lowercase hex.
 */
export function memoryDigest(hashes: Uint8Array, memoryBytes: number, pageBytes = PAGE_BYTES): string {
  const pages = pageCount(memoryBytes, pageBytes);
  if (hashes.byteLength !== pages * PAGE_DIGEST_BYTES) {
    throw new PageDeltaError(
      `page hashes are ${hashes.byteLength} bytes; a memory of ${memoryBytes} bytes in ${pageBytes}-byte pages needs ${pages} x ${PAGE_DIGEST_BYTES} = ${pages * PAGE_DIGEST_BYTES}`,
    );
  }
  return createHash('sha256').update(`${MEMORY_DIGEST_TAG}|${pageBytes}|${memoryBytes}|`).update(hashes).digest('hex');
}

/**
 * memoryDigest, hashing the page hashes in slices of `sliceBytes` with a turn of the event loop
 * between them: at 200 MiB they are 1.7 MB, 1–3 ms of SHA-256 on the main thread in one go.
 */
export async function memoryDigestSliced(hashes: Uint8Array, memoryBytes: number, pageBytes = PAGE_BYTES, sliceBytes = DIGEST_SLICE_BYTES): Promise<string> {
  const pages = pageCount(memoryBytes, pageBytes);
  if (hashes.byteLength !== pages * PAGE_DIGEST_BYTES) return memoryDigest(hashes, memoryBytes, pageBytes); // its error
  const h = createHash('sha256').update(`${MEMORY_DIGEST_TAG}|${pageBytes}|${memoryBytes}|`);
  for (let at = 0; at < hashes.byteLength; at += sliceBytes) {
    if (at > 0) await new Promise((resolve) => setImmediate(resolve));
    h.update(hashes.subarray(at, Math.min(hashes.byteLength, at + sliceBytes)));
  }
  return h.digest('hex');
}
/** Bytes of page hashes memoryDigestSliced hashes between two turns of the event loop (~0.2 ms). */
export const DIGEST_SLICE_BYTES = 256 * 1024;

/**
 * Indices (ascending) of the pages of `memory` that differ from the base whose page hashes are
 * `baseHashes`. Pages the base does not have (the memory grew) always count as changed; so does a page
 * whose length differs from the base's (a short last page), since its digest covers different bytes.
 */
export function changedPages(memory: Uint8Array, baseHashes: Uint8Array, pageBytes = PAGE_BYTES): number[] {
  return changedPagesOfHashes(pageHashes(memory, pageBytes), baseHashes);
}

/** changedPages for a memory whose page hashes are already computed (`hashes`, from pageHashes). */
export function changedPagesOfHashes(hashes: Uint8Array, baseHashes: Uint8Array): number[] {
  for (const [what, h] of [
    ['page hashes', hashes],
    ['base page hashes', baseHashes],
  ] as const) {
    if (h.byteLength % PAGE_DIGEST_BYTES !== 0) throw new PageDeltaError(`${what} are ${h.byteLength} bytes, not a multiple of ${PAGE_DIGEST_BYTES}`);
  }
  const basePages = baseHashes.byteLength / PAGE_DIGEST_BYTES;
  const changed: number[] = [];
  const pages = hashes.byteLength / PAGE_DIGEST_BYTES;
  const a = Buffer.from(hashes.buffer, hashes.byteOffset, hashes.byteLength);
  const b = Buffer.from(baseHashes.buffer, baseHashes.byteOffset, baseHashes.byteLength);
  // Runs of pages compared with one memcmp each, page by page only inside a run that differs: a
  // join's delta at 200 MiB compares 51,000 page hashes, 5–8 ms byte by byte on the main thread.
  for (let run = 0; run < pages; run += COMPARE_RUN_PAGES) {
    const end = Math.min(pages, run + COMPARE_RUN_PAGES);
    if (end <= basePages && a.subarray(run * PAGE_DIGEST_BYTES, end * PAGE_DIGEST_BYTES).equals(b.subarray(run * PAGE_DIGEST_BYTES, end * PAGE_DIGEST_BYTES))) continue;
    for (let i = run; i < end; i++) {
      if (i >= basePages || !digestsEqual(hashes, baseHashes, i * PAGE_DIGEST_BYTES)) changed.push(i);
    }
  }
  return changed;
}

/**
 * The same answer as changedPages, by comparing against a retained copy of the base memory instead of
 * its hashes (memcmp per page: ~10x cheaper than hashing, but needs the base's bytes on this machine).
 */
export function changedPagesByCompare(memory: Uint8Array, base: Uint8Array, pageBytes = PAGE_BYTES): number[] {
  const pages = pageCount(memory.byteLength, pageBytes);
  const a = Buffer.from(memory.buffer, memory.byteOffset, memory.byteLength);
  const b = Buffer.from(base.buffer, base.byteOffset, base.byteLength);
  const changed: number[] = [];
  for (let i = 0; i < pages; i++) {
    const start = i * pageBytes;
    const end = Math.min(start + pageBytes, memory.byteLength);
    // A page whose length differs from the base's page (a short last page) is changed, as by hash.
    if (Math.min(start + pageBytes, base.byteLength) !== end || Buffer.compare(a.subarray(start, end), b.subarray(start, end)) !== 0) changed.push(i);
  }
  return changed;
}

/** Pages whose hashes changedPagesOfHashes compares in one memcmp. */
const COMPARE_RUN_PAGES = 256;

function digestsEqual(a: Uint8Array, b: Uint8Array, offset: number): boolean {
  for (let j = 0; j < PAGE_DIGEST_BYTES; j++) if (a[offset + j] !== b[offset + j]) return false;
  return true;
}

/** Checks that `pages` is strictly ascending and within a memory of `pageTotal` pages. */
function checkPageList(pages: readonly number[], pageTotal: number): void {
  let previous = -1;
  for (const p of pages) {
    if (!Number.isSafeInteger(p) || p < 0 || p >= pageTotal) throw new PageDeltaError(`page index ${p} is outside the memory's ${pageTotal} pages`);
    if (p <= previous) throw new PageDeltaError(`page indices must be strictly ascending: ${p} after ${previous}`);
    previous = p;
  }
}

/** Total bytes of the listed pages of a memory of `memoryBytes` (the last page may be short). */
export function pagesBytes(pages: readonly number[], memoryBytes: number, pageBytes = PAGE_BYTES): number {
  const total = pageCount(memoryBytes, pageBytes);
  checkPageList(pages, total);
  let bytes = pages.length * pageBytes;
  if (pages.length > 0 && pages[pages.length - 1] === total - 1) bytes -= total * pageBytes - memoryBytes;
  return bytes;
}

/** The listed pages of `memory`, concatenated in order (the body of a delta, before compression). */
export function gatherPages(memory: Uint8Array, pages: readonly number[], pageBytes = PAGE_BYTES): Uint8Array {
  const out = new Uint8Array(pagesBytes(pages, memory.byteLength, pageBytes));
  let offset = 0;
  for (const p of pages) {
    const page = pageOf(memory, p, pageBytes);
    out.set(page, offset);
    offset += page.byteLength;
  }
  return out;
}

/**
 * A new memory of `memoryBytes`: the base's bytes, with the listed pages replaced by `body` (gatherPages'
 * output). Every page the base does not fully cover must be listed. `base` is not modified (it is
 * copied: the caller may still hold it as the base of the next delta).
 */
export function applyPages(base: Uint8Array, memoryBytes: number, pages: readonly number[], body: Uint8Array, pageBytes = PAGE_BYTES): Uint8Array {
  const expected = pagesBytes(pages, memoryBytes, pageBytes);
  if (body.byteLength !== expected) throw new PageDeltaError(`delta body is ${body.byteLength} bytes, its ${pages.length} pages need ${expected}`);
  const out = new Uint8Array(memoryBytes);
  out.set(base.subarray(0, Math.min(base.byteLength, memoryBytes)));
  // Pages from here on are past the end of the base (in part or whole): they cannot come from it.
  const firstUncovered = Math.floor(Math.min(base.byteLength, memoryBytes) / pageBytes);
  const total = pageCount(memoryBytes, pageBytes);
  const listed = new Set(pages);
  for (let p = firstUncovered; p < total; p++) {
    if (Math.min((p + 1) * pageBytes, memoryBytes) <= base.byteLength) continue;
    if (!listed.has(p)) throw new PageDeltaError(`page ${p} lies beyond the ${base.byteLength}-byte base but is not in the delta`);
  }
  let offset = 0;
  for (const p of pages) {
    const start = p * pageBytes;
    const length = Math.min(pageBytes, memoryBytes - start);
    out.set(body.subarray(offset, offset + length), start);
    offset += length;
  }
  return out;
}

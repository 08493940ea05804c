// The VM's state hash, made so that it can be kept up to date by rehashing only the pages written
// since it was last computed (dirty-pages.ts), instead of the whole memory every time (SHA-256 over
// 200 MiB stalled the guest's traffic 130 ms and more on a loaded host).
//
//   page hash  = SHA-256 of each 4 KiB page (exactly page-delta.ts pageHashes: a join reuses them)
//   group hash = SHA-256 of the page hashes of 256 consecutive pages (1 MiB of memory)
//   state hash = SHA-256 of STATE_HASH_TAG | pageBytes | memoryBytes | group hashes | device tables (JSON)
//
// The pages of the write-tracking map (wasm-dirty.ts) count as zero pages whatever they hold: they are
// the host's bookkeeping, never the guest's state, and differ between VMs in the same state.
//
// A hash tree is as collision-resistant as SHA-256 of the bytes themselves; an update costs a SHA-256 of
// each written page, of each group holding one (8 KiB), and of the root (32 bytes per MiB). The value is a
// pure function of the memory and the device tables, so it is the same on primary, backup and replay;
// fullStateHash computes it from scratch (a checkpoint's check, and the tests' reference).

import { createHash, hash } from 'node:crypto';
import { TRACK_MAP_END_PAGE, TRACK_MAP_FIRST_PAGE, TRACK_PAGE_BYTES } from './wasm-dirty.js';

export const STATE_HASH_PAGE_BYTES = TRACK_PAGE_BYTES;
/** Pages per group hash. */
export const GROUP_PAGES = 256;
const DIGEST = 32;
/** Names the formula: a state hash can never be mistaken for one computed another way. */
const STATE_HASH_TAG = 'ftjs-state/v2';

const ZERO_PAGE = new Uint8Array(STATE_HASH_PAGE_BYTES);
const ZERO_PAGE_HASH = hash('sha256', ZERO_PAGE, 'buffer');

function stateDigest(groupHashes: Uint8Array, memoryBytes: number, devicesJson: string): string {
  return createHash('sha256').update(`${STATE_HASH_TAG}|${STATE_HASH_PAGE_BYTES}|${memoryBytes}|`).update(groupHashes).update(devicesJson).digest('hex');
}

/** The state hash of `memory` and the device tables (as JSON), from scratch. */
export function fullStateHash(memory: Uint8Array, devicesJson: string): string {
  const tree = new PageHashTree();
  tree.resize(memory.byteLength);
  tree.invalidateAll();
  return tree.stateHash(memory, devicesJson);
}

/** fullStateHash, yielding to the event loop every `slicePages` pages (off a VM, e.g. checking a checkpoint). */
export async function fullStateHashAsync(memory: Uint8Array, devicesJson: string, slicePages = 256): Promise<string> {
  const tree = new PageHashTree();
  tree.resize(memory.byteLength);
  tree.invalidateAll();
  while (tree.refresh(memory, slicePages) > 0) await new Promise((resolve) => setImmediate(resolve));
  return tree.stateHash(memory, devicesJson);
}

/**
 * Page and group hashes of one memory, with the pages whose hash is stale. Pages added by growth start
 * as zero pages (a grown memory is zero-filled; a page written since is reported dirty).
 */
export class PageHashTree {
  private memoryBytes = 0;
  private pages = 0;
  private pageHashes = new Uint8Array(0);
  private groupHashes = new Uint8Array(0);
  /** 1 = the page's hash is stale. */
  private stalePage = new Uint8Array(0);
  private staleList: number[] = [];
  /** 1 = the group's hash is stale. */
  private staleGroup = new Uint8Array(0);
  private staleGroups: number[] = [];

  get staleCount(): number {
    return this.staleList.length;
  }

  /** The hashes of all pages (page-delta.ts pageHashes format); only when none is stale. */
  get currentPageHashes(): Uint8Array {
    if (this.staleList.length > 0) throw new Error('page hashes are stale: refresh first');
    return this.pageHashes.subarray(0, this.pages * DIGEST);
  }

  resize(memoryBytes: number): void {
    if (memoryBytes === this.memoryBytes) return;
    if (memoryBytes < this.memoryBytes || memoryBytes % STATE_HASH_PAGE_BYTES !== 0)
      throw new Error(`memory of ${memoryBytes} bytes after ${this.memoryBytes}: WASM memory only grows, in whole pages`);
    const pages = memoryBytes / STATE_HASH_PAGE_BYTES;
    const groups = Math.ceil(pages / GROUP_PAGES);
    if (pages * DIGEST > this.pageHashes.byteLength) {
      const capacity = Math.max(pages, (this.pageHashes.byteLength / DIGEST) * 2);
      this.pageHashes = grow(this.pageHashes, capacity * DIGEST);
      this.stalePage = grow(this.stalePage, capacity);
      this.groupHashes = grow(this.groupHashes, Math.ceil(capacity / GROUP_PAGES) * DIGEST);
      this.staleGroup = grow(this.staleGroup, Math.ceil(capacity / GROUP_PAGES));
    }
    for (let p = this.pages; p < pages; p++) this.pageHashes.set(ZERO_PAGE_HASH, p * DIGEST);
    for (let g = Math.floor(this.pages / GROUP_PAGES); g < groups; g++) this.markGroup(g);
    this.pages = pages;
    this.memoryBytes = memoryBytes;
  }

  /** Marks `pages` (indices below the current page count) stale. */
  invalidate(pages: ArrayLike<number>): void {
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!;
      if (p >= this.pages || isMapPage(p)) continue; // beyond the memory, or bookkeeping
      if (this.stalePage[p] === 0) {
        this.stalePage[p] = 1;
        this.staleList.push(p);
      }
    }
  }

  invalidateAll(): void {
    for (let p = 0; p < this.pages; p++) {
      if (this.stalePage[p] === 0 && !isMapPage(p)) {
        this.stalePage[p] = 1;
        this.staleList.push(p);
      }
    }
  }

  /** Rehashes stale pages of `memory`, at most `budget` of them; returns how many stay stale. */
  refresh(memory: Uint8Array, budget = Number.POSITIVE_INFINITY): number {
    while (this.staleList.length > 0 && budget-- > 0) {
      const p = this.staleList.pop()!;
      this.stalePage[p] = 0;
      const at = p * STATE_HASH_PAGE_BYTES;
      const page = memory.subarray(at, at + STATE_HASH_PAGE_BYTES);
      // A zero page is compared, not hashed (~0.5 against ~4 µs): after a boot from an image every page
      // is stale, and ~85% of a fresh VM's 16 MiB are zero (12 ms less of the VM thread at start).
      this.pageHashes.set(Buffer.compare(page, ZERO_PAGE) === 0 ? ZERO_PAGE_HASH : hash('sha256', page, 'buffer'), p * DIGEST);
      this.markGroup(Math.floor(p / GROUP_PAGES));
    }
    return this.staleList.length;
  }

  /** The state hash: stale pages are rehashed first (the caller keeps that few by refreshing early). */
  stateHash(memory: Uint8Array, devicesJson: string): string {
    if (memory.byteLength !== this.memoryBytes) throw new Error(`memory is ${memory.byteLength} bytes, the tree ${this.memoryBytes}: resize first`);
    this.refresh(memory);
    for (const g of this.staleGroups) {
      this.staleGroup[g] = 0;
      const from = g * GROUP_PAGES * DIGEST;
      const to = Math.min(this.pages, (g + 1) * GROUP_PAGES) * DIGEST;
      this.groupHashes.set(hash('sha256', this.pageHashes.subarray(from, to), 'buffer'), g * DIGEST);
    }
    this.staleGroups = [];
    return stateDigest(this.groupHashes.subarray(0, Math.ceil(this.pages / GROUP_PAGES) * DIGEST), this.memoryBytes, devicesJson);
  }

  private markGroup(g: number): void {
    if (this.staleGroup[g] === 0) {
      this.staleGroup[g] = 1;
      this.staleGroups.push(g);
    }
  }
}

export function isMapPage(page: number): boolean {
  return page >= TRACK_MAP_FIRST_PAGE && page < TRACK_MAP_END_PAGE;
}

function grow(bytes: Uint8Array, length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  out.set(bytes);
  return out;
}

/**
 * The state hash of traces recorded before the page tree (their header has no `stateHash`): SHA-256
 * over the memory, then the device tables' JSON. The tracking map's pages are zero in a snapshot, as
 * they were in the engine of those traces (the map lies where its stack never reached).
 */
export function legacyStateHash(snapshot: { memory: Uint8Array; devices: unknown }): string {
  return createHash('sha256').update(snapshot.memory).update(JSON.stringify(snapshot.devices)).digest('hex');
}

// What the VM thread keeps about its memory so that nothing on the serving path costs time in
// proportion to the memory's size: the page-hash tree of the state hash (state-hash.ts) and, once a
// join or checkpoint asked for one, a kept copy (kept-copy.ts). Both learn which pages changed from the
// write tracking (dirty-pages.ts), and both catch up in small slices between tasks (idle()), so that a
// state hash or a snapshot only has to finish the few pages written since the last slice.

import type { DirtyPages } from './dirty-pages.js';
import { KeptCopy } from './kept-copy.js';
import { PageHashTree } from './state-hash.js';
import { TRACK_MAP_ADDRESS, TRACK_MAP_BYTES, TRACK_PAGE_BYTES } from './wasm-dirty.js';

/** Pages one idle slice rehashes or copies: ~1 ms of SHA-256 on the bench machine (~4 µs a page). */
export const IDLE_SLICE_PAGES = 256;
/** A pre-copy round ends once no more than this many pages are left for the final stop-and-copy. */
export const PRECOPY_DONE_PAGES = 512;
const COPY_PAGES_PER_HASHED_PAGE = 4;

export interface HostWrittenWord {
  /** Byte address the host writes from JS (the position counter, the random state); < 0: not yet known. */
  readonly address: number;
  readonly bytes: number;
}

export class MemoryTracker {
  private readonly tree = new PageHashTree();
  private copy: KeptCopy | null = null;

  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly dirty: DirtyPages,
    private readonly maxMemoryBytes: number,
    /** Words the host writes outside the engine's stores: their pages are checked at every collect. */
    private readonly hostWords: () => HostWrittenWord[],
  ) {
    this.tree.resize(memory.buffer.byteLength);
    this.tree.invalidateAll();
  }

  private bytes(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  /** Takes the pages written since the last collect and marks them stale in the tree and the copy. */
  collect(): void {
    for (const word of this.hostWords()) if (word.address >= 0) this.dirty.markRange(word.address, word.bytes);
    const size = this.memory.buffer.byteLength;
    this.tree.resize(size);
    this.copy?.resize(size);
    const pages = this.dirty.take();
    this.tree.invalidate(pages);
    this.copy?.invalidate(pages);
  }

  /** The whole memory was replaced (a snapshot restored in place): every page is stale. */
  invalidateAll(): void {
    this.collect();
    this.tree.invalidateAll();
    this.copy?.invalidateAll();
  }

  /** The state hash (state-hash.ts) of the memory as it is now and `devicesJson`. Between tasks only. */
  stateHash(devicesJson: string): string {
    this.collect();
    return this.tree.stateHash(this.bytes(), devicesJson);
  }

  /** SHA-256 of every 4 KiB page as it is now (page-delta.ts pageHashes), for a delta to a joiner. */
  pageHashes(): Uint8Array {
    this.collect();
    this.tree.refresh(this.bytes());
    return this.tree.currentPageHashes.slice();
  }

  /**
   * One slice of catching up between tasks: rehashes, then copies, at most `pages` stale pages.
   * Returns the pages still stale in the tree and in the copy.
   */
  idle(pages = IDLE_SLICE_PAGES): { hash: number; copy: number } {
    this.collect();
    const memory = this.bytes();
    const hashLeft = this.tree.refresh(memory, pages);
    // Copying a page costs a tenth of hashing it.
    const copyLeft = this.copy ? this.copy.refresh(memory, pages * COPY_PAGES_PER_HASHED_PAGE) : 0;
    // While leased, the copy waits: its backlog is not this slice's to count.
    if (this.copy?.isLeased) return { hash: hashLeft, copy: 0 };
    return { hash: hashLeft, copy: copyLeft };
  }

  /**
   * Whether idle slices should run: more than PRECOPY_DONE_PAGES pages are stale (a state hash or a
   * snapshot would then take more than about 2 ms). Below that, pages wait for the next hash: a guest
   * that keeps rewriting the same few pages costs no upkeep between hashes.
   */
  needsUpkeep(): boolean {
    this.collect();
    const copyStale = this.copy && !this.copy.isLeased ? this.copy.staleCount : 0;
    return Math.max(this.tree.staleCount, copyStale) > PRECOPY_DONE_PAGES;
  }

  get copyLeased(): boolean {
    return this.copy?.isLeased ?? false;
  }

  /** Starts keeping a copy (every page stale until copied by idle slices), if not kept yet. */
  keepCopy(): void {
    if (this.copy) return;
    this.copy = new KeptCopy(this.maxMemoryBytes);
    this.copy.resize(this.memory.buffer.byteLength);
    this.copy.invalidateAll();
  }

  /** Pages the final stop-and-copy would copy now (after a collect). */
  copyBacklog(): number {
    this.collect();
    return this.copy ? this.copy.staleCount : Number.POSITIVE_INFINITY;
  }

  /** The final stop-and-copy: a view of the kept copy, equal to the memory now, leased until releaseCopy(lease). */
  leaseCopy(): { memory: Uint8Array; lease: number } {
    this.keepCopy();
    this.collect();
    const memory = this.copy!.lease(this.bytes());
    return { memory, lease: ++this.leases };
  }

  /** Ends lease `lease` (a stale id, of a lease already ended, does nothing). */
  releaseCopy(lease: number): void {
    if (lease === this.leases) this.copy?.release();
  }

  private leases = 0;

  get pageBytes(): number {
    return TRACK_PAGE_BYTES;
  }
}

/** `memory` (a copy), with the write-tracking map zeroed: bookkeeping, never state (wasm-dirty.ts). */
export function withoutTrackingMap(memory: Uint8Array): Uint8Array {
  if (memory.byteLength > TRACK_MAP_ADDRESS) memory.fill(0, TRACK_MAP_ADDRESS, Math.min(memory.byteLength, TRACK_MAP_ADDRESS + TRACK_MAP_BYTES));
  return memory;
}

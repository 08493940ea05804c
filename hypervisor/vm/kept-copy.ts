// A copy of the VM's memory kept up to date between tasks, for joins and checkpoints (VMotion's
// pre-copy): the first round copies every page, in slices between tasks while serving continues; each
// later round copies the pages written since; a snapshot then stops the VM only for the pages written
// since the last round. The copy lives in a SharedArrayBuffer so that the node's main thread reads it
// out itself, in slices of its own, while the VM runs on: the VM thread never copies the whole memory.
//
// While the main thread reads it (leased), the copy is left alone; pages written meanwhile wait.
// The write-tracking map's pages (wasm-dirty.ts) are never copied: they stay zero, as in any snapshot.

import { isMapPage } from './state-hash.js';
import { TRACK_PAGE_BYTES } from './wasm-dirty.js';

export class KeptCopy {
  readonly buffer: SharedArrayBuffer;
  private readonly view: Uint8Array;
  private memoryBytes = 0;
  /** 1 = the page differs (or may differ) from the live memory. */
  private readonly stale: Uint8Array;
  /** Popped from the end: kept in descending order once sorted. */
  private staleList: number[] = [];
  private sorted = true;
  private leased = false;

  constructor(maxMemoryBytes: number) {
    // Growable (Node 20; the lib types lag): reserves address space only, commits as it grows.
    this.buffer = new (SharedArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => SharedArrayBuffer)(0, { maxByteLength: maxMemoryBytes });
    this.view = new Uint8Array(this.buffer); // length-tracking: follows grow()
    this.stale = new Uint8Array(Math.ceil(maxMemoryBytes / TRACK_PAGE_BYTES));
  }

  get staleCount(): number {
    return this.staleList.length;
  }

  get isLeased(): boolean {
    return this.leased;
  }

  /** The memory grew: the new pages are zero in both until written (and then reported). */
  resize(memoryBytes: number): void {
    if (memoryBytes <= this.memoryBytes) return;
    (this.buffer as unknown as { grow(length: number): void }).grow(memoryBytes);
    this.memoryBytes = memoryBytes;
  }

  invalidate(pages: ArrayLike<number>): void {
    const limit = this.memoryBytes / TRACK_PAGE_BYTES;
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!;
      if (p < limit && this.stale[p] === 0 && !isMapPage(p)) {
        this.stale[p] = 1;
        this.staleList.push(p);
        this.sorted = false;
      }
    }
  }

  invalidateAll(): void {
    const pages = this.memoryBytes / TRACK_PAGE_BYTES;
    // Pushed in descending order: onto an empty list, that is the order refresh pops in.
    const wasEmpty = this.staleList.length === 0;
    for (let p = pages - 1; p >= 0; p--) {
      if (this.stale[p] === 0 && !isMapPage(p)) {
        this.stale[p] = 1;
        this.staleList.push(p);
        this.sorted = false;
      }
    }
    if (wasEmpty) this.sorted = true;
  }

  /** Copies stale pages from `memory`, at most `budget` (none while leased); returns how many stay stale. */
  refresh(memory: Uint8Array, budget = Number.POSITIVE_INFINITY): number {
    if (this.leased) return this.staleList.length;
    // Runs of adjacent pages are copied with one call each.
    if (!this.sorted) this.staleList.sort((a, b) => b - a);
    this.sorted = true;
    while (this.staleList.length > 0 && budget > 0) {
      let first = this.staleList.pop()!;
      let last = first;
      this.stale[first] = 0;
      budget--;
      while (budget > 0 && this.staleList.length > 0 && this.staleList[this.staleList.length - 1] === last + 1) {
        last = this.staleList.pop()!;
        this.stale[last] = 0;
        budget--;
      }
      first *= TRACK_PAGE_BYTES;
      const end = (last + 1) * TRACK_PAGE_BYTES;
      this.view.set(memory.subarray(first, end), first);
    }
    return this.staleList.length;
  }

  /**
   * The final stop-and-copy: the stale pages, then the copy is leased as it is (a view of
   * `memoryBytes`) until release().
   */
  lease(memory: Uint8Array): Uint8Array {
    if (this.leased) throw new Error('the kept copy is already leased');
    if (memory.byteLength !== this.memoryBytes) throw new Error(`memory is ${memory.byteLength} bytes, the copy ${this.memoryBytes}`);
    this.refresh(memory);
    this.leased = true;
    return new Uint8Array(this.buffer, 0, this.memoryBytes);
  }

  release(): void {
    this.leased = false;
  }
}

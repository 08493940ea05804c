// In-memory checkpoints of a replaying VM, kept inside the VM worker (no copy of the VM's memory ever
// crosses to the main thread). A checkpoint is a whole-VM snapshot stored as 64 KiB pages: a page
// equal to the same page of the previous checkpoint is shared with it, an all-zero page costs nothing,
// and every other page is compressed with raw deflate at level 1 (it pays: QuickJS heaps are mostly
// small integers, pointers and zeros), when asked: deflate makes a checkpoint about 2.5x smaller and
// 3-4x slower to take (bench/replay-speed.ts), so the session asks for it only once checkpoints fill a
// quarter of their byte budget. Between two checkpoints a few hundred tasks apart only a handful of
// pages change, so a checkpoint costs one memory compare plus those pages.
//
// The store only keeps what it is told to; which checkpoints to keep (count and byte bounds) is the
// session's policy (replayer/offline/session.ts), which asks `bytes` after each save and drops accordingly.

import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { Snapshot } from '../hypervisor/vm/vm.js';

export const PAGE_BYTES = 64 * 1024;

interface Page {
  /** null: all zeros. */
  data: Uint8Array | null;
  compressed: boolean;
  refs: number;
  bytes: number;
}

interface Stored<T> {
  engine: string;
  guestHash: string;
  devices: Snapshot['devices'];
  memoryBytes: number;
  pages: Page[];
  devicesBytes: number;
  extra: T;
}

const ZERO_PAGE = new Uint8Array(PAGE_BYTES);

export class CheckpointStore<T = unknown> {
  private readonly stored = new Map<number, Stored<T>>();
  /** The memory of the last checkpoint saved or loaded, and its pages: new checkpoints share with it. */
  private base: { memory: Uint8Array; pages: Page[] } | null = null;
  private total = 0;

  constructor(private readonly compress = false) {}

  /** Bytes held by all checkpoints (shared pages counted once). */
  get bytes(): number {
    return this.total;
  }

  get count(): number {
    return this.stored.size;
  }

  has(id: number): boolean {
    return this.stored.has(id);
  }

  /** Stores `snapshot` (taking ownership of its memory) under `id`, with `extra` (e.g. port state). */
  save(id: number, snapshot: Snapshot, extra: T, compress = this.compress): void {
    if (this.stored.has(id)) this.drop(id);
    const memory = snapshot.memory;
    const count = Math.ceil(memory.byteLength / PAGE_BYTES);
    const pages: Page[] = new Array<Page>(count);
    const base = this.base;
    for (let i = 0; i < count; i++) {
      const start = i * PAGE_BYTES;
      const end = Math.min(start + PAGE_BYTES, memory.byteLength);
      const view = memory.subarray(start, end);
      const shared = base && i < base.pages.length && end <= base.memory.byteLength && Buffer.compare(view, base.memory.subarray(start, end)) === 0 ? base.pages[i]! : null;
      const page = shared ?? this.makePage(view, compress);
      this.ref(page);
      pages[i] = page;
    }
    const devicesBytes = JSON.stringify(snapshot.devices).length;
    this.total += devicesBytes;
    this.stored.set(id, { engine: snapshot.engine, guestHash: snapshot.guestHash, devices: snapshot.devices, memoryBytes: memory.byteLength, pages, devicesBytes, extra });
    this.base = { memory, pages };
  }

  /** The snapshot stored under `id`, with its extra. */
  load(id: number): { snapshot: Snapshot; extra: T } {
    const s = this.stored.get(id);
    if (!s) throw new Error(`no checkpoint ${id}`);
    const memory = new Uint8Array(s.memoryBytes);
    for (let i = 0; i < s.pages.length; i++) {
      const page = s.pages[i]!;
      if (!page.data) continue;
      memory.set(page.compressed ? inflateRawSync(page.data) : page.data, i * PAGE_BYTES);
    }
    // The VM restored from it gets a copy of `memory`; keep this one to share pages with.
    this.base = { memory, pages: s.pages };
    return { snapshot: { engine: s.engine, guestHash: s.guestHash, memory, devices: s.devices }, extra: s.extra };
  }

  drop(id: number): void {
    const s = this.stored.get(id);
    if (!s) return;
    this.stored.delete(id);
    for (const page of s.pages) this.unref(page);
    this.total -= s.devicesBytes;
  }

  clear(): void {
    for (const id of [...this.stored.keys()]) this.drop(id);
    this.base = null;
  }

  private makePage(view: Uint8Array, compress: boolean): Page {
    if (view.byteLength === PAGE_BYTES && Buffer.compare(view, ZERO_PAGE) === 0) return { data: null, compressed: false, refs: 0, bytes: 0 };
    if (compress) {
      const packed = deflateRawSync(view, { level: 1 });
      if (packed.byteLength < view.byteLength) {
        const data = new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
        return { data, compressed: true, refs: 0, bytes: data.byteLength };
      }
    }
    const data = view.slice();
    return { data, compressed: false, refs: 0, bytes: data.byteLength };
  }

  private ref(page: Page): void {
    if (page.refs++ === 0) this.total += page.bytes;
  }

  private unref(page: Page): void {
    if (--page.refs === 0) this.total -= page.bytes;
  }
}

// Which pages of a VM's linear memory were written since the host last looked. The engine's stores
// mark themselves in a byte map inside the memory (wasm-dirty.ts); the host's own writes into the
// memory (the emscripten glue's strings and buffers, the clock and time-zone imports, the position
// counter and the random seed) are marked by their writers through markRange. A missed write is a page
// whose change no state hash and no snapshot copy would see, so test/memory-tracker.test.ts checks,
// after every task of real guests, that the tracked hash equals one recomputed from scratch.

import { TRACK_MAP_ADDRESS, TRACK_MAP_BYTES, TRACK_PAGE_BYTES } from './wasm-dirty.js';

export { TRACK_PAGE_BYTES };

const PAGE_SHIFT = 12;
if (1 << PAGE_SHIFT !== TRACK_PAGE_BYTES) throw new Error('PAGE_SHIFT does not match TRACK_PAGE_BYTES');

export class DirtyPages {
  constructor(private readonly memory: WebAssembly.Memory) {}

  /** The map, one byte per page of the memory as it is now (a fresh view: growth detaches old ones). */
  private map(): Uint8Array {
    const pages = this.memory.buffer.byteLength / TRACK_PAGE_BYTES;
    return new Uint8Array(this.memory.buffer, TRACK_MAP_ADDRESS, Math.min(pages, TRACK_MAP_BYTES));
  }

  /** Reports a write of `bytes` bytes at `address` made by the host (an empty write marks nothing). */
  markRange(address: number, bytes: number): void {
    if (bytes <= 0) return;
    this.map().fill(1, address >>> PAGE_SHIFT, ((address + bytes - 1) >>> PAGE_SHIFT) + 1);
  }

  /** Pages written since the last take, ascending; clears their marks. */
  take(): number[] {
    const map = this.map();
    // Eight map bytes at a time: most of the map is zero.
    const words = new Float64Array(map.buffer, map.byteOffset, map.byteLength >>> 3);
    const pages: number[] = [];
    for (let w = 0; w < words.length; w++) {
      if (words[w] === 0) continue;
      for (let p = w << 3; p < (w << 3) + 8; p++) {
        if (map[p] !== 0) {
          map[p] = 0;
          pages.push(p);
        }
      }
    }
    for (let p = words.length << 3; p < map.length; p++) {
      if (map[p] !== 0) {
        map[p] = 0;
        pages.push(p);
      }
    }
    return pages;
  }
}

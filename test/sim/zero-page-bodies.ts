// The simulator's snapshot body codec (Env.snapshotCodec; production deflates, hypervisor/vm/snapshot-wire.ts).
// A joining backup's snapshot is a 16 MiB memory of which a few hundred pages are not zero: deflating
// and inflating it were about a sixth of a seed's time, mostly spent on the zeros. Here the zero pages
// are left out and the others sent as they are. The wire still carries real bytes, checked end to end
// as in production (the channel's SHA-256 of the snapshot and each frame's MAC; then the state
// comparison and every replayed task's hash), and every malformed body is refused.
//
//   u32 LE memory bytes | u32 LE page count | u32 LE page index x count (ascending) | the pages, whole
//   (the last page may be short: memory bytes need not be a multiple of the page)

import type { SnapshotBodyCodec } from '../../hypervisor/vm/snapshot-wire.js';

const PAGE_BYTES = 4096;
const ZERO_PAGE = Buffer.alloc(PAGE_BYTES);

function encode(bytes: Uint8Array): Uint8Array {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pages: number[] = [];
  for (let at = 0; at < view.byteLength; at += PAGE_BYTES) {
    const page = view.subarray(at, at + PAGE_BYTES);
    if (!page.equals(page.byteLength === PAGE_BYTES ? ZERO_PAGE : ZERO_PAGE.subarray(0, page.byteLength))) pages.push(at / PAGE_BYTES);
  }
  const headerBytes = 8 + 4 * pages.length;
  let bodyBytes = 0;
  for (const p of pages) bodyBytes += Math.min(PAGE_BYTES, view.byteLength - p * PAGE_BYTES);
  const out = Buffer.allocUnsafe(headerBytes + bodyBytes);
  out.writeUInt32LE(view.byteLength, 0);
  out.writeUInt32LE(pages.length, 4);
  let at = headerBytes;
  pages.forEach((p, i) => {
    out.writeUInt32LE(p, 8 + 4 * i);
    at += view.copy(out, at, p * PAGE_BYTES, Math.min(view.byteLength, (p + 1) * PAGE_BYTES));
  });
  return out;
}

function decode(body: Uint8Array, expectedBytes: number): Uint8Array {
  const b = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (b.byteLength < 8) throw new Error(`is ${b.byteLength} bytes, shorter than the zero-page header`);
  const memoryBytes = b.readUInt32LE(0);
  const count = b.readUInt32LE(4);
  if (memoryBytes !== expectedBytes) throw new Error(`makes ${memoryBytes} bytes, the header says ${expectedBytes}`);
  const pageCount = Math.ceil(memoryBytes / PAGE_BYTES);
  if (count > pageCount || b.byteLength < 8 + 4 * count) throw new Error(`names ${count} pages, more than the body or the memory holds`);
  // Zeroed by allocation: the pages left out stay zero.
  const out = new Uint8Array(memoryBytes);
  let at = 8 + 4 * count;
  let previous = -1;
  for (let i = 0; i < count; i++) {
    const p = b.readUInt32LE(8 + 4 * i);
    if (p <= previous || p >= pageCount) throw new Error(`page index ${p} is not ascending within the ${pageCount} pages`);
    previous = p;
    const length = Math.min(PAGE_BYTES, memoryBytes - p * PAGE_BYTES);
    if (at + length > b.byteLength) throw new Error(`ends inside page ${p}`);
    out.set(b.subarray(at, at + length), p * PAGE_BYTES);
    at += length;
  }
  if (at !== b.byteLength) throw new Error(`has ${b.byteLength - at} bytes after its last page`);
  return out;
}

/** Settles in a microtask, as the simulator needs: every step of a join happens at a virtual time the seed fixes. */
export const zeroPageBodies: SnapshotBodyCodec = {
  compress: (bytes) => Promise.resolve().then(() => encode(bytes)),
  decompress: (body, expectedBytes) => Promise.resolve().then(() => decode(body, expectedBytes)),
};

// A VM snapshot as bytes, for a backup joining a running primary: u32 LE header length, a JSON header
// (engine, guest hash, device tables, what the body holds), then a body compressed with deflate level 1
// (fast; memory compresses 2-10x). Two kinds:
//
//   full   (header.kind 'full', or no kind: the format before deltas)  body = the whole linear memory
//   delta  (header.kind 'delta')  body = only the pages that differ from a base memory the receiver
//          holds, concatenated (page-delta.ts); the header names the base's digest, the page size, the
//          full memory's length and digest, and the changed pages' indices.
//
// Integrity of the bytes in transit is the channel's job (it sends their SHA-256 with them). What a
// delta adds is a new way to get the memory wrong (the wrong base, a bug in applying pages), so a delta
// is verified end to end: the base memory must have the digest the header names, and the rebuilt
// memory the digest of the memory the sender had. Digests are page-delta.ts memoryDigest (a SHA-256
// hash list over the pages) with the header's page size.

import { promisify } from 'node:util';
import zlib from 'node:zlib';
import {
  applyPages,
  changedPagesOfHashes,
  gatherPages,
  MAX_PAGE_BYTES,
  memoryDigest,
  memoryDigestSliced,
  PAGE_BYTES,
  PAGE_DIGEST_BYTES,
  PageDeltaError,
  pageCount,
  pageHashes,
  pagesBytes,
} from './page-delta.js';
import type { Snapshot } from './vm.js';

const deflateRaw = promisify(zlib.deflateRaw);
const inflateRaw = promisify(zlib.inflateRaw);

/**
 * How a snapshot's body is compressed. Production: raw deflate, level 1 (deflateBodies). The simulator
 * injects a cheaper one through the node's Env (test/sim/zero-page-bodies.ts); both ends of a join
 * use their own Env's, so a world uses one.
 */
export interface SnapshotBodyCodec {
  compress(bytes: Uint8Array): Promise<Uint8Array>;
  /** The body back; rejects when it is malformed or does not make exactly `expectedBytes` bytes. */
  decompress(body: Uint8Array, expectedBytes: number): Promise<Uint8Array>;
}

export const deflateBodies: SnapshotBodyCodec = {
  compress: (bytes) => deflateRaw(bytes, { level: 1 }),
  async decompress(body, expectedBytes) {
    let out: Buffer;
    try {
      out = await inflateRaw(body, { maxOutputLength: Math.max(1, expectedBytes) });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ERR_BUFFER_TOO_LARGE') throw new Error(`inflates to more than the ${expectedBytes} bytes the header says`);
      throw new Error(`does not inflate: ${e.message}`);
    }
    if (out.byteLength !== expectedBytes) throw new Error(`inflates to ${out.byteLength} bytes, the header says ${expectedBytes}`);
    return out;
  },
};

export class SnapshotWireError extends Error {
  override name = 'SnapshotWireError';
}

/** What a sender needs to know of the receiver's memory to send it a delta (never the memory itself). */
export interface SnapshotBase {
  /** memoryDigest of the base memory (a SHA-256 hash list over its pages), lowercase hex. */
  digest: string;
  memoryBytes: number;
  pageBytes: number;
  /** PAGE_DIGEST_BYTES per page (page-delta.ts pageHashes). */
  pageHashes: Uint8Array;
}

/** The base a later delta can be made against: page hashes and digest of `memory`, in one pass. */
export function snapshotBaseOf(memory: Uint8Array, pageBytes = PAGE_BYTES): SnapshotBase {
  const hashes = pageHashes(memory, pageBytes);
  return { digest: memoryDigest(hashes, memory.byteLength, pageBytes), memoryBytes: memory.byteLength, pageBytes, pageHashes: hashes };
}

interface CommonHeader {
  engine: string;
  guestHash: string;
  devices: Snapshot['devices'];
  memoryBytes: number;
}
interface FullHeader extends CommonHeader {
  kind: 'full';
}
interface DeltaHeader extends CommonHeader {
  kind: 'delta';
  /** memoryDigest of the memory this delta rebuilds. */
  memoryDigest: string;
  pageBytes: number;
  base: { digest: string; memoryBytes: number };
  /** Indices of the pages in the body, ascending. */
  pages: number[];
}
export type SnapshotHeader = FullHeader | DeltaHeader;

/**
 * Encode `snapshot`. Without `base`: the full memory. With `base`: a delta holding only the pages that
 * differ from it (pages past the base's end always count as changed: memory may have grown), always a
 * delta even when every page changed (the caller decides whether a delta is worth it, from the size).
 */
export async function encodeSnapshot(snapshot: Snapshot, base?: SnapshotBase | null, codec: SnapshotBodyCodec = deflateBodies): Promise<Uint8Array> {
  const common: CommonHeader = { engine: snapshot.engine, guestHash: snapshot.guestHash, devices: snapshot.devices, memoryBytes: snapshot.memory.byteLength };
  if (!base) return frame({ kind: 'full', ...common }, await codec.compress(snapshot.memory));
  checkBase(base);
  // A VM's snapshot carries its 4 KiB page hashes (kept up to date page by page): no pass over the memory.
  const known = snapshot.pageHashes;
  const reuse = known && base.pageBytes === PAGE_BYTES && known.byteLength === pageCount(snapshot.memory.byteLength) * PAGE_DIGEST_BYTES;
  const hashes = reuse ? known : pageHashes(snapshot.memory, base.pageBytes);
  const pages = changedPagesOfHashes(hashes, base.pageHashes);
  const header: DeltaHeader = {
    kind: 'delta',
    ...common,
    memoryDigest: await memoryDigestSliced(hashes, snapshot.memory.byteLength, base.pageBytes),
    pageBytes: base.pageBytes,
    base: { digest: base.digest, memoryBytes: base.memoryBytes },
    pages,
  };
  return frame(header, await codec.compress(gatherPages(snapshot.memory, pages, base.pageBytes)));
}

/**
 * Decode a snapshot. A delta needs `baseMemory`: the memory whose digest the delta names (a full
 * snapshot ignores it). `baseMemory` is only read; the returned memory is a new buffer.
 */
export async function decodeSnapshot(data: Uint8Array, baseMemory?: Uint8Array | null, codec: SnapshotBodyCodec = deflateBodies): Promise<Snapshot> {
  const { header, body } = split(data);
  const snapshotOf = (memory: Uint8Array): Snapshot => ({ engine: header.engine, guestHash: header.guestHash, devices: header.devices, memory });
  // A copy of its own: the inflated bytes may be a view into a larger buffer.
  if (header.kind === 'full') return snapshotOf(new Uint8Array(await inflate(codec, body, header.memoryBytes, 'snapshot memory')));

  const base = header.base;
  if (!baseMemory) {
    throw new SnapshotWireError(`snapshot is a delta against base memory ${short(base.digest)} (${base.memoryBytes} bytes): decoding it needs that base memory, none was given`);
  }
  if (baseMemory.byteLength !== base.memoryBytes) {
    throw new SnapshotWireError(`snapshot is a delta against a base memory of ${base.memoryBytes} bytes (digest ${short(base.digest)}); the base memory given is ${baseMemory.byteLength} bytes`);
  }
  const baseDigest = memoryDigest(pageHashes(baseMemory, header.pageBytes), baseMemory.byteLength, header.pageBytes);
  if (baseDigest !== base.digest) {
    throw new SnapshotWireError(`wrong base memory for this delta: its digest is ${baseDigest}, the delta was made against ${base.digest}`);
  }
  const pageData = await inflate(codec, body, pagesBytes(header.pages, header.memoryBytes, header.pageBytes), `delta of ${header.pages.length} pages`);
  let memory: Uint8Array;
  try {
    memory = applyPages(baseMemory, header.memoryBytes, header.pages, pageData, header.pageBytes);
  } catch (err) {
    if (err instanceof PageDeltaError) throw new SnapshotWireError(`cannot apply the delta: ${err.message}`);
    throw err;
  }
  const rebuiltDigest = memoryDigest(pageHashes(memory, header.pageBytes), memory.byteLength, header.pageBytes);
  if (rebuiltDigest !== header.memoryDigest) {
    throw new SnapshotWireError(
      `the memory rebuilt from the delta has digest ${rebuiltDigest}, the snapshot's memory had ${header.memoryDigest} (base ${short(base.digest)}, ${header.pages.length} pages)`,
    );
  }
  return snapshotOf(memory);
}

/** The header of an encoded snapshot (kind, sizes, changed pages), without decompressing anything. */
export function readSnapshotHeader(data: Uint8Array): SnapshotHeader {
  return split(data).header;
}

// ---------------------------------------------------------------------------------------------

function frame(header: SnapshotHeader, body: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = Buffer.allocUnsafe(4 + json.byteLength + body.byteLength);
  out.writeUInt32LE(json.byteLength, 0);
  json.copy(out, 4);
  out.set(body, 4 + json.byteLength);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function split(data: Uint8Array): { header: SnapshotHeader; body: Buffer } {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.byteLength < 4) throw new SnapshotWireError(`snapshot too short (${buf.byteLength} bytes)`);
  const headerBytes = buf.readUInt32LE(0);
  if (4 + headerBytes > buf.byteLength) throw new SnapshotWireError(`snapshot header of ${headerBytes} bytes overruns the ${buf.byteLength}-byte snapshot`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(buf.subarray(4, 4 + headerBytes).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new SnapshotWireError(`snapshot header is not JSON: ${(err as Error).message}`);
  }
  return { header: checkHeader(raw), body: buf.subarray(4 + headerBytes) };
}

function checkHeader(raw: Record<string, unknown>): SnapshotHeader {
  const bad = (what: string): never => {
    throw new SnapshotWireError(`bad snapshot header: ${what}`);
  };
  if (typeof raw !== 'object' || raw === null) bad('not an object');
  if (typeof raw.engine !== 'string' || typeof raw.guestHash !== 'string' || typeof raw.devices !== 'object' || raw.devices === null) bad('engine, guestHash or devices missing');
  if (!isByteCount(raw.memoryBytes)) bad(`memoryBytes ${String(raw.memoryBytes)} is not an integer >= 0`);
  const kind = raw.kind ?? 'full'; // snapshots from before deltas have no kind
  if (kind === 'full') return { ...(raw as unknown as FullHeader), kind: 'full' };
  if (kind !== 'delta') return bad(`unknown kind ${JSON.stringify(kind)}`);
  const h = raw as unknown as DeltaHeader;
  if (!isPowerOfTwo(h.pageBytes)) bad(`pageBytes ${String(h.pageBytes)} is not a power of two`);
  if (!isDigest(h.memoryDigest)) bad('memoryDigest is not 64 hex digits');
  if (typeof h.base !== 'object' || h.base === null || !isDigest(h.base.digest) || !isByteCount(h.base.memoryBytes)) bad('base must be {digest: 64 hex digits, memoryBytes}');
  if (h.memoryBytes < h.base.memoryBytes) bad(`memory of ${h.memoryBytes} bytes is smaller than its base's ${h.base.memoryBytes} (WASM memory never shrinks)`);
  if (!Array.isArray(h.pages)) bad('pages is not an array');
  try {
    pagesBytes(h.pages, h.memoryBytes, h.pageBytes); // indices ascending and within the memory
  } catch (err) {
    if (err instanceof PageDeltaError) bad(err.message);
    throw err;
  }
  return h;
}

function checkBase(base: SnapshotBase): void {
  const bad = (what: string): never => {
    throw new SnapshotWireError(`bad snapshot base: ${what}`);
  };
  if (!isDigest(base.digest)) bad('digest is not 64 hex digits');
  if (!isPowerOfTwo(base.pageBytes)) bad(`pageBytes ${base.pageBytes} is not a power of two`);
  if (!isByteCount(base.memoryBytes)) bad(`memoryBytes ${base.memoryBytes} is not an integer >= 0`);
  const want = pageCount(base.memoryBytes, base.pageBytes) * PAGE_DIGEST_BYTES;
  if (base.pageHashes.byteLength !== want) bad(`pageHashes are ${base.pageHashes.byteLength} bytes; ${base.memoryBytes} bytes in ${base.pageBytes}-byte pages need ${want}`);
}

/** Inflates exactly `expectedBytes` (never more: a corrupt or hostile body cannot balloon memory). */
async function inflate(codec: SnapshotBodyCodec, body: Buffer, expectedBytes: number, what: string): Promise<Uint8Array> {
  try {
    return await codec.decompress(body, expectedBytes);
  } catch (err) {
    throw new SnapshotWireError(`${what} ${(err as Error).message}`);
  }
}

const isByteCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
// Bounded to 2^30 so the bit test stays within 32-bit integers.
const isPowerOfTwo = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0 && v <= MAX_PAGE_BYTES && (v & (v - 1)) === 0;
const isDigest = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
const short = (digest: string): string => `${digest.slice(0, 12)}...`;

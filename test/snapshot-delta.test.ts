// Incremental snapshots: a delta against a base memory the receiver holds carries only the changed
// pages, rebuilds the newer snapshot byte for byte (memory and devices), and a VM booted from it has
// the newer state. The wrong base, a damaged delta or no base at all fail loudly, naming the digests.
// Real VMs (kv.js in live mode), no mocks. Runs against the compiled output (npx tsc -p . first).

import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makeBootConfig } from '../dist/hypervisor/vm/boot-config.js';
import { applyPages, changedPages, changedPagesByCompare, gatherPages, PAGE_BYTES, PAGE_DIGEST_BYTES, PageDeltaError, pageBytesFor, pageHashes } from '../dist/hypervisor/vm/page-delta.js';
import { decodeSnapshot, encodeSnapshot, readSnapshotHeader, SnapshotWireError, snapshotBaseOf } from '../dist/hypervisor/vm/snapshot-wire.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import type { BootConfig, LiveEvent, Snapshot } from '../dist/hypervisor/vm/vm.js';
import { VmHost } from '../dist/hypervisor/worker/vm-host.js';
import { SNAPSHOT_BASE_DIGEST_BYTES } from '../dist/logging-channel/auth.js';
import { ROOT } from './helpers.js';

const put = (key: string, value: string): LiveEvent => ({ kind: 'request', method: 'PUT', url: `http://vm/kv/${key}`, headers: [], body: new TextEncoder().encode(value) });
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;

let config: BootConfig;
let vm: VmHost;
const hosts: VmHost[] = [];
/**
 * A: kv.js holding 4 MiB of incompressible-ish values (4,000 x 1 KiB of pseudo-random hex, so the full
 * snapshot is not mostly zeros). B: A plus 5 more writes. C: B plus 12 MiB more (the memory grew).
 */
let a: Snapshot;
let b: Snapshot;
let c: Snapshot;
let stateHashB: string;
let stateHashC: string;

async function writes(events: LiveEvent[]): Promise<void> {
  const reply = await vm.run(events);
  for (const r of reply.results) expect(r.outputs.map((o) => (o.kind === 'response' ? o.status : 0))).toEqual([200]);
}

beforeAll(async () => {
  config = makeBootConfig(loadGuest(path.join(ROOT, 'guest-apps', 'kv.js')), {});
  vm = VmHost.start(config.limits);
  hosts.push(vm);
  await vm.boot(config, 'live');
  let seed = 12345;
  const valueOf = (i: number): string => {
    let out = `${i}:`;
    while (out.length < 1024) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      out += seed.toString(16).padStart(8, '0');
    }
    return out.slice(0, 1024);
  };
  for (let k = 0; k < 4; k++) await writes(Array.from({ length: 1000 }, (_, i) => put(`key-${k * 1000 + i}`, valueOf(i))));
  a = await vm.snapshot();
  await writes(Array.from({ length: 5 }, (_, i) => put(`later-${i}`, `value ${i}`)));
  b = await vm.snapshot();
  stateHashB = (await vm.state(true)).stateHash!;
  const mib = 'm'.repeat(1024 * 1024);
  await writes(Array.from({ length: 12 }, (_, i) => put(`big-${i}`, mib + i)));
  c = await vm.snapshot();
  stateHashC = (await vm.state(true)).stateHash!;
});

afterAll(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.terminate()));
});

describe('snapshot deltas between real VM snapshots', () => {
  test('a delta is much smaller than the full snapshot and rebuilds it byte for byte; a VM booted from it has its state', async () => {
    const full = await encodeSnapshot(b);
    const baseOfA = snapshotBaseOf(a.memory);
    const delta = await encodeSnapshot(b, baseOfA);
    const header = readSnapshotHeader(delta);
    expect(header.kind).toBe('delta');
    expect(readSnapshotHeader(full).kind).toBe('full');
    if (header.kind !== 'delta') throw new Error('unreachable');
    const totalPages = b.memory.byteLength / PAGE_BYTES;
    expect(header.pages.length).toBeGreaterThan(0);
    expect(header.pages.length).toBeLessThan(totalPages / 4);
    // Measured: 5 writes change ~62 4-KiB pages (the default; ~20x smaller than full), ~24 64-KiB pages (~3.6x).
    expect(delta.byteLength * 8).toBeLessThan(full.byteLength);
    expect((await encodeSnapshot(b, snapshotBaseOf(a.memory, 64 * 1024))).byteLength * 2).toBeLessThan(full.byteLength);

    const aBefore = sha256(a.memory);
    const rebuilt = await decodeSnapshot(delta, a.memory);
    expect(sha256(a.memory)).toBe(aBefore); // the base is only read
    expect(sameBytes(rebuilt.memory, b.memory)).toBe(true);
    expect(rebuilt.devices).toEqual(b.devices);
    expect(rebuilt.engine).toBe(b.engine);
    expect(rebuilt.guestHash).toBe(b.guestHash);

    const restored = VmHost.start(config.limits);
    hosts.push(restored);
    await restored.boot(config, 'replay', rebuilt);
    expect((await restored.state(true)).stateHash).toBe(stateHashB);
  });

  test('memory that grew between the base and the snapshot: pages past the base are sent, and it rebuilds exactly', async () => {
    expect(c.memory.byteLength).toBeGreaterThan(a.memory.byteLength);
    const delta = await encodeSnapshot(c, snapshotBaseOf(a.memory));
    const header = readSnapshotHeader(delta);
    if (header.kind !== 'delta') throw new Error('expected a delta');
    const basePages = a.memory.byteLength / PAGE_BYTES;
    const grownPages = Array.from({ length: c.memory.byteLength / PAGE_BYTES - basePages }, (_, i) => basePages + i);
    expect(header.pages.slice(-grownPages.length)).toEqual(grownPages);
    const rebuilt = await decodeSnapshot(delta, a.memory);
    expect(sameBytes(rebuilt.memory, c.memory)).toBe(true);
    expect(rebuilt.devices).toEqual(c.devices);
    const restored = VmHost.start(config.limits);
    hosts.push(restored);
    await restored.boot(config, 'replay', rebuilt);
    expect((await restored.state(true)).stateHash).toBe(stateHashC);
  });

  test('the wrong base is refused, naming both digests', async () => {
    const delta = await encodeSnapshot(b, snapshotBaseOf(a.memory));
    const baseDigest = snapshotBaseOf(a.memory).digest;
    const wrongDigest = snapshotBaseOf(b.memory).digest;
    expect(b.memory.byteLength).toBe(a.memory.byteLength); // same size: only the digest can tell
    const err = await decodeSnapshot(delta, b.memory).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SnapshotWireError);
    expect((err as Error).message).toMatch(/wrong base memory/);
    expect((err as Error).message).toContain(baseDigest);
    expect((err as Error).message).toContain(wrongDigest);
    // A base of another size is refused before any hashing.
    await expect(decodeSnapshot(delta, c.memory)).rejects.toThrow(new RegExp(`base memory of ${a.memory.byteLength} bytes .*given is ${c.memory.byteLength} bytes`));
  });

  test('a delta without its base is refused, naming the base it needs', async () => {
    const delta = await encodeSnapshot(b, snapshotBaseOf(a.memory));
    await expect(decodeSnapshot(delta)).rejects.toThrow(SnapshotWireError);
    await expect(decodeSnapshot(delta)).rejects.toThrow(/delta against base memory [0-9a-f]{12}.*needs that base memory/);
  });

  test('a damaged delta is refused (it does not inflate, or the rebuilt memory has the wrong digest)', async () => {
    const delta = await encodeSnapshot(b, snapshotBaseOf(a.memory));
    const bodyStart = 4 + Buffer.from(delta.buffer, delta.byteOffset).readUInt32LE(0);
    for (const at of [bodyStart + 10, Math.floor((bodyStart + delta.byteLength) / 2), delta.byteLength - 20]) {
      const damaged = delta.slice();
      damaged[at]! ^= 0x40;
      const err = await decodeSnapshot(damaged, a.memory).catch((e: unknown) => e);
      expect(err, `flipped byte at ${at}`).toBeInstanceOf(SnapshotWireError);
      expect((err as Error).message).toMatch(/does not inflate|inflates to|digest .* the snapshot's memory had/);
    }
  });

  test('full snapshots still round-trip (a base, if given, is ignored), and so do snapshots from before deltas', async () => {
    const full = await encodeSnapshot(b);
    const decoded = await decodeSnapshot(full, a.memory);
    expect(sameBytes(decoded.memory, b.memory)).toBe(true);
    expect(decoded.devices).toEqual(b.devices);
    // The format before deltas: the same header without `kind`.
    const buf = Buffer.from(full.buffer, full.byteOffset, full.byteLength);
    const headerBytes = buf.readUInt32LE(0);
    const header = JSON.parse(buf.subarray(4, 4 + headerBytes).toString('utf8')) as Record<string, unknown>;
    delete header.kind;
    const oldHeader = Buffer.from(JSON.stringify(header));
    const old = Buffer.concat([Buffer.from(Uint32Array.of(oldHeader.byteLength).buffer), oldHeader, buf.subarray(4 + headerBytes)]);
    expect(sameBytes((await decodeSnapshot(old)).memory, b.memory)).toBe(true);
  });

  test('pages compared by hash and by copy agree', () => {
    expect(changedPages(b.memory, pageHashes(a.memory))).toEqual(changedPagesByCompare(b.memory, a.memory));
    expect(changedPages(c.memory, pageHashes(a.memory))).toEqual(changedPagesByCompare(c.memory, a.memory));
  });
});

describe('page deltas over synthetic memories', () => {
  test('the wire digest width matches the page digest width', () => {
    expect(PAGE_DIGEST_BYTES).toBe(SNAPSHOT_BASE_DIGEST_BYTES);
  });

  test('gather and apply round-trip with small pages and a short last page, without touching the base', () => {
    const pageBytes = 4096;
    const base = new Uint8Array(10 * pageBytes + 100).map((_, i) => (i * 31) & 0xff);
    const memory = new Uint8Array(13 * pageBytes + 7);
    memory.set(base);
    memory[3 * pageBytes + 5] ^= 1;
    memory[9 * pageBytes] ^= 1;
    memory.fill(9, base.byteLength);
    const pages = changedPages(memory, pageHashes(base, pageBytes), pageBytes);
    // 3 and 9 changed; 10 is short in the base; 11..13 are past it.
    expect(pages).toEqual([3, 9, 10, 11, 12, 13]);
    expect(changedPagesByCompare(memory, base, pageBytes)).toEqual(pages);
    const baseCopy = base.slice();
    const rebuilt = applyPages(base, memory.byteLength, pages, gatherPages(memory, pages, pageBytes), pageBytes);
    expect(sameBytes(rebuilt, memory)).toBe(true);
    expect(sameBytes(base, baseCopy)).toBe(true);
  });

  test('bad page lists and bodies are refused with the reason', () => {
    const P = 64 * 1024;
    const base = new Uint8Array(4 * P);
    const body = new Uint8Array(P);
    expect(() => applyPages(base, base.byteLength, [2, 1], new Uint8Array(2 * P), P)).toThrow(/strictly ascending: 1 after 2/);
    expect(() => applyPages(base, base.byteLength, [4], body, P)).toThrow(/page index 4 is outside the memory's 4 pages/);
    expect(() => applyPages(base, base.byteLength, [1], body.subarray(1), P)).toThrow(/body is 65535 bytes, its 1 pages need 65536/);
    expect(() => applyPages(base, 5 * P, [], new Uint8Array(0), P)).toThrow(/page 4 lies beyond the 262144-byte base but is not in the delta/);
    expect(() => pageHashes(base, 3000)).toThrow(PageDeltaError);
    expect(() => changedPages(base, new Uint8Array(33))).toThrow(/not a multiple of 32/);
  });

  test('pageBytesFor picks the smallest page size whose hashes fit', () => {
    expect(PAGE_BYTES).toBe(4096);
    const GiB = 1024 ** 3;
    expect(pageBytesFor(40 * 1024 * 1024, 3 * 1024 * 1024)).toBe(PAGE_BYTES); // 320 KiB of hashes
    expect(pageBytesFor(2 * GiB, 3 * 1024 * 1024)).toBe(32 * 1024); // 2 MiB of hashes; 16 KiB pages need 4 MiB
    expect(() => pageBytesFor(2 * GiB, 16)).toThrow(/no page size/);
  });
});

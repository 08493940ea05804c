// The pieces a checkpoint and a join now do on the node's main thread without holding it (issue 19,
// pause part): a checkpoint's pieces deflated through one zlib stream, the same bytes as before and
// each decodable on its own; the join's changed-page scan and memory digest, the same answers as the
// plain forms; the compressor's scan of reused chunks letting the event loop turn; and the checkpoint
// head written in pieces with its glue encoded once, the same bytes as the head encoded in one go; a
// join's body compressed in paced pieces reads back with plain inflate.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { MemoryCompressor, SCAN_YIELD_CHUNKS } from '../dist/hypervisor/node/checkpoint-compress.js';
import { CHECKPOINT_MAGIC, readCheckpoint, writeCheckpoint } from '../dist/hypervisor/node/checkpoint-file.js';
import { realEnv } from '../dist/hypervisor/node/env.js';
import { PieceDeflater } from '../dist/hypervisor/node/piece-deflater.js';
import { pacedDeflateBodies } from '../dist/hypervisor/node/snapshot-body.js';
import { makeBootConfig } from '../dist/hypervisor/vm/boot-config.js';
import { ENGINE_NAME, ENGINE_VERSION } from '../dist/hypervisor/vm/engine.js';
import { changedPagesOfHashes, memoryDigest, memoryDigestSliced, PAGE_BYTES, PAGE_DIGEST_BYTES, pageHashes } from '../dist/hypervisor/vm/page-delta.js';
import { decodeSnapshot, deflateBodies, encodeSnapshot, readSnapshotHeader, snapshotBaseOf } from '../dist/hypervisor/vm/snapshot-wire.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import type { Snapshot } from '../dist/hypervisor/vm/vm.js';
import { encodeContainerHead } from '../dist/logging-channel/container.js';
import { ROOT, tempDir } from './helpers.js';

const FINAL_BLOCK = Buffer.from([0x03, 0x00]);

describe('one zlib stream for all the pieces of a checkpoint', () => {
  test('each piece is the bytes a fresh one-shot deflate makes, and decodes alone and in any order', async () => {
    const d = new PieceDeflater(1);
    const chunks: Buffer[] = [];
    const pieces: Buffer[] = [];
    try {
      for (let i = 0; i < 60; i++) {
        // Random (incompressible), repeated, and text chunks: their pieces differ in size and block kind.
        const chunk = i % 3 === 0 ? randomBytes(65536) : i % 3 === 1 ? Buffer.alloc(65536, i) : Buffer.from(`{"n":${i},"v":"${'x'.repeat(i)}"}`.repeat(2000).slice(0, 65536));
        const piece = await d.deflate(chunk);
        expect(piece.equals(deflateRawSync(chunk, { level: 1, finishFlush: constants.Z_FULL_FLUSH }))).toBe(true);
        expect(inflateRawSync(Buffer.concat([piece, FINAL_BLOCK])).equals(chunk)).toBe(true);
        chunks.push(chunk);
        pieces.push(piece);
      }
    } finally {
      d.close();
    }
    const order = pieces.map((_, i) => (i * 37) % pieces.length); // 37 is prime to 60: a permutation
    expect(new Set(order).size).toBe(pieces.length);
    const inflated = inflateRawSync(Buffer.concat([...order.map((i) => pieces[i]!), FINAL_BLOCK]));
    expect(inflated.equals(Buffer.concat(order.map((i) => chunks[i]!)))).toBe(true);
  });

  test('one piece at a time: a second before the first is done is refused', async () => {
    const d = new PieceDeflater(1);
    try {
      const first = d.deflate(randomBytes(65536));
      await expect(d.deflate(randomBytes(10))).rejects.toThrow(/one piece at a time/);
      expect((await first).byteLength).toBeGreaterThan(65536); // random bytes do not shrink
    } finally {
      d.close();
    }
  });

  test('a long run of reused chunks lets the event loop turn', async () => {
    const chunks = 4 * SCAN_YIELD_CHUNKS;
    const memory = new Uint8Array(chunks * 16 * PAGE_BYTES);
    for (let c = 0; c < chunks; c++) memory[c * 16 * PAGE_BYTES] = (c % 250) + 1; // no chunk is zero
    const compressor = new MemoryCompressor({ level: 1, dutyPercent: 100 });
    const hashes = pageHashes(memory);
    await compressor.compress(memory, hashes);
    let turns = 0;
    const turn = () => {
      turns++;
      if (!done) setImmediate(turn);
    };
    let done = false;
    setImmediate(turn);
    const again = await compressor.compress(memory, hashes);
    done = true;
    expect(again.reusedChunks).toBe(chunks);
    expect(turns).toBeGreaterThanOrEqual(3);
  });
});

describe("the join's delta, on the main thread in short steps", () => {
  /** The plain answer: page by page. */
  function naiveChanged(hashes: Uint8Array, base: Uint8Array): number[] {
    const out: number[] = [];
    for (let i = 0; i < hashes.byteLength / PAGE_DIGEST_BYTES; i++) {
      const at = i * PAGE_DIGEST_BYTES;
      if (at >= base.byteLength || Buffer.compare(hashes.subarray(at, at + PAGE_DIGEST_BYTES), base.subarray(at, at + PAGE_DIGEST_BYTES)) !== 0) out.push(i);
    }
    return out;
  }

  test('changed pages by runs of hashes equal the page-by-page answer (edges of runs, a grown memory)', () => {
    const pages = 1000; // four runs of 256 and a short one
    const base = new Uint8Array(randomBytes(pages * PAGE_DIGEST_BYTES));
    for (const changed of [[], [0], [255], [256], [511, 512], [999], [3, 300, 301, 700, 998], Array.from({ length: 1000 }, (_, i) => i)]) {
      const now = base.slice();
      for (const p of changed) now[p * PAGE_DIGEST_BYTES + (p % PAGE_DIGEST_BYTES)] ^= 0x5a;
      expect(changedPagesOfHashes(now, base)).toEqual(changed);
      expect(changedPagesOfHashes(now, base)).toEqual(naiveChanged(now, base));
    }
    // The memory grew: pages past the base's end (here inside a run) always count as changed.
    const grown = new Uint8Array(1300 * PAGE_DIGEST_BYTES);
    grown.set(base);
    grown[10 * PAGE_DIGEST_BYTES] ^= 1;
    expect(changedPagesOfHashes(grown, base)).toEqual(naiveChanged(grown, base));
    expect(changedPagesOfHashes(grown, base)).toEqual([10, ...Array.from({ length: 300 }, (_, i) => 1000 + i)]);
  });

  test('the memory digest hashed in slices is the digest in one pass; a wrong length is refused the same way', async () => {
    const memoryBytes = 3000 * PAGE_BYTES;
    const hashes = new Uint8Array(randomBytes(3000 * PAGE_DIGEST_BYTES));
    for (const slice of [1, 4096, 100_000, 1 << 30]) expect(await memoryDigestSliced(hashes, memoryBytes, PAGE_BYTES, slice)).toBe(memoryDigest(hashes, memoryBytes));
    await expect(memoryDigestSliced(hashes.subarray(1), memoryBytes)).rejects.toThrow(/page hashes are 95999 bytes/);
  });
});

describe("a join's body in paced pieces (the node's Env codec)", () => {
  test('a full snapshot and a delta encoded in pieces decode with plain inflate to the same memory', async () => {
    const codec = pacedDeflateBodies();
    expect(realEnv.snapshotCodec).toBeDefined();
    const memory = new Uint8Array(300 * PAGE_BYTES); // 19 chunks, the last one short
    memory.set(randomBytes(40 * PAGE_BYTES), 17 * PAGE_BYTES);
    memory.fill(0x61, 200 * PAGE_BYTES, 299 * PAGE_BYTES + 100);
    const snapshot: Snapshot = { engine: 'e@1', guestHash: 'g', memory, devices: {} as Snapshot['devices'] };
    const full = await encodeSnapshot(snapshot, null, codec);
    expect(readSnapshotHeader(full).kind).toBe('full');
    expect(Buffer.from((await decodeSnapshot(full, null, deflateBodies)).memory).equals(memory)).toBe(true);

    const base = memory.slice();
    memory[5] = 1;
    memory.fill(0x62, 250 * PAGE_BYTES, 251 * PAGE_BYTES);
    const delta = await encodeSnapshot({ ...snapshot, memory }, snapshotBaseOf(base), codec);
    expect(readSnapshotHeader(delta)).toMatchObject({ kind: 'delta', pages: [0, 250] });
    expect(Buffer.from((await decodeSnapshot(delta, base, deflateBodies)).memory).equals(memory)).toBe(true);
  });
});

describe('the checkpoint header', () => {
  test('its JSON, glue spliced in from a cache, is JSON.stringify of the header, checkpoint after checkpoint', async () => {
    const config = makeBootConfig(loadGuest(`${ROOT}/guest-apps/kv.js`), {});
    const dir = tempDir('ftjs-header-');
    const memory = new Uint8Array(64 * PAGE_BYTES);
    memory.fill(3, 5000, 9000);
    const snapshot: Snapshot = { engine: `${ENGINE_NAME}@${ENGINE_VERSION}`, guestHash: config.guestHash, memory, devices: { clockLastMs: 0 } as unknown as Snapshot['devices'] };
    const compressor = new MemoryCompressor({ level: 1 });
    // A guest whose env holds the very marker the glue is spliced at (EncodedJson's, logging-channel/frames.ts): its head is encoded in one go.
    const marked = makeBootConfig(loadGuest(`${ROOT}/guest-apps/kv.js`), { X: '\u0000ftjs:encoded-json\u0000' });
    for (const [seq, node, cfg] of [
      [1, 'a', config],
      [2, 'a', config],
      [3, 'b "quoted"', config],
      [4, 'a', marked],
    ] as const) {
      const written = await writeCheckpoint(dir, cfg, { ...snapshot, guestHash: cfg.guestHash, stateHash: `hash-${seq}` }, { seq, pos: 1, epoch: 1, node, guestTimeMs: 0 }, compressor);
      const data = readFileSync(written.file);
      const json = data.subarray(12, 12 + data.readUInt32LE(8));
      const header = JSON.parse(json.toString('utf8'));
      // The head written in pieces is byte for byte the one encodeContainerHead makes of JSON.stringify(header).
      const expected = encodeContainerHead(CHECKPOINT_MAGIC, Buffer.from(JSON.stringify(header), 'utf8'));
      expect(data.subarray(0, expected.byteLength).equals(expected)).toBe(true);
      expect(header.boot.boot.glue).toEqual(JSON.parse(JSON.stringify(cfg.glue)));
      expect(header.boot.boot.env).toEqual(cfg.env);
      expect({ seq: header.seq, node: header.node, bootNode: header.boot.node, stateHash: header.stateHash }).toEqual({ seq, node, bootNode: node, stateHash: `hash-${seq}` });
      // The file is whole: its CRCs hold and the memory inflates; only the made-up state hash differs.
      await expect(readCheckpoint(written.file)).rejects.toThrow(new RegExp(`hash to [0-9a-f]{12}…, the header says hash-${seq}…`));
    }
  });
});

// A checkpoint's memory compressed in paced, independent pieces, reusing the pieces of chunks that did
// not change since the last checkpoint (hypervisor/node/checkpoint-compress.ts, issue 19). The pieces
// must make one ordinary raw deflate stream of exactly the memory given (whatever was reused), the
// pacing must keep to its duty cycle (simulated time), and a real VM's checkpoints written with one
// compressor must restore, verified, to the state they were taken in.

import { randomBytes } from 'node:crypto';
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { afterAll, describe, expect, test } from 'vitest';
import { checkDutyPercent, DutyCycle, MemoryCompressor } from '../dist/hypervisor/node/checkpoint-compress.js';
import { readCheckpoint, writeCheckpoint } from '../dist/hypervisor/node/checkpoint-file.js';
import { makeBootConfig } from '../dist/hypervisor/vm/boot-config.js';
import { pageHashes } from '../dist/hypervisor/vm/page-delta.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import type { LiveEvent } from '../dist/hypervisor/vm/vm.js';
import { VmHost } from '../dist/hypervisor/worker/vm-host.js';
import { ftjs, ROOT, tempDir } from './helpers.js';

const PAGE = 4096;
const CHUNK = 16 * PAGE;

/** 10 whole chunks and a last one of 3 pages: zero, random, text and repeated chunks. */
function sampleMemory(): Uint8Array {
  const memory = new Uint8Array(10 * CHUNK + 3 * PAGE);
  memory.set(randomBytes(CHUNK), 1 * CHUNK);
  memory.set(new TextEncoder().encode('{"key":"value","n":12345} '.repeat(CHUNK / 26)), 2 * CHUNK);
  memory.set(memory.subarray(CHUNK, 2 * CHUNK), 3 * CHUNK); // the same bytes as chunk 1, elsewhere
  memory.fill(7, 5 * CHUNK + 100, 5 * CHUNK + 200); // one page of chunk 5 not zero
  memory.set(randomBytes(3 * PAGE), 10 * CHUNK);
  return memory;
}

/** Whether `pieces`, concatenated, inflate to exactly `memory` (Buffer.equals: toEqual walks bytes one by one). */
const inflatesTo = (pieces: Uint8Array[], memory: Uint8Array) => inflateRawSync(Buffer.concat(pieces)).equals(memory);
const compressor = () => new MemoryCompressor({ level: 1, dutyPercent: 100, chunkBytes: CHUNK });

describe('pieces and reuse', () => {
  test('the pieces are one raw deflate stream of the memory; zero chunks share one piece', async () => {
    const memory = sampleMemory();
    const c = compressor();
    const out = await c.compress(memory, pageHashes(memory));
    expect(inflatesTo(out.pieces, memory)).toBe(true);
    expect(out.compressedBytes).toBe(out.pieces.reduce((n, p) => n + p.byteLength, 0));
    // Chunks 1, 2, 3, 5 and the last are not zero; 0, 4, 6–9 are (the first zero one is deflated once).
    expect({ compressed: out.compressedChunks, zero: out.zeroChunks, reused: out.reusedChunks }).toEqual({ compressed: 5, zero: 6, reused: 0 });
    expect(new Set([0, 4, 6, 7, 8, 9].map((i) => out.pieces[i])).size).toBe(1);
  });

  test('a second checkpoint deflates only the chunks whose pages changed, and holds their new bytes', async () => {
    const memory = sampleMemory();
    const c = compressor();
    const first = await c.compress(memory, pageHashes(memory));
    const same = await c.compress(memory, pageHashes(memory));
    expect({ compressed: same.compressedChunks, reused: same.reusedChunks }).toEqual({ compressed: 0, reused: 5 });
    expect(same.pieces.every((piece, i) => piece === first.pieces[i])).toBe(true);

    memory[2 * CHUNK + 5 * PAGE + 17] ^= 0xff; // one page of chunk 2
    memory.fill(9, 7 * CHUNK, 7 * CHUNK + 10); // a zero chunk written
    memory.fill(0, 5 * CHUNK, 6 * CHUNK); // a chunk zeroed
    const next = await c.compress(memory, pageHashes(memory));
    expect({ compressed: next.compressedChunks, reused: next.reusedChunks, zero: next.zeroChunks }).toEqual({ compressed: 2, reused: 3, zero: 6 });
    expect(inflatesTo(next.pieces, memory)).toBe(true);
  });

  test('grown memory: the old chunks are reused, the new ones deflated; the last chunk is keyed by its length', async () => {
    const memory = sampleMemory();
    const c = compressor();
    await c.compress(memory, pageHashes(memory));
    const grown = new Uint8Array(memory.byteLength + 2 * CHUNK);
    grown.set(memory);
    grown.set(randomBytes(CHUNK), 11 * CHUNK);
    const out = await c.compress(grown, pageHashes(grown));
    expect(inflatesTo(out.pieces, grown)).toBe(true);
    // Chunk 10 was 3 pages and is now whole (its hashes differ in length: deflated again); 11 is new.
    expect({ compressed: out.compressedChunks, reused: out.reusedChunks }).toEqual({ compressed: 2, reused: 4 });
  });

  test('without page hashes every chunk is deflated, and nothing is reused from before', async () => {
    const memory = sampleMemory();
    const c = compressor();
    await c.compress(memory, pageHashes(memory));
    const blind = await c.compress(memory);
    expect({ compressed: blind.compressedChunks, reused: blind.reusedChunks, zero: blind.zeroChunks }).toEqual({ compressed: 11, reused: 0, zero: 0 });
    expect(inflatesTo(blind.pieces, memory)).toBe(true);
    // Page hashes of another length than the memory's (not this memory's): treated as none.
    const wrong = await c.compress(memory, pageHashes(memory).subarray(32));
    expect(wrong.compressedChunks).toBe(11);
    const again = await c.compress(memory, pageHashes(memory));
    expect(again.reusedChunks).toBe(0);
  });

  test('an empty memory is a valid empty stream', async () => {
    const out = await compressor().compress(new Uint8Array(0), new Uint8Array(0));
    expect(inflatesTo(out.pieces, new Uint8Array(0))).toBe(true);
  });
});

describe('pacing (simulated time)', () => {
  function simulated(deflateMs: number, dutyPercent: number) {
    let now = 0;
    const sleeps: number[] = [];
    const c = new MemoryCompressor({
      level: 1,
      dutyPercent,
      chunkBytes: CHUNK,
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
      deflate: async (chunk, level) => {
        now += deflateMs;
        return deflateRawSync(chunk, { level, finishFlush: constants.Z_FULL_FLUSH });
      },
    });
    return { c, sleeps, now: () => now };
  }

  test('after each chunk it waits so that deflate keeps a thread busy at most its duty cycle', async () => {
    const memory = new Uint8Array(8 * CHUNK).fill(0x61);
    const sim = simulated(3, 25);
    const out = await sim.c.compress(memory);
    expect(inflatesTo(out.pieces, memory)).toBe(true);
    expect(sim.sleeps).toEqual(Array(8).fill(9));
    expect(out.busyMs).toBe(24);
    expect(out.idleMs).toBe(72);
    expect(sim.now()).toBe(96);
  });

  test('waits shorter than a timer can are carried over; 100% never waits', async () => {
    const memory = new Uint8Array(8 * CHUNK).fill(0x61);
    const half = simulated(0.25, 50);
    await half.c.compress(memory);
    expect(half.sleeps).toEqual([1, 1]); // 0.25 ms owed per chunk, waited once 1 ms is owed
    const full = simulated(3, 100);
    await full.c.compress(memory);
    expect(full.sleeps).toEqual([]);
  });

  test('reused and zero chunks cost no wait', async () => {
    const memory = sampleMemory();
    const sim = simulated(2, 50);
    await sim.c.compress(memory, pageHashes(memory));
    expect(sim.sleeps.length).toBe(6); // 5 chunks with data and the first zero chunk
    sim.sleeps.length = 0;
    await sim.c.compress(memory, pageHashes(memory));
    expect(sim.sleeps).toEqual([]);
  });

  test('a duty cycle paces any work (the file writes too): synchronous or not, it returns its result', async () => {
    let now = 0;
    const sleeps: number[] = [];
    const pacer = new DutyCycle(
      20,
      () => now,
      async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
    );
    expect(await pacer.run(() => ((now += 4), 'sync'))).toBe('sync');
    expect(await pacer.run(async () => ((now += 1), 'async'))).toBe('async');
    expect(sleeps).toEqual([16, 4]);
    expect({ busy: pacer.busyMs, idle: pacer.idleMs }).toEqual({ busy: 5, idle: 20 });
    expect(() => new DutyCycle(0)).toThrow(/--checkpoint-compress-percent/);
  });

  test('a duty cycle outside 1–100 is refused with the flag named', async () => {
    for (const bad of [0, 101, 1.5, Number.NaN]) expect(() => checkDutyPercent(bad)).toThrow(/--checkpoint-compress-percent must be an integer from 1 to 100/);
    expect(() => new MemoryCompressor({ level: 1, dutyPercent: 0 })).toThrow(/--checkpoint-compress-percent/);
    expect(() => new MemoryCompressor({ level: 1, chunkBytes: 1000 })).toThrow(/multiple of 4096/);
    const refused = await ftjs(['primary', 'guest-apps/kv.js', '--checkpoint-every', '10', '--checkpoint-compress-percent', '0']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('--checkpoint-compress-percent must be an integer from 1 to 100');
  });
});

describe('checkpoints of a real VM through one compressor', () => {
  const hosts: VmHost[] = [];
  afterAll(async () => {
    await Promise.all(hosts.splice(0).map((h) => h.terminate()));
  });
  const put = (key: string, body: string): LiveEvent => ({ kind: 'request', method: 'PUT', url: `http://vm/kv/${key}`, headers: [], body: new TextEncoder().encode(body) });

  test('the second reuses most chunks; each reads back verified and restores to the state it was taken in', async () => {
    const config = makeBootConfig(loadGuest(`${ROOT}/guest-apps/kv.js`), {});
    const vm = VmHost.start(config.limits);
    hosts.push(vm);
    await vm.boot(config, 'live');
    for (let i = 0; i < 8; i++) await vm.run([put(`big-${i}`, `${i}`.repeat(200_000))]);
    const dir = tempDir('ftjs-compress-checkpoint-');
    const c = new MemoryCompressor({ level: 1 });
    const files: Array<{ file: string; stateHash: string }> = [];
    const reuse: number[] = [];
    for (let round = 1; round <= 2; round++) {
      await vm.run([put(`small-${round}`, 'x')]);
      await vm.precopy();
      const snapshot = await vm.snapshot();
      try {
        expect(snapshot.pageHashes).toBeDefined();
        const written = await writeCheckpoint(dir, config, snapshot, { seq: round, pos: 1, epoch: 1, node: 'test', guestTimeMs: snapshot.devices.clockLastMs }, c);
        files.push({ file: written.file, stateHash: snapshot.stateHash! });
        reuse.push(written.reusedChunks);
        if (round === 2) expect(written.compressedChunks).toBeLessThan(written.reusedChunks);
      } finally {
        vm.releaseSnapshot(snapshot);
      }
    }
    expect(reuse[1]).toBeGreaterThan(reuse[0]!);
    for (const { file, stateHash } of files) {
      const loaded = await readCheckpoint(file);
      expect(loaded.header.stateHash).toBe(stateHash);
      const restored = VmHost.start(config.limits);
      hosts.push(restored);
      await restored.boot(loaded.config, 'replay', loaded.snapshot);
      expect((await restored.state(true)).stateHash).toBe(stateHash);
    }
  });
});

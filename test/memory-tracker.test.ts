// State hashes and snapshots that cost what changed, not what the memory holds (issue 19): the engine's
// stores mark their pages (hypervisor/vm/wasm-dirty.ts), the state hash is a page-hash tree updated from
// those marks (state-hash.ts), and a kept copy is pre-copied between tasks (kept-copy.ts). A write the
// tracking missed would be a page no hash and no copy sees, so real guests are checked after every task
// against a hash recomputed from scratch. Real VMs and real engine bytes, no mocks.

import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { readCheckpoint, writeCheckpoint } from '../dist/hypervisor/node/checkpoint-file.js';
import { makeBootConfig } from '../dist/hypervisor/vm/boot-config.js';
import { withoutTrackingMap } from '../dist/hypervisor/vm/memory-tracker.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import { fullStateHash, PageHashTree } from '../dist/hypervisor/vm/state-hash.js';
import { type BootConfig, type LiveEvent, Vm } from '../dist/hypervisor/vm/vm.js';
import { instrumentStores, TRACK_MAP_ADDRESS, TRACK_MAP_END_PAGE, TRACK_MAP_FIRST_PAGE, TRACK_PAGE_BYTES, WasmRewriteError } from '../dist/hypervisor/vm/wasm-dirty.js';
import { VmHost } from '../dist/hypervisor/worker/vm-host.js';
import { LivePort } from '../dist/recorder/live-port.js';
import { Log } from '../dist/recorder/log.js';
import { ROOT, tempDir } from './helpers.js';

const hosts: VmHost[] = [];
afterAll(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.terminate()));
});

const request = (method: string, url: string, body = ''): LiveEvent => ({ kind: 'request', method, url, headers: [], body: new TextEncoder().encode(body) });

// ---------------------------------------------------------------------------------------------
// The rewrite, on a module small enough to check byte by byte.

function leb(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}
function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && !(b & 0x40)) || (v === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];

/**
 * A module importing its memory, with store64(address, value) (i64.store offset=3, unaligned), fill(d, v, n) and
 * copy(d, s, n); plus __stack_pointer as global 0, as the engine has (its C stack holds the map).
 */
function tinyModule(extraBody: number[] = []): Uint8Array {
  const types = section(
    1,
    vec([
      [0x60, 2, 0x7f, 0x7e, 0],
      [0x60, 3, 0x7f, 0x7f, 0x7f, 0],
    ]),
  );
  const imports = section(2, vec([[1, 0x6d, 1, 0x6d, 0x02, 0x00, ...leb(32)]])); // "m"."m" memory min 32 pages (2 MiB)
  const funcs = section(3, vec([[0], [1], [1]]));
  const globals = section(6, vec([[0x7f, 1, 0x41, ...sleb(5 * 1024 * 1024 + 88 * 1024), 0x0b]])); // as the engine's
  const exportsSec = section(
    7,
    vec([
      [1, 0x73, 0x00, 0],
      [1, 0x66, 0x00, 1],
      [1, 0x63, 0x00, 2],
    ]),
  );
  // i64.store with alignment hint 1 (as for a packed struct): it may cross a page edge.
  const store = [0, 0x20, 0, 0x20, 1, 0x37, 0, 3, ...extraBody, 0x0b];
  const fill = [0, 0x20, 0, 0x20, 1, 0x20, 2, 0xfc, 11, 0, 0x0b];
  const copy = [0, 0x20, 0, 0x20, 1, 0x20, 2, 0xfc, 10, 0, 0, 0x0b];
  const code = section(
    10,
    vec([
      [...leb(store.length), ...store],
      [...leb(fill.length), ...fill],
      [...leb(copy.length), ...copy],
    ]),
  );
  return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...types, ...imports, ...funcs, ...globals, ...exportsSec, ...code]);
}

describe('the store rewrite', () => {
  test('every store, fill and copy marks exactly the pages it wrote, including a store across a page edge', () => {
    const rewritten = instrumentStores(tinyModule());
    expect(rewritten).toMatchObject({ stores: 1, bulk: 2 });
    const memory = new WebAssembly.Memory({ initial: 32 });
    const { exports } = new WebAssembly.Instance(new WebAssembly.Module(rewritten.bytes as BufferSource), { m: { m: memory } });
    const { s, f, c } = exports as unknown as { s: (a: number, v: bigint) => void; f: (d: number, v: number, n: number) => void; c: (d: number, s: number, n: number) => void };
    const map = () => new Uint8Array(memory.buffer, TRACK_MAP_ADDRESS, memory.buffer.byteLength / TRACK_PAGE_BYTES);
    const marked = () => [...map().keys()].filter((p) => map()[p] !== 0);
    const clear = () => map().fill(0);

    s(800 * 1024, 7n); // offset 3: bytes 800 KiB + 3 .. + 10, one page
    expect(marked()).toEqual([200]);
    expect(new DataView(memory.buffer).getBigUint64(800 * 1024 + 3, true)).toBe(7n);
    clear();
    s(4 * 4096 * 100 - 5, 1n); // bytes -2 .. +5 around a page edge: both pages
    expect(marked()).toEqual([399, 400]);
    clear();
    f(1024 * 1024 + 100, 9, 3 * 4096);
    expect(marked()).toEqual([256, 257, 258, 259]);
    expect(new Uint8Array(memory.buffer)[1024 * 1024 + 100 + 3 * 4096 - 1]).toBe(9);
    clear();
    f(1024 * 1024, 1, 0); // an empty fill writes nothing
    expect(marked()).toEqual([]);
    c(1536 * 1024, 1024 * 1024, 4096);
    expect(marked()).toEqual([384]);
  });

  test('the pinned engine rewrites, keeps its map clear of data and stack, and refuses what it cannot see', () => {
    const require = createRequire(import.meta.url);
    const engine = readFileSync(require.resolve('@jitl/quickjs-wasmfile-release-sync/wasm'));
    const rewritten = instrumentStores(engine);
    expect(rewritten.stores).toBeGreaterThan(5000);
    expect(() => new WebAssembly.Module(rewritten.bytes as BufferSource)).not.toThrow();
    // A SIMD store (0xfd 11 v128.store) is a write the rewrite cannot mark: refused, never passed through.
    expect(() => instrumentStores(tinyModule([0x20, 0, 0xfd, 11, 4, 0, 0x1a]))).toThrow(WasmRewriteError);
  });
});

// ---------------------------------------------------------------------------------------------
// The hash tree against the hash from scratch.

describe('the page-hash tree', () => {
  test('the state hash is the formula of state-hash.ts, SHA-256 of every page, zero pages (compared, not hashed) included', () => {
    // Independent of the tree: every page hashed, in groups of 256, then the root over the tag, sizes and devices.
    const reference = (memory: Uint8Array, devices: string): string => {
      const pages = memory.byteLength / TRACK_PAGE_BYTES;
      const groups: Buffer[] = [];
      for (let g = 0; g * 256 < pages; g++) {
        const pageHashes: Buffer[] = [];
        for (let p = g * 256; p < Math.min(pages, (g + 1) * 256); p++) {
          const page = p >= TRACK_MAP_FIRST_PAGE && p < TRACK_MAP_END_PAGE ? new Uint8Array(TRACK_PAGE_BYTES) : memory.subarray(p * TRACK_PAGE_BYTES, (p + 1) * TRACK_PAGE_BYTES);
          pageHashes.push(createHash('sha256').update(page).digest());
        }
        groups.push(createHash('sha256').update(Buffer.concat(pageHashes)).digest());
      }
      return createHash('sha256').update(`ftjs-state/v2|${TRACK_PAGE_BYTES}|${memory.byteLength}|`).update(Buffer.concat(groups)).update(devices).digest('hex');
    };
    const memory = new Uint8Array(2 * 1024 * 1024);
    // Zero pages, and pages that differ from zero only in their first or last byte.
    memory[3 * TRACK_PAGE_BYTES] = 1;
    memory[5 * TRACK_PAGE_BYTES - 1] = 1;
    memory.set(randomBytes(3 * TRACK_PAGE_BYTES), 100 * TRACK_PAGE_BYTES);
    const devices = '{"tasks":3}';
    expect(fullStateHash(memory, devices)).toBe(reference(memory, devices));
    memory[5 * TRACK_PAGE_BYTES - 1] = 0;
    memory[300 * TRACK_PAGE_BYTES - 1] = 9;
    expect(fullStateHash(memory, devices)).toBe(reference(memory, devices));
    expect(fullStateHash(new Uint8Array(memory.byteLength), devices)).toBe(reference(new Uint8Array(memory.byteLength), devices));
  });

  test('after random page writes and growth, the incremental state hash equals the one from scratch', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let memory = new Uint8Array(4 * 1024 * 1024);
    const tree = new PageHashTree();
    tree.resize(memory.byteLength);
    tree.invalidateAll();
    const devices = '{"tasks":1}';
    expect(tree.stateHash(memory, devices)).toBe(fullStateHash(memory, devices));
    for (let round = 0; round < 40; round++) {
      const written: number[] = [];
      for (let w = 0; w < 1 + rand(50); w++) {
        const at = rand(memory.byteLength - 16);
        memory.set(randomBytes(1 + rand(16)), at);
        written.push(Math.floor(at / TRACK_PAGE_BYTES), Math.floor((at + 15) / TRACK_PAGE_BYTES));
      }
      if (round % 10 === 9) {
        const grown = new Uint8Array(memory.byteLength + 1024 * 1024);
        grown.set(memory);
        memory = grown;
        tree.resize(memory.byteLength);
      }
      tree.invalidate(written.filter((p) => p < memory.byteLength / TRACK_PAGE_BYTES));
      expect(tree.stateHash(memory, devices)).toBe(fullStateHash(memory, devices));
    }
    // A page changed but not reported is a different hash from scratch: the comparison can fail.
    memory[12345] = (memory[12345]! + 1) & 0xff;
    expect(tree.stateHash(memory, devices)).not.toBe(fullStateHash(memory, devices));
    // The devices are part of it; the tracking map's pages are not.
    expect(fullStateHash(memory, '{"tasks":2}')).not.toBe(fullStateHash(memory, devices));
    const before = fullStateHash(memory, devices);
    memory.fill(1, TRACK_MAP_FIRST_PAGE * TRACK_PAGE_BYTES, TRACK_MAP_END_PAGE * TRACK_PAGE_BYTES);
    expect(fullStateHash(memory, devices)).toBe(before);
  });
});

// ---------------------------------------------------------------------------------------------
// Real guests: the tracked hash after every task equals the hash from scratch.

async function liveVm(config: BootConfig): Promise<Vm> {
  let vm: Vm | undefined;
  const port = new LivePort({ push: (e) => vm!.sink.push(e) }, { taskBudgetMs: config.limits.taskBudgetMs });
  vm = await Vm.create(config, port);
  return vm;
}

function checkEveryTask(vm: Vm, run: () => void): void {
  run();
  const snapshot = vm.snapshot();
  expect(vm.stateHash()).toBe(fullStateHash(snapshot.memory, JSON.stringify(snapshot.devices)));
}

describe('real guests', () => {
  const guests: Array<[string, LiveEvent[]]> = [
    ['guest-apps/kv.js', [request('PUT', 'http://vm/kv/a', 'x'.repeat(5000)), request('GET', 'http://vm/kv/a'), request('DELETE', 'http://vm/kv/a'), request('PUT', 'http://vm/kv/b', 'y')]],
    ['guest-apps/random.js', [request('GET', 'http://vm/'), request('GET', 'http://vm/'), request('GET', 'http://vm/?n=50')]],
    ['guest-apps/timers.js', [request('GET', 'http://vm/'), request('GET', 'http://vm/sleep?ms=5')]],
    ['test/guests/crypto-lab.js', [request('GET', 'http://vm/'), request('POST', 'http://vm/', '{"op":"digest"}')]],
    ['test/guests/streaming.js', [request('GET', 'http://vm/'), request('GET', 'http://vm/chunks')]],
    ['guest-apps/intl.js', [request('GET', 'http://vm/'), request('GET', 'http://vm/?locale=fr')]],
  ];
  for (const [guest, events] of guests) {
    test(`${guest}: after the boot and every task, the tracked state hash is the hash from scratch`, async () => {
      const config = makeBootConfig(loadGuest(path.join(ROOT, guest)), {});
      const vm = await liveVm(config);
      checkEveryTask(vm, () => vm.bootLive());
      for (let round = 0; round < 3; round++) for (const event of events) checkEveryTask(vm, () => vm.runLive(event));
    });
  }

  test('a snapshot restored in place and in a fresh VM hashes as the original did', async () => {
    const config = makeBootConfig(loadGuest(path.join(ROOT, 'guest-apps/kv.js')), {});
    const vm = await liveVm(config);
    vm.bootLive();
    vm.runLive(request('PUT', 'http://vm/kv/k', 'v1'));
    const snapshot = vm.snapshot();
    const hash = vm.stateHash();
    vm.runLive(request('PUT', 'http://vm/kv/k', 'v2'));
    expect(vm.stateHash()).not.toBe(hash);
    expect(vm.rewindInPlace(snapshot)).toBe(true);
    expect(vm.stateHash()).toBe(hash);
    const fresh = await Vm.create(config, new LivePort({ push: () => {} }, { taskBudgetMs: 1000 }), snapshot);
    expect(fresh.stateHash()).toBe(hash);
    // The tracking map is bookkeeping: a private snapshot holds it zeroed.
    expect(snapshot.memory.subarray(TRACK_MAP_ADDRESS, TRACK_MAP_ADDRESS + 4096).every((b) => b === 0)).toBe(true);
    expect(Buffer.compare(withoutTrackingMap(snapshot.memory.slice()), snapshot.memory)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Pre-copy through the worker, as a join and a checkpoint use it.

describe('pre-copied snapshots', () => {
  let config: BootConfig;
  let primary: VmHost;
  const put = (i: number) => request('PUT', `http://vm/kv/key-${i}`, `${i}:`.padEnd(2000, 'z'));

  test('a pre-copy made while tasks run reaches the same state, hash and bytes as a stop-and-copy', async () => {
    config = makeBootConfig(loadGuest(path.join(ROOT, 'guest-apps/kv.js')), {});
    primary = VmHost.start(config.limits);
    hosts.push(primary);
    await primary.boot(config, 'live');
    for (let k = 0; k < 4; k++) await primary.run(Array.from({ length: 500 }, (_, i) => put(k * 500 + i)));
    // The pre-copy runs in the idle time between the requests sent while it is under way.
    const precopy = primary.precopy();
    let more = 0;
    let done = false;
    void precopy.then(() => {
      done = true;
    });
    while (!done) await primary.run([put(10_000 + more++)]);
    const reply = await precopy;
    expect(reply.backlogPages).toBeLessThanOrEqual(512);
    expect(more).toBeGreaterThan(0);
    await primary.run(Array.from({ length: 20 }, (_, i) => put(20_000 + i)));

    const state = await primary.state(true);
    const precopied = await primary.snapshot();
    expect(precopied.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
    // While the kept copy is leased, a further snapshot is a stop-and-copy of the same state.
    const stopped = await primary.snapshot();
    expect(stopped.memory.buffer).toBeInstanceOf(ArrayBuffer);
    expect(Buffer.compare(precopied.memory, stopped.memory)).toBe(0);
    expect(precopied.devices).toEqual(stopped.devices);
    expect(precopied.stateHash).toBe(state.stateHash);
    expect(fullStateHash(precopied.memory, JSON.stringify(precopied.devices))).toBe(state.stateHash);

    // A VM booted from the pre-copied snapshot (a joining backup) has the same state hash, and stays
    // identical to the primary as it replays the primary's further tasks.
    const joined = VmHost.start(config.limits);
    hosts.push(joined);
    await joined.boot(config, 'replay', precopied);
    primary.releaseSnapshot(precopied);
    expect((await joined.state(true)).stateHash).toBe(state.stateHash);
    const a = await primary.run([put(30_000), request('GET', 'http://vm/kv/key-3'), put(30_001)]);
    const log = new Log();
    const b = await joined.replay(a.results.map((r) => log.append(r.entries)));
    expect(b.results.map((r) => r.divergence)).toEqual([null, null, null]);
    expect(b.results.map((r) => r.outputs)).toEqual(a.results.map((r) => r.outputs));
    expect((await joined.state(true)).stateHash).toBe((await primary.state(true)).stateHash);

    // After the release the kept copy catches up: the next snapshot is shared again and current.
    await primary.precopy();
    const next = await primary.snapshot();
    expect(next.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(fullStateHash(next.memory, JSON.stringify(next.devices))).toBe((await primary.state(true)).stateHash);
    primary.releaseSnapshot(next);
  });

  test('a checkpoint written from a pre-copied snapshot verifies and restores to the same state hash', async () => {
    await primary.precopy();
    const snapshot = await primary.snapshot();
    const dir = tempDir('ftjs-precopy-checkpoint-');
    try {
      const written = await writeCheckpoint(dir, config, snapshot, { seq: 99, pos: 1, epoch: 1, node: 'test', guestTimeMs: snapshot.devices.clockLastMs });
      expect(written.stateHash).toBe(snapshot.stateHash);
      const loaded = await readCheckpoint(written.file);
      expect(loaded.header.stateHash).toBe(snapshot.stateHash);
      const restored = VmHost.start(config.limits);
      hosts.push(restored);
      await restored.boot(loaded.config, 'replay', loaded.snapshot);
      expect((await restored.state(true)).stateHash).toBe(snapshot.stateHash);
    } finally {
      primary.releaseSnapshot(snapshot);
    }
  });
});

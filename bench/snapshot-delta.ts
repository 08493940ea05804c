// Incremental snapshots, in process: a kv.js VM (in its worker, driven directly, no HTTP) filled with
// ~20 MiB of values; snapshot A is the base a backup would hold. After 10, 100 and 1000 more writes
// (overwrites of random keys, cumulative, each snapshot compared with A) prints (JSON):
//   - bytes and encode ms of the full snapshot and of the delta against A, and the delta's changed pages,
//     for 4 KiB (the default, PAGE_BYTES), 16 KiB and 64 KiB (the WASM page) pages;
//   - decode ms of the delta (verify the base, inflate, apply, verify the rebuilt memory);
//   - what finding the changed pages costs: "by hash" (SHA-256 per page of the new memory, compared with
//     the base's hashes: all a primary can do, since the backup's memory is on another machine) vs
//     "by copy" (memcmp per page against a retained copy of the base: needs that copy, and taking it).
// WASM linear memory has no write tracking (no mprotect, no dirty bits), so "tracked" pages would need
// engine instrumentation; they are not measured.
//
//   npm run build && node dist/bench/snapshot-delta.js [--keys 20480] [--value-bytes 1024] [--rounds 3]

import { createHash } from 'node:crypto';
import { makeBootConfig } from '../hypervisor/vm/boot-config.js';
import { changedPagesByCompare, changedPagesOfHashes, memoryDigest, PAGE_BYTES, pageHashes } from '../hypervisor/vm/page-delta.js';
import { decodeSnapshot, encodeSnapshot, readSnapshotHeader, type SnapshotBase, snapshotBaseOf } from '../hypervisor/vm/snapshot-wire.js';
import { loadGuest } from '../hypervisor/vm/sources.js';
import type { LiveEvent, Snapshot } from '../hypervisor/vm/vm.js';
import { VmHost } from '../hypervisor/worker/vm-host.js';
import { argNumber, median, projectPath } from './util.js';

const keys = argNumber('--keys', 20_480);
const valueBytes = argNumber('--value-bytes', 1024);
const rounds = argNumber('--rounds', 3);
const PAGE_SIZES = [4 * 1024, 16 * 1024, 64 * 1024];
const WRITE_STEPS = [10, 100, 1000];

const config = makeBootConfig(loadGuest(projectPath('guest-apps/kv.js')), {});
const vm = VmHost.start(config.limits);

// Pseudo-random hex values (deterministic), so the image compresses like real data, not like one letter.
let seed = 12345;
const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
const valueOf = (i: number): string => {
  let out = `${i}:`;
  while (out.length < valueBytes) out += random().toString(16).padStart(8, '0');
  return out.slice(0, valueBytes);
};
const put = (key: string, value: string): LiveEvent => ({ kind: 'request', method: 'PUT', url: `http://vm/kv/${key}`, headers: [], body: new TextEncoder().encode(value) });

async function puts(events: LiveEvent[]): Promise<void> {
  for (let i = 0; i < events.length; i += 500) {
    const reply = await vm.run(events.slice(i, i + 500));
    for (const r of reply.results) if (r.outputs[0]?.kind !== 'response' || r.outputs[0].status !== 200) throw new Error('a PUT failed');
  }
}

/** Median ms of `rounds` runs of `fn`, and its last result. */
async function timed<T>(fn: () => T | Promise<T>): Promise<{ ms: number; value: T }> {
  const times: number[] = [];
  let value!: T;
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    value = await fn();
    times.push(performance.now() - t);
  }
  return { ms: round(median(times)), value };
}

try {
  await vm.boot(config, 'live');
  const fillStart = performance.now();
  await puts(Array.from({ length: keys }, (_, i) => put(`key-${i}`, valueOf(i))));
  const fillMs = performance.now() - fillStart;
  const a = await vm.snapshot();
  const memoryBytes = a.memory.byteLength;

  // The base, as a backup would compute it to offer it (and as the primary would to keep a copy).
  const bases = new Map<number, SnapshotBase>();
  const baseCost: Record<string, unknown> = {};
  for (const pageBytes of PAGE_SIZES) {
    const { ms, value } = await timed(() => snapshotBaseOf(a.memory, pageBytes));
    bases.set(pageBytes, value);
    baseCost[kib(pageBytes)] = { snapshotBaseOfMs: ms, offerBytes: value.pageHashes.byteLength, offerBase64Bytes: Math.ceil(value.pageHashes.byteLength / 3) * 4 };
  }
  const plainSha256 = await timed(() => createHash('sha256').update(a.memory).digest('hex'));
  const defaultBase = bases.get(PAGE_BYTES)!;
  const digestFromPageHashes = await timed(() => memoryDigest(defaultBase.pageHashes, memoryBytes, PAGE_BYTES));
  const retainCopy = await timed(() => a.memory.slice());
  const retained = retainCopy.value;

  const steps: Array<Record<string, unknown>> = [];
  let written = 0;
  for (const target of WRITE_STEPS) {
    await puts(Array.from({ length: target - written }, () => put(`key-${random() % keys}`, valueOf(random()))));
    written = target;
    const b: Snapshot = await vm.snapshot();

    const full = await timed(() => encodeSnapshot(b));
    const deltas: Record<string, unknown> = {};
    for (const pageBytes of PAGE_SIZES) {
      const base = bases.get(pageBytes)!;
      const delta = await timed(() => encodeSnapshot(b, base));
      const header = readSnapshotHeader(delta.value);
      const pages = header.kind === 'delta' ? header.pages.length : NaN;
      const decode = await timed(() => decodeSnapshot(delta.value, a.memory));
      if (Buffer.compare(decode.value.memory, b.memory) !== 0) throw new Error('a delta did not rebuild the snapshot');
      // Finding the changed pages alone: by hash (all a sender without the base's bytes can do) vs by
      // comparing with a retained copy of the base.
      const byHash = await timed(() => changedPagesOfHashes(pageHashes(b.memory, pageBytes), base.pageHashes));
      const byCopy = await timed(() => changedPagesByCompare(b.memory, retained, pageBytes));
      if (JSON.stringify(byHash.value) !== JSON.stringify(byCopy.value)) throw new Error('pages compared by hash and by copy disagree');
      deltas[kib(pageBytes)] = {
        bytes: delta.value.byteLength,
        changedPages: pages,
        totalPages: Math.ceil(b.memory.byteLength / pageBytes),
        changedMiB: round((pages * pageBytes) / 1048576),
        encodeMs: delta.ms,
        decodeMs: decode.ms,
        vsFull: round(full.value.byteLength / delta.value.byteLength),
        pagesComparedByHashMs: byHash.ms,
        pagesComparedByCopyMs: byCopy.ms,
      };
    }
    steps.push({
      writesSinceBase: target,
      memoryMiB: round(b.memory.byteLength / 1048576),
      full: { bytes: full.value.byteLength, encodeMs: full.ms },
      delta: deltas,
    });
  }

  console.log(
    JSON.stringify(
      {
        bench: 'snapshot-delta',
        guest: 'kv.js',
        keys,
        valueBytes,
        guestDataMiB: round((keys * valueBytes) / 1048576),
        fillSeconds: round(fillMs / 1000),
        memoryMiB: round(memoryBytes / 1048576),
        rounds,
        defaultPageBytes: PAGE_BYTES,
        base: baseCost,
        digest: { plainSha256OfMemoryMs: plainSha256.ms, fromPageHashesMs: digestFromPageHashes.ms },
        retainCopyOfBase: { ms: retainCopy.ms, bytes: retained.byteLength },
        steps,
        writes: 'overwrites of random keys with new values, cumulative; every snapshot compared with base A',
        tracked: 'not measured: WASM linear memory has no write tracking (no mprotect/dirty bits); it would need engine instrumentation',
        node: process.version,
      },
      null,
      2,
    ),
  );
} finally {
  await vm.terminate();
}

function kib(bytes: number): string {
  return `${bytes / 1024}KiB`;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

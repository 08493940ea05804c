// Durable checkpoints, in process: a real primary node (hypervisor/node/primary.ts) serving kv.js filled
// with ~20 MiB of values, taking checkpoints on demand. Prints (JSON) the primary's pause while the
// snapshot is taken (admission stopped -> resumed), the checkpoint write time (compress + hash + write
// + fsync + rename, off the hot path), the file size, what clients saw meanwhile (request latency with
// and without checkpoints), and the restore time (read + verify + inflate, boot from the snapshot).
//
//   npm run build && node dist/bench/checkpoint.js [--keys 20000] [--value-bytes 1024] [--rounds 10]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import pino from 'pino';
import { listCheckpoints, readCheckpoint } from '../hypervisor/node/checkpoint-file.js';
import { DEFAULT_LIVE_LOOP_OPTIONS } from '../hypervisor/node/live-loop.js';
import { DEFAULT_PAIR_SETTINGS } from '../hypervisor/node/pair.js';
import { type CheckpointStats, PrimaryNode } from '../hypervisor/node/primary.js';
import { makeBootConfig } from '../hypervisor/vm/boot-config.js';
import { loadGuest } from '../hypervisor/vm/sources.js';
import { VmHost } from '../hypervisor/worker/vm-host.js';
import { argNumber, median, percentile, projectPath } from './util.js';

const keys = argNumber('--keys', 20_000);
const valueBytes = argNumber('--value-bytes', 1024);
const rounds = argNumber('--rounds', 10);
const concurrency = 32;
const logger = pino({ level: 'warn' });
const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-bench-ckpt-'));
const config = makeBootConfig(loadGuest(projectPath('guest-apps/kv.js')), {});

const node = await PrimaryNode.start({
  config,
  nodeId: 'bench-primary',
  host: '127.0.0.1',
  port: 0,
  replicationHost: '127.0.0.1',
  replicationPort: 0,
  sharedDir: dir,
  secret: 'bench-secret-0123456789abcdef',
  pair: DEFAULT_PAIR_SETTINGS,
  maxRequestBytes: 1024 * 1024,
  loop: DEFAULT_LIVE_LOOP_OPTIONS,
  // No trigger: checkpoints are taken on demand below.
  checkpoint: { dir, keep: 3 },
  logger,
});

async function put(key: string, value: string): Promise<void> {
  const res = await fetch(`${node.url}/kv/${key}`, { method: 'PUT', body: value });
  if (res.status !== 200) throw new Error(`PUT ${key}: ${res.status}`);
  await res.arrayBuffer();
}

try {
  // Fill: ~keys * valueBytes of string data in the guest: pseudo-random hex digits (deterministic),
  // so the image compresses like real data rather than like a run of one letter.
  let seed = 12345;
  const valueOf = (i: number): string => {
    let out = `${i}:`;
    while (out.length < valueBytes) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      out += seed.toString(16).padStart(8, '0');
    }
    return out.slice(0, valueBytes);
  };
  let next = 0;
  const fillStart = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < keys; i = next++) await put(`key-${i}`, valueOf(i));
    }),
  );
  const fillMs = performance.now() - fillStart;

  // Client latency under a steady light load, first without checkpoints, then while they are taken.
  async function loadWindow(during: () => Promise<void>): Promise<number[]> {
    const latencies: number[] = [];
    let stop = false;
    const clients = Array.from({ length: 8 }, async (_, c) => {
      for (let i = 0; !stop; i++) {
        const t = performance.now();
        if (i % 2 === 0) await put(`load-${c}-${i % 100}`, 'x'.repeat(64));
        else await (await fetch(`${node.url}/kv/key-${(c * 997 + i) % keys}`)).arrayBuffer();
        latencies.push(performance.now() - t);
      }
    });
    await during();
    stop = true;
    await Promise.all(clients);
    return latencies;
  }

  // Idle: nothing else running, so the figures are the checkpoint's own.
  // The main thread's responsiveness (heartbeats, the logging channel) while checkpoints are taken.
  const loopDelay = (h: IntervalHistogram) => ({ p99: round(h.percentile(99) / 1e6), max: round(h.max / 1e6) });
  const idleDelay = monitorEventLoopDelay({ resolution: 5 });
  idleDelay.enable();
  const idle: CheckpointStats[] = [];
  for (let r = 0; r < rounds; r++) {
    await put(`idle-${r}`, 'x');
    const s = await node.checkpointNow('bench');
    if (s) idle.push(s);
  }

  idleDelay.disable();

  // Under load: 8 clients keep the node busy while checkpoints are taken.
  const stats: CheckpointStats[] = [];
  const withCheckpoints = await loadWindow(async () => {
    for (let r = 0; r < rounds; r++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const s = await node.checkpointNow('bench');
      if (s) stats.push(s);
    }
  });
  const windowMs = 100 * rounds + stats.reduce((n, s) => n + s.writeMs, 0);
  const baseline = await loadWindow(() => new Promise((resolve) => setTimeout(resolve, windowMs)));

  // Restore: read + verify + inflate the newest checkpoint, then boot a VM from it.
  const newest = (await listCheckpoints(dir))[0]!;
  const r0 = performance.now();
  const loaded = await readCheckpoint(newest.file);
  const r1 = performance.now();
  const vm = VmHost.start(loaded.config.limits);
  await vm.boot(loaded.config, 'replay', loaded.snapshot);
  const restoredHash = (await vm.state(true)).stateHash;
  const r2 = performance.now();
  await vm.terminate();
  if (restoredHash !== loaded.header.stateHash) throw new Error('restored state hash differs from the checkpoint');

  const pickOf = (xs: CheckpointStats[], f: (s: CheckpointStats) => number) => ({ median: round(median(xs.map(f))), max: round(Math.max(...xs.map(f))) });
  const figures = (xs: CheckpointStats[]) => ({
    checkpoints: xs.length,
    pauseMs: pickOf(xs, (s) => s.pauseMs),
    pauseWaitMs: pickOf(xs, (s) => s.waitMs),
    pauseSnapshotMs: pickOf(xs, (s) => s.snapshotMs),
    writeMs: pickOf(xs, (s) => s.writeMs),
    compressMs: pickOf(xs, (s) => s.compressMs),
  });
  const latency = (xs: number[]) => ({ requests: xs.length, p50: round(percentile(xs, 50)), p99: round(percentile(xs, 99)), max: round(Math.max(...xs)) });
  const last = stats[stats.length - 1]!;
  console.log(
    JSON.stringify(
      {
        bench: 'checkpoint',
        guest: 'kv.js',
        keys,
        valueBytes,
        guestDataMiB: round((keys * valueBytes) / 1048576),
        fillSeconds: round(fillMs / 1000),
        memoryMiB: round(last.memoryBytes / 1048576),
        idle: { ...figures(idle), mainThreadDelayMs: loopDelay(idleDelay) },
        underLoad: figures(stats),
        fileMiB: round(last.bytes / 1048576),
        compressionRatio: round(last.memoryBytes / last.bytes),
        clientLatencyMs: { withCheckpoints: latency(withCheckpoints), without: latency(baseline) },
        restoreMs: { readVerifyInflate: round(r1 - r0), bootFromSnapshot: round(r2 - r1) },
        node: process.version,
      },
      null,
      2,
    ),
  );
} finally {
  await node.stop();
  rmSync(dir, { recursive: true, force: true });
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

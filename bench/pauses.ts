// Pauses of guest traffic for status (a state hash), checkpoint and join, against the guest's memory
// (issue 19: target at most 10 ms at 200 MiB). One VM worker serves kv.js; its memory is grown with
// 1 MiB values to each target size. A client on the main thread sends GETs back to back, as the node's
// front door would, and every gap between two completions is recorded; an operation's pause is the
// worst gap while it runs, next to the worst gap of quiet windows (150 ms, and as long as a
// checkpoint's write: the machine's noise over a window that long). The operations are the node's own:
//
//   status      vm.state(true): the page hashes catch up between requests, then the state hash
//   checkpoint  vm.precopy() with traffic, then admission paused for vm.snapshot() only, then
//               writeCheckpoint with traffic, then the release. The compressor is kept from round to
//               round, as a node's Checkpointer keeps it: only chunks written since are compressed
//   first checkpoint  the same with a fresh compressor: every chunk of the memory is compressed
//               (paced: --compress-percent, default the node's)
//   join        the same pre-copy and pause, then encodeSnapshot as a delta against a base the
//               joiner holds (the memory when growth ended), with traffic
//   full join   the same for a joiner without a base (a fresh backup): the whole memory compressed
//               (with the node's body codec: paced pieces, hypervisor/node/snapshot-body.ts)
//
// Also, timed on a buffer of each size in the same run, what the code before these changes did on
// the serving path: SHA-256 of the whole memory on the VM thread (status), a copy of the whole memory
// on the VM thread (checkpoint, join) and page hashes of the whole memory on the main thread (join).
//
//   npm run build && node dist/bench/pauses.js [--sizes 50,100,200] [--rounds 5] [--compress-percent 50]
//     [--values repeat|random]   the 1 MiB values: one byte repeated (default), or random text (6 bits a byte)

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { DEFAULT_COMPRESS_DUTY_PERCENT, MemoryCompressor } from '../hypervisor/node/checkpoint-compress.js';
import { CHECKPOINT_COMPRESSION_LEVEL, writeCheckpoint } from '../hypervisor/node/checkpoint-file.js';
import { makeBootConfig } from '../hypervisor/vm/boot-config.js';
import { pageHashes } from '../hypervisor/vm/page-delta.js';
import { deflateBodies, encodeSnapshot, type SnapshotBodyCodec, snapshotBaseOf } from '../hypervisor/vm/snapshot-wire.js';
import { loadGuest } from '../hypervisor/vm/sources.js';
import type { BootConfig, LiveEvent } from '../hypervisor/vm/vm.js';
import { VmHost } from '../hypervisor/worker/vm-host.js';
import { argNumber, median, projectPath } from './util.js';

const sizesArg = process.argv.includes('--sizes') ? process.argv[process.argv.indexOf('--sizes') + 1]! : '50,100,200';
const sizesMiB = sizesArg.split(',').map(Number);
const rounds = argNumber('--rounds', 5);
const compressPercent = argNumber('--compress-percent', DEFAULT_COMPRESS_DUTY_PERCENT);
const values = process.argv.includes('--values') ? process.argv[process.argv.indexOf('--values') + 1]! : 'repeat';
if (values !== 'repeat' && values !== 'random') throw new Error(`--values must be repeat or random, got ${values}`);
const MIB = 1024 * 1024;
/**
 * A join's body codec as the node's Env has it: paced pieces where the build has them
 * (hypervisor/node/snapshot-body.ts), else one deflate (builds before it, run as a baseline).
 */
const joinCodec: SnapshotBodyCodec = await import('../hypervisor/node/snapshot-body.js').then(
  (m: { pacedDeflateBodies: (percent?: number) => SnapshotBodyCodec }) => m.pacedDeflateBodies(compressPercent),
  () => deflateBodies,
);

/**
 * What an operation cost the main thread, whatever the host's load: its CPU time (Linux:
 * /proc/thread-self/schedstat; elsewhere 0) and its GC pauses (gc performance entries). A gap under
 * load is mostly the runqueue's; these are ours.
 */
const gcPauses: Array<{ at: number; ms: number }> = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push({ at: e.startTime, ms: e.duration });
}).observe({ entryTypes: ['gc'] });
function mainCpuMs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return 0;
  }
}
/** GC pauses on the main thread that began in [from, to]: their sum and the longest. */
function gcIn(from: number, to: number): { ms: number; maxMs: number } {
  let ms = 0;
  let maxMs = 0;
  for (const g of gcPauses) {
    if (g.at < from || g.at > to) continue;
    ms += g.ms;
    maxMs = Math.max(maxMs, g.ms);
  }
  return { ms, maxMs };
}

const request = (method: string, url: string, body: Uint8Array = new Uint8Array()): LiveEvent => ({ kind: 'request', method, url, headers: [], body });

/** Back-to-back GETs; records every gap between completions while `recording`. */
class Traffic {
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private last = 0;
  /**
   * Completion times and gaps, in preallocated typed arrays: a growing array of objects (about 5,000
   * a second) made the client's own heap grow and its major GCs stall the traffic it measures.
   */
  private at = new Float64Array(1 << 20);
  private ms = new Float64Array(1 << 20);
  private count = 0;
  held = false;
  private resume: (() => void) | null = null;

  constructor(private readonly vm: VmHost) {}

  start(): void {
    this.running = true;
    this.last = performance.now();
    this.loop = (async () => {
      while (this.running) {
        if (this.held) await new Promise<void>((resolve) => (this.resume = resolve));
        await this.vm.run([request('GET', 'http://vm/kv/key-1')]);
        const now = performance.now();
        this.record(now, now - this.last);
        this.last = now;
      }
    })();
  }

  /** Admission paused (as the node pauses it): resolves once the request in flight completed. */
  async hold(): Promise<void> {
    this.held = true;
    const n = this.count;
    while (this.count === n) await new Promise((resolve) => setImmediate(resolve));
  }

  private record(at: number, ms: number): void {
    if (this.count === this.at.length) {
      // Grown rarely (doubling), outside any window that matters more than any other.
      const grow = (a: Float64Array) => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.at = grow(this.at);
      this.ms = grow(this.ms);
    }
    this.at[this.count] = at;
    this.ms[this.count] = ms;
    this.count++;
  }

  release(): void {
    this.held = false;
    this.resume?.();
    this.resume = null;
  }

  /**
   * The worst gap between completions that overlaps [from, to]: one that ended in it, or began in it
   * and ended after (the stall an operation's end left behind). With `startingIn`, only gaps that began
   * in it (not the one running into the window from before it).
   */
  worstGap(from: number, to: number, startingIn = false): number {
    // Completion times ascend: the first gap ending at or after `from` by bisection.
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at[mid]! < from) lo = mid + 1;
      else hi = mid;
    }
    let worst = 0;
    for (let i = lo; i < this.count; i++) {
      const began = this.at[i]! - this.ms[i]!;
      if (began > to) break; // completions ascend, and so do the starts of the gaps (each is the previous completion)
      if (startingIn && began < from) continue;
      if (this.ms[i]! > worst) worst = this.ms[i]!;
    }
    return worst;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.release();
    await this.loop;
  }
}

/** Random text values (kv.js keeps text): 64 symbols, 6 bits a byte, so deflate has real work to do (xorshift). */
const SYMBOLS = new TextEncoder().encode('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');
let seed = 0x9e3779b9;
function randomFill(bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    bytes[i] = SYMBOLS[(seed >>> 0) & 63]!;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The host's noise over a window as long as an operation's, taken right after it: the worst gap of the
 * same traffic with nothing else running (a longer window sees a worse gap on a busy host).
 */
async function quietGap(traffic: Traffic, ms: number): Promise<number> {
  const from = performance.now();
  await sleep(ms);
  const to = performance.now();
  await sleep(60);
  return traffic.worstGap(from, to);
}

/** A checkpoint's figures, one entry per round. */
interface CheckpointRounds {
  precopyMs: number[];
  pauseMs: number[];
  worstGapMs: number[];
  precopyGapMs: number[];
  afterGapMs: number[];
  writeMs: number[];
  compressMs: number[];
  compressedChunks: number[];
  pairedQuietGapMs: number[];
  mainCpuMs: number[];
  mainGcMs: number[];
  mainGcMaxMs: number[];
}

interface Row {
  sizeMiB: number;
  memoryMiB: number;
  quietWorstGapMs: number[];
  /** Worst gap over a quiet window as long as a checkpoint's write (the noise a long window sees). */
  quietLongWorstGapMs: number;
  status: { hashMs: number[]; worstGapMs: number[]; pairedQuietGapMs: number[] };
  checkpoint: CheckpointRounds;
  firstCheckpoint: CheckpointRounds;
  join: {
    precopyMs: number[];
    pauseMs: number[];
    worstGapMs: number[];
    precopyGapMs: number[];
    afterGapMs: number[];
    encodeMs: number[];
    deltaPages: number[];
    pairedQuietGapMs: number[];
    mainCpuMs: number[];
    mainGcMs: number[];
    mainGcMaxMs: number[];
  };
  /** A join without a base (a fresh backup): the whole memory compressed, with traffic. */
  fullJoin: Row['join'];
  /** The main thread's CPU and GC over quiet windows as long as each operation (the client's own share). */
  quietMain: { cpuMsPerS: number[]; gcMs: number[]; gcMaxMs: number[] };
  before: { sha256WholeMs: number; copyWholeMs: number; pageHashesWholeMs: number };
}

const checkpointRounds = (): CheckpointRounds => ({
  precopyMs: [],
  pauseMs: [],
  worstGapMs: [],
  precopyGapMs: [],
  afterGapMs: [],
  writeMs: [],
  compressMs: [],
  compressedChunks: [],
  pairedQuietGapMs: [],
  mainCpuMs: [],
  mainGcMs: [],
  mainGcMaxMs: [],
});

async function measureSize(config: BootConfig, sizeMiB: number): Promise<Row> {
  const vm = VmHost.start(config.limits);
  try {
    await vm.boot(config, 'live');
    const value = new Uint8Array(MIB).fill(0x61);
    let memoryBytes = 0;
    for (let i = 0; memoryBytes < sizeMiB * MIB; i++) {
      if (values === 'random') randomFill(value);
      value[0] = 0x41 + (i % 26);
      const reply = await vm.run([request('PUT', `http://vm/kv/big-${i}`, value)]);
      memoryBytes = reply.state.memoryBytes;
    }
    await vm.run([request('PUT', 'http://vm/kv/key-1', new TextEncoder().encode('small'))]);
    // The joiner's base: the memory as growth ended (a backup holding a checkpoint of it).
    const baseSnapshot = await vm.snapshot();
    const base = snapshotBaseOf(baseSnapshot.memory.slice());
    vm.releaseSnapshot(baseSnapshot);

    const traffic = new Traffic(vm);
    traffic.start();
    await sleep(300); // the idle slices catch up with the growth
    const row: Row = {
      sizeMiB,
      memoryMiB: Math.round((memoryBytes / MIB) * 10) / 10,
      quietWorstGapMs: [],
      quietLongWorstGapMs: 0,
      status: { hashMs: [], worstGapMs: [], pairedQuietGapMs: [] },
      checkpoint: checkpointRounds(),
      firstCheckpoint: checkpointRounds(),
      join: { precopyMs: [], pauseMs: [], worstGapMs: [], precopyGapMs: [], afterGapMs: [], encodeMs: [], deltaPages: [], pairedQuietGapMs: [], mainCpuMs: [], mainGcMs: [], mainGcMaxMs: [] },
      fullJoin: { precopyMs: [], pauseMs: [], worstGapMs: [], precopyGapMs: [], afterGapMs: [], encodeMs: [], deltaPages: [], pairedQuietGapMs: [], mainCpuMs: [], mainGcMs: [], mainGcMaxMs: [] },
      quietMain: { cpuMsPerS: [], gcMs: [], gcMaxMs: [] },
      before: { sha256WholeMs: 0, copyWholeMs: 0, pageHashesWholeMs: 0 },
    };
    const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-pauses-'));
    // As a node's Checkpointer: one compressor for all its checkpoints, the first of them taken before
    // the rounds (a node that has been checkpointing; "first checkpoint" is the cold case).
    const kept = new MemoryCompressor({ level: CHECKPOINT_COMPRESSION_LEVEL, dutyPercent: compressPercent });
    try {
      const warm = await vm.snapshot();
      try {
        await writeCheckpoint(dir, config, warm, { seq: 1_000, pos: 1, epoch: 1, node: 'bench', guestTimeMs: warm.devices.clockLastMs }, kept);
      } finally {
        vm.releaseSnapshot(warm);
      }
      await sleep(300);
      for (let r = 0; r < rounds; r++) {
        let t0 = performance.now();
        await sleep(150);
        row.quietWorstGapMs.push(traffic.worstGap(t0, performance.now()));

        t0 = performance.now();
        await vm.state(true);
        const t1 = performance.now();
        row.status.hashMs.push(t1 - t0);
        await sleep(60);
        row.status.worstGapMs.push(traffic.worstGap(t0, t1));
        row.status.pairedQuietGapMs.push(await quietGap(traffic, t1 - t0));

        for (const op of ['first checkpoint', 'checkpoint', 'join', 'full join'] as const) {
          const start = performance.now();
          const cpu0 = mainCpuMs();
          await vm.precopy();
          const precopied = performance.now();
          await traffic.hold();
          const paused = performance.now();
          const snapshot = await vm.snapshot();
          const resumed = performance.now();
          traffic.release();
          try {
            if (op === 'first checkpoint' || op === 'checkpoint') {
              const compressor = op === 'checkpoint' ? kept : new MemoryCompressor({ level: CHECKPOINT_COMPRESSION_LEVEL, dutyPercent: compressPercent });
              const written = await writeCheckpoint(dir, config, snapshot, { seq: r + 1, pos: 1, epoch: 1, node: 'bench', guestTimeMs: snapshot.devices.clockLastMs }, compressor);
              const target = op === 'checkpoint' ? row.checkpoint : row.firstCheckpoint;
              target.writeMs.push(performance.now() - resumed);
              target.compressedChunks.push(written.compressedChunks);
              target.compressMs.push(written.compressMs);
            } else {
              const data = await encodeSnapshot(snapshot, op === 'join' ? base : null, joinCodec);
              const target = op === 'join' ? row.join : row.fullJoin;
              target.encodeMs.push(performance.now() - resumed);
              target.deltaPages.push(JSON.parse(Buffer.from(data.subarray(4, 4 + Buffer.from(data).readUInt32LE(0))).toString()).pages?.length ?? 0);
            }
          } finally {
            vm.releaseSnapshot(snapshot);
          }
          const end = performance.now();
          const cpu1 = mainCpuMs();
          await sleep(60);
          const target = op === 'checkpoint' ? row.checkpoint : op === 'join' ? row.join : op === 'full join' ? row.fullJoin : row.firstCheckpoint;
          target.precopyMs.push(precopied - start);
          target.pauseMs.push(resumed - paused);
          // The pause itself, plus any gap while pre-copying or encoding/writing with traffic on.
          target.worstGapMs.push(Math.max(traffic.worstGap(start, end), resumed - paused));
          target.precopyGapMs.push(traffic.worstGap(start, precopied));
          target.afterGapMs.push(traffic.worstGap(resumed, end, true));
          const gc = gcIn(start, end);
          target.mainCpuMs.push(cpu1 - cpu0);
          target.mainGcMs.push(gc.ms);
          target.mainGcMaxMs.push(gc.maxMs);
          const q0 = performance.now();
          const qc0 = mainCpuMs();
          target.pairedQuietGapMs.push(await quietGap(traffic, end - start));
          // The quiet window's own main-thread cost (quietGap waits 60 ms more: counted in its rate).
          const q1 = performance.now();
          const qgc = gcIn(q0, q1);
          row.quietMain.cpuMsPerS.push(((mainCpuMs() - qc0) / (q1 - q0)) * 1000);
          row.quietMain.gcMs.push(qgc.ms);
          row.quietMain.gcMaxMs.push(qgc.maxMs);
          await sleep(100);
        }
      }
      const quietFrom = performance.now();
      await sleep(Math.max(1000, median(row.checkpoint.writeMs)));
      row.quietLongWorstGapMs = traffic.worstGap(quietFrom, performance.now());
    } finally {
      await traffic.stop();
      rmSync(dir, { recursive: true, force: true });
    }

    // What the code before did on the serving path, on a buffer of this size (one pass each, median of 3).
    const buffer = new Uint8Array(memoryBytes).fill(0x62);
    const time = (f: () => void) => median([0, 1, 2].map(() => ((t) => (f(), performance.now() - t))(performance.now())));
    row.before.sha256WholeMs = time(() => createHash('sha256').update(buffer).digest());
    row.before.copyWholeMs = time(() => buffer.slice());
    row.before.pageHashesWholeMs = time(() => pageHashes(buffer));
    return row;
  } finally {
    await vm.terminate();
  }
}

const config = makeBootConfig(loadGuest(projectPath('guest-apps/kv.js')), {});
const rows: Row[] = [];
for (const size of sizesMiB) rows.push(await measureSize(config, size));

const r1 = (n: number) => Math.round(n * 10) / 10;
/** A figure's median and worst over the rounds. */
const spread = (xs: number[]) => ({ median: r1(median(xs)), max: r1(Math.max(...xs)) });
const summary = rows.map((row) => ({
  memoryMiB: row.memoryMiB,
  quietWorstGapMs: r1(median(row.quietWorstGapMs)),
  quietLongWorstGapMs: r1(row.quietLongWorstGapMs),
  statusReplyMs: r1(median(row.status.hashMs)),
  statusWorstGapMs: spread(row.status.worstGapMs),
  statusPairedQuietGapMs: r1(median(row.status.pairedQuietGapMs)),
  quietMainCpuMsPerS: r1(median(row.quietMain.cpuMsPerS)),
  quietMainGcMaxMs: spread(row.quietMain.gcMaxMs),
  checkpointPauseMs: spread(row.checkpoint.pauseMs),
  checkpointMainCpuMs: r1(median(row.checkpoint.mainCpuMs)),
  checkpointMainGcMs: spread(row.checkpoint.mainGcMs),
  checkpointMainGcMaxMs: spread(row.checkpoint.mainGcMaxMs),
  checkpointWorstGapMs: spread(row.checkpoint.worstGapMs),
  checkpointPairedQuietGapMs: r1(median(row.checkpoint.pairedQuietGapMs)),
  checkpointGapDuringPrecopyMs: r1(median(row.checkpoint.precopyGapMs)),
  checkpointGapDuringWriteMs: r1(median(row.checkpoint.afterGapMs)),
  checkpointPrecopyMs: r1(median(row.checkpoint.precopyMs)),
  checkpointWriteMs: r1(median(row.checkpoint.writeMs)),
  checkpointCompressedChunks: median(row.checkpoint.compressedChunks),
  checkpointCompressMs: r1(median(row.checkpoint.compressMs)),
  firstCheckpointPauseMs: spread(row.firstCheckpoint.pauseMs),
  firstCheckpointMainCpuMs: r1(median(row.firstCheckpoint.mainCpuMs)),
  firstCheckpointMainGcMs: spread(row.firstCheckpoint.mainGcMs),
  firstCheckpointMainGcMaxMs: spread(row.firstCheckpoint.mainGcMaxMs),
  firstCheckpointWorstGapMs: spread(row.firstCheckpoint.worstGapMs),
  firstCheckpointPairedQuietGapMs: r1(median(row.firstCheckpoint.pairedQuietGapMs)),
  firstCheckpointGapDuringWriteMs: r1(median(row.firstCheckpoint.afterGapMs)),
  firstCheckpointWriteMs: r1(median(row.firstCheckpoint.writeMs)),
  firstCheckpointCompressedChunks: median(row.firstCheckpoint.compressedChunks),
  firstCheckpointCompressMs: r1(median(row.firstCheckpoint.compressMs)),
  joinPauseMs: spread(row.join.pauseMs),
  joinMainCpuMs: r1(median(row.join.mainCpuMs)),
  joinMainGcMs: spread(row.join.mainGcMs),
  joinMainGcMaxMs: spread(row.join.mainGcMaxMs),
  joinWorstGapMs: spread(row.join.worstGapMs),
  joinPairedQuietGapMs: r1(median(row.join.pairedQuietGapMs)),
  joinGapDuringPrecopyMs: r1(median(row.join.precopyGapMs)),
  joinGapDuringEncodeMs: r1(median(row.join.afterGapMs)),
  joinPrecopyMs: r1(median(row.join.precopyMs)),
  joinEncodeMs: r1(median(row.join.encodeMs)),
  joinDeltaPages: median(row.join.deltaPages),
  fullJoinPauseMs: spread(row.fullJoin.pauseMs),
  fullJoinMainCpuMs: r1(median(row.fullJoin.mainCpuMs)),
  fullJoinMainGcMaxMs: spread(row.fullJoin.mainGcMaxMs),
  fullJoinWorstGapMs: spread(row.fullJoin.worstGapMs),
  fullJoinPairedQuietGapMs: r1(median(row.fullJoin.pairedQuietGapMs)),
  fullJoinGapDuringEncodeMs: r1(median(row.fullJoin.afterGapMs)),
  fullJoinEncodeMs: r1(median(row.fullJoin.encodeMs)),
  before: { sha256WholeMs: r1(row.before.sha256WholeMs), copyWholeMs: r1(row.before.copyWholeMs), pageHashesWholeMs: r1(row.before.pageHashesWholeMs) },
}));
console.log(JSON.stringify({ rounds, compressPercent, values, rows: summary, raw: rows }, null, 1));

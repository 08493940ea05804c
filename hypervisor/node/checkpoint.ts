// Taking durable checkpoints on a live node: when (every N entries or T ms, or on demand), pausing
// admission only while the VM is copied out. The files: checkpoint-file.ts; the log between
// checkpoints: checkpoint-log.ts; restoring after both nodes were lost: checkpoint-restore.ts.

import path from 'node:path';
import type { Logger } from 'pino';
import { Kind } from '../../logging-channel/entry.js';
import type { Log } from '../../recorder/log.js';
import { traceHeaderFor } from '../vm/boot-config.js';
import type { BootConfig, Snapshot } from '../vm/vm.js';
import { DEFAULT_COMPRESS_DUTY_PERCENT, MemoryCompressor } from './checkpoint-compress.js';
import { CHECKPOINT_COMPRESSION_LEVEL, pruneCheckpoints, writeCheckpoint } from './checkpoint-file.js';
import { CheckpointLog } from './checkpoint-log.js';
import type { VmHandle as VmHost } from './env.js';
import type { LiveLoop } from './live-loop.js';

/** Checkpoints kept by default (--checkpoint-keep); older ones and the logs only they need are removed. */
export const DEFAULT_CHECKPOINT_KEEP = 3;

export interface CheckpointSettings {
  /** Directory of the checkpoint files (normally --shared-dir). */
  dir: string;
  /** Take a checkpoint once this many entries were appended since the last one. */
  everyEntries?: number;
  /** Take a checkpoint once this long has passed since the last one (if any task ran since). */
  everyMs?: number;
  /** Checkpoints kept; older ones (and the logs only they need) are removed. */
  keep: number;
  /** Percent of wall time compression may run (--checkpoint-compress-percent; checkpoint-compress.ts). */
  compressDutyPercent?: number;
}

/** Figures of the newest durable checkpoint (in /_ft/status as lastCheckpoint). */
export interface CheckpointStats {
  seq: number;
  file: string;
  /** Admission paused: from stopping admission to resuming it. */
  pauseMs: number;
  /** Part of the pause spent waiting for the batch in flight to finish. */
  waitMs: number;
  /** Part of the pause spent copying the VM out of the worker. */
  snapshotMs: number;
  /** Compress + hash + write + fsync + rename (off the hot path). */
  writeMs: number;
  compressMs: number;
  bytes: number;
  memoryBytes: number;
  takenAt: string;
}

/** What a Checkpointer needs of the live node it serves. */
export interface CheckpointHost {
  vm: VmHost;
  log: Log;
  /** The live loop (its last VM state, and a kick once admission resumes). */
  loop: () => LiveLoop | null;
  config: BootConfig;
  nodeId: string;
  epoch: () => number;
  /** May a checkpoint start now (the node is live, not claiming, halting or stopped)? */
  live: () => boolean;
  /** Called once a checkpoint at `seq` is durable (e.g. to trim in-memory history). */
  onDurable?: (seq: number) => void;
  /** Reads the newest epoch in the shared directory (null: unreachable): a fence before each write. */
  newestEpoch?: () => Promise<number | null>;
  /** Called when the directory holds a newer epoch than ours: another node owns the service now. */
  onSuperseded?: (newestEpoch: number) => void;
  logger: Logger;
}

/**
 * Takes durable checkpoints for a live node: every `everyEntries` entries or `everyMs` (when a task
 * ran since the last one), or on demand. The node's live loop must consult `paused` in its admission
 * hook. The VM is copied out between tasks while admission is paused; everything else (compress, hash,
 * write, fsync, rename, prune) happens after admission resumed.
 */
export class Checkpointer {
  /** Admission is paused while the snapshot is taken. */
  paused = false;
  readonly logFile: CheckpointLog;
  private inFlight: Promise<void> | null = null;
  private last: CheckpointStats | null = null;
  /** Seq of the newest checkpoint (durable or not yet), the base the trigger counts from. */
  private baseSeq = 0;
  private baseAtMs = performance.now();
  /** A task ran since the newest checkpoint's snapshot. */
  private dirty = false;
  private taken = 0;
  private failures = 0;
  private retryAtMs = 0;
  private closed = false;
  /** Keeps the last checkpoint's compressed pieces: the next compresses only the chunks written since. */
  private readonly compressor: MemoryCompressor;

  constructor(
    readonly settings: CheckpointSettings,
    private readonly host: CheckpointHost,
  ) {
    this.compressor = new MemoryCompressor({ level: CHECKPOINT_COMPRESSION_LEVEL, dutyPercent: settings.compressDutyPercent ?? DEFAULT_COMPRESS_DUTY_PERCENT });
    this.logFile = new CheckpointLog(settings.dir, traceHeaderFor(host.config, host.nodeId), host.logger);
    // A log that cannot be written leaves a gap: the next checkpoint starts a fresh chain, soon.
    this.logFile.onError = () => {
      this.dirty = true;
      this.retryAtMs = performance.now() + 1000;
    };
    host.log.addSink(this.logFile.sink);
    host.log.addSink((entries) => {
      if (!this.dirty) for (const e of entries) if (e.kind === Kind.TaskEnd) this.dirty = true;
      this.maybe();
    });
  }

  /** The newest durable checkpoint, or null. */
  get newest(): CheckpointStats | null {
    return this.last;
  }

  get inProgress(): boolean {
    return this.inFlight !== null;
  }

  /**
   * After a restore from the checkpoint at `baseSeq` whose log chain ran through `seq`, in the same
   * directory: the chain continues (a new log from `seq`), and the checkpoint restored from stays the
   * base until the next one.
   */
  async continueChain(baseSeq: number, seq: number, replayedTasks: number): Promise<void> {
    await this.logFile.start(seq);
    this.logFile.covered(seq);
    this.baseSeq = baseSeq;
    this.baseAtMs = performance.now();
    this.dirty = replayedTasks > 0;
  }

  /** Starts a checkpoint when one is due (call it on every tick for the time trigger). */
  maybe(nowMs = performance.now()): void {
    const s = this.settings;
    if (this.inFlight || this.closed || !this.dirty || nowMs < this.retryAtMs || !this.host.live()) return;
    const dueByEntries = s.everyEntries !== undefined && this.host.log.lastSeq - this.baseSeq >= s.everyEntries;
    const dueByTime = s.everyMs !== undefined && nowMs - this.baseAtMs >= s.everyMs;
    if (dueByEntries || dueByTime || this.logFile.error !== null) void this.now(dueByEntries ? 'entries' : dueByTime ? 'time' : 'log error');
  }

  /** Takes a checkpoint now (or joins the one in progress); resolves with the newest durable one's figures. */
  now(reason = 'requested'): Promise<CheckpointStats | null> {
    if (this.closed) return Promise.resolve(this.last);
    if (!this.inFlight) {
      this.inFlight = this.take(reason).finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight.then(() => this.last);
  }

  private async take(reason: string): Promise<void> {
    const { host, settings } = this;
    const { logger } = host;
    // Pre-copy while serving goes on (hypervisor/vm/memory-tracker.ts): the pause copies only what was written since.
    await host.vm.precopy?.().catch(() => {});
    const t0 = performance.now();
    let phase = 'snapshot';
    let leased: Snapshot | null = null;
    try {
      // Pause admission; the batch in flight finishes (the worker answers in order), then the VM is
      // copied out between tasks. The seq it corresponds to is the log's last seq at that moment.
      this.paused = true;
      let snapshot: Snapshot;
      let seq: number;
      let pos: number;
      let waitMs: number;
      let snapshotMs: number;
      let rolled: Promise<void>;
      try {
        await host.vm.state(false);
        const t1 = performance.now();
        snapshot = await host.vm.snapshot();
        leased = snapshot;
        const t2 = performance.now();
        const known = host.loop()?.vmState;
        if (known && known.tasks !== snapshot.devices.tasks) throw new Error(`the snapshot is at task ${snapshot.devices.tasks} but the log at task ${known.tasks}`);
        seq = host.log.lastSeq;
        pos = host.log.pos;
        rolled = this.logFile.roll(seq);
        this.dirty = false;
        this.baseSeq = seq;
        this.baseAtMs = t0;
        waitMs = t1 - t0;
        snapshotMs = t2 - t1;
      } finally {
        this.paused = false;
        if (!this.closed) host.loop()?.kick();
      }
      const pauseMs = performance.now() - t0;
      phase = 'log';
      await rolled;
      phase = 'epoch check';
      const epoch = host.epoch();
      const newest = host.newestEpoch ? await host.newestEpoch() : null;
      if (newest !== null && newest > epoch) {
        logger.error({ epoch, newestEpoch: newest }, `not writing checkpoint at seq ${seq}: the shared directory holds epoch ${newest}, newer than this node's ${epoch}`);
        host.onSuperseded?.(newest);
        return;
      }
      phase = 'write';
      const meta = { seq, pos, epoch, node: host.nodeId, guestTimeMs: snapshot.devices.clockLastMs };
      const written = await writeCheckpoint(settings.dir, host.config, snapshot, meta, this.compressor);
      this.logFile.covered(seq);
      this.taken++;
      this.last = {
        seq,
        file: written.file,
        pauseMs: round2(pauseMs),
        waitMs: round2(waitMs),
        snapshotMs: round2(snapshotMs),
        writeMs: round2(written.totalMs),
        compressMs: round2(written.compressMs),
        bytes: written.bytes,
        memoryBytes: written.memoryBytes,
        takenAt: new Date().toISOString(),
      };
      logger.info(
        { reason, ...this.last, hashMs: round2(written.hashMs), syncMs: round2(written.syncMs), compressedChunks: written.compressedChunks, reusedChunks: written.reusedChunks },
        `checkpoint at seq ${seq} durable: ${path.basename(written.file)} (${(written.bytes / 1048576).toFixed(1)} MiB of ${(written.memoryBytes / 1048576).toFixed(1)} MiB memory; paused ${pauseMs.toFixed(1)} ms, written in ${written.totalMs.toFixed(0)} ms)`,
      );
      phase = 'prune';
      const removed = await pruneCheckpoints(settings.dir, settings.keep);
      if (removed.length > 0) logger.debug({ removed: removed.map((f) => path.basename(f)) }, `pruned ${removed.length} old checkpoint files (--checkpoint-keep ${settings.keep})`);
      host.onDurable?.(seq);
    } catch (error) {
      this.failures++;
      this.dirty = true;
      const retryMs = Math.max(1000, settings.everyMs ?? 0);
      this.retryAtMs = performance.now() + retryMs;
      logger.error({ err: error, phase, dir: settings.dir }, `checkpoint failed (${phase}): ${(error as Error).message}; retrying in ${retryMs} ms`);
    } finally {
      if (leased) host.vm.releaseSnapshot?.(leased);
    }
  }

  status(): Record<string, unknown> {
    return {
      dir: this.settings.dir,
      everyEntries: this.settings.everyEntries ?? null,
      everyMs: this.settings.everyMs ?? null,
      keep: this.settings.keep,
      compressPercent: this.compressor.dutyPercent,
      taken: this.taken,
      failures: this.failures,
      inProgress: this.inFlight !== null,
      log: this.logFile.file,
      logError: this.logFile.error,
      // Entries through logWrittenSeq are in checkpoint files or written to the log (they survive the
      // process); through logSyncedSeq they are also fsynced (they survive the machine).
      logWrittenSeq: this.logFile.writtenSeq,
      logSyncedSeq: this.logFile.syncedSeq,
    };
  }

  /** Lets a checkpoint in progress finish, then writes out, fsyncs and closes the log. */
  async close(): Promise<void> {
    this.closed = true;
    await this.inFlight?.catch(() => {});
    await this.logFile.close();
  }
}

function round2(ms: number): number {
  return Math.round(ms * 100) / 100;
}

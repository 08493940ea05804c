// Durable checkpoints: a snapshot of the VM plus the log since it, in a directory (normally the pair's
// shared directory), so the service can come back after BOTH nodes were lost.
//
// Files:
//   checkpoint-<seq, 12 digits>.ftck   the VM at `seq` (a task boundary)
//     "FTJSCKP2" | u32 header length | header JSON | u32 CRC-32 of the bytes before it
//     | VM memory, deflate-raw (level 1) | u32 CRC-32 of every byte before it
//     Written to a temporary name, fsynced, renamed, then the directory is fsynced: a crash leaves
//     either the whole file under its name or nothing under its name.
//   log-<seq, 12 digits>.trace         the log after `seq`: a trace file whose first entry is seq + 1
//     (TraceWriter with firstSeq), appended and written once per tick like every other trace sink,
//     and fsynced in the background (group commit: one fsync in flight at a time).
//
// Logs form a chain: when a checkpoint is taken at S, the current log is closed exactly at S and
// log-S starts at S + 1. So a restore from ANY kept checkpoint C replays log-C, then every later log,
// and a corrupt newest checkpoint costs nothing but replay time. A log is read only up to the seq
// before the next log starts (after a restore, the next log supersedes an unfinished tail).
//
// The last log may end with a torn block (a crash mid-write): it is read up to the last whole block
// and an unfinished final task is dropped (its outputs were released, if at all, only after its
// entries were appended — see the durability contract in README.md).

import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32, deflateRaw, inflateRaw } from 'node:zlib';
import type { Logger } from 'pino';
import { decodeEpochMark } from '../../logging-channel/codec.js';
import { type Entry, Kind } from '../../logging-channel/entry.js';
import { openTraceReader, type TraceHeader, TraceWriter } from '../../logging-channel/trace-file.js';
import type { Log } from '../../recorder/log.js';
import { type Assembled, TaskAssembler } from '../../replayer/task-assembler.js';
import { bootConfigFromTrace, traceHeaderFor } from '../vm/boot-config.js';
import { ENGINE_NAME, ENGINE_VERSION } from '../vm/engine.js';
import { fullStateHashAsync } from '../vm/state-hash.js';
import type { BootConfig, DeviceState, Snapshot } from '../vm/vm.js';
import type { VmHandle as VmHost } from './env.js';
import type { LiveLoop } from './live-loop.js';

// Format 2: the state hash is state-hash.ts's page-hash tree (format 1 hashed the memory in one pass).
export const CHECKPOINT_MAGIC = 'FTJSCKP2';
export const CHECKPOINT_FORMAT_VERSION = 2;
/** Checkpoints kept by default (--checkpoint-keep); older ones and the logs only they need are removed. */
export const DEFAULT_CHECKPOINT_KEEP = 3;
/** zlib level for the memory image: level 1 is several times faster than 6 for a few % more bytes. */
export const CHECKPOINT_COMPRESSION_LEVEL = 1;
/** A temporary checkpoint file older than this is left over from a crash and is removed when pruning. */
const STALE_TEMP_MS = 60_000;
/** Upper bound on a checkpoint's header JSON. */
const MAX_HEADER_BYTES = 64 * 1024 * 1024;
/** Tasks handed to the replaying worker per message during a restore. */
const RESTORE_BATCH_TASKS = 64;
const MAGIC = Buffer.from(CHECKPOINT_MAGIC, 'latin1');
const MAGIC_FAMILY = 7; // "FTJSCKP" without the version digit
const PREFIX_BYTES = MAGIC.byteLength + 4;
const CHECKPOINT_FILE = /^checkpoint-(\d{12})\.ftck$/;
const LOG_FILE = /^log-(\d{12})\.trace$/;
const TEMP_FILE = /^checkpoint-\d{12}\.ftck\.tmp-/;

const deflateRawAsync = promisify(deflateRaw);
const inflateRawAsync = promisify(inflateRaw);

export interface CheckpointHeader {
  formatVersion: typeof CHECKPOINT_FORMAT_VERSION;
  /** The VM state is the state after entry `seq` (a task boundary). */
  seq: number;
  pos: number;
  epoch: number;
  node: string;
  /** ISO-8601 wall-clock time of the snapshot. */
  takenAt: string;
  /** The time the guest last saw (its clock), ms since the epoch. */
  guestTimeMs: number;
  guestHash: string;
  /** State hash over memory + device tables, exactly as Vm.stateHash() (state-hash.ts): a restore must reproduce it. */
  stateHash: string;
  /** `${ENGINE_NAME}@${ENGINE_VERSION}` of the snapshot. */
  snapshotEngine: string;
  /** Engine, guest sources and boot config (env, limits, glue), as in a trace header. */
  boot: TraceHeader;
  devices: DeviceState;
  memory: { bytes: number; encoding: 'deflate-raw'; level: number; compressedBytes: number };
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

export class RestoreError extends Error {
  override name = 'RestoreError';
}

export function checkpointFileName(seq: number): string {
  return `checkpoint-${seqDigits(seq)}.ftck`;
}

export function logFileName(afterSeq: number): string {
  return `log-${seqDigits(afterSeq)}.trace`;
}

function seqDigits(seq: number): string {
  if (!Number.isSafeInteger(seq) || seq < 0 || seq > 999_999_999_999) throw new RangeError(`bad checkpoint seq ${seq}`);
  return String(seq).padStart(12, '0');
}

export interface CheckpointFile {
  seq: number;
  file: string;
}

/** Checkpoint files in `dir`, newest (highest seq) first. Names only: nothing is verified. */
export async function listCheckpoints(dir: string): Promise<CheckpointFile[]> {
  return (await listMatching(dir, CHECKPOINT_FILE)).sort((a, b) => b.seq - a.seq);
}

/** Log files in `dir`, oldest first; `seq` is the seq each one continues after. */
export async function listLogs(dir: string): Promise<CheckpointFile[]> {
  return (await listMatching(dir, LOG_FILE)).sort((a, b) => a.seq - b.seq);
}

async function listMatching(dir: string, pattern: RegExp): Promise<CheckpointFile[]> {
  const out: CheckpointFile[] = [];
  for (const name of await fsp.readdir(dir)) {
    const m = pattern.exec(name);
    if (m) out.push({ seq: Number(m[1]), file: path.join(dir, name) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface CheckpointMeta {
  seq: number;
  pos: number;
  epoch: number;
  node: string;
  guestTimeMs: number;
}

export interface WrittenCheckpoint {
  file: string;
  /** Bytes of the checkpoint file. */
  bytes: number;
  memoryBytes: number;
  compressMs: number;
  hashMs: number;
  /** Write + fsync + rename + directory fsync. */
  syncMs: number;
  /** All of it, from the snapshot in hand to the file durable under its name. */
  totalMs: number;
  stateHash: string;
}

/**
 * Writes a checkpoint of `snapshot` (the VM after entry `meta.seq`) into `dir`, durably: compressed
 * and hashed off the main thread's hot path, written to a temporary name, fsynced, renamed, and the
 * directory fsynced. Returns once the file is durable under its final name.
 */
export async function writeCheckpoint(dir: string, config: BootConfig, snapshot: Snapshot, meta: CheckpointMeta, level = CHECKPOINT_COMPRESSION_LEVEL): Promise<WrittenCheckpoint> {
  const t0 = performance.now();
  // Compressed on the libuv threadpool, in large chunks (fewer round trips to the main thread).
  const compressed = await deflateRawAsync(snapshot.memory, { level, chunkSize: 1024 * 1024 });
  const t1 = performance.now();
  // A VM's snapshot carries its state hash (kept up to date page by page): no pass over the memory here.
  const stateHash = snapshot.stateHash ?? (await snapshotStateHash(snapshot));
  const t2 = performance.now();
  const header: CheckpointHeader = {
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    seq: meta.seq,
    pos: meta.pos,
    epoch: meta.epoch,
    node: meta.node,
    takenAt: new Date().toISOString(),
    guestTimeMs: meta.guestTimeMs,
    guestHash: config.guestHash,
    stateHash,
    snapshotEngine: snapshot.engine,
    boot: traceHeaderFor(config, meta.node),
    devices: snapshot.devices,
    memory: { bytes: snapshot.memory.byteLength, encoding: 'deflate-raw', level, compressedBytes: compressed.byteLength },
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(PREFIX_BYTES);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(json.byteLength, MAGIC.byteLength);
  const headerCrc = Buffer.alloc(4);
  headerCrc.writeUInt32LE(crc32(json, crc32(prefix)), 0);
  const trailer = Buffer.alloc(4);
  trailer.writeUInt32LE(crc32(compressed, crc32(headerCrc, crc32(json, crc32(prefix)))), 0);
  const parts = [prefix, json, headerCrc, compressed, trailer];
  const bytes = parts.reduce((n, p) => n + p.byteLength, 0);

  const file = path.join(dir, checkpointFileName(meta.seq));
  const temp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const handle = await fsp.open(temp, 'wx');
  try {
    let at = 0;
    for (const part of parts) {
      for (let done = 0; done < part.byteLength; ) {
        const { bytesWritten } = await handle.write(part, done, part.byteLength - done, at);
        done += bytesWritten;
        at += bytesWritten;
      }
    }
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    await fsp.unlink(temp).catch(() => {});
    throw error;
  }
  await handle.close();
  try {
    await fsp.rename(temp, file);
  } catch (error) {
    await fsp.unlink(temp).catch(() => {});
    throw error;
  }
  await syncDirectory(dir);
  const t3 = performance.now();
  return { file, bytes, memoryBytes: snapshot.memory.byteLength, compressMs: t1 - t0, hashMs: t2 - t1, syncMs: t3 - t2, totalMs: t3 - t0, stateHash };
}

/** The state hash over memory + device tables, as Vm.stateHash() computes it (state-hash.ts), yielding between slices. */
export async function snapshotStateHash(snapshot: Snapshot): Promise<string> {
  return fullStateHashAsync(snapshot.memory, JSON.stringify(snapshot.devices));
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic there.
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL' && (error as NodeJS.ErrnoException).code !== 'EISDIR') throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Removes checkpoints beyond the newest `keep`, the logs only they needed, and temporary files left
 * by a crashed write. Returns the files removed.
 */
export async function pruneCheckpoints(dir: string, keep: number): Promise<string[]> {
  const removed: string[] = [];
  const checkpoints = await listCheckpoints(dir);
  if (checkpoints.length > keep) {
    for (const old of checkpoints.slice(keep)) {
      await fsp.unlink(old.file).catch(() => {});
      removed.push(old.file);
    }
  }
  const kept = checkpoints.slice(0, keep);
  if (kept.length > 0) {
    // A log is needed by a kept checkpoint unless a later log starts at or before that checkpoint.
    const oldest = kept[kept.length - 1]!.seq;
    const logs = await listLogs(dir);
    for (let i = 0; i + 1 < logs.length; i++) {
      if (logs[i]!.seq < oldest && logs[i + 1]!.seq <= oldest) {
        await fsp.unlink(logs[i]!.file).catch(() => {});
        removed.push(logs[i]!.file);
      }
    }
  }
  const now = Date.now();
  for (const name of await fsp.readdir(dir)) {
    if (!TEMP_FILE.test(name)) continue;
    const file = path.join(dir, name);
    const stat = await fsp.stat(file).catch(() => null);
    if (stat && now - stat.mtimeMs > STALE_TEMP_MS) {
      await fsp.unlink(file).catch(() => {});
      removed.push(file);
    }
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// The log since the newest checkpoint

/**
 * A log sink that writes the entries after the newest checkpoint to `log-<seq>.trace`: appended
 * as they come, written once per tick, fsynced in the background. `roll(S)` closes the current log
 * exactly at S (call it synchronously when a checkpoint's seq is fixed) and starts log-S.
 */
export class CheckpointLog {
  private current: { writer: TraceWriter; file: string; sync: fsp.FileHandle } | null = null;
  /** Set between roll() and the new file being open: entries wait here, in order. */
  private pending: { afterSeq: number; backlog: Entry[] } | null = null;
  private flushQueued = false;
  private syncing = false;
  private closed = false;
  private opening: Promise<void> = Promise.resolve();
  /** Every entry through this seq is written to the log files (survives the process dying). */
  writtenSeq = 0;
  /** Every entry through this seq is fsynced (survives the machine losing power). */
  syncedSeq = 0;
  /** Set when the log cannot be written: the chain has a gap until the next checkpoint. */
  error: string | null = null;
  /** Called once per failure (the node takes a checkpoint to start a fresh chain). */
  onError: (message: string) => void = () => {};

  constructor(
    readonly dir: string,
    private readonly header: TraceHeader,
    private readonly logger: Logger,
  ) {}

  /** The file being appended now, if any. */
  get file(): string | null {
    return this.current?.file ?? null;
  }

  readonly sink = (entries: readonly Entry[]): void => {
    if (this.closed) return;
    if (this.pending) {
      for (const e of entries) this.pending.backlog.push(e);
      return;
    }
    const current = this.current;
    if (!current) return;
    try {
      current.writer.append(entries);
    } catch (error) {
      this.fail(`cannot append to ${current.file}: ${(error as Error).message}`);
      return;
    }
    this.queueFlush();
  };

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      const current = this.current;
      if (!current || this.closed) return;
      try {
        current.writer.flush();
      } catch (error) {
        this.fail(`cannot write ${current.file}: ${(error as Error).message}`);
        return;
      }
      this.writtenSeq = current.writer.nextSeq - 1;
      this.queueSync();
    });
  }

  /** One fsync in flight at a time; whatever was written meanwhile goes with the next one. */
  private queueSync(): void {
    const current = this.current;
    if (this.syncing || !current || this.syncedSeq >= this.writtenSeq) return;
    this.syncing = true;
    const target = this.writtenSeq;
    current.sync.sync().then(
      () => {
        this.syncing = false;
        if (this.current === current) this.syncedSeq = Math.max(this.syncedSeq, target);
        this.queueSync();
      },
      (error: Error) => {
        this.syncing = false;
        if (this.current === current) this.fail(`cannot fsync ${current.file}: ${error.message}`);
      },
    );
  }

  private fail(message: string): void {
    if (this.error === message) return;
    this.error = message;
    this.logger.error({ dir: this.dir }, `checkpoint log: ${message}; the durable log has a gap until the next checkpoint`);
    const current = this.current;
    this.current = null;
    if (current) {
      try {
        current.writer.close();
      } catch {
        /* already broken */
      }
      void current.sync.close().catch(() => {});
    }
    this.onError(message);
  }

  /** Starts the log after `afterSeq` (no current log: after a restore, or before the first checkpoint). */
  start(afterSeq: number): Promise<void> {
    return this.roll(afterSeq);
  }

  /**
   * The checkpoint is at `afterSeq`: every entry through it has been appended. The current log is
   * written out now (synchronously) and closes there; later entries go to log-<afterSeq>. Resolves
   * once the new log is open and the old one is fsynced and closed.
   */
  roll(afterSeq: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    const old = this.current;
    if (old) {
      try {
        old.writer.flush();
        this.writtenSeq = old.writer.nextSeq - 1;
      } catch (error) {
        this.fail(`cannot write ${old.file}: ${(error as Error).message}`);
      }
    }
    const closing = this.current; // null if fail() above already closed it
    this.current = null;
    const pending = { afterSeq, backlog: [] as Entry[] };
    this.pending = pending;
    const file = path.join(this.dir, logFileName(afterSeq));
    this.opening = (async () => {
      // Creating the file writes and fsyncs its header synchronously: not inside the caller's pause.
      await new Promise((resolve) => setImmediate(resolve));
      let writer: TraceWriter | null = null;
      let sync: fsp.FileHandle | null = null;
      try {
        writer = await TraceWriter.open(file, this.header, { firstSeq: afterSeq + 1 });
        // fsync through a second handle, off the main thread (fsync is per file, not per handle).
        sync = await fsp.open(file, 'r+');
      } catch (error) {
        if (this.pending === pending) this.pending = null;
        try {
          writer?.close();
        } catch {
          /* nothing more to do */
        }
        await sync?.close().catch(() => {});
        if (closing) await this.closeOld(closing, afterSeq);
        this.fail(`cannot start ${file}: ${(error as Error).message}`);
        return;
      }
      // The old log ends at afterSeq: durable and closed before anything of the new one counts.
      if (closing) await this.closeOld(closing, afterSeq);
      if (this.pending !== pending || this.closed) {
        writer.close();
        await sync.close();
        return;
      }
      try {
        if (pending.backlog.length > 0) writer.append(pending.backlog);
      } catch (error) {
        this.pending = null;
        writer.close();
        await sync.close();
        this.fail(`cannot append to ${file}: ${(error as Error).message}`);
        return;
      }
      this.pending = null;
      this.current = { writer, file, sync };
      this.error = null;
      this.queueFlush();
    })();
    return this.opening;
  }

  private async closeOld(old: { writer: TraceWriter; file: string; sync: fsp.FileHandle }, endSeq: number): Promise<void> {
    try {
      await old.sync.sync();
      old.writer.close();
      if (this.syncedSeq < endSeq) this.syncedSeq = endSeq;
    } catch (error) {
      this.logger.error({ file: old.file }, `checkpoint log: cannot close ${old.file}: ${(error as Error).message}`);
    }
    await old.sync.close().catch(() => {});
  }

  /** Entries through `seq` are durable elsewhere (a checkpoint, or the logs a restore read). */
  covered(seq: number): void {
    if (this.writtenSeq < seq) this.writtenSeq = seq;
    if (this.syncedSeq < seq) this.syncedSeq = seq;
  }

  /** Writes out, fsyncs and closes the current log. */
  async close(): Promise<void> {
    await this.opening;
    if (this.closed) return;
    this.closed = true;
    const current = this.current;
    this.current = null;
    if (!current) return;
    try {
      current.writer.close(); // flush + fsync + close
      this.writtenSeq = current.writer.nextSeq - 1;
      this.syncedSeq = this.writtenSeq;
    } catch (error) {
      this.logger.error({ file: current.file }, `checkpoint log: cannot close ${current.file}: ${(error as Error).message}`);
    }
    await current.sync.close().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Taking checkpoints on a live node

export interface CheckpointSettings {
  /** Directory of the checkpoint files (normally --shared-dir). */
  dir: string;
  /** Take a checkpoint once this many entries were appended since the last one. */
  everyEntries?: number;
  /** Take a checkpoint once this long has passed since the last one (if any task ran since). */
  everyMs?: number;
  /** Checkpoints kept; older ones (and the logs only they need) are removed. */
  keep: number;
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

  constructor(
    readonly settings: CheckpointSettings,
    private readonly host: CheckpointHost,
  ) {
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
      const written = await writeCheckpoint(settings.dir, host.config, snapshot, { seq, pos, epoch, node: host.nodeId, guestTimeMs: snapshot.devices.clockLastMs });
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
        { reason, ...this.last, hashMs: round2(written.hashMs), syncMs: round2(written.syncMs) },
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

// ---------------------------------------------------------------------------------------------
// Reading and restoring

export interface LoadedCheckpoint {
  file: string;
  header: CheckpointHeader;
  config: BootConfig;
  snapshot: Snapshot;
  bytes: number;
}

/** Reads and verifies one checkpoint file; every problem is a CheckpointError naming the file. */
export async function readCheckpoint(file: string): Promise<LoadedCheckpoint> {
  const fail = (problem: string): never => {
    throw new CheckpointError(file, problem);
  };
  let data: Buffer;
  try {
    data = await fsp.readFile(file);
  } catch (error) {
    return fail(`cannot read: ${(error as Error).message}`);
  }
  const size = data.byteLength;
  const family = Math.min(size, MAGIC_FAMILY);
  if (!data.subarray(0, family).equals(MAGIC.subarray(0, family))) fail(`not a checkpoint file (it does not start with "${CHECKPOINT_MAGIC}")`);
  if (size < PREFIX_BYTES) fail(`truncated: the file has only ${size} bytes (a partly written checkpoint)`);
  if (data[MAGIC_FAMILY] !== MAGIC[MAGIC_FAMILY]) fail(`checkpoint format "${String.fromCharCode(data[MAGIC_FAMILY]!)}" is not supported (this build reads format ${CHECKPOINT_FORMAT_VERSION})`);
  const jsonLength = data.readUInt32LE(MAGIC.byteLength);
  if (jsonLength > MAX_HEADER_BYTES) fail(`corrupt header: it declares ${jsonLength} bytes of JSON`);
  const headerEnd = PREFIX_BYTES + jsonLength + 4;
  if (headerEnd > size) fail(`truncated: the header needs ${headerEnd} bytes, the file has ${size} (a partly written checkpoint)`);
  const storedHeaderCrc = data.readUInt32LE(headerEnd - 4);
  const headerCrc = crc32(data.subarray(0, headerEnd - 4));
  if (storedHeaderCrc !== headerCrc) fail(`corrupt header: checksum mismatch (stored 0x${hex32(storedHeaderCrc)}, computed 0x${hex32(headerCrc)})`);
  let header: CheckpointHeader;
  try {
    header = JSON.parse(data.subarray(PREFIX_BYTES, headerEnd - 4).toString('utf8')) as CheckpointHeader;
  } catch (error) {
    return fail(`corrupt header: invalid JSON: ${(error as Error).message}`);
  }
  const problem = headerProblem(header);
  if (problem) fail(`corrupt header: ${problem}`);
  const expected = headerEnd + header.memory.compressedBytes + 4;
  if (size < expected) fail(`truncated: the file has ${size} bytes, its header declares ${expected} (a partly written checkpoint)`);
  if (size > expected) fail(`corrupt: the file has ${size} bytes, its header declares ${expected}`);
  const stored = data.readUInt32LE(size - 4);
  const computed = crc32(data.subarray(0, size - 4));
  if (stored !== computed) fail(`corrupt: checksum mismatch over the memory image (stored 0x${hex32(stored)}, computed 0x${hex32(computed)})`);
  const named = /checkpoint-(\d{12})\.ftck$/.exec(path.basename(file));
  if (named && Number(named[1]) !== header.seq) fail(`corrupt: named for seq ${Number(named[1])} but holds seq ${header.seq}`);
  const engine = `${ENGINE_NAME}@${ENGINE_VERSION}`;
  if (header.snapshotEngine !== engine) fail(`taken with engine ${header.snapshotEngine}; this ftjs runs ${engine} and cannot restore it`);
  let config: BootConfig;
  try {
    config = bootConfigFromTrace(header.boot, 'boot config');
  } catch (error) {
    return fail((error as Error).message);
  }
  if (config.guestHash !== header.guestHash) fail(`corrupt header: guest hash ${header.guestHash.slice(0, 12)}… differs from its boot config's ${config.guestHash.slice(0, 12)}…`);
  let memory: Buffer;
  try {
    memory = await inflateRawAsync(data.subarray(headerEnd, size - 4));
  } catch (error) {
    return fail(`corrupt: the memory image does not decompress: ${(error as Error).message}`);
  }
  if (memory.byteLength !== header.memory.bytes) fail(`corrupt: the memory image is ${memory.byteLength} bytes, the header says ${header.memory.bytes}`);
  const snapshot: Snapshot = {
    engine: header.snapshotEngine,
    guestHash: header.guestHash,
    memory: new Uint8Array(memory.buffer, memory.byteOffset, memory.byteLength),
    devices: header.devices,
  };
  // The CRCs catch damage; an edit with its CRCs recomputed changes the state the header vouches for.
  const stateHash = await snapshotStateHash(snapshot);
  if (stateHash !== header.stateHash) fail(`corrupt: the memory and device tables hash to ${stateHash.slice(0, 12)}…, the header says ${header.stateHash.slice(0, 12)}…`);
  return { file, header, config, snapshot, bytes: size };
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function headerProblem(h: CheckpointHeader): string | null {
  if (typeof h !== 'object' || h === null) return 'not an object';
  if (h.formatVersion !== CHECKPOINT_FORMAT_VERSION) return `formatVersion ${JSON.stringify(h.formatVersion)} is not supported (this build reads ${CHECKPOINT_FORMAT_VERSION})`;
  for (const key of ['seq', 'pos', 'epoch'] as const) if (!Number.isSafeInteger(h[key]) || h[key] < 0) return `${key} is not a non-negative integer`;
  if (typeof h.stateHash !== 'string' || typeof h.guestHash !== 'string' || typeof h.snapshotEngine !== 'string') return 'missing stateHash, guestHash or snapshotEngine';
  if (typeof h.boot !== 'object' || h.boot === null || typeof h.devices !== 'object' || h.devices === null) return 'missing boot config or device tables';
  const m = h.memory;
  if (typeof m !== 'object' || m === null || m.encoding !== 'deflate-raw' || !Number.isSafeInteger(m.bytes) || !Number.isSafeInteger(m.compressedBytes) || m.compressedBytes < 0)
    return 'bad memory description';
  return null;
}

export interface SkippedCheckpoint {
  file: string;
  problem: string;
}

/**
 * The newest checkpoint in `dir` that reads and verifies. Each one skipped is logged (error level)
 * with the file and what is wrong, and returned in `skipped`. Throws RestoreError when none is good.
 */
export async function newestValidCheckpoint(dir: string, logger: Logger): Promise<LoadedCheckpoint & { skipped: SkippedCheckpoint[] }> {
  let files: CheckpointFile[];
  try {
    files = await listCheckpoints(dir);
  } catch (error) {
    throw new RestoreError(`--restore-from ${dir}: cannot list the directory: ${(error as Error).message}`);
  }
  if (files.length === 0) throw new RestoreError(`--restore-from ${dir}: no checkpoint files (checkpoint-<seq>.ftck) there`);
  const skipped: SkippedCheckpoint[] = [];
  for (const { file } of files) {
    try {
      const loaded = await readCheckpoint(file);
      return { ...loaded, skipped };
    } catch (error) {
      const problem = error instanceof CheckpointError ? error.problem : (error as Error).message;
      skipped.push({ file, problem });
      const older = files.length > skipped.length;
      logger.error({ file, problem }, `skipping checkpoint ${file}: ${problem}; ${older ? 'trying the previous one' : 'no older checkpoint left'}`);
    }
  }
  throw new RestoreError(`--restore-from ${dir}: no valid checkpoint: ${skipped.map((s) => `${path.basename(s.file)}: ${s.problem}`).join('; ')}`);
}

export interface ChainReplay {
  /** The last entry restored (a task's end or a control entry): the durable end of the log. */
  seq: number;
  pos: number;
  /** Entries and tasks replayed on top of the checkpoint. */
  entries: number;
  tasks: number;
  /** The guest's clock at the durable end, ms since the epoch. */
  guestTimeMs: number;
  /** Logs read, in order. */
  logs: string[];
  /** The newest Epoch mark seen (the epoch the service was in when it was lost). */
  lastEpoch: { epoch: number; nodeId: string } | null;
  /** Why the chain stopped before the end of the newest log (a gap or damage), if it did. */
  broken: string | null;
  /** Entries of an unfinished final task, dropped. */
  droppedEntries: number;
  /** A torn final block at the end of the last log read. */
  torn: { file: string; atOffset: number; reason: string } | null;
  /** Modification time of the last log read: when its last write landed. */
  lastWriteAt: string | null;
}

/**
 * Replays onto `vm` (booted in replay mode from the checkpoint at `base`) every whole task of the log
 * chain after it. Divergence is fatal (RestoreError); a gap or damage ends the chain there (reported
 * in `broken`); a torn tail and an unfinished final task are dropped (reported).
 */
export async function replayLogChain(dir: string, vm: VmHost, base: { seq: number; pos: number; guestTimeMs: number }, guestHash: string): Promise<ChainReplay> {
  const result: ChainReplay = {
    seq: base.seq,
    pos: base.pos,
    entries: 0,
    tasks: 0,
    guestTimeMs: base.guestTimeMs,
    logs: [],
    lastEpoch: null,
    broken: null,
    droppedEntries: 0,
    torn: null,
    lastWriteAt: null,
  };
  const logs = await listLogs(dir);
  let start = -1;
  for (let i = 0; i < logs.length; i++) if (logs[i]!.seq <= base.seq) start = i;
  if (start < 0) {
    if (logs.some((l) => l.seq > base.seq)) result.broken = `no log continues after seq ${base.seq} (the first log after it, ${path.basename(logs.find((l) => l.seq > base.seq)!.file)}, starts later)`;
    return result;
  }
  let seen = base.seq;
  let queue: Assembled[] = [];
  let queuedTasks = 0;

  const flush = async (): Promise<void> => {
    if (queue.length === 0) return;
    const items = queue;
    queue = [];
    queuedTasks = 0;
    const tasks = items.filter((i): i is Extract<Assembled, { type: 'task' }> => i.type === 'task').map((i) => i.entries);
    const reply = tasks.length > 0 ? await vm.replay(tasks) : null;
    let t = 0;
    for (const item of items) {
      if (item.type === 'task') {
        const r = reply!.results[t++]!;
        if (r.divergence) {
          const d = r.divergence;
          throw new RestoreError(`the log does not replay on its checkpoint: divergence at seq ${d.seq} (pos ${d.pos}, ${d.expectedKind}): expected ${d.expected}, got ${d.actual}`);
        }
        result.seq = item.entries[item.entries.length - 1]!.seq;
        result.pos = r.pos;
        result.entries += item.entries.length;
        result.tasks++;
      } else {
        const e = item.entry;
        if (e.kind === Kind.Epoch) {
          try {
            result.lastEpoch = decodeEpochMark(e.payload);
          } catch {
            /* a malformed mark does not change the VM */
          }
        }
        result.seq = e.seq;
        result.pos = Math.max(result.pos, e.pos);
        result.entries++;
      }
    }
    if (reply) result.guestTimeMs = reply.state.guestTimeMs;
  };

  for (let i = start; i < logs.length; i++) {
    const log = logs[i]!;
    const name = path.basename(log.file);
    const limit = i + 1 < logs.length ? logs[i + 1]!.seq : Number.POSITIVE_INFINITY;
    if (log.seq > seen) {
      result.broken = `${name} starts at seq ${log.seq + 1}, but the log before it ends at seq ${seen}: the entries between are missing`;
      break;
    }
    const assembler = new TaskAssembler(name);
    let problem: string | null = null;
    let reader: Awaited<ReturnType<typeof openTraceReader>> | null = null;
    try {
      reader = await openTraceReader(log.file, { lenient: true });
      if (reader.header.guest.hash !== guestHash) throw new Error(`${name} holds another guest (${reader.header.guest.hash.slice(0, 12)}…)`);
      result.logs.push(log.file);
      result.lastWriteAt = (await fsp.stat(log.file)).mtime.toISOString();
      let first = true;
      outer: for await (const block of reader) {
        if (first && block.firstSeq !== log.seq + 1) throw new Error(`${name}: its first entry is seq ${block.firstSeq}, its name says ${log.seq + 1}`);
        first = false;
        for (const entry of block.entries) {
          if (entry.seq <= seen) continue; // already in the checkpoint
          if (entry.seq > limit) break outer; // the next log takes over from here
          if (entry.seq !== seen + 1) throw new Error(`${name}: seq gap: expected ${seen + 1}, found ${entry.seq}`);
          seen = entry.seq;
          assembler.push(entry, queue);
          if (entry.kind === Kind.TaskEnd && ++queuedTasks >= RESTORE_BATCH_TASKS) await flush();
        }
      }
      if (reader.truncated) result.torn = { file: log.file, atOffset: reader.truncated.atOffset, reason: reader.truncated.reason };
    } catch (error) {
      if (error instanceof RestoreError) throw error;
      problem = (error as Error).message;
    } finally {
      await reader?.close();
    }
    await flush();
    const open = assembler.openTaskSeq;
    if (open !== null) result.droppedEntries = seen - open + 1;
    if (problem !== null) {
      result.broken = problem;
      break;
    }
    if (Number.isFinite(limit) && (open !== null || seen !== limit)) {
      const why = open !== null ? `ends inside the task that starts at seq ${open}` : `ends at seq ${seen}`;
      result.broken = `${name} ${why}${result.torn ? ` (torn block at byte ${result.torn.atOffset}: ${result.torn.reason})` : ''}, but the next log starts at seq ${limit + 1}: the entries between are missing`;
      break;
    }
    if (Number.isFinite(limit)) result.torn = null; // a tail past `limit` is superseded, not torn
  }
  return result;
}

/**
 * After a restore to `seq`: moves the checkpoints and logs that lie beyond it (they belong to the
 * lost timeline and would otherwise be mistaken for newer ones) into `superseded-epoch-<epoch>/`.
 */
export async function supersedeBeyond(dir: string, seq: number, epoch: number): Promise<string[]> {
  const moved: string[] = [];
  const stale = [...(await listCheckpoints(dir)).filter((c) => c.seq > seq), ...(await listLogs(dir)).filter((l) => l.seq >= seq)];
  if (stale.length === 0) return moved;
  const target = path.join(dir, `superseded-epoch-${epoch}`);
  await fsp.mkdir(target, { recursive: true });
  for (const { file } of stale) {
    await fsp.rename(file, path.join(target, path.basename(file)));
    moved.push(file);
  }
  await syncDirectory(dir);
  return moved;
}

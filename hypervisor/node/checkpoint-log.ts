// The log since the newest checkpoint (the directory's layout: checkpoint-file.ts): a chain of
// trace files, log-<seq>.trace, appended once per tick and fsynced in the background.

import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Entry } from '../../logging-channel/entry.js';
import type { TraceHeader } from '../../logging-channel/trace-format.js';
import { TraceWriter } from '../../logging-channel/trace-writer.js';
import { logFileName } from './checkpoint-file.js';

/**
 * A log sink that writes the entries after the newest checkpoint to `log-<seq>.trace`: appended
 * as they come, written once per tick, fsynced in the background. `roll(S)` closes the current log
 * exactly at S (call it synchronously when a checkpoint's seq is fixed) and starts log-S.
 */
export class CheckpointLog {
  private current: { writer: TraceWriter; file: string; sync: fsp.FileHandle } | null = null;
  /**
   * Set between roll() and the new log taking over. Entries wait in `backlog` (in order) only until
   * the new file exists (one turn); from then on they are written through to it at once, even while
   * the old log's fsync runs: a process killed meanwhile must not lose entries whose responses left.
   */
  private pending: { afterSeq: number; backlog: Entry[]; writer: TraceWriter | null } | null = null;
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
    const pending = this.pending;
    if (pending?.writer) {
      this.writeThrough(pending, pending.writer, entries);
      return;
    }
    if (pending) {
      for (const e of entries) pending.backlog.push(e);
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

  /** Entries of a log still taking over, written (not fsynced) in the turn they come. */
  private writeThrough(pending: NonNullable<CheckpointLog['pending']>, writer: TraceWriter, entries: readonly Entry[]): void {
    try {
      writer.append(entries);
      writer.flush();
    } catch (error) {
      this.pending = null; // the roll sees it is superseded and closes the writer
      this.fail(`cannot append to ${path.join(this.dir, logFileName(pending.afterSeq))}: ${(error as Error).message}`);
      return;
    }
    this.writtenSeq = writer.nextSeq - 1;
  }

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
    const pending = { afterSeq, backlog: [] as Entry[], writer: null as TraceWriter | null };
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
      if (this.pending === pending && !this.closed) {
        const waiting = pending.backlog;
        pending.backlog = [];
        pending.writer = writer;
        if (waiting.length > 0) this.writeThrough(pending, writer, waiting);
      }
      // The old log ends at afterSeq: fsynced and closed before the new one's fsyncs count.
      if (closing) await this.closeOld(closing, afterSeq);
      if (this.pending !== pending || this.closed) {
        try {
          writer.close();
        } catch {
          /* failed while written through: already reported */
        }
        await sync.close();
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

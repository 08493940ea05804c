// The primary node: serves the guest live, streams its log to one backup over the logging channel,
// and holds every output until the backup has acknowledged the entry that produced it. All role
// decisions come from the pure RoleMachine; this shell performs its actions.
//
// With checkpoints on (hypervisor/checkpoint.ts) it also writes, every --checkpoint-every entries or
// --checkpoint-every-ms, a snapshot of the VM and the log since it to a directory; with --restore-from
// it boots from the newest valid checkpoint there plus its log instead of booting the guest fresh.

import type { Server } from 'node:http';
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { Kind, type Entry } from '../logging-channel/entry.js';
import { encodeEpochMark } from '../logging-channel/codec.js';
import { PrimaryChannel, type SnapshotForJoin } from '../logging-channel/primary-channel.js';
import { encodeSnapshot } from './snapshot-wire.js';
import { RetainedLog } from '../logging-channel/retained-log.js';
import { TraceWriter } from '../logging-channel/trace-file.js';
import { LagTracker } from '../recorder/lag.js';
import { Log, traceSink } from '../recorder/log.js';
import { OutputBuffer } from '../recorder/output-buffer.js';
import { Arbiter } from './arbiter.js';
import { traceHeaderFor } from './boot-config.js';
import {
  Checkpointer,
  newestValidCheckpoint,
  replayLogChain,
  RestoreError,
  supersedeBeyond,
  type ChainReplay,
  type CheckpointSettings,
  type CheckpointStats,
  type LoadedCheckpoint,
  type SkippedCheckpoint,
} from './checkpoint.js';
import { createFrontDoor } from './front-door.js';
import { LiveLoop, type LiveLoopOptions } from './live-loop.js';
import { drive, engineIdentity, listen, monotonicMs, roleConfig, tickMs, TRACE_FORMAT_VERSION, type PairSettings } from './pair.js';
import { EXIT_LOST_EPOCH, RoleMachine, type RoleAction } from './role.js';
import { VmHost } from './vm-host.js';
import type { BootConfig } from './vm.js';
import type { RunReply } from './vm-protocol.js';
import { MAX_BATCH_BYTES } from '../logging-channel/codec.js';

export type { CheckpointSettings, CheckpointStats } from './checkpoint.js';

export interface PrimaryOptions {
  config: BootConfig;
  nodeId: string;
  host: string;
  port: number;
  replicationHost: string;
  replicationPort: number;
  sharedDir: string;
  secret: string;
  pair: PairSettings;
  maxRequestBytes: number;
  loop: LiveLoopOptions;
  tracePath?: string;
  /** A fresh backup joins by snapshot once the log is this long (or no longer starts at seq 1). */
  joinBySnapshotAfterEntries?: number;
  /** Rotate the --trace file into segments of this many bytes (TraceWriterOptions.segmentBytes). */
  traceSegmentBytes?: number;
  /** Durable checkpoints; off when absent. */
  checkpoint?: CheckpointSettings;
  /** Boot from the newest valid checkpoint in this directory plus its log, not from the guest fresh. */
  restoreFrom?: string;
  logger: Logger;
}

export interface HaltEvent {
  reason: string;
  exitCode: number;
}

export class PrimaryNode extends EventEmitter<{ halt: [HaltEvent] }> {
  url = '';
  replicationUrl = '';
  private log!: Log;
  private retained!: RetainedLog;
  /** The boot config the VM runs (the checkpoint's after a restore). */
  readonly config: BootConfig;
  private restorePoint: (LoadedCheckpoint & { skipped: SkippedCheckpoint[] }) | null;
  private restored: (ChainReplay & { checkpoint: string; checkpointSeq: number; checkpointEpoch: number; skipped: SkippedCheckpoint[] }) | null = null;
  private checkpointer: Checkpointer | null = null;
  /** Admission paused while the VM is copied out for a backup joining by snapshot. */
  private joinPaused = false;
  private bootEpoch = 0;
  private readonly lag = new LagTracker();
  private readonly outputs = new OutputBuffer(true, () => !this.machine || this.machine.mayRelease(monotonicMs()));
  private machine!: RoleMachine;
  private loop!: LiveLoop;
  private channel!: PrimaryChannel;
  private server!: Server;
  private tickTimer: NodeJS.Timeout | undefined;
  private admitting = true;
  private trace: TraceWriter | null = null;
  private traceOut: { close(): void } | null = null;
  private stopped = false;
  private readonly logger: Logger;
  private readonly arbiter: Arbiter;

  private constructor(
    private readonly options: PrimaryOptions,
    private readonly vm: VmHost,
    restorePoint: (LoadedCheckpoint & { skipped: SkippedCheckpoint[] }) | null,
  ) {
    super();
    this.logger = options.logger;
    this.restorePoint = restorePoint;
    this.config = restorePoint?.config ?? options.config;
    this.arbiter = new Arbiter(options.sharedDir, options.nodeId);
  }

  static async start(options: PrimaryOptions): Promise<PrimaryNode> {
    let restorePoint: (LoadedCheckpoint & { skipped: SkippedCheckpoint[] }) | null = null;
    if (options.restoreFrom) {
      if (options.tracePath) throw new Error('--trace cannot be combined with --restore-from: a trace starts at boot (the checkpoint logs are the record after a restore)');
      restorePoint = await newestValidCheckpoint(options.restoreFrom, options.logger);
      const given = options.config;
      if (restorePoint.config.guestHash !== given.guestHash) {
        throw new Error(
          `--restore-from: ${restorePoint.file} holds guest ${restorePoint.config.entry} (hash ${restorePoint.config.guestHash.slice(0, 12)}…), but ${given.entry} has hash ${given.guestHash.slice(0, 12)}…; pass the guest the checkpoint was taken of`,
        );
      }
      if (JSON.stringify(restorePoint.config.env) !== JSON.stringify(given.env) || JSON.stringify(restorePoint.config.limits) !== JSON.stringify(given.limits)) {
        options.logger.warn({ checkpointEnv: Object.keys(restorePoint.config.env), checkpointLimits: restorePoint.config.limits }, 'the checkpoint\'s env and limits differ from the flags given; the checkpoint\'s are used (the VM was booted with them)');
      }
    }
    if (options.checkpoint) await mkdir(options.checkpoint.dir, { recursive: true });
    const vm = VmHost.start((restorePoint?.config ?? options.config).limits);
    const node = new PrimaryNode(options, vm, restorePoint);
    try {
      await node.boot();
    } catch (error) {
      await node.stop();
      throw error;
    }
    return node;
  }

  private async boot(): Promise<void> {
    const { options, logger } = this;
    const config = this.config;
    const epoch = await this.claimFirstEpoch();
    this.bootEpoch = epoch;
    this.vm.onFatal = (error) => this.halt({ reason: `the VM died: ${error.message}`, exitCode: 70 });

    const started = monotonicMs();
    let bootReply: RunReply;
    if (this.restorePoint) {
      bootReply = await this.restore(epoch);
    } else {
      this.log = new Log();
      // History is kept for a backup that joins from seq 1; bounded, with headroom for one batch.
      this.retained = new RetainedLog(options.pair.maxLogBufferBytes + MAX_BATCH_BYTES);
      if (options.tracePath) {
        this.trace = await TraceWriter.open(options.tracePath, traceHeaderFor(config, options.nodeId), options.traceSegmentBytes ? { segmentBytes: options.traceSegmentBytes } : {});
        const out = traceSink(this.trace);
        this.traceOut = out;
        this.log.addSink(out.sink);
      }
      if (options.checkpoint) this.startCheckpointer(options.checkpoint);
      bootReply = await this.vm.boot(config, 'live');
    }
    this.log.addSink((entries) => this.onAppended(entries));

    this.loop = new LiveLoop(this.vm, this.log, { hold: (seq, release) => this.outputs.hold(seq, release) }, logger, { ...options.loop, admit: () => this.admitting && !this.checkpointer?.paused && !this.joinPaused });
    this.loop.onFatal = (error) => this.halt({ reason: `the live loop failed: ${error.message}`, exitCode: 70 });
    this.loop.start(bootReply);
    this.log.appendControl(Kind.Epoch, encodeEpochMark({ epoch, nodeId: options.nodeId }));
    if (this.restored) {
      const fetches = await this.vm.pendingFetches();
      this.loop.reissue(fetches);
      this.reportRestore(epoch, monotonicMs() - started, fetches.length);
      // Checkpoints in another directory than the one restored from need a base of their own now.
      if (this.checkpointer && path.resolve(options.checkpoint!.dir) !== path.resolve(options.restoreFrom!)) await this.checkpointNow('restore');
    } else {
      logger.info({ epoch, guest: config.entry, guestHash: config.guestHash.slice(0, 12), bootMs: Math.round(monotonicMs() - started) }, 'guest booted');
      // The first checkpoint, right after boot: from now on there is always a base to restore from.
      if (this.checkpointer) await this.checkpointNow('boot');
    }

    this.channel = await PrimaryChannel.listen({
      host: options.replicationHost,
      port: options.replicationPort,
      secret: options.secret,
      identity: { formatVersion: TRACE_FORMAT_VERSION, engine: engineIdentity(), guestHash: config.guestHash },
      bootConfig: config,
      log: this.retained,
      heartbeatMs: options.pair.heartbeatMs,
      heartbeatTimeoutMs: options.pair.heartbeatTimeoutMs,
      snapshotProvider: () => this.snapshotForJoin(),
      ...(options.joinBySnapshotAfterEntries !== undefined ? { joinBySnapshotAfterEntries: options.joinBySnapshotAfterEntries } : {}),
      logger,
    });
    this.channel.on('attached', (e) => {
      logger.info({ backup: e.nodeId, remote: e.remote, resumeFromSeq: e.resumeFromSeq }, 'backup attached');
      if (this.machine) this.step({ type: 'peer-up', nowMs: monotonicMs() });
      else this.attachedBeforeStart = true;
      // The backup learns the epoch from the log; one that joins by snapshot never saw the first mark.
      this.log.appendControl(Kind.Epoch, encodeEpochMark({ epoch: this.machine?.epoch ?? epoch, nodeId: options.nodeId }));
    });
    this.channel.on('ack', (seq) => {
      if (!this.machine) return;
      const nowMs = monotonicMs();
      this.lag.acknowledged(seq);
      this.step({ type: 'acked', nowMs, seq });
      this.reportLag(nowMs);
    });
    this.channel.on('detached', (e) => this.step({ type: 'peer-down', nowMs: monotonicMs(), reason: `${e.nodeId}: ${e.reason}` }));
    this.channel.on('error', (error) => logger.error({ err: error }, 'logging channel error'));
    this.replicationUrl = `ws://${options.replicationHost}:${this.channel.port}`;

    this.server = createFrontDoor(
      {
        liveLoop: () => (!this.machine ? null : this.machine.role === 'primary' || this.machine.role === 'live' || this.machine.role === 'claiming' ? this.loop : null),
        notLiveReason: () => (this.machine ? `this node is ${this.machine.role}` : 'this node is starting'),
        identity: () => ({ node: this.options.nodeId, epoch: this.machine?.epoch ?? 0 }),
        healthy: () => !!this.machine && (this.machine.role === 'primary' || this.machine.role === 'live') && !this.machine.verifyingEpoch,
        status: (o) => this.status(o),
      },
      { maxRequestBytes: options.maxRequestBytes, retryAfterSeconds: 1 },
      logger,
    );
    this.url = await listen(this.server, options.port, options.host);
    // Created last, right before its first tick: the boot must not look like a pause.
    this.machine = new RoleMachine(roleConfig(options.pair), 'primary', epoch, monotonicMs());
    if (this.attachedBeforeStart || this.channel.attached) this.step({ type: 'peer-up', nowMs: monotonicMs() });
    this.tickTimer = setInterval(() => this.tick(), tickMs(options.pair));
  }

  private attachedBeforeStart = false;

  /** A fresh primary takes the next epoch; it waits (never guesses) while the directory is unreachable. */
  private async claimFirstEpoch(): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const newest = await this.arbiter.newestEpoch();
      if (newest !== null) {
        const result = await this.arbiter.claim(newest + 1, 'primary');
        if (result.result === 'won') return newest + 1;
        if (result.result === 'lost') continue; // someone took it in between: take the next one
      }
      if (attempt === 1 || attempt % 20 === 0) this.logger.warn({ sharedDir: this.options.sharedDir }, `shared directory unreachable; waiting to claim an epoch (attempt ${attempt})`);
      await new Promise((resolve) => setTimeout(resolve, this.options.pair.claimRetryMs));
      if (this.stopped) throw new Error('stopped while waiting for the shared directory');
    }
  }

  /**
   * Boots the VM from the checkpoint chosen in start() and replays the log chain after it (replay
   * mode), then switches the VM to live. Sets up the log, the retained log and the checkpoint log to
   * continue where the durable log ended.
   */
  private async restore(epoch: number): Promise<RunReply> {
    const { options, logger } = this;
    const point = this.restorePoint!;
    this.restorePoint = null; // the snapshot's memory can go once the VM holds it
    const h = point.header;
    const dir = options.restoreFrom!;
    logger.info(
      { checkpoint: point.file, checkpointSeq: h.seq, takenAt: h.takenAt, checkpointEpoch: h.epoch, checkpointNode: h.node, skipped: point.skipped.map((s) => path.basename(s.file)) },
      `restoring from ${point.file} (seq ${h.seq}, taken ${h.takenAt} by ${h.node} in epoch ${h.epoch})`,
    );
    await this.vm.boot(this.config, 'replay', point.snapshot);
    const state0 = await this.vm.state(true);
    if (state0.stateHash !== h.stateHash) {
      throw new RestoreError(`${point.file}: the restored VM's state hash ${state0.stateHash?.slice(0, 16)}… differs from the checkpoint's ${h.stateHash.slice(0, 16)}…`);
    }
    const chain = await replayLogChain(dir, this.vm, { seq: h.seq, pos: h.pos, guestTimeMs: h.guestTimeMs }, this.config.guestHash);
    if (chain.broken) {
      logger.error({ broken: chain.broken, durableSeq: chain.seq }, `the log chain after the checkpoint is broken: ${chain.broken}; restoring up to seq ${chain.seq}: entries after it are NOT restored`);
    }
    // Files beyond the restored end belong to the lost timeline; new ones will take their names.
    const moved = await supersedeBeyond(dir, chain.seq, epoch);
    if (moved.length > 0) logger.warn({ moved: moved.map((f) => path.basename(f)) }, `moved ${moved.length} checkpoint/log files beyond the restored end (seq ${chain.seq}) to ${path.join(dir, `superseded-epoch-${epoch}`)}`);
    const state = await this.vm.goLive();
    this.log = new Log(chain.seq, chain.pos);
    this.retained = new RetainedLog(options.pair.maxLogBufferBytes + MAX_BATCH_BYTES, chain.seq, chain.pos);
    if (options.checkpoint) {
      const checkpointer = this.startCheckpointer(options.checkpoint);
      // Same directory: the chain continues (the checkpoint restored from stays the base, a new log
      // follows on from the durable end). Elsewhere: boot() takes a first checkpoint there.
      if (path.resolve(options.checkpoint.dir) === path.resolve(dir)) await checkpointer.continueChain(h.seq, chain.seq, chain.tasks);
    } else {
      logger.warn('checkpoints are off (no --checkpoint-every or --checkpoint-every-ms): if this node is lost too, everything after the restore is lost');
    }
    this.restored = { ...chain, checkpoint: point.file, checkpointSeq: h.seq, checkpointEpoch: h.epoch, skipped: point.skipped };
    return { results: [], state };
  }

  private reportRestore(epoch: number, restoreMs: number, reissued: number): void {
    const r = this.restored!;
    const guestTime = new Date(r.guestTimeMs).toISOString();
    const lastWrite = r.lastWriteAt ?? 'unknown';
    const lostEpoch = r.lastEpoch?.epoch ?? r.checkpointEpoch;
    const dropped = r.droppedEntries > 0 ? ` ${r.droppedEntries} entries of a task that had not fully reached the log were dropped.` : '';
    this.logger.warn(
      {
        epoch,
        checkpoint: r.checkpoint,
        checkpointSeq: r.checkpointSeq,
        skippedCheckpoints: r.skipped,
        logs: r.logs.map((f) => path.basename(f)),
        replayedEntries: r.entries,
        replayedTasks: r.tasks,
        durableSeq: r.seq,
        durableGuestTime: guestTime,
        lastLogWriteAt: r.lastWriteAt,
        previousEpoch: lostEpoch,
        droppedEntries: r.droppedEntries,
        tornBlock: r.torn,
        chainBroken: r.broken,
        reissuedFetches: reissued,
        restoreMs: Math.round(restoreMs),
      },
      `RESTORED from ${path.basename(r.checkpoint)} (seq ${r.checkpointSeq}) + ${r.entries} log entries (${r.tasks} tasks): serving in epoch ${epoch}. ` +
        `The durable end of the log is seq ${r.seq} (guest time ${guestTime}; the last log write landed at ${lastWrite}): every response stamped ftjs-seq <= ${r.seq} is reflected; ` +
        `one stamped ftjs-epoch ${lostEpoch} with ftjs-seq > ${r.seq} was acknowledged but had not reached the durable log when the nodes were lost, and its effect is missing.${dropped}`,
    );
  }

  private startCheckpointer(settings: CheckpointSettings): Checkpointer {
    const checkpointer = new Checkpointer(settings, {
      vm: this.vm,
      log: this.log,
      loop: () => (this.stopped ? null : (this.loop ?? null)),
      config: this.config,
      nodeId: this.options.nodeId,
      epoch: () => this.machine?.epoch ?? this.bootEpoch,
      live: () => !this.stopped && !!this.machine && (this.machine.role === 'primary' || this.machine.role === 'live'),
      onDurable: (seq) => this.trimRetained(seq),
      newestEpoch: () => this.arbiter.newestEpoch(),
      onSuperseded: (newest) => this.halt({ reason: `the shared directory holds epoch ${newest}, newer than this node's: another node serves now`, exitCode: EXIT_LOST_EPOCH }),
      logger: this.logger,
    });
    this.checkpointer = checkpointer;
    return checkpointer;
  }

  /** The newest durable checkpoint (for a backup that joins by snapshot), or null. */
  get newestCheckpoint(): CheckpointStats | null {
    return this.checkpointer?.newest ?? null;
  }

  /**
   * Takes a checkpoint now (or waits for the one in progress) and resolves with the newest durable
   * checkpoint's figures once it is durable. Rejects when checkpoints are off.
   */
  checkpointNow(reason = 'requested'): Promise<CheckpointStats | null> {
    if (!this.checkpointer) return Promise.reject(new Error('checkpoints are off (--checkpoint-every / --checkpoint-every-ms)'));
    return this.checkpointer.now(reason);
  }

  /**
   * The in-memory history before a durable checkpoint at `seq` is needed only by a backup: while one
   * is attached, entries it has acknowledged (and that the checkpoint holds) are dropped; with none
   * attached the history is kept for a backup that joins from seq 1.
   */
  private trimRetained(seq: number): void {
    if (!this.channel?.attached) return;
    const through = Math.min(seq, this.channel.ackedSeq, this.retained.lastSeq);
    if (through >= this.retained.firstSeq) this.retained.trimThrough(through);
  }

  private onAppended(entries: readonly Entry[]): void {
    const nowMs = monotonicMs();
    const before = this.retained.bytes;
    this.retained.append(entries);
    this.lag.appended(entries[entries.length - 1]!.seq, this.retained.bytes - before, nowMs);
    // Keep at most --max-log-buffer-bytes of history (oldest first; a backup joining later than that
    // needs a snapshot, which re-protection brings).
    const bound = this.options.pair.maxLogBufferBytes;
    if (this.retained.bytes > bound) {
      const keepFrom = this.machine?.holdsOutputs ? this.channel.ackedSeq : this.log.lastSeq;
      let through = this.retained.firstSeq;
      while (this.retained.bytes > bound && through <= keepFrom) this.retained.trimThrough(through++);
    }
    this.channel?.notifyAppended();
    if (this.machine) this.step({ type: 'appended', nowMs });
  }

  /**
   * A snapshot for a backup that joins now: admission pauses only while the VM is copied out between
   * tasks (the copy is queued behind the batch in flight, and no new batch starts); compression runs
   * after serving resumed.
   */
  private async snapshotForJoin(): Promise<SnapshotForJoin> {
    const started = monotonicMs();
    this.joinPaused = true;
    let snapshot;
    let seq: number;
    let pos: number;
    try {
      snapshot = await this.vm.snapshot();
      seq = this.log.lastSeq;
      pos = this.log.pos;
      // The first entry after the snapshot tells the joining backup which epoch it follows.
      this.log.appendControl(Kind.Epoch, encodeEpochMark({ epoch: this.machine?.epoch ?? this.bootEpoch, nodeId: this.options.nodeId }));
    } finally {
      this.joinPaused = false;
      this.loop.kick();
    }
    const pauseMs = monotonicMs() - started;
    const data = await encodeSnapshot(snapshot);
    this.logger.info({ seq, pauseMs: Math.round(pauseMs * 10) / 10, memoryBytes: snapshot.memory.byteLength, bytes: data.byteLength, encodeMs: Math.round(monotonicMs() - started - pauseMs) }, `snapshot for a joining backup at seq ${seq}`);
    this.lastJoin = { seq, pauseMs, bytes: data.byteLength, memoryBytes: snapshot.memory.byteLength };
    return { seq, pos, data };
  }

  private lastJoin: { seq: number; pauseMs: number; bytes: number; memoryBytes: number } | null = null;

  private reportLag(nowMs: number): void {
    const lag = this.lag.now(nowMs);
    this.step({ type: 'lag', nowMs, lagMs: lag.ms, lagBytes: lag.bytes });
  }

  private tick(): void {
    const nowMs = monotonicMs();
    const heardAt = this.channel.lastHeardAtMs;
    if (heardAt !== null) this.step({ type: 'peer-traffic', nowMs, atMs: heardAt });
    this.step({ type: 'tick', nowMs });
    this.outputs.retry();
    if (this.machine.hasBackup) this.reportLag(nowMs);
    this.checkpointer?.maybe();
  }

  private step(input: Parameters<RoleMachine['step']>[0]): void {
    if (this.stopped || !this.machine) return;
    drive(this.machine, input, (action) => this.perform(action), this.logger);
  }

  private perform(action: RoleAction): void {
    switch (action.type) {
      case 'append-noop':
        this.log.appendControl(Kind.Noop, new Uint8Array(0));
        break;
      case 'hold-outputs':
        this.lag.rebase(monotonicMs());
        this.outputs.setDirect(false);
        break;
      case 'release-through':
        this.outputs.ack(action.seq);
        break;
      case 'release-all':
        this.lag.reset();
        this.outputs.setDirect(true);
        break;
      case 'epoch-won':
        this.log.appendControl(Kind.Epoch, encodeEpochMark({ epoch: action.epoch, nodeId: this.options.nodeId }));
        break;
      case 'admit':
        this.admitting = action.admit;
        if (action.admit) this.loop.kick();
        break;
      case 'drop-peer':
        this.channel.drop(action.reason);
        break;
      case 'claim': {
        const epoch = action.epoch;
        void this.arbiter.claim(epoch, 'primary').then((r) => this.step({ type: 'claim-result', nowMs: monotonicMs(), epoch, result: r.result, detail: r.detail }));
        break;
      }
      case 'check-epoch': {
        const checkId = action.checkId;
        void this.arbiter.newestEpoch().then((newest) => this.step({ type: 'epoch-checked', nowMs: monotonicMs(), checkId, newestEpoch: newest, detail: newest === null ? `${this.options.sharedDir} unreachable` : `newest epoch ${newest}` }));
        break;
      }
      case 'halt':
        this.halt({ reason: action.reason, exitCode: action.exitCode });
        break;
      case 'drain':
      case 'go-live':
        throw new Error(`primary asked to ${action.type}`);
    }
  }

  private halt(event: HaltEvent): void {
    if (this.stopped) return;
    const dropped = this.outputs.halt();
    this.logger.error({ heldOutputsDropped: dropped, exitCode: event.exitCode }, `primary halted: ${event.reason}`);
    void this.stop().then(() => this.emit('halt', event));
  }

  async status(options: { hash: boolean } = { hash: true }): Promise<Record<string, unknown>> {
    const state = this.vm.alive ? await this.vm.state(options.hash) : null;
    const nowMs = monotonicMs();
    const lag = this.lag.now(nowMs);
    return {
      role: this.machine.role,
      node: this.options.nodeId,
      epoch: this.machine.epoch,
      seq: this.log.lastSeq,
      pos: state?.pos ?? null,
      stateHash: state?.stateHash ?? null,
      tasks: this.loop.tasksRun,
      ackedSeq: this.channel.ackedSeq,
      backupAttached: this.channel.attached,
      heldOutputs: this.outputs.held,
      lagEntries: this.machine.holdsOutputs ? lag.entries : 0,
      lagBytes: this.machine.holdsOutputs ? lag.bytes : 0,
      lagMs: this.machine.holdsOutputs ? Math.round(lag.ms) : 0,
      admitting: this.admitting,
      queued: this.loop.queued,
      retainedLog: { firstSeq: this.retained.firstSeq, bytes: this.retained.bytes },
      memoryBytes: state?.memoryBytes ?? null,
      replication: this.replicationUrl,
      lastCheckpoint: this.checkpointer?.newest ?? null,
      lastJoinSnapshot: this.lastJoin,
      checkpoint: this.checkpointer?.status() ?? null,
      restoredFrom: this.restored
        ? { checkpoint: this.restored.checkpoint, checkpointSeq: this.restored.checkpointSeq, replayedEntries: this.restored.entries, durableSeq: this.restored.seq, durableGuestTime: new Date(this.restored.guestTimeMs).toISOString(), skipped: this.restored.skipped, chainBroken: this.restored.broken }
        : null,
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.tickTimer);
    this.server?.close();
    this.server?.closeAllConnections();
    await this.loop?.stop();
    await this.channel?.close();
    await this.checkpointer?.close();
    this.traceOut?.close();
    if (this.trace) await this.trace.close();
    await this.vm.terminate();
  }
}


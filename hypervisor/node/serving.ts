// The serving side of a node that speaks: the live loop, the Output Rule, the log it keeps for a
// backup, the logging channel a backup dials, lag control, join by snapshot and durable checkpoints.
// A primary has it from boot; a backup gets the same one when it goes live, so a live ex-backup
// accepts a fresh backup exactly as a primary does (re-protection, repeated failover).
//
// Role decisions stay in the node's RoleMachine: this part feeds it inputs (attached, acked, lag,
// appended) through `host.step` and performs the serving actions it returns.

import type { Logger } from 'pino';
import type { SnapshotBaseOffer } from '../../logging-channel/auth.js';
import type { ChannelTls } from '../../logging-channel/channel-tls.js';
import { encodeEpochMark, MAX_BATCH_BYTES } from '../../logging-channel/codec.js';
import { type Entry, Kind } from '../../logging-channel/entry.js';
import type { EpochHistory } from '../../logging-channel/epoch-history.js';
import { PrimaryChannel, type SnapshotForJoin } from '../../logging-channel/primary-channel.js';
import { entryWireBytes, RetainedLog } from '../../logging-channel/retained-log.js';
import { LagTracker } from '../../recorder/lag.js';
import type { Log } from '../../recorder/log.js';
import { OutputBuffer } from '../../recorder/output-buffer.js';
import { ReplayLag } from '../../recorder/replay-lag.js';
import { encodeSnapshot, readSnapshotHeader } from '../vm/snapshot-wire.js';
import type { BootConfig } from '../vm/vm.js';
import type { RunReply } from '../worker/vm-protocol.js';
import { admissionState } from './admission.js';
import { Checkpointer, type CheckpointSettings } from './checkpoint.js';
import { recordFor } from './checkpoint-record.js';
import type { ArbiterStore, Env, VmHandle } from './env.js';
import { LiveLoop, type LiveLoopOptions } from './live-loop.js';
import { engineIdentity, type HaltEvent, type PairSettings, TRACE_FORMAT_VERSION } from './pair.js';
import { replicationRecordFor } from './replication-record.js';
import { EXIT_LOST_EPOCH, type RoleAction, type RoleInput, type RoleMachine } from './role.js';

/** Where this node accepts a backup on the logging channel. */
export interface ReplicationListen {
  host: string;
  /** 0 picks a free port. */
  port: number;
  secret: string;
  /** A fresh backup joins by snapshot once the log is this long (or no longer starts at seq 1). */
  joinBySnapshotAfterEntries?: number;
  /** Serve the channel as wss:// with mutual TLS. */
  tls?: ChannelTls;
  /**
   * The host a node this one fences dials to join it, recorded with each epoch this node holds
   * (replication-record.ts); default `host`. Needed where `host` is a wildcard address, which names
   * no host to dial.
   */
  advertiseHost?: string;
}

export interface ServingOptions {
  nodeId: string;
  pair: PairSettings;
  loop: LiveLoopOptions;
  /** null: no logging channel; this node serves alone and no backup can join it. */
  replication: ReplicationListen | null;
  logger: Logger;
}

/** What the serving side needs of its node. */
export interface ServingHost {
  vm: VmHandle;
  config: BootConfig;
  /** The node's log, continuing from where the VM is (seq and pos of its last entry). */
  log: Log;
  arbiter: ArbiterStore;
  /** The node's world: clock and timers for the serving side, its channel and its live loop. */
  env: Env;
  /** The node's role machine; null while the node is still starting. */
  machine: () => RoleMachine | null;
  /** Feeds an input to the node's role machine (and performs what it returns). */
  step: (input: RoleInput) => void;
  /** The epoch to mark in the log when none is known to the machine yet. */
  bootEpoch: number;
  /** The lineage of the log before this node speaks (a backup that goes live: what it received); none for a fresh log. */
  history?: EpochHistory;
  halt: (event: HaltEvent) => void;
}

export interface JoinFigures {
  seq: number;
  pauseMs: number;
  bytes: number;
  memoryBytes: number;
  /** A delta against the memory the backup offered (pages changed since its checkpoint), or the whole memory. */
  kind: 'incremental' | 'full';
  /** Pages sent in an incremental snapshot. */
  pages: number | null;
}

export class Serving {
  readonly retained: RetainedLog;
  readonly loop: LiveLoop;
  readonly outputs: OutputBuffer;
  private readonly lag = new LagTracker();
  private channel: PrimaryChannel | null = null;
  private checkpointerNow: Checkpointer | null = null;
  private admitting = true;
  /** The fraction of the full rate new requests are admitted at (below 1: slowed for the backup's replay). */
  private admitRate = 1;
  /** Admission paused while the VM is copied out for a backup joining by snapshot. */
  private joinPaused = false;
  private lastJoin: JoinFigures | null = null;
  /** The attached backup's replay progress (its heartbeats): null until the backup attached now reports. */
  private replay: ReplayLag | null = null;
  private stopped = false;
  replicationUrl: string | null = null;

  constructor(
    private readonly host: ServingHost,
    private readonly options: ServingOptions,
  ) {
    const { log, vm } = host;
    // History is kept for a backup that joins from the log's start; bounded, with headroom for one batch.
    this.retained = new RetainedLog(options.pair.maxLogBufferBytes + MAX_BATCH_BYTES, log.lastSeq, log.pos, host.history);
    // A node that is verifying its epoch when it starts serving holds from the first output.
    this.outputs = new OutputBuffer(!(host.machine()?.holdsOutputs ?? false), () => {
      const machine = host.machine();
      return !machine || machine.mayRelease(this.host.env.clock.monoMs());
    });
    log.addSink((entries) => this.onAppended(entries));
    this.loop = new LiveLoop(
      vm,
      log,
      { hold: (seq, release) => this.outputs.hold(seq, release) },
      options.logger,
      {
        ...options.loop,
        admit: () => this.admitting && !this.checkpointerNow?.paused && !this.joinPaused,
        rate: () => this.admitRate,
      },
      host.env,
    );
    this.loop.onFatal = (error) => host.halt({ reason: `the live loop failed: ${error.message}`, exitCode: 70 });
  }

  get checkpointer(): Checkpointer | null {
    return this.checkpointerNow;
  }

  get attached(): boolean {
    return this.channel?.attached ?? false;
  }

  /** nodeId of the attached backup, or null. */
  get attachedNodeId(): string | null {
    return this.channel?.attachedNodeId ?? null;
  }

  /** Starts durable checkpoints (before the loop starts, so the checkpoint log sees every entry). */
  startCheckpointer(settings: CheckpointSettings): Checkpointer {
    if (this.checkpointerNow) throw new Error('checkpoints already started');
    const { host } = this;
    const checkpointer = new Checkpointer(settings, {
      vm: host.vm,
      log: host.log,
      loop: () => (this.stopped ? null : this.loop),
      config: host.config,
      nodeId: this.options.nodeId,
      epoch: () => host.machine()?.epoch ?? host.bootEpoch,
      live: () => !this.stopped && (host.machine()?.speaks ?? false),
      onDurable: (seq) => {
        this.trimRetained(seq);
        this.recordCheckpoint(seq, settings.dir);
      },
      newestEpoch: () => host.arbiter.newestEpoch(),
      onSuperseded: (newest) => host.halt({ reason: `the shared directory holds epoch ${newest}, newer than this node's: another node serves now`, exitCode: EXIT_LOST_EPOCH }),
      logger: this.options.logger,
    });
    this.checkpointerNow = checkpointer;
    return checkpointer;
  }

  /** Tells the arbiter this node's directory holds the newest durable checkpoint (hypervisor/node/checkpoint-record.ts). */
  private recordCheckpoint(seq: number, dir: string): void {
    const { host, options } = this;
    const record = host.arbiter.recordCheckpoint;
    if (!record) return;
    const epoch = host.machine()?.epoch ?? host.bootEpoch;
    void record.call(host.arbiter, recordFor(epoch, options.nodeId, dir, seq)).then((ok) => {
      if (!ok) options.logger.warn({ seq, epoch }, `the arbiter did not record the checkpoint at seq ${seq} (unreachable, or epoch ${epoch} is no longer the newest)`);
    });
  }

  /** Starts serving from the VM's state in `reply`, and marks the epoch this node speaks in. */
  start(reply: RunReply, epoch: number): void {
    this.loop.start(reply);
    this.loop.startCrons(this.host.config.crons ?? []);
    this.markEpoch(epoch);
  }

  private markEpoch(epoch: number): void {
    this.host.log.appendControl(Kind.Epoch, encodeEpochMark({ epoch, nodeId: this.options.nodeId }));
  }

  /** Opens the logging channel for a backup (when this node has one configured). */
  async listen(): Promise<void> {
    const replication = this.options.replication;
    if (!replication) this.recordReplication(this.host.machine()?.epoch ?? this.host.bootEpoch); // none: a node it fences exits at once
    if (!replication || this.channel) return;
    const { host, options } = this;
    const { logger } = options;
    const channel = await PrimaryChannel.listen({
      host: replication.host,
      port: replication.port,
      secret: replication.secret,
      identity: { formatVersion: TRACE_FORMAT_VERSION, engine: engineIdentity(), guestHash: host.config.guestHash },
      bootConfig: host.config,
      log: this.retained,
      heartbeatMs: options.pair.heartbeatMs,
      heartbeatTimeoutMs: options.pair.heartbeatTimeoutMs,
      snapshotProvider: (base) => this.snapshotForJoin(base),
      clock: host.env.clock,
      timers: host.env.timers,
      transport: host.env.transport,
      randomBytes: (n) => host.env.randomBytes(n),
      ...(replication.joinBySnapshotAfterEntries !== undefined ? { joinBySnapshotAfterEntries: replication.joinBySnapshotAfterEntries } : {}),
      ...(replication.tls ? { tls: replication.tls } : {}),
      logger,
    });
    if (this.stopped) {
      await channel.close();
      return;
    }
    this.channel = channel;
    channel.on('attached', (e) => {
      logger.info({ backup: e.nodeId, remote: e.remote, resumeFromSeq: e.resumeFromSeq }, 'backup attached');
      this.replay = null;
      host.step({ type: 'peer-up', nowMs: this.host.env.clock.monoMs(), peer: e.nodeId });
      // The backup learns the epoch from the log; one that joins by snapshot never saw the first mark.
      this.markEpoch(host.machine()?.epoch ?? host.bootEpoch);
    });
    channel.on('ack', (seq) => {
      const nowMs = this.host.env.clock.monoMs();
      this.lag.acknowledged(seq, nowMs);
      // What the backup holds is needed again only to resume it from where it acknowledged, and a
      // fresh backup would join by snapshot: keeping that history would grow the heap (and the GC's
      // work on every request) up to --max-log-buffer-bytes for nothing.
      if (channel.joinsBySnapshot && seq >= this.retained.firstSeq) this.retained.trimThrough(Math.min(seq, this.retained.lastSeq));
      host.step({ type: 'acked', nowMs, seq });
      this.reportLag(nowMs);
    });
    channel.on('replay', (progress) => {
      if (!this.replay) this.replay = new ReplayLag();
      const nowMs = this.host.env.clock.monoMs();
      this.replay.reported(progress, nowMs);
      this.reportLag(nowMs);
    });
    channel.on('detached', (e) => host.step({ type: 'peer-down', nowMs: this.host.env.clock.monoMs(), reason: `${e.nodeId}: ${e.reason}`, peer: e.nodeId }));
    channel.on('error', (error) => logger.error({ err: error }, 'logging channel error'));
    this.replicationUrl = `${channel.tls ? 'wss' : 'ws'}://${replication.host}:${channel.port}`;
    this.recordReplication(host.machine()?.epoch ?? host.bootEpoch);
  }

  /** Where other nodes dial this node's logging channel: the advertised host, else the one it listens on. */
  private advertisedReplicationUrl(): string | null {
    const advertiseHost = this.options.replication?.advertiseHost;
    if (this.replicationUrl === null || advertiseHost === undefined) return this.replicationUrl;
    const url = new URL(this.replicationUrl);
    return `${url.protocol}//${advertiseHost.includes(':') && !advertiseHost.startsWith('[') ? `[${advertiseHost}]` : advertiseHost}:${url.port}`;
  }

  /**
   * Tells the arbiter where this node, holding `epoch`, takes backups (hypervisor/node/replication-record.ts):
   * a node that this epoch fences joins it there instead of exiting.
   */
  private recordReplication(epoch: number): void {
    const { host, options } = this;
    if (!host.arbiter.recordReplication) return;
    const advertised = this.advertisedReplicationUrl();
    const record = replicationRecordFor(epoch, options.nodeId, advertised, new Date(host.env.clock.wallMs()).toISOString());
    if (record.url === null && advertised !== null) {
      options.logger.info(
        { replication: advertised },
        `the logging channel listens on a wildcard address (${advertised}) and no --replication-advertise-host names it: no address recorded, so a node this one fences exits instead of joining it`,
      );
    }
    void host.arbiter.recordReplication(record).then((ok) => {
      if (!ok)
        options.logger.warn({ epoch, replication: record.url }, `the arbiter did not record this node's logging channel for epoch ${epoch} (unreachable, or epoch ${epoch} is no longer the newest)`);
    });
  }

  /**
   * The in-memory history before a durable checkpoint at `seq` is needed only by a backup: while one
   * is attached, entries it has acknowledged (and that the checkpoint holds) are dropped; with none
   * attached the history is kept for a backup that joins from the log's start (short logs only:
   * past --join-by-snapshot-after the 'ack' handler drops acknowledged history anyway).
   */
  private trimRetained(seq: number): void {
    if (!this.channel?.attached) return;
    const through = Math.min(seq, this.channel.ackedSeq, this.retained.lastSeq);
    if (through >= this.retained.firstSeq) this.retained.trimThrough(through);
  }

  private onAppended(entries: readonly Entry[]): void {
    const nowMs = this.host.env.clock.monoMs();
    this.makeRoom(entries);
    const before = this.retained.bytes;
    this.retained.append(entries);
    this.lag.appended(entries[entries.length - 1]!.seq, this.retained.bytes - before, nowMs);
    this.channel?.notifyAppended();
    this.host.step({ type: 'appended', nowMs });
  }

  /**
   * Keep at most --max-log-buffer-bytes of history (oldest first; a backup joining later than that
   * joins by snapshot), making room before a batch is appended: a batch of a whole VM run can be
   * larger than the retained log's headroom. What the backup has not acknowledged is never dropped.
   */
  private makeRoom(entries: readonly Entry[]): void {
    const bound = this.options.pair.maxLogBufferBytes;
    let incoming = 0;
    let pos = entries[0]!.pos;
    for (const entry of entries) {
      incoming += entryWireBytes(entry, pos);
      pos = entry.pos;
    }
    if (this.retained.bytes + incoming <= bound) return;
    const keepFrom = this.host.machine()?.holdsOutputs && this.channel ? this.channel.ackedSeq : this.host.log.lastSeq;
    let through = this.retained.firstSeq;
    while (this.retained.bytes + incoming > bound && through <= keepFrom && through <= this.retained.lastSeq) this.retained.trimThrough(through++);
  }

  /**
   * A snapshot for a backup that joins now: admission pauses only while the VM is copied out between
   * tasks (the copy is queued behind the batch in flight, and no new batch starts); hashing and
   * compression run after serving resumed. With a `base` offered (the memory of a checkpoint the
   * backup holds), only the pages that differ from it are sent.
   */
  private async snapshotForJoin(base: SnapshotBaseOffer | null): Promise<SnapshotForJoin> {
    const { host } = this;
    // Pre-copy while serving goes on: the pause below then copies only the pages written since.
    await host.vm.precopy?.();
    const started = this.host.env.clock.monoMs();
    this.joinPaused = true;
    let snapshot;
    let seq: number;
    let pos: number;
    try {
      snapshot = await host.vm.snapshot();
      seq = host.log.lastSeq;
      pos = host.log.pos;
      // The first entry after the snapshot tells the joining backup which epoch it follows.
      this.markEpoch(host.machine()?.epoch ?? host.bootEpoch);
    } finally {
      this.joinPaused = false;
      this.loop.kick();
    }
    const pauseMs = this.host.env.clock.monoMs() - started;
    let data: Uint8Array | null = null;
    if (base) {
      try {
        data = await encodeSnapshot(snapshot, base, host.env.snapshotCodec);
      } catch (error) {
        // A base that cannot serve (another page size, a larger memory than ours): send it whole.
        this.options.logger.warn({ err: error }, `cannot send a delta against the joining backup's base: ${(error as Error).message}; sending the whole snapshot`);
      }
    }
    const kind = data ? 'incremental' : 'full';
    try {
      if (!data) data = await encodeSnapshot(snapshot, null, host.env.snapshotCodec);
    } finally {
      host.vm.releaseSnapshot?.(snapshot);
    }
    const header = readSnapshotHeader(data);
    const pages = header.kind === 'delta' ? header.pages.length : null;
    this.options.logger.info(
      {
        seq,
        kind,
        pauseMs: Math.round(pauseMs * 10) / 10,
        memoryBytes: snapshot.memory.byteLength,
        bytes: data.byteLength,
        pages,
        encodeMs: Math.round(this.host.env.clock.monoMs() - started - pauseMs),
      },
      `snapshot for a joining backup at seq ${seq} (${kind})`,
    );
    this.lastJoin = { seq, pauseMs, bytes: data.byteLength, memoryBytes: snapshot.memory.byteLength, kind, pages };
    return { seq, pos, data, ...(kind === 'incremental' ? { baseDigest: base!.digest } : {}) };
  }

  private reportLag(nowMs: number): void {
    const lag = this.lag.now(nowMs);
    const backlog = this.replayBacklogMs();
    this.host.step({ type: 'lag', nowMs, lagMs: lag.ms, lagBytes: lag.bytes, ...(backlog !== null ? { replayBacklogMs: backlog } : {}) });
  }

  /**
   * The attached backup's replay backlog as it last reported it (its heartbeats), or null before a
   * report from the backup attached now. A report only ages: entries appended since are not in it,
   * and the Output Rule plus the admission bound keep those few.
   */
  private replayBacklogMs(): number | null {
    if (!this.replay || !this.channel?.attached) return null;
    const ms = this.replay.backlogMs(this.host.log.lastSeq);
    return ms === null ? null : Math.round(ms);
  }

  /** Periodic work: the backup's heartbeats, outputs the lease held back, lag, checkpoint triggers. */
  tick(nowMs: number): void {
    const heardAt = this.channel?.lastHeardAtMs ?? null;
    if (heardAt !== null) this.host.step({ type: 'peer-traffic', nowMs, atMs: heardAt });
    this.outputs.retry();
    if (this.host.machine()?.hasBackup) this.reportLag(nowMs);
    this.checkpointerNow?.maybe();
  }

  /** Performs a role action that concerns serving; false when the action is not one of them. */
  perform(action: RoleAction): boolean {
    switch (action.type) {
      case 'append-noop':
        this.host.log.appendControl(Kind.Noop, new Uint8Array(0));
        return true;
      case 'hold-outputs':
        this.lag.rebase(this.host.env.clock.monoMs());
        this.outputs.setDirect(false);
        return true;
      case 'release-through':
        this.outputs.ack(action.seq);
        return true;
      case 'release-all':
        this.lag.reset();
        this.outputs.setDirect(true);
        return true;
      case 'epoch-won':
        this.markEpoch(action.epoch);
        this.recordReplication(action.epoch);
        return true;
      case 'admit':
        this.admitting = action.admit;
        this.admitRate = action.rate ?? 1;
        if (action.admit) this.loop.kick();
        return true;
      case 'drop-peer':
        this.channel?.drop(action.reason);
        return true;
      default:
        return false;
    }
  }

  /** The node halts: whatever is held never leaves. Returns how many outputs were dropped. */
  halt(): number {
    return this.outputs.halt();
  }

  status(): Record<string, unknown> {
    const lag = this.lag.now(this.host.env.clock.monoMs());
    const holds = this.host.machine()?.holdsOutputs ?? false;
    return {
      tasks: this.loop.tasksRun,
      batches: this.loop.batchesRun,
      framesSent: this.channel?.framesSent ?? 0,
      ackedSeq: this.channel?.ackedSeq ?? 0,
      backupAttached: this.attached,
      protection: this.protection(),
      backupReplayedSeq: this.replayBacklogMs() !== null ? this.replay!.replayedSeq : null,
      replayBacklogMs: this.replayBacklogMs(),
      heldOutputs: this.outputs.held,
      lagEntries: holds ? lag.entries : 0,
      lagBytes: holds ? lag.bytes : 0,
      lagMs: holds ? Math.round(lag.ms) : 0,
      outputHoldMs: this.lag.holds(),
      admitting: this.admitting,
      admission: admissionState(this.admitting, this.admitRate),
      admitRate: this.admitting ? this.admitRate : 0,
      peerJitter: this.host.machine()?.peerJitter ?? null,
      queued: this.loop.queued,
      retainedLog: { firstSeq: this.retained.firstSeq, bytes: this.retained.bytes },
      logBytesAppended: this.lag.appendedBytes,
      replication: this.replicationUrl,
      lastCheckpoint: this.checkpointerNow?.newest ?? null,
      lastJoinSnapshot: this.lastJoin,
      checkpoint: this.checkpointerNow?.status() ?? null,
    };
  }

  /**
   * 'protected': a backup is attached and could take over within the replay bound; 'catching up': one
   * is attached but its replay backlog is over --max-replay-lag-ms (or not yet reported);
   * 'unprotected': none.
   */
  protection(): 'protected' | 'catching up' | 'unprotected' {
    const machine = this.host.machine();
    if (!machine?.hasBackup || !this.attached) return 'unprotected';
    return machine.protecting ? 'protected' : 'catching up';
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.loop.stop();
    await this.channel?.close();
    await this.checkpointerNow?.close();
  }
}

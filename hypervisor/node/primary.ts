// The primary node: serves the guest live, streams its log to one backup over the logging channel,
// and holds every output until the backup has acknowledged the entry that produced it. All role
// decisions come from the pure RoleMachine; this shell performs its actions.
//
// With checkpoints on (hypervisor/node/checkpoint.ts) it also writes, every --checkpoint-every entries or
// --checkpoint-every-ms, a snapshot of the VM and the log since it to a directory; with --restore-from
// it boots from the newest valid checkpoint there plus its log instead of booting the guest fresh.

import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ChannelTls } from '../../logging-channel/channel-tls.js';
import { DEFAULT_TRACE_OUTPUTS_MAX_BYTES } from '../../logging-channel/task-outputs.js';
import { TraceWriter, traceOutputsHook } from '../../logging-channel/trace-writer.js';
import { Log, traceSink } from '../../recorder/log.js';
import { traceHeaderFor } from '../vm/boot-config.js';
import type { BootConfig } from '../vm/vm.js';
import type { RunReply } from '../worker/vm-protocol.js';
import { arbiterLabel } from './arbiter-select.js';
import type { Witness } from './beacon.js';
import type { CheckpointSettings, CheckpointStats } from './checkpoint.js';
import type { LoadedCheckpoint } from './checkpoint-file.js';
import { checkRestoreSource } from './checkpoint-record.js';
import { type ChainReplay, newestValidCheckpoint, RestoreError, replayLogChain, type SkippedCheckpoint, supersedeBeyond } from './checkpoint-restore.js';
import { type ArbiterStore, type Env, realEnv, type TimerHandle, type VmHandle } from './env.js';
import { checkEpoch } from './epoch-check.js';
import { createFrontDoor, type EdgeOptions } from './front-door.js';
import { awaitPreviousLeases } from './lease-wait.js';
import type { LiveLoopOptions } from './live-loop.js';
import { type HaltEvent, type PairSettings, roleConfig, Stepper, tickMs } from './pair.js';
import { rejoinTarget } from './replication-record.js';
import { claimResultInput, type RoleAction, RoleMachine } from './role.js';
import { Serving } from './serving.js';

export type { CheckpointSettings, CheckpointStats } from './checkpoint.js';
export type { HaltEvent } from './pair.js';

export interface PrimaryOptions {
  config: BootConfig;
  nodeId: string;
  host: string;
  port: number;
  replicationHost: string;
  replicationPort: number;
  /** The host recorded for a fenced node to join this one (ReplicationListen.advertiseHost). */
  replicationAdvertiseHost?: string;
  sharedDir: string;
  secret: string;
  /** Serve the logging channel as wss:// with mutual TLS. */
  tls?: ChannelTls;
  pair: PairSettings;
  maxRequestBytes: number;
  loop: LiveLoopOptions;
  tracePath?: string;
  /** A fresh backup joins by snapshot once the log is this long (or no longer starts at seq 1). */
  joinBySnapshotAfterEntries?: number;
  /** Rotate the --trace file into segments of this many bytes (TraceWriterOptions.segmentBytes). */
  traceSegmentBytes?: number;
  /** What the --trace file keeps of each task's outputs, in bytes (0: none). Default DEFAULT_TRACE_OUTPUTS_MAX_BYTES. */
  traceOutputsMaxBytes?: number;
  /** Durable checkpoints; off when absent. */
  checkpoint?: CheckpointSettings;
  /** Boot from the newest valid checkpoint in this directory plus its log, not from the guest fresh. */
  restoreFrom?: string;
  /** Front-door settings from the CLI (--public-url, --admin-token-file): the guest's origin, the operator token. */
  frontDoor?: EdgeOptions;
  /** The world this node runs in (default: the real one). */
  env?: Env;
  logger: Logger;
}

export class PrimaryNode extends EventEmitter<{ halt: [HaltEvent] }> {
  url = '';
  replicationUrl = '';
  private log!: Log;
  /** The boot config the VM runs (the checkpoint's after a restore). */
  readonly config: BootConfig;
  private restorePoint: (LoadedCheckpoint & { skipped: SkippedCheckpoint[] }) | null;
  private restored: (ChainReplay & { checkpoint: string; checkpointSeq: number; checkpointEpoch: number; skipped: SkippedCheckpoint[] }) | null = null;
  private serving!: Serving;
  private bootEpoch = 0;
  private machine: RoleMachine | null = null;
  private server!: Server;
  private tickTimer: TimerHandle | undefined;
  private trace: TraceWriter | null = null;
  private traceOut: { close(): void } | null = null;
  private stopped = false;
  private readonly logger: Logger;
  private readonly arbiter: ArbiterStore;
  private readonly env: Env;
  private stepper: Stepper | null = null;
  private readonly witness: Witness | null;
  /** When the claim of the first epoch went out: the lease runs from there. */
  private claimSentAtMs = 0;

  private constructor(
    private readonly options: PrimaryOptions,
    private readonly vm: VmHandle,
    restorePoint: (LoadedCheckpoint & { skipped: SkippedCheckpoint[] }) | null,
  ) {
    super();
    this.logger = options.logger;
    this.restorePoint = restorePoint;
    this.config = restorePoint?.config ?? options.config;
    this.env = options.env ?? realEnv;
    this.arbiter = this.env.arbiter(options.sharedDir, options.nodeId);
    this.witness = this.env.witness?.(options.sharedDir, options.nodeId, options.pair.heartbeatMs) ?? null;
  }

  static async start(options: PrimaryOptions): Promise<PrimaryNode> {
    let restorePoint: (LoadedCheckpoint & { skipped: SkippedCheckpoint[] }) | null = null;
    if (options.restoreFrom) {
      if (options.tracePath) throw new Error('--trace cannot be combined with --restore-from: a trace starts at boot (the checkpoint logs are the record after a restore)');
      restorePoint = await newestValidCheckpoint(options.restoreFrom, options.logger);
      await checkRestoreSource((options.env ?? realEnv).arbiter(options.sharedDir, options.nodeId), options.restoreFrom, options.logger);
      const given = options.config;
      if (restorePoint.config.guestHash !== given.guestHash) {
        throw new Error(
          `--restore-from: ${restorePoint.file} holds guest ${restorePoint.config.entry} (hash ${restorePoint.config.guestHash.slice(0, 12)}…), but ${given.entry} has hash ${given.guestHash.slice(0, 12)}…; pass the guest the checkpoint was taken of`,
        );
      }
      if (JSON.stringify(restorePoint.config.env) !== JSON.stringify(given.env) || JSON.stringify(restorePoint.config.limits) !== JSON.stringify(given.limits)) {
        options.logger.warn(
          { checkpointEnv: Object.keys(restorePoint.config.env), checkpointLimits: restorePoint.config.limits },
          "the checkpoint's env and limits differ from the flags given; the checkpoint's are used (the VM was booted with them)",
        );
      }
    }
    if (options.checkpoint) await mkdir(options.checkpoint.dir, { recursive: true });
    const vm = (options.env ?? realEnv).startVm((restorePoint?.config ?? options.config).limits);
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
    // Claim an epoch only once this node can serve: its ports are bound (a primary that cannot bind
    // must not use up an epoch, nor fence a node that serves).
    this.server = this.createServer();
    this.url = await this.env.serveHttp(this.server, options.port, options.host);
    await this.env.transport.probe(options.replicationHost, options.replicationPort);
    const epoch = await this.claimFirstEpoch();
    this.bootEpoch = epoch;
    this.witness?.start();
    // Boots meanwhile; nothing is released before it is over (hypervisor/node/lease-wait.ts).
    const leaseWait = epoch > 1 ? awaitPreviousLeases(this.arbiter, epoch, options.pair.leaseMs, this.claimSentAtMs, this.env, logger, () => this.stopped) : Promise.resolve();
    leaseWait.catch(() => undefined);
    this.vm.onFatal = (error) => this.halt({ reason: `the VM died: ${error.message}`, exitCode: 70 });

    const started = this.env.clock.monoMs();
    let bootReply: RunReply;
    if (this.restorePoint) {
      bootReply = await this.restore(epoch);
    } else {
      this.log = new Log();
      if (options.tracePath) {
        this.trace = await TraceWriter.open(
          options.tracePath,
          traceHeaderFor(config, options.nodeId, { outputsMaxBytes: options.traceOutputsMaxBytes ?? DEFAULT_TRACE_OUTPUTS_MAX_BYTES }),
          options.traceSegmentBytes ? { segmentBytes: options.traceSegmentBytes } : {},
        );
        const out = traceSink(this.trace);
        this.traceOut = out;
        this.log.addSink(out.sink);
      }
      this.serving = this.newServing();
      // The trace also keeps what each task emitted (trace-only: the logging channel never sees it).
      if (this.trace) this.serving.loop.onTask = traceOutputsHook(this.trace);
      if (options.checkpoint) this.serving.startCheckpointer(options.checkpoint);
      bootReply = await this.vm.boot(config, 'live');
    }
    this.serving.start(bootReply, epoch);
    if (this.restored) {
      const fetches = await this.vm.pendingFetches();
      this.serving.loop.reissue(fetches);
      this.reportRestore(epoch, this.env.clock.monoMs() - started, fetches.length);
      // Checkpoints in another directory than the one restored from need a base of their own now.
      if (this.serving.checkpointer && path.resolve(options.checkpoint!.dir) !== path.resolve(options.restoreFrom!)) await this.checkpointNow('restore');
    } else {
      logger.info({ epoch, guest: config.entry, guestHash: config.guestHash.slice(0, 12), bootMs: Math.round(this.env.clock.monoMs() - started) }, 'guest booted');
      // The first checkpoint, right after boot: from now on there is always a base to restore from.
      if (this.serving.checkpointer) await this.checkpointNow('boot');
    }

    await this.serving.listen();
    this.replicationUrl = this.serving.replicationUrl ?? '';
    // Created last, right before its first tick: the boot must not look like a pause. A backup that
    // attached before is told to it now.
    await leaseWait;
    this.machine = new RoleMachine(roleConfig(options.pair, this.witness !== null), 'primary', epoch, this.env.clock.monoMs(), this.claimSentAtMs);
    this.stepper = new Stepper(this.machine, (action) => this.perform(action), logger);
    this.arbiter.watchNewer?.((newer) => this.step({ type: 'newer-epoch', nowMs: this.env.clock.monoMs(), epoch: newer }));
    if (this.serving.attached) this.step({ type: 'peer-up', nowMs: this.env.clock.monoMs(), ...(this.serving.attachedNodeId ? { peer: this.serving.attachedNodeId } : {}) });
    this.tickTimer = this.env.timers.every(tickMs(options.pair), () => this.tick());
  }

  /** The front door; it answers 503 "starting" until the role machine exists. */
  private createServer(): Server {
    return createFrontDoor(
      {
        liveLoop: () => (this.machine?.servesTraffic ? this.serving.loop : null),
        notLiveReason: () => (this.machine ? `this node is ${this.machine.role}` : 'this node is starting'),
        identity: () => ({ node: this.options.nodeId, epoch: this.machine?.epoch ?? 0 }),
        healthy: () => this.machine?.healthy ?? false,
        status: (o) => this.status(o),
      },
      { maxRequestBytes: this.options.maxRequestBytes, retryAfterSeconds: 1, ...this.options.frontDoor },
      this.logger,
    );
  }

  private newServing(): Serving {
    const { options } = this;
    return new Serving(
      {
        vm: this.vm,
        config: this.config,
        log: this.log,
        arbiter: this.arbiter,
        env: this.env,
        machine: () => this.machine,
        step: (input) => this.step(input),
        bootEpoch: this.bootEpoch,
        halt: (event) => this.halt(event),
      },
      {
        nodeId: options.nodeId,
        pair: options.pair,
        loop: options.loop,
        replication: {
          host: options.replicationHost,
          port: options.replicationPort,
          secret: options.secret,
          ...(options.replicationAdvertiseHost !== undefined ? { advertiseHost: options.replicationAdvertiseHost } : {}),
          ...(options.tls ? { tls: options.tls } : {}),
          ...(options.joinBySnapshotAfterEntries !== undefined ? { joinBySnapshotAfterEntries: options.joinBySnapshotAfterEntries } : {}),
        },
        logger: options.logger,
      },
    );
  }

  /** A fresh primary takes the next epoch; it waits (never guesses) while the directory is unreachable. */
  private async claimFirstEpoch(): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const newest = await this.arbiter.newestEpoch();
      if (newest !== null) {
        this.claimSentAtMs = this.env.clock.monoMs();
        const result = await this.arbiter.claim(newest + 1, 'primary', this.options.pair.leaseMs);
        if (result.result === 'won') return newest + 1;
        if (result.result === 'lost') continue; // someone took it in between: take the next one
      }
      if (attempt === 1 || attempt % 20 === 0) this.logger.warn({ arbiter: this.options.sharedDir }, `arbiter ${this.options.sharedDir} unreachable; waiting to claim an epoch (attempt ${attempt})`);
      await new Promise<void>((resolve) => this.env.timers.after(this.options.pair.claimRetryMs, resolve));
      if (this.stopped) throw new Error('stopped while waiting for the shared directory');
    }
  }

  /**
   * Boots the VM from the checkpoint chosen in start() and replays the log chain after it (replay
   * mode), then switches the VM to live. Sets up the log, the serving side and the checkpoint log to
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
      logger.error(
        { broken: chain.broken, durableSeq: chain.seq },
        `the log chain after the checkpoint is broken: ${chain.broken}; restoring up to seq ${chain.seq}: entries after it are NOT restored`,
      );
    }
    // Files beyond the restored end belong to the lost timeline; new ones will take their names.
    const moved = await supersedeBeyond(dir, chain.seq, epoch);
    if (moved.length > 0)
      logger.warn(
        { moved: moved.map((f) => path.basename(f)) },
        `moved ${moved.length} checkpoint/log files beyond the restored end (seq ${chain.seq}) to ${path.join(dir, `superseded-epoch-${epoch}`)}`,
      );
    const state = await this.vm.goLive();
    this.log = new Log(chain.seq, chain.pos);
    this.serving = this.newServing();
    if (options.checkpoint) {
      const checkpointer = this.serving.startCheckpointer(options.checkpoint);
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

  /** The role machine (null while starting), for read-only views (the simulator's checks). */
  get roleMachine(): RoleMachine | null {
    return this.machine;
  }

  /** The serving side (null before the boot created it), for read-only views (the simulator's checks). */
  get servingSide(): Serving | null {
    return this.serving ?? null;
  }

  /** The newest durable checkpoint (for a backup that joins by snapshot), or null. */
  get newestCheckpoint(): CheckpointStats | null {
    return this.serving?.checkpointer?.newest ?? null;
  }

  /**
   * Takes a checkpoint now (or waits for the one in progress) and resolves with the newest durable
   * checkpoint's figures once it is durable. Rejects when checkpoints are off.
   */
  checkpointNow(reason = 'requested'): Promise<CheckpointStats | null> {
    const checkpointer = this.serving?.checkpointer;
    if (!checkpointer) return Promise.reject(new Error('checkpoints are off (--checkpoint-every / --checkpoint-every-ms)'));
    return checkpointer.now(reason);
  }

  private tick(): void {
    this.witness?.tick();
    const nowMs = this.env.clock.monoMs();
    this.serving.tick(nowMs);
    this.step({ type: 'tick', nowMs });
  }

  private step(input: Parameters<RoleMachine['step']>[0]): void {
    if (this.stopped || !this.stepper) return;
    this.stepper.step(input);
  }

  private perform(action: RoleAction): void {
    if (action.type === 'release-all') {
      this.releaseAll(action);
      return;
    }
    if (this.serving.perform(action)) return;
    switch (action.type) {
      case 'claim': {
        const epoch = action.epoch;
        void this.arbiter.claim(epoch, 'primary', this.options.pair.leaseMs, action.mayVoid === true).then((r) => this.step(claimResultInput(epoch, this.env.clock.monoMs(), r)));
        break;
      }
      case 'check-epoch':
        void checkEpoch(this.arbiter, this.machine, this.options.pair.leaseMs, action.checkId, this.options.sharedDir, () => this.env.clock.monoMs()).then((input) => this.step(input));
        break;
      case 'halt':
        this.halt({ reason: action.reason, exitCode: action.exitCode });
        break;
      case 'read-witness': {
        const { readId } = action;
        void this.witness?.read(action.peer, action.epoch).then((value) => this.step({ type: 'witness', nowMs: this.env.clock.monoMs(), readId, value }));
        break;
      }
      default:
        throw new Error(`primary asked to ${action.type}`);
    }
  }

  /**
   * Running alone in an epoch it won (or confirmed after a pause): what was held leaves now. Logged
   * with the count, so an operator sees what the claim was holding back (the lease may keep some
   * until the next tick: those are still held).
   */
  private releaseAll(action: Extract<RoleAction, { type: 'release-all' }>): void {
    const heldBefore = this.serving.status().heldOutputs as number;
    this.serving.perform(action);
    const heldOutputs = this.serving.status().heldOutputs as number;
    const epoch = this.machine?.epoch;
    this.logger.info({ epoch, releasedOutputs: heldBefore - heldOutputs, heldOutputs }, `released ${heldBefore - heldOutputs} held outputs in epoch ${epoch}`);
  }

  private halt(event: HaltEvent): void {
    if (this.stopped) return;
    const dropped = this.serving?.halt() ?? 0;
    this.logger.error({ heldOutputsDropped: dropped, exitCode: event.exitCode }, `primary halted: ${event.reason}`);
    void this.stop()
      .then(() => rejoinTarget(event, this.arbiter, this.options.nodeId, this.env, this.options.pair.claimRetryMs, null))
      .then((e) => this.emit('halt', e));
  }

  async status(options: { hash: boolean } = { hash: true }): Promise<Record<string, unknown>> {
    // The front door answers while the node is still booting (it binds before the claim): the VM is
    // asked only once the node serves.
    const state = this.machine && this.vm.alive ? await this.vm.state(options.hash) : null;
    return {
      role: this.machine?.role ?? 'starting',
      node: this.options.nodeId,
      epoch: this.machine?.epoch ?? this.bootEpoch,
      seq: this.log?.lastSeq ?? 0,
      pos: state?.pos ?? null,
      stateHash: state?.stateHash ?? null,
      memoryBytes: state?.memoryBytes ?? null,
      arbiter: arbiterLabel(this.options.sharedDir),
      ...(this.serving ? this.serving.status() : {}),
      restoredFrom: this.restored
        ? {
            checkpoint: this.restored.checkpoint,
            checkpointSeq: this.restored.checkpointSeq,
            replayedEntries: this.restored.entries,
            durableSeq: this.restored.seq,
            durableGuestTime: new Date(this.restored.guestTimeMs).toISOString(),
            skipped: this.restored.skipped,
            chainBroken: this.restored.broken,
          }
        : null,
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.tickTimer?.cancel();
    this.server?.close();
    this.server?.closeAllConnections();
    await this.serving?.stop();
    // Only once nothing can be released any more: a node claiming over this one may go ahead then.
    await this.arbiter.releaseLease?.();
    this.traceOut?.close();
    if (this.trace) await this.trace.close();
    await this.witness?.stop();
    await this.vm.terminate();
  }
}

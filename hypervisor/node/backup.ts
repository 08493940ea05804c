// The backup node: receives the guest and boot config from its primary (verified by hash and engine
// version), acknowledges every entry on receipt, and replays the log one step behind, a whole task at
// a time (it never starts a task whose inputs have not all arrived). It never emits an output. When
// the role machine says so, it drains, wins the next epoch and goes live with identical state.

import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { BackupChannel } from '../../logging-channel/backup-channel.js';
import type { ChannelTls } from '../../logging-channel/channel-tls.js';
import { decodeEpochMark } from '../../logging-channel/codec.js';
import { type Entry, Kind } from '../../logging-channel/entry.js';
import { EpochHistory } from '../../logging-channel/epoch-history.js';
import { DEFAULT_TRACE_OUTPUTS_MAX_BYTES } from '../../logging-channel/task-outputs.js';
import { TraceWriter, traceOutputsHook } from '../../logging-channel/trace-writer.js';
import { Log, traceSink } from '../../recorder/log.js';
import { ReplayBacklog } from '../../replayer/replay-backlog.js';
import { type Assembled, TaskAssembler } from '../../replayer/task-assembler.js';
import { bootConfigFromTrace, traceHeaderFor } from '../vm/boot-config.js';
import { pageBytesFor } from '../vm/page-delta.js';
import type { Divergence } from '../vm/port.js';
import { decodeSnapshot, type SnapshotBase, snapshotBaseOf } from '../vm/snapshot-wire.js';
import type { BootConfig, Snapshot } from '../vm/vm.js';
import { arbiterLabel } from './arbiter-select.js';
import type { Witness } from './beacon.js';
import type { CheckpointSettings } from './checkpoint.js';
import { newestValidCheckpoint, supersedeBeyond } from './checkpoint-restore.js';
import { type ArbiterStore, type Env, realEnv, type TimerHandle, type VmHandle } from './env.js';
import { checkEpoch } from './epoch-check.js';
import { createFrontDoor, type EdgeOptions } from './front-door.js';
import type { LiveLoopOptions } from './live-loop.js';
import { engineIdentity, type HaltEvent, type PairSettings, roleConfig, Stepper, TRACE_FORMAT_VERSION, tickMs } from './pair.js';
import { rejoinTarget } from './replication-record.js';
import { claimResultInput, EXIT_DIVERGED, EXIT_LOST_EPOCH, EXIT_REFUSED, type RoleAction, type RoleInput, RoleMachine } from './role.js';
import { type ReplicationListen, Serving } from './serving.js';

export interface BackupOptions {
  primaryUrl: string;
  /**
   * A node that lost its epoch and rejoins: the epoch whose holder listens at primaryUrl (the arbiter's
   * record, hypervisor/node/replication-record.ts). Until this backup holds a VM of its own, a newer
   * epoch on the arbiter sends it on to that epoch's holder: the one it was joining may be gone.
   */
  joinsEpoch?: number;
  nodeId: string;
  host: string;
  port: number;
  sharedDir: string;
  secret: string;
  /** Dial the primary over wss:// with mutual TLS (primaryUrl must be wss://). */
  tls?: ChannelTls;
  /** When given, the backup refuses a primary that runs other code. */
  guestHash?: string;
  pair: PairSettings;
  maxRequestBytes: number;
  loop: LiveLoopOptions;
  tracePath?: string;
  /** Rotate the trace into segments of this many bytes. */
  traceSegmentBytes?: number;
  /**
   * What the trace keeps of each task's outputs once this node is live, in bytes (0: none; default
   * DEFAULT_TRACE_OUTPUTS_MAX_BYTES). Tasks replayed as a backup emit nothing, so they have none.
   */
  traceOutputsMaxBytes?: number;
  /** Once live: write durable checkpoints (the primary's durability carries on after a failover). */
  checkpoint?: CheckpointSettings;
  /** Once live: accept a fresh backup here (re-protection); none: run alone after a failover. */
  replication?: ReplicationListen;
  /** Front-door settings from the CLI (--public-url, --admin-token-file): the guest's origin, the operator token. */
  frontDoor?: EdgeOptions;
  /** The world this node runs in (default: the real one). */
  env?: Env;
  logger: Logger;
}

/** Most tasks handed to the replaying worker per message. */
const REPLAY_BATCH_TASKS = 64;
/**
 * The worker returns after replaying this long (at least one task); the rest go again in the next
 * message. Between messages the worker waits, so the main thread gets the CPU at least this often:
 * it acknowledges the primary's frames, and every output of the primary waits on those acks. Without
 * it, on a core the two share, an ack waited behind a whole batch's replay (p99 4.5 ms), whatever
 * the worker's nice value.
 */
const REPLAY_SLICE_MS = 1;
/** A rejoining backup with no VM yet asks the arbiter this often whether a newer epoch superseded the one it joins. */
const REJOIN_RECHECK_MS = 1_000;
/** Bound on the page hashes a joining backup offers (they travel in one handshake frame, as base64). */
const MAX_JOIN_BASE_HASH_BYTES = 1024 * 1024;

/** A checkpoint's memory offered as the base of an incremental snapshot, and the offer made of it. */
interface JoinBase {
  memory: Uint8Array;
  offer: SnapshotBase;
  file: string;
  seq: number;
}

export class BackupNode extends EventEmitter<{ halt: [HaltEvent]; live: [{ epoch: number }] }> {
  url = '';
  private channel!: BackupChannel;
  private server!: Server;
  private readonly machine: RoleMachine;
  private readonly arbiter: ArbiterStore;
  private readonly env: Env;
  private readonly stepper: Stepper;
  private readonly logger: Logger;
  private readonly witness: Witness | null;
  private vm: VmHandle | null = null;
  private config: BootConfig | null = null;
  private assembler = new TaskAssembler('logging channel');
  /** Received, not yet replayed: whole tasks and control entries, in log order. */
  private readonly queue: Assembled[] = [];
  private readonly backlog = new ReplayBacklog();
  private replaying = false;
  /**
   * Tasks to hand the worker next: twice what the last slice got through (tasks it does not reach
   * are cloned to it again next time), up to REPLAY_BATCH_TASKS.
   */
  private replayBatchTasks = REPLAY_BATCH_TASKS;
  private readonly idleWaiters: Array<() => void> = [];
  private replayedSeq = 0;
  private replayedPos = 0;
  private divergence: Divergence | null = null;
  private draining = false;
  /** When the primary was declared lost (the drain began), and when the first claim went out: go-live timings. */
  private lostAtMs: number | null = null;
  private claimStartedAtMs: number | null = null;
  /** At the drain's start: the tasks queued and the backlog estimated for them (the estimate's check). */
  private drainEstimate: { tasks: number; estimateMs: number } | null = null;
  /** Once live: the same serving side a primary has (live loop, Output Rule, channel for a new backup). */
  private serving: Serving | null = null;
  private log: Log | null = null;
  private trace: TraceWriter | null = null;
  private traceBacklog: Entry[] = [];
  private traceOut: { close(): void } | null = null;
  private tickTimer: TimerHandle | undefined;
  private stopped = false;
  private bootError: Error | null = null;
  /** While joining: the memory of the newest checkpoint on disk, offered as the base of an incremental snapshot. */
  private joinBase: JoinBase | null = null;

  private constructor(private readonly options: BackupOptions) {
    super();
    this.logger = options.logger;
    this.env = options.env ?? realEnv;
    this.arbiter = this.env.arbiter(options.sharedDir, options.nodeId);
    // The epoch is learned from the primary's log (its Epoch entry); 0 until then.
    this.witness = this.env.witness?.(options.sharedDir, options.nodeId, options.pair.heartbeatMs) ?? null;
    this.machine = new RoleMachine(roleConfig(options.pair, this.witness !== null), 'backup', 0, this.env.clock.monoMs());
    this.stepper = new Stepper(this.machine, (action) => this.perform(action), this.logger);
    this.arbiter.watchNewer?.((epoch) => this.step({ type: 'newer-epoch', nowMs: this.env.clock.monoMs(), epoch }));
  }

  static async start(options: BackupOptions): Promise<BackupNode> {
    const node = new BackupNode(options);
    await node.begin();
    return node;
  }

  private async begin(): Promise<void> {
    const { options, logger } = this;
    this.server = createFrontDoor(
      {
        liveLoop: () => (this.serving && this.machine.servesTraffic ? this.serving.loop : null),
        notLiveReason: () =>
          this.machine.role === 'halted'
            ? 'this node halted'
            : this.machine.role === 'live'
              ? 'this node is going live (replaying the last entries)'
              : `this node is the ${this.machine.role}; the primary serves`,
        identity: () => ({ node: this.options.nodeId, epoch: this.machine.epoch }),
        // Live in the role machine is not yet serving: go-live first replays what arrived and switches the VM.
        healthy: () => this.serving !== null && this.machine.healthy,
        status: (o) => this.status(o),
      },
      { maxRequestBytes: options.maxRequestBytes, retryAfterSeconds: 1, ...options.frontDoor },
      logger,
    );
    this.url = await this.env.serveHttp(this.server, options.port, options.host);
    this.witness?.start();
    this.joinBase = await this.loadJoinBase();
    this.channel = BackupChannel.connect({
      url: options.primaryUrl,
      secret: options.secret,
      identity: { formatVersion: TRACE_FORMAT_VERSION, engine: engineIdentity(), ...(options.guestHash ? { guestHash: options.guestHash } : {}) },
      nodeId: options.nodeId,
      heartbeatMs: options.pair.heartbeatMs,
      heartbeatTimeoutMs: options.pair.heartbeatTimeoutMs,
      clock: this.env.clock,
      timers: this.env.timers,
      transport: this.env.transport,
      randomBytes: (n) => this.env.randomBytes(n),
      ...(this.joinBase ? { snapshotBase: this.joinBase.offer } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      logger,
    });
    this.channel.replayProgress = () => ({ replayedSeq: this.replayedSeq, backlogMs: this.replayBacklogMs });
    this.channel.on('welcome', (e) => void this.onWelcome(e.bootConfig, e.reconnect, e.snapshot !== undefined));
    this.channel.on('snapshot', (e) => void this.onSnapshot(e));
    this.channel.on('entries', (entries) => this.onEntries(entries));
    // Once live, the peer is a new backup on this node's own channel: the old primary's is history.
    this.channel.on('disconnected', (e) => {
      if (!this.serving) this.step({ type: 'peer-down', nowMs: this.env.clock.monoMs(), reason: e.reason });
    });
    // A refusal is final (wrong secret, another guest or engine, another backup in place).
    this.channel.on('refused', (e) => this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: `the primary refused this backup (${e.code}): ${e.reason}`, exitCode: EXIT_REFUSED }));
    this.tickTimer = this.env.timers.every(tickMs(options.pair), () => this.tick());
  }

  private async onWelcome(bootConfig: unknown, reconnect: boolean, bySnapshot: boolean): Promise<void> {
    // A backup joining by snapshot has nothing to take over with until the snapshot is in: it
    // counts as welcomed (and may suspect its primary) only from then on (onSnapshot).
    if (!bySnapshot || this.vm) this.step({ type: 'peer-up', nowMs: this.env.clock.monoMs() });
    if (reconnect || this.vm || this.config) return;
    if (!bySnapshot) this.joinBase = null; // replaying from seq 1: the base is not needed
    try {
      const header = bootConfig as BootConfig;
      // Same checks as a trace header: every source matches its hash, and this engine can replay it.
      this.config = bootConfigFromTrace(traceHeaderFor(header), 'primary boot config');
      if (bySnapshot) {
        this.logger.info({ guest: this.config.entry, guestHash: this.config.guestHash.slice(0, 12), primary: this.options.primaryUrl }, 'received guest and boot config; joining by snapshot');
        return; // the VM boots from the snapshot when it has arrived
      }
      if (!(await this.bootVm(null))) return;
      this.logger.info({ guest: this.config.entry, guestHash: this.config.guestHash.slice(0, 12), primary: this.options.primaryUrl }, 'received guest and boot config; replaying');
      this.pump();
    } catch (error) {
      this.bootError = error as Error;
      this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: `cannot boot the primary's guest: ${(error as Error).message}` });
    }
  }

  /**
   * A base for an incremental join: the newest valid checkpoint in the checkpoint directory (the
   * shared one by default), whose memory the primary's VM mostly still holds. None: a full snapshot.
   */
  private async loadJoinBase(): Promise<JoinBase | null> {
    const dir = this.options.checkpoint?.dir ?? this.options.sharedDir;
    const started = this.env.clock.monoMs();
    try {
      const loaded = await newestValidCheckpoint(dir, this.logger);
      if (this.options.guestHash && loaded.config.guestHash !== this.options.guestHash) return null;
      const memory = loaded.snapshot.memory;
      const offer = snapshotBaseOf(memory, pageBytesFor(memory.byteLength, MAX_JOIN_BASE_HASH_BYTES));
      this.logger.info(
        { checkpoint: loaded.file, seq: loaded.header.seq, memoryBytes: memory.byteLength, pageBytes: offer.pageBytes, loadMs: Math.round(this.env.clock.monoMs() - started) },
        `offering checkpoint ${loaded.file} (seq ${loaded.header.seq}) as the base of an incremental snapshot, if this backup joins by snapshot`,
      );
      return { memory, offer, file: loaded.file, seq: loaded.header.seq };
    } catch (error) {
      this.logger.debug({ dir, reason: (error as Error).message }, 'no checkpoint to offer as a join base; a join by snapshot sends the whole memory');
      return null;
    }
  }

  /** Joining by snapshot: the VM continues exactly where the primary's was at the snapshot's seq. */
  private async onSnapshot(e: { seq: number; pos: number; data: Uint8Array; delta: boolean }): Promise<void> {
    // A VM booted for an earlier welcome from seq 1 (a primary whose log still started there) has
    // replayed nothing, or this would be a resume: the snapshot replaces it (found by the simulator).
    if (!this.config || (this.vm && (this.replayedSeq > 0 || this.replaying || this.queue.length > 0))) return;
    const replaced = this.vm;
    if (replaced) {
      // Gone at once: nothing after the snapshot may be replayed on it while the snapshot boots.
      this.vm = null;
      void replaced.terminate();
      await this.trace?.close();
      this.trace = null;
    }
    const started = this.env.clock.monoMs();
    const base = this.joinBase;
    this.joinBase = null; // the base's memory can go once the snapshot is decoded
    try {
      const snapshot = await decodeSnapshot(e.data, e.delta ? base?.memory : null, this.env.snapshotCodec);
      if (snapshot.guestHash !== this.config.guestHash) throw new Error('the snapshot is of another guest');
      this.replayedSeq = e.seq;
      this.replayedPos = e.pos;
      if (!(await this.bootVm(snapshot, e.seq + 1))) return;
      this.step({ type: 'peer-up', nowMs: this.env.clock.monoMs() });
      stallForTest();
      const kind = e.delta ? 'incremental' : 'full';
      this.joinedAt = { seq: e.seq, bytes: e.data.byteLength, bootMs: Math.round(this.env.clock.monoMs() - started), kind, ...(e.delta && base ? { baseCheckpointSeq: base.seq } : {}) };
      this.logger.info(
        { seq: e.seq, kind, bytes: e.data.byteLength, memoryBytes: snapshot.memory.byteLength, bootMs: this.joinedAt.bootMs, ...(e.delta && base ? { base: base.file } : {}) },
        `joined by snapshot at seq ${e.seq} (${kind}${e.delta && base ? ` against checkpoint seq ${base.seq}` : ''}); replaying the log after it`,
      );
      this.pump();
    } catch (error) {
      this.bootError = error as Error;
      this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: `cannot boot from the primary's snapshot: ${(error as Error).message}` });
    }
  }

  /** Counts VM boots: a boot that a later one superseded while it ran gives its VM up. */
  private vmGeneration = 0;
  private joinedAt: { seq: number; bytes: number; bootMs: number; kind: 'incremental' | 'full'; baseCheckpointSeq?: number } | null = null;

  /** Boots the replaying VM; false when a later boot (a snapshot join) superseded this one meanwhile. */
  private async bootVm(snapshot: Snapshot | null, traceFirstSeq = 1): Promise<boolean> {
    const config = this.config!;
    const generation = ++this.vmGeneration;
    const vm = this.env.startVm(config.limits);
    vm.onFatal = (error) => this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: `the replaying VM died: ${error.message}` });
    await vm.boot(config, 'replay', snapshot ?? undefined);
    if (generation !== this.vmGeneration || this.stopped) {
      void vm.terminate();
      return false;
    }
    this.vm = vm;
    if (this.options.tracePath) {
      // After a join by snapshot the trace starts at the snapshot's seq + 1 (it does not replay alone).
      const trace = await TraceWriter.open(
        this.options.tracePath,
        traceHeaderFor(config, this.options.nodeId, { outputsMaxBytes: this.options.traceOutputsMaxBytes ?? DEFAULT_TRACE_OUTPUTS_MAX_BYTES }),
        {
          ...(this.options.traceSegmentBytes ? { segmentBytes: this.options.traceSegmentBytes } : {}),
          firstSeq: traceFirstSeq,
        },
      );
      // Entries that arrived while the file was being created go in first, in order.
      trace.append(this.traceBacklog);
      this.traceBacklog = [];
      this.trace = trace;
    }
    return true;
  }

  private onEntries(entries: Entry[]): void {
    if (this.stopped || this.serving || this.machine.role === 'halted') return;
    const assembled: Assembled[] = [];
    try {
      for (const entry of entries) this.assembler.push(entry, assembled);
    } catch (error) {
      this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: (error as Error).message });
      return;
    }
    for (const item of assembled) {
      this.queue.push(item);
      if (item.type === 'task') this.backlog.queued(item.entries);
      // The trace takes whole tasks only: a task cut off by the primary's death never completed
      // there either (its outputs were never released), and after go-live the log continues
      // from the last whole task.
      const traced = item.type === 'task' ? item.entries : [item.entry];
      if (this.trace) this.trace.append(traced);
      else if (this.options.tracePath) for (const entry of traced) this.traceBacklog.push(entry);
    }
    this.pump();
  }

  /** Replays queued tasks in order, one worker message at a time; control entries apply in place. */
  private pump(): void {
    if (this.replaying || !this.vm || this.divergence || this.stopped) return;
    while (this.queue.length > 0 && this.queue[0]!.type === 'control') {
      const { entry } = this.queue.shift() as Extract<Assembled, { type: 'control' }>;
      if (entry.kind === Kind.Epoch) this.step({ type: 'epoch-seen', nowMs: this.env.clock.monoMs(), epoch: decodeEpochMark(entry.payload).epoch });
      this.replayedSeq = entry.seq;
    }
    if (this.queue.length === 0) {
      this.trace?.flush();
      const waiters = this.idleWaiters.splice(0);
      for (const resolve of waiters) resolve();
      if (this.draining) {
        this.draining = false;
        this.step({ type: 'drained', nowMs: this.env.clock.monoMs() });
      }
      return;
    }
    // Tasks leave the queue when replayed: a slice may end before the last of them.
    const tasks: Entry[][] = [];
    for (const item of this.queue) {
      if (tasks.length === this.replayBatchTasks || item.type !== 'task') break;
      tasks.push(item.entries);
    }
    this.replaying = true;
    const replayStartedMs = this.env.clock.monoMs();
    this.vm.replay(tasks, REPLAY_SLICE_MS).then(
      (reply) => {
        this.replaying = false;
        if (reply.results.length < 1 || reply.results.length > tasks.length) {
          this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: `replay returned ${reply.results.length} results for ${tasks.length} tasks` });
          return;
        }
        this.backlog.replayed(tasks.slice(0, reply.results.length), this.env.clock.monoMs() - replayStartedMs);
        this.queue.splice(0, reply.results.length);
        this.replayBatchTasks = Math.min(REPLAY_BATCH_TASKS, 2 * reply.results.length);
        for (let i = 0; i < reply.results.length; i++) {
          const result = reply.results[i]!;
          const task = tasks[i]!;
          if (result.divergence) {
            this.onDivergence(result.divergence);
            return;
          }
          this.replayedSeq = task[task.length - 1]!.seq;
          this.replayedPos = result.pos;
          for (const line of result.console) this.logger.debug({ seq: this.replayedSeq, guest: true, replay: true, level: line.level }, line.text);
        }
        // The primary counts what it appended since our last report as unreplayed: keep reports fresh.
        this.channel.progressed();
        this.pump();
      },
      (error: Error) => {
        this.replaying = false;
        this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: `replay failed: ${error.message}` });
      },
    );
  }

  private onDivergence(d: Divergence): void {
    this.divergence = d;
    this.logger.error(
      { seq: d.seq, pos: d.pos, entryKind: d.expectedKind, expected: d.expected, actual: d.actual },
      `DIVERGENCE: the backup's replay differs from the primary at seq ${d.seq} (pos ${d.pos}); replay stopped, this backup can no longer take over — the primary is UNPROTECTED`,
    );
    this.step({ type: 'fatal', nowMs: this.env.clock.monoMs(), reason: `replay diverged at seq ${d.seq}, pos ${d.pos}: expected ${d.expected}, got ${d.actual}`, exitCode: EXIT_DIVERGED });
  }

  private tick(): void {
    this.witness?.tick();
    const nowMs = this.env.clock.monoMs();
    if (this.serving) {
      this.serving.tick(nowMs);
    } else {
      const heardAt = this.channel.lastHeardAtMs;
      if (heardAt !== null) this.step({ type: 'peer-traffic', nowMs, atMs: heardAt });
      this.recheckJoin(nowMs);
    }
    this.step({ type: 'tick', nowMs });
  }

  private recheckAtMs = 0;

  /**
   * A rejoining backup (joinsEpoch) that holds nothing yet: if a newer epoch exists, the holder it
   * dials was superseded (maybe dead: found by the simulator, seed 74), and it would wait on it for
   * ever. It halts as a node that lost its epoch, so the one rejoin path sends it to the newest holder.
   */
  private recheckJoin(nowMs: number): void {
    const joins = this.options.joinsEpoch;
    if (joins === undefined || this.vm !== null || nowMs < this.recheckAtMs) return;
    this.recheckAtMs = Number.POSITIVE_INFINITY; // one read at a time
    void this.arbiter.newestEpoch().then((newest) => {
      this.recheckAtMs = this.env.clock.monoMs() + REJOIN_RECHECK_MS;
      if (newest !== null && newest > joins && this.vm === null && this.serving === null)
        this.halt({ reason: `epoch ${newest} superseded epoch ${joins}, whose holder this backup was joining (${this.options.primaryUrl}) before it received anything`, exitCode: EXIT_LOST_EPOCH });
    });
  }

  private step(input: RoleInput): void {
    if (this.stopped) return;
    this.stepper.step(input);
  }

  private perform(action: RoleAction): void {
    if (this.serving?.perform(action)) return;
    switch (action.type) {
      case 'drain':
        // Everything received is replayed, including the task in flight, before the claim.
        this.lostAtMs = this.env.clock.monoMs();
        this.drainEstimate = { tasks: this.progress.queuedTasks, estimateMs: Math.round(this.replayBacklogMs) };
        this.draining = true;
        this.pump();
        break;
      case 'claim': {
        const epoch = action.epoch;
        // Once, at the first claim: a claim retried while the directory is unreachable is not a new drain.
        if (!this.serving && this.claimStartedAtMs === null) {
          this.claimStartedAtMs = this.env.clock.monoMs();
          const drainMs = this.lostAtMs === null ? null : Math.round(this.claimStartedAtMs - this.lostAtMs);
          const estimate = this.drainEstimate;
          this.logger.info(
            { epoch, replayedSeq: this.replayedSeq, receivedSeq: this.channel.receivedSeq, drainMs, drainedTasks: estimate?.tasks ?? null, estimatedMs: estimate?.estimateMs ?? null },
            `drained in ${drainMs} ms${estimate ? ` (${estimate.tasks} tasks, estimated ${estimate.estimateMs} ms)` : ''}; claiming epoch ${epoch}`,
          );
        }
        void this.arbiter
          .claim(epoch, this.serving ? 'primary' : 'backup', this.options.pair.leaseMs, action.mayVoid === true)
          .then((r) => this.step(claimResultInput(epoch, this.env.clock.monoMs(), r)));
        break;
      }
      case 'go-live':
        void this.goLive(action.epoch);
        break;
      case 'halt':
        this.halt({ reason: action.reason, exitCode: action.exitCode });
        break;
      case 'drop-peer':
        void this.channel.close();
        break;
      case 'check-epoch': {
        void checkEpoch(this.arbiter, this.machine, this.options.pair.leaseMs, action.checkId, this.options.sharedDir, () => this.env.clock.monoMs()).then((input) => this.step(input));
        break;
      }
      case 'read-witness': {
        const { readId } = action;
        void this.witness?.read(action.peer, action.epoch).then((value) => this.step({ type: 'witness', nowMs: this.env.clock.monoMs(), readId, value }));
        break;
      }
      // Before go-live there is nothing to serve: go-live writes the epoch mark into the new log, and
      // the serving side starts with outputs flowing (or held, if the machine holds them by then).
      case 'append-noop':
      case 'hold-outputs':
      case 'release-all':
      case 'admit':
      case 'release-through':
      case 'epoch-won':
        break;
    }
  }

  private async goLive(epoch: number): Promise<void> {
    const t0 = this.env.clock.monoMs();
    const vm = this.vm;
    if (!vm) {
      this.halt({ reason: 'won the epoch but never received the guest', exitCode: EXIT_REFUSED });
      return;
    }
    // No more entries: cut the channel at once (a partitioned primary never answers a graceful
    // close), then replay whatever arrived since the drain.
    this.channel.pause();
    void this.channel.close();
    await this.whenReplayed();
    const state = await vm.goLive();
    const t1 = this.env.clock.monoMs();
    const { options } = this;
    if (options.checkpoint) {
      // Files beyond what this node drained belong to no future: move them aside.
      const moved = await supersedeBeyond(options.checkpoint.dir, this.replayedSeq, epoch);
      if (moved.length > 0) this.logger.warn({ moved: moved.length }, `moved ${moved.length} checkpoint/log files beyond seq ${this.replayedSeq} aside (superseded-epoch-${epoch})`);
    }
    if (this.stopped) return;
    // From here to serving.start nothing waits: no role action can fall between the two sides.
    const log = new Log(this.replayedSeq, this.replayedPos);
    this.log = log;
    if (this.trace) {
      const out = traceSink(this.trace);
      this.traceOut = out;
      log.addSink(out.sink);
    }
    const serving = new Serving(
      {
        vm,
        config: this.config!,
        log,
        arbiter: this.arbiter,
        env: this.env,
        machine: () => this.machine,
        step: (input) => this.step(input),
        bootEpoch: epoch,
        halt: (event) => this.halt(event),
        history: new EpochHistory(this.channel.history.through(this.replayedSeq)),
      },
      { nodeId: options.nodeId, pair: options.pair, loop: options.loop, replication: options.replication ?? null, logger: this.logger },
    );
    if (this.trace) serving.loop.onTask = traceOutputsHook(this.trace);
    if (options.checkpoint) serving.startCheckpointer(options.checkpoint);
    this.serving = serving;
    serving.start({ results: [], state }, epoch);
    const fetches = await vm.pendingFetches();
    serving.loop.reissue(fetches);
    // The old primary's log chain may not hold everything this node drained: start a fresh one.
    void serving.checkpointer?.now('go-live').catch((error: Error) => this.logger.error({ err: error }, 'go-live checkpoint failed'));
    // sinceLostMs: from declaring the primary lost to serving (drain + claim + switch); add the
    // heartbeat timeout for the time from the fault itself.
    const sinceLostMs = this.lostAtMs === null ? null : Math.round(this.env.clock.monoMs() - this.lostAtMs);
    this.logger.info(
      { epoch, seq: this.replayedSeq, pos: state.pos, switchMs: Math.round(t1 - t0), totalMs: Math.round(this.env.clock.monoMs() - t0), sinceLostMs, reissuedFetches: fetches.length },
      `LIVE: won epoch ${epoch}, drained through seq ${this.replayedSeq}; serving ${sinceLostMs} ms after the primary was declared lost`,
    );
    try {
      await serving.listen();
      if (serving.replicationUrl) this.logger.info({ replication: serving.replicationUrl }, `a new backup can join this node on ${serving.replicationUrl}`);
    } catch (error) {
      // Serving goes on unprotected: better than refusing traffic because a port is taken.
      this.logger.error({ err: error }, `cannot open the logging channel for a new backup: ${(error as Error).message}; serving alone`);
    }
    this.emit('live', { epoch });
  }

  private whenReplayed(): Promise<void> {
    if (!this.replaying && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.pump();
    });
  }

  private halt(event: HaltEvent): void {
    if (this.stopped) return;
    const dropped = this.serving?.halt() ?? 0;
    this.logger.error({ exitCode: event.exitCode, heldOutputsDropped: dropped }, `backup halted: ${event.reason}`);
    // One that never served joins the primary it was given when no newer holder is recorded (not a
    // rejoin that was sent there by a record: that one waits for the newest holder's record).
    const fallback = this.serving === null && this.options.joinsEpoch === undefined ? this.options.primaryUrl : null;
    void this.stop()
      .then(() => rejoinTarget(event, this.arbiter, this.options.nodeId, this.env, this.options.pair.claimRetryMs, fallback))
      .then((e) => this.emit('halt', e));
  }

  /** The role machine, for read-only views (the simulator's checks). */
  get roleMachine(): RoleMachine {
    return this.machine;
  }

  /** The serving side once live (null before), for read-only views (the simulator's checks). */
  get servingSide(): Serving | null {
    return this.serving;
  }

  /** How far this backup has received and replayed, and the whole tasks queued between. */
  get progress(): { receivedSeq: number; replayedSeq: number; queuedTasks: number } {
    let tasks = 0;
    for (const item of this.queue) if (item.type === 'task') tasks++;
    return { receivedSeq: this.channel?.receivedSeq ?? 0, replayedSeq: this.replayedSeq, queuedTasks: tasks };
  }

  /** What a takeover would have to replay now, estimated in ms (the tasks queued, by their recorded work, at the measured cost). */
  get replayBacklogMs(): number {
    return this.backlog.estimateMs();
  }

  async status(options: { hash: boolean } = { hash: true }): Promise<Record<string, unknown>> {
    const state = this.vm?.alive && !this.divergence ? await this.vm.state(options.hash) : null;
    return {
      role: this.machine.role,
      node: this.options.nodeId,
      epoch: this.machine.epoch,
      seq: this.log ? this.log.lastSeq : this.replayedSeq,
      stateHash: state?.stateHash ?? null,
      pos: state?.pos ?? null,
      receivedSeq: this.channel.receivedSeq,
      replayedSeq: this.replayedSeq,
      queuedTasks: this.queue.length,
      replayBacklogMs: this.serving ? 0 : Math.round(this.replayBacklogMs),
      replayTaskMs: Math.round(this.backlog.taskMs * 1000) / 1000,
      connected: this.channel.connected,
      divergence: this.divergence,
      joinedBySnapshot: this.joinedAt,
      bootError: this.bootError?.message ?? null,
      primary: this.options.primaryUrl,
      arbiter: arbiterLabel(this.options.sharedDir),
      ...(this.serving ? this.serving.status() : { lastCheckpoint: null, checkpoint: null }),
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
    await this.channel?.close();
    this.traceOut?.close();
    if (this.trace) await this.trace.close();
    await this.witness?.stop();
    await this.vm?.terminate();
  }
}

/**
 * Test only (process tests of issue 15): FTJS_TEST_JOIN_STALL_MS holds this node's main thread that
 * long right after a join by snapshot, as a slow boot on a starved host does, while the primary's
 * frames wait unread. Unset in production: nothing happens.
 */
function stallForTest(): void {
  const ms = Number(process.env.FTJS_TEST_JOIN_STALL_MS ?? 0);
  if (!(ms > 0)) return;
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: a stalled main thread
  }
}

// The primary node: serves the guest live, streams its log to one backup over the logging channel,
// and holds every output until the backup has acknowledged the entry that produced it. All role
// decisions come from the pure RoleMachine; this shell performs its actions.

import type { Server } from 'node:http';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Kind, type Entry } from '../logging-channel/entry.js';
import { encodeEpochMark } from '../logging-channel/codec.js';
import { PrimaryChannel } from '../logging-channel/primary-channel.js';
import { RetainedLog } from '../logging-channel/retained-log.js';
import { TraceWriter } from '../logging-channel/trace-file.js';
import { LagTracker } from '../recorder/lag.js';
import { Log, traceSink } from '../recorder/log.js';
import { OutputBuffer } from '../recorder/output-buffer.js';
import { Arbiter } from './arbiter.js';
import { traceHeaderFor } from './boot-config.js';
import { createFrontDoor } from './front-door.js';
import { LiveLoop, type LiveLoopOptions } from './live-loop.js';
import { drive, engineIdentity, listen, monotonicMs, roleConfig, tickMs, TRACE_FORMAT_VERSION, type PairSettings } from './pair.js';
import { RoleMachine, type RoleAction } from './role.js';
import { VmHost } from './vm-host.js';
import type { BootConfig } from './vm.js';
import { MAX_BATCH_BYTES } from '../logging-channel/codec.js';

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
  logger: Logger;
}

export interface HaltEvent {
  reason: string;
  exitCode: number;
}

export class PrimaryNode extends EventEmitter<{ halt: [HaltEvent] }> {
  url = '';
  replicationUrl = '';
  private readonly log: Log;
  private readonly retained: RetainedLog;
  private readonly lag = new LagTracker();
  private readonly outputs = new OutputBuffer(true);
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
  ) {
    super();
    this.logger = options.logger;
    this.log = new Log();
    // History is kept for a backup that joins from seq 1; bounded, with headroom for one batch.
    this.retained = new RetainedLog(options.pair.maxLogBufferBytes + MAX_BATCH_BYTES);
    this.arbiter = new Arbiter(options.sharedDir, options.nodeId);
  }

  static async start(options: PrimaryOptions): Promise<PrimaryNode> {
    const vm = VmHost.start(options.config.limits);
    const node = new PrimaryNode(options, vm);
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
    const epoch = await this.claimFirstEpoch();
    this.vm.onFatal = (error) => this.halt({ reason: `the VM died: ${error.message}`, exitCode: 70 });

    if (options.tracePath) {
      this.trace = await TraceWriter.open(options.tracePath, traceHeaderFor(options.config, options.nodeId));
      const out = traceSink(this.trace);
      this.traceOut = out;
      this.log.addSink(out.sink);
    }
    this.log.addSink((entries) => this.onAppended(entries));

    const started = monotonicMs();
    const bootReply = await this.vm.boot(options.config, 'live');
    this.loop = new LiveLoop(this.vm, this.log, { hold: (seq, release) => this.outputs.hold(seq, release) }, logger, { ...options.loop, admit: () => this.admitting });
    this.loop.onFatal = (error) => this.halt({ reason: `the live loop failed: ${error.message}`, exitCode: 70 });
    this.loop.start(bootReply);
    this.log.appendControl(Kind.Epoch, encodeEpochMark({ epoch, nodeId: options.nodeId }));
    logger.info({ epoch, guest: options.config.entry, guestHash: options.config.guestHash.slice(0, 12), bootMs: Math.round(monotonicMs() - started) }, 'guest booted');

    this.channel = await PrimaryChannel.listen({
      host: options.replicationHost,
      port: options.replicationPort,
      secret: options.secret,
      identity: { formatVersion: TRACE_FORMAT_VERSION, engine: engineIdentity(), guestHash: options.config.guestHash },
      bootConfig: options.config,
      log: this.retained,
      heartbeatMs: options.pair.heartbeatMs,
      heartbeatTimeoutMs: options.pair.heartbeatTimeoutMs,
      logger,
    });
    this.channel.on('attached', (e) => {
      logger.info({ backup: e.nodeId, remote: e.remote, resumeFromSeq: e.resumeFromSeq }, 'backup attached');
      if (this.machine) this.step({ type: 'peer-up', nowMs: monotonicMs() });
      else this.attachedBeforeStart = true;
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
        status: () => this.status(),
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

  private reportLag(nowMs: number): void {
    const lag = this.lag.now(nowMs);
    this.step({ type: 'lag', nowMs, lagMs: lag.ms, lagBytes: lag.bytes });
  }

  private tick(): void {
    const nowMs = monotonicMs();
    const heardAt = this.channel.lastHeardAtMs;
    if (heardAt !== null) this.step({ type: 'peer-traffic', nowMs, atMs: heardAt });
    this.step({ type: 'tick', nowMs });
    if (this.machine.hasBackup) this.reportLag(nowMs);
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

  async status(): Promise<Record<string, unknown>> {
    const state = this.vm.alive ? await this.vm.state(true) : null;
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
    this.traceOut?.close();
    if (this.trace) await this.trace.close();
    await this.vm.terminate();
  }
}

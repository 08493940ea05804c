// The serving side of a simulated node (primary, or a backup once live): the production live loop,
// output buffer, lag tracker, retained log and primary stream session, wired as hypervisor/node/serving.ts
// and primary-channel.ts wire them, over the simulated network instead of a WebSocket server.

import { LiveLoop } from '../../hypervisor/node/live-loop.js';
import type { RoleAction } from '../../hypervisor/node/role.js';
import type { RunReply } from '../../hypervisor/worker/vm-protocol.js';
import { RefusalError } from '../../logging-channel/auth.js';
import { encodeEpochMark } from '../../logging-channel/codec.js';
import { type Entry, Kind } from '../../logging-channel/entry.js';
import { DEFAULT_MAX_FRAME_BYTES, decodeFrame, encodeControlFrame, encodeEntriesFrame, encodeHeartbeatFrame, entriesBudgetBytes, FrameError } from '../../logging-channel/frames.js';
import { PrimarySession, type PrimarySessionAction } from '../../logging-channel/primary-session.js';
import { RetainedLog } from '../../logging-channel/retained-log.js';
import { LagTracker } from '../../recorder/lag.js';
import type { Log } from '../../recorder/log.js';
import { OutputBuffer } from '../../recorder/output-buffer.js';
import { ReplayLag } from '../../recorder/replay-lag.js';
import type { End, Message } from './sim-net.js';
import type { SimNode } from './sim-node.js';

/** A fresh backup joins by snapshot once the log is this long (small, so joins by snapshot happen). */
export const SIM_JOIN_BY_SNAPSHOT_AFTER = 200;

interface Attached {
  end: End;
  nodeId: string;
}

export class SimServing {
  readonly retained: RetainedLog;
  readonly loop: LiveLoop;
  readonly outputs: OutputBuffer;
  readonly stream: PrimarySession;
  private readonly lag = new LagTracker();
  private attachedNow: Attached | null = null;
  /** The attached backup's last replay backlog report (from its heartbeats), for the connection it came on. */
  private replayBacklog: { lag: ReplayLag; end: End } | null = null;
  private admitting = true;
  private joinPaused = false;
  private pumpQueued = false;
  stopped = false;
  /** Identity of this serving instance, for the checker (one per go-live). */
  readonly incarnation: string;

  constructor(
    private readonly node: SimNode,
    readonly log: Log,
  ) {
    const { env } = node;
    this.incarnation = `${node.id}#${node.world.nowMs.toFixed(3)}`;
    this.retained = new RetainedLog(node.pair.maxLogBufferBytes + DEFAULT_MAX_FRAME_BYTES, log.lastSeq, log.pos);
    this.stream = new PrimarySession({ heartbeatMs: node.pair.heartbeatMs, heartbeatTimeoutMs: node.pair.heartbeatTimeoutMs });
    this.outputs = new OutputBuffer(!(node.machine?.holdsOutputs ?? false), () => !node.machine || node.machine.mayRelease(env.clock.monoMs()));
    log.addSink((entries) => this.onAppended(entries));
    const gate = node.faults.gate ? node.faults.gate(this) : { hold: (seq: number, release: () => void) => this.outputs.hold(seq, release) };
    this.loop = new LiveLoop(
      node.vm!,
      log,
      { hold: (seq, release) => gate.hold(seq, () => node.sim.released(node, this, seq, release)) },
      node.logger,
      { maxQueuedEvents: 256, batchMaxEvents: 16, fetchTimeoutMs: 5_000, maxFetchResponseBytes: 1 << 20, admit: () => this.admitting && !this.joinPaused },
      env,
    );
    this.loop.onFatal = (error) => node.halt(`the live loop failed: ${error.message}`, 70);
  }

  get attached(): boolean {
    return this.attachedNow !== null && this.stream.attached;
  }

  get attachedNodeId(): string | null {
    return this.attachedNow?.nodeId ?? null;
  }

  start(reply: RunReply, epoch: number): void {
    this.loop.start(reply);
    this.markEpoch(epoch);
  }

  markEpoch(epoch: number): void {
    this.log.appendControl(Kind.Epoch, encodeEpochMark({ epoch, nodeId: this.node.id }));
  }

  private get joinsBySnapshot(): boolean {
    return this.retained.firstSeq > 1 || this.retained.lastSeq >= SIM_JOIN_BY_SNAPSHOT_AFTER;
  }

  // ---------------------------------------------------------------- the listener (handshake)

  /** A backup dialled: the handshake, as primary-channel.ts onAuth does it (auth is out of scope here). */
  accept(end: End): boolean {
    if (this.stopped) return false;
    end.onMessage = (m) => this.onHandshake(end, m);
    end.onClose = () => {};
    return true;
  }

  private onHandshake(end: End, m: Message): void {
    if (m.kind !== 'frame' || this.stopped) return end.close('protocol error: expected auth');
    let frame;
    try {
      frame = decodeFrame(m.bytes);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      return end.close(`protocol error: ${error.message}`);
    }
    if (frame.type !== 'control' || frame.message.t !== 'auth') return end.close('protocol error: expected auth');
    const nodeId = String(frame.message.nodeId);
    const resumeFromSeq = Number(frame.message.resumeFromSeq);
    const current = this.attachedNow;
    if (current !== null && current.nodeId !== nodeId) {
      end.send({ kind: 'frame', bytes: encodeControlFrame({ t: 'refuse', code: 4005, reason: `already attached: ${current.nodeId}` }) });
      return end.close('refused');
    }
    const bySnapshot = resumeFromSeq === 0 && this.joinsBySnapshot;
    if (!bySnapshot) {
      const problem = PrimarySession.resumeProblem(resumeFromSeq, this.retained.firstSeq, this.retained.lastSeq);
      if (problem) {
        end.send({ kind: 'frame', bytes: encodeControlFrame({ t: 'refuse', code: problem.code, reason: problem.reason }) });
        return end.close('refused');
      }
    }
    if (current !== null) this.detach('replaced by a newer connection from the same node');
    this.attachedNow = { end, nodeId };
    end.onMessage = (msg) => this.onAttachedMessage(end, msg);
    end.onClose = (reason) => {
      if (this.attachedNow?.end === end) this.detach(`connection closed: ${reason}`);
    };
    const actions = this.stream.attach(resumeFromSeq, this.node.env.clock.monoMs(), bySnapshot);
    this.node.sim.note(`${this.node.id}: backup ${nodeId} attached (resume ${resumeFromSeq}${bySnapshot ? ', by snapshot' : ''})`);
    if (bySnapshot) {
      void this.sendSnapshot(end, nodeId);
      return;
    }
    end.send({ kind: 'frame', bytes: encodeControlFrame({ t: 'welcome', firstSeq: resumeFromSeq + 1 }) });
    this.onBackupAttached();
    this.performStream(end, actions);
    this.schedulePump();
  }

  private onBackupAttached(): void {
    this.node.step({ type: 'peer-up', nowMs: this.node.env.clock.monoMs(), peer: this.attachedNow!.nodeId });
    this.markEpoch(this.node.machine.epoch);
  }

  private async sendSnapshot(end: End, nodeId: string): Promise<void> {
    this.joinPaused = true;
    let snapshot;
    let seq: number;
    let pos: number;
    try {
      snapshot = await this.node.vm!.snapshot();
      seq = this.log.lastSeq;
      pos = this.log.pos;
      this.markEpoch(this.node.machine.epoch);
    } catch (error) {
      this.joinPaused = false;
      if (this.attachedNow?.end === end) this.detach(`cannot take a snapshot: ${(error as Error).message}`);
      end.close('primary cannot take a snapshot');
      return;
    } finally {
      this.joinPaused = false;
      this.loop.kick();
    }
    if (this.attachedNow?.end !== end || !end.open || this.stopped) return;
    end.send({ kind: 'frame', bytes: encodeControlFrame({ t: 'welcome', firstSeq: seq + 1, snapshot: { seq, pos } }) });
    this.stream.snapshotWelcomed(this.node.env.clock.monoMs());
    this.onBackupAttached();
    end.send({ kind: 'snapshot', seq, pos, snapshot });
    this.stream.snapshotSent(seq);
    this.node.sim.note(`${this.node.id}: snapshot at seq ${seq} sent to ${nodeId}`);
    this.schedulePump();
  }

  private onAttachedMessage(end: End, m: Message): void {
    if (this.attachedNow?.end !== end || this.stopped) return;
    if (m.kind !== 'frame') return this.protocolError(end, 'unexpected message');
    try {
      const frame = decodeFrame(m.bytes);
      if (frame.type === 'control' && frame.message.t === 'refuse') {
        this.detach(`refused by the backup: ${String(frame.message.reason)}`);
        end.close('refused by the backup');
        return;
      }
      this.performStream(end, this.stream.onFrame(frame, this.node.env.clock.monoMs()));
    } catch (error) {
      if (error instanceof FrameError || error instanceof RefusalError) return this.protocolError(end, error.message);
      throw error;
    }
  }

  private protocolError(end: End, why: string): void {
    this.node.sim.note(`${this.node.id}: dropping backup: ${why}`);
    this.detach(why);
    end.close(why);
  }

  private performStream(end: End, actions: PrimarySessionAction[]): void {
    for (const action of actions) {
      switch (action.type) {
        case 'acked':
          this.onAck(action.seq);
          break;
        case 'send-heartbeat':
          end.send({ kind: 'frame', bytes: encodeHeartbeatFrame(action.seq) });
          break;
        case 'replay-progress':
          // As hypervisor/node/serving.ts: the backup's backlog report feeds lag control.
          if (this.replayBacklog?.end !== end) this.replayBacklog = { lag: new ReplayLag(), end };
          this.replayBacklog.lag.reported(action);
          this.reportLag(this.node.env.clock.monoMs());
          break;
        case 'peer-silent':
        case 'peer-heard':
          break;
      }
    }
  }

  private onAck(seq: number): void {
    const nowMs = this.node.env.clock.monoMs();
    this.lag.acknowledged(seq, nowMs);
    if (this.joinsBySnapshot && seq >= this.retained.firstSeq) this.retained.trimThrough(Math.min(seq, this.retained.lastSeq));
    this.node.step({ type: 'acked', nowMs, seq });
    this.reportLag(nowMs);
  }

  detach(reason: string): void {
    const a = this.attachedNow;
    if (!a) return;
    this.attachedNow = null;
    this.stream.detach();
    this.node.sim.note(`${this.node.id}: backup ${a.nodeId} detached: ${reason}`);
    this.node.step({ type: 'peer-down', nowMs: this.node.env.clock.monoMs(), reason: `${a.nodeId}: ${reason}`, peer: a.nodeId });
  }

  // ---------------------------------------------------------------- the log and the stream

  private onAppended(entries: readonly Entry[]): void {
    const nowMs = this.node.env.clock.monoMs();
    const before = this.retained.bytes;
    this.retained.append(entries);
    this.lag.appended(entries[entries.length - 1]!.seq, this.retained.bytes - before, nowMs);
    this.schedulePump();
    this.node.step({ type: 'appended', nowMs });
  }

  private schedulePump(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    this.node.world.at(0, this.node, () => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  private pump(): void {
    const a = this.attachedNow;
    if (a === null || !this.stream.streaming || !a.end.open || this.stopped) return;
    const budget = entriesBudgetBytes(DEFAULT_MAX_FRAME_BYTES);
    while (this.stream.sentSeq < this.retained.lastSeq) {
      if (this.stream.sentSeq + 1 < this.retained.firstSeq) {
        this.detach(`entries from seq ${this.stream.sentSeq + 1} were trimmed before they were sent`);
        a.end.close('cannot resume');
        return;
      }
      const entries = this.retained.from(this.stream.sentSeq + 1, budget);
      a.end.send({ kind: 'frame', bytes: encodeEntriesFrame(entries, DEFAULT_MAX_FRAME_BYTES) });
      this.stream.entriesSent(entries[entries.length - 1]!.seq);
    }
  }

  private reportLag(nowMs: number): void {
    const lag = this.lag.now(nowMs);
    const r = this.replayBacklog;
    const backlog = r && this.attachedNow?.end === r.end ? r.lag.backlogMs(this.log.lastSeq) : null;
    this.node.step({ type: 'lag', nowMs, lagMs: lag.ms, lagBytes: lag.bytes, ...(backlog !== null ? { replayBacklogMs: backlog } : {}) });
  }

  /** The channel's tick (heartbeats, silence) and the node's serving tick. */
  tick(nowMs: number): void {
    const a = this.attachedNow;
    if (a && this.stream.attached) this.performStream(a.end, this.stream.tick(nowMs, this.retained.lastSeq));
    const heardAt = this.stream.lastHeardAtMs;
    if (heardAt !== null) this.node.step({ type: 'peer-traffic', nowMs, atMs: heardAt });
    this.outputs.retry();
    if (this.node.machine.hasBackup) this.reportLag(nowMs);
  }

  perform(action: RoleAction): boolean {
    switch (action.type) {
      case 'append-noop':
        this.log.appendControl(Kind.Noop, new Uint8Array(0));
        return true;
      case 'hold-outputs':
        this.lag.rebase(this.node.env.clock.monoMs());
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
        return true;
      case 'admit':
        this.admitting = action.admit;
        if (action.admit) this.loop.kick();
        return true;
      case 'drop-peer':
        if (this.attachedNow) {
          const end = this.attachedNow.end;
          this.detach(`dropped: ${action.reason}`);
          end.close(`dropped: ${action.reason}`);
        }
        return true;
      default:
        return false;
    }
  }

  stop(): void {
    this.stopped = true;
    this.outputs.halt();
    void this.loop.stop();
    this.attachedNow?.end.close('stopping');
  }
}

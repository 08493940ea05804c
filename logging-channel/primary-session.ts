// The primary's side of the logging-channel stream as a pure state machine: frames and time in,
// actions out (etcd raft's RawNode/Ready). It holds the stream's facts and is their one owner:
//   ackedSeq — through which seq the backup confirmed receipt (cumulative; a resume point counts);
//   sentSeq  — the last seq handed to the transport on the attached connection;
//   lastHeardAtMs — when the last frame from the attached backup arrived (any frame is a heartbeat).
// It does no I/O and reads no clock: the socket shell (primary-channel.ts) and the simulator
// (test/sim/) feed it and perform what it returns. Protocol violations throw RefusalError (the
// shell refuses or drops the peer); broken invariants of our own side throw InvariantError.

import { type AuthMessage, checkIdentity, type PrimaryIdentity, RefusalError, RefuseCode } from './auth.js';
import type { EpochHistory } from './epoch-history.js';
import type { Frame } from './frames.js';
import { invariant } from './invariant.js';

/** What the primary knows when a backup's auth arrives (its proof already verified by the shell). */
export interface AdmissionContext {
  identity: PrimaryIdentity;
  /** nodeId of the backup attached now, or null. */
  attachedNodeId: string | null;
  /** The retained log: what a resume can be served from, and the lineage it is checked against. */
  log: { firstSeq: number; lastSeq: number; history: EpochHistory };
  /** A backup that joins now (resume from 0) gets a snapshot rather than the log from seq 1. */
  joinsBySnapshot: boolean;
}

/** The handshake's verdict on an authenticated backup. */
export type Admission =
  | { type: 'refuse'; refusal: RefusalError }
  /** Welcome it: by snapshot, or resuming from its resume point; `replaces` is the same node's older connection, to close. */
  | { type: 'admit'; bySnapshot: boolean; firstSeq: number; replaces: string | null };

export interface StreamTiming {
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
}

export type PrimarySessionAction =
  /** Send a HEARTBEAT frame carrying the primary's last log seq. */
  | { type: 'send-heartbeat'; seq: number }
  /** The backup has received every entry through `seq` (new, larger than any before). */
  | { type: 'acked'; seq: number }
  /** No frame from the attached backup for the heartbeat timeout; once per silence. */
  | { type: 'peer-silent'; silentMs: number }
  /** The backup was heard again after a reported silence. */
  | { type: 'peer-heard' }
  /** The backup's heartbeat said how far it has replayed and how long the rest would take. */
  | { type: 'replay-progress'; receivedSeq: number; replayedSeq: number; backlogMs: number };

export class PrimarySession {
  private acked = 0;
  private sent = 0;
  private attachedNow = false;
  /** A joining backup receives its snapshot first: no entries, no heartbeats, no silence before the welcome. */
  private welcomed = false;
  private snapshotting = false;
  private lastHeard: number | null = null;
  private lastHeartbeatAtMs = 0;
  private silentReported = false;

  constructor(readonly timing: StreamTiming) {}

  get ackedSeq(): number {
    return this.acked;
  }

  get sentSeq(): number {
    return this.attachedNow ? this.sent : 0;
  }

  get attached(): boolean {
    return this.attachedNow;
  }

  /** When the last frame from an attached backup arrived; null before any attached (kept after a detach). */
  get lastHeardAtMs(): number | null {
    return this.lastHeard;
  }

  /** Entries may go out now (attached, welcomed, not in the middle of a snapshot). */
  get streaming(): boolean {
    return this.attachedNow && this.welcomed && !this.snapshotting;
  }

  /**
   * The handshake's rules, in order: identity (format, engine, guest), one backup at a time (the same
   * node dialling again replaces its old connection), then the resume point: a fresh backup joins (by
   * snapshot once the log is long or trimmed), a resuming one must hold a prefix of this log (in range,
   * and of the same lineage: epoch-history.ts). Pure: the shell performs the verdict.
   */
  static admission(auth: AuthMessage, ctx: AdmissionContext): Admission {
    const refuse = (refusal: RefusalError): Admission => ({ type: 'refuse', refusal });
    const mismatch = checkIdentity(ctx.identity, auth);
    if (mismatch !== null) return refuse(mismatch);
    if (ctx.attachedNodeId !== null && ctx.attachedNodeId !== auth.nodeId) {
      return refuse(new RefusalError(RefuseCode.AlreadyAttached, `already attached: backup "${ctx.attachedNodeId}" is attached; refusing backup "${auth.nodeId}"`));
    }
    const replaces = ctx.attachedNodeId;
    if (auth.resumeFromSeq === 0 && ctx.joinsBySnapshot) return { type: 'admit', bySnapshot: true, firstSeq: 0, replaces };
    const problem = PrimarySession.resumeProblem(auth.resumeFromSeq, ctx.log.firstSeq, ctx.log.lastSeq) ?? ctx.log.history.resumeProblem(auth.resumeFromSeq, auth.lineage ?? null);
    if (problem !== null) return refuse(problem);
    return { type: 'admit', bySnapshot: false, firstSeq: auth.resumeFromSeq + 1, replaces };
  }

  /** Why a backup that has received through `resumeFromSeq` cannot resume on a log of firstSeq..lastSeq (null: it can). */
  static resumeProblem(resumeFromSeq: number, firstSeq: number, lastSeq: number): RefusalError | null {
    if (resumeFromSeq > lastSeq) {
      return new RefusalError(
        RefuseCode.Behind,
        `cannot resume: the backup has received through seq ${resumeFromSeq} but this primary's log ends at seq ${lastSeq} (this node is behind: a stale node of an older epoch, or a backup of another run)`,
      );
    }
    if (resumeFromSeq + 1 < firstSeq) {
      return new RefusalError(RefuseCode.CannotResume, `cannot resume: the backup needs entries from seq ${resumeFromSeq + 1}, but this primary retains only seq ${firstSeq}..${lastSeq}`);
    }
    return null;
  }

  /**
   * An authenticated backup attached. Resuming: its resume point is a receipt, and may cover acks
   * that were in flight when the old connection died (an 'acked' action then). Joining by snapshot:
   * nothing is acknowledged until the snapshot is received.
   */
  attach(resumeFromSeq: number, nowMs: number, bySnapshot: boolean): PrimarySessionAction[] {
    const out: PrimarySessionAction[] = [];
    this.attachedNow = true;
    this.silentReported = false;
    this.lastHeard = nowMs;
    this.lastHeartbeatAtMs = nowMs;
    if (bySnapshot) {
      this.snapshotting = true;
      this.welcomed = false;
      this.sent = 0;
      this.acked = 0;
      return out;
    }
    this.snapshotting = false;
    this.welcomed = true;
    this.sent = resumeFromSeq;
    const previous = this.acked;
    this.acked = resumeFromSeq;
    if (resumeFromSeq > previous) out.push({ type: 'acked', seq: resumeFromSeq });
    return out;
  }

  /** The welcome of a snapshot join went out: the silence clock starts now (the snapshot took its time). */
  snapshotWelcomed(nowMs: number): void {
    invariant(this.attachedNow && this.snapshotting, 'snapshot welcome without a snapshot join in progress');
    this.welcomed = true;
    this.lastHeard = nowMs;
    this.lastHeartbeatAtMs = nowMs;
  }

  /** Every chunk of the snapshot (the state through `seq`) went out: the log after it follows. */
  snapshotSent(seq: number): void {
    this.sent = seq;
    this.snapshotting = false;
  }

  /** Entries through `lastSeq` were handed to the transport. */
  entriesSent(lastSeq: number): void {
    invariant(this.streaming, 'entries sent while not streaming');
    invariant(lastSeq > this.sent, `entries sent out of order: seq ${lastSeq} after ${this.sent}`);
    this.sent = lastSeq;
  }

  detach(): void {
    this.attachedNow = false;
    this.welcomed = false;
    this.snapshotting = false;
  }

  /** A frame from the attached backup. Throws RefusalError when it breaks the protocol. */
  onFrame(frame: Frame, nowMs: number): PrimarySessionAction[] {
    invariant(this.attachedNow, 'frame handed to a detached session');
    const out: PrimarySessionAction[] = [];
    this.lastHeard = nowMs;
    if (this.silentReported) {
      this.silentReported = false;
      out.push({ type: 'peer-heard' });
    }
    switch (frame.type) {
      case 'ack':
        if (frame.seq <= this.acked) throw new RefusalError(RefuseCode.ProtocolError, `protocol error: regressing ack: seq ${frame.seq} after ack of seq ${this.acked}`);
        if (frame.seq > this.sent) throw new RefusalError(RefuseCode.ProtocolError, `protocol error: ack of seq ${frame.seq} beyond the last sent seq ${this.sent}`);
        this.acked = frame.seq;
        out.push({ type: 'acked', seq: frame.seq });
        return out;
      case 'heartbeat':
        if (frame.seq > this.sent) throw new RefusalError(RefuseCode.ProtocolError, `protocol error: heartbeat claims seq ${frame.seq}, beyond the last sent seq ${this.sent}`);
        if (frame.replay) {
          if (frame.replay.replayedSeq > frame.seq)
            throw new RefusalError(RefuseCode.ProtocolError, `protocol error: heartbeat says seq ${frame.replay.replayedSeq} replayed, beyond seq ${frame.seq} received`);
          out.push({ type: 'replay-progress', receivedSeq: frame.seq, replayedSeq: frame.replay.replayedSeq, backlogMs: frame.replay.backlogMs });
        }
        return out;
      case 'entries':
        throw new RefusalError(RefuseCode.ProtocolError, 'protocol error: unexpected ENTRIES frame from the backup');
      case 'snapshot':
        throw new RefusalError(RefuseCode.ProtocolError, 'protocol error: unexpected SNAPSHOT frame from the backup');
      case 'control':
        // Refusals are the shell's business (they end the connection); anything else is a violation.
        throw new RefusalError(RefuseCode.ProtocolError, `protocol error: unexpected CONTROL "${frame.message.t}" message after the handshake`);
    }
  }

  /** Periodic: heartbeat on time, report silence once. `logLastSeq`: the primary's last log seq. */
  tick(nowMs: number, logLastSeq: number): PrimarySessionAction[] {
    const out: PrimarySessionAction[] = [];
    if (!this.attachedNow || !this.welcomed) return out;
    if (nowMs - this.lastHeartbeatAtMs >= this.timing.heartbeatMs) {
      this.lastHeartbeatAtMs = nowMs;
      out.push({ type: 'send-heartbeat', seq: logLastSeq });
    }
    const silentMs = Math.round(nowMs - (this.lastHeard ?? nowMs));
    if (!this.silentReported && silentMs >= this.timing.heartbeatTimeoutMs) {
      this.silentReported = true;
      out.push({ type: 'peer-silent', silentMs });
    }
    return out;
  }
}

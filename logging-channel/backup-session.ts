// The backup's side of the logging-channel stream as a pure state machine: frames and time in,
// actions out. It is the one owner of receivedSeq (every entry through it has been received and
// acknowledged) and of the silence clock. Rules:
//   - receipt is acknowledged at once, before the entries go to replay (the Output Rule is about
//     receipt, and the primary's outputs wait on this ack);
//   - entries are delivered exactly once and in order across reconnects: a resend overlap is dropped,
//     a gap is a protocol error;
//   - a welcome must start the stream right after what was received (or carry a snapshot on a join).
// The socket shell (backup-channel.ts) and the simulator feed it and perform its actions.

import { RefusalError, RefuseCode } from './auth.js';
import type { Entry } from './entry.js';
import { invariant } from './invariant.js';
import type { StreamTiming } from './primary-session.js';

export type BackupSessionAction =
  | { type: 'send-heartbeat'; seq: number }
  /** Acknowledge receipt of everything through `seq` (sent before the entries are delivered). */
  | { type: 'send-ack'; seq: number }
  /** Hand these entries (dense, in order, each once) to replay. */
  | { type: 'deliver'; entries: Entry[] }
  /** No frame from the primary for the heartbeat timeout; once per silence. */
  | { type: 'primary-silent'; silentMs: number }
  | { type: 'primary-heard' };

export class BackupSession {
  private received: number;
  private primaryLast = 0;
  private lastHeard: number | null = null;
  private lastHeartbeatAtMs = 0;
  private silentReported = false;

  constructor(
    readonly timing: StreamTiming,
    receivedSeq = 0,
  ) {
    this.received = receivedSeq;
  }

  get receivedSeq(): number {
    return this.received;
  }

  /** The primary's last log seq as of its last heartbeat (never less than what was received). */
  get primarySeq(): number {
    return Math.max(this.primaryLast, this.received);
  }

  get lastHeardAtMs(): number | null {
    return this.lastHeard;
  }

  /**
   * The primary's welcome: the stream starts at `firstSeq` (or after a snapshot through `snapshotSeq`).
   * Throws RefusalError when it does not continue what this backup holds.
   */
  welcome(firstSeq: number, snapshotSeq: number | null, nowMs: number): BackupSessionAction[] {
    if (snapshotSeq !== null) {
      if (this.received !== 0 || firstSeq !== snapshotSeq + 1) {
        throw new RefusalError(RefuseCode.ProtocolError, `protocol error: bad snapshot in the welcome: seq ${snapshotSeq}, stream from ${firstSeq} (received through seq ${this.received})`);
      }
    } else if (firstSeq !== this.received + 1) {
      throw new RefusalError(RefuseCode.ProtocolError, `protocol error: welcome says the stream starts at seq ${firstSeq}, but this backup has received through seq ${this.received}`);
    }
    this.lastHeartbeatAtMs = nowMs;
    return this.heard(nowMs);
  }

  /** The joining snapshot (the state through `seq`) arrived whole and verified. */
  snapshotReceived(seq: number, nowMs: number): BackupSessionAction[] {
    invariant(this.received === 0, `a snapshot received after seq ${this.received}`);
    this.received = seq;
    return [...this.heard(nowMs), { type: 'send-ack', seq }];
  }

  /** Any frame from the authenticated primary counts as a heartbeat. */
  heard(nowMs: number): BackupSessionAction[] {
    this.lastHeard = nowMs;
    if (!this.silentReported) return [];
    this.silentReported = false;
    return [{ type: 'primary-heard' }];
  }

  onEntries(entries: Entry[], nowMs: number): BackupSessionAction[] {
    const out = this.heard(nowMs);
    const first = entries[0]!.seq;
    const last = entries[entries.length - 1]!.seq;
    if (last <= this.received) return out; // a resend overlap, harmless
    if (first > this.received + 1) {
      throw new RefusalError(RefuseCode.ProtocolError, `protocol error: seq gap: expected seq ${this.received + 1}, got a batch of seqs ${first}..${last}`);
    }
    const fresh = first === this.received + 1 ? entries : entries.slice(this.received + 1 - first);
    this.received = last;
    out.push({ type: 'send-ack', seq: last }, { type: 'deliver', entries: fresh });
    return out;
  }

  onHeartbeat(seq: number, nowMs: number): BackupSessionAction[] {
    const out = this.heard(nowMs);
    // The primary's log never ends before what it already sent us.
    if (seq < this.received) throw new RefusalError(RefuseCode.ProtocolError, `protocol error: primary heartbeat claims its log ends at seq ${seq}, but it sent through seq ${this.received}`);
    this.primaryLast = seq;
    return out;
  }

  /** The channel was paused and resumed: silence counts from now. */
  resumed(nowMs: number): void {
    if (this.lastHeard !== null) this.lastHeard = nowMs;
    this.silentReported = false;
  }

  /** Periodic: heartbeat on an open stream (`open`: welcomed, not mid-snapshot); report silence once (not while paused). */
  tick(nowMs: number, open: boolean, paused: boolean): BackupSessionAction[] {
    const out: BackupSessionAction[] = [];
    if (open && nowMs - this.lastHeartbeatAtMs >= this.timing.heartbeatMs) {
      this.lastHeartbeatAtMs = nowMs;
      out.push({ type: 'send-heartbeat', seq: this.received });
    }
    if (this.lastHeard === null || this.silentReported || paused) return out;
    const silentMs = Math.round(nowMs - this.lastHeard);
    if (silentMs < this.timing.heartbeatTimeoutMs) return out;
    this.silentReported = true;
    out.push({ type: 'primary-silent', silentMs });
    return out;
  }
}

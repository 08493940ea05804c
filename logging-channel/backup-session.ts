// The backup's side of the logging-channel stream as a pure state machine: frames and time in,
// actions out. It is the one owner of receivedSeq (every entry through it has been received and
// acknowledged) and of the silence clock. Rules:
//   - receipt is acknowledged at once, before the entries go to replay (the Output Rule is about
//     receipt, and the primary's outputs wait on this ack);
//   - entries are delivered exactly once and in order across reconnects: a resend overlap is dropped,
//     a gap is a protocol error;
//   - a welcome must start the stream right after what was received (or carry a snapshot on a join);
//   - the resume point travels with its lineage (the epoch the log is in there and where it began), so
//     the primary can refuse a backup whose log is another history (epoch-history.ts); a snapshot
//     join adopts the primary's history through the snapshot.
// The socket shell (backup-channel.ts) and the simulator feed it and perform its actions.

import { RefusalError, RefuseCode } from './auth.js';
import type { Entry } from './entry.js';
import { EpochHistory, type EpochStart } from './epoch-history.js';
import { invariant } from './invariant.js';
import type { StreamTiming } from './primary-session.js';

/**
 * A backup that received this many entries since its last progress report sends the next one as
 * soon as its replay moves (not only with the periodic heartbeat). The primary bounds the replay
 * backlog from these reports and counts every entry appended since the last one as unreplayed:
 * with a report only every heartbeat (100 ms on a 75 ms tick: up to 150 ms apart), that was up to
 * 3,000 entries at 10k req/s, an estimate of 100–400 ms against a true 2–10 ms, enough to slow
 * admission (BENCHMARKS.md, warm19). A light stream (under ~2k entries/s) sends no extra frame.
 */
export const PROGRESS_REPORT_ENTRIES = 256;
/** ... and at most one such report per this many ms. */
export const PROGRESS_REPORT_MIN_MS = 10;

/** Largest snapshot a backup accepts when joining (a VM's memory is at most 2 GiB). */
export const MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024 * 1024;

/** A join's snapshot as the welcome describes it. */
export interface SnapshotMeta {
  seq: number;
  pos: number;
  bytes: number;
  sha256: string;
  /** A delta against the base this backup offered (its digest). */
  baseDigest?: string;
}

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
  /** receivedSeq as of the last heartbeat sent (each carries the replay progress). */
  private reportedSeq = 0;
  private silentReported = false;
  private lineageNow: EpochHistory;

  constructor(
    readonly timing: StreamTiming,
    receivedSeq = 0,
    history: readonly EpochStart[] = [],
  ) {
    this.received = receivedSeq;
    this.reportedSeq = receivedSeq;
    this.lineageNow = new EpochHistory(history);
  }

  /** The epochs of what was received (a node that goes live continues its log with this lineage). */
  get history(): EpochHistory {
    return this.lineageNow;
  }

  /** What the auth message says of this backup's log: where to resume, and the lineage there. */
  resumePoint(): { resumeFromSeq: number; lineage?: EpochStart } {
    const at = this.lineageNow.at(this.received);
    return { resumeFromSeq: this.received, ...(at !== null ? { lineage: { ...at } } : {}) };
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
   * The primary's welcome: the stream starts at `firstSeq` (or after a snapshot, described by
   * `snapshot`, against the base this backup offered if any). Throws RefusalError when it does not
   * continue what this backup holds. A snapshot join adopts `lineage`, the primary's epochs through it.
   */
  welcome(firstSeq: number, snapshot: SnapshotMeta | null, nowMs: number, lineage: readonly EpochStart[] = [], offeredBaseDigest: string | null = null): BackupSessionAction[] {
    if (snapshot !== null) {
      if (
        this.received !== 0 ||
        firstSeq !== snapshot.seq + 1 ||
        !Number.isSafeInteger(snapshot.seq) ||
        !(snapshot.bytes > 0 && snapshot.bytes <= MAX_SNAPSHOT_BYTES) ||
        typeof snapshot.sha256 !== 'string'
      ) {
        throw new RefusalError(RefuseCode.ProtocolError, `protocol error: bad snapshot in the welcome: ${JSON.stringify(snapshot)} (received through seq ${this.received})`);
      }
      if (snapshot.baseDigest !== undefined && snapshot.baseDigest !== offeredBaseDigest) {
        throw new RefusalError(
          RefuseCode.ProtocolError,
          `protocol error: the welcome announces a delta against base ${String(snapshot.baseDigest)}, but this backup offered ${offeredBaseDigest !== null ? `base ${offeredBaseDigest}` : 'no base'}`,
        );
      }
      let adopted: EpochHistory;
      try {
        adopted = new EpochHistory(lineage);
      } catch (error) {
        throw new RefusalError(RefuseCode.ProtocolError, `protocol error: the welcome's lineage: ${(error as Error).message}`);
      }
      if (adopted.list.some((s) => s.fromSeq > snapshot.seq)) throw new RefusalError(RefuseCode.ProtocolError, `protocol error: the welcome's lineage goes past the snapshot (seq ${snapshot.seq})`);
      this.lineageNow = adopted;
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
    // The snapshot's seqs are replayed by loading it, not one by one: count from here.
    this.reportedSeq = seq;
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
    this.lineageNow.observe(fresh);
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

  /**
   * Replay made progress: a heartbeat (which carries it) if PROGRESS_REPORT_ENTRIES or more were
   * received since the last one and none went out for PROGRESS_REPORT_MIN_MS. `open`: welcomed, not
   * mid-snapshot.
   */
  progressed(nowMs: number, open: boolean): BackupSessionAction[] {
    if (!open || this.received - this.reportedSeq < PROGRESS_REPORT_ENTRIES || nowMs - this.lastHeartbeatAtMs < PROGRESS_REPORT_MIN_MS) return [];
    return [this.heartbeat(nowMs)];
  }

  private heartbeat(nowMs: number): BackupSessionAction {
    this.lastHeartbeatAtMs = nowMs;
    this.reportedSeq = this.received;
    return { type: 'send-heartbeat', seq: this.received };
  }

  /** Periodic: heartbeat on an open stream (`open`: welcomed, not mid-snapshot); report silence once (not while paused). */
  tick(nowMs: number, open: boolean, paused: boolean): BackupSessionAction[] {
    const out: BackupSessionAction[] = [];
    if (open && nowMs - this.lastHeartbeatAtMs >= this.timing.heartbeatMs) out.push(this.heartbeat(nowMs));
    if (this.lastHeard === null || this.silentReported || paused) return out;
    const silentMs = Math.round(nowMs - this.lastHeard);
    if (silentMs < this.timing.heartbeatTimeoutMs) return out;
    this.silentReported = true;
    out.push({ type: 'primary-silent', silentMs });
    return out;
  }
}

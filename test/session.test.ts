// The logging channel's stream rules as pure sessions (logging-channel/primary-session.ts,
// backup-session.ts): frames and time in, actions out, no sockets. channel.test.ts drives the same
// rules through the WebSocket shells.

import { describe, expect, test } from 'vitest';
import { RefusalError } from '../dist/logging-channel/auth.js';
import { BackupSession, PROGRESS_REPORT_ENTRIES, PROGRESS_REPORT_MIN_MS } from '../dist/logging-channel/backup-session.js';
import type { Entry } from '../dist/logging-channel/entry.js';
import { InvariantError } from '../dist/logging-channel/invariant.js';
import { PrimarySession } from '../dist/logging-channel/primary-session.js';

const TIMING = { heartbeatMs: 100, heartbeatTimeoutMs: 300 };
const snap = (seq: number) => ({ seq, pos: seq, bytes: 100, sha256: '0'.repeat(64) });
const entries = (from: number, to: number): Entry[] => Array.from({ length: to - from + 1 }, (_, i) => ({ seq: from + i, pos: from + i, kind: 1, payload: new Uint8Array(0) }) as Entry);

describe('primary session', () => {
  test('acks are cumulative, increasing, and never beyond what was sent', () => {
    const s = new PrimarySession(TIMING);
    expect(s.attach(0, 0, false)).toEqual([]);
    s.entriesSent(10);
    expect(s.onFrame({ type: 'ack', seq: 4 }, 1)).toEqual([{ type: 'acked', seq: 4 }]);
    expect(s.ackedSeq).toBe(4);
    expect(() => s.onFrame({ type: 'ack', seq: 4 }, 2)).toThrow(RefusalError);
    expect(() => s.onFrame({ type: 'ack', seq: 11 }, 2)).toThrow(/beyond the last sent seq 10/);
    expect(s.ackedSeq).toBe(4);
  });

  test('a resume point is a receipt: it acknowledges what was in flight when the old connection died', () => {
    const s = new PrimarySession(TIMING);
    s.attach(0, 0, false);
    s.entriesSent(20);
    s.onFrame({ type: 'ack', seq: 5 }, 1);
    s.detach();
    expect(s.attach(12, 2, false)).toEqual([{ type: 'acked', seq: 12 }]);
    expect(s.sentSeq).toBe(12);
  });

  test('resume problems: beyond the log, or from before what is retained', () => {
    expect(PrimarySession.resumeProblem(11, 1, 10)?.message).toMatch(/ends at seq 10/);
    expect(PrimarySession.resumeProblem(3, 6, 10)?.message).toMatch(/retains only seq 6..10/);
    expect(PrimarySession.resumeProblem(5, 6, 10)).toBeNull();
  });

  test('a snapshot join: nothing streams, heartbeats or counts as silence before the welcome', () => {
    const s = new PrimarySession(TIMING);
    s.attach(0, 0, true);
    expect(s.streaming).toBe(false);
    expect(s.tick(10_000, 50)).toEqual([]);
    expect(() => s.entriesSent(1)).toThrow(InvariantError);
    s.snapshotWelcomed(10_000);
    s.snapshotSent(50);
    expect(s.streaming).toBe(true);
    expect(s.tick(10_100, 50)).toEqual([{ type: 'send-heartbeat', seq: 50 }]);
  });

  test('silence is reported once, and hearing the backup again is reported', () => {
    const s = new PrimarySession(TIMING);
    s.attach(0, 0, false);
    expect(s.tick(300, 0)).toContainEqual({ type: 'peer-silent', silentMs: 300 });
    expect(s.tick(400, 0).filter((a) => a.type === 'peer-silent')).toEqual([]);
    expect(s.onFrame({ type: 'heartbeat', seq: 0 }, 410)).toEqual([{ type: 'peer-heard' }]);
  });
});

describe('backup session', () => {
  test('receipt is acknowledged before delivery; a resend overlap is dropped; a gap is refused', () => {
    const s = new BackupSession(TIMING);
    s.welcome(1, null, 0);
    const a = s.onEntries(entries(1, 3), 1);
    expect(a.map((x) => x.type)).toEqual(['send-ack', 'deliver']);
    expect(a[0]).toEqual({ type: 'send-ack', seq: 3 });
    const b = s.onEntries(entries(2, 5), 2);
    expect((b[1] as { entries: Entry[] }).entries.map((e) => e.seq)).toEqual([4, 5]);
    expect(s.onEntries(entries(1, 5), 3)).toEqual([]);
    expect(() => s.onEntries(entries(7, 8), 4)).toThrow(/seq gap: expected seq 6/);
    expect(s.receivedSeq).toBe(5);
  });

  test('a welcome must continue what was received; a snapshot only on a join', () => {
    const s = new BackupSession(TIMING, 10);
    expect(() => s.welcome(5, null, 0)).toThrow(/starts at seq 5/);
    expect(() => s.welcome(21, snap(20), 0)).toThrow(/bad snapshot/);
    expect(s.welcome(11, null, 0)).toEqual([]);
    const j = new BackupSession(TIMING);
    expect(() => j.welcome(22, snap(20), 0)).toThrow(/bad snapshot/);
    expect(() => j.welcome(21, { ...snap(20), bytes: 0 }, 0)).toThrow(/bad snapshot/);
    expect(() => j.welcome(21, { ...snap(20), baseDigest: 'f'.repeat(64) }, 0)).toThrow(/delta against base f+, but this backup offered no base/);
    j.welcome(21, snap(20), 0);
    expect(j.snapshotReceived(20, 1)).toEqual([{ type: 'send-ack', seq: 20 }]);
    expect(j.receivedSeq).toBe(20);
  });

  test('a heartbeat may not claim a log shorter than what was sent', () => {
    const s = new BackupSession(TIMING);
    s.welcome(1, null, 0);
    s.onEntries(entries(1, 4), 1);
    expect(() => s.onHeartbeat(3, 2)).toThrow(/ends at seq 3/);
    s.onHeartbeat(9, 3);
    expect(s.primarySeq).toBe(9);
  });

  test('silence: reported once, never while paused, and a resume restarts the clock', () => {
    const s = new BackupSession(TIMING);
    s.welcome(1, null, 0);
    expect(s.tick(200, true, true).filter((a) => a.type === 'primary-silent')).toEqual([]);
    expect(s.tick(350, true, false)).toContainEqual({ type: 'primary-silent', silentMs: 350 });
    expect(s.tick(400, true, false).filter((a) => a.type === 'primary-silent')).toEqual([]);
    s.resumed(500);
    expect(s.tick(700, false, false)).toEqual([]);
    expect(s.tick(800, false, false)).toContainEqual({ type: 'primary-silent', silentMs: 300 });
  });

  test('replay progress is reported early once PROGRESS_REPORT_ENTRIES were received since the last report, at most every PROGRESS_REPORT_MIN_MS', () => {
    const s = new BackupSession(TIMING);
    s.welcome(1, null, 0);
    expect(s.tick(100, true, false)).toEqual([{ type: 'send-heartbeat', seq: 0 }]);
    // A light stream waits for the periodic heartbeat: no extra frame.
    s.onEntries(entries(1, PROGRESS_REPORT_ENTRIES - 1), 101);
    expect(s.progressed(150, true)).toEqual([]);
    s.onEntries(entries(PROGRESS_REPORT_ENTRIES, PROGRESS_REPORT_ENTRIES), 151);
    expect(s.progressed(152, true)).toEqual([{ type: 'send-heartbeat', seq: PROGRESS_REPORT_ENTRIES }]);
    // Counted from that report, and never closer than PROGRESS_REPORT_MIN_MS to the last heartbeat.
    s.onEntries(entries(PROGRESS_REPORT_ENTRIES + 1, 3 * PROGRESS_REPORT_ENTRIES), 153);
    expect(s.progressed(152 + PROGRESS_REPORT_MIN_MS - 1, true)).toEqual([]);
    expect(s.progressed(152 + PROGRESS_REPORT_MIN_MS, true)).toEqual([{ type: 'send-heartbeat', seq: 3 * PROGRESS_REPORT_ENTRIES }]);
    // The periodic heartbeat counts as a report too, and restarts its own period from the early one.
    expect(s.tick(152 + PROGRESS_REPORT_MIN_MS + 99, true, false)).toEqual([]);
    // Not welcomed, or mid-snapshot: nothing to report on.
    s.onEntries(entries(3 * PROGRESS_REPORT_ENTRIES + 1, 5 * PROGRESS_REPORT_ENTRIES), 300);
    expect(s.progressed(400, false)).toEqual([]);
    expect(s.progressed(400, true)).toEqual([{ type: 'send-heartbeat', seq: 5 * PROGRESS_REPORT_ENTRIES }]);
    // A backup resuming from seq N (or loading a snapshot through N) counts from N, not from 0.
    const resumed = new BackupSession(TIMING, 10_000);
    expect(resumed.progressed(1_000, true)).toEqual([]);
  });
});

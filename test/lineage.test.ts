// Resume lineage (logging-channel/epoch-history.ts): a backup that resumes a stream must hold a prefix
// of the primary's log, proven by the epoch its log is in at the resume point and where that epoch
// began. A mismatch refuses it (4006) with the two histories named, instead of splicing two logs.
// End to end, the simulator's two-primaries scenario (test/sim.test.ts) catches what it prevents.

import { describe, expect, test } from 'vitest';
import { RefuseCode } from '../dist/logging-channel/auth.js';
import { BackupSession } from '../dist/logging-channel/backup-session.js';
import { encodeEpochMark } from '../dist/logging-channel/codec.js';
import { type Entry, Kind } from '../dist/logging-channel/entry.js';
import { EpochHistory } from '../dist/logging-channel/epoch-history.js';
import { PrimarySession } from '../dist/logging-channel/primary-session.js';
import { RetainedLog } from '../dist/logging-channel/retained-log.js';

const TIMING = { heartbeatMs: 100, heartbeatTimeoutMs: 300 };
const IDENTITY = { formatVersion: 1, engine: 'e', guestHash: 'g' };
const mark = (seq: number, epoch: number): Entry => ({ seq, pos: 0, kind: Kind.Epoch, payload: encodeEpochMark({ epoch, nodeId: `n${epoch}` }) }) as Entry;
const task = (seq: number): Entry => ({ seq, pos: 0, kind: Kind.Noop, payload: new Uint8Array(0) }) as Entry;
/** A log of `length` entries with an epoch mark at each given seq. */
function log(length: number, marks: Record<number, number>): Entry[] {
  return Array.from({ length }, (_, i) => (marks[i + 1] !== undefined ? mark(i + 1, marks[i + 1]!) : task(i + 1)));
}
const auth = (resumeFromSeq: number, lineage?: { epoch: number; fromSeq: number }) => ({
  t: 'auth' as const,
  nonce: 'n'.repeat(16),
  proof: '0'.repeat(64),
  ...IDENTITY,
  nodeId: 'b',
  resumeFromSeq,
  ...(lineage ? { lineage } : {}),
});

function primaryOf(entries: Entry[]): RetainedLog {
  const retained = new RetainedLog(1 << 20);
  retained.append(entries);
  return retained;
}

function admit(retained: RetainedLog, a: ReturnType<typeof auth>) {
  return PrimarySession.admission(a, { identity: IDENTITY, attachedNodeId: null, log: { firstSeq: retained.firstSeq, lastSeq: retained.lastSeq, history: retained.history }, joinsBySnapshot: false });
}

describe('epoch history', () => {
  test('a new epoch starts at its first mark; re-marks of the epoch in force change nothing', () => {
    const h = new EpochHistory();
    h.observe(log(30, { 3: 1, 10: 1, 15: 2, 20: 2, 25: 4 }));
    expect(h.list).toEqual([
      { epoch: 1, fromSeq: 3 },
      { epoch: 2, fromSeq: 15 },
      { epoch: 4, fromSeq: 25 },
    ]);
    expect(h.at(2)).toBeNull();
    expect(h.at(14)).toEqual({ epoch: 1, fromSeq: 3 });
    expect(h.through(20)).toEqual([
      { epoch: 1, fromSeq: 3 },
      { epoch: 2, fromSeq: 15 },
    ]);
    expect(
      () =>
        new EpochHistory([
          { epoch: 2, fromSeq: 5 },
          { epoch: 1, fromSeq: 9 },
        ]),
    ).toThrow(/out of order/);
  });

  test('the retained log keeps its lineage after trimming, and a live ex-backup continues the one it inherited', () => {
    const retained = primaryOf(log(20, { 2: 1, 12: 3 }));
    retained.trimThrough(18);
    expect(retained.history.list).toEqual([
      { epoch: 1, fromSeq: 2 },
      { epoch: 3, fromSeq: 12 },
    ]);
    const inherited = new RetainedLog(1 << 20, 20, 0, new EpochHistory(retained.history.list));
    inherited.append([mark(21, 5)]);
    expect(inherited.history.list.map((s) => s.epoch)).toEqual([1, 3, 5]);
  });
});

describe('resume lineage at the handshake (PrimarySession.admission)', () => {
  // Primary P: epoch 1 from seq 2 (written by the first primary), then P's own epoch 2 from seq 41.
  const primary = primaryOf(log(60, { 2: 1, 30: 1, 41: 2 }));

  test('a backup holding a prefix resumes: same epoch from the same seq, still that epoch at its resume point', () => {
    expect(admit(primary, auth(35, { epoch: 1, fromSeq: 2 }))).toEqual({ type: 'admit', bySnapshot: false, firstSeq: 36, replaces: null });
    expect(admit(primary, auth(40, { epoch: 1, fromSeq: 2 }))).toMatchObject({ type: 'admit', firstSeq: 41 });
    expect(admit(primary, auth(55, { epoch: 2, fromSeq: 41 }))).toMatchObject({ type: 'admit', firstSeq: 56 });
    // A fresh backup proves nothing and needs nothing.
    expect(admit(primary, auth(0))).toMatchObject({ type: 'admit', firstSeq: 1 });
  });

  test('a backup of the old primary that received past where this one took over is refused: its entries there are another history', () => {
    const verdict = admit(primary, auth(45, { epoch: 1, fromSeq: 2 }));
    expect(verdict.type).toBe('refuse');
    if (verdict.type !== 'refuse') return;
    expect(verdict.refusal.code).toBe(RefuseCode.CannotResume);
    expect(verdict.refusal.reason).toMatch(/lineage mismatch at seq 45: the backup holds entries of epoch 1 through seq 45, but this primary's log is in epoch 2 there/);
  });

  test('a backup of a newer primary (a newer epoch, the same seqs) is refused as by a stale node (4010, not final), naming both histories', () => {
    const verdict = admit(primary, auth(30, { epoch: 3, fromSeq: 2 }));
    expect(verdict).toMatchObject({ type: 'refuse' });
    if (verdict.type !== 'refuse') return;
    expect(verdict.refusal.code).toBe(RefuseCode.Behind);
    expect(verdict.refusal.reason).toMatch(/the backup's log is in epoch 3 \(from seq 2\), newer than any epoch of this node \(its epochs: 1 from seq 2, 2 from seq 41\): this node is behind/);
    // The same epoch begun at another seq is another history too.
    expect(admit(primary, auth(30, { epoch: 1, fromSeq: 5 }))).toMatchObject({ type: 'refuse', refusal: { code: RefuseCode.CannotResume } });
  });

  test('a backup with entries but no epoch mark can resume only where the primary has none either (the boot task)', () => {
    expect(admit(primary, auth(1))).toMatchObject({ type: 'admit', firstSeq: 2 });
    expect(admit(primary, auth(10))).toMatchObject({ type: 'refuse', refusal: { code: RefuseCode.CannotResume } });
  });

  test('the range checks still come first: beyond the log, or trimmed', () => {
    expect(admit(primary, auth(61, { epoch: 2, fromSeq: 41 }))).toMatchObject({ type: 'refuse', refusal: { reason: expect.stringMatching(/ends at seq 60/) } });
  });
});

describe('the backup session carries its lineage', () => {
  test('its resume point names the epoch it is in there, learned from the marks it received', () => {
    const b = new BackupSession(TIMING);
    expect(b.resumePoint()).toEqual({ resumeFromSeq: 0 });
    b.welcome(1, null, 0);
    b.onEntries(log(12, { 2: 1, 9: 1 }), 1);
    expect(b.resumePoint()).toEqual({ resumeFromSeq: 12, lineage: { epoch: 1, fromSeq: 2 } });
    b.onEntries([task(13), mark(14, 2), task(15)], 2);
    expect(b.resumePoint()).toEqual({ resumeFromSeq: 15, lineage: { epoch: 2, fromSeq: 14 } });
    // Against the primary it came from: admitted.
    expect(admit(primaryOf(log(20, { 2: 1, 9: 1, 14: 2 })), auth(15, b.resumePoint().lineage))).toMatchObject({ type: 'admit' });
  });

  test('a snapshot join adopts the primary lineage through the snapshot (and refuses one that goes past it)', () => {
    const snap = { seq: 50, pos: 50, bytes: 10, sha256: '0'.repeat(64) };
    const j = new BackupSession(TIMING);
    expect(() => j.welcome(51, snap, 0, [{ epoch: 1, fromSeq: 60 }])).toThrow(/lineage goes past the snapshot/);
    j.welcome(51, snap, 0, [
      { epoch: 1, fromSeq: 2 },
      { epoch: 2, fromSeq: 41 },
    ]);
    j.snapshotReceived(50, 1);
    expect(j.resumePoint()).toEqual({ resumeFromSeq: 50, lineage: { epoch: 2, fromSeq: 41 } });
    expect(admit(primary60(), auth(50, j.resumePoint().lineage))).toMatchObject({ type: 'admit', firstSeq: 51 });
  });
});

function primary60(): RetainedLog {
  return primaryOf(log(60, { 2: 1, 30: 1, 41: 2 }));
}

// Issue 15 in the pure role machine: a node's own stall restarts its peer's silence (every role); the
// lease re-reads the epoch every leaseMs and halts on a newer one; the replay backlog holds admission
// and decides "protected" vs "catching up". Also the heartbeat's replay progress on the wire.

import { describe, expect, test } from 'vitest';
import { EXIT_LOST_EPOCH, type RoleAction, type RoleConfig, type RoleInput, RoleMachine } from '../dist/hypervisor/node/role.js';
import type { Entry } from '../dist/logging-channel/entry.js';
import { decodeFrame, encodeHeartbeatFrame } from '../dist/logging-channel/frames.js';
import { DEFAULT_REPLAY_ENTRY_MS, MIN_DEMONSTRATED_ENTRIES, ReplayLag } from '../dist/recorder/replay-lag.js';
import { DEFAULT_REPLAY_TASK_MS, REPLAY_FAST_WINDOW_MS, REPLAY_SLOWDOWN_MEMORY_MS, REPLAY_WARMUP_MS, ReplayBacklog, TASK_OVERHEAD_POLLS } from '../dist/replayer/replay-backlog.js';

const CFG: RoleConfig = { heartbeatMs: 100, heartbeatTimeoutMs: 300, claimRetryMs: 500, maxLagMs: 1000, maxLagBytes: 1_000_000, maxReplayLagMs: 700, leaseMs: 1000 };
const acts = (m: RoleMachine, input: RoleInput): RoleAction[] => m.step(input).filter((a) => a.type !== 'log');
const ticks = (m: RoleMachine, from: number, to: number, every = 20): RoleAction[] => {
  const out: RoleAction[] = [];
  for (let t = from; t <= to; t += every) out.push(...acts(m, { type: 'tick', nowMs: t }));
  return out;
};

describe('own stalls', () => {
  test('a backup that has seen no epoch mark yet (nothing of the log) never suspects: it has nothing to take over with', () => {
    const m = new RoleMachine(CFG, 'backup', 0, 0);
    acts(m, { type: 'peer-up', nowMs: 0 });
    expect(ticks(m, 20, 3_000)).toEqual([]);
    acts(m, { type: 'epoch-seen', nowMs: 3_000, epoch: 1 });
    expect(ticks(m, 3_020, 3_020)).toEqual([{ type: 'drain' }]);
  });

  test('a welcomed backup stalled past the timeout does not suspect on waking; a real silence after it still does', () => {
    const m = new RoleMachine(CFG, 'backup', 1, 0);
    acts(m, { type: 'peer-up', nowMs: 0 });
    expect(ticks(m, 20, 200)).toEqual([]);
    // Stalled from 200 to 3200: the first input after it is a tick that sees a 3 s silence.
    expect(acts(m, { type: 'tick', nowMs: 3_200 })).toEqual([]);
    expect(m.role).toBe('backup');
    // The primary really is silent from now on. Its silence before the stall (200 ms) counts up to half
    // a timeout (150 ms), the stall not at all: suspicion after another 150 ms of our own running time.
    expect(ticks(m, 3_220, 3_340)).toEqual([]);
    expect(ticks(m, 3_360, 3_360)).toEqual([{ type: 'drain' }]);
  });

  test('a connection found closed after the stall drops the silence kept from before it: a full timeout from the close, time to redial (sim seed 6128)', () => {
    const m = new RoleMachine(CFG, 'backup', 1, 0);
    acts(m, { type: 'peer-up', nowMs: 0 });
    expect(ticks(m, 20, 200)).toEqual([]);
    // A partition begins the silence at 200; this node stalls from 400 to 3400. Meanwhile the primary
    // dropped it (its close lost in the partition); the reset arrives once the path healed.
    expect(acts(m, { type: 'tick', nowMs: 3_400 })).toEqual([]);
    expect(acts(m, { type: 'peer-down', nowMs: 3_401, reason: 'connection closed by the primary (code 1006)' })).toEqual([]);
    // With the connection open, suspicion would come at 3_550 (150 ms kept); now a full timeout from the close.
    expect(ticks(m, 3_420, 3_680)).toEqual([]);
    // The redial (200 ms) reaches the live primary: heard, no claim.
    acts(m, { type: 'peer-up', nowMs: 3_601 });
    expect(ticks(m, 3_700, 3_880)).toEqual([]);
    expect(m.role).toBe('backup');
  });

  test('a dead primary is still suspected when the connection closes after the stall: a full timeout after the close', () => {
    const m = new RoleMachine(CFG, 'backup', 1, 0);
    acts(m, { type: 'peer-up', nowMs: 0 });
    expect(ticks(m, 20, 200)).toEqual([]);
    expect(acts(m, { type: 'tick', nowMs: 3_400 })).toEqual([]);
    acts(m, { type: 'peer-down', nowMs: 3_401, reason: 'connection closed by the primary (code 1006)' });
    expect(ticks(m, 3_420, 3_700)).toEqual([]);
    expect(ticks(m, 3_720, 3_720)).toEqual([{ type: 'drain' }]);
  });

  test('a close heard after fresh traffic changes nothing: the silence counts from the last frame', () => {
    const m = new RoleMachine(CFG, 'backup', 1, 0);
    acts(m, { type: 'peer-up', nowMs: 0 });
    expect(ticks(m, 20, 200)).toEqual([]);
    expect(acts(m, { type: 'tick', nowMs: 3_400 })).toEqual([]);
    acts(m, { type: 'peer-traffic', nowMs: 3_450, atMs: 3_450 });
    acts(m, { type: 'peer-down', nowMs: 3_460, reason: 'r' });
    expect(ticks(m, 3_460, 3_740)).toEqual([]);
    expect(ticks(m, 3_760, 3_760)).toEqual([{ type: 'drain' }]);
  });

  test('a primary stalled past the timeout does not claim against its backup on waking (it verifies its epoch instead)', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    acts(m, { type: 'peer-up', nowMs: 0, peer: 'b' });
    ticks(m, 20, 200);
    const woke = acts(m, { type: 'tick', nowMs: 2_000 });
    expect(woke.some((a) => a.type === 'claim')).toBe(false);
    expect(woke).toContainEqual({ type: 'check-epoch', checkId: 1 });
  });
});

describe('lease', () => {
  test('a live node re-reads the epoch every leaseMs, keeps serving on its own epoch, halts on a newer one', () => {
    const m = new RoleMachine(CFG, 'primary', 3, 0);
    const first = ticks(m, 20, 1_000).filter((a) => a.type === 'check-epoch');
    expect(first).toEqual([{ type: 'check-epoch', checkId: 1 }]);
    expect(acts(m, { type: 'epoch-checked', nowMs: 1_010, checkId: 1, newestEpoch: 3, detail: '' })).toEqual([]);
    expect(m.healthy).toBe(true);
    const second = ticks(m, 1_020, 2_000).filter((a) => a.type === 'check-epoch');
    expect(second).toEqual([{ type: 'check-epoch', checkId: 2 }]);
    const halted = acts(m, { type: 'epoch-checked', nowMs: 2_010, checkId: 2, newestEpoch: 4, detail: '' });
    expect(halted).toContainEqual(expect.objectContaining({ type: 'halt', exitCode: EXIT_LOST_EPOCH }));
    expect(m.role).toBe('halted');
  });

  test('no second lease check while one is in flight; an unreachable answer just waits for the next period', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(ticks(m, 20, 3_000).filter((a) => a.type === 'check-epoch')).toEqual([{ type: 'check-epoch', checkId: 1 }]);
    expect(acts(m, { type: 'epoch-checked', nowMs: 3_000, checkId: 1, newestEpoch: null, detail: 'EIO' })).toEqual([]);
    expect(m.healthy).toBe(true);
    expect(ticks(m, 3_020, 4_000).filter((a) => a.type === 'check-epoch')).toEqual([{ type: 'check-epoch', checkId: 2 }]);
  });
});

describe('release lease (issue 18)', () => {
  test('a lone primary releases only within leaseMs of the send time of a read that confirmed its epoch', () => {
    const m = new RoleMachine(CFG, 'primary', 2, 0, 0);
    ticks(m, 20, 480);
    expect(m.mayRelease(480)).toBe(true);
    // The renewal goes out at half the lease and is not answered (etcd unreachable): outputs stop at 1000.
    const renew = ticks(m, 500, 500).filter((a) => a.type === 'check-epoch');
    expect(renew).toEqual([{ type: 'check-epoch', checkId: 1 }]);
    ticks(m, 520, 1_000);
    expect(m.mayRelease(1_000)).toBe(true);
    ticks(m, 1_020, 1_020);
    expect(m.mayRelease(1_020)).toBe(false);
    // The answer confirms epoch 2 as read from t=500: outputs flow again until 1500, and stop after it.
    acts(m, { type: 'epoch-checked', nowMs: 1_030, checkId: 1, newestEpoch: 2, detail: '' });
    expect(m.mayRelease(1_030)).toBe(true);
    // An unreachable answer does not renew it; with the lease out, it re-reads as often as a claim is retried.
    const again = ticks(m, 1_040, 1_100).filter((a) => a.type === 'check-epoch');
    expect(again).toEqual([{ type: 'check-epoch', checkId: 2 }]);
    acts(m, { type: 'epoch-checked', nowMs: 1_110, checkId: 2, newestEpoch: null, detail: 'unreachable' });
    ticks(m, 1_120, 1_520);
    expect(m.mayRelease(1_520)).toBe(false);
    expect(m.role).toBe('primary');
  });

  test('a primary whose backup acknowledges is not held by the lease (the acks guard its outputs)', () => {
    const m = new RoleMachine(CFG, 'primary', 2, 0, 0);
    acts(m, { type: 'peer-up', nowMs: 0, peer: 'b' });
    for (let t = 20; t <= 2_000; t += 20) acts(m, { type: 'acked', nowMs: t, seq: t });
    expect(m.role).toBe('primary');
    expect(m.mayRelease(2_000)).toBe(true);
  });

  test('an etcd lease that was retaken (the epoch still the newest) renews the window and is logged; it never halts', () => {
    const alone = new RoleMachine(CFG, 'primary', 2, 0, 0);
    ticks(alone, 20, 500);
    const out = alone.step({ type: 'epoch-checked', nowMs: 510, checkId: 1, newestEpoch: 2, detail: '', leaseRetaken: 'the etcd lease on epoch 2 had expired' });
    expect(out).toContainEqual(expect.objectContaining({ type: 'log', level: 'warn', msg: expect.stringMatching(/had expired/) }));
    expect(alone.role).toBe('primary');
    expect(alone.leaseHeld(1_490)).toBe(true);
  });

  test("a newer epoch seen by the arbiter's watch halts a node that speaks at once; a claiming node is not halted by its own claim", () => {
    const m = new RoleMachine(CFG, 'primary', 2, 0, 0);
    expect(acts(m, { type: 'newer-epoch', nowMs: 10, epoch: 2 })).toEqual([]);
    expect(acts(m, { type: 'newer-epoch', nowMs: 20, epoch: 3 })).toContainEqual(expect.objectContaining({ type: 'halt', exitCode: EXIT_LOST_EPOCH }));
    const c = new RoleMachine(CFG, 'primary', 2, 0, 0);
    acts(c, { type: 'peer-up', nowMs: 0, peer: 'b' });
    acts(c, { type: 'fatal', nowMs: 10, reason: 'backup gone' });
    expect(c.role).toBe('claiming');
    expect(acts(c, { type: 'newer-epoch', nowMs: 20, epoch: 3 })).toEqual([]);
    expect(c.role).toBe('claiming');
    // Also one that was verifying its epoch after a stall when it began to claim.
    const v = new RoleMachine(CFG, 'primary', 2, 0, 0);
    acts(v, { type: 'peer-up', nowMs: 0, peer: 'b' });
    acts(v, { type: 'tick', nowMs: 400 }); // a 400 ms gap: verifying
    expect(v.verifyingEpoch).toBe(true);
    acts(v, { type: 'fatal', nowMs: 410, reason: 'backup gone' });
    expect(acts(v, { type: 'newer-epoch', nowMs: 420, epoch: 3 })).toEqual([]);
    expect(v.role).toBe('claiming');
    // Won: the lease runs from the claim's send time.
    acts(c, { type: 'claim-result', nowMs: 30, epoch: 3, result: 'won', detail: '' });
    expect(c.mayRelease(30)).toBe(true);
    expect(c.leaseHeld(1_011)).toBe(false);
  });
});

describe('replay backlog', () => {
  test('over --max-replay-lag-ms: admission held and "catching up"; within: admitting and protected', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    acts(m, { type: 'peer-up', nowMs: 0, peer: 'b' });
    expect(m.protecting).toBe(false); // no report yet
    const over = m.step({ type: 'lag', nowMs: 10, lagMs: 0, lagBytes: 0, replayBacklogMs: 5_000 });
    expect(over).toContainEqual(expect.objectContaining({ type: 'admit', admit: false }));
    expect(over.some((a) => a.type === 'log' && /catching up/.test(a.msg))).toBe(true);
    expect(m.protecting).toBe(false);
    const within = m.step({ type: 'lag', nowMs: 20, lagMs: 0, lagBytes: 0, replayBacklogMs: 100 });
    expect(within).toContainEqual(expect.objectContaining({ type: 'admit', admit: true }));
    expect(m.protecting).toBe(true);
  });

  test('the backup weighs each queued task by its recorded polls, at its measured cost per unit of weight', () => {
    const task = (polls: number): Entry[] => [
      { seq: 0, pos: 1_000, kind: 1, payload: new Uint8Array(0) },
      { seq: 0, pos: 1_000 + polls, kind: 1, payload: new Uint8Array(0) },
    ];
    const b = new ReplayBacklog();
    expect(b.estimateMs()).toBe(0);
    // Before any measurement: the default 1 ms for a task of no polls.
    for (let i = 0; i < 100; i++) b.queued(task(0));
    expect(b.estimateMs()).toBeCloseTo(100 * DEFAULT_REPLAY_TASK_MS, 6);
    // Light tasks (200 polls) measured at 0.12 ms each for many seconds of replay.
    const light = Array.from({ length: 50 }, () => task(200));
    for (let i = 0; i < 5_000; i++) {
      for (const t of light) b.queued(t);
      b.replayed(light, 50 * 0.12);
    }
    b.replayed(
      Array.from({ length: 100 }, () => task(0)),
      100 * 0.12 * (TASK_OVERHEAD_POLLS / (TASK_OVERHEAD_POLLS + 200)),
    );
    expect(b.estimateMs()).toBeCloseTo(0, 6);
    expect(b.taskMs).toBeCloseTo(0.12, 2);
    // A heavy task queued behind ten light ones counts by its polls (a count of tasks said 1.3 ms).
    for (let i = 0; i < 10; i++) b.queued(task(200));
    b.queued(task(4_000_000));
    const perUnit = 0.12 / (TASK_OVERHEAD_POLLS + 200);
    expect(b.estimateMs()).toBeCloseTo((10 * (TASK_OVERHEAD_POLLS + 200) + 4_000_000 + TASK_OVERHEAD_POLLS) * perUnit, 1);
    expect(b.estimateMs()).toBeGreaterThan(300);
  });

  test('a cold start is not held: a first call 10,000x slower is forgotten within a few windows of warm replay', () => {
    const task: Entry[] = [
      { seq: 0, pos: 0, kind: 1, payload: new Uint8Array(0) },
      { seq: 0, pos: 0, kind: 1, payload: new Uint8Array(0) },
    ];
    const b = new ReplayBacklog();
    b.queued(task);
    b.replayed([task], 2_500);
    for (let t = 0; t < REPLAY_WARMUP_MS + 10 * REPLAY_FAST_WINDOW_MS; t += 2.5) {
      for (let i = 0; i < 10; i++) b.queued(task);
      b.replayed(
        Array.from({ length: 10 }, () => task),
        2.5,
      );
    }
    for (let i = 0; i < 1_000; i++) b.queued(task);
    expect(b.estimateMs()).toBeLessThan(260);
  });

  test('a slowdown of the replay counts at once; a speedup only once it has lasted', () => {
    const task: Entry[] = [
      { seq: 0, pos: 0, kind: 1, payload: new Uint8Array(0) },
      { seq: 0, pos: 0, kind: 1, payload: new Uint8Array(0) },
    ];
    const batch = Array.from({ length: 10 }, () => task);
    const b = new ReplayBacklog();
    const run = (replayMs: number, msPerTask: number) => {
      for (let t = 0; t < replayMs; t += 10 * msPerTask) {
        for (const x of batch) b.queued(x);
        b.replayed(batch, 10 * msPerTask);
      }
    };
    run(20 * REPLAY_SLOWDOWN_MEMORY_MS, 0.1);
    for (let i = 0; i < 1_000; i++) b.queued(task);
    expect(b.estimateMs()).toBeCloseTo(100, 0);
    // The host's share falls: at 4x the cost, the estimate follows within a few windows of replay.
    run(REPLAY_FAST_WINDOW_MS, 0.4);
    expect(b.estimateMs()).toBeGreaterThan(150);
    run(2 * REPLAY_FAST_WINDOW_MS, 0.4);
    expect(b.estimateMs()).toBeGreaterThan(300);
    // Back to the old speed: a few windows of it do not forget the slowdown; many memories do.
    run(3 * REPLAY_FAST_WINDOW_MS, 0.1);
    expect(b.estimateMs()).toBeGreaterThan(250);
    run(10 * REPLAY_SLOWDOWN_MEMORY_MS, 0.1);
    expect(b.estimateMs()).toBeLessThan(101);
  });

  test('the primary adds what the backup has not received yet, at the per-entry cost its report implies', () => {
    const lag = new ReplayLag();
    expect(lag.backlogMs(50_000)).toBeNull();
    // A joining backup holds seqs 1..1000, replayed none, and says that is 500 ms of replay.
    lag.reported({ receivedSeq: 1_000, replayedSeq: 0, backlogMs: 500 }, 0);
    expect(lag.backlogMs(50_000)).toBe(500 + 49_000 * 0.5);
    // Fully caught up: nothing held, the last cost per entry stays, unless the pace the backup showed
    // bounds it: here 50,000 entries replayed in the 30 s since its last report, 0.6 ms each, is slower.
    lag.reported({ receivedSeq: 50_000, replayedSeq: 50_000, backlogMs: 0 }, 30_000);
    expect(lag.backlogMs(50_010)).toBe(5);
    // Before any backlog worth measuring, the default cost per entry.
    const fresh = new ReplayLag();
    fresh.reported({ receivedSeq: 10, replayedSeq: 5, backlogMs: 3 }, 0);
    expect(fresh.backlogMs(1_010)).toBe(3 + 1_000 * DEFAULT_REPLAY_ENTRY_MS);
  });

  test('a cost per entry measured on cold code does not stay: the pace the backup showed over the last DEMONSTRATED_SPAN_MS bounds it', () => {
    const lag = new ReplayLag();
    // A fresh backup's first replays run on cold code: 40 entries held, 400 ms of estimated replay.
    lag.reported({ receivedSeq: 40, replayedSeq: 0, backlogMs: 400 }, 0);
    expect(lag.backlogMs(140)).toBe(400 + 100 * 10);
    // Slowed by that, the stream is thin: the next reports hold under 16 entries, too few to measure
    // a cost by; but the backup replayed 200 entries in the 100 ms between two of them: 0.5 ms each at most.
    lag.reported({ receivedSeq: 205, replayedSeq: 200, backlogMs: 1 }, 50);
    expect(lag.backlogMs(305)).toBe(1 + 100 * 10); // 50 ms: too short a span to judge a pace by
    lag.reported({ receivedSeq: 405, replayedSeq: 400, backlogMs: 1 }, 150);
    expect(lag.backlogMs(505)).toBe(1 + 100 * 0.5);
    // Two reports bunched on arrival: the span still runs from the newest report DEMONSTRATED_SPAN_MS
    // old (the one at 50 ms): 206 entries in 101 ms, not 6 in 1 ms.
    lag.reported({ receivedSeq: 410, replayedSeq: 406, backlogMs: 1 }, 151);
    expect(lag.backlogMs(510)).toBeCloseTo(1 + 100 * (101 / 206), 9);
    // A backup that replayed almost nothing over the span shows no pace: the measured cost stands.
    lag.reported({ receivedSeq: 430, replayedSeq: 406 + MIN_DEMONSTRATED_ENTRIES - 1, backlogMs: 2 }, 400);
    expect(lag.backlogMs(530)).toBe(2 + 100 * 10);
    // Nor does a pace raise the cost: a backup idle between reports replays "slowly".
    lag.reported({ receivedSeq: 500, replayedSeq: 500, backlogMs: 0 }, 60_000);
    expect(lag.backlogMs(600)).toBe(100 * 10);
  });

  test('a heartbeat carries the replay progress; a plain one still decodes', () => {
    expect(decodeFrame(encodeHeartbeatFrame(42, { replayedSeq: 40, backlogMs: 1234 }))).toEqual({ type: 'heartbeat', seq: 42, replay: { replayedSeq: 40, backlogMs: 1234 } });
    expect(decodeFrame(encodeHeartbeatFrame(42))).toEqual({ type: 'heartbeat', seq: 42 });
  });
});

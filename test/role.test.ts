// Role state machine tests: every transition of hypervisor/node/role.ts, driven input by input with the
// exact actions asserted, plus a seeded randomized run that checks the protocol's safety invariants
// on every step. The machine is pure, so these run in microseconds and need no processes or sockets.
// They run against the compiled output (build first: npx tsc -p tsconfig.json).

import { describe, expect, test } from 'vitest';
import { EXIT_DIVERGED, EXIT_LOST_EPOCH, EXIT_REFUSED, type Role, type RoleAction, type RoleConfig, type RoleInput, RoleMachine } from '../dist/hypervisor/node/role.js';

// heartbeat 100 ms, suspicion after 300 ms, pause tolerance (timeout / 2) 150 ms.
// These examples step time in jumps a real node would take for its own stalls; the stall rule (a gap
// restarts the peer's silence) and the lease are tested in role-stall-lease.test.ts, and the model below.
const CFG: RoleConfig = { heartbeatMs: 100, heartbeatTimeoutMs: 300, claimRetryMs: 500, maxLagMs: 1000, maxLagBytes: 1_000_000, maxReplayLagMs: 700, leaseMs: 1e9, stallToleranceMs: 1e9 };

/** The machine's actions for one input, without its log lines (asserted separately where they matter). */
function acts(m: RoleMachine, input: RoleInput): RoleAction[] {
  return m.step(input).filter((a) => a.type !== 'log');
}

const tick = (m: RoleMachine, nowMs: number) => acts(m, { type: 'tick', nowMs });
const peerUp = (m: RoleMachine, nowMs: number) => acts(m, { type: 'peer-up', nowMs });
const peerDown = (m: RoleMachine, nowMs: number) => acts(m, { type: 'peer-down', nowMs, reason: 'socket closed' });
/** Peer traffic last heard at `atMs` (default: just now), reported at `nowMs`. */
const traffic = (m: RoleMachine, nowMs: number, atMs = nowMs) => acts(m, { type: 'peer-traffic', nowMs, atMs });
const epochSeen = (m: RoleMachine, nowMs: number, epoch: number) => acts(m, { type: 'epoch-seen', nowMs, epoch });
const acked = (m: RoleMachine, nowMs: number, seq: number) => acts(m, { type: 'acked', nowMs, seq });
const appended = (m: RoleMachine, nowMs: number) => acts(m, { type: 'appended', nowMs });
const lag = (m: RoleMachine, nowMs: number, lagMs: number, lagBytes: number) => acts(m, { type: 'lag', nowMs, lagMs, lagBytes });
const drained = (m: RoleMachine, nowMs: number) => acts(m, { type: 'drained', nowMs });
const claimResult = (m: RoleMachine, nowMs: number, epoch: number, result: 'won' | 'lost' | 'unreachable') => acts(m, { type: 'claim-result', nowMs, epoch, result, detail: `test ${result}` });
/** The answer to the 'check-epoch' with `checkId`. */
const epochChecked = (m: RoleMachine, nowMs: number, checkId: number, newestEpoch: number | null) => acts(m, { type: 'epoch-checked', nowMs, checkId, newestEpoch, detail: 'test' });
const fatal = (m: RoleMachine, nowMs: number, exitCode?: number) =>
  acts(m, exitCode === undefined ? { type: 'fatal', nowMs, reason: 'test fatal' } : { type: 'fatal', nowMs, reason: 'test fatal', exitCode });

/** Tick every `stepMs` over (from, to]; returns the non-empty action lists keyed by time. */
function tickRange(m: RoleMachine, from: number, to: number, stepMs = 50): Array<[number, RoleAction[]]> {
  const seen: Array<[number, RoleAction[]]> = [];
  for (let t = from + stepMs; t <= to; t += stepMs) {
    const a = tick(m, t);
    if (a.length > 0) seen.push([t, a]);
  }
  return seen;
}

const NOOP: RoleAction = { type: 'append-noop' };
const HOLD: RoleAction = { type: 'hold-outputs' };
const RELEASE_ALL: RoleAction = { type: 'release-all' };
const DRAIN: RoleAction = { type: 'drain' };
const check = (checkId: number): RoleAction => ({ type: 'check-epoch', checkId });
const releaseThrough = (seq: number): RoleAction => ({ type: 'release-through', seq });
const claim = (epoch: number): RoleAction => ({ type: 'claim', epoch });
const won = (epoch: number): RoleAction => ({ type: 'epoch-won', epoch });
const goLive = (epoch: number): RoleAction => ({ type: 'go-live', epoch });
const dropPeer = (): RoleAction => ({ type: 'drop-peer', reason: expect.any(String) as unknown as string });
const halt = (exitCode: number): RoleAction => ({ type: 'halt', reason: expect.any(String) as unknown as string, exitCode });
const admit = (on: boolean): RoleAction => ({ type: 'admit', admit: on, reason: expect.any(String) as unknown as string });
/** A log line by level and message (its data fields, if any, are asserted separately where they matter). */
const logLine = (level: 'info' | 'warn' | 'error', msg: RegExp | string): RoleAction =>
  expect.objectContaining({ type: 'log', level, msg: typeof msg === 'string' ? expect.stringContaining(msg) : expect.stringMatching(msg) }) as unknown as RoleAction;

/** Every kind of input, with assorted values, at `nowMs` (for "a halted machine does nothing"). */
function everyInput(nowMs: number, epoch: number): RoleInput[] {
  const inputs: RoleInput[] = [
    { type: 'tick', nowMs },
    { type: 'tick', nowMs: nowMs + 100_000 },
    { type: 'peer-up', nowMs },
    { type: 'peer-down', nowMs, reason: 'x' },
    { type: 'peer-traffic', nowMs, atMs: nowMs },
    { type: 'epoch-seen', nowMs, epoch: epoch + 3 },
    { type: 'appended', nowMs },
    { type: 'lag', nowMs, lagMs: 1e9, lagBytes: 1e12 },
    { type: 'lag', nowMs, lagMs: 0, lagBytes: 0 },
    { type: 'drained', nowMs },
    { type: 'fatal', nowMs, reason: 'x' },
    { type: 'fatal', nowMs, reason: 'x', exitCode: EXIT_REFUSED },
  ];
  for (const checkId of [0, 1, 2, 3, 10]) {
    for (const newestEpoch of [null, epoch, epoch + 5]) inputs.push({ type: 'epoch-checked', nowMs, checkId, newestEpoch, detail: 'x' });
  }
  for (const seq of [0, 1, 5, 1_000, 1_000_000]) inputs.push({ type: 'acked', nowMs, seq });
  for (let e = epoch - 1; e <= epoch + 3; e++) {
    for (const result of ['won', 'lost', 'unreachable'] as const) inputs.push({ type: 'claim-result', nowMs, epoch: e, result, detail: 'x' });
  }
  return inputs;
}

/** Everything a shell can observe of the machine, for "nothing changed" checks. */
function observe(m: RoleMachine): { role: Role; epoch: number; holdsOutputs: boolean; hasBackup: boolean; verifyingEpoch: boolean } {
  return { role: m.role, epoch: m.epoch, holdsOutputs: m.holdsOutputs, hasBackup: m.hasBackup, verifyingEpoch: m.verifyingEpoch };
}

function expectInert(m: RoleMachine, fromMs: number): void {
  const before = observe(m);
  expect(before.role).toBe('halted');
  let now = fromMs;
  for (let round = 0; round < 3; round++) {
    for (const input of everyInput(now, before.epoch)) {
      expect(m.step(input), `halted machine answered ${JSON.stringify(input)}`).toEqual([]);
      expect(observe(m)).toEqual(before);
    }
    now += 10_000;
  }
}

/** A primary at epoch 1 with a backup attached at t=0 (hold-outputs already consumed). */
function attachedPrimary(cfg: RoleConfig = CFG): RoleMachine {
  const m = new RoleMachine(cfg, 'primary', 1, 0);
  expect(peerUp(m, 0)).toEqual([HOLD]);
  return m;
}

/** A backup at epoch 1, welcomed at t=0. */
function welcomedBackup(cfg: RoleConfig = CFG): RoleMachine {
  const m = new RoleMachine(cfg, 'backup', 1, 0);
  expect(peerUp(m, 0)).toEqual([]);
  return m;
}

/** A former backup that won epoch 2 at t=610 and is live. */
function liveFromBackup(): RoleMachine {
  const m = welcomedBackup();
  expect(tick(m, 300)).toEqual([DRAIN]);
  expect(drained(m, 600)).toEqual([claim(2)]);
  expect(claimResult(m, 610, 2, 'won')).toEqual([goLive(2), won(2), RELEASE_ALL]);
  expect(m.holdsOutputs).toBe(false);
  return m;
}

describe('constructor', () => {
  test('rejects a heartbeat timeout that does not exceed the heartbeat period', () => {
    expect(() => new RoleMachine({ ...CFG, heartbeatMs: 100, heartbeatTimeoutMs: 100 }, 'primary', 1, 0)).toThrow(RangeError);
    expect(() => new RoleMachine({ ...CFG, heartbeatMs: 100, heartbeatTimeoutMs: 99 }, 'backup', 1, 0)).toThrow(RangeError);
    expect(() => new RoleMachine({ ...CFG, heartbeatMs: 100, heartbeatTimeoutMs: 0 }, 'primary', 1, 0)).toThrow(/must exceed the heartbeat period/);
    expect(() => new RoleMachine({ ...CFG, heartbeatMs: 0, heartbeatTimeoutMs: 300 }, 'primary', 1, 0)).toThrow(RangeError);
    expect(() => new RoleMachine({ ...CFG, heartbeatMs: -5, heartbeatTimeoutMs: 300 }, 'primary', 1, 0)).toThrow(RangeError);
    expect(() => new RoleMachine({ ...CFG, heartbeatMs: Number.NaN, heartbeatTimeoutMs: 300 }, 'primary', 1, 0)).toThrow(RangeError);
    expect(() => new RoleMachine({ ...CFG, heartbeatMs: 100, heartbeatTimeoutMs: Number.NaN }, 'primary', 1, 0)).toThrow(RangeError);
  });

  test('rejects a non-finite or negative claimRetryMs; accepts 0', () => {
    for (const claimRetryMs of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, -0.5]) {
      for (const role of ['primary', 'backup'] as const) {
        expect(() => new RoleMachine({ ...CFG, claimRetryMs }, role, 1, 0), `claimRetryMs ${claimRetryMs}`).toThrow(RangeError);
      }
    }
    expect(() => new RoleMachine({ ...CFG, claimRetryMs: Number.NaN }, 'primary', 1, 0)).toThrow(/claimRetryMs/);
    expect(new RoleMachine({ ...CFG, claimRetryMs: 0 }, 'primary', 1, 0).role).toBe('primary');
    expect(new RoleMachine({ ...CFG, claimRetryMs: 0 }, 'backup', 1, 0).role).toBe('backup');
  });

  test('accepts a timeout just above the period and starts in the given role and epoch', () => {
    const p = new RoleMachine({ ...CFG, heartbeatMs: 100, heartbeatTimeoutMs: 101 }, 'primary', 7, 5_000);
    expect(p.role).toBe('primary');
    expect(p.epoch).toBe(7);
    expect(p.holdsOutputs).toBe(false);
    expect(p.hasBackup).toBe(false);
    expect(p.verifyingEpoch).toBe(false);
    const b = new RoleMachine(CFG, 'backup', 3, 0);
    expect(b.role).toBe('backup');
    expect(b.epoch).toBe(3);
    expect(b.holdsOutputs).toBe(false);
    expect(b.hasBackup).toBe(false);
    expect(b.verifyingEpoch).toBe(false);
  });
});

describe('primary alone (no backup ever attached)', () => {
  test('appends a no-op once per heartbeat period of idleness', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tickRange(m, 0, 1_000, 25)).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1_000].map((t) => [t, [NOOP]]));
  });

  test('the period counts from the last tick that appended, even when ticks are late', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(m, 99)).toEqual([]);
    expect(tick(m, 130)).toEqual([NOOP]);
    expect(tick(m, 229)).toEqual([]);
    expect(tick(m, 230)).toEqual([NOOP]);
  });

  test('an append by the node itself makes the no-op unnecessary for a period', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(appended(m, 90)).toEqual([]);
    expect(tick(m, 100)).toEqual([]);
    expect(tick(m, 150)).toEqual([]);
    expect(tick(m, 189)).toEqual([]);
    expect(tick(m, 190)).toEqual([NOOP]);
    // Steady traffic: never a no-op.
    const busy = new RoleMachine(CFG, 'primary', 1, 0);
    for (let t = 40; t <= 2_000; t += 40) {
      expect(appended(busy, t)).toEqual([]);
      expect(tick(busy, t + 20)).toEqual([]);
    }
  });

  test('never claims, however long it hears nothing, while no backup was ever attached', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    const seen = tickRange(m, 0, 20_000, 50);
    expect(seen.length).toBe(200);
    for (const [, a] of seen) expect(a).toEqual([NOOP]);
    expect(m.role).toBe('primary');
    expect(m.epoch).toBe(1);
    // A peer-down for a peer that never came up changes nothing and says nothing.
    expect(m.step({ type: 'peer-down', nowMs: 20_010, reason: 'x' })).toEqual([]);
    expect(tickRange(m, 20_000, 25_000, 100).every(([, a]) => a.length === 1 && a[0]!.type === 'append-noop')).toBe(true);
    expect(m.role).toBe('primary');
  });

  test('acks without an attached backup release nothing (outputs are not held)', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(acked(m, 10, 5)).toEqual([]);
    expect(m.holdsOutputs).toBe(false);
    expect(m.hasBackup).toBe(false);
  });

  test('lag never throttles a primary with no backup attached, however large (and says nothing)', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    for (const [lagMs, lagBytes] of [
      [1_001, 0],
      [0, 1_000_001],
      [1e9, 1e12],
      [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY],
      [0, 0],
      [5_000, 5e6],
    ]) {
      expect(m.step({ type: 'lag', nowMs: 10, lagMs: lagMs!, lagBytes: lagBytes! }), `lag ${lagMs} ms ${lagBytes} bytes`).toEqual([]);
    }
    expect(m.hasBackup).toBe(false);
    expect(m.role).toBe('primary');
    // The same lag throttles once a backup is attached: it is the backup's lag that counts.
    expect(peerUp(m, 20)).toEqual([HOLD]);
    expect(m.hasBackup).toBe(true);
    expect(lag(m, 30, 1e9, 1e12)).toEqual([admit(false)]);
  });
});

describe('primary with a backup', () => {
  test('a backup attaching makes outputs wait: hold-outputs exactly once', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(m.hasBackup).toBe(false);
    const first = m.step({ type: 'peer-up', nowMs: 10 });
    expect(first).toEqual([HOLD, logLine('info', 'backup attached')]);
    expect(m.holdsOutputs).toBe(true);
    expect(m.hasBackup).toBe(true);
    expect(peerUp(m, 20)).toEqual([]);
    // Lost and re-attached: still holding, no second hold-outputs.
    expect(m.step({ type: 'peer-down', nowMs: 30, reason: 'socket closed' })).toEqual([logLine('warn', 'socket closed')]);
    expect(m.holdsOutputs).toBe(true);
    expect(m.hasBackup).toBe(true); // attached in this epoch: its acks still decide
    expect(peerUp(m, 40)).toEqual([]);
    expect(m.holdsOutputs).toBe(true);
    expect(m.hasBackup).toBe(true);
  });

  test('hasBackup: true from the first attach through the claim; false once a new epoch is won; true again when a new backup re-protects it; never on a backup', () => {
    const m = attachedPrimary();
    expect(m.hasBackup).toBe(true);
    expect(peerDown(m, 10)).toEqual([]);
    expect(m.hasBackup).toBe(true);
    expect(fatal(m, 20)).toEqual([claim(2)]); // no drop-peer (already down), no hold (already holding)
    expect(m.role).toBe('claiming');
    expect(m.hasBackup).toBe(true); // still epoch 1, the epoch the backup was attached in
    expect(claimResult(m, 30, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(m.hasBackup).toBe(false);
    expect(m.role).toBe('live');
    expect(lag(m, 35, 1e9, 1e12)).toEqual([]); // live: nobody to lag behind
    // A new backup attaches to the live node: re-protected, a primary again in the epoch it holds.
    expect(peerUp(m, 40)).toEqual([HOLD]);
    expect(m.role).toBe('primary');
    expect(m.epoch).toBe(2);
    expect(m.hasBackup).toBe(true);
    expect(m.holdsOutputs).toBe(true);
    expect(lag(m, 50, 1e9, 1e12)).toEqual([admit(false)]); // the new backup's lag throttles
    expect(peerUp(m, 60)).toEqual([]); // attached already: no second hold
    expect(m.hasBackup).toBe(true);
    const b = welcomedBackup();
    expect(b.hasBackup).toBe(false);
    expect(peerUp(b, 10)).toEqual([]);
    expect(b.hasBackup).toBe(false);
    const l = liveFromBackup();
    expect(l.hasBackup).toBe(false);
  });

  test('acks release through the acked seq, monotonically; a regressing or repeated ack releases nothing', () => {
    const m = attachedPrimary();
    expect(acked(m, 10, 0)).toEqual([]);
    expect(acked(m, 20, 5)).toEqual([releaseThrough(5)]);
    expect(acked(m, 30, 5)).toEqual([]);
    expect(acked(m, 40, 3)).toEqual([]);
    expect(acked(m, 50, 4)).toEqual([]);
    expect(acked(m, 60, 6)).toEqual([releaseThrough(6)]);
    expect(acked(m, 70, 100)).toEqual([releaseThrough(100)]);
    expect(acked(m, 80, 1)).toEqual([]);
    expect(acked(m, 90, 101)).toEqual([releaseThrough(101)]);
    expect(m.role).toBe('primary');
  });

  test('a backup that re-attaches after a drop continues from the released seq', () => {
    const m = attachedPrimary();
    expect(acked(m, 10, 8)).toEqual([releaseThrough(8)]);
    expect(peerDown(m, 20)).toEqual([]);
    expect(peerUp(m, 30)).toEqual([]);
    expect(acked(m, 40, 8)).toEqual([]);
    expect(acked(m, 50, 9)).toEqual([releaseThrough(9)]);
  });

  test('traffic and acks keep the backup alive: no claim while it talks', () => {
    const m = attachedPrimary();
    for (let t = 50; t <= 5_000; t += 50) {
      const a = t % 200 === 0 ? acked(m, t, t) : traffic(m, t);
      expect(a.filter((x) => x.type === 'claim' || x.type === 'drop-peer')).toEqual([]);
      expect(tick(m, t + 10).filter((x) => x.type !== 'append-noop')).toEqual([]);
    }
    expect(m.role).toBe('primary');
  });

  test('no-ops continue at one per period while a backup is attached', () => {
    const m = attachedPrimary();
    const seen: number[] = [];
    for (let t = 50; t <= 1_000; t += 50) {
      traffic(m, t);
      if (tick(m, t).some((a) => a.type === 'append-noop')) seen.push(t);
    }
    expect(seen).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1_000]);
  });
});

describe('primary: backup silent past the timeout', () => {
  test('drops the peer and claims epoch+1 exactly when the timeout passes', () => {
    const m = attachedPrimary();
    expect(tickRange(m, 0, 250)).toEqual([
      [100, [NOOP]],
      [200, [NOOP]],
    ]);
    expect(tick(m, 299)).toEqual([]);
    const out = m.step({ type: 'tick', nowMs: 300 });
    expect(out.filter((a) => a.type !== 'log')).toEqual([NOOP, dropPeer(), claim(2)]);
    expect(out.some((a) => a.type === 'log' && a.level === 'warn' && /backup lost/.test(a.msg))).toBe(true);
    expect(m.role).toBe('claiming');
    expect(m.epoch).toBe(1);
    expect(m.holdsOutputs).toBe(true);
    // Claiming: no further claims, no no-ops, no drop-peer.
    expect(tickRange(m, 300, 2_000)).toEqual([]);
  });

  test('a backup whose connection already dropped is not dropped again; the claim still happens', () => {
    const m = attachedPrimary();
    expect(peerDown(m, 50)).toEqual([]);
    expect(tick(m, 100)).toEqual([NOOP]);
    expect(tick(m, 200)).toEqual([NOOP]);
    expect(tick(m, 300)).toEqual([NOOP, claim(2)]);
  });

  test('claim won: epoch-won, release-all, then the log; live in the new epoch; a new backup re-protects it in that epoch', () => {
    const m = attachedPrimary();
    expect(acked(m, 10, 3)).toEqual([releaseThrough(3)]);
    expect(tickRange(m, 0, 310, 10).at(-1)).toEqual([310, [dropPeer(), claim(2)]]); // 300 ms after the ack
    expect(m.role).toBe('claiming');
    const out = m.step({ type: 'claim-result', nowMs: 320, epoch: 2, result: 'won', detail: 'created epoch-2' });
    // A primary does not go-live: it already is.
    expect(out).toEqual([won(2), RELEASE_ALL, logLine('info', 'won epoch 2')]);
    expect(m.role).toBe('live');
    expect(m.epoch).toBe(2);
    expect(m.holdsOutputs).toBe(false);
    // Live: acks release nothing more, no-ops continue from the won time.
    expect(acked(m, 330, 50)).toEqual([]);
    expect(m.hasBackup).toBe(false);
    // A new backup attaches: re-protected in epoch 2 (no drop-peer), a primary again, outputs held.
    const attach = m.step({ type: 'peer-up', nowMs: 340 });
    expect(attach).toEqual([HOLD, logLine('info', 're-protected in epoch 2')]);
    expect(m.role).toBe('primary');
    expect(m.epoch).toBe(2);
    expect(m.hasBackup).toBe(true);
    expect(m.holdsOutputs).toBe(true);
    expect(tick(m, 419)).toEqual([]);
    expect(tick(m, 420)).toEqual([NOOP]);
    // A duplicate won for the same epoch is ignored (not claiming).
    expect(claimResult(m, 430, 2, 'won')).toEqual([]);
    expect(m.epoch).toBe(2);
    expect(m.role).toBe('primary');
    // The new backup's acks release through them (the ack of 50 while live was released by the win's release-all).
    expect(acked(m, 440, 60)).toEqual([releaseThrough(60)]);
    expect(acked(m, 450, 55)).toEqual([]);
    expect(m.holdsOutputs).toBe(true);
    // Silent past the timeout (counted from the last ack at 450): drop it and claim epoch 3.
    expect(tickRange(m, 440, 740, 10)).toEqual([
      [520, [NOOP]],
      [620, [NOOP]],
      [720, [NOOP]],
    ]);
    expect(tick(m, 749)).toEqual([]);
    expect(tick(m, 750)).toEqual([dropPeer(), claim(3)]);
    expect(m.role).toBe('claiming');
    expect(m.epoch).toBe(2);
    expect(claimResult(m, 760, 3, 'won')).toEqual([won(3), RELEASE_ALL]); // no go-live: it already is
    expect(m.role).toBe('live');
    expect(m.epoch).toBe(3);
    expect(m.hasBackup).toBe(false);
  });

  test('a claiming primary keeps a backup that attaches mid-claim: nothing released until the win, then a primary again holding for its acks', () => {
    const m = attachedPrimary();
    expect(acked(m, 5, 3)).toEqual([releaseThrough(3)]);
    expect(fatal(m, 10)).toEqual([dropPeer(), claim(2)]);
    const out = m.step({ type: 'peer-up', nowMs: 20, peer: 'b' });
    expect(out).toEqual([logLine('info', /backup b attached while this node claims epoch 2: kept/)]);
    expect(m.role).toBe('claiming');
    expect(m.holdsOutputs).toBe(true);
    expect(acked(m, 25, 7)).toEqual([]); // nothing leaves mid-claim, whatever it acks
    const wonOut = m.step({ type: 'claim-result', nowMs: 30, epoch: 2, result: 'won', detail: 'created' });
    // No release-all: only what the kept backup acknowledged leaves.
    expect(wonOut).toEqual([won(2), logLine('info', /won epoch 2 .*with backup b attached: a primary again/), releaseThrough(7)]);
    expect(m.role).toBe('primary');
    expect(m.epoch).toBe(2);
    expect(m.hasBackup).toBe(true);
    expect(acked(m, 40, 9)).toEqual([releaseThrough(9)]);
    // Its silence is suspected as any backup's, and the next claim is one epoch on.
    expect(tickRange(m, 40, 340).at(-1)).toEqual([340, [NOOP, dropPeer(), claim(3)]]);
  });

  test('a backup kept mid-claim that drops again before the win: the win runs alone (release-all)', () => {
    const m = attachedPrimary();
    expect(fatal(m, 10)).toEqual([dropPeer(), claim(2)]);
    expect(peerUp(m, 20)).toEqual([]);
    expect(peerDown(m, 25)).toEqual([]);
    expect(claimResult(m, 30, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(m.role).toBe('live');
    expect(m.hasBackup).toBe(false);
  });

  test('a claiming primary that keeps a backup still halts when its claim is lost', () => {
    const m = attachedPrimary();
    expect(fatal(m, 10)).toEqual([dropPeer(), claim(2)]);
    expect(peerUp(m, 20)).toEqual([]);
    expect(acked(m, 25, 7)).toEqual([]);
    expect(claimResult(m, 30, 2, 'lost')).toEqual([halt(EXIT_LOST_EPOCH)]);
    expectInert(m, 40);
  });

  test('claim lost: halts with EXIT_LOST_EPOCH and is inert from then on', () => {
    const m = attachedPrimary();
    tickRange(m, 0, 300);
    expect(m.role).toBe('claiming');
    const out = m.step({ type: 'claim-result', nowMs: 310, epoch: 2, result: 'lost', detail: 'epoch-2 held by b' });
    expect(out).toEqual([logLine('error', 'epoch-2 held by b'), halt(EXIT_LOST_EPOCH)]);
    expect(m.role).toBe('halted');
    expect(m.epoch).toBe(1);
    expectInert(m, 320);
  });

  test('claim results for another epoch, or outside a claim, are ignored', () => {
    const m = attachedPrimary();
    expect(claimResult(m, 10, 2, 'won')).toEqual([]);
    expect(claimResult(m, 20, 2, 'lost')).toEqual([]);
    expect(m.role).toBe('primary');
    expect(tickRange(m, 20, 320).at(-1)).toEqual([320, [NOOP, dropPeer(), claim(2)]]);
    expect(m.role).toBe('claiming');
    for (const e of [0, 1, 3, 4]) {
      expect(claimResult(m, 330, e, 'won')).toEqual([]);
      expect(claimResult(m, 330, e, 'lost')).toEqual([]);
      expect(claimResult(m, 330, e, 'unreachable')).toEqual([]);
    }
    expect(tickRange(m, 330, 2_000)).toEqual([]); // none of those scheduled a retry
    expect(m.role).toBe('claiming');
    expect(m.epoch).toBe(1);
    expect(claimResult(m, 2_010, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
  });

  test('shared directory unreachable: retries the same epoch after claimRetryMs, not before, never goes live on a guess', () => {
    const m = attachedPrimary();
    tickRange(m, 0, 300);
    const out = m.step({ type: 'claim-result', nowMs: 310, epoch: 2, result: 'unreachable', detail: 'EIO' });
    expect(out).toEqual([logLine('warn', /EIO.*retrying the claim of epoch 2 in 500 ms/)]);
    expect(m.role).toBe('claiming');
    expect(tickRange(m, 310, 800, 10)).toEqual([]); // retry due at 810
    expect(tick(m, 809)).toEqual([]);
    expect(tick(m, 810)).toEqual([claim(2)]);
    expect(tickRange(m, 810, 3_000, 10)).toEqual([]); // one retry per unreachable result
    // Unreachable again (answered late): next retry counts from that answer.
    expect(claimResult(m, 3_000, 2, 'unreachable')).toEqual([]);
    expect(tick(m, 3_499)).toEqual([]);
    expect(tick(m, 3_500)).toEqual([claim(2)]);
    // Many more unreachable answers over a long outage: never live, never a new epoch, nothing released.
    let now = 3_500;
    for (let i = 0; i < 50; i++) {
      expect(claimResult(m, now + 5, 2, 'unreachable')).toEqual([]);
      expect(acked(m, now + 6, 100 + i)).toEqual([]);
      expect(tickRange(m, now + 6, now + 504, 100)).toEqual([]);
      expect(tick(m, now + 504)).toEqual([]);
      expect(tick(m, now + 505)).toEqual([claim(2)]);
      now += 505;
      expect(m.role).toBe('claiming');
      expect(m.epoch).toBe(1);
      expect(m.holdsOutputs).toBe(true);
    }
    expect(claimResult(m, now + 1, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(m.role).toBe('live');
    expect(m.epoch).toBe(2);
  });

  test('a long outage of the shared directory: warned at once, then at most every 5 s with its length and attempts; its end is logged; the won line says how long the claim took', () => {
    const m = attachedPrimary();
    tickRange(m, 0, 250);
    // A fractional clock: the message rounds what it reports.
    const lost = m.step({ type: 'tick', nowMs: 300.6 }).filter((a) => a.type === 'log');
    expect(lost).toEqual([logLine('warn', /^backup lost: backup silent for 301 ms \(timeout 300 ms\)$/)]);
    const warnings: Array<[number, RoleAction]> = [];
    let now = 310;
    for (let attempt = 1; attempt <= 60; attempt++) {
      for (const a of m.step({ type: 'claim-result', nowMs: now, epoch: 2, result: 'unreachable', detail: 'ENOENT' })) {
        if (a.type === 'log') warnings.push([now, a]);
      }
      now += 250;
    }
    // 60 attempts over ~15 s (the last at 15_060): the first at once, then one per 5 s, with how long and how often.
    expect(warnings.map(([t]) => t)).toEqual([310, 5_310, 10_310]);
    expect(warnings[0]![1]).toEqual(logLine('warn', /^shared directory unreachable \(ENOENT\); retrying the claim of epoch 2/));
    expect(warnings[1]![1]).toEqual(logLine('warn', 'shared directory still unreachable for 5 s, 21 attempts (ENOENT); retrying the claim of epoch 2 every 500 ms'));
    expect(warnings[1]![1]).toMatchObject({ data: { unreachableMs: 5_000, unreachableAttempts: 21 } });
    expect(warnings[2]![1]).toEqual(logLine('warn', 'still unreachable for 10 s, 41 attempts'));
    // The directory answers: the outage's end is logged once, and the won line carries the claim time.
    const won = m.step({ type: 'claim-result', nowMs: 20_000, epoch: 2, result: 'won', detail: 'created' });
    const logs = won.filter((a) => a.type === 'log');
    expect(logs).toEqual([logLine('info', /^shared directory reachable again after 20 s, 60 attempts/), logLine('info', /^won epoch 2 \(claim took 19699 ms\)/)]);
    expect(logs[1]).toMatchObject({ data: { claimMs: 19_699 } }); // claimed at t=300.6
  });

  test('an unreachable claim at t=0 with claimRetryMs=0 is retried at once, and only once', () => {
    const m = new RoleMachine({ ...CFG, claimRetryMs: 0 }, 'primary', 1, 0);
    expect(fatal(m, 0)).toEqual([HOLD, claim(2)]); // a lone primary holds before it claims
    expect(claimResult(m, 0, 2, 'unreachable')).toEqual([]);
    expect(tick(m, 0)).toEqual([claim(2)]);
    expect(tick(m, 0)).toEqual([]);
    expect(tick(m, 1)).toEqual([]);
    expect(claimResult(m, 1, 2, 'unreachable')).toEqual([]);
    expect(tick(m, 1)).toEqual([claim(2)]);
    expect(claimResult(m, 2, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    // The backup alike, from a clock that starts at 0.
    const b = new RoleMachine({ ...CFG, claimRetryMs: 0 }, 'backup', 1, 0);
    expect(peerUp(b, 0)).toEqual([]);
    expect(tick(b, 300)).toEqual([DRAIN]);
    expect(drained(b, 300)).toEqual([claim(2)]);
    expect(claimResult(b, 300, 2, 'unreachable')).toEqual([]);
    expect(tick(b, 300)).toEqual([claim(2)]);
  });

  test('acks that arrive while claiming release nothing (release-all only after the win)', () => {
    const m = attachedPrimary();
    expect(acked(m, 100, 4)).toEqual([releaseThrough(4)]);
    expect(tick(m, 100)).toEqual([NOOP]);
    expect(tick(m, 200)).toEqual([NOOP]);
    expect(tick(m, 300)).toEqual([NOOP]);
    expect(tick(m, 400)).toEqual([NOOP, dropPeer(), claim(2)]);
    expect(acked(m, 410, 9)).toEqual([]);
    expect(acked(m, 420, 12)).toEqual([]);
    expect(claimResult(m, 430, 2, 'unreachable')).toEqual([]);
    expect(acked(m, 440, 13)).toEqual([]);
    expect(claimResult(m, 450, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(acked(m, 460, 14)).toEqual([]);
  });
});

describe('backup', () => {
  test('primary silent: drain exactly once, then drained → claim(epoch+1), won → go-live, epoch-won, release-all', () => {
    const m = welcomedBackup();
    expect(tickRange(m, 0, 250)).toEqual([]);
    expect(tick(m, 299)).toEqual([]);
    const out = m.step({ type: 'tick', nowMs: 300 });
    expect(out).toEqual([logLine('warn', /primary lost: primary silent for 300 ms/), DRAIN]);
    expect(m.role).toBe('claiming');
    expect(m.holdsOutputs).toBe(true);
    expect(tickRange(m, 300, 2_000)).toEqual([]); // no second drain, no claim before drained
    expect(drained(m, 2_010)).toEqual([claim(2)]);
    expect(drained(m, 2_020)).toEqual([]); // a second drained does not claim twice
    expect(tickRange(m, 2_020, 4_000)).toEqual([]);
    const wonOut = m.step({ type: 'claim-result', nowMs: 4_010, epoch: 2, result: 'won', detail: 'created' });
    expect(wonOut).toEqual([goLive(2), won(2), RELEASE_ALL, logLine('info', 'won epoch 2')]);
    expect(m.role).toBe('live');
    expect(m.epoch).toBe(2);
    expect(m.holdsOutputs).toBe(false);
  });

  test('claim lost: halts with EXIT_LOST_EPOCH, never goes live, inert afterwards', () => {
    const m = welcomedBackup();
    expect(tick(m, 300)).toEqual([DRAIN]);
    expect(drained(m, 310)).toEqual([claim(2)]);
    expect(claimResult(m, 320, 2, 'lost')).toEqual([halt(EXIT_LOST_EPOCH)]);
    expect(m.role).toBe('halted');
    expect(m.epoch).toBe(1);
    expectInert(m, 330);
  });

  test('claim lost to a holder that never activated: claims again after claimRetryMs with mayVoid; voided, claims the next epoch and goes live in it', () => {
    const m = welcomedBackup();
    tick(m, 300);
    expect(drained(m, 310)).toEqual([claim(2)]);
    expect(m.step({ type: 'claim-result', nowMs: 320, epoch: 2, result: 'lost', unactivated: true, detail: 'epoch 2 is held by c, not activated yet' })).toEqual([
      logLine('warn', 'claiming it again in 500 ms, to void it'),
    ]);
    expect(m.role).toBe('claiming');
    expect(tickRange(m, 320, 810, 10)).toEqual([]);
    expect(tick(m, 820)).toEqual([{ type: 'claim', epoch: 2, mayVoid: true }]);
    expect(m.step({ type: 'claim-result', nowMs: 830, epoch: 2, result: 'lost', voided: true, detail: 'void' })).toEqual([logLine('warn', 'claiming epoch 3'), claim(3)]);
    expect(claimResult(m, 840, 2, 'won')).toEqual([]); // a stale answer for the void epoch
    expect(claimResult(m, 850, 3, 'won')).toEqual([goLive(3), won(3), RELEASE_ALL]);
    expect(m.epoch).toBe(3);
  });

  test('claim lost to a holder that activated meanwhile (the second look): halts', () => {
    const m = welcomedBackup();
    tick(m, 300);
    expect(drained(m, 310)).toEqual([claim(2)]);
    m.step({ type: 'claim-result', nowMs: 320, epoch: 2, result: 'lost', unactivated: true, detail: 'not activated yet' });
    expect(tick(m, 820)).toEqual([{ type: 'claim', epoch: 2, mayVoid: true }]);
    expect(claimResult(m, 830, 2, 'lost')).toEqual([halt(EXIT_LOST_EPOCH)]);
    expect(m.epoch).toBe(1);
  });

  test('claim unreachable: retries the same epoch after claimRetryMs, never live on a guess', () => {
    const m = welcomedBackup();
    tick(m, 300);
    expect(drained(m, 310)).toEqual([claim(2)]);
    expect(claimResult(m, 320, 2, 'unreachable')).toEqual([]);
    expect(tickRange(m, 320, 810, 10)).toEqual([]);
    expect(tick(m, 819)).toEqual([]);
    expect(tick(m, 820)).toEqual([claim(2)]);
    expect(drained(m, 830)).toEqual([]);
    expect(claimResult(m, 840, 2, 'won')).toEqual([goLive(2), won(2), RELEASE_ALL]);
  });

  test('traffic before the timeout resets suspicion', () => {
    const m = welcomedBackup();
    expect(tick(m, 250)).toEqual([]);
    expect(traffic(m, 250)).toEqual([]);
    expect(tick(m, 400)).toEqual([]);
    expect(tick(m, 549)).toEqual([]);
    expect(tick(m, 550)).toEqual([DRAIN]);
  });

  test('a primary that keeps talking is never suspected; peer-up (welcome) also counts as traffic', () => {
    const m = welcomedBackup();
    for (let t = 50; t <= 10_000; t += 50) {
      if (t % 250 === 0) expect(traffic(m, t)).toEqual([]);
      expect(tick(m, t)).toEqual([]);
    }
    expect(m.role).toBe('backup');
    const w = new RoleMachine(CFG, 'backup', 1, 0);
    expect(tick(w, 250)).toEqual([]);
    expect(peerUp(w, 290)).toEqual([]);
    expect(tick(w, 500)).toEqual([]);
    expect(tick(w, 589)).toEqual([]);
    expect(tick(w, 590)).toEqual([DRAIN]);
  });

  test('a backup releases nothing, appends no no-ops, ignores lag and stray claim/drain/check inputs', () => {
    const m = welcomedBackup();
    for (let t = 10; t <= 250; t += 10) {
      expect(acked(m, t, t)).toEqual([]);
      expect(lag(m, t, 1e9, 1e12)).toEqual([]);
      expect(appended(m, t)).toEqual([]);
      expect(drained(m, t)).toEqual([]); // not suspecting: a drained report claims nothing
      expect(claimResult(m, t, 2, 'won')).toEqual([]);
      for (const id of [0, 1, 2]) {
        expect(epochChecked(m, t, id, 9)).toEqual([]);
        expect(epochChecked(m, t, id, null)).toEqual([]);
      }
      expect(tick(m, t)).toEqual([]);
    }
    expect(m.role).toBe('backup');
    expect(m.epoch).toBe(1);
    expect(m.holdsOutputs).toBe(false);
  });

  test('a backup ignores gaps in its own clock (no check-epoch, no hold); a long pause just means suspicion', () => {
    const m = welcomedBackup();
    expect(traffic(m, 100)).toEqual([]);
    expect(tick(m, 250)).toEqual([]);
    expect(traffic(m, 10_000)).toEqual([]); // woke up to buffered frames: the primary is alive
    expect(tick(m, 10_100)).toEqual([]);
    expect(m.holdsOutputs).toBe(false);
    expect(tick(m, 50_000)).toEqual([DRAIN]); // no check-epoch
    expect(drained(m, 100_000)).toEqual([claim(2)]); // a claiming backup notices no gap either
    expect(claimResult(m, 200_000, 2, 'won')).toEqual([goLive(2), won(2), RELEASE_ALL]);
  });

  test('a claiming backup refuses a late welcome', () => {
    const m = welcomedBackup();
    tick(m, 300);
    expect(peerUp(m, 310)).toEqual([dropPeer()]);
    expect(traffic(m, 320)).toEqual([]);
    expect(m.role).toBe('claiming');
    expect(drained(m, 330)).toEqual([claim(2)]);
  });

  test('a backup that was never welcomed does not suspect, and accepts a late welcome', () => {
    // The backup shell builds the machine and ticks before the primary listens: nothing to take over yet.
    const m = new RoleMachine(CFG, 'backup', 0, 0);
    expect(tickRange(m, 0, 1_000)).toEqual([]);
    expect(traffic(m, 1_000, 900)).toEqual([]); // traffic alone is not a welcome
    expect(tickRange(m, 1_000, 3_000)).toEqual([]);
    expect(tick(m, 60_000)).toEqual([]);
    expect(drained(m, 60_010)).toEqual([]);
    expect(m.role).toBe('backup');
    expect(m.holdsOutputs).toBe(false);
    expect(peerUp(m, 61_010)).toEqual([]);
    expect(m.role).toBe('backup');
    expect(epochSeen(m, 61_020, 1)).toEqual([]);
    expect(tick(m, 61_309)).toEqual([]);
    expect(tick(m, 61_310)).toEqual([DRAIN]); // from the welcome on, suspicion works as usual
    expect(drained(m, 61_320)).toEqual([claim(2)]);
  });

  test('a welcome counts once: a backup whose primary dropped and never came back suspects it', () => {
    const m = welcomedBackup();
    expect(peerDown(m, 100)).toEqual([]);
    expect(tick(m, 299)).toEqual([]);
    expect(tick(m, 300)).toEqual([DRAIN]); // counted from the welcome at 0
  });

  test('claim results are ignored while no claim has been issued (a backup still draining), whatever their epoch', () => {
    for (const startEpoch of [1, 3]) {
      const m = new RoleMachine(CFG, 'backup', startEpoch, 0);
      expect(peerUp(m, 0)).toEqual([]);
      expect(tick(m, 300)).toEqual([DRAIN]);
      expect(m.role).toBe('claiming');
      const before = observe(m);
      let t = 300;
      // 0 is the internal 'no claim yet' value; startEpoch+1 is the epoch the drain will claim.
      for (const e of [0, startEpoch - 1, startEpoch, startEpoch + 1, startEpoch + 2]) {
        for (const result of ['won', 'lost', 'unreachable'] as const) {
          t += 1;
          expect(m.step({ type: 'claim-result', nowMs: t, epoch: e, result, detail: 'early' }), `epoch ${e} ${result} from ${startEpoch}`).toEqual([]);
          expect(observe(m)).toEqual(before);
        }
      }
      expect(tickRange(m, t, t + 2_000)).toEqual([]); // no 'unreachable' scheduled a retry claim
      expect(drained(m, t + 2_010)).toEqual([claim(startEpoch + 1)]);
      expect(claimResult(m, t + 2_020, startEpoch + 1, 'won')).toEqual([goLive(startEpoch + 1), won(startEpoch + 1), RELEASE_ALL]);
      expect(m.epoch).toBe(startEpoch + 1);
    }
  });

  test('a never-welcomed backup still halts on fatal', () => {
    const m = new RoleMachine(CFG, 'backup', 0, 0);
    expect(fatal(m, 10, EXIT_REFUSED)).toEqual([halt(EXIT_REFUSED)]);
    expectInert(m, 20);
  });

  test('peer-traffic counts from when the peer was last heard (atMs), never later than now, never backwards', () => {
    const a = welcomedBackup();
    expect(traffic(a, 250, 100)).toEqual([]); // reported at 250, heard at 100
    expect(tick(a, 399)).toEqual([]);
    expect(tick(a, 400)).toEqual([DRAIN]);
    const b = welcomedBackup();
    expect(traffic(b, 100, 5_000)).toEqual([]); // a future timestamp counts as now
    expect(tick(b, 399)).toEqual([]);
    expect(tick(b, 400)).toEqual([DRAIN]);
    const c = welcomedBackup();
    expect(traffic(c, 200, 200)).toEqual([]);
    expect(traffic(c, 250, 50)).toEqual([]); // an older report does not move the last-heard time back
    expect(tick(c, 499)).toEqual([]);
    expect(tick(c, 500)).toEqual([DRAIN]);
    // The primary side alike: a stale last-heard time lets the timeout run.
    const p = attachedPrimary();
    expect(traffic(p, 100, 0)).toEqual([]);
    expect(tick(p, 200)).toEqual([NOOP]);
    expect(tick(p, 300)).toEqual([NOOP, dropPeer(), claim(2)]);
  });

  test('peer-traffic with a non-finite atMs is ignored', () => {
    for (const atMs of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const b = welcomedBackup();
      expect(traffic(b, 100, atMs)).toEqual([]);
      expect(tick(b, 299)).toEqual([]);
      expect(tick(b, 300), `backup, atMs ${atMs}`).toEqual([DRAIN]);
      const p = attachedPrimary();
      expect(traffic(p, 100, atMs)).toEqual([]);
      expect(tick(p, 200)).toEqual([NOOP]);
      expect(tick(p, 300), `primary, atMs ${atMs}`).toEqual([NOOP, dropPeer(), claim(2)]);
    }
  });

  test("epoch-seen: the backup adopts the primary's (newer) epoch and claims the one after it", () => {
    const m = new RoleMachine(CFG, 'backup', 0, 0);
    expect(peerUp(m, 0)).toEqual([]);
    expect(epochSeen(m, 10, 4)).toEqual([]);
    expect(m.epoch).toBe(4);
    expect(epochSeen(m, 20, 2)).toEqual([]); // never backwards
    expect(epochSeen(m, 30, 4)).toEqual([]);
    expect(m.epoch).toBe(4);
    expect(epochSeen(m, 40, 5)).toEqual([]);
    expect(m.epoch).toBe(5);
    expect(tick(m, 300)).toEqual([DRAIN]);
    expect(drained(m, 310)).toEqual([claim(6)]);
    expect(claimResult(m, 320, 6, 'won')).toEqual([goLive(6), won(6), RELEASE_ALL]);
    expect(m.epoch).toBe(6);
    expect(epochSeen(m, 330, 9)).toEqual([]); // live: its epoch is the one it won
    expect(m.epoch).toBe(6);
  });

  test('epoch-seen is ignored by a primary, claiming or not', () => {
    const m = attachedPrimary();
    expect(epochSeen(m, 10, 9)).toEqual([]);
    expect(m.epoch).toBe(1);
    expect(fatal(m, 20)).toEqual([dropPeer(), claim(2)]);
    expect(epochSeen(m, 30, 9)).toEqual([]);
    expect(m.epoch).toBe(1);
    expect(claimResult(m, 40, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(m.epoch).toBe(2);
  });

  test('an epoch seen while draining (before the claim) counts for the claim; after the claim it is ignored', () => {
    const m = new RoleMachine(CFG, 'backup', 1, 0);
    expect(peerUp(m, 0)).toEqual([]);
    expect(tick(m, 300)).toEqual([DRAIN]);
    expect(m.role).toBe('claiming');
    expect(epochSeen(m, 310, 3)).toEqual([]); // replayed during the drain
    expect(m.epoch).toBe(3);
    expect(epochSeen(m, 315, 2)).toEqual([]); // never backwards
    expect(m.epoch).toBe(3);
    expect(drained(m, 320)).toEqual([claim(4)]);
    expect(epochSeen(m, 330, 7)).toEqual([]); // the claim is out: the epoch no longer moves
    expect(m.epoch).toBe(3);
    expect(claimResult(m, 340, 4, 'unreachable')).toEqual([]);
    expect(tick(m, 840)).toEqual([claim(4)]); // the retry claims the same epoch
    expect(claimResult(m, 850, 8, 'won')).toEqual([]);
    expect(claimResult(m, 860, 4, 'won')).toEqual([goLive(4), won(4), RELEASE_ALL]);
    expect(m.epoch).toBe(4);
  });
});

describe('fatal', () => {
  test('on a backup: halts with EXIT_DIVERGED, or the given exit code', () => {
    const a = welcomedBackup();
    expect(fatal(a, 10)).toEqual([halt(EXIT_DIVERGED)]);
    expect(a.role).toBe('halted');
    expectInert(a, 20);
    const b = new RoleMachine(CFG, 'backup', 4, 0);
    expect(fatal(b, 10, EXIT_REFUSED)).toEqual([halt(EXIT_REFUSED)]);
    expect(b.epoch).toBe(4);
    expectInert(b, 20);
  });

  test('on a backup that is draining or claiming: halts, never goes live', () => {
    const a = welcomedBackup();
    tick(a, 300);
    expect(fatal(a, 310)).toEqual([halt(EXIT_DIVERGED)]); // divergence found while draining
    expectInert(a, 320);
    const b = welcomedBackup();
    tick(b, 300);
    drained(b, 310);
    expect(fatal(b, 320, 99)).toEqual([halt(99)]);
    expectInert(b, 330);
  });

  test('on a primary: drops its backup and claims epoch+1 to continue alone', () => {
    const m = attachedPrimary();
    expect(acked(m, 10, 2)).toEqual([releaseThrough(2)]);
    expect(fatal(m, 20)).toEqual([dropPeer(), claim(2)]);
    expect(m.role).toBe('claiming');
    expect(acked(m, 30, 5)).toEqual([]);
    expect(claimResult(m, 40, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(m.role).toBe('live');
    expect(m.epoch).toBe(2);
  });

  test('on a primary with no backup connected: claims without a drop-peer (holding first: it was releasing directly)', () => {
    const m = new RoleMachine(CFG, 'primary', 3, 0);
    expect(fatal(m, 20)).toEqual([HOLD, claim(4)]);
    expect(claimResult(m, 30, 4, 'lost')).toEqual([halt(EXIT_LOST_EPOCH)]);
    expectInert(m, 40);
  });

  test('a lone primary holds its outputs before it claims (nothing is released mid-claim); the win releases them', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(m.holdsOutputs).toBe(false);
    const out = m.step({ type: 'fatal', nowMs: 10, reason: 'xyzzy' });
    expect(out).toEqual([logLine('warn', /backup lost: xyzzy/), HOLD, claim(2)]);
    expect(m.role).toBe('claiming');
    expect(m.holdsOutputs).toBe(true);
    expect(m.hasBackup).toBe(false);
    expect(acked(m, 20, 5)).toEqual([]);
    // An unreachable directory: the retry claims again, without another hold.
    expect(claimResult(m, 30, 2, 'unreachable')).toEqual([]);
    expect(tickRange(m, 30, 520, 10)).toEqual([]);
    expect(tick(m, 530)).toEqual([claim(2)]);
    expect(claimResult(m, 540, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(m.holdsOutputs).toBe(false);
    // After a confirmed pause the outputs flow directly again, so a later fatal holds again.
    const p = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(p, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(epochChecked(p, 1_010, 1, 1)).toEqual([RELEASE_ALL]);
    expect(fatal(p, 1_020)).toEqual([HOLD, claim(2)]);
    expect(p.holdsOutputs).toBe(true);
  });

  test('a primary whose outputs are already held claims without an extra hold-outputs', () => {
    // Held for a backup that is still connected: drop it, then claim.
    const a = attachedPrimary();
    expect(fatal(a, 10)).toEqual([dropPeer(), claim(2)]);
    // Held for a backup that has since disconnected.
    const b = attachedPrimary();
    expect(peerDown(b, 10)).toEqual([]);
    expect(fatal(b, 20)).toEqual([claim(2)]);
    // A lone primary verifying its epoch after a pause: the gap's hold covers the claim.
    const c = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(c, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(fatal(c, 1_010)).toEqual([claim(2)]);
    expect(c.holdsOutputs).toBe(true);
    // ... and a verification still waiting to retry an unreachable read.
    const d = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(d, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(epochChecked(d, 1_010, 1, null)).toEqual([]);
    expect(fatal(d, 1_020)).toEqual([claim(2)]);
    // The gap noticed in the very step of the fatal holds once, before the check and the claim.
    const e = new RoleMachine(CFG, 'primary', 1, 0);
    expect(fatal(e, 1_000)).toEqual([HOLD, check(1), claim(2)]);
  });

  test('on a live node: a warning and nothing else', () => {
    const m = liveFromBackup();
    expect(m.step({ type: 'fatal', nowMs: 620, reason: 'xyzzy' })).toEqual([logLine('warn', /ignored while live: xyzzy/)]);
    expect(m.step({ type: 'fatal', nowMs: 630, reason: 'q', exitCode: EXIT_REFUSED })).toEqual([logLine('warn', 'q')]);
    expect(m.role).toBe('live');
    expect(m.epoch).toBe(2);
    expect(m.holdsOutputs).toBe(false);
    expect(tick(m, 710)).toEqual([NOOP]);
  });

  test('on a claiming primary: a warning, no halt; the claim result decides', () => {
    const m = attachedPrimary();
    expect(tickRange(m, 0, 300).at(-1)).toEqual([300, [NOOP, dropPeer(), claim(2)]]);
    expect(m.step({ type: 'fatal', nowMs: 310, reason: 'xyzzy' })).toEqual([logLine('warn', /ignored while claiming: xyzzy/)]);
    expect(fatal(m, 315, EXIT_DIVERGED)).toEqual([]);
    expect(m.role).toBe('claiming');
    expect(claimResult(m, 320, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    // Losing still halts.
    const n = attachedPrimary();
    expect(fatal(n, 10)).toEqual([dropPeer(), claim(2)]);
    expect(fatal(n, 20)).toEqual([]);
    expect(claimResult(n, 30, 2, 'lost')).toEqual([halt(EXIT_LOST_EPOCH)]);
  });
});

describe('gap detection (the node was paused)', () => {
  test('a stale ack after a pause releases nothing until the epoch is confirmed; then releases what was acked meanwhile', () => {
    const m = attachedPrimary();
    expect(acked(m, 50, 1)).toEqual([releaseThrough(1)]);
    expect(tick(m, 100)).toEqual([NOOP]);
    const out = m.step({ type: 'acked', nowMs: 251, seq: 3 }); // 151 ms since the last input: paused
    // Already holding for the backup: no hold-outputs, just the check.
    expect(out).toEqual([logLine('warn', /did not run for 151 ms.*epoch 1/), check(1)]);
    expect(m.holdsOutputs).toBe(true);
    expect(acked(m, 300, 5)).toEqual([]);
    expect(tick(m, 350)).toEqual([NOOP]);
    expect(acked(m, 360, 4)).toEqual([]);
    const confirmed = m.step({ type: 'epoch-checked', nowMs: 370, checkId: 1, newestEpoch: 1, detail: 'epoch-1' });
    expect(confirmed).toEqual([logLine('info', 'epoch 1 is still ours'), releaseThrough(5)]);
    expect(m.holdsOutputs).toBe(true); // still holding for the backup's acks
    expect(acked(m, 380, 6)).toEqual([releaseThrough(6)]);
    expect(epochChecked(m, 390, 1, 1)).toEqual([]); // an answer already given changes nothing
    expect(epochChecked(m, 395, 1, 9)).toEqual([]); // not even a newer epoch: nothing is being checked
    expect(m.role).toBe('primary');
  });

  test('the tolerance is heartbeatTimeoutMs/2: a gap of exactly 150 ms is not a pause, 151 ms is', () => {
    const m = attachedPrimary();
    expect(traffic(m, 50)).toEqual([]);
    expect(tick(m, 200)).toEqual([NOOP]);
    expect(traffic(m, 350)).toEqual([]);
    expect(acked(m, 360, 2)).toEqual([releaseThrough(2)]);
    expect(tick(m, 511)).toEqual([check(1), NOOP]);
  });

  test('a gap is measured between any two inputs, and a clock that steps back is not a gap', () => {
    const m = attachedPrimary();
    expect(traffic(m, 100)).toEqual([]);
    expect(traffic(m, 50)).toEqual([]); // backwards
    expect(traffic(m, 240)).toEqual([]); // 140 ms after the newest time seen
    expect(acked(m, 250, 1)).toEqual([releaseThrough(1)]);
    expect(appended(m, 401)).toEqual([check(1)]);
  });

  test('newer epoch found: halts with EXIT_LOST_EPOCH and releases nothing in between', () => {
    const m = attachedPrimary();
    expect(acked(m, 50, 1)).toEqual([releaseThrough(1)]);
    // Paused for 10 s; the first thing read after SIGCONT is a stale ack.
    expect(acked(m, 10_050, 7)).toEqual([check(1)]);
    expect(tick(m, 10_060)).toEqual([NOOP]); // the ack counted as traffic: no claim yet
    expect(acked(m, 10_070, 9)).toEqual([]);
    const out = m.step({ type: 'epoch-checked', nowMs: 10_080, checkId: 1, newestEpoch: 2, detail: 'epoch-2 exists' });
    expect(out).toEqual([logLine('error', /epoch 2 was claimed by another node/), halt(EXIT_LOST_EPOCH)]);
    expect(m.role).toBe('halted');
    expectInert(m, 10_090);
  });

  test('shared directory unreachable: checks again with a new id claimRetryMs later (on a tick), keeps holding; only the newest id counts', () => {
    const m = attachedPrimary();
    expect(acked(m, 50, 1)).toEqual([releaseThrough(1)]);
    expect(acked(m, 1_000, 2)).toEqual([check(1)]);
    for (let i = 0; i < 10; i++) {
      const t = 1_010 + i * 600;
      const out = m.step({ type: 'epoch-checked', nowMs: t, checkId: i + 1, newestEpoch: null, detail: 'EIO' });
      // Not at once: a fast-failing directory must not make the node spin on epoch reads. Warned
      // at the first answer, then once UNREACHABLE_WARN_EVERY_MS (5 s) later.
      if (i === 0) expect(out).toEqual([logLine('warn', /cannot check the epoch \(EIO\).*asking again in 500 ms/)]);
      else if (i === 9) expect(out).toEqual([logLine('warn', /^shared directory still unreachable for 5 s, 10 attempts \(EIO\); holding outputs/)]);
      else expect(out).toEqual([]);
      expect(m.verifyingEpoch).toBe(true);
      expect(acked(m, t + 10, 3 + i)).toEqual([]);
      expect(epochChecked(m, t + 11, i, 1)).toEqual([]); // superseded (or, for 0, never issued): ignored
      // Traffic and appends keep the backup alive and the no-op away; only the retry can act.
      for (const dt of [100, 200, 300, 400]) {
        expect(appended(m, t + dt)).toEqual([]);
        expect(traffic(m, t + dt)).toEqual([]);
        expect(tick(m, t + dt)).toEqual([]);
      }
      expect(tick(m, t + 499)).toEqual([]);
      expect(tick(m, t + 500)).toEqual([check(i + 2), NOOP]); // due; the no-op is a period after the append at t+400
      expect(tick(m, t + 510)).toEqual([]); // one check per unreachable answer
      expect(m.holdsOutputs).toBe(true);
      expect(m.role).toBe('primary');
    }
    expect(epochChecked(m, 7_000, 10, 1)).toEqual([]); // superseded
    expect(epochChecked(m, 7_010, 11, 1)).toEqual([releaseThrough(12)]);
    expect(m.verifyingEpoch).toBe(false);
  });

  test('an unreachable answer does not re-ask before claimRetryMs however many ticks come; the retry fires on the first tick at or after it', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(m, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(epochChecked(m, 1_010, 1, null)).toEqual([]); // due at 1_510
    const seen = tickRange(m, 1_010, 1_500, 1);
    expect(seen).toEqual([1_100, 1_200, 1_300, 1_400, 1_500].map((t) => [t, [NOOP]]));
    // Other inputs at or past the due time do not ask: only a tick does.
    expect(appended(m, 1_520)).toEqual([]);
    expect(traffic(m, 1_530)).toEqual([]);
    expect(acked(m, 1_540, 3)).toEqual([]);
    expect(tick(m, 1_545)).toEqual([check(2)]); // the first tick after 1_510
    expect(tickRange(m, 1_545, 2_045, 5).filter(([, a]) => a.some((x) => x.type === 'check-epoch'))).toEqual([]);
    // Each unreachable answer schedules one retry from the time it is answered.
    expect(epochChecked(m, 2_050, 2, null)).toEqual([]); // due at 2_550
    expect(tick(m, 2_100)).toEqual([]);
    expect(epochChecked(m, 2_110, 2, null)).toEqual([]); // answered again (same id): due at 2_610 now
    expect(tickRange(m, 2_110, 2_600, 10).filter(([, a]) => a.some((x) => x.type === 'check-epoch'))).toEqual([]);
    expect(tick(m, 2_610)).toEqual([check(3)]);
    expect(epochChecked(m, 2_620, 3, 1)).toEqual([RELEASE_ALL]);
    // With claimRetryMs 0 the retry is the next tick, even at the same time, and only one.
    const z = new RoleMachine({ ...CFG, claimRetryMs: 0 }, 'primary', 1, 0);
    expect(tick(z, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(epochChecked(z, 1_000, 1, null)).toEqual([]);
    expect(tick(z, 1_000)).toEqual([check(2)]);
    expect(tick(z, 1_000)).toEqual([]);
  });

  test('a new gap while a retry is scheduled asks at once with a new id and cancels the scheduled retry', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(m, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(epochChecked(m, 1_010, 1, null)).toEqual([]); // due at 1_510
    expect(traffic(m, 1_200)).toEqual([check(2)]); // a 190 ms gap: no second hold
    const seen = tickRange(m, 1_200, 2_500, 50);
    expect(seen).toEqual([1_250, 1_350, 1_450, 1_550, 1_650, 1_750, 1_850, 1_950, 2_050, 2_150, 2_250, 2_350, 2_450].map((t) => [t, [NOOP]]));
    expect(epochChecked(m, 2_510, 1, 1)).toEqual([]); // the old id stays superseded
    expect(epochChecked(m, 2_520, 2, 1)).toEqual([RELEASE_ALL]);
    // The gap may be the due tick itself: one check, the gap's.
    const n = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(n, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(epochChecked(n, 1_010, 1, null)).toEqual([]); // due at 1_510
    expect(tick(n, 2_000)).toEqual([check(2), NOOP]);
    expect(tickRange(n, 2_000, 3_000, 50).filter(([, a]) => a.some((x) => x.type === 'check-epoch'))).toEqual([]);
  });

  test('a new gap while verifying asks again with a new id (no second hold); answers to older ids are ignored, whatever they say', () => {
    const m = attachedPrimary();
    expect(traffic(m, 1_000)).toEqual([check(1)]);
    expect(traffic(m, 2_000)).toEqual([check(2)]);
    expect(epochChecked(m, 2_010, 1, 1)).toEqual([]); // read before the second pause: no confirmation
    expect(epochChecked(m, 2_020, 1, 5)).toEqual([]); // ... and no halt
    expect(epochChecked(m, 2_030, 1, null)).toEqual([]); // ... and no re-check
    expect(epochChecked(m, 2_035, 0, 1)).toEqual([]); // an id never issued
    expect(epochChecked(m, 2_036, 3, 1)).toEqual([]); // nor issued yet
    expect(acked(m, 2_040, 4)).toEqual([]);
    expect(m.role).toBe('primary');
    expect(m.holdsOutputs).toBe(true);
    expect(epochChecked(m, 2_050, 2, 1)).toEqual([releaseThrough(4)]);
    expect(traffic(m, 4_000)).toEqual([check(3)]); // a new pause after the answer: a new check
    expect(epochChecked(m, 4_010, 3, 1)).toEqual([]); // confirmed, but nothing new was acked
    expect(acked(m, 4_020, 5)).toEqual([releaseThrough(5)]);
  });

  test('an answer delivered after a new pause is stale: the pause is checked again first', () => {
    const m = attachedPrimary();
    expect(acked(m, 50, 1)).toEqual([releaseThrough(1)]);
    expect(acked(m, 1_000, 2)).toEqual([check(1)]); // pause #1; the shell reads the directory: newest 1
    // ... pause #2 (10 s) before the answer is delivered; the backup may have claimed epoch 2 meanwhile.
    const after = [...acked(m, 11_000, 3), ...epochChecked(m, 11_001, 1, 1)];
    expect(after).toEqual([check(2)]);
    // The answer itself may be what wakes the node: same verdict.
    const n = attachedPrimary();
    expect(acked(n, 1_000, 2)).toEqual([check(1)]);
    expect(epochChecked(n, 11_000, 1, 1)).toEqual([check(2)]);
    expect(acked(n, 11_010, 3)).toEqual([]);
    expect(epochChecked(n, 11_020, 2, 1)).toEqual([releaseThrough(3)]);
  });

  test('paused past the heartbeat timeout: checks the epoch and claims; losing halts', () => {
    const m = attachedPrimary();
    expect(acked(m, 50, 1)).toEqual([releaseThrough(1)]);
    expect(tick(m, 5_000)).toEqual([check(1), NOOP, dropPeer(), claim(2)]);
    expect(m.role).toBe('claiming');
    expect(acked(m, 5_010, 3)).toEqual([]);
    expect(claimResult(m, 5_020, 2, 'lost')).toEqual([halt(EXIT_LOST_EPOCH)]);
    expectInert(m, 5_030);
  });

  test('a primary alone holds its outputs after a pause (hold-outputs, then the check), and releases all when confirmed', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    const out = m.step({ type: 'tick', nowMs: 1_000 });
    expect(out).toEqual([HOLD, logLine('warn', /did not run for 1000 ms/), check(1), NOOP]);
    expect(m.holdsOutputs).toBe(true);
    expect(tick(m, 1_050)).toEqual([]);
    expect(acked(m, 1_060, 3)).toEqual([]); // stray ack: no release-through from a node that holds for no backup
    expect(epochChecked(m, 1_070, 1, 1)).toEqual([RELEASE_ALL]);
    expect(m.holdsOutputs).toBe(false);
    expect(m.role).toBe('primary');
    expect(tick(m, 1_100)).toEqual([NOOP]);
    // Another pause: a new hold, a new id.
    expect(tick(m, 2_000)).toEqual([HOLD, check(2), NOOP]);
    expect(epochChecked(m, 2_010, 1, 1)).toEqual([]);
    expect(m.holdsOutputs).toBe(true);
    expect(epochChecked(m, 2_020, 2, 0)).toEqual([RELEASE_ALL]); // an older epoch on the directory confirms too
  });

  test('a lone primary: unreachable keeps holding, a newer epoch halts, a second gap does not hold twice', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(m, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(epochChecked(m, 1_010, 1, null)).toEqual([]);
    expect(m.holdsOutputs).toBe(true);
    expect(tickRange(m, 1_010, 1_500, 50)).toEqual([1_110, 1_210, 1_310, 1_410].map((t) => [t, [NOOP]]));
    expect(tick(m, 1_510)).toEqual([check(2), NOOP]);
    expect(m.holdsOutputs).toBe(true);
    expect(tick(m, 2_000)).toEqual([check(3), NOOP]);
    expect(epochChecked(m, 2_010, 2, 1)).toEqual([]);
    expect(m.holdsOutputs).toBe(true);
    expect(epochChecked(m, 2_020, 3, 2)).toEqual([halt(EXIT_LOST_EPOCH)]);
    expectInert(m, 2_030);
  });

  test('a backup attaching while a lone primary verifies: the confirmation releases through its acks, not everything', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(m, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(peerUp(m, 1_010)).toEqual([HOLD]); // outputs now wait for the backup's acks
    expect(acked(m, 1_020, 4)).toEqual([]);
    expect(epochChecked(m, 1_030, 1, 1)).toEqual([releaseThrough(4)]);
    expect(m.holdsOutputs).toBe(true);
    expect(acked(m, 1_040, 5)).toEqual([releaseThrough(5)]);
  });

  test('a live node holds its outputs after a pause; same epoch → release-all; unreachable → ask again; newer → halt', () => {
    const a = liveFromBackup();
    const out = a.step({ type: 'tick', nowMs: 1_000 });
    expect(out).toEqual([HOLD, logLine('warn', /did not run for 390 ms.*epoch 2/), check(1), NOOP]);
    expect(a.holdsOutputs).toBe(true);
    expect(tick(a, 1_050)).toEqual([]);
    expect(acked(a, 1_055, 7)).toEqual([]);
    expect(epochChecked(a, 1_060, 1, null)).toEqual([]); // asks again at 1_560
    expect(tickRange(a, 1_050, 1_550, 50)).toEqual([1_100, 1_200, 1_300, 1_400, 1_500].map((t) => [t, [NOOP]]));
    expect(tick(a, 1_559)).toEqual([]);
    expect(tick(a, 1_560)).toEqual([check(2)]);
    expect(epochChecked(a, 1_565, 1, 2)).toEqual([]); // superseded
    expect(a.holdsOutputs).toBe(true);
    expect(epochChecked(a, 1_570, 2, 2)).toEqual([RELEASE_ALL]);
    expect(a.holdsOutputs).toBe(false);
    expect(epochChecked(a, 1_575, 2, 2)).toEqual([]); // no second release-all
    expect(a.role).toBe('live');
    // A second pause while verifying asks again without a second hold.
    expect(tick(a, 2_000)).toEqual([HOLD, check(3), NOOP]);
    expect(tick(a, 3_000)).toEqual([check(4), NOOP]);
    expect(epochChecked(a, 3_010, 3, 2)).toEqual([]);
    expect(a.holdsOutputs).toBe(true);
    expect(epochChecked(a, 3_020, 4, 2)).toEqual([RELEASE_ALL]);
    const b = liveFromBackup();
    expect(tick(b, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(epochChecked(b, 1_010, 1, 3)).toEqual([halt(EXIT_LOST_EPOCH)]);
    expectInert(b, 1_020);
  });

  test('an older epoch on the directory counts as confirmation', () => {
    const m = attachedPrimary();
    expect(acked(m, 1_000, 2)).toEqual([check(1)]);
    expect(epochChecked(m, 1_010, 1, 0)).toEqual([releaseThrough(2)]);
  });

  test('while claiming, the newest epoch equal to the claimed one (maybe our own claim file) does not halt: the claim decides', () => {
    const m = attachedPrimary();
    expect(tick(m, 5_000)).toEqual([check(1), NOOP, dropPeer(), claim(2)]);
    expect(epochChecked(m, 5_010, 1, 2)).toEqual([]);
    expect(m.role).toBe('claiming');
    expect(m.holdsOutputs).toBe(true);
    expect(acked(m, 5_015, 3)).toEqual([]);
    expect(claimResult(m, 5_020, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(m.epoch).toBe(2);
    // Same answer, then a lost claim: the claim result halts.
    const n = attachedPrimary();
    expect(tick(n, 5_000)).toEqual([check(1), NOOP, dropPeer(), claim(2)]);
    expect(epochChecked(n, 5_010, 1, 2)).toEqual([]);
    expect(claimResult(n, 5_020, 2, 'lost')).toEqual([halt(EXIT_LOST_EPOCH)]);
  });

  test('while claiming, an unreachable or an old-epoch answer changes nothing (no re-check, no release)', () => {
    for (const newest of [null, 0, 1]) {
      const m = attachedPrimary();
      expect(tick(m, 5_000)).toEqual([check(1), NOOP, dropPeer(), claim(2)]);
      expect(epochChecked(m, 5_010, 1, newest), `newest ${newest}`).toEqual([]);
      expect(m.role).toBe('claiming');
      expect(m.holdsOutputs).toBe(true);
      expect(claimResult(m, 5_020, 2, 'unreachable')).toEqual([]);
      expect(tick(m, 5_520)).toEqual([claim(2)]);
      expect(claimResult(m, 5_530, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    }
  });

  test('while claiming, a newest epoch above the claimed one halts; a stale answer saying so does not', () => {
    const m = attachedPrimary();
    expect(tick(m, 5_000)).toEqual([check(1), NOOP, dropPeer(), claim(2)]);
    expect(epochChecked(m, 5_010, 1, 3)).toEqual([halt(EXIT_LOST_EPOCH)]);
    expectInert(m, 5_020);
    const n = attachedPrimary();
    expect(traffic(n, 1_000)).toEqual([check(1)]);
    expect(tick(n, 2_000)).toEqual([check(2), NOOP, dropPeer(), claim(2)]);
    expect(epochChecked(n, 2_010, 1, 3)).toEqual([]);
    expect(n.role).toBe('claiming');
    expect(epochChecked(n, 2_020, 2, 3)).toEqual([halt(EXIT_LOST_EPOCH)]);
  });

  test('a retry scheduled before the claim still asks while claiming (the answer can only halt); a win cancels it', () => {
    const m = attachedPrimary();
    expect(traffic(m, 1_000)).toEqual([check(1)]);
    expect(epochChecked(m, 1_010, 1, null)).toEqual([]); // due at 1_510
    expect(tick(m, 1_100)).toEqual([NOOP]);
    expect(tick(m, 1_200)).toEqual([NOOP]);
    expect(tick(m, 1_300)).toEqual([NOOP, dropPeer(), claim(2)]); // the backup went silent at 1_000
    expect(tickRange(m, 1_300, 1_500, 50)).toEqual([]);
    expect(tick(m, 1_510)).toEqual([check(2)]);
    expect(m.role).toBe('claiming');
    expect(epochChecked(m, 1_520, 2, null)).toEqual([]); // while claiming, unreachable schedules nothing
    expect(tickRange(m, 1_520, 3_000, 50)).toEqual([]);
    expect(epochChecked(m, 3_010, 2, 3)).toEqual([halt(EXIT_LOST_EPOCH)]);
    // A won claim ends the verification: the retry never fires.
    const n = attachedPrimary();
    expect(traffic(n, 1_000)).toEqual([check(1)]);
    expect(epochChecked(n, 1_010, 1, null)).toEqual([]); // due at 1_510
    expect(fatal(n, 1_020)).toEqual([dropPeer(), claim(2)]);
    expect(claimResult(n, 1_030, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(n.verifyingEpoch).toBe(false);
    expect(tickRange(n, 1_030, 3_030, 50)).toEqual(Array.from({ length: 20 }, (_, i) => [1_130 + i * 100, [NOOP]]));
    expect(n.holdsOutputs).toBe(false);
  });

  test('a claim won while a check is outstanding ends the check: release-all once, the later answer is ignored', () => {
    // Winning epoch N+1 proves nobody holds a newer epoch.
    const m = attachedPrimary();
    expect(tick(m, 5_000)).toEqual([check(1), NOOP, dropPeer(), claim(2)]);
    expect(claimResult(m, 5_010, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(m.role).toBe('live');
    expect(m.holdsOutputs).toBe(false);
    expect(epochChecked(m, 5_020, 1, 1)).toEqual([]);
    expect(epochChecked(m, 5_030, 1, null)).toEqual([]);
    expect(epochChecked(m, 5_040, 1, 9)).toEqual([]);
    expect(m.role).toBe('live');
    // A lone primary told to continue alone right after a pause: hold, check, claim; the win releases.
    const lone = new RoleMachine(CFG, 'primary', 1, 0);
    expect(fatal(lone, 1_000)).toEqual([HOLD, check(1), claim(2)]);
    expect(lone.holdsOutputs).toBe(true);
    expect(claimResult(lone, 1_010, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(epochChecked(lone, 1_020, 1, 1)).toEqual([]);
    expect(lone.holdsOutputs).toBe(false);
    expect(tick(lone, 1_110)).toEqual([NOOP]);
  });

  test('contract: the pause tolerance is heartbeatTimeoutMs/2 whatever the period, so inputs must come more often than that', () => {
    // Accepted by the constructor; a shell ticking once per heartbeat period would check its epoch on
    // every tick and hold its outputs in between. (pair.ts ticks every heartbeatMs/4, capped at 25 ms.)
    const cfg = { ...CFG, heartbeatMs: 100, heartbeatTimeoutMs: 150 };
    const m = new RoleMachine(cfg, 'primary', 1, 0);
    expect(tick(m, 100)).toEqual([HOLD, check(1), NOOP]);
    const fine = new RoleMachine(cfg, 'primary', 1, 0);
    for (let t = 25; t <= 1_000; t += 25) expect(tick(fine, t).filter((a) => a.type === 'check-epoch' || a.type === 'hold-outputs')).toEqual([]);
  });
});

describe('lag control', () => {
  test('over maxLagMs or maxLagBytes → admit:false once; back under → admit:true once', () => {
    const m = attachedPrimary();
    expect(lag(m, 10, 1_000, 1_000_000)).toEqual([]); // at the limit is not over it
    const over = m.step({ type: 'lag', nowMs: 20, lagMs: 1_001, lagBytes: 0 });
    expect(over.filter((a) => a.type !== 'log')).toEqual([admit(false)]);
    expect(over.find((a) => a.type === 'admit')).toMatchObject({ reason: expect.stringContaining('--max-lag-ms=1000') });
    expect(lag(m, 30, 5_000, 0)).toEqual([]);
    expect(lag(m, 40, 0, 2_000_000)).toEqual([]);
    expect(lag(m, 50, 5_000, 2_000_000)).toEqual([]);
    expect(lag(m, 60, 1_000, 1_000_000)).toEqual([admit(true)]);
    expect(lag(m, 70, 0, 0)).toEqual([]);
    const bytes = m.step({ type: 'lag', nowMs: 80, lagMs: 0, lagBytes: 1_000_001 });
    expect(bytes.filter((a) => a.type !== 'log')).toEqual([admit(false)]);
    expect(bytes.find((a) => a.type === 'admit')).toMatchObject({ reason: expect.stringContaining('bytes') });
    expect(lag(m, 90, 999, 999_999)).toEqual([admit(true)]);
  });

  test('a won claim re-admits a throttled primary; without throttling, no admit', () => {
    const m = attachedPrimary();
    expect(lag(m, 10, 9_999, 0)).toEqual([admit(false)]);
    expect(tickRange(m, 0, 300).at(-1)).toEqual([300, [NOOP, dropPeer(), claim(2)]]);
    expect(m.role).toBe('claiming');
    expect(lag(m, 310, 0, 0)).toEqual([]); // lag is a primary's concern only
    expect(claimResult(m, 320, 2, 'won')).toEqual([won(2), RELEASE_ALL, admit(true)]);
    expect(lag(m, 330, 9_999, 9e9)).toEqual([]); // live: nobody to lag behind
    const n = attachedPrimary();
    expect(fatal(n, 10)).toEqual([dropPeer(), claim(2)]);
    expect(claimResult(n, 20, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
  });

  test('a throttled primary that loses its claim halts without re-admitting', () => {
    const m = attachedPrimary();
    expect(lag(m, 10, 9_999, 0)).toEqual([admit(false)]);
    expect(fatal(m, 20)).toEqual([dropPeer(), claim(2)]);
    expect(claimResult(m, 30, 2, 'lost')).toEqual([halt(EXIT_LOST_EPOCH)]);
  });

  // Regression: a lone primary that verified its epoch after a pause could be left throttled for good.
  // While it verifies, holdsOutputs is true, so hypervisor/node/primary.ts reports lag on every tick, counted
  // from the pause; a directory read slower than maxLagMs used to answer admit:false, the confirmation
  // did not re-admit, and with holdsOutputs false again no lag report or ack ever came to re-admit it.
  // Lag is owed to a backup: with none attached it never throttles.
  test('a lone primary is not left throttled once its epoch is confirmed (no backup to lag behind)', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(m, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(m.holdsOutputs).toBe(true); // primary.ts reports lag on each tick while this holds
    expect(m.hasBackup).toBe(false);
    for (let t = 1_025; t <= 2_100; t += 25) {
      tick(m, t); // the shell keeps ticking; the read takes 1.1 s
      expect(lag(m, t, t - 1_000, 0), `lag at ${t}`).toEqual([]); // lag since the hold (the tracker was rebased then)
    }
    expect(lag(m, 2_100, 1e9, 1e12)).toEqual([]); // over both limits: still nothing to wait for
    expect(epochChecked(m, 2_110, 1, 1)).toEqual([RELEASE_ALL]); // and no admit: it never stopped admitting
    expect(m.holdsOutputs).toBe(false);
    // Same through an unreachable directory that lasts the whole outage.
    const n = new RoleMachine(CFG, 'primary', 1, 0);
    expect(tick(n, 1_000)).toEqual([HOLD, check(1), NOOP]);
    const admits: RoleAction[] = [];
    let id = 1;
    for (let t = 1_010; t <= 6_000; t += 10) {
      if (t % 1_000 === 10) admits.push(...epochChecked(n, t, id, null).filter((a) => a.type === 'admit'));
      const a = tick(n, t);
      if (a.some((x) => x.type === 'check-epoch')) id++;
      admits.push(...a.filter((x) => x.type === 'admit'), ...lag(n, t, t - 1_000, t * 100));
    }
    expect(id).toBeGreaterThan(3); // the retries did happen
    expect(admits).toEqual([]);
    expect(epochChecked(n, 6_010, id, 1)).toEqual([RELEASE_ALL]);
  });
});

describe('non-finite clock readings', () => {
  const BAD = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];

  /** Every input with a broken clock reading (and, where it has one, a sane atMs). */
  function junk(epoch: number): RoleInput[] {
    const inputs: RoleInput[] = [];
    for (const bad of BAD) {
      inputs.push(...everyInput(bad, epoch), { type: 'peer-traffic', nowMs: bad, atMs: 1_000_000 }, { type: 'peer-traffic', nowMs: bad, atMs: 0 });
    }
    return inputs;
  }

  /** Finite inputs from `t` on that exercise what a broken reading could have disturbed: gap detection, suspicion, acks, lag, claims, checks. */
  function continuation(t: number, epoch: number): RoleInput[] {
    return [
      { type: 'tick', nowMs: t + 10 },
      { type: 'lag', nowMs: t + 20, lagMs: 1e9, lagBytes: 0 },
      { type: 'acked', nowMs: t + 30, seq: 7 },
      { type: 'tick', nowMs: t + 60 },
      { type: 'drained', nowMs: t + 70 },
      { type: 'claim-result', nowMs: t + 80, epoch: epoch + 1, result: 'unreachable', detail: 'c' },
      { type: 'tick', nowMs: t + 1_000 }, // a gap, a suspicion, a retry due
      ...[1, 2, 3, 4].map((checkId, i): RoleInput => ({ type: 'epoch-checked', nowMs: t + 1_010 + i, checkId, newestEpoch: epoch, detail: 'c' })),
      { type: 'tick', nowMs: t + 1_100 },
      { type: 'drained', nowMs: t + 1_105 },
      { type: 'acked', nowMs: t + 1_110, seq: 9 },
      { type: 'claim-result', nowMs: t + 1_120, epoch: epoch + 1, result: 'won', detail: 'c' },
      { type: 'tick', nowMs: t + 1_200 },
      { type: 'fatal', nowMs: t + 1_210, reason: 'c' },
      { type: 'tick', nowMs: t + 1_300 },
      { type: 'tick', nowMs: t + 5_000 },
    ];
  }

  const scenarios: Array<[string, () => RoleMachine, number]> = [
    ['lone primary', () => new RoleMachine(CFG, 'primary', 1, 0), 0],
    [
      'primary with a backup',
      () => {
        const m = attachedPrimary();
        acked(m, 50, 1);
        return m;
      },
      50,
    ],
    [
      'lone primary verifying, retry scheduled',
      () => {
        const m = new RoleMachine(CFG, 'primary', 1, 0);
        tick(m, 1_000);
        epochChecked(m, 1_010, 1, null);
        return m;
      },
      1_010,
    ],
    [
      'claiming primary',
      () => {
        const m = attachedPrimary();
        fatal(m, 10);
        return m;
      },
      10,
    ],
    ['welcomed backup', () => welcomedBackup(), 0],
    ['unwelcomed backup', () => new RoleMachine(CFG, 'backup', 0, 0), 0],
    [
      'draining backup',
      () => {
        const m = welcomedBackup();
        tick(m, 300);
        return m;
      },
      300,
    ],
    [
      'claiming backup',
      () => {
        const m = welcomedBackup();
        tick(m, 300);
        drained(m, 310);
        return m;
      },
      310,
    ],
    ['live', () => liveFromBackup(), 610],
  ];

  for (const [name, build, t] of scenarios) {
    test(`ignored entirely (no action, no state change, later behaviour unchanged): ${name}`, () => {
      const m = build();
      const twin = build(); // never sees a broken reading
      expect(observe(m)).toEqual(observe(twin));
      const bad = junk(m.epoch);
      const feedJunk = (when: string) => {
        const before = observe(m);
        for (const input of bad) {
          expect(m.step(input), `${when}: ${JSON.stringify(input)}`).toEqual([]);
          expect(observe(m), `${when}: ${JSON.stringify(input)}`).toEqual(before);
        }
      };
      feedJunk('before');
      let acted = 0;
      for (const input of continuation(t, twin.epoch)) {
        const want = twin.step(input);
        acted += want.length;
        expect(m.step(input), `after junk: ${JSON.stringify(input)}`).toEqual(want);
        expect(observe(m)).toEqual(observe(twin));
        feedJunk(`after ${JSON.stringify(input)}`);
      }
      expect(acted).toBeGreaterThan(0); // the continuation did exercise the machine
    });
  }

  test('a broken reading does not disable gap detection, attach a backup, release, claim or halt', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    for (const bad of BAD) {
      expect(tick(m, bad)).toEqual([]);
      expect(peerUp(m, bad)).toEqual([]);
      expect(fatal(m, bad)).toEqual([]);
    }
    expect(m.hasBackup).toBe(false);
    expect(m.role).toBe('primary');
    expect(tick(m, 100)).toEqual([NOOP]); // the no-op period still counts from 0
    expect(tick(m, 1_000)).toEqual([HOLD, check(1), NOOP]); // a gap is still a gap
    for (const bad of BAD) {
      expect(epochChecked(m, bad, 1, 1)).toEqual([]);
      expect(epochChecked(m, bad, 1, 9)).toEqual([]);
    }
    expect(m.verifyingEpoch).toBe(true);
    expect(epochChecked(m, 1_010, 1, 1)).toEqual([RELEASE_ALL]);
    const p = attachedPrimary();
    for (const bad of BAD) {
      expect(acked(p, bad, 5)).toEqual([]);
      expect(lag(p, bad, 1e9, 1e12)).toEqual([]);
      expect(traffic(p, bad, 250)).toEqual([]); // not heard: the timeout still counts from 0
    }
    expect(acked(p, 10, 3)).toEqual([releaseThrough(3)]); // the ack of 5 was never taken
    expect(tick(p, 100)).toEqual([NOOP]);
    expect(tick(p, 200)).toEqual([NOOP]);
    expect(tick(p, 310)).toEqual([NOOP, dropPeer(), claim(2)]); // silent since the ack at 10
    for (const bad of BAD) expect(claimResult(p, bad, 2, 'won')).toEqual([]);
    expect(p.role).toBe('claiming');
    expect(claimResult(p, 320, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
  });
});

describe('live node', () => {
  test('appends a no-op each heartbeat period of idleness, never claims while alone; a backup attaching re-protects it', () => {
    const m = liveFromBackup();
    const seen = tickRange(m, 610, 5_610, 10);
    expect(seen.map(([t]) => t)).toEqual(Array.from({ length: 50 }, (_, i) => 710 + i * 100));
    for (const [, a] of seen) expect(a).toEqual([NOOP]);
    // Alone: traffic, stray acks, drained reports, a peer-down, lag: nothing (no release, no claim, no throttle).
    expect(traffic(m, 5_615)).toEqual([]);
    expect(acked(m, 5_617, 3)).toEqual([]);
    expect(drained(m, 5_618)).toEqual([]);
    expect(peerDown(m, 5_619)).toEqual([]);
    expect(lag(m, 5_619, 1e9, 1e12)).toEqual([]);
    expect(m.role).toBe('live');
    expect(m.hasBackup).toBe(false);
    expect(m.holdsOutputs).toBe(false);
    // A new backup attaches: a primary again in epoch 2, holding for it; no drop-peer, no claim, no release.
    const out = m.step({ type: 'peer-up', nowMs: 5_620 });
    expect(out).toEqual([HOLD, { type: 'log', level: 'info', msg: expect.stringMatching(/^backup attached: re-protected in epoch 2; /) }]);
    expect(m.role).toBe('primary');
    expect(m.epoch).toBe(2);
    expect(m.hasBackup).toBe(true);
    expect(m.holdsOutputs).toBe(true);
    expect(m.verifyingEpoch).toBe(false);
    expect(m.mayRelease(5_620)).toBe(true);
    // It behaves as a protected primary: acks release through them, monotonically.
    expect(traffic(m, 5_630)).toEqual([]);
    expect(acked(m, 5_650, 7)).toEqual([releaseThrough(7)]);
    expect(acked(m, 5_660, 7)).toEqual([]);
    expect(acked(m, 5_670, 9)).toEqual([releaseThrough(9)]);
    expect(appended(m, 5_700)).toEqual([]);
    expect(tick(m, 5_750)).toEqual([]);
    expect(tick(m, 5_800)).toEqual([NOOP]);
    // The new backup's lag throttles, its catching up re-admits.
    expect(lag(m, 5_810, 1_001, 0)).toEqual([admit(false)]);
    expect(lag(m, 5_820, 0, 0)).toEqual([admit(true)]);
    // Silent past the timeout (counted from its last ack at 5_670): drop it and claim epoch 3.
    expect(tickRange(m, 5_820, 5_960, 10)).toEqual([[5_900, [NOOP]]]);
    expect(tick(m, 5_969)).toEqual([]);
    const lost = m.step({ type: 'tick', nowMs: 5_970 });
    expect(lost.filter((a) => a.type !== 'log')).toEqual([dropPeer(), claim(3)]); // no hold: already holding
    expect(lost).toContainEqual(logLine('warn', /backup lost: backup silent for 300 ms/));
    expect(m.role).toBe('claiming');
    expect(m.epoch).toBe(2);
    expect(m.holdsOutputs).toBe(true);
    expect(acked(m, 5_980, 20)).toEqual([]); // nothing leaves mid-claim
    expect(claimResult(m, 5_990, 3, 'won')).toEqual([won(3), RELEASE_ALL]); // no go-live: it already runs
    expect(m.role).toBe('live');
    expect(m.epoch).toBe(3);
    expect(m.hasBackup).toBe(false);
    expect(m.holdsOutputs).toBe(false);
  });

  test('re-protected then peer-down: still holding for it (its acks decide), the timeout still claims, fatal claims', () => {
    const m = liveFromBackup();
    expect(peerUp(m, 620)).toEqual([HOLD]);
    expect(m.step({ type: 'peer-down', nowMs: 630, reason: 'socket closed' })).toEqual([logLine('warn', 'socket closed')]);
    expect(m.role).toBe('primary');
    expect(m.hasBackup).toBe(true);
    expect(m.holdsOutputs).toBe(true);
    expect(peerUp(m, 640)).toEqual([]); // re-attached to the primary it now is: no second hold
    expect(peerDown(m, 650)).toEqual([]);
    expect(tickRange(m, 650, 930, 10)).toEqual([
      [710, [NOOP]],
      [810, [NOOP]],
      [910, [NOOP]],
    ]);
    expect(tick(m, 939)).toEqual([]);
    expect(tick(m, 940)).toEqual([claim(3)]); // 300 ms after the re-attach at 640; the peer is down: no drop-peer
    expect(claimResult(m, 950, 3, 'lost')).toEqual([halt(EXIT_LOST_EPOCH)]);
    expectInert(m, 960);
    // A fatal on the re-protected primary claims the next epoch (no longer ignored as on a live node).
    const n = liveFromBackup();
    expect(fatal(n, 620)).toEqual([]); // live: ignored
    expect(peerUp(n, 630)).toEqual([HOLD]);
    expect(fatal(n, 640)).toEqual([dropPeer(), claim(3)]);
    expect(fatal(n, 650)).toEqual([]); // a claiming primary ignores it; never a halt for a former backup now claiming as a primary
    expect(n.role).toBe('claiming');
    expect(drained(n, 660)).toEqual([]); // the drain is a backup's, not this claim's
    expect(epochSeen(n, 670, 9)).toEqual([]);
    expect(n.epoch).toBe(2);
    expect(claimResult(n, 680, 3, 'won')).toEqual([won(3), RELEASE_ALL]); // no go-live this time
  });

  test('re-protection while verifying its epoch after a pause: hold (again), keep verifying; the confirmation releases through acks only', () => {
    const m = liveFromBackup();
    expect(tick(m, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(peerUp(m, 1_010)).toEqual([HOLD]);
    expect(m.role).toBe('primary');
    expect(m.verifyingEpoch).toBe(true);
    expect(m.mayRelease(1_010)).toBe(false);
    expect(acked(m, 1_020, 4)).toEqual([]); // not while verifying
    expect(epochChecked(m, 1_030, 1, 2)).toEqual([releaseThrough(4)]); // not release-all: a backup is attached now
    expect(m.verifyingEpoch).toBe(false);
    expect(m.holdsOutputs).toBe(true);
    expect(acked(m, 1_040, 5)).toEqual([releaseThrough(5)]);
    // A newer epoch found instead: halt.
    const n = liveFromBackup();
    expect(tick(n, 1_000)).toEqual([HOLD, check(1), NOOP]);
    expect(peerUp(n, 1_010)).toEqual([HOLD]);
    expect(epochChecked(n, 1_020, 1, 3)).toEqual([halt(EXIT_LOST_EPOCH)]);
    expectInert(n, 1_030);
    // The pause noticed in the very step of the attach: the gap's hold and check first, then the re-protection's hold.
    const g = liveFromBackup();
    const out = g.step({ type: 'peer-up', nowMs: 1_000 });
    expect(out.filter((a) => a.type !== 'log')).toEqual([HOLD, check(1), HOLD]);
    expect(out.at(-1)).toEqual(logLine('info', 're-protected in epoch 2'));
    expect(g.role).toBe('primary');
    expect(g.verifyingEpoch).toBe(true);
    expect(epochChecked(g, 1_010, 1, 2)).toEqual([]); // nothing acked yet: nothing to release
    expect(acked(g, 1_020, 1)).toEqual([releaseThrough(1)]);
  });
});

describe('full cycle: re-protection across epochs', () => {
  test('primary → backup lost → claim won (live, epoch 2) → new backup (primary, epoch 2) → acks release → backup lost → claim 3 won → live', () => {
    const m = attachedPrimary();
    expect(m.epoch).toBe(1);
    expect(acked(m, 50, 5)).toEqual([releaseThrough(5)]);
    // Backup lost (silent from 50): drop it, claim epoch 2, win, run alone.
    expect(tickRange(m, 50, 340, 10)).toEqual([
      [100, [NOOP]],
      [200, [NOOP]],
      [300, [NOOP]],
    ]);
    expect(tick(m, 350)).toEqual([dropPeer(), claim(2)]);
    expect(m.role).toBe('claiming');
    expect(acked(m, 355, 6)).toEqual([]); // a late ack mid-claim releases nothing
    expect(claimResult(m, 360, 2, 'won')).toEqual([won(2), RELEASE_ALL]);
    expect(m.role).toBe('live');
    expect(m.epoch).toBe(2);
    expect(m.hasBackup).toBe(false);
    expect(m.holdsOutputs).toBe(false);
    expect(tickRange(m, 360, 1_000, 10).map(([t]) => t)).toEqual([460, 560, 660, 760, 860, 960]); // alone: no-ops, no claim
    expect(m.role).toBe('live');
    // A new backup attaches: primary in epoch 2, holding.
    const attach = m.step({ type: 'peer-up', nowMs: 1_000 });
    expect(attach).toEqual([HOLD, logLine('info', 're-protected in epoch 2')]);
    expect(m.role).toBe('primary');
    expect(m.epoch).toBe(2);
    expect(m.hasBackup).toBe(true);
    expect(m.holdsOutputs).toBe(true);
    // Its acks release through them, and keep it alive.
    for (let t = 1_010, seq = 10; t <= 2_000; t += 10, seq++) {
      const a = t % 50 === 0 ? acked(m, t, seq) : tick(m, t);
      if (t % 50 === 0) expect(a, `ack ${seq} at ${t}`).toEqual([releaseThrough(seq)]);
      else expect(a.filter((x) => x.type !== 'append-noop')).toEqual([]);
    }
    expect(m.role).toBe('primary');
    expect(m.epoch).toBe(2);
    // Backup lost again (last ack at 2_000): drop it, claim epoch 3 exactly at the timeout.
    expect(tickRange(m, 2_000, 2_290, 10).every(([, a]) => a.every((x) => x.type === 'append-noop'))).toBe(true);
    expect(tick(m, 2_299).filter((x) => x.type !== 'append-noop')).toEqual([]);
    expect(tick(m, 2_300).filter((x) => x.type !== 'append-noop')).toEqual([dropPeer(), claim(3)]);
    expect(m.role).toBe('claiming');
    expect(m.epoch).toBe(2);
    expect(m.holdsOutputs).toBe(true);
    expect(claimResult(m, 2_310, 2, 'won')).toEqual([]); // the old epoch's answer is not this claim's
    expect(claimResult(m, 2_320, 3, 'won')).toEqual([won(3), RELEASE_ALL]);
    expect(m.role).toBe('live');
    expect(m.epoch).toBe(3);
    expect(m.hasBackup).toBe(false);
    expect(m.holdsOutputs).toBe(false);
    expect(acked(m, 2_330, 500)).toEqual([]);
    // ... and the cycle can go on: a third backup re-protects it in epoch 3.
    expect(peerUp(m, 2_340)).toEqual([HOLD]);
    expect(m.role).toBe('primary');
    expect(m.epoch).toBe(3);
    expect(acked(m, 2_350, 501)).toEqual([releaseThrough(501)]);
  });

  test('a former backup runs the same cycle: live in 2, re-protected, claims 3 as a primary (no drain, no go-live)', () => {
    const m = liveFromBackup();
    expect(peerUp(m, 620)).toEqual([HOLD]);
    expect(m.role).toBe('primary');
    expect(acked(m, 630, 1)).toEqual([releaseThrough(1)]);
    expect(tickRange(m, 630, 920, 10).every(([, a]) => a.every((x) => x.type === 'append-noop'))).toBe(true);
    expect(tick(m, 930).filter((x) => x.type !== 'append-noop')).toEqual([dropPeer(), claim(3)]); // not a drain
    expect(claimResult(m, 940, 3, 'unreachable')).toEqual([]);
    expect(tick(m, 1_439)).toEqual([]);
    expect(tick(m, 1_440)).toEqual([claim(3)]);
    expect(claimResult(m, 1_450, 3, 'won')).toEqual([won(3), RELEASE_ALL]);
    expect(m.role).toBe('live');
    expect(m.epoch).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------------
// Seeded randomized run: safety invariants on every step.
//
// The environment is modelled the way the shells (hypervisor/node/primary.ts, backup.ts) behave: every
// 'check-epoch' gets one 'epoch-checked' answer carrying its checkId and every 'claim' one
// 'claim-result', delivered later. Epoch reads are independent promises, so answers arrive out of
// order, and answers to superseded checks (stale) still arrive; a few answers are even delivered twice.
// 'drained' follows a 'drain'. A 'peer-up' may come in any role: to a live node it is a new backup
// attaching, which re-protects it (a primary again, in the epoch it holds, holding for that backup's
// acks), so one run can go through several epochs: primary → claiming → live → primary → claiming → ...
// Stray claim results for epochs never claimed (including while no claim
// has been issued at all, e.g. a backup still draining) and stray 'drained' reports are mixed in (the
// machine must ignore them), and so are inputs carrying a broken (non-finite) clock reading, which must
// be ignored entirely. An unreachable answer to the newest check is retried by the machine itself:
// 'check-epoch' on the first tick claimRetryMs later, unless a new gap asked first. Clocks are
// monotone with occasional large jumps (a paused process).
//
// The checks below are computed from what the environment saw (inputs given, actions received),
// not from the machine's private state.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Coverage = Record<string, number>;

function bump(c: Coverage, what: string): void {
  c[what] = (c[what] ?? 0) + 1;
}

const RELEASES = new Set(['release-through', 'release-all']);
const ALLOWED_MOVES = new Set([
  'primary→primary',
  'primary→claiming',
  'primary→halted',
  'backup→backup',
  'backup→claiming',
  'backup→halted',
  'claiming→claiming',
  'claiming→live',
  // A primary's claim won with a backup that attached meanwhile: a primary again, in the new epoch.
  'claiming→primary',
  'claiming→halted',
  'live→live',
  'live→primary',
  'live→halted',
  'halted→halted',
]);

/** A compact rendering of an action, for comparing what came out with what had to. */
function show(a: RoleAction): string {
  switch (a.type) {
    case 'release-through':
      return `release-through:${a.seq}`;
    case 'check-epoch':
      return `check-epoch:${a.checkId}`;
    case 'claim':
    case 'epoch-won':
    case 'go-live':
      return `${a.type}:${a.epoch}`;
    case 'halt':
      return `halt:${a.exitCode}`;
    case 'admit':
      return `admit:${a.admit}`;
    default:
      return a.type;
  }
}

/** Runs one random sequence; returns null or a description of the first invariant broken. */
function runSeed(seed: number, start: 'primary' | 'backup', cov: Coverage): string | null {
  const rnd = mulberry32(seed * 2 + (start === 'primary' ? 0 : 1));
  const int = (n: number) => Math.floor(rnd() * n);
  const heartbeatMs = 10 + int(200);
  const cfg: RoleConfig = {
    heartbeatMs,
    heartbeatTimeoutMs: heartbeatMs + 1 + int(heartbeatMs * 5),
    claimRetryMs: rnd() < 0.1 ? 0 : 1 + int(1_000),
    maxLagMs: 100 + int(2_000),
    maxLagBytes: 1_000 + int(1_000_000),
    // The lease's periodic checks are tested on their own (role-lease.test.ts); off in this model.
    maxReplayLagMs: 1e12,
    leaseMs: 1e12,
  };
  const toleranceMs = cfg.heartbeatTimeoutMs / 2;
  let now = int(10_000);
  const m = new RoleMachine(cfg, start, start === 'backup' && rnd() < 0.5 ? 0 : 1 + int(5), now);
  const trail: RoleInput[] = [];

  // What the environment knows.
  let lastSeenMs = now; // the newest clock reading given to the machine
  let lastHeardMs = now; // when the peer was last heard (peer-up, acks, peer-traffic)
  let stallEndMs: number | null = null; // when the last own stall ended
  let maxAcked = 0;
  let lastReleased = 0;
  let welcomed = false; // backup: a peer-up arrived while it was a backup
  let attached = false; // primary: a backup attached in this epoch (its outputs wait for its acks); cleared when an epoch is won
  let peerConnected = false; // the peer's connection is up, as far as the machine was told (peer-up … peer-down / a claim's drop-peer)
  let claimingFor: 'backup' | 'primary' | null = null; // why the current (or last) claim started: a lost primary, or a lost backup
  let epochsWon = 0;
  let reprotections = 0; // peer-ups that turned this live node back into a primary
  let shellHolding = start === 'backup'; // the shell's output buffer (hold-outputs / release-all); a backup emits nothing
  let verifying = false; // from a gap's check-epoch to the answer to the newest check (or a win, or a halt)
  let newestCheckId = 0;
  const outstanding: number[] = []; // check ids asked and not answered yet
  const answered: number[] = [];
  const claimsInFlight: number[] = [];
  let claimEpoch = 0; // the epoch this node claims (0: no claim issued yet)
  let retryAtMs: number | null = null;
  let checkRetryAtMs: number | null = null; // an unreachable answer to the newest check: ask again at the first tick from then
  let drainAsked = false;
  let drains = 0;
  let admitting = true;
  const steps = 20 + int(300);

  for (let i = 0; i < steps; i++) {
    // Monotone clock: mostly small steps, sometimes none, occasionally a large jump (a pause).
    const p = rnd();
    if (p < 0.05) now += Math.floor(toleranceMs) + int(cfg.heartbeatTimeoutMs * 10);
    else if (p >= 0.25) now += int(Math.floor(cfg.heartbeatMs * 1.2));
    const nowMs = now;

    // Now and then an input with a broken clock reading: it must change nothing at all.
    if (rnd() < 0.03) {
      const pool = everyInput([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY][int(3)]!, m.epoch);
      const bad = pool[int(pool.length)]!;
      trail.push(bad);
      const before = JSON.stringify(observe(m));
      const got = m.step(bad);
      if (got.length > 0 || JSON.stringify(observe(m)) !== before)
        return `seed ${seed} (${start}) step ${i}: a non-finite clock reading had an effect\n  config ${JSON.stringify(cfg)}\n  input ${JSON.stringify(bad)}\n  actions ${JSON.stringify(got)}\n  state ${before} → ${JSON.stringify(observe(m))}\n  last inputs ${JSON.stringify(trail.slice(-12))}`;
      bump(cov, `junk:${bad.type}`);
      bump(cov, 'junk:non-finite');
      continue;
    }

    let input: RoleInput;
    const k = rnd();
    if (k < 0.27) input = { type: 'tick', nowMs };
    else if (k < 0.31) input = { type: 'peer-up', nowMs };
    else if (k < 0.34) input = { type: 'peer-down', nowMs, reason: 'r' };
    else if (k < 0.44) {
      const q = rnd();
      const atMs =
        q < 0.78
          ? nowMs - int(cfg.heartbeatMs * 2)
          : q < 0.88
            ? nowMs - int(cfg.heartbeatTimeoutMs * 5)
            : q < 0.97
              ? nowMs + int(100)
              : [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY][int(3)]!;
      input = { type: 'peer-traffic', nowMs, atMs };
    } else if (k < 0.55) input = { type: 'acked', nowMs, seq: Math.max(0, maxAcked - 4 + int(12)) };
    else if (k < 0.59) input = { type: 'appended', nowMs };
    else if (k < 0.64) input = { type: 'lag', nowMs, lagMs: int(cfg.maxLagMs * 2), lagBytes: int(cfg.maxLagBytes * 2) };
    else if (k < 0.68) {
      if (drainAsked || rnd() < 0.2) {
        drainAsked = false;
        input = { type: 'drained', nowMs };
      } else input = { type: 'tick', nowMs };
    } else if (k < 0.72) input = { type: 'epoch-seen', nowMs, epoch: Math.max(0, m.epoch - 1 + int(4)) };
    else if (k < 0.83) {
      const r = rnd();
      const result = r < 0.35 ? 'won' : r < 0.55 ? 'lost' : 'unreachable';
      if (claimsInFlight.length > 0 && rnd() < 0.9) input = { type: 'claim-result', nowMs, epoch: claimsInFlight.shift()!, result, detail: 'd' };
      else if (claimEpoch === 0 && rnd() < 0.6)
        input = { type: 'claim-result', nowMs, epoch: [0, m.epoch, m.epoch + 1][int(3)]!, result, detail: 'no claim yet' }; // ignored
      else input = { type: 'claim-result', nowMs, epoch: Math.max(claimEpoch, m.epoch) + 1 + int(3), result, detail: 'stray' }; // never claimed: ignored
    } else if (k < 0.985) {
      const r = rnd();
      let checkId: number | null = null;
      if (outstanding.length > 0 && r < 0.9) {
        const at = int(outstanding.length); // any of them: reads complete out of order
        checkId = outstanding.splice(at, 1)[0]!;
        if (outstanding.some((id) => id < checkId!)) bump(cov, 'answer:out-of-order');
        answered.push(checkId);
      } else if (answered.length > 0 && r < 0.95) {
        checkId = answered[int(answered.length)]!; // delivered twice
        bump(cov, 'answer:duplicate');
      }
      if (checkId === null) input = { type: 'tick', nowMs };
      else {
        const e = rnd();
        const newestEpoch = e < 0.25 ? null : e < 0.38 ? Math.max(0, m.epoch - 1) : e < 0.75 ? m.epoch : e < 0.9 ? m.epoch + 1 : m.epoch + 2;
        input = { type: 'epoch-checked', nowMs, checkId, newestEpoch, detail: 'd' };
      }
    } else input = rnd() < 0.5 ? { type: 'fatal', nowMs, reason: 'f' } : { type: 'fatal', nowMs, reason: 'f', exitCode: 70 + int(10) };
    trail.push(input);
    if (input.type === 'acked') maxAcked = Math.max(maxAcked, input.seq);

    // ---- What must happen, from what the environment knows before the step.
    const roleBefore: Role = m.role;
    const epochBefore = m.epoch;
    const verifyingBefore = verifying;
    const gap = nowMs - lastSeenMs > toleranceMs;
    const stallStartMs = lastSeenMs;
    lastSeenMs = Math.max(lastSeenMs, nowMs);
    const runs = roleBefore === 'primary' || roleBefore === 'live'; // its outputs can leave
    const gapCheck = gap && runs;
    const direct = roleBefore === 'live' || (roleBefore === 'primary' && !attached);
    const checked = input.type === 'epoch-checked' ? input : null;
    const answersNewest = checked !== null && !gapCheck && verifyingBefore && checked.checkId === newestCheckId;
    const confirms = answersNewest && roleBefore !== 'claiming' && checked.newestEpoch !== null && checked.newestEpoch <= epochBefore;
    // An unreachable answer schedules a retry (not while claiming: the claim decides); the retry is the
    // first tick at or after it, unless a gap asked first (a gap cancels it).
    const schedulesRetry = answersNewest && roleBefore !== 'claiming' && checked.newestEpoch === null;
    const retryDue = input.type === 'tick' && !gapCheck && verifyingBefore && checkRetryAtMs !== null && nowMs >= checkRetryAtMs;
    const newerFound = answersNewest && checked.newestEpoch !== null && checked.newestEpoch > (roleBefore === 'claiming' ? Math.max(epochBefore, claimEpoch) : epochBefore);
    const claimAnswer = roleBefore === 'claiming' && input.type === 'claim-result' && claimEpoch !== 0 && input.epoch === claimEpoch ? input.result : null;
    const wonClaim = claimAnswer === 'won';
    // A primary's claim won while a backup that attached mid-claim is still connected: kept, a primary again.
    const wonWithPeer = wonClaim && claimingFor === 'primary' && peerConnected;
    const fatalHalts = input.type === 'fatal' && (roleBefore === 'backup' || (roleBefore === 'claiming' && claimingFor === 'backup'));
    const fatalIgnored = input.type === 'fatal' && (roleBefore === 'live' || (roleBefore === 'claiming' && claimingFor === 'primary'));
    const expectedHalt = claimAnswer === 'lost' || newerFound ? EXIT_LOST_EPOCH : fatalHalts ? ((input as { exitCode?: number }).exitCode ?? EXIT_DIVERGED) : null;
    // Every role: a gap in its own clock does not count as the peer's silence: what the peer was silent
    // before the stall is kept up to half a timeout, the stall itself not at all.
    if (gap && roleBefore !== 'halted') {
      lastHeardMs = Math.max(lastHeardMs, nowMs - Math.min(Math.max(0, stallStartMs - lastHeardMs), cfg.heartbeatTimeoutMs / 2));
      stallEndMs = nowMs;
    }
    // A connection that closes with nothing heard since the stall: that kept half timeout is dropped,
    // and the silence counts from the close (once per stall).
    if (input.type === 'peer-down' && roleBefore !== 'halted' && stallEndMs !== null && lastHeardMs < stallEndMs) {
      lastHeardMs = Math.max(stallEndMs, nowMs);
      stallEndMs = null;
    }
    const silent = nowMs - lastHeardMs >= cfg.heartbeatTimeoutMs;
    const expectDrain = input.type === 'tick' && roleBefore === 'backup' && welcomed && silent && epochBefore > 0;
    const expectClaim =
      (input.type === 'tick' && roleBefore === 'primary' && attached && silent) ||
      (input.type === 'fatal' && roleBefore === 'primary') ||
      (input.type === 'drained' && roleBefore === 'claiming' && claimingFor === 'backup' && claimEpoch === 0) ||
      (input.type === 'tick' && roleBefore === 'claiming' && retryAtMs !== null && nowMs >= retryAtMs);
    const following = roleBefore === 'backup' || (roleBefore === 'claiming' && claimingFor === 'backup' && claimEpoch === 0);
    // A new backup attaching to a live node re-protects it: primary again, same epoch, holding for it.
    const reprotect = input.type === 'peer-up' && roleBefore === 'live';
    // A claiming backup takes no peer (a claiming primary keeps one); a primary that claims drops the backup still connected.
    const keepsPeer = input.type === 'peer-up' && roleBefore === 'claiming' && claimingFor === 'primary';
    const expectDrops = (input.type === 'peer-up' && roleBefore === 'claiming' && !keepsPeer ? 1 : 0) + (expectClaim && roleBefore === 'primary' && peerConnected ? 1 : 0);

    const out = m.step(input);
    const roleAfter: Role = m.role;
    const acts = out.filter((a) => a.type !== 'log');
    const shown = acts.map(show);
    const fail = (msg: string) =>
      `seed ${seed} (${start}) step ${i}: ${msg}\n  config ${JSON.stringify(cfg)}\n  role ${roleBefore} → ${roleAfter}, epoch ${epochBefore} → ${m.epoch}, verifying ${verifyingBefore}, newest check ${newestCheckId}, claim ${claimEpoch}\n  input ${JSON.stringify(input)}\n  actions ${JSON.stringify(out)}\n  last inputs ${JSON.stringify(trail.slice(-12))}`;

    bump(cov, `role:${roleAfter}`);
    for (const a of acts) bump(cov, `action:${a.type}`);
    if (roleBefore === 'halted') {
      if (out.length > 0) return fail('a halted machine emitted actions');
      if (roleAfter !== 'halted' || m.epoch !== epochBefore) return fail('a halted machine changed');
      continue;
    }
    if (!ALLOWED_MOVES.has(`${roleBefore}→${roleAfter}`)) return fail(`role moved ${roleBefore} → ${roleAfter}`);

    // ---- The invariant: nothing is released between a gap's hold-outputs / check-epoch and the answer
    // to the newest check (or an epoch won). A gap in this very step counts (a stale ack read on waking).
    const releases = acts.filter((a) => RELEASES.has(a.type));
    if ((verifyingBefore || gapCheck) && releases.length > 0 && !(answersNewest || wonClaim))
      return fail(`${releases[0]!.type} between a gap's hold-outputs/check-epoch and the answer to the newest check`);

    // ---- Epoch checks: asked exactly on a gap (primary/live) and on the first tick claimRetryMs after an
    // unreachable answer to the newest check (never at once: a fast-failing directory must not spin),
    // with ever-increasing ids.
    const checks = acts.filter((a): a is Extract<RoleAction, { type: 'check-epoch' }> => a.type === 'check-epoch');
    if (checks.length !== (gapCheck ? 1 : 0) + (retryDue ? 1 : 0))
      return fail(`${checks.length} check-epoch, expected ${gapCheck ? 'one for the gap' : retryDue ? `one: the retry was due at ${checkRetryAtMs}` : `none (retry due at ${checkRetryAtMs})`}`);
    for (const c of checks) {
      if (c.checkId <= newestCheckId) return fail(`check-epoch id ${c.checkId} after ${newestCheckId}`);
      newestCheckId = c.checkId;
      outstanding.push(c.checkId);
    }
    if (gapCheck) bump(cov, verifyingBefore ? 'gap:while-verifying' : 'gap:first');
    if (gapCheck && checkRetryAtMs !== null) bump(cov, 'gap:cancels-retry');
    if (retryDue) bump(cov, `check:retry:${roleBefore}`);
    else if (input.type === 'tick' && verifyingBefore && checkRetryAtMs !== null && !gapCheck) bump(cov, 'check:retry-not-yet');
    if (gapCheck || retryDue) checkRetryAtMs = null;
    if (schedulesRetry) {
      checkRetryAtMs = nowMs + cfg.claimRetryMs;
      bump(cov, `check:unreachable:${roleBefore}`);
    }
    if (checked !== null) {
      if (!answersNewest && checks.length === 0) {
        // Ignored: stale, duplicate or unrequested. Nothing at all may come of it.
        if (acts.length > 0 || roleAfter !== roleBefore || m.epoch !== epochBefore) return fail('an answer to an old check had an effect');
        bump(cov, checked.checkId < newestCheckId ? 'answer:superseded-ignored' : 'answer:unrequested-ignored');
      } else if (answersNewest) bump(cov, `answer:newest:${roleBefore}`);
    }

    // ---- Holds: one on a gap that finds the outputs flowing (live, or primary with no backup yet), first
    // of all; one when a backup first attaches to a primary; one right before the claim of a primary
    // that was releasing directly (no backup attached, not verifying).
    const gapHold = gapCheck && !verifyingBefore && direct;
    const attachHold = input.type === 'peer-up' && roleBefore === 'primary' && !attached;
    const claimHold = expectClaim && roleBefore === 'primary' && !attached && !verifyingBefore && !gapCheck;
    const holds = acts.filter((a) => a.type === 'hold-outputs').length;
    if (holds !== (gapHold ? 1 : 0) + (attachHold ? 1 : 0) + (claimHold ? 1 : 0) + (reprotect ? 1 : 0))
      return fail(`${holds} hold-outputs, expected gap ${gapHold} + attach ${attachHold} + lone claim ${claimHold} + re-protection ${reprotect}`);
    if (gapHold) {
      if (shown[0] !== 'hold-outputs' || shown[1] !== `check-epoch:${newestCheckId}`) return fail('a gap on a direct node must emit hold-outputs, then check-epoch, first');
      bump(cov, `gap:hold:${roleBefore}`);
    }
    if (claimHold) {
      const at = shown.indexOf('hold-outputs');
      if (!shown[at + 1]?.startsWith('claim:')) return fail('a lone primary must emit hold-outputs right before its claim');
      bump(cov, 'claim:lone-hold');
    } else if (expectClaim && roleBefore === 'primary') bump(cov, attached ? 'claim:primary-held-for-backup' : 'claim:primary-held-for-check');

    // ---- Re-protection: a live node that hears peer-up is a primary again in the same epoch, holding for
    // the new backup (hasBackup), its hold-outputs the last action (after a gap's hold and check, if this
    // very step noticed one), then the info log; no drop-peer, no claim, no release.
    if (reprotect) {
      if (roleAfter !== 'primary') return fail(`peer-up on a live node left it ${roleAfter}, expected primary (re-protected)`);
      if (m.epoch !== epochBefore) return fail(`re-protection moved the epoch ${epochBefore} → ${m.epoch}`);
      if (!m.hasBackup || !m.holdsOutputs) return fail(`re-protected, but hasBackup ${m.hasBackup} holdsOutputs ${m.holdsOutputs}`);
      if (shown.at(-1) !== 'hold-outputs') return fail(`re-protection: hold-outputs must be the last action, got ${JSON.stringify(shown)}`);
      const wantShown = [...(gapHold ? ['hold-outputs'] : []), ...(gapCheck ? [`check-epoch:${newestCheckId}`] : []), 'hold-outputs'];
      if (shown.join() !== wantShown.join()) return fail(`re-protection: actions ${JSON.stringify(shown)}, expected ${JSON.stringify(wantShown)}`);
      const last = out.at(-1);
      if (!(last?.type === 'log' && last.level === 'info' && last.msg.startsWith(`backup attached: re-protected in epoch ${epochBefore};`)))
        return fail('re-protection without its info log right after the hold');
      reprotections++;
      bump(cov, 'reprotect');
      bump(cov, `reprotect:from-${start}`);
      if (verifyingBefore || gapCheck) bump(cov, 'reprotect:while-verifying');
      if (epochsWon >= 2) bump(cov, 'reprotect:after-second-win');
    } else if (roleBefore === 'live' && roleAfter === 'primary') return fail(`live → primary on ${input.type}, not a peer-up`);

    // ---- Drops, exactly: a claiming node refuses a peer; a primary that starts a claim drops the backup
    // still connected (first of its actions but a gap's). Never on a live node's peer-up.
    const drops = acts.filter((a) => a.type === 'drop-peer').length;
    if (drops !== expectDrops) return fail(`${drops} drop-peer, expected ${expectDrops} (peer connected ${peerConnected})`);
    if (drops > 0) bump(cov, input.type === 'peer-up' ? 'drop:claiming-refuses' : reprotections > 0 ? 'drop:reprotected-backup-lost' : 'drop:backup-lost');
    if (keepsPeer) bump(cov, 'claiming:keeps-peer');

    // ---- Releases, exactly.
    let expectedReleases: string[] = [];
    if (wonWithPeer) expectedReleases = maxAcked > lastReleased ? [`release-through:${maxAcked}`] : [];
    else if (wonClaim) expectedReleases = ['release-all'];
    else if (confirms) expectedReleases = direct ? ['release-all'] : maxAcked > lastReleased ? [`release-through:${maxAcked}`] : [];
    else if (input.type === 'acked' && roleBefore === 'primary' && attached && !verifyingBefore && !gapCheck && maxAcked > lastReleased) expectedReleases = [`release-through:${maxAcked}`];
    const gotReleases = releases.map(show);
    if (gotReleases.join() !== expectedReleases.join()) return fail(`releases ${JSON.stringify(gotReleases)}, expected ${JSON.stringify(expectedReleases)}`);
    for (const a of releases) {
      if (a.type === 'release-through') {
        if (a.seq <= lastReleased || a.seq > maxAcked) return fail(`release-through ${a.seq} after ${lastReleased}, largest ack ${maxAcked}`);
        lastReleased = a.seq;
        if (reprotections > 0) bump(cov, 'release-through:after-reprotect');
      }
    }
    if (confirms) bump(cov, `confirm:${expectedReleases[0]?.split(':')[0] ?? 'nothing-new'}`);

    // ---- Halts, exactly, and nothing else with them.
    const halts = acts.filter((a): a is Extract<RoleAction, { type: 'halt' }> => a.type === 'halt');
    if (expectedHalt === null ? halts.length > 0 : halts.length !== 1 || halts[0]!.exitCode !== expectedHalt)
      return fail(`halts ${JSON.stringify(halts.map(show))}, expected ${expectedHalt ?? 'none'}`);
    if ((roleAfter === 'halted') !== (expectedHalt !== null)) return fail('the halted role and the halt action disagree');
    if (expectedHalt !== null) {
      if (acts.length !== 1) return fail('a halt with other actions');
      bump(cov, newerFound ? `halt:newer-epoch:${roleBefore}` : fatalHalts ? 'halt:fatal' : 'halt:lost');
    }
    if (answersNewest && roleBefore === 'claiming' && checked.newestEpoch === claimEpoch) bump(cov, 'claiming:own-epoch-seen');

    // ---- Winning: go-live (backup), epoch-won, release-all, in that order; live in the claimed epoch.
    const winning = acts.filter((a) => a.type === 'go-live' || a.type === 'epoch-won' || a.type === 'release-all').map(show);
    if (wonClaim) {
      const want = [...(claimingFor === 'backup' ? [`go-live:${claimEpoch}`] : []), `epoch-won:${claimEpoch}`, ...(wonWithPeer ? [] : ['release-all'])];
      if (winning.join() !== want.join()) return fail(`won: ${JSON.stringify(winning)}, expected ${JSON.stringify(want)}`);
      if (roleAfter !== (wonWithPeer ? 'primary' : 'live') || m.epoch !== claimEpoch || claimEpoch !== epochBefore + 1) return fail(`won, but not ${wonWithPeer ? 'primary' : 'live'} in epoch+1`);
      if (wonWithPeer) bump(cov, 'won:kept-peer');
      if (verifyingBefore) bump(cov, 'won:while-verifying');
      epochsWon++;
      if (reprotections > 0) bump(cov, `won:after-reprotect:${claimingFor}`);
    } else if (acts.some((a) => a.type === 'go-live' || a.type === 'epoch-won')) return fail('go-live/epoch-won without a won claim');

    // ---- Epoch: moves only by a won claim, or an epoch seen while following the primary.
    const expectedEpoch = wonClaim ? claimEpoch : input.type === 'epoch-seen' && following && input.epoch > epochBefore ? input.epoch : epochBefore;
    if (m.epoch !== expectedEpoch) return fail(`epoch ${m.epoch}, expected ${expectedEpoch}`);
    if (input.type === 'epoch-seen' && expectedEpoch !== epochBefore) bump(cov, roleBefore === 'backup' ? 'epoch-by-seen' : 'epoch-by-seen-while-draining');
    if (wonClaim) bump(cov, 'epoch-by-win');

    // ---- Drain and claims.
    const drainsNow = acts.filter((a) => a.type === 'drain').length;
    if (drainsNow !== (expectDrain ? 1 : 0)) return fail(`${drainsNow} drain, expected ${expectDrain ? 1 : 0} (welcomed ${welcomed}, silent ${silent})`);
    if (input.type === 'tick' && roleBefore === 'backup' && !welcomed && silent) bump(cov, 'backup:unwelcomed-silent');
    if (expectDrain) {
      drains++;
      drainAsked = true;
      if (start !== 'backup' || drains > 1) return fail('drain twice or from a primary');
    }
    const claims = acts.filter((a): a is Extract<RoleAction, { type: 'claim' }> => a.type === 'claim');
    if (roleBefore !== 'claiming' && roleAfter === 'claiming') {
      // A new claim cycle (a re-protected primary claims again, one epoch later than its last claim).
      if (expectDrain) claimingFor = 'backup';
      else if (expectClaim && roleBefore === 'primary') claimingFor = 'primary';
      else return fail(`claiming after ${input.type} as ${roleBefore}`);
      claimEpoch = 0;
      retryAtMs = null;
      if (claimingFor === 'primary' && reprotections > 0) bump(cov, 'claim:after-reprotect');
    }
    if (claims.length !== (expectClaim ? 1 : 0)) return fail(`${claims.length} claims, expected ${expectClaim ? 1 : 0}`);
    for (const c of claims) {
      if (roleAfter !== 'claiming' || c.epoch !== m.epoch + 1 || (claimEpoch !== 0 && c.epoch !== claimEpoch))
        return fail(`claim(${c.epoch}) at epoch ${m.epoch} as ${roleAfter}, claiming ${claimEpoch}`);
      if (retryAtMs !== null && input.type === 'tick' && roleBefore === 'claiming') bump(cov, 'claim:retry');
      claimEpoch = c.epoch;
      claimsInFlight.push(c.epoch);
      retryAtMs = null;
    }
    if (claimAnswer === 'unreachable') retryAtMs = nowMs + cfg.claimRetryMs;
    if (input.type === 'claim-result' && claimAnswer === null) {
      // Not an answer to the claim issued (or no claim issued yet): nothing may come of it.
      if (acts.some((a) => a.type !== 'hold-outputs' && a.type !== 'check-epoch') || roleAfter !== roleBefore || m.epoch !== epochBefore)
        return fail('a claim result for no claim issued, or another epoch, had an effect');
      if (roleBefore === 'claiming' && claimEpoch === 0) bump(cov, `claim-result:before-claim:${input.epoch === 0 ? 'zero' : 'other'}`);
    }

    // ---- Fatal on a node that runs alone (or is about to): a warning, nothing else.
    if (fatalIgnored) {
      if (acts.some((a) => a.type !== 'hold-outputs' && a.type !== 'check-epoch') || roleAfter !== roleBefore) return fail('fatal on a live node or a claiming primary did something');
      if (!out.some((a) => a.type === 'log' && a.level === 'warn' && a.msg.includes('ignored'))) return fail('fatal ignored without a warning');
      bump(cov, `fatal-ignored:${roleBefore}`);
    }

    // ---- Admission, exactly. Throttling follows the lag of an attached backup; a primary with no backup
    // is never throttled (a lag report re-admits it if it somehow was); a won claim re-admits.
    let expectedAdmits: string[] = [];
    if (input.type === 'lag' && roleBefore === 'primary') {
      const over = input.lagMs > cfg.maxLagMs || input.lagBytes > cfg.maxLagBytes;
      if (attached) expectedAdmits = over && admitting ? ['admit:false'] : !over && !admitting ? ['admit:true'] : [];
      else {
        expectedAdmits = admitting ? [] : ['admit:true'];
        if (over) bump(cov, verifyingBefore || gapCheck ? 'lag:no-backup-over-while-verifying' : 'lag:no-backup-over');
      }
    } else if (wonClaim && !admitting) expectedAdmits = ['admit:true'];
    const gotAdmits = acts.filter((a) => a.type === 'admit').map(show);
    if (gotAdmits.join() !== expectedAdmits.join()) return fail(`admits ${JSON.stringify(gotAdmits)}, expected ${JSON.stringify(expectedAdmits)}`);
    for (const a of acts) if (a.type === 'admit') admitting = a.admit;
    if (reprotections > 0 && gotAdmits.includes('admit:false')) bump(cov, 'throttle:after-reprotect');
    if (!admitting && !(attached && roleAfter !== 'live')) return fail(`throttled as ${roleAfter} with no backup attached in this epoch`);

    // ---- The shell's output buffer: held for as long as the epoch is being verified, and whenever a
    // claim goes out (nothing is released mid-claim).
    for (const a of acts) {
      if (a.type === 'hold-outputs') shellHolding = true;
      else if (a.type === 'release-all') shellHolding = false;
      else if (a.type === 'claim' && !shellHolding) return fail('a claim while the shell releases outputs directly');
    }
    if (gapCheck) verifying = true;
    if (confirms || wonClaim || roleAfter === 'halted') {
      verifying = false;
      checkRetryAtMs = null; // the verification is over: nothing left to retry
    }
    if (verifying && !shellHolding) return fail('outputs flow directly while the epoch is being verified');
    if (attachHold || reprotect) attached = true;
    if (wonClaim) attached = wonWithPeer; // a new epoch: no backup attached in it yet, but one kept through the claim
    if (roleAfter !== 'halted') {
      const holdsOutputs = roleAfter === 'claiming' || verifying || (roleAfter === 'primary' && attached);
      if (m.holdsOutputs !== holdsOutputs) return fail(`holdsOutputs ${m.holdsOutputs}, expected ${holdsOutputs}`);
      const hasBackup = attached && (roleAfter === 'primary' || roleAfter === 'claiming');
      if (m.hasBackup !== hasBackup) return fail(`hasBackup ${m.hasBackup}, expected ${hasBackup}`);
      if (m.verifyingEpoch !== verifying) return fail(`verifyingEpoch ${m.verifyingEpoch}, expected ${verifying}`);
    }

    // ---- Environment bookkeeping.
    if (expectClaim && roleBefore === 'primary') peerConnected = false; // dropped (or already down)
    if (input.type === 'peer-up') {
      lastHeardMs = nowMs;
      if (roleBefore === 'backup') welcomed = true;
      if (roleBefore === 'primary' || roleBefore === 'backup' || roleBefore === 'live' || keepsPeer) peerConnected = true; // a claiming backup refused it
    } else if (input.type === 'peer-down') peerConnected = false;
    else if (input.type === 'acked') lastHeardMs = nowMs;
    else if (input.type === 'peer-traffic' && Number.isFinite(input.atMs)) lastHeardMs = Math.max(lastHeardMs, Math.min(input.atMs, nowMs));
  }
  return null;
}

describe('randomized (seeded)', () => {
  test('2,000 seeds × {primary, backup}: safety invariants hold on every step', () => {
    const cov: Coverage = {};
    const failures: string[] = [];
    for (let seed = 1; seed <= 2_000; seed++) {
      for (const start of ['primary', 'backup'] as const) {
        const f = runSeed(seed, start, cov);
        if (f) failures.push(f);
      }
    }
    if (failures.length > 0) {
      console.error(`${failures.length} failing sequences; first:\n${failures[0]}`);
      console.error(
        `failing seeds: ${failures
          .map((f) => f.split(' step')[0])
          .slice(0, 20)
          .join(', ')}`,
      );
    }
    expect(failures.slice(0, 3)).toEqual([]);
    // The run must actually reach the interesting states, or it proves nothing.
    for (const what of [
      'role:primary',
      'role:backup',
      'role:claiming',
      'role:live',
      'role:halted',
      'epoch-by-win',
      'epoch-by-seen',
      'epoch-by-seen-while-draining',
      'action:append-noop',
      'action:hold-outputs',
      'action:release-through',
      'action:release-all',
      'action:admit',
      'action:drop-peer',
      'action:drain',
      'action:claim',
      'action:check-epoch',
      'action:epoch-won',
      'action:go-live',
      'action:halt',
      'gap:first',
      'gap:while-verifying',
      'gap:hold:primary',
      'gap:hold:live',
      'answer:out-of-order',
      'answer:duplicate',
      'answer:superseded-ignored',
      'answer:unrequested-ignored',
      'answer:newest:primary',
      'answer:newest:live',
      'answer:newest:claiming',
      'confirm:release-all',
      'confirm:release-through',
      'confirm:nothing-new',
      'halt:newer-epoch:primary',
      'halt:newer-epoch:live',
      'halt:newer-epoch:claiming',
      'halt:fatal',
      'halt:lost',
      'claiming:own-epoch-seen',
      'won:while-verifying',
      'claim:retry',
      'backup:unwelcomed-silent',
      'fatal-ignored:live',
      'fatal-ignored:claiming',
      'check:unreachable:primary',
      'check:unreachable:live',
      'check:retry:primary',
      'check:retry:live',
      'check:retry:claiming',
      'check:retry-not-yet',
      'gap:cancels-retry',
      'claim:lone-hold',
      'claim:primary-held-for-backup',
      'claim:primary-held-for-check',
      'claim-result:before-claim:zero',
      'claim-result:before-claim:other',
      'lag:no-backup-over',
      'lag:no-backup-over-while-verifying',
      'reprotect',
      'reprotect:from-primary',
      'reprotect:from-backup',
      'reprotect:while-verifying',
      'reprotect:after-second-win',
      'claim:after-reprotect',
      'won:after-reprotect:primary',
      'release-through:after-reprotect',
      'throttle:after-reprotect',
      'drop:claiming-refuses',
      'claiming:keeps-peer',
      'won:kept-peer',
      'drop:backup-lost',
      'drop:reprotected-backup-lost',
      'junk:non-finite',
      'junk:tick',
      'junk:peer-up',
      'junk:acked',
      'junk:lag',
      'junk:drained',
      'junk:claim-result',
      'junk:epoch-checked',
      'junk:fatal',
    ]) {
      expect(cov[what] ?? 0, `coverage of ${what}`).toBeGreaterThan(20);
    }
  });
});

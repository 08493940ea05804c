// Issue 15: suspicion is confirmed before a claim, on simulated time (the pure role machine and
// hypervisor/node/suspicion.ts; nothing here reads a clock). Learned jitter (phi accrual) and a
// witness beacon may each put suspicion off past the heartbeat timeout, for a bounded time: a busy
// peer costs a delay, never a node, and a dead one is still suspected within the timeout plus the bound.

import { describe, expect, test } from 'vitest';
import { type RoleAction, type RoleConfig, type RoleInput, RoleMachine } from '../dist/hypervisor/node/role.js';
import { DEFAULT_SUSPICION, PHI_MIN_SAMPLES, PhiAccrual, Suspicion, type SuspicionConfig } from '../dist/hypervisor/node/suspicion.js';

const SUSPICION: SuspicionConfig = { ...DEFAULT_SUSPICION, witness: true };
const CFG: RoleConfig = { heartbeatMs: 100, heartbeatTimeoutMs: 300, claimRetryMs: 500, maxLagMs: 1000, maxLagBytes: 1_000_000, maxReplayLagMs: 700, leaseMs: 1e9, suspicion: SUSPICION };
const TICK_MS = 25;

/** Steps the machine; answers each read-witness with `beacon(nowMs)`; returns the claim time, if any. */
function run(m: RoleMachine, fromMs: number, toMs: number, heardAt: (t: number) => number | null, beacon: (t: number) => string | null = () => null): { claimAtMs: number | null; acts: RoleAction[] } {
  const all: RoleAction[] = [];
  for (let t = fromMs; t <= toMs; t += TICK_MS) {
    const heard = heardAt(t);
    const inputs: RoleInput[] = heard === null ? [] : [{ type: 'peer-traffic', nowMs: t, atMs: heard }];
    inputs.push({ type: 'tick', nowMs: t });
    for (const input of inputs) {
      for (const a of m.step(input)) {
        all.push(a);
        if (a.type === 'read-witness') all.push(...m.step({ type: 'witness', nowMs: t, readId: a.readId, value: beacon(t) }));
        if (a.type === 'claim' || a.type === 'drain') return { claimAtMs: t, acts: all };
      }
    }
  }
  return { claimAtMs: null, acts: all };
}

/** A peer that beats every 100 ms until `deadAtMs` (its last frame then). */
const beats =
  (deadAtMs: number, periodMs = 100) =>
  (t: number): number =>
    Math.floor(Math.min(t, deadAtMs) / periodMs) * periodMs;

/** A peer whose frames arrive with a stall of `stallMs` every `everyMs` (a starved host). */
const jittery =
  (deadAtMs: number, stallMs: number, everyMs: number) =>
  (t: number): number => {
    const end = Math.min(t, deadAtMs);
    const cycle = Math.floor(end / everyMs) * everyMs;
    // In each cycle: beats every 100 ms, then silence for stallMs before the next cycle.
    const inCycle = end - cycle;
    const last = inCycle < everyMs - stallMs ? cycle + Math.floor(inCycle / 100) * 100 : cycle + Math.floor((everyMs - stallMs - 1) / 100) * 100;
    return last;
  };

function backup(nowMs = 0): RoleMachine {
  const m = new RoleMachine(CFG, 'backup', 1, nowMs);
  m.step({ type: 'peer-up', nowMs });
  return m;
}

function primary(nowMs = 0): RoleMachine {
  const m = new RoleMachine(CFG, 'primary', 1, nowMs);
  m.step({ type: 'peer-up', nowMs, peer: 'b' });
  return m;
}

describe('phi accrual', () => {
  test('phi grows with the silence, and a learned jitter makes the same silence less suspicious', () => {
    const steady = new PhiAccrual(25);
    const starved = new PhiAccrual(25);
    for (let i = 0; i < 200; i++) {
      steady.add(100);
      starved.add(i % 10 === 9 ? 400 : 100);
    }
    expect(steady.phi(150)).toBeLessThan(steady.phi(300));
    expect(steady.phi(300)).toBeGreaterThan(DEFAULT_SUSPICION.phiThreshold);
    expect(starved.phi(300)).toBeLessThan(DEFAULT_SUSPICION.phiThreshold);
    expect(starved.phi(2_000)).toBeGreaterThan(DEFAULT_SUSPICION.phiThreshold);
  });

  test('the window keeps the last samples only', () => {
    const p = new PhiAccrual(1);
    for (let i = 0; i < 5_000; i++) p.add(i < 2_500 ? 1_000 : 100);
    expect(p.meanMs).toBeCloseTo(100, 6);
  });
});

describe('suspicion before a claim (simulated time)', () => {
  test('a steady primary that dies is suspected at the heartbeat timeout, as without confirmation', () => {
    const m = backup();
    const { claimAtMs } = run(m, 0, 10_000, beats(5_000));
    // Last frame at 5,000; the timeout is 300 ms; a tick every 25 ms.
    expect(claimAtMs).toBeGreaterThanOrEqual(5_300);
    expect(claimAtMs).toBeLessThanOrEqual(5_300 + TICK_MS);
  });

  test('learned jitter: stalls of 350 ms every 2 s are not taken for a death, even once the beacon stalls too; a real death is suspected within timeout + phiMaxDelayMs', () => {
    const m = backup();
    // The first stalls: only the primary's main thread (its beacon thread runs on, the witness says
    // "alive"). Phi learns from them; from 10 s on the whole host is starved (the beacon stands still
    // too) and the learned jitter alone keeps the primary.
    const beacon = (t: number) => (t < 10_000 ? `${Math.floor(t / 100)}:5` : '1:5');
    const alive = run(m, 0, 20_000, jittery(Infinity, 350, 2_000), beacon);
    expect(alive.claimAtMs).toBeNull();
    expect(alive.acts).toContainEqual(expect.objectContaining({ type: 'log', data: { suspicionDeferredBy: 'witness' } }));
    expect(alive.acts).toContainEqual(expect.objectContaining({ type: 'log', data: { suspicionDeferredBy: 'phi' } }));
    expect(m.peerJitter!.samples).toBeGreaterThanOrEqual(PHI_MIN_SAMPLES);

    const dead = run(m, 20_025, 30_000, jittery(20_100, 350, 2_000), () => '1:5');
    const last = jittery(20_100, 350, 2_000)(20_100);
    expect(dead.claimAtMs).not.toBeNull();
    expect(dead.claimAtMs! - last).toBeGreaterThan(CFG.heartbeatTimeoutMs);
    expect(dead.claimAtMs! - last).toBeLessThanOrEqual(CFG.heartbeatTimeoutMs + SUSPICION.phiMaxDelayMs + TICK_MS);
  });

  test('the same stalls without confirmation end in a claim (what the rule prevents), as does the first one with nothing learned or witnessed yet', () => {
    const bare = new RoleMachine({ ...CFG, suspicion: undefined }, 'backup', 1, 0);
    bare.step({ type: 'peer-up', nowMs: 0 });
    expect(run(bare, 0, 20_000, jittery(Infinity, 350, 2_000)).claimAtMs).not.toBeNull();
    // With confirmation but neither a witness nor a history yet, the first such stall is suspected too.
    expect(run(backup(), 0, 20_000, jittery(Infinity, 350, 2_000)).claimAtMs).toBe(1_900);
  });

  test('witness: a backup busy for 3 s (a slow boot) whose beacon moves is kept; once heard again, all is as before', () => {
    const m = primary();
    // The backup beats until 1,000, then its main thread is busy until 4,000; its beacon thread runs on.
    const heard = (t: number) => (t < 1_000 || t >= 4_000 ? Math.floor(t / 100) * 100 : 900);
    const { claimAtMs, acts } = run(m, 0, 6_000, heard, (t) => `${Math.floor(t / 100)}:${Math.min(t, 1_000)}`);
    expect(claimAtMs).toBeNull();
    expect(m.role).toBe('primary');
    expect(acts).toContainEqual(expect.objectContaining({ type: 'read-witness', peer: 'b', epoch: 1 }));
    expect(acts).toContainEqual(expect.objectContaining({ type: 'log', msg: expect.stringContaining('beacon moved') }));
  });

  test('witness: each change in what the beacon shows is logged (not yet read over a period, then moving), so the reason the wait goes on is never stale', () => {
    const m = primary();
    // The backup beats until 1,000, then its main thread is busy; its beacon thread runs on. This
    // node's reads of the beacon are starved: none is answered before 1,250.
    const acts: RoleAction[] = [];
    let pendingRead: number | null = null;
    for (let t = 0; t <= 3_000; t += TICK_MS) {
      const inputs: RoleInput[] = [
        { type: 'peer-traffic', nowMs: t, atMs: t < 1_000 ? Math.floor(t / 100) * 100 : 900 },
        { type: 'tick', nowMs: t },
      ];
      if (pendingRead !== null && t >= 1_250) {
        inputs.push({ type: 'witness', nowMs: t, readId: pendingRead, value: `${Math.floor(t / 100)}:1000` });
        pendingRead = null;
      }
      for (const input of inputs) {
        for (const a of m.step(input)) {
          acts.push(a);
          if (a.type === 'read-witness') pendingRead = a.readId;
        }
      }
    }
    expect(acts.some((a) => a.type === 'claim' || a.type === 'drain')).toBe(false);
    const deferrals = acts.flatMap((a) => (a.type === 'log' && a.msg.startsWith('backup not suspected yet') ? [a.msg] : []));
    expect(deferrals.length).toBe(2);
    expect(deferrals[0]).toContain('not read over a beacon period yet');
    expect(deferrals[1]).toContain('beacon moved');
  });

  test('witness: a busy backup whose beacon thread misses beats for up to phiMaxDelayMs is kept; one that dies while busy is suspected within timeout + phiMaxDelayMs of its last beat', () => {
    const heard = (t: number) => (t < 1_000 ? Math.floor(t / 100) * 100 : 900);
    // Busy from 1,000 on; its beacon thread is itself starved from 2,000 to 2,550 (beats every 100 ms).
    const hiccup = primary();
    const kept = run(hiccup, 0, 4_000, heard, (t) => `${Math.floor((t >= 2_000 && t < 2_550 ? 2_000 : t) / 100)}:1000`);
    expect(kept.claimAtMs).toBeNull();
    // Dies at 2,000 while busy: its beacon stands still from then on.
    const dead = primary();
    const lost = run(dead, 0, 4_000, heard, (t) => `${Math.floor(Math.min(t, 2_000) / 100)}:1000`);
    expect(lost.claimAtMs).not.toBeNull();
    expect(lost.claimAtMs!).toBeGreaterThan(2_000 + CFG.heartbeatTimeoutMs);
    expect(lost.claimAtMs!).toBeLessThanOrEqual(2_000 + CFG.heartbeatTimeoutMs + SUSPICION.phiMaxDelayMs + TICK_MS);
  });

  test('witness: a beacon that stands still is no evidence; the backup is suspected at the timeout', () => {
    const m = primary();
    const { claimAtMs } = run(m, 0, 3_000, beats(1_000), () => '42:7');
    expect(claimAtMs).toBeGreaterThanOrEqual(1_300);
    expect(claimAtMs).toBeLessThanOrEqual(1_300 + TICK_MS);
  });

  test('witness: a peer running normally (main thread moving too) but unheard gets a short wait only (its frames may be late), then counts as unreachable', () => {
    const m = primary();
    const { claimAtMs, acts } = run(m, 0, 3_000, beats(1_000), (t) => `${Math.floor(t / 100)}:${Math.floor(t / 25)}`);
    expect(claimAtMs).toBeGreaterThanOrEqual(1_300 + SUSPICION.phiMaxDelayMs);
    expect(claimAtMs).toBeLessThanOrEqual(1_300 + SUSPICION.phiMaxDelayMs + TICK_MS);
    expect(acts).toContainEqual(expect.objectContaining({ type: 'log', msg: expect.stringContaining('its frames may be late') }));
    expect(acts).toContainEqual(expect.objectContaining({ type: 'log', msg: expect.stringContaining('unreachable') }));
  });

  test('witness: a beacon read twice within one beacon period is not yet "standing still"', () => {
    const s = new Suspicion(SUSPICION, 100, 300, 0);
    s.witnessRead(200, s.wantsWitness(100)!, '5:5'); // a starved reader: the first answer comes late
    s.witnessRead(300, s.wantsWitness(300)!, '5:5');
    expect(s.verdict(300)).toMatchObject({ suspect: false, by: 'witness' });
    s.witnessRead(360, s.wantsWitness(310)!, '5:5');
    expect(s.verdict(360)).toMatchObject({ suspect: true });
  });

  test('witness: a peer alive but wedged is suspected once the grace runs out', () => {
    const m = primary();
    const { claimAtMs } = run(m, 0, 10_000, beats(1_000), (t) => `${Math.floor(t / 100)}:3`);
    expect(claimAtMs).toBeGreaterThanOrEqual(1_000 + CFG.heartbeatTimeoutMs + SUSPICION.witnessGraceMs);
    expect(claimAtMs).toBeLessThanOrEqual(1_000 + CFG.heartbeatTimeoutMs + SUSPICION.witnessGraceMs + TICK_MS);
  });

  test('witness: the backup reads its primary by epoch (peer null); an unreadable beacon is no evidence', () => {
    const m = backup();
    const { claimAtMs, acts } = run(m, 0, 3_000, beats(1_000), () => null);
    expect(acts).toContainEqual(expect.objectContaining({ type: 'read-witness', peer: null, epoch: 1 }));
    expect(claimAtMs).toBeLessThanOrEqual(1_300 + TICK_MS);
  });

  test('witness answers belong to one silence: one from before the peer was heard again counts for nothing', () => {
    const s = new Suspicion(SUSPICION, 100, 300, 0);
    const id = s.wantsWitness(200)!;
    expect(id).not.toBeNull();
    s.heard(210);
    s.witnessRead(220, id, '1:1');
    const id2 = s.wantsWitness(500);
    expect(id2).not.toBeNull();
    s.witnessRead(520, id, '2:1'); // stale id: not counted
    expect(s.verdict(520)).toMatchObject({ suspect: false, by: 'witness' }); // no read of this silence yet
    s.witnessRead(530, id2!, '7:7');
    s.witnessRead(700, s.wantsWitness(540)!, '7:7');
    expect(s.verdict(700)).toMatchObject({ suspect: true }); // reads over a beacon period, standing still: no sign of life
    // Reads that never come put suspicion off by phiMaxDelayMs at most.
    const slow = new Suspicion(SUSPICION, 100, 300, 0);
    slow.wantsWitness(100);
    expect(slow.verdict(300 + SUSPICION.phiMaxDelayMs - 1)).toMatchObject({ suspect: false });
    expect(slow.verdict(300 + SUSPICION.phiMaxDelayMs)).toMatchObject({ suspect: true });
  });

  test('no read before a heartbeat period of silence, and one read at a time', () => {
    const s = new Suspicion(SUSPICION, 100, 300, 0);
    expect(s.wantsWitness(90)).toBeNull();
    const id = s.wantsWitness(100);
    expect(id).not.toBeNull();
    expect(s.wantsWitness(175)).toBeNull();
    s.witnessRead(180, id!, '1:1');
    expect(s.wantsWitness(200)).toBe(id);
  });

  test('without a witness (etcd) nothing is read', () => {
    const s = new Suspicion({ ...SUSPICION, witness: false }, 100, 300, 0);
    expect(s.wantsWitness(1_000)).toBeNull();
  });

  test('bad settings are refused with the flag named', () => {
    expect(() => new Suspicion({ ...SUSPICION, phiThreshold: 0 }, 100, 300, 0)).toThrow(/--phi-threshold/);
    expect(() => new Suspicion({ ...SUSPICION, phiMaxDelayMs: -1 }, 100, 300, 0)).toThrow(/--phi-max-delay-ms/);
    expect(() => new Suspicion({ ...SUSPICION, witnessGraceMs: Number.NaN }, 100, 300, 0)).toThrow(/--witness-grace-ms/);
  });
});

describe('the witness beacon on a shared directory (real files, a real thread)', () => {
  test('the beat moves on its own thread while the main count moves only on tick(); a stopped beacon stands still', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { DirWitness } = await import('../dist/hypervisor/node/beacon.js');
    const { realEnv } = await import('../dist/hypervisor/node/env.js');
    const dir = await mkdtemp(path.join(tmpdir(), 'ftjs-beacon-'));
    const a = new DirWitness(dir, 'node-a', 10);
    const b = new DirWitness(dir, 'node-b', 10);
    try {
      expect(realEnv.witness!('etcd://127.0.0.1:2379/x', 'n', 100)).toBeNull();
      expect(await b.read('node-a', 0)).toBeNull(); // not started: no beacon
      a.start();
      const read = async () => /^(\d+):(\d+)$/.exec((await b.read('node-a', 0)) ?? '');
      const until = async (cond: () => Promise<boolean>, what: string) => {
        const deadline = Date.now() + 10_000;
        while (!(await cond())) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 5));
        }
      };
      await until(async () => (await read()) !== null, 'the first beat');
      const first = (await read())!;
      // The beat moves with no main-thread tick at all (the main count stays at 0).
      await until(async () => (await read())![1] !== first[1], 'the beat to move');
      expect(Number((await read())![2])).toBe(0);
      a.tick();
      a.tick();
      await until(async () => Number((await read())![2]) === 2, 'the main count to show two ticks');
      // A backup knows its primary by the epoch it follows: the epoch file names who claimed it.
      const { Arbiter } = await import('../dist/hypervisor/node/arbiter.js');
      expect((await new Arbiter(dir, 'node-a').claim(1, 'primary')).result).toBe('won');
      expect(await b.read(null, 1)).toMatch(/^\d+:0+2$/);
      expect(await b.read(null, 2)).toBeNull();
      // A node reads itself as no evidence; an unknown peer too.
      expect(await a.read('node-a', 0)).toBeNull();
      expect(await b.read('node-c', 0)).toBeNull();
      await a.stop();
      const still = await b.read('node-a', 0);
      await new Promise((r) => setTimeout(r, 50)); // five beacon periods: nothing may move (a check of absence)
      expect(await b.read('node-a', 0)).toBe(still);
    } finally {
      await a.stop();
      await b.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

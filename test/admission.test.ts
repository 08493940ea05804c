// Issue 15: the primary slows admission, then holds, as its backup's replay backlog grows (DESIGN
// invariant 5). The rate rule (hypervisor/node/admission.ts), the role machine's transitions, and the
// live loop's pacing on the simulator's virtual clock (test/sim/world.ts): no real time is read.

import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { admissionState, admitRate, MIN_ADMIT_RATE, pauseAfterBatchMs, SLOW_FROM_FRACTION } from '../dist/hypervisor/node/admission.js';
import { LiveLoop, MAX_PACE_PAUSE_MS } from '../dist/hypervisor/node/live-loop.js';
import { type RoleAction, type RoleConfig, RoleMachine } from '../dist/hypervisor/node/role.js';
import type { LiveEvent, TaskResult } from '../dist/hypervisor/vm/vm.js';
import { Kind } from '../dist/logging-channel/entry.js';
import { Log } from '../dist/recorder/log.js';
import { World } from '../dist/test/sim/world.js';

const LIMIT_MS = 700;
const CFG: RoleConfig = { heartbeatMs: 100, heartbeatTimeoutMs: 300, claimRetryMs: 500, maxLagMs: 1000, maxLagBytes: 1_000_000, maxReplayLagMs: LIMIT_MS, leaseMs: 1e9 };

describe('the rate rule', () => {
  test('full up to half the bound, then falling in proportion to MIN_ADMIT_RATE, 0 (hold) over it', () => {
    expect(SLOW_FROM_FRACTION).toBe(0.5);
    expect(admitRate(0, LIMIT_MS)).toBe(1);
    expect(admitRate(350, LIMIT_MS)).toBe(1);
    expect(admitRate(525, LIMIT_MS)).toBeCloseTo(0.5, 9);
    expect(admitRate(650, LIMIT_MS)).toBeCloseTo(0.1, 9);
    expect(admitRate(700, LIMIT_MS)).toBe(MIN_ADMIT_RATE);
    expect(admitRate(701, LIMIT_MS)).toBe(0);
    // Monotone: a larger backlog never admits faster.
    let prev = 1;
    for (let b = 0; b <= 800; b += 5) {
      const r = admitRate(b, LIMIT_MS);
      expect(r).toBeLessThanOrEqual(prev);
      prev = r;
    }
  });

  test('the pause after a batch makes the VM run `rate` of the time, capped', () => {
    expect(pauseAfterBatchMs(10, 1, 100)).toBe(0);
    expect(pauseAfterBatchMs(10, 0.5, 100)).toBeCloseTo(10, 9);
    expect(pauseAfterBatchMs(10, 0.25, 100)).toBeCloseTo(30, 9);
    expect(pauseAfterBatchMs(60, 0.1, 100)).toBe(100);
    expect(admissionState(true, 1)).toBe('full');
    expect(admissionState(true, 0.4)).toBe('slowed');
    expect(admissionState(false, 0.4)).toBe('held');
  });
});

describe('the role machine slows, then holds', () => {
  const admits = (out: RoleAction[]) => out.filter((a) => a.type === 'admit');
  const logs = (out: RoleAction[]) => out.filter((a) => a.type === 'log').map((a) => (a as { msg: string }).msg);

  test('full → slowed → held → slowed → full, one action per change, logged on each change of state', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    m.step({ type: 'peer-up', nowMs: 0, peer: 'b' });
    const lag = (nowMs: number, replayBacklogMs: number) => m.step({ type: 'lag', nowMs, lagMs: 0, lagBytes: 0, replayBacklogMs });
    expect(admits(lag(10, 100))).toEqual([]);
    const slowed = lag(20, 490);
    expect(admits(slowed)).toEqual([expect.objectContaining({ type: 'admit', admit: true, rate: 0.6 })]);
    expect(logs(slowed).some((l) => /slowing admission to 60%/.test(l))).toBe(true);
    expect(admits(lag(30, 490))).toEqual([]); // same rate: nothing new
    const slower = lag(40, 630);
    expect(admits(slower)).toEqual([expect.objectContaining({ admit: true, rate: 0.2 })]);
    expect(logs(slower).some((l) => /slowing/.test(l))).toBe(false); // still slowed: no new warning
    expect(admits(lag(50, 900))).toEqual([expect.objectContaining({ admit: false })]);
    const back = lag(60, 560);
    expect(admits(back)).toEqual([expect.objectContaining({ admit: true, rate: 0.4 })]);
    expect(logs(back).some((l) => /admitting requests again, slowed to 40%/.test(l))).toBe(true);
    const full = lag(70, 50);
    expect(admits(full)).toEqual([{ type: 'admit', admit: true, reason: 'backup caught up' }]);
    expect(logs(full).some((l) => /back to the full rate/.test(l))).toBe(true);
  });

  test('a backup lost while slowed: full rate again', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    m.step({ type: 'peer-up', nowMs: 0, peer: 'b' });
    m.step({ type: 'lag', nowMs: 10, lagMs: 0, lagBytes: 0, replayBacklogMs: 600 });
    const out = m.step({ type: 'claim-result', nowMs: 20, epoch: 2, result: 'won', detail: '' });
    expect(admits(out)).toEqual([]); // not claiming: ignored
    m.step({ type: 'fatal', nowMs: 30, reason: 'backup gone' });
    const won = m.step({ type: 'claim-result', nowMs: 40, epoch: 2, result: 'won', detail: '' });
    expect(admits(won)).toEqual([{ type: 'admit', admit: true, reason: 'running alone' }]);
  });
});

describe('the live loop paces batches on virtual time', () => {
  /** A VM whose every task takes 1 ms of virtual time; runs 200 requests; returns when the last was answered. */
  async function drain(rate: number): Promise<{ doneAtMs: number; batches: number }> {
    const world = new World(1);
    const env = {
      clock: { monoMs: () => world.nowMs, wallMs: () => 1_700_000_000_000 + world.nowMs },
      timers: {
        after: (ms: number, fn: () => void) => world.at(ms, null, fn),
        every: (ms: number, fn: () => void) => {
          let h = world.at(ms, null, function again() {
            fn();
            h = world.at(ms, null, again);
          });
          return { cancel: () => h.cancel() };
        },
      },
      fetch: () => Promise.reject(new Error('no fetch here')),
    };
    let requestId = 0;
    let pos = 0;
    let batches = 0;
    const vm = {
      run: (events: LiveEvent[]) =>
        new Promise((resolve) => {
          batches++;
          world.at(events.length, null, () => {
            const results: TaskResult[] = events.map(() => {
              const id = ++requestId;
              pos++;
              return {
                entries: [{ kind: Kind.TaskEnd, pos, payload: new Uint8Array(0) }],
                kind: 'request',
                requestId: id,
                outputs: [{ kind: 'response', requestId: id, status: 200, statusText: 'OK', headers: [], body: new Uint8Array(0) }],
                fetchAborts: [],
                console: [],
                preempted: false,
                pos,
                divergence: null,
              };
            });
            resolve({ results, state: { pos, tasks: requestId, guestTimeMs: 0, memoryBytes: 0, nextTimer: null } });
          });
        }),
    };
    const loop = new LiveLoop(
      vm as never,
      new Log(),
      { hold: (_seq, release) => release() },
      pino({ level: 'silent' }),
      { maxQueuedEvents: 1024, batchMaxEvents: 20, fetchTimeoutMs: 1_000, maxFetchResponseBytes: 1 << 20, rate: () => rate },
      env as never,
    );
    let answered = 0;
    let doneAtMs = -1;
    for (let i = 0; i < 200; i++) {
      void loop.submitRequest('GET', '/', [], new Uint8Array(0)).then(() => {
        if (++answered === 200) doneAtMs = world.nowMs;
      });
    }
    await world.runUntil(60_000, () => undefined);
    await loop.stop();
    return { doneAtMs, batches };
  }

  test('at rate 0.5 the same work takes twice the virtual time, in smaller batches; at 1 it runs back to back', async () => {
    const full = await drain(1);
    const half = await drain(0.5);
    const tenth = await drain(0.1);
    // The first request starts a batch of its own; the other 199 go 20 at a time, 1 ms a task, no pause.
    expect(full.doneAtMs).toBe(200);
    expect(full.batches).toBe(11);
    expect(half.batches).toBe(21); // then 10 at a time
    expect(half.doneAtMs / full.doneAtMs).toBeGreaterThanOrEqual(1.9);
    expect(half.doneAtMs / full.doneAtMs).toBeLessThanOrEqual(2.1);
    // At 0.1: batches of 2 (2 ms), each followed by 18 ms of pause: about 10x.
    expect(tenth.doneAtMs / full.doneAtMs).toBeGreaterThan(9);
    expect(MAX_PACE_PAUSE_MS).toBeGreaterThanOrEqual(18);
  });
});

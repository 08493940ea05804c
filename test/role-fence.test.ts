// A primary that lost one backup fences it (claims the next epoch) before another backup's acks may
// release anything: found by the simulator (test/sim), where a lost backup X claimed from an earlier
// seq while the primary released outputs on a new backup Y's acks, and those acknowledged effects
// were gone. Also: the machine refuses to release beyond an ack (production assertion).

import { describe, expect, test } from 'vitest';
import { type RoleAction, type RoleConfig, type RoleInput, RoleMachine } from '../dist/hypervisor/node/role.js';

const CFG: RoleConfig = { heartbeatMs: 100, heartbeatTimeoutMs: 300, claimRetryMs: 500, maxLagMs: 1000, maxLagBytes: 1_000_000, maxReplayLagMs: 700, leaseMs: 1e9, stallToleranceMs: 1e9 };
const acts = (m: RoleMachine, input: RoleInput): RoleAction[] => m.step(input).filter((a) => a.type !== 'log');

describe('fencing a lost backup', () => {
  test('another backup after a lost one: the primary drops it and claims the next epoch first', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    acts(m, { type: 'peer-up', nowMs: 10, peer: 'X' });
    expect(acts(m, { type: 'acked', nowMs: 20, seq: 5 })).toEqual([{ type: 'release-through', seq: 5 }]);
    acts(m, { type: 'peer-down', nowMs: 30, reason: 'closed', peer: 'X' });
    const a = acts(m, { type: 'peer-up', nowMs: 40, peer: 'Y' });
    expect(a).toContainEqual({ type: 'drop-peer', reason: expect.stringContaining('backup X was lost') });
    expect(a).toContainEqual({ type: 'claim', epoch: 2 });
    expect(m.role).toBe('claiming');
    // Nothing is released on Y's acks meanwhile.
    expect(acts(m, { type: 'acked', nowMs: 50, seq: 9 })).toEqual([]);
    // Won: running alone in epoch 2 (X can no longer win it); Y may now attach and protect it.
    const won = acts(m, { type: 'claim-result', nowMs: 60, epoch: 2, result: 'won', detail: 'test' });
    expect(won).toContainEqual({ type: 'release-all' });
    acts(m, { type: 'peer-up', nowMs: 70, peer: 'Y' });
    expect(m.role).toBe('primary');
    expect(m.epoch).toBe(2);
  });

  test('the same backup reconnecting is not fenced (its resume point is its own receipt)', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    acts(m, { type: 'peer-up', nowMs: 10, peer: 'X' });
    acts(m, { type: 'peer-down', nowMs: 30, reason: 'closed', peer: 'X' });
    expect(acts(m, { type: 'peer-up', nowMs: 40, peer: 'X' })).toEqual([]);
    expect(m.role).toBe('primary');
    // And later losing X, then taking Y, still fences X.
    acts(m, { type: 'peer-down', nowMs: 50, reason: 'closed', peer: 'X' });
    expect(acts(m, { type: 'peer-up', nowMs: 60, peer: 'Y' })).toContainEqual({ type: 'claim', epoch: 2 });
  });

  test('a backup that never attached in this epoch is nothing to fence', () => {
    const m = new RoleMachine(CFG, 'primary', 1, 0);
    expect(acts(m, { type: 'peer-up', nowMs: 10, peer: 'Y' })).toEqual([{ type: 'hold-outputs' }]);
    expect(m.role).toBe('primary');
  });
});

// The seeded simulation of the whole pair (test/sim/): seeds run clean, a seed replays exactly, and
// planted bugs are caught. Process-level behaviour (real sockets, SIGKILL) stays in pair/failover tests.

import { describe, expect, it } from 'vitest';
import { QUICK, quickSeedFailures, quickSeedRange } from '../dist/test/sim/quick-seeds.js';
import { Sim } from '../dist/test/sim/sim.js';
import { zeroPageBodies } from '../dist/test/sim/zero-page-bodies.js';

// The first third of the quick seeds (test/sim/quick-seeds.ts); sim-seeds-2 and -3 run the others.
const { first, last } = quickSeedRange(0);

describe('simulation', () => {
  it(`seeds ${first}-${last} run clean (Output Rule, one speaker per epoch, lineage, client histories, exactly once, liveness)`, async () => {
    expect(await quickSeedFailures(first, last)).toEqual([]);
    // ~15-25 s of one core; a suite beside five others' builds (load ~25 on 2 cores) has taken 300 s.
  }, 600_000);

  it("the simulator's snapshot bodies (zero pages left out) give back the memory exactly, and a malformed body is refused", async () => {
    const memory = new Uint8Array(5 * 4096 + 100);
    memory[7] = 1;
    memory[3 * 4096 + 5] = 2;
    memory[memory.byteLength - 1] = 3;
    const body = await zeroPageBodies.compress(memory);
    expect(body.byteLength).toBe(8 + 3 * 4 + 2 * 4096 + 100);
    expect(Buffer.from(await zeroPageBodies.decompress(body, memory.byteLength)).equals(Buffer.from(memory))).toBe(true);
    await expect(zeroPageBodies.decompress(body, memory.byteLength + 1)).rejects.toThrow(/makes 20580 bytes, the header says 20581/);
    await expect(zeroPageBodies.decompress(body.subarray(0, body.byteLength - 1), memory.byteLength)).rejects.toThrow(/ends inside page 5/);
    await expect(zeroPageBodies.decompress(Buffer.concat([body, Buffer.from([0])]), memory.byteLength)).rejects.toThrow(/1 bytes after its last page/);
    const unordered = Buffer.from(body);
    unordered.writeUInt32LE(0, 12);
    await expect(zeroPageBodies.decompress(unordered, memory.byteLength)).rejects.toThrow(/page index 0 is not ascending/);
    await expect(zeroPageBodies.decompress(new Uint8Array(4), 0)).rejects.toThrow(/shorter than the zero-page header/);
  });

  it('the same seed gives the same run, event for event', async () => {
    const a = await new Sim({ seed: 4242, ...QUICK }).run();
    const b = await new Sim({ seed: 4242, ...QUICK }).run();
    expect(a.steps).toBeGreaterThan(1000);
    expect(b.digest).toBe(a.digest);
    expect(b.steps).toBe(a.steps);
    const c = await new Sim({ seed: 4243, ...QUICK }).run();
    expect(c.digest).not.toBe(a.digest);
  }, 60_000);

  it('an output released before its ack is caught (Output Rule)', async () => {
    const result = await new Sim({ seed: 1, ...QUICK, plant: 'early-release' }).run();
    expect(result.ok).toBe(false);
    expect(result.violations.join('\n')).toMatch(/Output Rule/);
  }, 60_000);

  it('a claim loser that keeps serving is caught (two nodes live in one epoch)', async () => {
    let caught: string | null = null;
    for (let seed = 1; seed <= 20 && !caught; seed++) {
      const result = await new Sim({ seed, ...QUICK, plant: 'loser-serves' }).run();
      if (!result.ok) caught = result.violations.join('\n');
    }
    expect(caught).toMatch(/two nodes live in epoch|two speakers in epoch|acknowledged effect lost/);
  }, 120_000);

  /**
   * A named regression seed (full profile, as `npm run sim -- --seed S --deflate-joins`: these were found
   * with joins deflated, and that codec keeps their schedules): clean on every count, and its log shows `pattern`.
   */
  const cleanSeed = async (seed: number, pattern: RegExp) => {
    const sim = new Sim({ seed, deflateJoins: true });
    const result = await sim.run();
    expect(result.violations).toEqual([]);
    expect(result.accuracy).toEqual([]);
    expect(result.unavailable).toBeNull();
    expect(sim.world.recent.join('\n')).toMatch(pattern);
  };

  // Named regressions (full profile, as `npm run sim -- --seed S --deflate-joins`): a primary suspected its stalled
  // backup and, while its fencing claim waited on a slow or cut-off shared directory, refused the backup
  // that came back; the backup heard nothing, took over, and the old primary was the node it cost
  // (the accuracy judge). Now the claiming primary keeps the backup (role.ts reattachWhileClaiming) and
  // wins its epoch with it attached; a node fenced anyway joins the winner as a fresh backup.
  it.each([
    [204, /A: claim of epoch 2: won/],
    [206, /A: claim of epoch 2: won/],
    [548, /A: claim of epoch 2: won/],
    [629, /A: REJOIN as a fresh backup of ws:\/\/sim:\d+ \(B \(epoch 2\)\)/],
    // The winner A rejoined crashed before A was welcomed; a newer epoch sends A on to its holder.
    [74, /A: REJOIN as a fresh backup of ws:\/\/sim:\d+ \(C \(epoch 3\)\)/],
  ])('regression seed %i: a false suspicion costs a delay, never a node', cleanSeed, 60_000);

  // Named regressions for liveness (issue 17's sweep). 1356 and 4566: the backup's claim of epoch 2 timed
  // out on a slow directory, landed after it gave up, and the backup crashed; epoch 2 had a holder that
  // never served. Now a claim loser voids an epoch never activated and claims the next
  // (hypervisor/node/arbiter.ts, Activation). 7615: a reordered frame overtook its connection's opening
  // and was dropped (a simulator fault no stream has; test/sim/sim-net.ts arrivalAt).
  it.each([
    [1356, /arbiter: A sealed epoch 2: void[\s\S]*A: claim of epoch 3: won/],
    [4566, /arbiter: A sealed epoch 2: void[\s\S]*A: claim of epoch 3: won/],
    [7615, /B: LIVE in epoch 2/],
    // 5919: A crashed with its claim of epoch 2 in flight (it landed, never activated); B's second look
    // found the directory unreachable and took that for a plain loss. Not knowing is asking again.
    [5919, /B: claim of epoch 2: unreachable[\s\S]*B sealed epoch 2: void[\s\S]*B: LIVE in epoch 3/],
  ])('regression seed %i: the survivors go live and protected', cleanSeed, 60_000);

  // Named regressions of the 10,000-seed sweep's accuracy failures: a backup partitioned from its
  // primary, then stalled, went live. 6128: the primary dropped it in the partition (close lost); after
  // its stall the reset came, and the half timeout kept from before the stall let it claim before its
  // redial. Now a close found after a stall drops that kept part (role.ts forgetSilenceBeforeStall), the
  // redial reaches the primary and the primary wins its fencing claim with it attached. 4134, 5665
  // (and 7102, until the simulator ran log sends after the appending job as production does, which
  // moved its schedule): the claim was sent in the partition, before the stall; only its answer came
  // after (a slow directory), so the judge now decides at the claim. Their schedules have drifted
  // since: with the judge's old rule (judged at go-live) none of the three fails any more, on either
  // send order, nor any of 3,000 seeds; they keep the scenario's shape, not that case. 7109: the
  // primary the taker followed crashed; the judge had blamed the stale node it last dialled.
  it.each([
    [6128, /A: claim of epoch 2: won/],
    [4134, /A: REJOIN as a fresh backup of ws:\/\/sim:\d+ \(B \(epoch 2\)\)/],
    // With seals (arbiter.ts, Activation) A voids the epoch 2 B's slow claim created, and B rejoins A.
    [5665, /A sealed epoch 2: void[\s\S]*B: REJOIN as a fresh backup of ws:\/\/sim:\d+ \(A \(epoch 3\)\)/],
    [7109, /B: CRASH\n(?:.*\n)*?[\d.]+ C: claim of epoch 3: won/],
  ])('regression seed %i: a takeover after a partition and an own stall is judged on the silence the taker watched', cleanSeed, 60_000);

  it('regression seed 5590: every node holding the newest served epoch crashed; the end is said unavailable, not judged live', async () => {
    // A paused; B took over (epoch 2), C joined it; B and C crashed; A, fenced, can never know what B released.
    const result = await new Sim({ seed: 5590, deflateJoins: true }).run();
    expect(result.violations).toEqual([]);
    expect(result.unavailable).toMatch(/held the log of epoch 2 .* crashed: B, C/);
  }, 60_000);

  it("two primaries on one shared directory: the first is fenced, and its backup never splices onto the second one's history (two-primaries, seeds 1-8)", async () => {
    // The backup of the fenced primary either loses its claim to the newer epoch or, if it dials the
    // second primary, is refused on its lineage (logging-channel/epoch-history.ts; test/lineage.test.ts
    // covers the refusal itself); either way no divergence and one speaker per epoch.
    for (let seed = 1; seed <= 8; seed++) {
      const sim = new Sim({ seed, scenario: 'two-primaries' });
      const result = await sim.run();
      expect(result.violations, `seed ${seed}`).toEqual([]);
      const text = sim.world.recent.join('\n');
      expect(text).toMatch(/A: HALT \(75\)|C: HALT \(75\)/);
      // The fenced primary is not lost: it joins the holder of the newer epoch as a fresh backup.
      expect(text).toMatch(/([AC]): HALT \(75\)[^\n]*\n[\d.]+ \1: REJOIN as a fresh backup of ws:\/\/sim:\d+/);
      expect(text).toMatch(/B: HALT \(75\): lost the claim|B: HALT \(77\): the primary refused this backup \(4006\): cannot resume: lineage mismatch/);
    }
  }, 120_000);

  it('an unbounded replay backlog is caught (bounded lag)', async () => {
    let caught: string | null = null;
    for (let seed = 1; seed <= 20 && !caught; seed++) {
      const result = await new Sim({ seed, faultMs: 2_000, livenessMs: 3_000, plant: 'replay-backlog' }).run();
      if (!result.ok) caught = result.violations.join('\n');
    }
    expect(caught).toMatch(/bounded lag/);
  }, 120_000);
});

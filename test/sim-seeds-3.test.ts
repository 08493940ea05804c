// Part 3 of the quick seeds npm test runs (test/sim/quick-seeds.ts; part 1 is in test/sim.test.ts, with
// the named regressions and planted bugs): every check of the simulator on each seed.

import { describe, expect, it } from 'vitest';
import { quickSeedFailures, quickSeedRange } from '../dist/test/sim/quick-seeds.js';

const { first, last } = quickSeedRange(2);

describe('simulation, quick seeds part 3', () => {
  it(`seeds ${first}-${last} run clean (Output Rule, one speaker per epoch, lineage, client histories, exactly once, liveness)`, async () => {
    expect(await quickSeedFailures(first, last)).toEqual([]);
    // ~15-25 s of one core; a suite beside five others' builds (load ~25 on 2 cores) has taken 300 s.
  }, 600_000);
});

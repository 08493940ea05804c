// vitest file order: the longest files start first, so the workers end together. vitest orders by
// the durations it cached from the last run, but a clean clone (CI) has no cache and falls back to
// file size, which starts sim.test.ts (small file, ~20-45 s) near the end. These files, longest first
// by a measured run (4 workers, 2026-12-06; a file that mostly waits on etcd's timers placed early,
// beside the ones that compute), lead whether or not a cache exists; the rest keep vitest's own order.
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const LONGEST_FIRST = [
  'hostile-guest',
  'etcd-arbiter',
  'determinism',
  'sim',
  'failover',
  'sim-seeds-2',
  'fuzz',
  'checkpoint',
  'sandbox',
  'sim-seeds-3',
  'etcd-lease',
  'pair',
  'availability',
  'streaming',
  'drill-workload',
  'exactly-once',
  'intl',
  'trace-rotation',
  'trace-replay',
  'loader',
  'etcd-pair',
  'checkpoint-record',
  'boot-image',
  'debugger',
  'reprotect',
  'up',
  'boot-cache-safety',
  'edge-flags',
].map((name) => `/test/${name}.test.ts`);

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const rank = (spec: TestSpecification) => {
      const i = LONGEST_FIRST.findIndex((end) => spec.moduleId.endsWith(end));
      return i === -1 ? LONGEST_FIRST.length : i;
    };
    // Array.prototype.sort is stable: files off the list keep the base order.
    return base.sort((a, b) => rank(a) - rank(b));
  }
}

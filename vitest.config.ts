import { defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './test/setup/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Installs what the suite needs from the system (etcd) on a fresh machine; never skips.
    globalSetup: ['test/setup/ensure-etcd.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Process-level tests start real nodes and then mostly wait on them: with 2 workers on 2 cores the
    // suite kept ~1.4 cores busy (vitest 221 s); 3 took 166 s, 4 no less (164 s), all passing. With
    // 300 simulator seeds in three files (2026-12-06, quiet): 3 workers 146 s, 4 workers 136 s.
    maxWorkers: 4,
    fileParallelism: true,
    sequence: { sequencer: LongestFirstSequencer },
    // A worker runs its files one after another in one process instead of a fresh one per file: 20
    // small files took 4.1 CPU-s instead of 7.3 (two runs each, load 11-13). Files that change process
    // state put it back (intl.test.ts: TZ); the nodes under test are child processes, fresh per test.
    isolate: false,
    // The tests import the build (../dist), which is plain ESM already: Node loads it as it is, instead
    // of vite transforming (and source-mapping) every dist module again in each of the 72 test files.
    server: { deps: { external: [/\/dist\//] } },
  },
});

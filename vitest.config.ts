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
    // suite kept ~1.4 cores busy (vitest 221 s); 3 took 166 s, 4 no less (164 s), all passing.
    maxWorkers: 3,
    fileParallelism: true,
    sequence: { sequencer: LongestFirstSequencer },
    // The tests import the build (../dist), which is plain ESM already: Node loads it as it is, instead
    // of vite transforming (and source-mapping) every dist module again in each of the 72 test files.
    server: { deps: { external: [/\/dist\//] } },
  },
});

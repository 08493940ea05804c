import { defineConfig } from 'vitest/config';

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
  },
});

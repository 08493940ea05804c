import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Installs what the suite needs from the system (etcd) on a fresh machine; never skips.
    globalSetup: ['test/setup/ensure-etcd.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Process-level tests start real nodes; two cores cannot run many at once.
    maxWorkers: 2,
    fileParallelism: true,
  },
});

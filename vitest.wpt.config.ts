import { defineConfig } from 'vitest/config';

// `npm run wpt`: the Web Platform Tests conformance run (needs FTJS_WPT_DIR; see README "Conformance").
export default defineConfig({
  test: {
    include: ['test/**/*.wpt.ts'],
    testTimeout: 120_000,
    maxWorkers: 2,
  },
});

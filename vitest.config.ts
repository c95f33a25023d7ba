import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores and real servers per test: a few files at a time is the fastest.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 3, minForks: 1 } },
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration suites own real processes (pcscd, socat, ffmpeg, servers): keep files apart.
    fileParallelism: true,
    pool: 'forks',
  },
});

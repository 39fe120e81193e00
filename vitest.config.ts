import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real Python workers; two cores cannot run many at once.
    maxWorkers: 2,
    // Generous on purpose: a test must not fail because the machine is busy
    // (three times slower than idle is expected); a hang still ends.
    testTimeout: 900_000,
    hookTimeout: 900_000,
  },
})

import { defineConfig } from 'vitest/config'
import { BaseSequencer, type TestSpecification } from 'vitest/node'

// The slowest files, slowest first (as measured). They start first, so the two workers end
// together: vitest orders by the durations of an earlier run, and without them (a fresh clone)
// starts the largest files first, which left the slowest, a short file, running alone at the end.
const SLOWEST = ['faults-input', 'faults-orphans', 'use', 'bridge-conformance', 'pipeline', 'protocols', 'compare', 'faults-crash', 'distributed', 'sweep']

class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => {
      const i = SLOWEST.findIndex((name) => file.moduleId.endsWith(`/test/${name}.test.ts`))
      return i === -1 ? SLOWEST.length : i
    }
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b))
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real Python workers; two cores cannot run many at once.
    maxWorkers: 2,
    sequence: { sequencer: SlowestFirst },
    // Generous on purpose: a test must not fail because the machine is busy
    // (three times slower than idle is expected); a hang still ends.
    testTimeout: 900_000,
    hookTimeout: 900_000,
  },
})

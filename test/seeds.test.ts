// Statistics over seeds (src/eval/seeds.ts): the Student-t quantile and
// interval against scipy, and the seed-averaged per-query bootstrap against
// numpy on the same resamples, shrinking as queries are added.
import { beforeAll, describe, expect, it } from 'vitest'
import { bootstrapCIs, resampleIndices } from '../src/eval/bootstrap.js'
import { Xoshiro128ss } from '../src/eval/prng.js'
import { averageOverSeeds, seedInterval, studentTQuantile } from '../src/eval/seeds.js'
import { runPythonJson } from './helpers/python.js'

const DFS = [1, 2, 3, 4, 5, 7, 10, 20, 30, 60, 120, 1000]
const LEVELS = [0.6, 0.9, 0.975, 0.995]
const SAMPLES = [
  [0.31, 0.29],
  [0.41, 0.43, 0.38],
  [0.5, 0.52, 0.49, 0.51, 0.55, 0.47, 0.5, 0.53, 0.48, 0.5],
]

describe('Student t', () => {
  let ref: { quantiles: number[][]; intervals: Array<[number, number]> }
  beforeAll(async () => {
    ref = await runPythonJson(
      `
import json, sys
import numpy as np
from scipy import stats
cfg = json.load(sys.stdin)
print(json.dumps({
    "quantiles": [[stats.t.ppf(p, df) for p in cfg["levels"]] for df in cfg["dfs"]],
    "intervals": [list(stats.t.interval(0.95, len(s) - 1, loc=np.mean(s), scale=stats.sem(s))) for s in cfg["samples"]],
}))
`,
      { dfs: DFS, levels: LEVELS, samples: SAMPLES },
    )
  })

  it('has the quantiles of scipy.stats.t.ppf', () => {
    DFS.forEach((df, i) => LEVELS.forEach((p, j) => expect(studentTQuantile(p, df)).toBeCloseTo(ref.quantiles[i]![j]!, 10)))
    expect(studentTQuantile(0.025, 4)).toBeCloseTo(-ref.quantiles[3]![2]!, 10)
  })

  it('gives the interval of scipy.stats.t.interval for the mean over seeds, and none for one seed', () => {
    SAMPLES.forEach((s, i) => {
      const ci = seedInterval(s)
      expect(ci.lower).toBeCloseTo(ref.intervals[i]![0], 10)
      expect(ci.upper).toBeCloseTo(ref.intervals[i]![1], 10)
      expect(ci.seeds).toBe(s.length)
    })
    const one = seedInterval([0.4])
    expect(one).toMatchObject({ estimate: 0.4, seeds: 1 })
    expect(one.lower).toBeNaN()
    expect(one.sd).toBeNaN()
    expect(() => studentTQuantile(1, 3)).toThrow(/quantile level/)
    expect(() => seedInterval([])).toThrow(/no seeds/)
  })
})

describe('bootstrap of seed-averaged per-query values', () => {
  const rng = Xoshiro128ss.fromSeed(9)
  /** Per-query 0/1 outcomes of `seeds` models that agree on most queries (as seeds of one K do). */
  const seedsOf = (n: number, seeds: number): Float64Array[] => {
    const base = Float64Array.from({ length: n }, () => (rng.nextUint32() < 0.6 * 2 ** 32 ? 1 : 0))
    return Array.from({ length: seeds }, () => base.map((v) => (rng.nextBelow(10) === 0 ? 1 - v : v)))
  }

  it('equals numpy on the same resamples', async () => {
    const perSeed = seedsOf(300, 3)
    const options = { resamples: 500, seed: 0 }
    const ci = bootstrapCIs({ metric: averageOverSeeds(perSeed) }, options).metric
    const ref = await runPythonJson<[number, number, number]>(
      `
import json, sys
import numpy as np
cfg = json.load(sys.stdin)
idx = np.array(cfg["indices"]).reshape(cfg["resamples"], -1)
avg = np.mean(np.array(cfg["per_seed"]), axis=0)
lo, hi = np.percentile(avg[idx].mean(axis=1), [2.5, 97.5])
print(json.dumps([avg.mean(), lo, hi]))
`,
      { indices: resampleIndices(300, options), resamples: options.resamples, per_seed: perSeed },
    )
    expect(ci.estimate).toBeCloseTo(ref[0], 14)
    expect(ci.lower).toBeCloseTo(ref[1], 12)
    expect(ci.upper).toBeCloseTo(ref[2], 12)
  })

  it('shrinks like 1/sqrt(n) as queries are added', () => {
    const width = (n: number) => {
      const ci = bootstrapCIs({ m: averageOverSeeds(seedsOf(n, 2)) }).m
      return ci.upper - ci.lower
    }
    const ratio = width(250) / width(4000)
    expect(ratio).toBeGreaterThan(3) // sqrt(4000 / 250) = 4
    expect(ratio).toBeLessThan(5.5)
  })

  it('refuses seeds that scored different queries', () => {
    expect(() => averageOverSeeds([new Float64Array(3), new Float64Array(4)])).toThrow(/different numbers of queries: 4 vs 3/)
  })
})

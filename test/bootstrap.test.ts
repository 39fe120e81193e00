import { beforeAll, describe, expect, it } from 'vitest'
import { bootstrapCI, bootstrapCIs, pairedBootstrap, resampleIndices } from '../src/eval/bootstrap.js'
import { Xoshiro128ss } from '../src/eval/prng.js'
import { runPythonJson } from './helpers/python.js'

const rng = Xoshiro128ss.fromSeed(5)
/** Per-query 0/1 outcomes (like Recall@1) with success probability p. */
const bernoulli = (n: number, p: number): Float64Array =>
  Float64Array.from({ length: n }, () => (rng.nextUint32() < p * 2 ** 32 ? 1 : 0))
/** Per-query values in [0, 1] (like MAP@R). */
const uniform = (n: number): Float64Array => Float64Array.from({ length: n }, () => rng.nextUint32() / 2 ** 32)

const NUMPY_REFERENCE = `
import json, sys
import numpy as np
cfg = json.load(sys.stdin)
idx = np.array(cfg["indices"], dtype=np.int64).reshape(cfg["resamples"], -1)
a, b = np.array(cfg["a"]), np.array(cfg["b"])
ma, mb = a[idx].mean(axis=1), b[idx].mean(axis=1)
tail = (100 - 100 * cfg["confidence"]) / 2
d = ma - mb
print(json.dumps({
    "a": np.percentile(ma, [tail, 100 - tail]).tolist(),
    "b": np.percentile(mb, [tail, 100 - tail]).tolist(),
    "diff": np.percentile(d, [tail, 100 - tail]).tolist(),
    "not_above": float((d <= 0).mean()),
    "index_counts": np.bincount(idx.ravel(), minlength=idx.shape[1]).tolist(),
}))
`

interface NumpyIntervals {
  a: [number, number]
  b: [number, number]
  diff: [number, number]
  not_above: number
  index_counts: number[]
}

describe('bootstrap confidence intervals', () => {
  const n = 300
  const a = uniform(n)
  const b = a.map((x, i) => Math.min(1, x + (i % 3 === 0 ? 0.05 : -0.01)))
  const cases = [
    { resamples: 1000, seed: 7, confidence: 0.95 },
    { resamples: 333, seed: 2 ** 40 + 3, confidence: 0.9 },
  ]
  const refs: NumpyIntervals[] = []

  beforeAll(async () => {
    for (const options of cases) {
      refs.push(
        await runPythonJson<NumpyIntervals>(NUMPY_REFERENCE, {
          indices: resampleIndices(n, options),
          resamples: options.resamples,
          confidence: options.confidence,
          a,
          b,
        }),
      )
    }
  })

  it.each(cases.map((c, i) => [c.resamples, c.confidence, c, i] as const))(
    '%i resamples at %f equal numpy given the same resample indices',
    (_b, _c, options, i) => {
      const ref = refs[i]!
      const ci = bootstrapCI(a, options)
      expect(ci.lower).toBeCloseTo(ref.a[0], 12)
      expect(ci.upper).toBeCloseTo(ref.a[1], 12)
      expect(ci.estimate).toBeCloseTo(a.reduce((s, x) => s + x, 0) / n, 14)
      const paired = pairedBootstrap(b, a, options)
      const diff = pairedBootstrap(a, b, options)
      expect(diff.lower).toBeCloseTo(ref.diff[0], 12)
      expect(diff.upper).toBeCloseTo(ref.diff[1], 12)
      expect(diff.fractionNotAbove).toBe(ref.not_above)
      // Swapping the models mirrors the interval.
      expect(paired.lower).toBeCloseTo(-diff.upper, 12)
    },
  )

  it('draws every query about equally often', () => {
    const counts = refs[0]!.index_counts
    const expected = 1000 // 1000 resamples x 300 draws / 300 queries
    expect(Math.min(...counts)).toBeGreaterThan(expected - 5 * Math.sqrt(expected))
    expect(Math.max(...counts)).toBeLessThan(expected + 5 * Math.sqrt(expected))
  })

  it('uses the same resamples for every metric of one call', () => {
    const options = { resamples: 200, seed: 11 }
    const both = bootstrapCIs({ recall: a, map: b }, options)
    expect(both.recall).toEqual(bootstrapCI(a, options))
    expect(both.map).toEqual(bootstrapCI(b, options))
  })

  it('is reproducible from its seed and changes with it', () => {
    expect(bootstrapCI(a, { seed: 3 })).toEqual(bootstrapCI(a, { seed: 3 }))
    expect(bootstrapCI(a, { seed: 4 }).lower).not.toBe(bootstrapCI(a, { seed: 3 }).lower)
  })

  it('shrinks like 1/sqrt(n) as queries are added', () => {
    const small = bootstrapCI(bernoulli(250, 0.6))
    const large = bootstrapCI(bernoulli(4000, 0.6))
    const ratio = (small.upper - small.lower) / (large.upper - large.lower)
    expect(ratio).toBeGreaterThan(3) // sqrt(4000 / 250) = 4
    expect(ratio).toBeLessThan(5.5)
    // Normal approximation: half-width ~ 1.96 sqrt(p (1 - p) / n) = 0.0152 at n = 4000.
    expect((large.upper - large.lower) / 2).toBeCloseTo(0.0152, 2)
  })

  it('rejects bad options and unequal per-query arrays', () => {
    expect(() => bootstrapCI(a, { resamples: 0 })).toThrow(/resamples/)
    expect(() => bootstrapCI(a, { confidence: 1 })).toThrow(/confidence/)
    expect(() => pairedBootstrap(a, b.subarray(1))).toThrow(/differ in length/)
    expect(() => bootstrapCI(new Float64Array(0))).toThrow(/at least one query/)
  })
})

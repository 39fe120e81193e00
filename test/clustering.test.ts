import { readFileSync } from 'node:fs'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  clusterAgreement,
  clusterSizeStats,
  contingencyTable,
  expectedMutualInformation,
  purity,
} from '../src/eval/clustering.js'
import { Xoshiro128ss } from '../src/eval/prng.js'
import { runPythonJson } from './helpers/python.js'

const rng = Xoshiro128ss.fromSeed(2024)
const randomLabels = (n: number, k: number, name: (c: number) => number = (c) => c): Int32Array =>
  Int32Array.from({ length: n }, () => name(rng.nextBelow(k)))
/** Keeps each label with probability 1 - noise, else draws one of k at random. */
const noisyCopy = (labels: Int32Array, noise: number, k: number, name: (c: number) => number): Int32Array =>
  labels.map((c) => (rng.nextBelow(1 << 20) < noise * (1 << 20) ? name(rng.nextBelow(k)) : name(c)))
const constant = (n: number, value: number): Int32Array => new Int32Array(n).fill(value)
const range = (n: number, name: (i: number) => number = (i) => i): Int32Array => Int32Array.from({ length: n }, (_, i) => name(i))

interface AgreementCase {
  name: string
  true: Int32Array
  pred: Int32Array
}

const classes2k = randomLabels(2000, 15)
const classes30k = randomLabels(30_000, 10)
const classes5k = randomLabels(5000, 500)
const agreementCases: AgreementCase[] = [
  { name: 'independent random labelings (10 vs 20 groups)', true: randomLabels(1000, 10), pred: randomLabels(1000, 20) },
  { name: 'clusters follow classes with 30% noise, renamed', true: classes2k, pred: noisyCopy(classes2k, 0.3, 15, (c) => 7 * c - 40) },
  { name: 'same partition under other names', true: classes2k, pred: classes2k.map((c) => -13 * c + 5) },
  {
    name: 'many one-member classes',
    true: Int32Array.from([...range(150, (i) => 1000 + i), ...randomLabels(350, 5)]),
    pred: randomLabels(500, 12),
  },
  { name: 'all points in one cluster', true: randomLabels(400, 5), pred: constant(400, 7) },
  { name: 'one class, many clusters', true: constant(400, -2), pred: randomLabels(400, 9) },
  { name: 'one class and one cluster', true: constant(50, 3), pred: constant(50, -9) },
  { name: 'every point its own cluster', true: randomLabels(300, 8), pred: range(300, (i) => 5 * i - 700) },
  { name: 'all singletons on both sides', true: range(60), pred: range(60, (i) => 59 - i) },
  {
    name: 'extreme int32 label values',
    true: randomLabels(300, 3, (c) => [-(2 ** 31), 2 ** 31 - 1, 0][c]!),
    pred: randomLabels(300, 4, (c) => [-1, 2 ** 31 - 1, -(2 ** 31), 5][c]!),
  },
  { name: 'two points', true: Int32Array.from([0, 1]), pred: Int32Array.from([4, 4]) },
  { name: 'a single point', true: Int32Array.from([0]), pred: Int32Array.from([1]) },
  {
    name: 'k-means scale: 30,000 points, 3,000 clusters vs 10 classes',
    true: classes30k,
    pred: classes30k.map((c) => (rng.nextBelow(5) === 0 ? rng.nextBelow(3000) : c * 300 + rng.nextBelow(300))),
  },
  { name: '5,000 points, 500 clusters vs 500 classes', true: classes5k, pred: noisyCopy(classes5k, 0.5, 500, (c) => c) },
]

interface AgreementRef {
  nmi: number
  ami: number
  ari: number
  emi: number
}

interface SizesRef {
  median: number
  normalized_entropy: number
  max_over_mean: number
}

const sizeCases = [
  { labels: Int32Array.from([3, 3, 3, -1, -1, 10]), k: 5 },
  { labels: randomLabels(5000, 300, (c) => c * c), k: 320 },
  { labels: Int32Array.from([...constant(900, 0), ...randomLabels(100, 40)]), k: 40 },
  { labels: constant(10, 4), k: 1 },
]

const near = (actual: number, expected: number, tolerance: number): void => {
  expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(tolerance)
}

describe('clustering agreement', () => {
  it('builds a sparse contingency table in row-major order', () => {
    const t = contingencyTable(Int32Array.from([2, 2, -5, 2, -5]), Int32Array.from([9, 1, 1, 9, 1]))
    expect(Array.from(t.classes)).toEqual([-5, 2])
    expect(Array.from(t.clusters)).toEqual([1, 9])
    expect(Array.from(t.classSizes)).toEqual([2, 3])
    expect(Array.from(t.clusterSizes)).toEqual([3, 2])
    expect(Array.from(t.cellClass)).toEqual([0, 1, 1])
    expect(Array.from(t.cellCluster)).toEqual([0, 0, 1])
    expect(Array.from(t.cellCount)).toEqual([2, 1, 2])
  })

  it('computes purity as the majority-class share per cluster', () => {
    // cluster 5: classes 0,0,2 -> 2; cluster 6: 0,1,1 -> 2; cluster 7: 2,2,2 -> 3
    const t = contingencyTable(Int32Array.from([0, 0, 0, 1, 1, 2, 2, 2, 2]), Int32Array.from([5, 5, 6, 6, 6, 7, 7, 7, 5]))
    expect(purity(t)).toBe(7 / 9)
    expect(purity(contingencyTable(range(10), constant(10, 0)))).toBe(1 / 10)
    expect(purity(contingencyTable(constant(10, 0), range(10)))).toBe(1)
  })

  it('rejects labelings of different lengths or none', () => {
    expect(() => contingencyTable(range(3), range(4))).toThrow(/differ in length/)
    expect(() => contingencyTable(new Int32Array(0), new Int32Array(0))).toThrow(/empty/)
  })

  describe('equals scikit-learn', () => {
    let refs: { agreement: AgreementRef[]; sizes: SizesRef[] }

    beforeAll(async () => {
      const code = readFileSync(new URL('./reference/clustering_reference.py', import.meta.url), 'utf8')
      refs = await runPythonJson(code, { agreement: agreementCases, sizes: sizeCases })
    })

    it.each(agreementCases.map((c, i) => [c.name, c, i] as const))('%s: NMI, AMI, ARI to 1e-10', (_name, c, i) => {
      const ref = refs.agreement[i]!
      const got = clusterAgreement(c.true, c.pred)
      near(got.nmi, ref.nmi, 1e-10)
      near(got.ami, ref.ami, 1e-10)
      near(got.ari, ref.ari, 1e-10)
      // Each EMI term is exp() of a difference of log-factorials up to ~3e5, so
      // both implementations carry ~1e-11 relative rounding noise.
      near(expectedMutualInformation(contingencyTable(c.true, c.pred)), ref.emi, 1e-10 * Math.max(1, ref.emi))
    })

    it('covers informative cases, not only the trivial 0 and 1', () => {
      const between = (x: number) => x > 0.05 && x < 0.95
      expect(refs.agreement.filter((r) => between(r.ami) && between(r.nmi)).length).toBeGreaterThanOrEqual(3)
      expect(refs.agreement.filter((r) => between(r.ari)).length).toBeGreaterThanOrEqual(2)
    })

    it('computes cluster-size statistics as numpy', () => {
      sizeCases.forEach((c, i) => {
        const got = clusterSizeStats(c.labels, c.k)
        const ref = refs.sizes[i]!
        expect(got.median).toBe(ref.median)
        near(got.normalizedEntropy, ref.normalized_entropy, 1e-12)
        near(got.maxOverMean, ref.max_over_mean, 1e-12)
      })
    })
  })
})

describe('cluster-size statistics', () => {
  it('counts empty clusters, singletons and the size histogram', () => {
    const s = clusterSizeStats(Int32Array.from([3, 3, 3, -1, -1, 10]), 5)
    expect(s).toMatchObject({ clusters: 5, empty: 2, singletons: 1, min: 0, median: 1, max: 3, mean: 1.2, maxOverMean: 2.5 })
    expect(Array.from(s.histogram.sizes)).toEqual([0, 1, 2, 3])
    expect(Array.from(s.histogram.counts)).toEqual([2, 1, 1, 1])
  })

  it('defaults K to the clusters present and calls a single cluster balanced', () => {
    const s = clusterSizeStats(constant(10, 4))
    expect(s).toMatchObject({ clusters: 1, empty: 0, normalizedEntropy: 1, maxOverMean: 1 })
    expect(clusterSizeStats(range(8)).normalizedEntropy).toBeCloseTo(1, 15)
  })

  it('refuses a K below the clusters present', () => {
    expect(() => clusterSizeStats(range(8), 7)).toThrow(/k = 7 but the labeling has 8/)
  })
})

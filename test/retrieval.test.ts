import { readFileSync } from 'node:fs'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  DEFAULT_KNN_KS,
  DEFAULT_RECALL_KS,
  type NeighborLists,
  concatRetrievalMetrics,
  knnAccuracy,
  mapAtR,
  neighborsNeeded,
  prepareRetrieval,
  rPrecision,
  recallAtK,
  retrievalMetrics,
} from '../src/eval/retrieval.js'
import { Xoshiro128ss } from '../src/eval/prng.js'
import { runPythonJson } from './helpers/python.js'

const TEMPERATURE = 0.07

// ---------------------------------------------------------------------------
// Hand-computed case. Six items are both queries and gallery; labels
// [0,0,0,1,1,2]: class 2 is a singleton (R = 0), so query 5 is excluded.
// Rows list the other five items, nearest first; ties in similarity are kept
// in the order given.
const tiny: NeighborLists = {
  sameSet: true,
  queryLabels: Int32Array.from([0, 0, 0, 1, 1, 2]),
  galleryLabels: Int32Array.from([0, 0, 0, 1, 1, 2]),
  neighbors: Int32Array.from([
    [3, 1, 2, 4, 5], // q0 (R=2): hits at ranks 2,3
    [0, 2, 3, 4, 5], // q1 (R=2): hits at ranks 1,2
    [4, 3, 5, 0, 1], // q2 (R=2): first hit at rank 4
    [4, 0, 1, 2, 5], // q3 (R=1): hit at rank 1
    [0, 3, 1, 2, 5], // q4 (R=1): hit at rank 2
    [0, 1, 2, 3, 4], // q5 (R=0): excluded
  ].flat()),
  similarities: Float32Array.from([
    [0.5, 0.5, 0.5, 0.5, 0.1], // four-way tie: labels 1,0,0,1 -> classes 0 and 1 tie, 1 voted first
    [0.9, 0.8, 0.8, 0.7, 0.1],
    [0.9, 0.8, 0.8, 0.8, 0.8], // label 1 (x2) vs 0 (x2) vs 2: the nearest vote decides
    [0.9, 0.1, 0.1, 0.1, 0.1],
    [0.9, 0.8, 0.8, 0.1, 0.1],
    [0.9, 0.9, 0.9, 0.9, 0.9],
  ].flat()),
}

describe('retrieval metrics on a hand-computed case', () => {
  const q = prepareRetrieval(tiny)

  it('drops the singleton-class query, as AccuracyCalculator does', () => {
    expect(Array.from(q.evaluated)).toEqual([0, 1, 2, 3, 4])
    expect(Array.from(q.relevant)).toEqual([2, 2, 2, 1, 1])
  })

  it('computes MAP@R and R-Precision per query', () => {
    // q0: top 2 = [miss, hit] -> (1/2)/2; q1: (1/1 + 2/2)/2; q2: no hit in top 2; q3: 1/1; q4: miss.
    expect(Array.from(mapAtR(q))).toEqual([0.25, 1, 0, 1, 0])
    expect(Array.from(rPrecision(q))).toEqual([0.5, 1, 0, 1, 0])
  })

  it('computes UNICOM Recall@K, capping K at the gallery a query can see', () => {
    expect(Array.from(recallAtK(q, 1))).toEqual([0, 1, 0, 1, 0])
    expect(Array.from(recallAtK(q, 2))).toEqual([1, 1, 0, 1, 1])
    expect(Array.from(recallAtK(q, 4))).toEqual([1, 1, 1, 1, 1])
    expect(Array.from(recallAtK(q, 8))).toEqual([1, 1, 1, 1, 1])
  })

  it('weights k-NN votes by exp(sim/T) and breaks exact ties towards the nearest label', () => {
    // q0: classes 1 and 0 each get 2*exp(0.5/T) exactly; class 1 voted first -> wrong.
    // q1: class 0 gets exp(.9/T)+exp(.8/T) -> right.
    // q2: class 1 (ranks 1,2) = exp(.9/T)+exp(.8/T) beats class 0 (ranks 4,5) = 2 exp(.8/T) -> wrong.
    // q3: class 1 exp(.9/T) vs class 0 2 exp(.1/T) -> right.
    // q4 (label 1): labels by rank 0,1,0,0,2 -> class 0 = exp(.9/T)+exp(.8/T)+exp(.1/T)
    //   > class 1 = exp(.8/T) -> wrong.
    expect(Array.from(knnAccuracy(q, 10, TEMPERATURE))).toEqual([0, 1, 0, 1, 0])
    // With only the nearest neighbour voting, k-NN accuracy is Recall@1.
    expect(Array.from(knnAccuracy(q, 1, TEMPERATURE))).toEqual(Array.from(recallAtK(q, 1)))
  })

  it('lets one near vote outweigh two farther ones (exp weighting, T = 0.07)', () => {
    const lists: NeighborLists = {
      sameSet: false,
      queryLabels: Int32Array.from([7]),
      galleryLabels: Int32Array.from([7, -3, -3]),
      neighbors: Int32Array.from([0, 1, 2]),
      // exp(0.9/0.07) = 3.8e5 > 2 exp(0.8/0.07) = 1.8e5; with T = 1 the pair wins.
      similarities: Float32Array.from([0.9, 0.8, 0.8]),
    }
    const single = prepareRetrieval(lists)
    expect(Array.from(knnAccuracy(single, 3, TEMPERATURE))).toEqual([1])
    expect(Array.from(knnAccuracy(single, 3, 1))).toEqual([0])
  })

  it('reports means over evaluated queries', () => {
    const m = retrievalMetrics(tiny)
    expect(m.excludedQueries).toBe(1)
    expect(m.mapAtR.mean).toBeCloseTo(0.45, 15)
    expect(m.rPrecision.mean).toBeCloseTo(0.5, 15)
    expect(m.recallAtK.get(1)?.mean).toBeCloseTo(0.4, 15)
    expect(m.recallAtK.get(2)?.mean).toBeCloseTo(0.8, 15)
    expect(m.knnAccuracy.get(20)?.mean).toBeCloseTo(0.4, 15)
  })

  it('asks for max(R, K) neighbours, capped at the gallery', () => {
    expect(neighborsNeeded(tiny.galleryLabels, tiny.queryLabels, true, [1, 2])).toBe(2)
    expect(neighborsNeeded(tiny.galleryLabels, tiny.queryLabels, true)).toBe(5)
    const gallery = Int32Array.from([1, 1, 1, 1, 2, 2, 3])
    expect(neighborsNeeded(gallery, Int32Array.from([1, 9]), false, [2])).toBe(4)
  })

  it('refuses lists too short for a metric, and lists that contain the query', () => {
    const short = { ...tiny, neighbors: tiny.neighbors.filter((_, i) => i % 5 < 3), similarities: tiny.similarities.filter((_, i) => i % 5 < 3) }
    const q3 = prepareRetrieval(short)
    expect(() => recallAtK(q3, 4)).toThrow(/Recall@4 needs 4 neighbours per query but the lists have 3/)
    expect(() => knnAccuracy(q3, 10)).toThrow(/needs 5 neighbours/)
    expect(mapAtR(q3)).toHaveLength(5) // max R = 2 fits in 3 columns
    const onlyOne = { ...tiny, neighbors: tiny.neighbors.filter((_, i) => i % 5 < 1), similarities: tiny.similarities.filter((_, i) => i % 5 < 1) }
    expect(() => mapAtR(prepareRetrieval(onlyOne))).toThrow(/MAP@R needs 2 neighbours/)
    const withSelf = Int32Array.from(tiny.neighbors)
    withSelf[5] = 1
    expect(() => prepareRetrieval({ ...tiny, neighbors: withSelf })).toThrow(/query 1 lists itself/)
    expect(() => prepareRetrieval({ ...tiny, queryLabels: Int32Array.from([0, 0, 0, 1, 2, 1]) })).toThrow(/labels differ/)
  })
})

// ---------------------------------------------------------------------------
// Cross-check against pytorch-metric-learning and numpy on embeddings built in
// Python (test/reference/retrieval_reference.py).

interface Scenario {
  name: string
  seed: number
  same_set: boolean
  gallery_labels: Int32Array
  query_labels?: Int32Array
  dim: number
  noise: number
  /** Rounds similarities to this many decimals, creating exact ties. */
  decimals?: number
  /** Also let PML search with its own faiss index (independent neighbour search). */
  pml_search?: boolean
}

interface PmlResult {
  precision_at_1: number
  r_precision: number
  mean_average_precision_at_r: number
}

interface Reference {
  k: number
  neighbors: number[]
  similarities: number[]
  query_labels: number[]
  evaluated: number
  recall: Record<string, number>
  knn: Record<string, number>
  pml_fixed: PmlResult
  pml_search?: PmlResult
}

/** Labels of classes with the given sizes, relabelled sparsely and shuffled. */
function classLabels(sizes: readonly number[], seed: number, relabel: (c: number) => number): Int32Array {
  const labels = sizes.flatMap((size, c) => Array<number>(size).fill(relabel(c)))
  const rng = Xoshiro128ss.fromSeed(seed)
  for (let i = labels.length - 1; i > 0; i--) {
    const j = rng.nextBelow(i + 1)
    ;[labels[i], labels[j]] = [labels[j]!, labels[i]!]
  }
  return Int32Array.from(labels)
}

const fib = [1, 2, 3, 5, 8, 13, 21, 34, 55]
const scenarios: Scenario[] = [
  {
    name: 'query set = gallery, 40 classes of 1..55 items incl. singletons',
    seed: 1,
    same_set: true,
    gallery_labels: classLabels(Array.from({ length: 40 }, (_, c) => fib[c % 9]!), 11, (c) => 3 * c - 20),
    dim: 16,
    noise: 0.9,
    pml_search: true,
  },
  {
    name: 'separate query set, some query labels absent from the gallery',
    seed: 2,
    same_set: false,
    gallery_labels: classLabels(Array.from({ length: 30 }, (_, c) => 10 + (c % 7) * 5), 12, (c) => c * 1000),
    query_labels: classLabels(Array.from({ length: 35 }, () => 9), 13, (c) => c * 1000),
    dim: 12,
    noise: 1.0,
    pml_search: true,
  },
  {
    name: 'similarities rounded to 2 decimals: many exact ties',
    seed: 3,
    same_set: true,
    gallery_labels: classLabels(Array.from({ length: 25 }, (_, c) => [1, 4, 9, 16, 30][c % 5]!), 14, (c) => c),
    dim: 8,
    noise: 0.7,
    decimals: 2,
  },
  {
    name: 'labels unrelated to embeddings (chance level)',
    seed: 4,
    same_set: true,
    gallery_labels: classLabels(Array.from({ length: 50 }, () => 12), 15, (c) => -c),
    dim: 8,
    noise: 100,
  },
]

describe('retrieval metrics match pytorch-metric-learning and numpy', () => {
  let references: Reference[]

  beforeAll(async () => {
    const code = readFileSync(new URL('./reference/retrieval_reference.py', import.meta.url), 'utf8')
    references = await runPythonJson<Reference[]>(code, {
      recall_ks: DEFAULT_RECALL_KS,
      knn_ks: DEFAULT_KNN_KS,
      temperature: TEMPERATURE,
      scenarios,
    })
  })

  describe.each(scenarios.map((s, i) => [s.name, s, i] as const))('%s', (_name, scenario, i) => {
    const setUp = () => {
      const ref = references[i]!
      const lists: NeighborLists = {
        sameSet: scenario.same_set,
        galleryLabels: scenario.gallery_labels,
        queryLabels: Int32Array.from(ref.query_labels),
        neighbors: Int32Array.from(ref.neighbors),
        similarities: Float32Array.from(ref.similarities),
      }
      return { ref, lists, metrics: retrievalMetrics(lists) }
    }

    it('asks for as many neighbours as the reference computed independently', () => {
      const { ref, lists } = setUp()
      expect(neighborsNeeded(lists.galleryLabels, lists.queryLabels, lists.sameSet)).toBe(ref.k)
    })

    it('equals AccuracyCalculator on the same neighbour lists', () => {
      const { ref, metrics } = setUp()
      expect(metrics.evaluatedQueries.length).toBe(ref.evaluated)
      expect(metrics.recallAtK.get(1)!.mean).toBeCloseTo(ref.pml_fixed.precision_at_1, 12)
      expect(metrics.rPrecision.mean).toBeCloseTo(ref.pml_fixed.r_precision, 12)
      expect(metrics.mapAtR.mean).toBeCloseTo(ref.pml_fixed.mean_average_precision_at_r, 12)
    })

    if (scenario.pml_search) it('equals AccuracyCalculator searching with its own faiss index', () => {
      const { ref, metrics } = setUp()
      const own = ref.pml_search!
      expect(metrics.recallAtK.get(1)!.mean).toBeCloseTo(own.precision_at_1, 12)
      expect(metrics.rPrecision.mean).toBeCloseTo(own.r_precision, 12)
      expect(metrics.mapAtR.mean).toBeCloseTo(own.mean_average_precision_at_r, 12)
    })

    it('equals numpy Recall@K', () => {
      const { ref, metrics } = setUp()
      for (const K of DEFAULT_RECALL_KS) expect(metrics.recallAtK.get(K)!.mean).toBeCloseTo(ref.recall[String(K)]!, 12)
    })

    // numpy's argmax breaks exact ties differently; compare where there are none.
    if (scenario.decimals === undefined) it('equals numpy weighted k-NN accuracy', () => {
      const { ref, metrics } = setUp()
      for (const k of DEFAULT_KNN_KS) expect(metrics.knnAccuracy.get(k)!.mean).toBeCloseTo(ref.knn[String(k)]!, 12)
    })

    it('is not degenerate (the comparison can fail)', () => {
      const { metrics } = setUp()
      const m = metrics.mapAtR.mean
      expect(m).toBeGreaterThan(0)
      expect(m).toBeLessThan(1)
    })
  })
})

describe('retrieval metrics over batches of the queries', () => {
  const k = 5
  const whole = retrievalMetrics(tiny, { recallKs: [1, 2], knnKs: [3] })
  const batch = (first: number, n: number): NeighborLists => ({
    ...tiny,
    queryLabels: tiny.queryLabels.subarray(first, first + n),
    neighbors: tiny.neighbors.subarray(first * k, (first + n) * k),
    similarities: tiny.similarities.subarray(first * k, (first + n) * k),
    firstQuery: first,
  })

  it('joins to the metrics of all the queries at once', () => {
    const firsts = [0, 2, 3]
    const parts = firsts.map((first, i) => retrievalMetrics(batch(first, (firsts[i + 1] ?? 6) - first), { recallKs: [1, 2], knnKs: [3] }))
    const joined = concatRetrievalMetrics(parts, firsts)
    expect(Array.from(joined.evaluatedQueries)).toEqual(Array.from(whole.evaluatedQueries))
    expect(joined.excludedQueries).toBe(whole.excludedQueries)
    for (const pick of [
      (m: typeof whole) => m.mapAtR,
      (m: typeof whole) => m.rPrecision,
      (m: typeof whole) => m.recallAtK.get(2)!,
      (m: typeof whole) => m.knnAccuracy.get(3)!,
    ]) {
      expect(Array.from(pick(joined).values)).toEqual(Array.from(pick(whole).values))
      expect(pick(joined).mean).toBeCloseTo(pick(whole).mean, 12)
    }
  })

  it('knows which gallery item each query of a batch is', () => {
    const withSelf = Int32Array.from(tiny.neighbors.subarray(3 * k, 4 * k))
    withSelf[0] = 3 // query 0 of the batch from 3 is gallery item 3
    expect(() => prepareRetrieval({ ...batch(3, 1), neighbors: withSelf })).toThrow(/query 0 lists itself/)
    expect(() => prepareRetrieval({ ...batch(3, 1), queryLabels: Int32Array.from([0]) })).toThrow(/gallery item 3 \+ i/)
  })
})

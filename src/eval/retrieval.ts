// Retrieval metrics computed from neighbour lists that the Python worker
// returns (exact or faiss search). Definitions follow pytorch-metric-learning's
// AccuracyCalculator (MAP@R, R-Precision, precision@1) and UNICOM (Recall@K);
// weighted k-NN accuracy follows DINO. Every metric is returned per query so
// a bootstrap can resample queries.
//
// Queries with no relevant gallery item (R = 0: a singleton class when the
// query set is the gallery, or a label absent from the gallery) can score
// nothing; AccuracyCalculator drops them from every metric, and so do we:
// per-query arrays cover `evaluated` queries only, and means are over them.
//
// Ties in similarity: metrics take the neighbour order as given, so the
// search must break ties deterministically (faiss: lower index first).
import { indexLabels, labelId } from './labels.js'
import { mean } from './stats.js'

export const DEFAULT_RECALL_KS: readonly number[] = [1, 2, 4, 8]
export const DEFAULT_KNN_KS: readonly number[] = [10, 20, 100]
export const DEFAULT_KNN_TEMPERATURE = 0.07

export interface NeighborLists {
  /** nQuery x k gallery indices, row-major, nearest first. */
  readonly neighbors: Int32Array
  /** Cosine similarity of each neighbour, same shape as `neighbors`. */
  readonly similarities: Float32Array
  readonly queryLabels: Int32Array
  readonly galleryLabels: Int32Array
  /**
   * Queries are the gallery (UNICOM protocol): query i is gallery item
   * firstQuery + i, its own entry is excluded from its list, and R = class size - 1.
   */
  readonly sameSet: boolean
  /** With sameSet, the lists of one batch of the queries, the first of which is gallery item firstQuery; unset: all of them. */
  readonly firstQuery?: number
}

/** The first few neighbours of each query by image id: what evaluation keeps of the lists for the report's pictures. */
export interface NearestImages {
  /** Image id of each query. */
  readonly queries: Int32Array
  /** Image ids of each query's `k` nearest, row-major, nearest first. */
  readonly ids: Int32Array
  readonly k: number
}

/** Neighbour lists checked and annotated with what every metric needs. */
export interface RetrievalQueries {
  readonly lists: NeighborLists
  /** Neighbours per query (columns). */
  readonly k: number
  /** Gallery items a query can retrieve at all. */
  readonly available: number
  /** Queries with R >= 1, ascending; per-query metric arrays follow this order. */
  readonly evaluated: Int32Array
  /** R (number of relevant gallery items) of each evaluated query. */
  readonly relevant: Int32Array
  /** Class id of each evaluated query; comparable with `galleryClass`. */
  readonly queryClass: Int32Array
  /** Class id of each gallery item. */
  readonly galleryClass: Int32Array
  readonly classCount: number
}

export interface PerQueryMetric {
  /** One value per evaluated query. */
  readonly values: Float64Array
  /** Mean over evaluated queries (NaN when none). */
  readonly mean: number
}

export interface RetrievalMetrics {
  /** Queries scored (R >= 1); the i-th per-query value belongs to evaluatedQueries[i]. */
  readonly evaluatedQueries: Int32Array
  /** Queries dropped because nothing in the gallery shares their label. */
  readonly excludedQueries: number
  readonly recallAtK: ReadonlyMap<number, PerQueryMetric>
  readonly mapAtR: PerQueryMetric
  readonly rPrecision: PerQueryMetric
  readonly knnAccuracy: ReadonlyMap<number, PerQueryMetric>
}

export interface RetrievalOptions {
  readonly recallKs?: readonly number[]
  readonly knnKs?: readonly number[]
  readonly knnTemperature?: number
}

/** R of every query: gallery items sharing its label, minus itself when sameSet. */
function relevantCounts(
  galleryLabels: Int32Array,
  queryLabels: Int32Array,
  sameSet: boolean,
  firstQuery?: number,
): { r: Int32Array; queryClass: Int32Array; galleryClass: Int32Array; classCount: number } {
  const first = firstQuery ?? 0
  if (sameSet && (firstQuery === undefined ? queryLabels.length !== galleryLabels.length : first + queryLabels.length > galleryLabels.length)) {
    throw new Error(
      `sameSet needs the query set to be the gallery, but there are ${queryLabels.length} queries from gallery item ${first} and ${galleryLabels.length} gallery items`,
    )
  }
  if (sameSet && queryLabels.some((label, i) => label !== galleryLabels[first + i])) {
    throw new Error(`sameSet needs query i to be gallery item ${first ? `${first} + ` : ''}i, but their labels differ`)
  }
  const gallery = indexLabels(galleryLabels)
  const r = new Int32Array(queryLabels.length)
  const queryClass = new Int32Array(queryLabels.length)
  for (let q = 0; q < queryLabels.length; q++) {
    const id = labelId(gallery.values, queryLabels[q]!)
    queryClass[q] = id
    r[q] = id < 0 ? 0 : gallery.counts[id]! - (sameSet ? 1 : 0)
  }
  return { r, queryClass, galleryClass: gallery.ids, classCount: gallery.values.length }
}

function checkK(name: string, k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`${name}: k must be a positive integer, got ${k}`)
}

/**
 * How many neighbours per query the search must return for every metric here:
 * the largest R (MAP@R, R-Precision) and the largest of `ks` (Recall@K, k-NN),
 * capped at the gallery items a query can retrieve.
 */
export function neighborsNeeded(
  galleryLabels: Int32Array,
  queryLabels: Int32Array,
  sameSet: boolean,
  ks: readonly number[] = [...DEFAULT_RECALL_KS, ...DEFAULT_KNN_KS],
): number {
  ks.forEach((k) => checkK('neighborsNeeded', k))
  const { r } = relevantCounts(galleryLabels, queryLabels, sameSet)
  let needed = Math.max(0, ...ks)
  for (let q = 0; q < r.length; q++) needed = Math.max(needed, r[q]!)
  return Math.min(needed, galleryLabels.length - (sameSet ? 1 : 0))
}

/** Validates the lists and finds each query's R; every metric starts here. */
export function prepareRetrieval(lists: NeighborLists): RetrievalQueries {
  const { neighbors, similarities, queryLabels, galleryLabels, sameSet, firstQuery } = lists
  const first = firstQuery ?? 0
  const nQuery = queryLabels.length
  if (nQuery === 0) throw new Error('no queries')
  if (neighbors.length % nQuery !== 0) {
    throw new Error(`neighbors has ${neighbors.length} entries, not a multiple of ${nQuery} queries`)
  }
  if (similarities.length !== neighbors.length) {
    throw new Error(`similarities has ${similarities.length} entries but neighbors has ${neighbors.length}`)
  }
  const k = neighbors.length / nQuery
  const nGallery = galleryLabels.length
  for (let q = 0; q < nQuery; q++) {
    for (let i = q * k; i < (q + 1) * k; i++) {
      const g = neighbors[i]!
      if (g < 0 || g >= nGallery) {
        throw new Error(`query ${q}: neighbour index ${g} is outside the gallery (0..${nGallery - 1})`)
      }
      if (sameSet && g === first + q) throw new Error(`query ${q} lists itself; exclude it from its neighbours`)
    }
  }
  const { r, queryClass, galleryClass, classCount } = relevantCounts(galleryLabels, queryLabels, sameSet, firstQuery)
  let evaluatedCount = 0
  for (let q = 0; q < nQuery; q++) if (r[q]! > 0) evaluatedCount++
  const evaluated = new Int32Array(evaluatedCount)
  const relevant = new Int32Array(evaluatedCount)
  const evaluatedClass = new Int32Array(evaluatedCount)
  for (let q = 0, e = 0; q < nQuery; q++) {
    if (r[q]! === 0) continue
    evaluated[e] = q
    relevant[e] = r[q]!
    evaluatedClass[e++] = queryClass[q]!
  }
  return {
    lists,
    k,
    available: nGallery - (sameSet ? 1 : 0),
    evaluated,
    relevant,
    queryClass: evaluatedClass,
    galleryClass,
    classCount,
  }
}

/** Throws unless every query has `wanted` neighbours (or all it can have). */
function requireColumns(queries: RetrievalQueries, wanted: number, metric: string): number {
  const needed = Math.min(wanted, queries.available)
  if (queries.k < needed) {
    throw new Error(
      `${metric} needs ${needed} neighbours per query but the lists have ${queries.k}; search for neighborsNeeded(...) neighbours`,
    )
  }
  return needed
}

function maxRelevant(queries: RetrievalQueries): number {
  let max = 0
  for (let e = 0; e < queries.relevant.length; e++) max = Math.max(max, queries.relevant[e]!)
  return max
}

/** UNICOM Recall@K: 1 when any of the top K shares the query's label. */
export function recallAtK(queries: RetrievalQueries, K: number): Float64Array {
  checkK('Recall@K', K)
  const depth = requireColumns(queries, K, `Recall@${K}`)
  const { evaluated, queryClass, galleryClass, k } = queries
  const neighbors = queries.lists.neighbors
  const out = new Float64Array(evaluated.length)
  for (let e = 0; e < evaluated.length; e++) {
    const row = evaluated[e]! * k
    const cls = queryClass[e]!
    for (let i = 0; i < depth; i++) {
      if (galleryClass[neighbors[row + i]!] === cls) {
        out[e] = 1
        break
      }
    }
  }
  return out
}

/**
 * MAP@R (PML mean_average_precision_at_r): over the top R, the sum of
 * precision@i at each relevant rank i, divided by R.
 */
export function mapAtR(queries: RetrievalQueries): Float64Array {
  requireColumns(queries, maxRelevant(queries), 'MAP@R')
  const { evaluated, relevant, queryClass, galleryClass, k } = queries
  const neighbors = queries.lists.neighbors
  const out = new Float64Array(evaluated.length)
  for (let e = 0; e < evaluated.length; e++) {
    const row = evaluated[e]! * k
    const cls = queryClass[e]!
    const r = relevant[e]!
    let hits = 0
    let sum = 0
    for (let i = 0; i < r; i++) {
      if (galleryClass[neighbors[row + i]!] === cls) sum += ++hits / (i + 1)
    }
    out[e] = sum / r
  }
  return out
}

/** R-Precision (PML r_precision): the fraction of the top R that is relevant. */
export function rPrecision(queries: RetrievalQueries): Float64Array {
  requireColumns(queries, maxRelevant(queries), 'R-Precision')
  const { evaluated, relevant, queryClass, galleryClass, k } = queries
  const neighbors = queries.lists.neighbors
  const out = new Float64Array(evaluated.length)
  for (let e = 0; e < evaluated.length; e++) {
    const row = evaluated[e]! * k
    const cls = queryClass[e]!
    const r = relevant[e]!
    let hits = 0
    for (let i = 0; i < r; i++) if (galleryClass[neighbors[row + i]!] === cls) hits++
    out[e] = hits / r
  }
  return out
}

/**
 * DINO-style weighted k-NN classification: each of the top k votes for its
 * label with weight exp(similarity / temperature); 1 when the heaviest label
 * is the query's. Ties in summed weight go to the tied label that appears
 * first in the neighbour list (the nearest), so results are deterministic.
 */
export function knnAccuracy(
  queries: RetrievalQueries,
  kNeighbors: number,
  temperature: number = DEFAULT_KNN_TEMPERATURE,
): Float64Array {
  checkK('k-NN', kNeighbors)
  if (!(temperature > 0)) throw new RangeError(`k-NN temperature must be positive, got ${temperature}`)
  const depth = requireColumns(queries, kNeighbors, `${kNeighbors}-NN accuracy`)
  const { evaluated, queryClass, galleryClass, classCount, k } = queries
  const { neighbors, similarities } = queries.lists
  const score = new Float64Array(classCount)
  // stamp[c] === e + 1 marks class c as voted for by query e; avoids clearing.
  const stamp = new Int32Array(classCount)
  // Classes in order of first vote, which is also the tie-break order.
  const voted = new Int32Array(depth)
  const out = new Float64Array(evaluated.length)
  for (let e = 0; e < evaluated.length; e++) {
    const row = evaluated[e]! * k
    let nVoted = 0
    for (let i = row; i < row + depth; i++) {
      const c = galleryClass[neighbors[i]!]!
      const weight = Math.exp(similarities[i]! / temperature)
      if (stamp[c] !== e + 1) {
        stamp[c] = e + 1
        score[c] = 0
        voted[nVoted++] = c
      }
      score[c]! += weight
    }
    let best = voted[0]!
    for (let v = 1; v < nVoted; v++) {
      const c = voted[v]!
      if (score[c]! > score[best]!) best = c
    }
    out[e] = best === queryClass[e] ? 1 : 0
  }
  return out
}

function perQuery(values: Float64Array): PerQueryMetric {
  return { values, mean: mean(values) }
}

/** Every retrieval metric, per query and averaged. */
export function retrievalMetrics(lists: NeighborLists, options: RetrievalOptions = {}): RetrievalMetrics {
  const queries = prepareRetrieval(lists)
  const temperature = options.knnTemperature ?? DEFAULT_KNN_TEMPERATURE
  return {
    evaluatedQueries: queries.evaluated,
    excludedQueries: lists.queryLabels.length - queries.evaluated.length,
    recallAtK: new Map(
      (options.recallKs ?? DEFAULT_RECALL_KS).map((K) => [K, perQuery(recallAtK(queries, K))]),
    ),
    mapAtR: perQuery(mapAtR(queries)),
    rPrecision: perQuery(rPrecision(queries)),
    knnAccuracy: new Map(
      (options.knnKs ?? DEFAULT_KNN_KS).map((kk) => [kk, perQuery(knnAccuracy(queries, kk, temperature))]),
    ),
  }
}

/**
 * The metrics of consecutive batches of the queries as one result: part i
 * scored the queries from firsts[i] on (e.g. one record batch of a neighbour
 * table each), so that no batch's lists need copying into one array.
 */
export function concatRetrievalMetrics(parts: readonly RetrievalMetrics[], firsts: readonly number[]): RetrievalMetrics {
  if (parts.length === 1 && firsts[0] === 0) return parts[0]!
  const join = (pick: (m: RetrievalMetrics) => PerQueryMetric): PerQueryMetric => {
    const values = new Float64Array(parts.reduce((n, m) => n + pick(m).values.length, 0))
    let at = 0
    for (const m of parts) {
      values.set(pick(m).values, at)
      at += pick(m).values.length
    }
    return perQuery(values)
  }
  const evaluated = new Int32Array(parts.reduce((n, m) => n + m.evaluatedQueries.length, 0))
  let at = 0
  parts.forEach((m, i) => {
    for (const q of m.evaluatedQueries) evaluated[at++] = q + firsts[i]!
  })
  const first = parts[0]!
  return {
    evaluatedQueries: evaluated,
    excludedQueries: parts.reduce((n, m) => n + m.excludedQueries, 0),
    recallAtK: new Map([...first.recallAtK.keys()].map((K) => [K, join((m) => m.recallAtK.get(K)!)])),
    mapAtR: join((m) => m.mapAtR),
    rPrecision: join((m) => m.rPrecision),
    knnAccuracy: new Map([...first.knnAccuracy.keys()].map((K) => [K, join((m) => m.knnAccuracy.get(K)!)])),
  }
}

// `nfhm eval`: each model embeds the queries and the gallery of the run's
// protocol (cached), the worker finds exact nearest neighbours, and the
// metrics are computed here from the neighbour lists and the true labels,
// each with a bootstrap 95% interval.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Vector } from 'apache-arrow'
import type { ModelSpec } from '../bridge/methods.js'
import { bootstrapCIs, type ConfidenceInterval } from '../eval/bootstrap.js'
import { clusterAgreement, normalizedMutualInfo, contingencyTable } from '../eval/clustering.js'
import {
  concatRetrievalMetrics,
  neighborsNeeded,
  retrievalMetrics,
  type NearestImages,
  type RetrievalMetrics,
  type RetrievalOptions,
} from '../eval/retrieval.js'
import { halfSamples, subsampleInterval, type HalfSamples } from '../eval/subsample.js'
import { writeJsonAtomic } from '../run/atomic.js'
import type { Context } from '../run/context.js'
import type { EvalRecord, Interval } from '../run/records.js'
import { runEvents } from '../run/tensorboard.js'
import { embedImages } from './embed.js'
import type { Subset } from './images.js'
import type { EvalSets } from './protocol.js'

export interface ModelUnderTest {
  /** Row name in the tables, e.g. "random init", "round 1". */
  name: string
  spec: ModelSpec
}

/**
 * A model's eval.json entry and, for paired comparisons, what is not written
 * there: its per-query values of each metric, and its NMI on all evaluated
 * images and on each half-sample (over `clusteredIds`, in that order); for the
 * report's pictures, each evaluated query's nearest images (in the per-query
 * values' order) and the worker paths of its embedding shards (queries', then gallery's).
 */
export interface ModelEval extends EvalRecord {
  perQuery: Record<string, Float64Array>
  nmiSamples: HalfSamples
  clusteredIds: Int32Array
  nearest: NearestImages
  shards: string[]
}

/** Neighbours per query kept for the report's pictures (the neighbour grid, per-class Recall@1): 20 bytes a query. */
const KEPT_NEIGHBOURS = 5

export interface EvalOptions {
  /** Seed of the bootstrap resamples and half-samples: the same for every model, so they pair. */
  seed?: number
}

function interval(ci: ConfidenceInterval): Interval {
  return { estimate: ci.estimate, lower: ci.lower, upper: ci.upper }
}

/** One side of a search: embedding shards, the image ids in shard order, and their class ids. */
export interface SearchSet {
  shards: string[]
  ids: Int32Array
  labels: Int32Array
}

/** The first `length` values of a record batch's column (of a FixedSizeList column: `length` lists of `size`), as a view. */
function columnValues<T extends Int32Array | Float32Array>(column: Vector, size = 1): T {
  const data = column.data[0]!
  const values = size === 1 ? data : data.children[0]!
  const start = size === 1 ? data.offset : values.offset + data.offset * size
  return (values.values as T).subarray(start, start + data.length * size) as T
}

/**
 * Exact k-NN in the worker (against `gallery`, or among the queries when it is
 * null) and the retrieval metrics of the neighbour lists, computed here one
 * record batch at a time. Each batch's columns are views on the received
 * message, and its neighbour ids become gallery rows in place (the table is
 * this call's alone), through an array indexed by image id rather than a Map:
 * the TS side holds no copy of the lists, however many queries there are,
 * beyond the first KEPT_NEIGHBOURS of each evaluated query.
 */
export async function searchMetrics(
  ctx: Context,
  queries: SearchSet,
  gallery: SearchSet | null,
  options: Required<RetrievalOptions>,
): Promise<{ metrics: RetrievalMetrics; nearest: NearestImages }> {
  const sameSet = gallery === null
  const items = gallery ?? queries
  const k = neighborsNeeded(items.labels, queries.labels, sameSet, [...options.recallKs, ...options.knnKs, KEPT_NEIGHBOURS])
  const { tables } = await ctx.worker.call('search.knn', {
    query_shards: queries.shards,
    gallery_shards: gallery?.shards ?? null,
    k,
    exclude_self: sameSet,
  })
  const rowOf = new Int32Array(items.ids.reduce((max, id) => Math.max(max, id), 0) + 1).fill(-1)
  items.ids.forEach((id, row) => (rowOf[id] = row))
  const parts: RetrievalMetrics[] = []
  const firsts: number[] = []
  const keep = Math.min(KEPT_NEIGHBOURS, k)
  const kept = new Int32Array(queries.ids.length * keep)
  let first = 0
  for (const batch of tables.neighbors!.batches) {
    const n = batch.numRows
    const queryIds = columnValues<Int32Array>(batch.getChild('query_id')!)
    if (!queryIds.every((id, i) => id === queries.ids[first + i])) throw outOfOrder(queries)
    const neighbors = columnValues<Int32Array>(batch.getChild('ids')!, k)
    for (let i = 0; i < neighbors.length; i++) neighbors[i] = rowOf[neighbors[i]!]!
    const lists = {
      neighbors,
      similarities: columnValues<Float32Array>(batch.getChild('similarities')!, k),
      queryLabels: queries.labels.subarray(first, first + n),
      galleryLabels: items.labels,
      sameSet,
      firstQuery: sameSet ? first : undefined,
    }
    parts.push(retrievalMetrics(lists, options))
    firsts.push(first)
    for (let q = 0; q < n; q++) {
      for (let j = 0; j < keep; j++) kept[(first + q) * keep + j] = items.ids[neighbors[q * k + j]!]!
    }
    first += n
  }
  if (first !== queries.ids.length) throw outOfOrder(queries)
  const metrics = concatRetrievalMetrics(parts, firsts)
  const evaluated = metrics.evaluatedQueries
  const ids = new Int32Array(evaluated.length * keep)
  evaluated.forEach((q, e) => ids.set(kept.subarray(q * keep, (q + 1) * keep), e * keep))
  return { metrics, nearest: { queries: evaluated.map((q) => queries.ids[q]!), ids, k: keep } }
}

const outOfOrder = (queries: SearchSet) =>
  new Error(`the worker's neighbour lists do not follow the ${queries.ids.length} queries of ${queries.shards[0]} (and the shards after it) in order`)

/** A subset embedded by `model`, as one side of a search: shards keep input order, without the images that could not be read. */
async function embedSide(ctx: Context, model: ModelUnderTest, images: Subset, role: string): Promise<SearchSet & { dir: string }> {
  const embeddings = await embedImages(ctx, model.spec, images, `${role} (${model.name})`)
  const bad = new Set(embeddings.bad.map((b) => b.id))
  const kept = Array.from(images.ids.keys()).filter((i) => !bad.has(images.ids[i]!))
  return { shards: embeddings.shards, ids: Int32Array.from(kept, (i) => images.ids[i]!), labels: Int32Array.from(kept, (i) => images.classIds[i]!), dir: embeddings.dir }
}

/**
 * One model under the run's protocol: retrieval of the queries against the
 * gallery (or among themselves), and NMI of k-means over every evaluated
 * image (the queries and the gallery together).
 */
export async function evaluateModel(ctx: Context, model: ModelUnderTest, sets: EvalSets, opts: EvalOptions = {}): Promise<ModelEval> {
  const cfg = ctx.config.eval
  const queries = await embedSide(ctx, model, sets.queries, sets.gallery ? 'queries' : 'test')
  const gallery = sets.gallery && (await embedSide(ctx, model, sets.gallery, 'gallery'))
  const { metrics, nearest } = await searchMetrics(ctx, queries, gallery, {
    recallKs: cfg.recall_at,
    knnKs: cfg.knn_k,
    knnTemperature: cfg.knn_temperature,
  })
  const perQuery: Record<string, Float64Array> = {}
  for (const [K, m] of metrics.recallAtK) perQuery[`recall@${K}`] = m.values
  perQuery['map@r'] = metrics.mapAtR.values
  perQuery['r_precision'] = metrics.rPrecision.values
  for (const [K, m] of metrics.knnAccuracy) perQuery[`knn@${K}`] = m.values
  const bootstrap = { resamples: cfg.bootstrap, seed: opts.seed ?? 0 }
  const cis = bootstrapCIs(perQuery, bootstrap)

  const sides = gallery ? [queries, gallery] : [queries]
  const classOf = new Map(sides.flatMap((side) => Array.from(side.ids, (id, i) => [id, side.labels[i]!] as const)))
  const kMeansK = cfg.cluster_k ?? new Set(classOf.values()).size
  const shards = sides.flatMap((side) => side.shards)
  const { tables: clusterTables } = await ctx.worker.call('cluster.kmeans', {
    shards,
    k: kMeansK,
    spherical: true,
    niter: ctx.config.cluster.niter,
    nredo: ctx.config.cluster.nredo,
    seed: ctx.config.cluster.seed,
    max_points_per_centroid: ctx.config.cluster.max_points_per_centroid,
    min_points_per_centroid: 1,
    gpu: ctx.config.cluster.gpu,
    out_dir: null,
  })
  const assigned = clusterTables.assignments!
  const clusteredIds = assigned.getChild('id')!.toArray() as Int32Array
  const truth = Int32Array.from(clusteredIds, (id) => classOf.get(id)!)
  const predicted = assigned.getChild('cluster')!.toArray() as Int32Array
  const agreement = clusterAgreement(truth, predicted)
  const nmiSamples = halfSamples(
    truth.length,
    (draw) => normalizedMutualInfo(contingencyTable(draw.map((i) => truth[i]!), draw.map((i) => predicted[i]!))),
    bootstrap,
  )
  const nmi = subsampleInterval(nmiSamples, bootstrap)
  return {
    name: model.name,
    model: model.spec,
    protocol: sets.protocol,
    embeddings: queries.dir,
    ...(gallery ? { gallery_embeddings: gallery.dir } : {}),
    queries: metrics.evaluatedQueries.length,
    excluded_queries: metrics.excludedQueries,
    metrics: Object.fromEntries(Object.entries(cis).map(([name, ci]) => [name, interval(ci)])),
    clustering: { k: kMeansK, nmi: { ...interval(nmi), plugin: nmi.plugin, bias: nmi.bias }, ami: agreement.ami, ari: agreement.ari, purity: agreement.purity },
    perQuery,
    nmiSamples,
    clusteredIds,
    nearest,
    shards,
  }
}

/** What eval.json keeps of a model's evaluation. */
export function evalRecord({ perQuery: _p, nmiSamples: _n, clusteredIds: _c, nearest: _k, shards: _s, ...record }: ModelEval): EvalRecord {
  return record
}

/** Where a model's scores go in TensorBoard: `eval/<model>/<metric>` at `step` (the model's round; 0 for a baseline). */
export interface EvalEvents {
  model: string
  step: number
}

/** A model's name as a TensorBoard tag's part: "round 1" -> round-1, "pixels (centred)" -> pixels-centred. */
export const tagName = (name: string): string =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9@.]+/g, '-')
    .replace(/^-|-$/g, '')

const scoresOf = (r: EvalRecord) => JSON.stringify([r.metrics, r.clustering])

/**
 * Writes eval.json, and to TensorBoard (`events[i]` for `results[i]`) the
 * scores of each model that the eval.json it replaces did not already hold
 * with the same values: a rerun that finds the same scores logs nothing twice.
 */
export function writeEval(ctx: Context, results: ModelEval[], events: EvalEvents[]): void {
  const path = evalPath(ctx)
  const before = new Map(existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as EvalRecord[]).map((r) => [r.name, scoresOf(r)]) : [])
  const records = results.map(evalRecord)
  writeJsonAtomic(path, records)
  const file = runEvents(ctx.run.root)
  records.forEach((record, i) => {
    if (before.get(record.name) === scoresOf(record)) return
    const { model, step } = events[i]!
    const { nmi, ami, ari, purity } = record.clustering
    const scalars = { ...Object.fromEntries(Object.entries(record.metrics).map(([metric, m]) => [metric, m.estimate])), nmi: nmi.estimate, ami, ari, purity }
    for (const [metric, value] of Object.entries(scalars)) file.scalar(`eval/${model}/${metric}`, step, value)
  })
  file.flush()
}

export const evalPath = (ctx: Context) => join(ctx.run.root, 'eval.json')

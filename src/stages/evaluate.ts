// `nfhm eval`: each model embeds the test split (cached), the worker finds
// exact nearest neighbours, and the metrics are computed here from the
// neighbour lists and the true labels, each with a bootstrap 95% interval.
import { join } from 'node:path'
import type { ModelSpec } from '../bridge/methods.js'
import { bootstrapCIs, bootstrapStatistic, type ConfidenceInterval } from '../eval/bootstrap.js'
import { clusterAgreement, normalizedMutualInfo, contingencyTable } from '../eval/clustering.js'
import { neighborsNeeded, retrievalMetrics } from '../eval/retrieval.js'
import type { Context } from './context.js'
import type { Subset } from './data.js'
import { embedImages } from './embed.js'
import { writeJsonAtomic } from './files.js'

export interface ModelUnderTest {
  /** Row name in the tables, e.g. "random init", "round 1". */
  name: string
  spec: ModelSpec
}

export type Interval = Pick<ConfidenceInterval, 'estimate' | 'lower' | 'upper'>

export interface ModelEval {
  name: string
  model: ModelSpec
  embeddings: string
  queries: number
  excluded_queries: number
  metrics: Record<string, Interval>
  clustering: { k: number; nmi: Interval; ami: number; ari: number; purity: number }
  /** Per-query values of each metric, for paired comparisons (not written to eval.json). */
  perQuery: Record<string, Float64Array>
}

export interface EvalOptions {
  /** Seed of the bootstrap resamples: the same for every model, so they pair. */
  seed?: number
}

function interval(ci: ConfidenceInterval): Interval {
  return { estimate: ci.estimate, lower: ci.lower, upper: ci.upper }
}

export async function evaluateModel(ctx: Context, model: ModelUnderTest, test: Subset, opts: EvalOptions = {}): Promise<ModelEval> {
  const cfg = ctx.config.eval
  const embeddings = await embedImages(ctx, model.spec, test, `test (${model.name})`)
  const indexOf = new Map(Array.from(test.ids, (id, i) => [id, i]))
  const labelOf = (id: number) => test.classIds[indexOf.get(id)!]!
  // Shards keep input order, without the images that could not be read.
  const bad = new Set(embeddings.bad.map((b) => b.id))
  const order = test.ids.filter((id) => !bad.has(id))
  const labels = Int32Array.from(order, labelOf)
  const k = neighborsNeeded(labels, labels, true, [...cfg.recall_at, ...cfg.knn_k])
  const { tables } = await ctx.worker.call('search.knn', { query_shards: embeddings.shards, gallery_shards: null, k, exclude_self: true })
  const table = tables.neighbors!
  if (!(table.getChild('query_id')!.toArray() as Int32Array).every((id, i) => id === order[i])) {
    throw new Error(`neighbour lists of ${embeddings.dir} are not in embedding order`)
  }
  const rowOf = new Map(Array.from(order, (id, i) => [id, i]))
  const neighborIds = table.getChild('ids')!.data[0]!.children[0]!.values as Int32Array
  const neighbors = Int32Array.from(neighborIds, (id) => rowOf.get(id)!)
  const similarities = table.getChild('similarities')!.data[0]!.children[0]!.values as Float32Array
  const metrics = retrievalMetrics(
    { neighbors, similarities, queryLabels: labels, galleryLabels: labels, sameSet: true },
    { recallKs: cfg.recall_at, knnKs: cfg.knn_k, knnTemperature: cfg.knn_temperature },
  )
  const perQuery: Record<string, Float64Array> = {}
  for (const [K, m] of metrics.recallAtK) perQuery[`recall@${K}`] = m.values
  perQuery['map@r'] = metrics.mapAtR.values
  perQuery['r_precision'] = metrics.rPrecision.values
  for (const [K, m] of metrics.knnAccuracy) perQuery[`knn@${K}`] = m.values
  const bootstrap = { resamples: cfg.bootstrap, seed: opts.seed ?? 0 }
  const cis = bootstrapCIs(perQuery, bootstrap)

  const nClasses = new Set(labels).size
  const kMeansK = cfg.cluster_k ?? nClasses
  const { tables: clusterTables } = await ctx.worker.call('cluster.kmeans', {
    shards: embeddings.shards,
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
  const truth = Int32Array.from(assigned.getChild('id')!.toArray() as Int32Array, labelOf)
  const predicted = assigned.getChild('cluster')!.toArray() as Int32Array
  const agreement = clusterAgreement(truth, predicted)
  const nmi = bootstrapStatistic(
    truth.length,
    (draw) => normalizedMutualInfo(contingencyTable(draw.map((i) => truth[i]!), draw.map((i) => predicted[i]!))),
    bootstrap,
  )
  return {
    name: model.name,
    model: model.spec,
    embeddings: embeddings.dir,
    queries: metrics.evaluatedQueries.length,
    excluded_queries: metrics.excludedQueries,
    metrics: Object.fromEntries(Object.entries(cis).map(([name, ci]) => [name, interval(ci)])),
    clustering: { k: kMeansK, nmi: interval(nmi), ami: agreement.ami, ari: agreement.ari, purity: agreement.purity },
    perQuery,
  }
}

export function writeEval(path: string, results: ModelEval[]): void {
  writeJsonAtomic(
    path,
    results.map(({ perQuery: _, ...rest }) => rest),
  )
}

export const evalPath = (ctx: Context) => join(ctx.run.root, 'eval.json')

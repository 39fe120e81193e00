// `nfhm cluster`: faiss k-means in the worker; the pseudo-labels, their size
// statistics and (when true labels exist) their agreement with the classes.
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Config } from '../config/schema.js'
import { clusterAgreement, clusterSizeStats } from '../eval/clustering.js'
import { writeJsonAtomic } from '../run/atomic.js'
import type { Context } from '../run/context.js'
import { keyOf } from '../run/keys.js'
import type { ClusterSummary } from '../run/records.js'
import { integerHistogram, runEvents } from '../run/tensorboard.js'
import { readWorkerTable, workerFilesExist, workerPath } from '../run/worker-files.js'
import type { EmbeddingSet } from './embed.js'
import { BadInputError } from '../run/exit-codes.js'

export interface Clustering {
  summary: ClusterSummary
  /** Image ids and their cluster (pseudo-label), in embedding order. */
  ids: Int32Array
  clusters: Int32Array
  dir: string
}

/** K from cluster.k or cluster.ratio; a clear error when it cannot work. */
export function resolveK(cfg: Config['cluster'], n: number): number {
  const k = cfg.ratio !== null ? Math.round(cfg.ratio * n) : cfg.k!
  const field = cfg.ratio !== null ? `cluster.ratio = ${cfg.ratio}` : `cluster.k = ${cfg.k}`
  if (k > n) throw new BadInputError(`${field}: K=${k} is larger than the number of images to cluster (n=${n}); choose K <= ${n}`)
  if (k < 2) {
    const choose = cfg.ratio !== null ? `cluster.ratio >= ${(2 / n).toPrecision(2)}` : 'K >= 2'
    throw new BadInputError(`${field}: K=${k} for n=${n} images; K must be at least 2 (one cluster is no class to tell apart); choose ${choose}`)
  }
  return k
}

/**
 * The pseudo-labels of `embeddings` in `dir`, reused when made under the same
 * key. Made afresh, their statistics go to TensorBoard at step `round` (none:
 * a clustering outside the rounds, not logged).
 */
export async function clusterEmbeddings(
  ctx: Context,
  embeddings: EmbeddingSet,
  dir: string,
  classOf: Int32Array,
  k = resolveK(ctx.config.cluster, embeddings.rows),
  round?: number,
): Promise<Clustering> {
  const cfg = ctx.config.cluster
  const settings = { ...cfg, k, ratio: undefined }
  const key = keyOf({ embeddings: embeddings.key, settings })
  const summaryPath = join(dir, 'cluster.json')
  // The worker writes pseudo_labels.arrow and the centroids in its own copy of `dir`.
  const labelsPath = workerPath(ctx, join(dir, 'pseudo_labels.arrow'))
  if (existsSync(summaryPath) && (await workerFilesExist(ctx, [labelsPath]))[0]) {
    const summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as ClusterSummary
    if (summary.key === key) {
      const table = await readWorkerTable(ctx, labelsPath)
      ctx.say(`cluster: K=${k} (cached: ${dir})`)
      return { summary, dir, ids: table.getChild('id')!.toArray() as Int32Array, clusters: table.getChild('cluster')!.toArray() as Int32Array }
    }
  }
  rmSync(summaryPath, { force: true }) // the old summary must never vouch for new files
  ctx.say(`cluster: k-means of ${embeddings.rows.toLocaleString('en-US')} embeddings into K=${k.toLocaleString('en-US')} clusters ...`)
  const { result, tables } = await ctx.worker.call('cluster.kmeans', {
    shards: embeddings.shards,
    k,
    spherical: cfg.spherical,
    niter: cfg.niter,
    nredo: cfg.nredo,
    seed: cfg.seed,
    max_points_per_centroid: cfg.max_points_per_centroid,
    min_points_per_centroid: cfg.min_points_per_centroid,
    gpu: cfg.gpu,
    out_dir: workerPath(ctx, dir),
  })
  const assignments = tables.assignments!
  const ids = assignments.getChild('id')!.toArray() as Int32Array
  const clusters = assignments.getChild('cluster')!.toArray() as Int32Array
  const stats = clusterSizeStats(clusters, k)
  const truth = ids.map((id) => classOf[id]!)
  const summary: ClusterSummary = {
    key,
    k,
    n: result.n,
    objective: result.objective,
    seconds: result.seconds,
    gpu: result.gpu,
    trained_on: result.trained_on,
    warnings: result.warnings,
    sizes: { ...stats, histogram: { sizes: Array.from(stats.histogram.sizes), counts: Array.from(stats.histogram.counts) } },
    agreement: truth.some((c) => c < 0) ? null : clusterAgreement(truth, clusters),
  }
  writeJsonAtomic(summaryPath, summary)
  if (round !== undefined) logClusterStats(ctx, round, summary)
  for (const warning of result.warnings) ctx.warn(`cluster: ${warning}`)
  const a = summary.agreement
  ctx.say(
    `cluster: ${result.seconds.toFixed(1)} s; sizes min ${stats.min} / median ${stats.median} / max ${stats.max}, ` +
      `${stats.empty} empty, ${stats.singletons} singletons` +
      (a ? `; vs true classes NMI ${a.nmi.toFixed(3)} AMI ${a.ami.toFixed(3)} ARI ${a.ari.toFixed(3)} purity ${a.purity.toFixed(3)}` : ''),
  )
  return { summary, dir, ids, clusters }
}

/** cluster.json in TensorBoard at step `round`: the histogram of cluster sizes (cluster/size) and the scalars summing it up. */
function logClusterStats(ctx: Context, round: number, summary: ClusterSummary): void {
  const events = runEvents(ctx.run.root)
  const { sizes, agreement } = summary
  events.histogram('cluster/size', round, integerHistogram(sizes.histogram.sizes, sizes.histogram.counts))
  const scalars: Record<string, number> = {
    empty: sizes.empty,
    singletons: sizes.singletons,
    max_over_mean: sizes.maxOverMean,
    normalized_entropy: sizes.normalizedEntropy,
    objective: summary.objective,
    ...agreement,
  }
  for (const [name, value] of Object.entries(scalars)) events.scalar(`cluster/${name}`, round, value)
  events.flush()
}

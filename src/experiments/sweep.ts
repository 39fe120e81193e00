// `nfhm sweep`: how many clusters? One sub-run per (K, seed) under the
// sweep's directory (k-<K>/seed-<s>/, laid out like a run: round-1/cluster,
// round-1/train, metrics.jsonl, eval.json), made by the ordinary stages:
// - the training images are embedded once (the shared cache; each job looks
//   them up on its own worker);
// - phase 1 clusters every (K, seed): cheap, and with true labels it already
//   says how well each K recovers the classes (NMI/AMI/ARI);
// - phase 2 (sweep.train) trains one round per (K, seed) and evaluates the
//   trained model under the run's protocol (docs/evaluation.md).
// Each stage skips what exists under its key, and a finished evaluation is
// kept in job.json + per_query.arrow under a key of everything it depends
// on, so a stopped sweep resumes at the first missing piece of work.
// Seed s of K uses k-means seed cluster.seed + s and training seed
// train.seed + s.
import { existsSync, readFileSync } from 'node:fs'
import type { Config } from '../config/schema.js'
import { clusterEmbeddings, resolveK, type Clustering } from '../recipe/cluster.js'
import { embedImages } from '../recipe/embed.js'
import { evalRecord, evaluateModel, writeEval, type ModelEval } from '../recipe/evaluate.js'
import { imagesKey, prepareImages, subset, type ImageList } from '../recipe/images.js'
import { baselineModels, checkTraining, initialModel } from '../recipe/pipeline.js'
import { requireEvaluationSets, type EvalSets } from '../recipe/protocol.js'
import { TEST, TRAIN } from '../recipe/split.js'
import { trainRound } from '../recipe/train.js'
import { readArrowFile, tableOf, writeArrowFile } from '../run/arrow.js'
import { writeJsonAtomic } from '../run/atomic.js'
import type { Context } from '../run/context.js'
import { keyOf } from '../run/keys.js'
import type { ClusterSummary, EvalRecord, TrainSummary } from '../run/records.js'
import { RunDir, type Manifest } from '../run/run-dir.js'
import { timeStage } from '../run/stage-times.js'
import { BOOTSTRAP_SEED, retrievalMetricKeys } from './comparable.js'
import { runJobs, type PoolWorker } from './worker-pool.js'
import { BadInputError } from '../run/exit-codes.js'

/** Whole-set agreement of a clustering with the classes (no per-query values). */
export const AGREEMENT_METRICS = ['nmi', 'ami', 'ari'] as const

export type SweepSettings = Config['sweep']

export interface SweepPlan {
  /** Ascending. */
  ks: number[]
  /** K / N of each K when the sweep was given as ratios (the report's x axis then); null when given as K. */
  ratios: number[] | null
  seeds: number
  train: boolean
  /** A retrieval metric key (map@r, recall@1, ...) or an agreement metric (nmi, ami, ari). */
  metric: string
}

export interface SweepRun {
  k: number
  seed: number
  kmeans_seed: number
  train_seed: number | null
  /** Sub-run directory, relative to the sweep's. */
  dir: string
  cluster: ClusterSummary
  train: Pick<TrainSummary, 'key' | 'steps' | 'epochs' | 'seconds' | 'images_per_s' | 'epoch_loss' | 'model'> | null
  eval: EvalRecord | null
}

export interface SweepResult {
  plan: SweepPlan
  images: { train: number; test: number; classes: number }
  /** Images clustered (training images that could be read): the N of K/N. */
  clustered: number
  runs: SweepRun[]
  /** Per-query metric values of each run's trained model, by run dir. */
  perQuery: Map<string, Record<string, Float64Array>>
  baselines: ModelEval[]
}

/** Checks the settings and turns ratios into K for N clustered images. */
export function planSweep(settings: SweepSettings, evalConfig: Config['eval'], clusterConfig: Config['cluster'], n: number): SweepPlan {
  if ((settings.k === null) === (settings.ratio === null)) throw new BadInputError('sweep: give the K values (--k 300,1000) or the ratios K/N (--ratio 0.01,0.03), one of the two')
  const metric = settings.metric ?? (settings.train ? 'map@r' : 'ami')
  const retrieval = retrievalMetricKeys(evalConfig)
  if (!retrieval.includes(metric) && !(AGREEMENT_METRICS as readonly string[]).includes(metric)) {
    throw new BadInputError(`sweep: unknown metric "${metric}"; choose one of ${[...retrieval, ...AGREEMENT_METRICS].join(', ')}`)
  }
  if (retrieval.includes(metric) && !settings.train) {
    throw new BadInputError(`sweep: the metric ${metric} is measured on trained models: add --train, or judge K by ${AGREEMENT_METRICS.join('/')}`)
  }
  const given = settings.k ?? settings.ratio!
  const ks = given.map((value) => {
    try {
      return settings.k ? resolveK({ ...clusterConfig, k: value, ratio: null }, n) : resolveK({ ...clusterConfig, ratio: value }, n)
    } catch (e) {
      throw new BadInputError(`sweep: ${(e as Error).message}`)
    }
  })
  const order = ks.map((k, i) => [k, i] as const).sort((a, b) => a[0] - b[0])
  for (let i = 1; i < order.length; i++) {
    if (order[i]![0] === order[i - 1]![0]) {
      throw new BadInputError(`sweep: ${given[order[i - 1]![1]]} and ${given[order[i]![1]]} both give K=${order[i]![0]} for ${n} images`)
    }
  }
  return {
    ks: order.map(([k]) => k),
    ratios: settings.ratio ? order.map(([, i]) => settings.ratio![i]!) : null,
    seeds: settings.seeds,
    train: settings.train,
    metric,
  }
}

export const runDirOf = (k: number, seed: number): string => `k-${k}/seed-${seed}`

/** The sub-run's context: its own directory, config (K and seeds) and manifest, on the given worker. */
function subRun(ctx: Context, worker: PoolWorker, k: number, seed: number): Context {
  const config: Config = {
    ...ctx.config,
    rounds: 1,
    cluster: { ...ctx.config.cluster, k, ratio: null, seed: ctx.config.cluster.seed + seed },
    train: { ...ctx.config.train, seed: ctx.config.train.seed + seed },
    worker: worker.config,
  }
  const run = new RunDir(ctx.run.path(runDirOf(k, seed)))
  const existing = run.readManifest()
  const manifest: Manifest = {
    ...ctx.manifest,
    config,
    created: existing?.created ?? new Date().toISOString(),
    stages: existing?.stages ?? {},
    skipped_images: existing?.skipped_images ?? [],
    worker: { transport: worker.transport, pid: worker.pid, name: worker.name },
    sweep: { root: ctx.run.root, k, seed, kmeans_seed: config.cluster.seed, train_seed: config.train.seed },
  }
  run.writeManifest(manifest)
  const tag = `[K=${k} seed ${seed}]`
  return {
    ...ctx,
    config,
    run,
    worker: worker.worker,
    device: worker.device,
    manifest,
    say: (message) => ctx.say(`${tag} ${message}`),
    warn: (message) => ctx.warn(`${tag} ${message}`),
  }
}

interface Job {
  k: number
  seed: number
}

interface JobRecord {
  key: string
  eval: EvalRecord
}

const PER_QUERY = 'per_query.arrow'

export function readPerQuery(dir: string): Record<string, Float64Array> {
  const table = readArrowFile(`${dir}/${PER_QUERY}`)
  return Object.fromEntries(table.schema.fields.map((f) => [f.name, table.getChild(f.name)!.toArray() as Float64Array]))
}

/**
 * The clusters of a sub-run. The training images' embeddings are looked up
 * on the sub-run's worker: a cache hit where the workers share the runs
 * folder, embedded afresh on a worker with a folder of its own.
 */
async function clusterAt(sub: Context, images: ImageList, job: Job): Promise<Clustering> {
  const embeddings = await embedImages(sub, initialModel(sub), subset(images, TRAIN), 'train')
  return clusterEmbeddings(sub, embeddings, sub.run.path('round-1', 'cluster'), images.classIds, job.k, 1)
}

function runRecord(sub: Context, job: Job, cluster: ClusterSummary): SweepRun {
  return {
    k: job.k,
    seed: job.seed,
    kmeans_seed: sub.config.cluster.seed,
    train_seed: null,
    dir: runDirOf(job.k, job.seed),
    cluster,
    train: null,
    eval: null,
  }
}

/** Train one round at K and evaluate the model; a finished evaluation under the same key is reused. */
async function trainAndEvaluate(sub: Context, images: ImageList, sets: EvalSets, job: Job): Promise<SweepRun> {
  const clustering = await clusterAt(sub, images, job)
  const train = () => trainRound(sub, { round: 1, model: initialModel(sub), paths: images.paths, clustering, restart: false })
  const training = await timeStage(sub, 'train.round-1', train, (t) => t.key)
  const key = keyOf({
    train: training.key,
    test: [await imagesKey(sub, sets.queries), sets.gallery && (await imagesKey(sub, sets.gallery))],
    eval: sub.config.eval,
    // recipe/evaluate.ts k-means the evaluated embeddings with the run's k-means settings.
    cluster: sub.config.cluster,
    bootstrap: BOOTSTRAP_SEED,
  })
  const recordPath = sub.run.path('job.json')
  const record = existsSync(recordPath) ? (JSON.parse(readFileSync(recordPath, 'utf8')) as JobRecord) : undefined
  let stored: EvalRecord
  if (record?.key === key && existsSync(sub.run.path(PER_QUERY))) {
    sub.say(`eval: done (cached: ${sub.run.root})`)
    stored = record.eval
  } else {
    const model = { ...initialModel(sub), weights: training.model }
    const result = await evaluateModel(sub, { name: `K=${job.k} seed ${job.seed}`, spec: model }, sets, { seed: BOOTSTRAP_SEED })
    const evaluation = evalRecord(result)
    // The sub-run's round-1 model: its tags line up with every other run's.
    writeEval(sub, [result], [{ model: 'round-1', step: 1 }])
    writeArrowFile(sub.run.path(PER_QUERY), tableOf(result.perQuery))
    writeJsonAtomic(recordPath, { key, eval: evaluation } satisfies JobRecord) // last: it vouches for the files above
    stored = evaluation
  }
  const { steps, epochs, seconds, images_per_s, epoch_loss } = training
  return {
    ...runRecord(sub, job, clustering.summary),
    train_seed: sub.config.train.seed,
    train: { key: training.key, steps, epochs, seconds, images_per_s, epoch_loss, model: training.model },
    eval: stored,
  }
}

export interface SweepHooks {
  /** Called with the clustering-only results, before any training starts. */
  afterClustering?(result: SweepResult): Promise<void>
}

export async function runSweep(ctx: Context, settings: SweepSettings, pool: readonly PoolWorker[], hooks: SweepHooks = {}): Promise<SweepResult> {
  if (ctx.config.rounds !== 1) ctx.warn(`the sweep trains one round per K; rounds = ${ctx.config.rounds} is ignored`)
  // With --train, the train.* settings nfhm run refuses are refused here too, before any stage.
  const images = await prepareImages(ctx, async (list) => {
    if (!settings.train) return
    requireEvaluationSets(ctx.config, list, 'sweep')
    const { result: model } = await ctx.worker.call('model.describe', { model: initialModel(ctx) })
    checkTraining(ctx, model, subset(list, TRAIN).ids.length)
  })
  if (images.classNames.length === 0) {
    throw new BadInputError('sweep: K is judged against the true classes, and these images have none: set data.label_column (or use an image-folder tree)')
  }
  const sets = settings.train ? requireEvaluationSets(ctx.config, images, 'sweep') : null
  const embeddings = await embedImages(ctx, initialModel(ctx), subset(images, TRAIN), 'train')
  const plan = planSweep(settings, ctx.config.eval, ctx.config.cluster, embeddings.rows)
  const jobs: Job[] = plan.ks.flatMap((k) => Array.from({ length: plan.seeds }, (_, seed) => ({ k, seed })))
  ctx.say(
    `sweep: K = ${plan.ks.join(', ')} x ${plan.seeds} seed(s) on ${pool.length} worker(s); ` +
      (plan.train ? `training and evaluating each, judged by ${plan.metric}` : `clustering only, judged by ${plan.metric}`),
  )
  const result: SweepResult = {
    plan,
    images: { train: subset(images, TRAIN).ids.length, test: subset(images, TEST).ids.length, classes: images.classNames.length },
    clustered: embeddings.rows,
    runs: [],
    perQuery: new Map(),
    baselines: [],
  }
  result.runs = await runJobs(pool, jobs, async (worker, job) => {
    const sub = subRun(ctx, worker, job.k, job.seed)
    return runRecord(sub, job, (await clusterAt(sub, images, job)).summary)
  })
  if (!plan.train || !sets) return result
  await hooks.afterClustering?.(result)

  for (const model of await baselineModels(ctx, images)) result.baselines.push(await evaluateModel(ctx, model, sets, { seed: BOOTSTRAP_SEED }))
  result.runs = await runJobs(pool, jobs, (worker, job) => trainAndEvaluate(subRun(ctx, worker, job.k, job.seed), images, sets, job))
  for (const run of result.runs) result.perQuery.set(run.dir, readPerQuery(ctx.run.path(run.dir)))
  return result
}

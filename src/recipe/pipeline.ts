// The recipe end to end: images -> (embed -> cluster -> train) x rounds ->
// evaluate. Every stage is skipped when its output exists under the same key.
import { join } from 'node:path'
import type { z } from 'zod'
import type { ModelSpec, WorkerMethods } from '../bridge/methods.js'
import type { EvalPictures } from '../report/pictures.js'
import type { Context } from '../run/context.js'
import type { TrainSummary } from '../run/records.js'
import { timeStage } from '../run/stage-times.js'
import { clusterEmbeddings, resolveK, type Clustering } from './cluster.js'
import { findBadImages, prepareImages, subset, type ImageList, type Subset } from './images.js'
import { acceptBadImages, BadImagesError, embedImages } from './embed.js'
import { evaluateModel, tagName, writeEval, type ModelEval, type ModelUnderTest } from './evaluate.js'
import { evaluationPictures } from './pictures.js'
import { evaluatedCount, evaluationSets, noLabels } from './protocol.js'
import { addVersus } from './versus.js'
import { TEST, TRAIN } from './split.js'
import { workerFilesExist, workerPath } from '../run/worker-files.js'
import { trainRound } from './train.js'
import { BadInputError } from '../run/exit-codes.js'

type ModelDescription = z.output<WorkerMethods['model.describe']['result']>

export interface PipelineOptions {
  /** Last stage to run. */
  until: 'embed' | 'cluster' | 'train' | 'eval'
  restart: boolean
}

export interface RoundResult {
  round: number
  clustering: Clustering
  training: TrainSummary | null
  model: ModelSpec
}

export interface PipelineResult {
  images: ImageList
  rounds: RoundResult[]
  evaluation: ModelEval[]
  pictures: EvalPictures | null
}

export function initialModel(ctx: Context): ModelSpec {
  return { ...ctx.config.model }
}

/** What the config asks of the model and these images, checked before the run writes anything. */
async function checkPlan(ctx: Context, images: ImageList, until: PipelineOptions['until']): Promise<void> {
  // Loading the model refuses weights of another family or size and an image size it cannot take.
  const { result: model } = await ctx.worker.call('model.describe', { model: initialModel(ctx) })
  if (until === 'embed') return
  const nTrain = subset(images, TRAIN).ids.length
  resolveK(ctx.config.cluster, nTrain)
  if (until === 'cluster') return
  checkTraining(ctx, model, nTrain)
  if (until === 'train') return
  // A query or gallery filter that picks nothing throws here.
  const sets = evaluationSets(ctx.config, images)
  const k = ctx.config.eval.cluster_k
  const n = sets ? evaluatedCount(sets) : 0
  if (sets && k !== null && k > n) throw new BadInputError(`eval.cluster_k = ${k}: larger than the number of evaluated images (${n}); choose eval.cluster_k <= ${n}`)
}

/** What train.* asks of the model (as the worker describes it) and of `nTrain` training images. */
export function checkTraining(ctx: Context, model: ModelDescription, nTrain: number): void {
  const batch = ctx.config.train.batch_size
  if (nTrain < batch) throw new BadInputError(`train.batch_size = ${batch}: the ${nTrain} training images cannot fill one batch; choose train.batch_size <= ${nTrain}`)
  if (batch < model.min_train_batch) {
    throw new BadInputError(`train.batch_size = ${batch}: ${ctx.config.model.name} has BatchNorm layers, which need at least ${model.min_train_batch} images per step; choose train.batch_size >= ${model.min_train_batch}`)
  }
  const a = ctx.config.train.augment
  if (a.crop_scale[0] === 1 && a.hflip_prob === 0 && a.randaug_ops === 0 && a.erasing_prob === 0) {
    // Measured on Fashion-MNIST with a frozen pretrained trunk: MAP@R 0.297 -> 0.094 (docs/compute-core.md).
    ctx.warn('train.augment is off: without augmentation cluster discrimination tends to memorise the pseudo-labels and lose the true classes; crops and flips are what teach invariance')
  }
  const freeze = ctx.config.train.freeze
  if (freeze > 0 && model.blocks === null) throw new BadInputError(`train.freeze = ${freeze}: ${ctx.config.model.name} cannot be partly frozen; use train.freeze = 0`)
  if (model.blocks !== null && freeze > model.blocks) {
    throw new BadInputError(`train.freeze = ${freeze}: ${ctx.config.model.name} has ${model.blocks} blocks; choose train.freeze between 0 and ${model.blocks}`)
  }
}

export async function runPipeline(ctx: Context, opts: PipelineOptions): Promise<PipelineResult> {
  const images = await prepareImages(ctx, (list) => checkPlan(ctx, list, opts.until))
  const train = subset(images, TRAIN)
  // Evaluation reads the test images only after training. Decode them now, so
  // that a bad one stops the run before any training, listed with the rest.
  const testOnly = subset(images, TEST, (i) => (images.split[i]! & TRAIN) === 0)
  const testBad = opts.until === 'eval' ? await findBadImages(ctx, testOnly) : []
  const rounds: RoundResult[] = []
  let model = initialModel(ctx)
  for (let round = 1; round <= ctx.config.rounds; round++) {
    const embedStage = () => embedImages(ctx, model, train, `train (round ${round})`)
    const embeddings = await timeStage(ctx, `embed.round-${round}`, embedStage, (e) => e.key).catch((e: unknown) => {
      throw e instanceof BadImagesError ? new BadImagesError([...e.bad, ...testBad]) : e
    })
    if (round === 1) acceptBadImages(ctx, testBad)
    if (opts.until === 'embed') return { images, rounds, evaluation: [], pictures: null }
    const clusterStage = () => clusterEmbeddings(ctx, embeddings, ctx.run.path(`round-${round}`, 'cluster'), images.classIds, undefined, round)
    const clustering = await timeStage(ctx, `cluster.round-${round}`, clusterStage, (c) => c.summary.key)
    if (opts.until === 'cluster') return { images, rounds: [{ round, clustering, training: null, model }], evaluation: [], pictures: null }
    const stepsBefore = rounds.reduce((steps, r) => steps + r.training!.steps, 0)
    const trainStage = () => trainRound(ctx, { round, model, paths: images.paths, clustering, restart: opts.restart, stepsBefore })
    const training = await timeStage(ctx, `train.round-${round}`, trainStage, (t) => t.key)
    model = { ...model, weights: training.model }
    rounds.push({ round, clustering, training, model })
  }
  if (opts.until === 'train') return { images, rounds, evaluation: [], pictures: null }
  const { evaluation, pictures } = await timeStage(ctx, 'eval', () => evaluateAll(ctx, images, rounds))
  return { images, rounds, evaluation, pictures }
}

/** The models of a run, baselines first, under the run's protocol, and the report's pictures of the last; none when no evaluated image has a label. */
async function evaluateAll(ctx: Context, images: ImageList, rounds: RoundResult[]): Promise<{ evaluation: ModelEval[]; pictures: EvalPictures | null }> {
  const sets = evaluationSets(ctx.config, images)
  if (!sets) {
    ctx.manifest.evaluation = { skipped: noLabels(ctx.config) }
    ctx.warn(`eval: skipped: ${noLabels(ctx.config)}`)
    return { evaluation: [], pictures: null }
  }
  ctx.manifest.evaluation = sets.protocol
  const models = await baselineModels(ctx, images)
  const baselines = models.length
  for (const r of rounds) models.push({ name: `round ${r.round}`, spec: r.model })
  const seed = 0
  const results: ModelEval[] = []
  for (const model of models) results.push(await evaluateModel(ctx, model, sets, { seed }))
  addVersus(results, baselines, { resamples: ctx.config.eval.bootstrap, seed })
  writeEval(
    ctx,
    results,
    models.map((m, i) => ({ model: tagName(m.name), step: i < baselines ? 0 : rounds[i - baselines]!.round })),
  )
  return { evaluation: results, pictures: await evaluationPictures(ctx, images, results, baselines, seed) }
}

/** Pixel baselines compare images this small (or the model's input size, if smaller): tiny images keep the vectors short. */
export const PIXEL_BASELINE_SIZE = 32

/**
 * The reference models of eval.baselines: the starting model, and raw pixels
 * as plain intensities and/or centred on the mean of the training images.
 */
export async function baselineModels(ctx: Context, images: ImageList): Promise<ModelUnderTest[]> {
  const initial = initialModel(ctx)
  const baselines = ctx.config.eval.baselines
  const models: ModelUnderTest[] = []
  if (baselines.includes('initial')) models.push({ name: initial.weights ? 'pretrained' : 'random init', spec: initial })
  if (!baselines.includes('pixels') && !baselines.includes('pixels-centred')) return models
  const { result } = await ctx.worker.call('model.describe', { model: initial })
  const pixels = { loader: 'nfhm.core.pixels:load', name: `pixels@${Math.min(result.image_size, PIXEL_BASELINE_SIZE)}`, weights: null, image_size: null, embedding_size: null }
  if (baselines.includes('pixels')) models.push({ name: 'pixels', spec: pixels })
  if (baselines.includes('pixels-centred')) {
    models.push({ name: 'pixels (centred)', spec: { ...pixels, weights: await pixelMean(ctx, pixels, subset(images, TRAIN)) } })
  }
  return models
}

/** The worker path of the mean pixel vector of the training images (computed once per image list). */
async function pixelMean(ctx: Context, pixels: ModelSpec, train: Subset): Promise<string> {
  const embeddings = await embedImages(ctx, pixels, train, 'train (pixels)')
  const out = workerPath(ctx, join(embeddings.dir, 'mean.npy'))
  const [exists] = await workerFilesExist(ctx, [out])
  if (!exists) await ctx.worker.call('embed.mean', { shards: embeddings.shards, out })
  return out
}

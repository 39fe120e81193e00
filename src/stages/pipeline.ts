// The recipe end to end: images -> (embed -> cluster -> train) x rounds ->
// evaluate. Every stage is skipped when its output exists under the same key.
import type { ModelSpec } from '../bridge/methods.js'
import { clusterEmbeddings, type Clustering } from './cluster.js'
import type { Context } from './context.js'
import { prepareImages, subset, type ImageList } from './data.js'
import { embedImages } from './embed.js'
import { evaluateModel, writeEval, evalPath, type ModelEval, type ModelUnderTest } from './evaluate.js'
import { TEST, TRAIN } from './split.js'
import { trainRound, type TrainSummary } from './train.js'

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
}

export function initialModel(ctx: Context): ModelSpec {
  const m = ctx.config.model
  return { loader: m.loader, name: m.name, weights: m.weights, image_size: m.image_size }
}

export async function runPipeline(ctx: Context, opts: PipelineOptions): Promise<PipelineResult> {
  const images = await prepareImages(ctx)
  const train = subset(images, TRAIN)
  const rounds: RoundResult[] = []
  let model = initialModel(ctx)
  for (let round = 1; round <= ctx.config.rounds; round++) {
    const embeddings = await embedImages(ctx, model, train, `train (round ${round})`)
    if (opts.until === 'embed') return { images, rounds, evaluation: [] }
    const clustering = await clusterEmbeddings(ctx, embeddings, ctx.run.path(`round-${round}`, 'cluster'), images.classIds)
    if (opts.until === 'cluster') return { images, rounds: [{ round, clustering, training: null, model }], evaluation: [] }
    const training = await trainRound(ctx, { round, model, paths: images.paths, clustering, restart: opts.restart })
    model = { ...model, weights: training.model }
    rounds.push({ round, clustering, training, model })
  }
  if (opts.until === 'train') return { images, rounds, evaluation: [] }
  const evaluation = await evaluateAll(ctx, images, rounds)
  return { images, rounds, evaluation }
}

/** The models of a run, baselines first, under one protocol on the test split. */
async function evaluateAll(ctx: Context, images: ImageList, rounds: RoundResult[]): Promise<ModelEval[]> {
  const test = subset(images, TEST)
  if (test.ids.length === 0) throw new Error('the test split is empty: set data.split to hold out images for evaluation')
  const initial = initialModel(ctx)
  const models: ModelUnderTest[] = []
  for (const baseline of ctx.config.eval.baselines) {
    if (baseline === 'initial') models.push({ name: initial.weights ? 'pretrained' : 'random init', spec: initial })
    if (baseline === 'pixels') {
      const { result } = await ctx.worker.call('model.describe', { model: initial })
      models.push({ name: 'raw pixels', spec: { loader: 'nfhm.pixels:load', name: `pixels@${result.image_size}`, weights: null, image_size: null } })
    }
  }
  for (const r of rounds) models.push({ name: `round ${r.round}`, spec: r.model })
  const results: ModelEval[] = []
  for (const model of models) results.push(await evaluateModel(ctx, model, test))
  writeEval(evalPath(ctx), results)
  return results
}

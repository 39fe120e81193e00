// `nfhm compare`: models from run directories and checkpoint files (and the
// config's baselines) evaluated under one protocol on one test split, with
// the best model per retrieval metric marked where it stands clear.
//
// "Stands clear" = its 95% interval does not overlap the runner-up's. That
// is stricter than the paired test (two overlapping intervals can still
// differ significantly), so a mark is never a fluke of one resample; the
// paired bootstrap difference to the runner-up (same queries, same
// resamples) is kept in compare.json beside it for the finer question.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import type { ModelSpec } from '../bridge/methods.js'
import type { Config } from '../config/schema.js'
import { pairedBootstrap } from '../eval/bootstrap.js'
import { evalRecord, evaluateModel, type ModelEval } from '../recipe/evaluate.js'
import { prepareImages, splitFlag, type ImageList } from '../recipe/images.js'
import { baselineModels } from '../recipe/pipeline.js'
import { evaluatedCount, requireEvaluationSets } from '../recipe/protocol.js'
import { TEST, TRAIN } from '../recipe/split.js'
import { addVersus } from '../recipe/versus.js'
import { readArrowFile } from '../run/arrow.js'
import type { Context } from '../run/context.js'
import type { EvalRecord, Interval, TrainSummary } from '../run/records.js'
import { RunDir } from '../run/run-dir.js'
import { BOOTSTRAP_SEED, retrievalMetricKeys } from './comparable.js'
import { BadInputError } from '../run/exit-codes.js'

export interface CompareInput {
  /** Row name: the argument as given. */
  name: string
  source: string
  kind: 'run' | 'checkpoint'
  spec: ModelSpec
  /** A run's images.arrow (its sweep's, for a sweep's sub-run): the images it trained on; null when it has none. */
  imageList: string | null
}

/**
 * The model of a run directory's last trained round: the file beside its
 * train.json (found there even if the run was moved), else the path
 * train.json records (a remote worker's copy, on the worker's machine).
 */
function trainedModelOf(dir: string, rounds: number): string {
  for (let round = rounds; round >= 1; round--) {
    const summaryPath = join(dir, `round-${round}`, 'train', 'train.json')
    if (!existsSync(summaryPath)) continue
    const recorded = (JSON.parse(readFileSync(summaryPath, 'utf8')) as TrainSummary).model
    const beside = join(dirname(summaryPath), basename(recorded))
    return existsSync(beside) ? beside : recorded
  }
  throw new BadInputError(`${dir} holds no trained model (no round-*/train/train.json): train it first`)
}

/**
 * A run directory's last trained model, or a checkpoint file loaded as the
 * config's model. Checked before any worker starts, so a typo fails at once.
 */
export function resolveInput(config: Config, arg: string): CompareInput {
  const path = resolve(arg)
  const name = arg.replace(/\/+$/, '')
  if (!existsSync(path)) throw new BadInputError(`${arg}: no such run directory or checkpoint`)
  if (statSync(path).isFile()) {
    return { name, source: path, kind: 'checkpoint', spec: { ...config.model, weights: path }, imageList: null }
  }
  if (existsSync(join(path, 'sweep.json'))) {
    throw new BadInputError(`${arg} is a sweep: pass its sub-runs, e.g. ${join(arg, 'k-1000', 'seed-0')}`)
  }
  const manifest = new RunDir(path).readManifest()
  if (!manifest) throw new BadInputError(`${arg} is not a run directory (no manifest.json)`)
  const own = manifest.config as Config
  // Runs made before model.embedding_size existed have none in their manifest.
  const spec = { ...own.model, embedding_size: own.model.embedding_size ?? null, weights: trainedModelOf(path, own.rounds) }
  const sweep = manifest.sweep as { root: string } | undefined
  const imageList = [join(path, 'images.arrow'), ...(sweep ? [join(sweep.root, 'images.arrow')] : [])].find((file) => existsSync(file)) ?? null
  return { name, source: path, kind: 'run', spec, imageList }
}

/** Every argument resolved, each named once. */
export function resolveInputs(config: Config, args: readonly string[]): CompareInput[] {
  if (args.length === 0) throw new BadInputError('compare: name at least one run directory or checkpoint')
  const inputs = args.map((arg) => resolveInput(config, arg))
  const names = inputs.map((i) => i.name)
  const duplicate = names.find((n, i) => names.indexOf(n) !== i)
  if (duplicate) throw new BadInputError(`compare: ${duplicate} is named twice`)
  return inputs
}

/**
 * A warning when a run trained on other images than this comparison's
 * training split: some of them may be its test images. Only the images
 * count, not the data settings: a run whose settings differ in a way that
 * leaves them the same (the label column renamed, say) is not flagged.
 */
export function trainingDataWarning(input: CompareInput, images: Pick<ImageList, 'paths' | 'split'>): string | null {
  if (input.kind !== 'run') return null
  if (input.imageList === null) return `${input.name}: no images.arrow says which images it was trained on; they may overlap the test split`
  const splitOf = new Map(images.paths.map((path, i) => [path, images.split[i]!]))
  const list = readArrowFile(input.imageList)
  const paths = list.getChild('path')!.toArray() as string[]
  const splits = list.getChild('split')!.toArray() as string[]
  let trained = 0
  let shared = 0
  let tested = 0
  paths.forEach((path, i) => {
    if (!(splitFlag(splits[i]!) & TRAIN)) return
    trained++
    const here = splitOf.get(path) ?? 0
    if (here & TRAIN) shared++
    if (here & TEST) tested++
  })
  const ownTrained = images.split.reduce((n, s) => n + (s & TRAIN ? 1 : 0), 0)
  if (shared === trained && trained === ownTrained) return null
  return (
    `${input.name} was trained on other images than this comparison's training split: ` +
    `${tested.toLocaleString('en-US')} of its ${trained.toLocaleString('en-US')} training images are test images here`
  )
}

export interface BestMark {
  /** Highest estimate. */
  model: string
  runner_up: string | null
  /** Its interval lies above the runner-up's: the model is marked best. */
  marked: boolean
  /** best - runner-up on the same queries (paired bootstrap). */
  difference: Interval | null
}

/** Per metric: the highest estimate, marked only where its interval does not overlap the runner-up's. */
export function markBest(evals: readonly ModelEval[], metrics: readonly string[], resamples: number): Record<string, BestMark> {
  return Object.fromEntries(
    metrics.map((metric) => {
      const ranked = evals.filter((e) => e.metrics[metric]).sort((a, b) => b.metrics[metric]!.estimate - a.metrics[metric]!.estimate)
      const [best, second] = ranked
      if (!best) throw new Error(`no model has ${metric}`)
      if (!second) return [metric, { model: best.name, runner_up: null, marked: false, difference: null }]
      const d = pairedBootstrap(best.perQuery[metric]!, second.perQuery[metric]!, { resamples, seed: BOOTSTRAP_SEED })
      return [
        metric,
        {
          model: best.name,
          runner_up: second.name,
          marked: best.metrics[metric]!.lower > second.metrics[metric]!.upper,
          difference: { estimate: d.estimate, lower: d.lower, upper: d.upper },
        },
      ]
    }),
  )
}

export interface CompareModel extends EvalRecord {
  source: string | null
  kind: 'baseline' | CompareInput['kind']
}

export interface Comparison {
  name: string
  test: { images: number; queries: number }
  bootstrap: { resamples: number; seed: number; confidence: number }
  metrics: string[]
  models: CompareModel[]
  best: Record<string, BestMark>
}

export async function compareModels(ctx: Context, inputs: readonly CompareInput[]): Promise<Comparison> {
  const images = await prepareImages(ctx, (list) => void requireEvaluationSets(ctx.config, list, 'compare'))
  const sets = requireEvaluationSets(ctx.config, images, 'compare')
  for (const input of inputs) {
    const warning = trainingDataWarning(input, images)
    if (warning) ctx.warn(warning)
  }
  const baselines = await baselineModels(ctx, images)
  const models = [
    ...baselines.map((b) => ({ ...b, source: null, kind: 'baseline' as const })),
    ...inputs.map((i) => ({ name: i.name, spec: i.spec, source: i.source, kind: i.kind })),
  ]
  const evals: ModelEval[] = []
  for (const model of models) evals.push(await evaluateModel(ctx, model, sets, { seed: BOOTSTRAP_SEED }))
  addVersus(evals, baselines.length, { resamples: ctx.config.eval.bootstrap, seed: BOOTSTRAP_SEED })
  const queries = new Set(evals.map((e) => e.queries))
  if (queries.size !== 1) throw new Error(`compare: the models scored different numbers of test queries (${[...queries].join(', ')}); are some images unreadable for one of them?`)
  const metrics = retrievalMetricKeys(ctx.config.eval)
  return {
    name: ctx.config.name,
    test: { images: evaluatedCount(sets), queries: evals[0]!.queries },
    bootstrap: { resamples: ctx.config.eval.bootstrap, seed: BOOTSTRAP_SEED, confidence: 0.95 },
    metrics,
    models: evals.map((e, i) => ({ ...evalRecord(e), source: models[i]!.source, kind: models[i]!.kind })),
    best: markBest(evals, metrics, ctx.config.eval.bootstrap),
  }
}

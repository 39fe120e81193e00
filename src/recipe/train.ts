// `nfhm train`: the backbone and the PartialFC_V2 head on the pseudo-labels.
// The schedule (OneCycle, lr and AdamW's beta1 per step) is computed here and
// sent with each chunk of steps; every step's loss and lr go to metrics.jsonl;
// checkpoints are atomic, every N steps and at each epoch end, and a rerun
// continues from the last one exactly.
//
// trainRound is the round in order: a finished training under the same key is
// reused; else the worker's training opens (from the last checkpoint of this
// key unless restarted), the steps run in chunks, and the model is exported.
// Each chunk's steps also go to TensorBoard (train/*), numbered after the
// earlier rounds' steps so that the rounds follow each other on one axis.
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { z } from 'zod'
import type { ModelSpec, WorkerMethods } from '../bridge/methods.js'
import { oneCycle, type OneCycleSchedule } from '../schedule/onecycle.js'
import { tableOf } from '../run/arrow.js'
import { appendToFile, writeFileAtomic, writeJsonAtomic } from '../run/atomic.js'
import { resolvePrecision, type Context } from '../run/context.js'
import { keyOf } from '../run/keys.js'
import { Progress } from '../run/progress.js'
import { readMetrics, type StepRecord, type TrainSummary } from '../run/records.js'
import { runEvents, type EventFile } from '../run/tensorboard.js'
import { workerFilesExist, workerPath } from '../run/worker-files.js'
import type { Clustering } from './cluster.js'
import { LossHealth, TrainingDivergedError } from './loss-health.js'

export interface TrainOptions {
  round: number
  model: ModelSpec
  /** Image path by id. */
  paths: string[]
  clustering: Clustering
  /** Drop an unfinished training of this round and start it again. */
  restart: boolean
  /** The training steps of the earlier rounds (default 0): in TensorBoard this round's step s is step stepsBefore + s. */
  stepsBefore?: number
}

/** checkpoint.json: which training the checkpoint belongs to, and its step. */
interface CheckpointRecord {
  key: string
  step: number
  path: string
}

/** One round's training: its key, and its files (the records here, the checkpoint where the worker is). */
interface RoundTraining {
  round: number
  key: string
  dir: string
  summaryPath: string
  /** On the worker's machine. */
  checkpointPath: string
  checkpointRecordPath: string
  metricsPath: string
  events: EventFile
  stepsBefore: number
  /** Steps before this one are recorded already, in metrics.jsonl and TensorBoard (a resumed training redoes them). */
  loggedUntil: number
}

/** The worker's training as train.start opened it, and the schedule of all its steps. */
interface OpenTraining {
  stepsPerEpoch: number
  startStep: number
  total: number
  schedule: OneCycleSchedule
}

type StepsResult = z.output<WorkerMethods['train.steps']['result']>

export async function trainRound(ctx: Context, opts: TrainOptions): Promise<TrainSummary> {
  const cfg = ctx.config.train
  const { round } = opts
  const dir = ctx.run.path(`round-${round}`, 'train')
  const precision = resolvePrecision(ctx, cfg.precision)
  // Neither the chunking nor the export formats change the trained model (and keys from before train.export stay valid).
  const key = keyOf({ model: opts.model, clustering: opts.clustering.summary.key, train: { ...cfg, chunk_steps: undefined, export: undefined }, precision })
  const summaryPath = join(dir, 'train.json')
  const finished = await finishedTraining(ctx, summaryPath, key)
  if (finished) {
    ctx.say(`train round ${round}: done (cached: ${dir})`)
    return finished
  }
  rmSync(summaryPath, { force: true })
  const training: RoundTraining = {
    round,
    key,
    dir,
    summaryPath,
    // Checkpoints and the trained model are written where the worker is; the records stay here.
    checkpointPath: workerPath(ctx, join(dir, 'checkpoint.pt')),
    checkpointRecordPath: join(dir, 'checkpoint.json'),
    metricsPath: ctx.run.path('metrics.jsonl'),
    events: runEvents(ctx.run.root),
    stepsBefore: opts.stepsBefore ?? 0,
    loggedUntil: 0,
  }
  const resume = await resumePoint(ctx, training, opts.restart)
  const open = await openTraining(ctx, opts, precision, resume)
  // A resume redoes the steps after its checkpoint exactly, so the records of
  // those steps (in metrics.jsonl and TensorBoard) stand and are not written
  // twice; kept rather than dropped, a second kill before they are redone
  // still finds them. Training from step 0 drops the round's records.
  if (resume) training.loggedUntil = recordedUntil(training.metricsPath, round)
  dropStepRecords(training.metricsPath, round, training.loggedUntil)
  if (open.startStep > 0) ctx.say(`train round ${round}: resuming at step ${open.startStep} of ${open.total} from ${training.checkpointPath}`)

  const health = watchLoss(ctx, training, open.total)
  const progress = new Progress(`train round ${round}`, open.total, 'steps')
  const done = await runSteps(ctx, training, open, health, progress)
  const summary = await exportModel(ctx, training, open, opts.model, { ...done, warnings: health.warnings })
  const first = summary.epoch_loss[0]!
  const last = summary.epoch_loss.at(-1)!
  progress.finish(`loss ${first.toFixed(3)} (epoch 1) -> ${last.toFixed(3)} (epoch ${cfg.epochs}); ${summary.images_per_s.toFixed(0)} images/s`)
  return summary
}

/** The train.json of a finished training under `key` whose model still exists on the worker's machine. */
async function finishedTraining(ctx: Context, summaryPath: string, key: string): Promise<TrainSummary | undefined> {
  if (!existsSync(summaryPath)) return undefined
  const summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as TrainSummary
  return summary.key === key && (await workerFilesExist(ctx, [summary.model]))[0] ? summary : undefined
}

function readCheckpointRecord(path: string): CheckpointRecord | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as CheckpointRecord) : undefined
}

/** The checkpoint to continue from: this training's last one, if it exists on the worker's machine and no restart was asked for. */
async function resumePoint(ctx: Context, training: RoundTraining, restart: boolean): Promise<string | null> {
  const record = readCheckpointRecord(training.checkpointRecordPath)
  return !restart && record?.key === training.key && (await workerFilesExist(ctx, [training.checkpointPath]))[0] ? training.checkpointPath : null
}

/** Opens the worker's training on the pseudo-labels (restored from `resume` when given) and plans the schedule of all its steps. */
async function openTraining(ctx: Context, opts: TrainOptions, precision: ReturnType<typeof resolvePrecision>, resume: string | null): Promise<OpenTraining> {
  const cfg = ctx.config.train
  const { clustering } = opts
  const { result: started } = await ctx.worker.call(
    'train.start',
    {
      model: opts.model,
      head: cfg.head,
      margin: cfg.margin,
      num_classes: clustering.summary.k,
      batch_size: cfg.batch_size,
      weight_decay: cfg.weight_decay,
      head_lr_scale: cfg.head_lr_scale,
      freeze: cfg.freeze,
      embedding_lr_scale: cfg.embedding_lr_scale,
      precision,
      augment: cfg.augment,
      seed: cfg.seed,
      loader_workers: cfg.loader_workers,
      resume,
    },
    {
      tables: {
        train: tableOf({
          id: clustering.ids,
          path: Array.from(clustering.ids, (id) => opts.paths[id]!),
          label: clustering.clusters,
        }),
      },
    },
  )
  const total = started.steps_per_epoch * cfg.epochs
  return {
    stepsPerEpoch: started.steps_per_epoch,
    startStep: started.start_step,
    total,
    schedule: oneCycle({ maxLr: [cfg.lr, cfg.lr * cfg.head_lr_scale], totalSteps: total, pctStart: cfg.pct_start }),
  }
}

/** One past the last step of `round` in metrics.jsonl (0 when it has none). */
function recordedUntil(metricsPath: string, round: number): number {
  return readMetrics(metricsPath).reduce((until, r) => (r.round === round ? Math.max(until, r.step + 1) : until), 0)
}

/** Rewrites metrics.jsonl without this round's records from `fromStep` on (and without a last line cut short). */
function dropStepRecords(metricsPath: string, round: number, fromStep: number): void {
  const kept = readMetrics(metricsPath).filter((r) => r.round < round || (r.round === round && r.step < fromStep))
  writeFileAtomic(metricsPath, kept.map((r) => JSON.stringify(r) + '\n').join(''))
}

interface LossWatch {
  /** Feeds one chunk of steps; a non-finite loss stops training with the last good checkpoint named. */
  observe(firstStep: number, result: StepsResult): void
  readonly warnings: string[]
}

/** Watches the losses for the failures loss-health.ts knows; patience counts after the warm-up. */
function watchLoss(ctx: Context, training: RoundTraining, total: number): LossWatch {
  const cfg = ctx.config.train
  const health = new LossHealth(
    { patienceSteps: cfg.health.patience_steps, minGradScale: cfg.health.min_grad_scale, graceSteps: Math.round(cfg.pct_start * total) },
    ctx.warn,
  )
  return {
    warnings: health.warnings,
    observe(firstStep, result) {
      try {
        health.observe(firstStep, result.loss, result.grad_norm, result.grad_scale, result.nonfinite_step)
      } catch (e) {
        if (e instanceof TrainingDivergedError) {
          // Checkpoints are written only after good steps, so the last one is intact.
          const saved = readCheckpointRecord(training.checkpointRecordPath)
          const last = saved?.key === training.key ? `the last good checkpoint is ${training.checkpointPath} (step ${saved.step})` : 'no checkpoint had been written yet'
          throw new TrainingDivergedError(`train round ${training.round}: ${e.message}; ${last}`)
        }
        throw e
      }
    },
  }
}

/** Appends a chunk's steps not recorded yet, from `firstStep`, to metrics.jsonl and TensorBoard. */
function recordSteps(training: RoundTraining, open: OpenTraining, firstStep: number, lr: [number, number][], beta1: [number, number][], result: StepsResult): void {
  const lines = result.loss.flatMap((loss, i) => {
    const s = firstStep + i
    if (s < training.loggedUntil) return []
    return JSON.stringify({
      round: training.round,
      step: s,
      epoch: Math.floor(s / open.stepsPerEpoch),
      loss,
      lr: lr[i]!,
      beta1: beta1[i]![0],
      grad_norm: result.grad_norm[i]!,
      grad_scale: result.grad_scale,
    } satisfies StepRecord)
  })
  if (lines.length > 0) appendToFile(training.metricsPath, lines.join('\n') + '\n')
  const { events } = training
  result.loss.forEach((loss, i) => {
    const s = firstStep + i
    if (s < training.loggedUntil) return
    const step = training.stepsBefore + s
    events.scalar('train/loss', step, loss)
    events.scalar('train/lr_backbone', step, lr[i]![0])
    events.scalar('train/lr_head', step, lr[i]![1])
    events.scalar('train/beta1', step, beta1[i]![0])
    events.scalar('train/grad_norm', step, result.grad_norm[i]!)
    if (result.grad_scale !== null) events.scalar('train/grad_scale', step, result.grad_scale)
  })
  events.flush()
}

/**
 * Runs the steps left, in chunks that end at every epoch end and every
 * checkpoint_every steps, where a checkpoint is written; each chunk's steps
 * are recorded and watched.
 */
async function runSteps(ctx: Context, training: RoundTraining, open: OpenTraining, health: LossWatch, progress: Progress): Promise<{ seconds: number; images: number }> {
  const cfg = ctx.config.train
  const { stepsPerEpoch: spe, total, schedule } = open
  let step = open.startStep
  let seconds = 0
  let images = 0
  let lastLoss = NaN
  const checkpoint = async () => {
    await ctx.worker.call('train.checkpoint', { path: training.checkpointPath })
    writeJsonAtomic(training.checkpointRecordPath, { key: training.key, step, path: training.checkpointPath } satisfies CheckpointRecord)
  }
  while (step < total) {
    const epochEnd = (Math.floor(step / spe) + 1) * spe
    const nextCheckpoint = (Math.floor(step / cfg.checkpoint_every) + 1) * cfg.checkpoint_every
    const end = Math.min(step + cfg.chunk_steps, epochEnd, nextCheckpoint, total)
    const slice = schedule.slice(step, end)
    const lr = Array.from(slice.lr[0]!, (b, i) => [b, slice.lr[1]![i]!] as [number, number])
    const beta1 = Array.from(slice.beta1[0]!, (b, i) => [b, slice.beta1[1]![i]!] as [number, number])
    const { result } = await ctx.worker.call('train.steps', { lr, beta1 })
    recordSteps(training, open, step, lr, beta1, result)
    health.observe(step, result)
    step += result.loss.length
    seconds += result.seconds
    images += result.images
    lastLoss = result.loss.at(-1) ?? lastLoss
    progress.update(step, { loss: lastLoss.toFixed(4), lr: lr.at(-1)![0].toExponential(2) }, open.startStep)
    if (step === epochEnd || step === nextCheckpoint || step === total) await checkpoint()
  }
  return { seconds, images }
}

function epochMeans(records: StepRecord[], stepsPerEpoch: number, epochs: number): number[] {
  const sums = new Float64Array(epochs)
  const counts = new Float64Array(epochs)
  for (const r of records) {
    const e = Math.floor(r.step / stepsPerEpoch)
    sums[e] = sums[e]! + r.loss
    counts[e] = counts[e]! + 1
  }
  return Array.from(sums, (s, e) => s / counts[e]!)
}

/**
 * Has the worker write trained_model.pt and final_centroids.npy, the exports
 * beside the .pt that train.export asks for and the model card, then writes
 * train.json; an export's failure or missed parity is one of its warnings.
 */
async function exportModel(
  ctx: Context,
  training: RoundTraining,
  open: OpenTraining,
  model: ModelSpec,
  done: { seconds: number; images: number; warnings: string[] },
): Promise<TrainSummary> {
  const { round, key, dir } = training
  const modelPath = workerPath(ctx, join(dir, 'trained_model.pt'))
  const centroidsPath = workerPath(ctx, join(dir, 'final_centroids.npy'))
  const { result: exported } = await ctx.worker.call('train.export', {
    model_path: modelPath,
    centroids_path: centroidsPath,
    model,
    round,
    formats: ctx.config.train.export,
  })
  for (const warning of exported.warnings) ctx.warn(`train round ${round}: ${warning}`)
  const records = readMetrics(training.metricsPath).filter((r) => r.round === round)
  const summary: TrainSummary = {
    key,
    round,
    steps: open.total,
    steps_per_epoch: open.stepsPerEpoch,
    epochs: ctx.config.train.epochs,
    seconds: done.seconds,
    images_per_s: done.images / Math.max(done.seconds, 1e-9),
    epoch_loss: epochMeans(records, open.stepsPerEpoch, ctx.config.train.epochs),
    warnings: [...done.warnings, ...exported.warnings],
    model: modelPath,
    centroids: centroidsPath,
    ...exported.files,
    onnx_parity: exported.onnx_parity,
  }
  writeJsonAtomic(training.summaryPath, summary)
  return summary
}

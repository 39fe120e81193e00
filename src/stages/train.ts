// `nfhm train`: the backbone and the PartialFC_V2 head on the pseudo-labels.
// The schedule (OneCycle, lr and AdamW's beta1 per step) is computed here and
// sent with each chunk of steps; every step's loss and lr go to metrics.jsonl;
// checkpoints are atomic, every N steps and at each epoch end, and a rerun
// continues from the last one exactly.
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { ModelSpec } from '../bridge/methods.js'
import { oneCycle } from '../schedule/onecycle.js'
import { Progress } from '../report/progress.js'
import { tableOf } from './arrow.js'
import type { Clustering } from './cluster.js'
import { resolvePrecision, saveManifest, type Context } from './context.js'
import { appendToFile, keyOf, writeFileAtomic, writeJsonAtomic } from './files.js'
import { LossHealth, TrainingDivergedError } from './health.js'
import { workerFilesExist, workerPath } from './workerfiles.js'

export interface StepRecord {
  round: number
  step: number
  epoch: number
  loss: number
  lr: [number, number]
  beta1: number
  grad_norm: number
  grad_scale: number | null
}

export interface TrainSummary {
  key: string
  round: number
  steps: number
  steps_per_epoch: number
  epochs: number
  seconds: number
  images_per_s: number
  epoch_loss: number[]
  warnings: string[]
  /** trained_model.pt and final_centroids.npy, on the worker's machine. */
  model: string
  centroids: string
}

interface CheckpointRecord {
  key: string
  step: number
  path: string
}

export function readMetrics(path: string): StepRecord[] {
  if (!existsSync(path)) return []
  const records: StepRecord[] = []
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue
    try {
      records.push(JSON.parse(line) as StepRecord)
    } catch {
      // a line cut short by a kill; the rewrite on resume drops it
    }
  }
  return records
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

export interface TrainOptions {
  round: number
  model: ModelSpec
  /** Image path by id. */
  paths: string[]
  clustering: Clustering
  /** Drop an unfinished training of this round and start it again. */
  restart: boolean
}

export async function trainRound(ctx: Context, opts: TrainOptions): Promise<TrainSummary> {
  const cfg = ctx.config.train
  const { round, clustering } = opts
  const dir = ctx.run.path(`round-${round}`, 'train')
  const precision = resolvePrecision(ctx, cfg.precision)
  const key = keyOf({ model: opts.model, clustering: clustering.summary.key, train: { ...cfg, chunk_steps: undefined }, precision })
  const summaryPath = join(dir, 'train.json')
  if (existsSync(summaryPath)) {
    const summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as TrainSummary
    if (summary.key === key && (await workerFilesExist(ctx, [summary.model]))[0]) {
      ctx.say(`train round ${round}: done (cached: ${dir})`)
      return summary
    }
  }
  rmSync(summaryPath, { force: true })
  // Checkpoints and the trained model are written where the worker is; the records stay here.
  const checkpointPath = workerPath(ctx, join(dir, 'checkpoint.pt'))
  const checkpointRecordPath = join(dir, 'checkpoint.json')
  const record = existsSync(checkpointRecordPath)
    ? (JSON.parse(readFileSync(checkpointRecordPath, 'utf8')) as CheckpointRecord)
    : undefined
  const resume = !opts.restart && record?.key === key && (await workerFilesExist(ctx, [checkpointPath]))[0] ? checkpointPath : null

  const { result: session } = await ctx.worker.call(
    'train.start',
    {
      model: opts.model,
      head: cfg.head,
      margin: cfg.margin,
      num_classes: clustering.summary.k,
      batch_size: cfg.batch_size,
      weight_decay: cfg.weight_decay,
      head_lr_scale: cfg.head_lr_scale,
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
  const spe = session.steps_per_epoch
  const total = spe * cfg.epochs
  const schedule = oneCycle({ maxLr: [cfg.lr, cfg.lr * cfg.head_lr_scale], totalSteps: total, pctStart: cfg.pct_start })
  const metricsPath = ctx.run.path('metrics.jsonl')
  // Steps after the checkpoint are done again: drop their records.
  const kept = readMetrics(metricsPath).filter((r) => r.round < round || (r.round === round && r.step < session.start_step))
  writeFileAtomic(metricsPath, kept.map((r) => JSON.stringify(r) + '\n').join(''))
  if (session.start_step > 0) ctx.say(`train round ${round}: resuming at step ${session.start_step} of ${total} from ${checkpointPath}`)

  const health = new LossHealth(
    { patienceSteps: cfg.health.patience_steps, minGradScale: cfg.health.min_grad_scale, graceSteps: Math.round(cfg.pct_start * total) },
    ctx.warn,
  )
  const progress = new Progress(`train round ${round}`, total, 'steps')
  let step = session.start_step
  let seconds = 0
  let images = 0
  let lastLoss = NaN
  const checkpoint = async () => {
    await ctx.worker.call('train.checkpoint', { path: checkpointPath })
    writeJsonAtomic(checkpointRecordPath, { key, step, path: checkpointPath } satisfies CheckpointRecord)
  }
  while (step < total) {
    const epochEnd = (Math.floor(step / spe) + 1) * spe
    const nextCheckpoint = (Math.floor(step / cfg.checkpoint_every) + 1) * cfg.checkpoint_every
    const end = Math.min(step + cfg.chunk_steps, epochEnd, nextCheckpoint, total)
    const slice = schedule.slice(step, end)
    const lr = Array.from(slice.lr[0]!, (b, i) => [b, slice.lr[1]![i]!] as [number, number])
    const beta1 = Array.from(slice.beta1[0]!, (b, i) => [b, slice.beta1[1]![i]!] as [number, number])
    const { result } = await ctx.worker.call('train.steps', { lr, beta1 })
    const lines = result.loss.map((loss, i) => {
      const s = step + i
      return JSON.stringify({
        round,
        step: s,
        epoch: Math.floor(s / spe),
        loss,
        lr: lr[i]!,
        beta1: beta1[i]![0],
        grad_norm: result.grad_norm[i]!,
        grad_scale: result.grad_scale,
      } satisfies StepRecord)
    })
    if (lines.length > 0) appendToFile(metricsPath, lines.join('\n') + '\n')
    try {
      health.observe(step, result.loss, result.grad_norm, result.grad_scale, result.nonfinite_step)
    } catch (e) {
      if (e instanceof TrainingDivergedError) {
        // Checkpoints are written only after good steps, so the last one is intact.
        const saved = existsSync(checkpointRecordPath) ? (JSON.parse(readFileSync(checkpointRecordPath, 'utf8')) as CheckpointRecord) : undefined
        const last = saved?.key === key ? `the last good checkpoint is ${checkpointPath} (step ${saved.step})` : 'no checkpoint had been written yet'
        throw new TrainingDivergedError(`train round ${round}: ${e.message}; ${last}`)
      }
      throw e
    }
    step += result.loss.length
    seconds += result.seconds
    images += result.images
    lastLoss = result.loss.at(-1) ?? lastLoss
    progress.update(step, { loss: lastLoss.toFixed(4), lr: lr.at(-1)![0].toExponential(2) }, session.start_step)
    if (step === epochEnd || step === nextCheckpoint || step === total) await checkpoint()
  }
  const modelPath = workerPath(ctx, join(dir, 'trained_model.pt'))
  const centroidsPath = workerPath(ctx, join(dir, 'final_centroids.npy'))
  await ctx.worker.call('train.export', { model_path: modelPath, centroids_path: centroidsPath })
  const records = readMetrics(metricsPath).filter((r) => r.round === round)
  const summary: TrainSummary = {
    key,
    round,
    steps: total,
    steps_per_epoch: spe,
    epochs: cfg.epochs,
    seconds,
    images_per_s: images / Math.max(seconds, 1e-9),
    epoch_loss: epochMeans(records, spe, cfg.epochs),
    warnings: health.warnings,
    model: modelPath,
    centroids: centroidsPath,
  }
  writeJsonAtomic(summaryPath, summary)
  ctx.manifest.stages[`train.round-${round}`] = { key, finished: new Date().toISOString(), seconds }
  saveManifest(ctx)
  const first = summary.epoch_loss[0]!
  const last = summary.epoch_loss.at(-1)!
  progress.finish(`loss ${first.toFixed(3)} (epoch 1) -> ${last.toFixed(3)} (epoch ${cfg.epochs}); ${summary.images_per_s.toFixed(0)} images/s`)
  return summary
}

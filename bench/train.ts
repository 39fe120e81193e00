// 1. Training: the train stage through the bridge against the group's loop as
// a plain PyTorch script (bench/python/train_baseline.py), same settings.
//   npx tsx bench/train.ts
// Both sides train ViT-T/4@28px with the demo config's other settings for STEPS
// steps (one epoch of STEPS x batch Fashion-MNIST images) on the same
// pseudo-labels, which nfhm's embed and cluster stages make once beforehand.
// The model and the full class matrix are pinned, so the table stays comparable
// when the demo's own model changes; the baseline script has no class sampling.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { loadConfig } from '../src/config/load.js'
import { tableOf, writeArrowFile } from '../src/run/arrow.js'
import { clusterEmbeddings } from '../src/recipe/cluster.js'
import { prepareImages, subset } from '../src/recipe/images.js'
import { embedImages } from '../src/recipe/embed.js'
import { initialModel } from '../src/recipe/pipeline.js'
import { closeSession, openSession } from '../src/run/run-session.js'
import { TRAIN } from '../src/recipe/split.js'
import { trainRound } from '../src/recipe/train.js'
import { alternate, emit, median, medianOf, pairedRatio, recordCalls, row, runPython, seconds, span } from './lib.js'

const STEPS = 100

const root = mkdtempSync(join(tmpdir(), 'nfhm-bench-train-'))
const config = loadConfig('configs/demo.yaml', [
  `runs_dir=${root}`,
  'name=train',
  'model.name=ViT-T/4@28px',
  'train.epochs=1',
  'train.head.sample_rate=1',
  'cluster.ratio=0.1',
])
const cfg = config.train
const ctx = await openSession(config)
try {
  const images = await prepareImages(ctx)
  const all = subset(images, TRAIN)
  const n = STEPS * cfg.batch_size
  const train = { ids: all.ids.subarray(0, n), paths: all.paths.slice(0, n), classIds: all.classIds.subarray(0, n) }
  const model = initialModel(ctx)
  const embeddings = await embedImages(ctx, model, train, 'train')
  const clustering = await clusterEmbeddings(ctx, embeddings, ctx.run.path('round-1', 'cluster'), images.classIds)
  const imagesFile = join(root, 'train.arrow')
  writeArrowFile(imagesFile, tableOf({ path: Array.from(clustering.ids, (id) => images.paths[id]!), label: clustering.clusters }))
  const calls = recordCalls(ctx.worker)

  const baseline = (decodeOnce: boolean) =>
    runPython('train_baseline.py', {
      images: imagesFile,
      decode_once: decodeOnce,
      model: model.name,
      classes: clustering.summary.k,
      steps: STEPS,
      seed: cfg.seed,
      batch_size: cfg.batch_size,
      lr: cfg.lr,
      head_lr_scale: cfg.head_lr_scale,
      weight_decay: cfg.weight_decay,
      pct_start: cfg.pct_start,
      margin: cfg.margin,
      augment: cfg.augment,
      loader_workers: cfg.loader_workers,
    })
  const samples = await alternate('train', {
    nfhm: async () => {
      rmSync(ctx.run.path('round-1', 'train'), { recursive: true, force: true })
      calls.length = 0
      const started = performance.now()
      const summary = await trainRound(ctx, { round: 1, model, paths: images.paths, clustering, restart: true })
      return { loop_s: span(calls, 'train.steps'), worker_steps_s: summary.seconds, stage_s: seconds(started), setup_s: span(calls, 'train.start') }
    },
    group: () => baseline(false),
    decodeOnce: () => baseline(true),
  })

  const trained = STEPS * cfg.batch_size // images per run
  const loop = (side: keyof typeof samples) => medianOf(samples[side], 'loop_s')
  const setup = (side: keyof typeof samples) => medianOf(samples[side], 'setup_s')
  const speedup = (side: keyof typeof samples) => pairedRatio(samples.nfhm, samples[side], (s) => 1 / s.loop_s!)
  const workerSteps = medianOf(samples.nfhm, 'worker_steps_s')
  const gradNorm = median([...samples.group, ...samples.decodeOnce].map((s) => s.grad_norm_s!))
  emit({
    name: 'train',
    title: `1. Training: ${model.name}, ${STEPS} steps of batch ${cfg.batch_size}, K=${clustering.summary.k}, ${cfg.loader_workers} loader worker`,
    nfhmSide:
      'trainRound (the stage `nfhm train` runs) through a pythonia worker; the loop is timed on the TS side from the first ' +
      'train.steps request to the last reply (schedule chunks, bridge, metrics.jsonl, health checks included); ' +
      'train.start (model build, decoding the images once), the checkpoint and the export are outside it',
    baselineSide:
      'bench/python/train_baseline.py: the same model, PartialFC_V2, margin loss, AdamW groups, OneCycleLR, batch, ' +
      'augmentation, torch threads and DataLoader workers; the loop is timed from the first batch request to the last ' +
      "optimizer step. \"group\": decodes every PNG when drawn, as the group's loop does; \"decode once\": decodes them " +
      'into memory during setup, as nfhm does',
    rows: [
      row("step loop vs the group's loop", 'images/s', trained / loop('nfhm'), trained / loop('group'), ['>=', 0.97], speedup('group')),
      row('step loop vs the same loop decoding once', 'images/s', trained / loop('nfhm'), trained / loop('decodeOnce'), ['>=', 0.97], speedup('decodeOnce')),
      row("setup: train.start vs the group's", 's', setup('nfhm'), setup('group')),
      row('setup: train.start vs decoding once', 's', setup('nfhm'), setup('decodeOnce')),
      row('the whole stage (trainRound: setup, loop, checkpoint, export)', 's', medianOf(samples.nfhm, 'stage_s'), null),
    ],
    notes: [
      `inside the worker the steps took ${workerSteps.toFixed(2)} s of the ${loop('nfhm').toFixed(2)} s loop: the bridge and the ` +
        `TS side cost ${(((loop('nfhm') - workerSteps) / loop('nfhm')) * 100).toFixed(2)}% (one call per ${cfg.chunk_steps} steps)`,
      `the backbone gradient norm nfhm logs every step costs ${(gradNorm * 1e3).toFixed(2)} ms, ` +
        `${((gradNorm / (loop('nfhm') / STEPS)) * 100).toFixed(2)}% of a step`,
    ],
  })
} finally {
  await closeSession(ctx)
  rmSync(root, { recursive: true, force: true })
}

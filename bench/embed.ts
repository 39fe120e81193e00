// 2. Embedding: the embed stage through the bridge against a plain PyTorch
// loop over the same images (bench/python/embed_baseline.py).
//   npx tsx bench/embed.ts [vit | pretrained]
// The 10,000 Fashion-MNIST test images, with the demo config's batch size and
// loader workers; the model is loaded before either clock starts. `vit`
// (bench name "embed"): ViT-T/4@28px, pinned so the table stays comparable
// when the demo's model changes. `pretrained` ("embed-pretrained"): the
// pretrained demo's EfficientNet-Lite0 at its 64 px and 256-d head.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { loadConfig } from '../src/config/load.js'
import { tableOf, writeArrowFile } from '../src/run/arrow.js'
import { prepareImages, testSplit } from '../src/recipe/images.js'
import { embedImages } from '../src/recipe/embed.js'
import { initialModel } from '../src/recipe/pipeline.js'
import { closeSession, openSession } from '../src/run/run-session.js'
import { SHORT_REPS, alternate, emit, medianOf, pairedRatio, row, runPython, seconds } from './lib.js'

const VARIANTS = {
  vit: { name: 'embed', number: '2', config: 'configs/demo.yaml', overrides: ['model.name=ViT-T/4@28px'] },
  pretrained: { name: 'embed-pretrained', number: '2b', config: 'configs/demo-pretrained.yaml', overrides: [] },
} as const
const which = (process.argv[2] ?? 'vit') as keyof typeof VARIANTS
const variant = VARIANTS[which]
if (!variant) throw new Error(`bench/embed.ts: unknown variant ${process.argv[2]}; known: ${Object.keys(VARIANTS).join(', ')}`)

const root = mkdtempSync(join(tmpdir(), 'nfhm-bench-embed-'))
const config = loadConfig(variant.config, [`runs_dir=${root}`, `name=${variant.name}`, ...variant.overrides])
const cfg = config.embed
const ctx = await openSession(config)
try {
  const test = testSplit(await prepareImages(ctx))
  const model = initialModel(ctx)
  await ctx.worker.call('model.describe', { model }) // loads the model: outside the clock, as in the baseline
  const imagesFile = join(root, 'test.arrow')
  writeArrowFile(imagesFile, tableOf({ path: test.paths }))

  let rep = 0
  const samples = await alternate('embed', {
    nfhm: async () => {
      // A new cache folder each time, so that nothing is reused from the last run.
      ctx.cacheDir = join(root, `cache-${rep++}`)
      const started = performance.now()
      const set = await embedImages(ctx, model, test, 'test')
      const wall = seconds(started)
      const worker = readdirSync(set.dir)
        .filter((f) => /^shard-\d+\.json$/.test(f))
        .reduce((sum, f) => sum + (JSON.parse(readFileSync(join(set.dir, f), 'utf8')) as { seconds: number }).seconds, 0)
      rmSync(ctx.cacheDir, { recursive: true, force: true })
      return { seconds: wall, worker_s: worker }
    },
    baseline: () =>
      runPython('embed_baseline.py', {
        images: imagesFile,
        model: model.name,
        weights: model.weights,
        image_size: model.image_size,
        embedding_size: model.embedding_size,
        batch_size: cfg.batch_size,
        loader_workers: cfg.loader_workers,
        out: join(root, 'baseline.npy'),
      }),
  }, SHORT_REPS)

  const n = test.ids.length
  const wall = { nfhm: medianOf(samples.nfhm, 'seconds'), baseline: medianOf(samples.baseline, 'seconds') }
  const worker = medianOf(samples.nfhm, 'worker_s')
  emit({
    reps: SHORT_REPS,
    name: variant.name,
    title: `${variant.number}. Embedding: ${n.toLocaleString('en-US')} test images, ${model.name}, batch ${cfg.batch_size}, ${cfg.loader_workers} loader worker`,
    nfhmSide:
      `embedImages (the stage \`nfhm embed\` runs) through a pythonia worker, timed on the TS side: cache key, ` +
      `${Math.ceil(n / cfg.shard_size)} embed.shard calls of up to ${cfg.shard_size} images (each with its own DataLoader), ` +
      'shard files and records',
    baselineSide: 'bench/python/embed_baseline.py: one DataLoader over the same paths, the model under inference_mode, np.save of the result',
    rows: [
      row('throughput', 'images/s', n / wall.nfhm, n / wall.baseline, ['>=', 0.97], pairedRatio(samples.nfhm, samples.baseline, (s) => 1 / s.seconds!)),
      row('wall time', 's', wall.nfhm, wall.baseline),
    ],
    notes: [
      `inside the worker the shards took ${worker.toFixed(2)} s of the ${wall.nfhm.toFixed(2)} s: ` +
        `the bridge and the TS side cost ${(((wall.nfhm - worker) / wall.nfhm) * 100).toFixed(1)}%`,
    ],
  })
} finally {
  await closeSession(ctx)
  rmSync(root, { recursive: true, force: true })
}

// 1b. Frozen-part caching: the pretrained demo's model (EfficientNet-Lite0 at
// 64 px, stem + 13 of 16 blocks frozen) trained with augmentation off, so the
// frozen part's output is exact and cached from the first epoch on, against
// the same training with the cache turned off (bench/python/nfhm_bench.py caps
// it at 0 bytes: the path training takes when the cache would not fit).
//   npx tsx bench/frozen.ts
// Each side trains EPOCHS epochs of STEPS steps through trainRound on the
// same pseudo-labels. The first epoch fills the cache and costs what an
// uncached epoch costs, so an uncached epoch is T_off / EPOCHS and a cached
// one (T_on - T_off / EPOCHS) / (EPOCHS - 1).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../src/config/load.js'
import { repoRoot } from '../src/bridge/python.js'
import { clusterEmbeddings } from '../src/recipe/cluster.js'
import { prepareImages, subset } from '../src/recipe/images.js'
import { embedImages } from '../src/recipe/embed.js'
import { initialModel } from '../src/recipe/pipeline.js'
import { TRAIN } from '../src/recipe/split.js'
import { trainRound } from '../src/recipe/train.js'
import { closeSession, openSession } from '../src/run/run-session.js'
import { REPS, alternate, emit, medianOf, pairedRatio, row } from './lib.js'

const STEPS = 24
const EPOCHS = 3

const root = mkdtempSync(join(tmpdir(), 'nfhm-bench-frozen-'))
const config = loadConfig('configs/demo-pretrained.yaml', [
  `runs_dir=${root}`,
  'name=frozen',
  `train.epochs=${EPOCHS}`,
  'train.augment.crop_scale=[1, 1]',
  'train.augment.hflip_prob=0',
  'cluster.k=30',
])
const cfg = config.train
process.env.NFHM_WORKER_EXTENSIONS = 'nfhm_bench'
process.env.PYTHONPATH = [join(repoRoot, 'bench', 'python'), process.env.PYTHONPATH].filter(Boolean).join(':')

try {
  // The pseudo-labels, once: embed and k-means STEPS batches of training images.
  let ctx = await openSession(config)
  const images = await prepareImages(ctx)
  const all = subset(images, TRAIN)
  const n = STEPS * cfg.batch_size
  const train = { ids: all.ids.subarray(0, n), paths: all.paths.slice(0, n), classIds: all.classIds.subarray(0, n) }
  const model = initialModel(ctx)
  const clustering = await clusterEmbeddings(ctx, await embedImages(ctx, model, train, 'train'), ctx.run.path('round-1', 'cluster'), images.classIds)
  await closeSession(ctx)

  const trainWith = (cache: 'on' | 'off', expect: RegExp) => async () => {
    process.env.NFHM_BENCH_FROZEN_CACHE = cache
    ctx = await openSession(config)
    try {
      rmSync(ctx.run.path('round-1', 'train'), { recursive: true, force: true })
      const summary = await trainRound(ctx, { round: 1, model, paths: images.paths, clustering, restart: true })
      // The worker's log says which path training took: check it is the one this side is for.
      if (!expect.test(readFileSync(ctx.run.path('worker.log'), 'utf8').split('train.start: ').at(-1)!)) {
        throw new Error(`frozen cache ${cache}: the worker log does not match ${expect}`)
      }
      return { seconds: summary.seconds }
    } finally {
      await closeSession(ctx)
    }
  }
  const samples = await alternate('frozen', {
    cached: trainWith('on', /cached from the first epoch on/),
    uncached: trainWith('off', /no cache: it would need more than 0 GiB/),
  })

  const total = { on: medianOf(samples.cached, 'seconds'), off: medianOf(samples.uncached, 'seconds') }
  const epoch = (s: { seconds?: number }, off: number) => (s.seconds! - off / EPOCHS) / (EPOCHS - 1)
  const cachedEpochs = samples.cached.map((s, i) => ({ seconds: epoch(s, samples.uncached[i]!.seconds!) }))
  const uncachedEpochs = samples.uncached.map((s) => ({ seconds: s.seconds! / EPOCHS }))
  emit({
    name: 'frozen',
    title: `1b. Frozen-part caching: ${model.name} at ${model.image_size} px, train.freeze ${cfg.freeze}, ${EPOCHS} epochs of ${STEPS} steps of batch ${cfg.batch_size}, augmentation off`,
    nfhmSide: 'trainRound with the frozen part\'s output cached in the first epoch and reused after (worker-side training seconds)',
    baselineSide: 'the same trainRound with the cache capped at 0 bytes, so the frozen part runs every step',
    rows: [
      row(
        'an epoch after the first',
        'images/s',
        n / medianOf(cachedEpochs, 'seconds'),
        n / medianOf(uncachedEpochs, 'seconds'),
        ['>=', 1.5],
        pairedRatio(cachedEpochs, uncachedEpochs, (s) => 1 / s.seconds!),
      ),
      row(`all ${EPOCHS} epochs`, 's', total.on, total.off),
    ],
    notes: [
      'an epoch after the first is derived: the first epoch fills the cache at the cost of an uncached one, so it is (T_cached - T_uncached / epochs) / (epochs - 1) within each alternated pair',
      'the cache is exact only without augmentation; the pretrained demo itself trains with crop and flip, so it does not use it (docs/compute-core.md)',
    ],
  })
} finally {
  rmSync(root, { recursive: true, force: true })
}

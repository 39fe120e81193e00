// 8. `nfhm embed` as a user runs it: the whole command, from process start to
// exit, on a class-folder tree against a plain PyTorch program doing the same
// job end to end in one process (bench/python/use_embed_baseline.py).
//   npx tsx bench/use-embed.ts
// The 10,000 Fashion-MNIST test images as a tree of symlinks (one folder per
// class); the model is the pretrained demo's encoder (EfficientNet-Lite0, ImageNet
// trunk, 64 px, 256-d head) saved as a trained_model.pt with its model card
// (bench/python/pretrained_model.py), so that `--model <the .pt>` resolves it.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { execa } from 'execa'
import { repoRoot } from '../src/bridge/python.js'
import { alternate, emit, median, medianOf, pairedRatio, row, runPython, seconds, type Sample } from './lib.js'

const DATA = join(repoRoot, 'data', 'fashion-mnist')
const MODEL = { name: 'efficientnet-lite0', weights: 'imagenet', image_size: 64, embedding_size: 256 } // configs/demo-pretrained.yaml
const BATCH = 256
const LOADER_WORKERS = 1
const GOAL = 0.97 // issue 16: throughput ratio

/** The test split as <root>/<class>/<file> symlinks to the images; returns the image count. */
function classTree(root: string): number {
  const [, ...lines] = readFileSync(join(DATA, 'fashion-mnist.csv'), 'utf8').trim().split('\n')
  let n = 0
  for (const line of lines) {
    const [path, label, split] = line.split(',') as [string, string, string]
    if (split !== 'test') continue
    const folder = join(root, label.replaceAll('/', '-')) // "T-shirt/top"
    mkdirSync(folder, { recursive: true })
    symlinkSync(join(DATA, 'images', path), join(folder, basename(path)))
    n++
  }
  return n
}

/** Seconds of every embed.shard call, as the shard records of the cache say. */
function shardSeconds(cacheDir: string): number {
  const embeddings = join(cacheDir, 'embeddings')
  const [key] = readdirSync(embeddings)
  const dir = join(embeddings, key!)
  return readdirSync(dir)
    .filter((f) => /^shard-\d+\.json$/.test(f))
    .reduce((sum, f) => sum + (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { seconds: number }).seconds, 0)
}

const root = mkdtempSync(join(tmpdir(), 'nfhm-bench-use-embed-'))
try {
  const folder = join(root, 'images')
  const n = classTree(folder)
  const { model } = await runPython<{ model: string }>('pretrained_model.py', { out: join(root, 'model', 'trained_model.pt'), ...MODEL })
  const outputs = { nfhm: join(root, 'nfhm.parquet'), baseline: join(root, 'baseline.parquet') }

  let rep = 0
  const samples = await alternate('use-embed', {
    nfhm: async (): Promise<Sample> => {
      const cacheDir = join(root, `cache-${rep++}`) // nothing reused from the last run
      rmSync(outputs.nfhm, { force: true })
      const args = ['embed', folder, '--model', model, '--out', outputs.nfhm, '--cache-dir', cacheDir, '--batch-size', `${BATCH}`, '--loader-workers', `${LOADER_WORKERS}`]
      const started = performance.now()
      const run = await execa('node', [join(repoRoot, 'bin', 'nfhm.js'), ...args], { cwd: repoRoot, reject: false })
      const wall = seconds(started)
      if (run.exitCode !== 0) throw new Error(`nfhm embed failed (${run.exitCode}):\n${run.stderr}`)
      const shards = shardSeconds(cacheDir)
      rmSync(cacheDir, { recursive: true, force: true })
      return { seconds: wall, shards_s: shards }
    },
    // The CLI's own start (Node, tsx, the TS modules), which the baseline has no counterpart of.
    cli: async (): Promise<Sample> => {
      const started = performance.now()
      await execa('node', [join(repoRoot, 'bin', 'nfhm.js'), '--version'], { cwd: repoRoot })
      return { seconds: seconds(started) }
    },
    baseline: async (): Promise<Sample> => {
      const started = performance.now()
      const phases = await runPython('use_embed_baseline.py', { folder, model, ...MODEL, batch_size: BATCH, loader_workers: LOADER_WORKERS, out: outputs.baseline })
      return { seconds: seconds(started), ...phases }
    },
  })
  const same = await runPython<{ rows: number; same_paths: boolean; same_labels: boolean; max_abs_diff: number; max_abs_value: number }>('same_embeddings.py', { a: outputs.nfhm, b: outputs.baseline })
  if (!same.same_paths || !same.same_labels || same.rows !== n) throw new Error(`nfhm and the baseline wrote different rows: ${JSON.stringify(same)}`)

  const wall = { nfhm: medianOf(samples.nfhm, 'seconds'), baseline: medianOf(samples.baseline, 'seconds') }
  const shards = medianOf(samples.nfhm, 'shards_s')
  const cli = medianOf(samples.cli, 'seconds')
  // Paired, as the ratio: the time nfhm adds, and the baseline's time at which that much would still meet the goal.
  const extra = median(samples.nfhm.map((s, i) => s.seconds! - samples.baseline[i]!.seconds!))
  const breakEven = extra / (1 / GOAL - 1)
  const base = (key: string) => medianOf(samples.baseline, key)
  emit({
    name: 'use-embed',
    title: `8. \`nfhm embed\` of a folder: ${n.toLocaleString('en-US')} images in class folders, ${MODEL.name} (${MODEL.image_size} px, ${MODEL.embedding_size}-d) from a trained_model.pt, batch ${BATCH}, ${LOADER_WORKERS} loader worker`,
    nfhmSide:
      '`node bin/nfhm.js embed <folder> --model trained_model.pt --out x.parquet --cache-dir <fresh> --batch-size 256 --loader-workers 1`, ' +
      'timed from process start to exit: tsx start, the worker, model.resolve (sha256 of the weights), the folder scan, the cache key, embed.shard into the cache, embeddings.write',
    baselineSide:
      'bench/python/use_embed_baseline.py, timed the same way: import torch, load the .pt (nfhm.core.model.load), walk the sorted tree, ' +
      'one DataLoader of the same batch and workers under inference_mode, pyarrow Parquet of path, label, embedding',
    rows: [
      row('throughput', 'images/s', n / wall.nfhm, n / wall.baseline, ['>=', GOAL], pairedRatio(samples.nfhm, samples.baseline, (s) => 1 / s.seconds!)),
      row('wall time', 's', wall.nfhm, wall.baseline),
    ],
    notes: [
      `inside the worker the embed.shard calls took ${shards.toFixed(1)} s of nfhm's ${wall.nfhm.toFixed(1)} s; the rest (${(wall.nfhm - shards).toFixed(1)} s) is ` +
        'the CLI and worker start, model.resolve and model.describe (the model load), the scan, the cache key and embeddings.write',
      `the baseline's ${wall.baseline.toFixed(1)} s: imports ${base('import_s').toFixed(1)} s, model load ${base('model_s').toFixed(2)} s, ` +
        `walk and embedding loop ${base('embed_s').toFixed(1)} s, Parquet ${base('write_s').toFixed(2)} s (the rest is the interpreter's start and exit)`,
      `nfhm's run took ${extra.toFixed(1)} s more than the baseline's (median of the pairs); starting the CLI alone ` +
        `(\`node bin/nfhm.js --version\`: Node, tsx and the TS modules, timed alternately with the runs) takes ${cli.toFixed(1)} s, a fixed cost whatever the number of images` +
        (extra > 0
          ? `; at ${extra.toFixed(1)} s the throughput ratio reaches ${GOAL} once the baseline takes ${breakEven.toFixed(0)} s, about ${((breakEven * n) / wall.baseline / 1000).toFixed(0)}k images at this speed`
          : ''),
      `both files hold the same ${same.rows.toLocaleString('en-US')} paths and labels in the same order; largest embedding difference ${same.max_abs_diff.toExponential(1)} at values up to ${same.max_abs_value.toFixed(2)}`,
    ],
  })
} finally {
  rmSync(root, { recursive: true, force: true })
}

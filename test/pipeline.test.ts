// The whole recipe through the CLI on a small real data set, on both local
// transports; then a training killed mid-run and resumed must end with the
// same weights as an uninterrupted one.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { tableFromIPC } from 'apache-arrow'
import { beforeAll, describe, expect, test } from 'vitest'
import { repoRoot } from '../src/bridge/python.js'
import { readMetrics, type EvalRecord } from '../src/run/records.js'
import { buildDigits, type DigitsData } from './helpers/digits.js'
import { runPythonJson } from './helpers/python.js'
import { readEvents, type ReadEvents } from './helpers/tensorboard.js'

const nfhm = join(repoRoot, 'bin', 'nfhm.js')
const root = mkdtempSync(join(tmpdir(), 'nfhm-pipeline-'))
let digits: DigitsData

function writeConfig(name: string, runsDir: string, extra = ''): string {
  const path = join(root, `${name}.yaml`)
  writeFileSync(
    path,
    `name: ${name}
runs_dir: ${runsDir}
data:
  table: ${digits.csv}
  image_root: ${digits.imageRoot}
  split: {by: image, test_fraction: 0.25, seed: 3}
model: {name: ViT-T/4@28px}
embed: {loader_workers: 0, shard_size: 128}
cluster: {k: 30}
train:
  epochs: 6
  batch_size: 32
  lr: 2.0e-3
  loader_workers: 0
  chunk_steps: 2
  checkpoint_every: 6
  augment: {crop_scale: [0.6, 1], randaug_ops: 0, erasing_prob: 0}
eval: {bootstrap: 100, knn_k: [5, 10], baselines: [initial, pixels-centred]}
${extra}`,
  )
  return path
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T
const readArrow = (path: string) => tableFromIPC(readFileSync(path))

const TRAIN_TAGS = ['train/loss', 'train/lr_backbone', 'train/lr_head', 'train/beta1', 'train/grad_norm']

/** TensorBoard's train/* scalars equal metrics.jsonl's steps, one event per step (values as float32). */
function expectTrainEvents(events: ReadEvents, dir: string): void {
  const steps = readMetrics(join(dir, 'metrics.jsonl'))
  const expected: Record<string, number[]> = {
    'train/loss': steps.map((s) => s.loss),
    'train/lr_backbone': steps.map((s) => s.lr[0]),
    'train/lr_head': steps.map((s) => s.lr[1]),
    'train/beta1': steps.map((s) => s.beta1),
    'train/grad_norm': steps.map((s) => s.grad_norm),
  }
  for (const [tag, values] of Object.entries(expected)) {
    expect(events.scalars[tag]).toEqual(steps.map((s, i) => [s.step, Math.fround(values[i]!)]))
  }
}

beforeAll(async () => {
  digits = await buildDigits(join(root, 'digits'), 40)
})

describe.each(['pythonia', 'stdio'] as const)('nfhm run over %s', (transport) => {
  test('every stage runs and writes its artifacts; the loss falls', async () => {
    const runsDir = join(root, `runs-${transport}`)
    const config = writeConfig('e2e', runsDir)
    const run = await execa('node', [nfhm, 'run', config, '--transport', transport], { cwd: root, reject: false })
    expect(run.stderr).not.toMatch(/^nfhm: /m)
    expect(run.exitCode).toBe(0)
    const dir = join(runsDir, 'e2e')

    const manifest = readJson<{ config: { worker: { transport: string } }; versions: Record<string, string>; inputs: { images: number; train: number; test: number } }>(join(dir, 'manifest.json'))
    expect(manifest.config.worker.transport).toBe(transport)
    expect(Object.keys(manifest.versions)).toEqual(expect.arrayContaining(['torch', 'faiss', 'python', 'node', 'nfhm']))
    expect(manifest.inputs).toMatchObject({ images: 400, train: 300, test: 100 })

    const images = readArrow(join(dir, 'images.arrow'))
    expect(images.numRows).toBe(400)
    expect(images.schema.fields.map((f) => f.name)).toEqual(['id', 'path', 'label', 'class', 'split'])

    const labels = readArrow(join(dir, 'round-1', 'cluster', 'pseudo_labels.arrow'))
    expect(labels.numRows).toBe(300)
    const clusters = Array.from(labels.getChild('cluster')!.toArray() as Int32Array)
    expect(Math.max(...clusters)).toBeLessThan(30)
    const cluster = readJson<{ k: number; agreement: { nmi: number } }>(join(dir, 'round-1', 'cluster', 'cluster.json'))
    expect(cluster.k).toBe(30)
    expect(cluster.agreement.nmi).toBeGreaterThan(0)
    for (const file of ['centroids.npy', 'centroids.arrow']) expect(existsSync(join(dir, 'round-1', 'cluster', file))).toBe(true)

    const train = readJson<{ steps: number; epoch_loss: number[] }>(join(dir, 'round-1', 'train', 'train.json'))
    expect(train.steps).toBe(6 * Math.floor(300 / 32))
    expect(train.epoch_loss.at(-1)!).toBeLessThan(0.8 * train.epoch_loss[0]!)
    const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number })
    expect(metrics.map((m) => m.step)).toEqual(Array.from({ length: train.steps }, (_, i) => i))

    // The group's outputs: UNICOM's key layout (loads strictly into nfhm's model) and C x E centres.
    const shapes = await runPythonJson<{ keys: number; centroids: number[] }>(
      `
import json, sys
import numpy as np
from nfhm.core.model import load
cfg = json.load(sys.stdin)
model, _ = load("ViT-T/4@28px", weights=cfg["model"])
print(json.dumps({"keys": len(model.state_dict()), "centroids": list(np.load(cfg["centroids"]).shape)}))
`,
      { model: join(dir, 'round-1', 'train', 'trained_model.pt'), centroids: join(dir, 'round-1', 'train', 'final_centroids.npy') },
    )
    expect(shapes.centroids).toEqual([30, 32])
    expect(shapes.keys).toBeGreaterThan(10)
    // Beside it, the exports others load (test/python/test_export.py checks their contents), listed in train.json.
    const trainDir = join(dir, 'round-1', 'train')
    const exported = readJson<{ safetensors: string; onnx: string; card: string; onnx_parity: { max_abs_diff: number }; warnings: string[] }>(join(trainDir, 'train.json'))
    expect(exported).toMatchObject({ safetensors: join(trainDir, 'trained_model.safetensors'), onnx: join(trainDir, 'trained_model.onnx'), card: join(trainDir, 'trained_model.json'), warnings: [] })
    for (const file of [exported.safetensors, exported.onnx, exported.card]) expect(existsSync(file)).toBe(true)
    expect(exported.onnx_parity.max_abs_diff).toBeLessThanOrEqual(1e-4)
    expect(readJson<{ training: unknown }>(exported.card).training).toEqual({ round: 1, step: train.steps, classes: 30 })

    type Interval = { estimate: number; lower: number; upper: number }
    const evaluation = readJson<EvalRecord[]>(join(dir, 'eval.json'))
    expect(evaluation.map((e) => e.name)).toEqual(['random init', 'pixels (centred)', 'round 1'])
    const within = (m: Interval) => {
      expect(m.lower).toBeLessThanOrEqual(m.estimate)
      expect(m.upper).toBeGreaterThanOrEqual(m.estimate)
    }
    for (const e of evaluation) {
      for (const key of ['recall@1', 'recall@8', 'map@r', 'r_precision', 'knn@5']) within(e.metrics[key]!)
      within(e.clustering.nmi)
    }
    // The trained model against each baseline: paired differences whose
    // estimates are the differences of the models' own estimates.
    const [initial, pixels, trained] = evaluation as [EvalRecord, EvalRecord, EvalRecord]
    expect(initial.versus).toBeUndefined()
    expect(Object.keys(trained.versus!)).toEqual(['random init', 'pixels (centred)'])
    for (const base of [initial, pixels]) {
      const d = trained.versus![base.name]!
      for (const key of ['recall@1', 'map@r', 'knn@5']) {
        within(d[key]!)
        // Means of values in [0, 1]: they agree to float64 rounding, far below 1e-12.
        expect(Math.abs(d[key]!.estimate - (trained.metrics[key]!.estimate - base.metrics[key]!.estimate))).toBeLessThan(1e-12)
      }
      within(d.nmi!)
      expect(Math.abs(d.nmi!.estimate - (trained.clustering.nmi.estimate - base.clustering.nmi.estimate))).toBeLessThan(1e-12)
    }
    const report = readFileSync(join(dir, 'report', 'report.md'), 'utf8')
    for (const svg of ['metrics.svg', 'loss.svg', 'lr.svg', 'cluster-sizes-round-1.svg', 'recall-per-class.svg', 'embedding-map.svg']) {
      expect(report).toContain(`](${svg})`)
      expect(readFileSync(join(dir, 'report', svg), 'utf8')).toMatch(/^<svg/)
    }
    // The pictures are of this run's test split: the grid a PNG, every class in the per-class chart, each test image on the map.
    expect(report).toContain('](neighbours.png)')
    expect(readFileSync(join(dir, 'report', 'neighbours.png')).subarray(0, 8)).toEqual(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]))
    expect(report).toContain('and under pixels (centred), the strongest baseline on MAP@R')
    expect(report).toMatch(/Lowest Recall@1 under round 1: digit-\d \d\.\d{3} \(pixels \(centred\) \d\.\d{3}, \d+ queries\)/)
    expect(report).toContain('(pixels (centred) is the strongest baseline on Recall@1.)')
    expect(report).toContain('t-SNE (scikit-learn) of the 100 test embeddings of round 1')
    expect(readFileSync(join(dir, 'report', 'embedding-map.svg'), 'utf8').match(/<path /g)!.length).toBeGreaterThanOrEqual(100)

    // Every stage's time, in the manifest and the report.
    type Stages = Record<string, { key?: string; started: string; finished: string; seconds: number }>
    const stages = readJson<{ stages: Stages }>(join(dir, 'manifest.json')).stages
    expect(Object.keys(stages)).toEqual(['embed.round-1', 'cluster.round-1', 'train.round-1', 'eval'])
    for (const [name, stage] of Object.entries(stages)) {
      expect(Date.parse(stage.finished) - Date.parse(stage.started)).toBe(Math.round(stage.seconds * 1000))
      expect(stage.key === undefined).toBe(name === 'eval')
      expect(report).toMatch(new RegExp(`\\| ${name.replace('.', '\\.')} +\\| ${stage.started.slice(0, 19).replace('T', ' ')} UTC`))
    }
    expect(stages['train.round-1']!.seconds).toBeGreaterThan(1)

    // TensorBoard (its own reader): every training step, the cluster sizes and scores of round 1, each model's scores.
    const events = await readEvents(dir)
    expect(events.files).toHaveLength(1)
    const modelTags = ['random-init', 'pixels-centred', 'round-1']
    const evalTags = evaluation.flatMap((e, i) => [...Object.keys(e.metrics), 'nmi', 'ami', 'ari', 'purity'].map((m) => `eval/${modelTags[i]}/${m}`))
    const clusterTags = ['empty', 'singletons', 'max_over_mean', 'normalized_entropy', 'objective', 'nmi', 'ami', 'ari', 'purity'].map((m) => `cluster/${m}`)
    expect(events.tags.scalars.sort()).toEqual([...TRAIN_TAGS, ...clusterTags, ...evalTags].sort())
    expectTrainEvents(events, dir)
    expect(events.scalars['train/loss']).toHaveLength(train.steps)
    expect(events.scalars['cluster/nmi']).toEqual([[1, Math.fround(cluster.agreement.nmi)]])
    // The size histogram against the pseudo-labels counted here: K clusters, every image once.
    const sizeCounts = new Map<number, number>()
    const perCluster = Array<number>(30).fill(0)
    for (const c of clusters) perCluster[c]!++
    for (const size of perCluster) sizeCounts.set(size, (sizeCounts.get(size) ?? 0) + 1)
    const [sizes] = events.histograms['cluster/size']!
    expect(sizes).toMatchObject({ step: 1, num: 30, sum: 300, min: Math.min(...perCluster), max: Math.max(...perCluster) })
    // As the histogram dashboard shows it: each size's count in a bucket that holds that size.
    const shown = sizes!.buckets.filter(([, , n]) => n > 0)
    const expectedSizes = [...sizeCounts].sort((a, b) => a[0] - b[0])
    expect(shown.map(([, , n]) => n)).toEqual(expectedSizes.map(([, n]) => n))
    shown.forEach(([left, right], i) => expect(left <= expectedSizes[i]![0] && expectedSizes[i]![0] <= right).toBe(true))
    for (const [i, e] of evaluation.entries()) {
      const model = modelTags[i]!
      expect(events.scalars[`eval/${model}/map@r`]).toEqual([[i === 2 ? 1 : 0, Math.fround(e.metrics['map@r']!.estimate)]])
      expect(events.scalars[`eval/${model}/nmi`]).toEqual([[i === 2 ? 1 : 0, Math.fround(e.clustering.nmi.estimate)]])
    }
    expect(run.stdout).toMatch(/^random init\s+0\.\d{3} \[/m)
    expect(run.stdout).toMatch(/^round 1 against the strongest baseline on each measure \(paired 95% intervals\): MAP@R /m)
    expect(report).toContain('Paired differences (model − baseline)')
    expect(run.stdout).toContain(join(dir, 'report', 'report.md'))

    // A rerun finds every stage done: they keep the times of the session that ran them; evaluation runs again.
    // Under --json, stdout holds one document (eval.json's content and where the run is), the table goes to stderr.
    const again = await execa('node', [nfhm, 'eval', config, '--transport', transport, '--json'], { cwd: root })
    expect(JSON.parse(again.stdout)).toEqual({ run_dir: dir, report: join(dir, 'report', 'report.md'), eval: readJson(join(dir, 'eval.json')) })
    expect(again.stderr).toMatch(/^random init\s+0\.\d{3} \[/m)
    expect(again.stderr).toMatch(/cluster: K=30 \(cached/)
    expect(again.stderr).toMatch(/train round 1: done \(cached/)
    const rerun = readJson<{ stages: Stages }>(join(dir, 'manifest.json')).stages
    for (const name of ['embed.round-1', 'cluster.round-1', 'train.round-1']) expect(rerun[name]).toEqual(stages[name])
    expect(Date.parse(rerun.eval!.started)).toBeGreaterThan(Date.parse(stages.eval!.finished))
    // The same scores again: nothing logged twice, no second event file.
    expect((await readEvents(dir)).files).toEqual(events.files)
  })
})

test('a training killed mid-run resumes to the same weights as an uninterrupted one', async () => {
  // One runs directory: the second run finds the first's embeddings in the cache there, and trains sooner.
  const runsDir = join(root, 'runs-resume')
  const finish = async (name: string) => ({ config: writeConfig(name, runsDir, ''), dir: join(runsDir, name) })
  const whole = await finish('whole')
  await execa('node', [nfhm, 'train', whole.config], { cwd: root })

  const killed = await finish('killed')
  const first = execa('node', [nfhm, 'train', killed.config], { cwd: root, reject: false })
  const checkpoint = join(killed.dir, 'round-1', 'train', 'checkpoint.json')
  const metrics = join(killed.dir, 'metrics.jsonl')
  // Kill once a checkpoint exists and a few steps beyond it have run.
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      const lines = existsSync(metrics) ? readFileSync(metrics, 'utf8').split('\n').length - 1 : 0
      if (existsSync(checkpoint) && lines >= 9) {
        clearInterval(timer)
        first.kill('SIGKILL')
        resolve()
      }
    }, 10)
    void first.then(() => {
      clearInterval(timer)
      reject(new Error('training finished before it could be killed'))
    })
  })
  await first
  const resumed = await execa('node', [nfhm, 'train', killed.config, '--resume'], { cwd: root })
  // The checkpoint holds its own step (the .json beside it may lag by one write).
  const resumedAt = Number(/resuming at step (\d+) of 54/.exec(resumed.stderr)?.[1])
  expect(resumedAt).toBeGreaterThan(0)
  expect(resumedAt).toBeLessThan(54)

  const diff = await runPythonJson<{ max: number; keys: number }>(
    `
import json, sys, torch
a, b = (torch.load(p, weights_only=True) for p in json.load(sys.stdin))
assert a.keys() == b.keys()
print(json.dumps({"max": max((a[k].float() - b[k].float()).abs().max().item() for k in a), "keys": len(a)}))
`,
    [join(whole.dir, 'round-1', 'train', 'trained_model.pt'), join(killed.dir, 'round-1', 'train', 'trained_model.pt')],
  )
  expect(diff.max).toBeLessThanOrEqual(1e-6)
  const losses = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss)
  expect(losses(killed.dir)).toEqual(losses(whole.dir))

  // TensorBoard: the killed process's file and the resumed one's hold every step once, as the uninterrupted run logged them.
  const [killedEvents, wholeEvents] = await Promise.all([readEvents(killed.dir), readEvents(whole.dir)])
  expect(killedEvents.files).toHaveLength(2)
  expectTrainEvents(killedEvents, killed.dir)
  expect(killedEvents.scalars['train/loss']!.map(([step]) => step)).toEqual(Array.from({ length: 54 }, (_, i) => i))
  for (const tag of TRAIN_TAGS) expect(killedEvents.scalars[tag]).toEqual(wholeEvents.scalars[tag])
  expect(killedEvents.histograms['cluster/size']).toHaveLength(1)
})

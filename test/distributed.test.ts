// `nfhm run --nproc 2`: the worker as two gloo processes under torchrun,
// driven through the CLI like one worker, against the same run in one
// process. The global batch is the same (train.batch_size is global), every
// image gets the same augmentation, BatchNorm sees the whole batch and the
// head's classes are split over the ranks: the losses of every step and the
// final weights must agree to float32 rounding, and so must the evaluation,
// whose embedding and search are split over the ranks too.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { tableFromIPC } from 'apache-arrow'
import { beforeAll, expect, test } from 'vitest'
import { repoRoot } from '../src/bridge/python.js'
import { openWorker } from '../src/bridge/worker.js'
import { buildDigits, type DigitsData } from './helpers/digits.js'
import { runPythonJson } from './helpers/python.js'
import { conformanceEnv, conformanceMethods } from './helpers/workers.js'

const nfhm = join(repoRoot, 'bin', 'nfhm.js')
const root = mkdtempSync(join(tmpdir(), 'nfhm-distributed-'))
const runsDir = join(root, 'runs')
// One thread per process: the two ranks share two cores with everything else.
const env = { OMP_NUM_THREADS: '1' }
let digits: DigitsData

function writeConfig(): string {
  const path = join(root, 'config.yaml')
  writeFileSync(
    path,
    `runs_dir: ${runsDir}
data:
  table: ${digits.csv}
  image_root: ${digits.imageRoot}
  split: {by: image, test_fraction: 0.25, seed: 3}
model: {name: ViT-T/4@28px}
embed: {loader_workers: 0, shard_size: 64, batch_size: 24}
cluster: {k: 20}
train:
  epochs: 2
  batch_size: 32
  lr: 1.0e-3
  precision: fp32
  loader_workers: 0
  chunk_steps: 4
  checkpoint_every: 6
  augment: {crop_scale: [0.6, 1], randaug_ops: 1, randaug_magnitude: 5, erasing_prob: 0.25}
eval: {bootstrap: 50, knn_k: [5]}
`,
  )
  return path
}

// The two runs do the same float32 arithmetic with its sums in another order
// (BatchNorm's statistics, the softmax over classes split across the ranks,
// the all-reduced gradients), so they differ by rounding, in proportion to the
// size of what is compared: a gap is measured in units of EPS32 * the largest
// |value| compared (a step's loss; all the model's weights, the largest ~1;
// the centroids). Each step's loss is a mean over the batch of 32: summed in
// another order it may differ by 31 units (Higham's worst case for a sum of
// 32 terms), and training carries such differences into the weights and the
// next steps. K = 64 allows that worst case twice over. Measured: loss 1.6 on
// an Intel Xeon and 6.4 on an AMD EPYC; weights 8.3 and centroids 6.8 (Xeon).
const EPS32 = 2 ** -23
const K = 64

interface Step {
  step: number
  loss: number
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T
const steps = (dir: string): Step[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Step)

beforeAll(async () => {
  digits = await buildDigits(join(root, 'digits'), 40)
})

test('two processes under torchrun train and evaluate as one process does', async () => {
  const config = writeConfig()
  const one = await execa('node', [nfhm, 'run', config, '--set', 'name=one'], { cwd: root, env, reject: false })
  expect(one.stderr).not.toMatch(/^nfhm: /m)
  expect(one.exitCode).toBe(0)
  // A different runs folder: the second run embeds the images itself instead of using the cache.
  const two = await execa('node', [nfhm, 'run', config, '--set', 'name=two', '--set', `runs_dir=${join(root, 'runs-2')}`, '--nproc', '2'], {
    cwd: root,
    env,
    reject: false,
  })
  expect(two.stderr).not.toMatch(/^nfhm: /m)
  expect(two.exitCode).toBe(0)
  const dirs = [join(runsDir, 'one'), join(root, 'runs-2', 'two')]

  const manifests = dirs.map((d) => readJson<{ worker: { transport: string; world_size: number } }>(join(d, 'manifest.json')))
  expect(manifests[1]!.worker).toMatchObject({ transport: 'torchrun', world_size: 2 })
  expect(manifests[0]!.worker.world_size).toBe(1)

  const labels = dirs.map((d) => Array.from(tableFromIPC(readFileSync(join(d, 'round-1', 'cluster', 'pseudo_labels.arrow'))).getChild('cluster')!.toArray() as Int32Array))
  expect(labels[1]).toEqual(labels[0])

  const [single, double] = dirs.map(steps)
  expect(double!.map((s) => s.step)).toEqual(single!.map((s) => s.step))
  expect(single!.length).toBe(2 * Math.floor(300 / 32))
  const lossGap = Math.max(...single!.map((s, i) => Math.abs(s.loss - double![i]!.loss) / (EPS32 * Math.max(Math.abs(s.loss), Math.abs(double![i]!.loss)))))
  expect(lossGap).toBeLessThanOrEqual(K)

  const weights = await runPythonJson<{ model: number; centroids: number; keys: number }>(
    `
import json, sys
import numpy as np, torch
one, two = json.load(sys.stdin)
a, b = (torch.load(f"{d}/round-1/train/trained_model.pt", weights_only=True) for d in (one, two))
assert a.keys() == b.keys()
ca, cb = (np.load(f"{d}/round-1/train/final_centroids.npy") for d in (one, two))
assert ca.shape == cb.shape == (20, 32), (ca.shape, cb.shape)
def gap(xs, ys):  # the largest difference, in units of 2^-23 * the largest |value|
    xs, ys = [torch.as_tensor(x).double() for x in xs], [torch.as_tensor(y).double() for y in ys]
    scale = max(t.abs().max().item() for t in xs + ys)
    return max((x - y).abs().max().item() for x, y in zip(xs, ys)) / (2**-23 * scale)
floats = [k for k in a if a[k].is_floating_point()]
print(json.dumps({"model": gap([a[k] for k in floats], [b[k] for k in floats]), "centroids": gap([ca], [cb]), "keys": len(a)}))
`,
    dirs,
  )
  process.stderr.write(`1 vs 2 processes, largest gaps in units of float32 rounding (EPS32 * |value|): loss ${lossGap.toFixed(1)}, weights ${weights.model.toFixed(1)}, centroids ${weights.centroids.toFixed(1)}\n`)
  expect(weights.keys).toBeGreaterThan(10)
  expect(weights.model).toBeLessThanOrEqual(K)
  expect(weights.centroids).toBeLessThanOrEqual(K)

  type Eval = Array<{ name: string; metrics: Record<string, { estimate: number }> }>
  const [evalOne, evalTwo] = dirs.map((d) => readJson<Eval>(join(d, 'eval.json')))
  expect(evalTwo!.map((e) => e.name)).toEqual(evalOne!.map((e) => e.name))
  evalOne!.forEach((e, i) => {
    for (const [name, metric] of Object.entries(e.metrics)) expect(evalTwo![i]!.metrics[name]!.estimate).toBeCloseTo(metric.estimate, 6)
  })
})

test('under torchrun only rank 0 speaks the protocol: what any rank prints goes to the log', async () => {
  const log = join(root, 'torchrun-worker.log')
  const methods = { ...conformanceMethods, 'conf.print_on_every_rank': conformanceMethods['conf.print'] }
  const launch = { nproc: 2, nnodes: 1, node_rank: 0, master_addr: null, master_port: null }
  const worker = await openWorker({ transport: 'stdio', torchrun: launch, env: { ...conformanceEnv, ...env } }, methods, { logFile: log })
  try {
    expect(worker.kind).toBe('torchrun')
    expect((await worker.call('hello', {})).result.world_size).toBe(2)
    for (const text of ['noise 1', 'noise 2']) {
      expect((await worker.call('conf.print_on_every_rank', { text })).result.printed).toBe(true)
    }
    expect((await worker.call('echo', { after: 'the noise' })).result).toEqual({ after: 'the noise' })
  } finally {
    await worker.close()
  }
  // print() and a raw write to fd 1, on each of the two ranks
  expect(readFileSync(log, 'utf8').match(/noise 2/g)).toHaveLength(4)
})

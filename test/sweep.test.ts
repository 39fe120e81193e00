// `nfhm sweep` end to end on a small real data set (scikit-learn's digits):
// three K with two seeds, trained and evaluated on two workers; every
// artifact, sweep.json against the sub-runs' own files, its intervals
// against numpy/scipy on the same resamples, a resume that redoes nothing,
// and a clustering-only sweep given as ratios.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { execa } from 'execa'
import { beforeAll, describe, expect, it } from 'vitest'
import { repoRoot } from '../src/bridge/python.js'
import { loadConfig } from '../src/config/load.js'
import { resampleIndices } from '../src/eval/bootstrap.js'
import { planSweep } from '../src/experiments/sweep.js'
import type { ClusterSummary, EvalRecord } from '../src/run/records.js'
import type { SweepSummary } from '../src/experiments/sweep-summary.js'
import { runPythonJson } from './helpers/python.js'
import { readRuns } from './helpers/tensorboard.js'
import { tinyDigitsRun, type TinyRun } from './helpers/tiny-run.js'

const nfhm = join(repoRoot, 'bin', 'nfhm.js')
const KS = [10, 20, 40]
const SEEDS = 2
// Two workers on a two-core machine: one thread each.
const env = { OMP_NUM_THREADS: '1' }

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T

describe('planSweep', () => {
  const cfg = loadConfig(null, ['data.table=x.csv'])
  const plan = (sweep: Record<string, unknown>, n = 1000) => planSweep({ ...cfg.sweep, ...sweep }, cfg.eval, cfg.cluster, n)

  it('sorts K, turns ratios into K for the images clustered, and picks the default metric', () => {
    expect(plan({ k: [300, 100] })).toMatchObject({ ks: [100, 300], ratios: null, metric: 'ami', train: false })
    expect(plan({ ratio: [0.1, 0.01], train: true })).toMatchObject({ ks: [10, 100], ratios: [0.01, 0.1], metric: 'map@r' })
  })

  it('refuses what cannot be swept, naming the fix', () => {
    expect(() => plan({})).toThrow(/--k 300,1000.*--ratio/)
    expect(() => plan({ k: [10], ratio: [0.1] })).toThrow(/one of the two/)
    expect(() => plan({ k: [2000] })).toThrow(/K=2000 is larger than the number of images to cluster \(n=1000\)/)
    expect(() => plan({ ratio: [0.0101, 0.0099] })).toThrow(/0.0101 and 0.0099 both give K=10/)
    expect(() => plan({ k: [10], metric: 'map@r' })).toThrow(/map@r is measured on trained models: add --train/)
    expect(() => plan({ k: [10], metric: 'mapr' })).toThrow(/unknown metric "mapr"; choose one of recall@1, .*map@r.*ami/)
  })
})

describe('nfhm sweep on digits', () => {
  let data: TinyRun
  let dir: string
  let sweep: SweepSummary
  let firstRun: Awaited<ReturnType<typeof execa>>
  const runDir = (k: number, seed: number) => join(dir, `k-${k}`, `seed-${seed}`)

  beforeAll(async () => {
    data = await tinyDigitsRun('nfhm-sweep-')
    dir = join(data.runsDir, 'digits-sweep')
    firstRun = await execa('node', [nfhm, 'sweep', data.config, '--k', KS.join(','), '--seeds', String(SEEDS), '--train', '--workers', '2'], {
      cwd: repoRoot,
      env,
      reject: false,
    })
    if (firstRun.exitCode !== 0) throw new Error(`sweep failed:\n${firstRun.stderr}`)
    sweep = readJson<SweepSummary>(join(dir, 'sweep.json'))
  })

  it('writes every artifact: sweep.json, the report and its charts, one complete sub-run per (K, seed)', () => {
    for (const name of ['sweep.md', 'retrieval.svg', 'agreement.svg', 'cluster-sizes.svg']) expect(existsSync(join(dir, 'report', name)), name).toBe(true)
    for (const svg of ['retrieval.svg', 'agreement.svg', 'cluster-sizes.svg']) expect(readFileSync(join(dir, 'report', svg), 'utf8')).toMatch(/^<svg[^>]*>/)
    const md = readFileSync(join(dir, 'report', 'sweep.md'), 'utf8')
    for (const svg of ['retrieval.svg', 'agreement.svg', 'cluster-sizes.svg']) expect(md).toContain(`](${svg})`)
    expect(md).toContain(sweep.best.text)
    for (const k of KS) {
      for (let seed = 0; seed < SEEDS; seed++) {
        for (const file of ['manifest.json', 'eval.json', 'job.json', 'per_query.arrow', 'metrics.jsonl', 'round-1/cluster/cluster.json', 'round-1/cluster/pseudo_labels.arrow', 'round-1/train/train.json', 'round-1/train/trained_model.pt']) {
          expect(existsSync(join(runDir(k, seed), file)), `k-${k}/seed-${seed}/${file}`).toBe(true)
        }
      }
    }
    expect(firstRun.stdout).toContain(sweep.best.text)
  })

  it('runs every (K, seed) once, with seed s using k-means seed cluster.seed + s and training seed train.seed + s, on both workers', () => {
    expect(sweep.runs.map((r) => [r.k, r.seed])).toEqual(KS.flatMap((k) => [[k, 0], [k, 1]]))
    for (const r of sweep.runs) {
      expect(r.kmeans_seed).toBe(1234 + r.seed)
      expect(r.train_seed).toBe(r.seed)
      const manifest = readJson<{ config: { cluster: { k: number; seed: number }; train: { seed: number } } }>(join(runDir(r.k, r.seed), 'manifest.json'))
      expect(manifest.config.cluster).toMatchObject({ k: r.k, seed: r.kmeans_seed })
      expect(manifest.config.train.seed).toBe(r.seed)
    }
    const workers = sweep.runs.map((r) => readJson<{ worker: { name: string } }>(join(runDir(r.k, r.seed), 'manifest.json')).worker.name)
    expect(new Set(workers)).toEqual(new Set(['worker 1', 'worker 2']))
    expect(sweep.workers.map((w) => w.name)).toEqual(['worker 1', 'worker 2'])
  })

  it("agrees with the sub-runs' eval.json and cluster.json", () => {
    expect(sweep.points.map((p) => p.k)).toEqual(KS)
    for (const r of sweep.runs) {
      const [own] = readJson<EvalRecord[]>(join(runDir(r.k, r.seed), 'eval.json'))
      expect(r.eval!.metrics).toEqual(own!.metrics)
      expect(r.eval!.queries).toBe(own!.queries)
      const cluster = readJson<ClusterSummary>(join(runDir(r.k, r.seed), 'round-1', 'cluster', 'cluster.json'))
      expect(r.cluster).toEqual(cluster)
    }
    for (const p of sweep.points) {
      const runs = sweep.runs.filter((r) => r.k === p.k)
      for (const [metric, m] of Object.entries(p.retrieval!)) {
        const perSeed = runs.map((r) => readJson<EvalRecord[]>(join(runDir(r.k, r.seed), 'eval.json'))[0]!.metrics[metric]!.estimate)
        expect(m.per_seed).toEqual(perSeed)
        expect(m.estimate).toBeCloseTo((perSeed[0]! + perSeed[1]!) / 2, 12)
        expect(m.lower).toBeLessThanOrEqual(m.estimate)
        expect(m.upper).toBeGreaterThanOrEqual(m.estimate)
      }
      for (const metric of ['nmi', 'ami', 'ari'] as const) expect(p.agreement![metric]!.per_seed).toEqual(runs.map((r) => r.cluster.agreement![metric]))
      expect(p.sizes.max).toBe(Math.max(...runs.map((r) => r.cluster.sizes.max)))
    }
    const best = sweep.points.reduce((a, b) => (b.retrieval!['map@r']!.estimate > a.retrieval!['map@r']!.estimate ? b : a))
    expect(sweep.best).toMatchObject({ metric: 'map@r', k: best.k, estimate: best.retrieval!['map@r']!.estimate })
  })

  it('has the intervals numpy and scipy compute from the same resamples and seeds', async () => {
    const queries = sweep.runs[0]!.eval!.queries
    const resamples = sweep.bootstrap.resamples
    const metrics = Object.keys(sweep.points[0]!.retrieval!)
    const runner = sweep.best.runner_up!.k
    const ref = await runPythonJson<{ points: Record<string, Record<string, [number, number, number]>>; difference: [number, number, number]; t: Record<string, Record<string, [number, number]>> }>(
      `
import json, sys
import numpy as np, pyarrow as pa
from scipy import stats
cfg = json.load(sys.stdin)
idx = np.array(cfg["indices"]).reshape(cfg["resamples"], -1)
averaged, points, t = {}, {}, {}
for k, dirs in cfg["runs"].items():
    tables = [pa.ipc.open_file(d + "/per_query.arrow").read_all() for d in dirs]
    averaged[k] = {m: np.mean([tab.column(m).to_numpy() for tab in tables], axis=0) for m in cfg["metrics"]}
    points[k] = {}
    for m, avg in averaged[k].items():
        lo, hi = np.percentile(avg[idx].mean(axis=1), [2.5, 97.5])
        points[k][m] = [avg.mean(), lo, hi]
    t[k] = {}
    for m, values in cfg["agreement"][k].items():
        lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        t[k][m] = [lo, hi]
a, b = averaged[cfg["best"]]["map@r"], averaged[cfg["runner"]]["map@r"]
d = a[idx].mean(axis=1) - b[idx].mean(axis=1)
lo, hi = np.percentile(d, [2.5, 97.5])
print(json.dumps({"points": points, "difference": [a.mean() - b.mean(), lo, hi], "t": t}))
`,
      {
        indices: resampleIndices(queries, { resamples, seed: sweep.bootstrap.seed }),
        resamples,
        metrics,
        runs: Object.fromEntries(KS.map((k) => [k, [runDir(k, 0), runDir(k, 1)]])),
        agreement: Object.fromEntries(sweep.points.map((p) => [p.k, Object.fromEntries(Object.entries(p.agreement!).map(([m, v]) => [m, v.per_seed]))])),
        best: String(sweep.best.k),
        runner: String(runner),
      },
    )
    for (const p of sweep.points) {
      for (const metric of metrics) {
        const [estimate, lower, upper] = ref.points[p.k]![metric]!
        expect(p.retrieval![metric]!.estimate).toBeCloseTo(estimate, 12)
        expect(p.retrieval![metric]!.lower).toBeCloseTo(lower, 12)
        expect(p.retrieval![metric]!.upper).toBeCloseTo(upper, 12)
      }
      for (const [metric, [lower, upper]] of Object.entries(ref.t[p.k]!)) {
        expect(p.agreement![metric]!.lower).toBeCloseTo(lower, 10)
        expect(p.agreement![metric]!.upper).toBeCloseTo(upper, 10)
      }
    }
    const d = sweep.best.difference!
    expect(d.estimate).toBeCloseTo(ref.difference[0], 12)
    expect(d.lower).toBeCloseTo(ref.difference[1], 12)
    expect(d.upper).toBeCloseTo(ref.difference[2], 12)
    expect(sweep.best.distinguishable).toBe(ref.difference[1] > 0)
  })

  it('resumes: a second run redoes no clustering, training or evaluation and finds the same', async () => {
    const again = await execa('node', [nfhm, 'sweep', data.config, '--k', KS.join(','), '--seeds', String(SEEDS), '--train'], { cwd: repoRoot, env, reject: false })
    expect(again.exitCode, again.stderr).toBe(0)
    expect(again.stderr).not.toMatch(/k-means of|resuming at step/)
    expect(again.stderr.match(/train round 1: done \(cached/g)).toHaveLength(KS.length * SEEDS)
    expect(again.stderr.match(/eval: done \(cached/g)).toHaveLength(KS.length * SEEDS)
    const resumed = readJson<SweepSummary>(join(dir, 'sweep.json'))
    expect(resumed.points).toEqual(sweep.points)
    expect(resumed.best).toEqual(sweep.best)
    // TensorBoard finds each sub-run as a run of its own, every training step and the evaluation logged once.
    const runs = await readRuns(dir)
    expect(Object.keys(runs).sort()).toEqual(KS.flatMap((k) => Array.from({ length: SEEDS }, (_, s) => `k-${k}/seed-${s}`)).sort())
    for (const p of sweep.runs) {
      const tags = runs[p.dir]!
      expect(tags['train/loss']!.map(([step]) => step)).toEqual(Array.from({ length: p.train!.steps }, (_, i) => i))
      expect(tags['cluster/ami']).toEqual([[1, Math.fround(p.cluster.agreement!.ami)]])
      expect(tags['eval/round-1/map@r']).toEqual([[1, Math.fround(p.eval!.metrics['map@r']!.estimate)]])
    }
  })

  it('judges K by clustering agreement alone when not training, K given as ratios of the images', async () => {
    const ratios = KS.map((k) => k / sweep.clustered)
    const run = await execa('node', [nfhm, 'sweep', data.config, '--ratio', ratios.join(','), '--seeds', String(SEEDS), '--run-dir', join(data.runsDir, 'ratios')], { cwd: repoRoot, env, reject: false })
    expect(run.exitCode, run.stderr).toBe(0)
    const cheap = readJson<SweepSummary>(join(data.runsDir, 'ratios', 'sweep.json'))
    expect(cheap).toMatchObject({ x: 'ratio', metric: 'ami', train: false, baselines: [] })
    expect(cheap.points.map((p) => [p.k, p.ratio, p.retrieval])).toEqual(KS.map((k, i) => [k, ratios[i], null]))
    // Same embeddings (the shared cache), same K and k-means seeds: the same clusters as the trained sweep's.
    expect(cheap.points.map((p) => p.agreement)).toEqual(sweep.points.map((p) => p.agreement))
    const best = cheap.points.reduce((a, b) => (b.agreement!.ami!.estimate > a.agreement!.ami!.estimate ? b : a))
    expect(cheap.best).toMatchObject({ metric: 'ami', k: best.k })
    expect(existsSync(join(data.runsDir, 'ratios', 'report', 'retrieval.svg'))).toBe(false)
    expect(readFileSync(join(data.runsDir, 'ratios', 'report', 'sweep.md'), 'utf8')).toContain('](agreement.svg)')
    expect(existsSync(join(data.runsDir, 'ratios', 'k-10', 'seed-0', 'round-1', 'train'))).toBe(false)
  })
})

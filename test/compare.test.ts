// `nfhm compare` on a small real data set: a run directory, a checkpoint
// file and the baselines under one protocol; the same numbers as each
// model's own evaluation, intervals equal to numpy's on the same resamples,
// and the best model marked only where its interval clears the runner-up's.
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execa } from 'execa'
import { beforeAll, describe, expect, it } from 'vitest'
import { repoRoot } from '../src/bridge/python.js'
import { loadConfig } from '../src/config/load.js'
import { resampleIndices } from '../src/eval/bootstrap.js'
import { resolveInputs, trainingDataWarning, type Comparison } from '../src/experiments/compare.js'
import { TEST, TRAIN } from '../src/recipe/split.js'
import { readArrowFile } from '../src/run/arrow.js'
import { EXIT } from '../src/run/exit-codes.js'
import type { EvalRecord } from '../src/run/records.js'
import { runPythonJson } from './helpers/python.js'
import { tinyDigitsRun, type TinyRun } from './helpers/tiny-run.js'

const nfhm = join(repoRoot, 'bin', 'nfhm.js')
const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T
const compare = (args: string[], config: string) => execa('node', [nfhm, 'compare', ...args, '--config', config], { cwd: repoRoot, reject: false })

describe('nfhm compare', () => {
  let data: TinyRun
  let sweepDir: string
  let runArg: string
  let checkpointArg: string
  let comparison: Comparison
  let human: string
  let printed: { compare: unknown; sweep: unknown }

  beforeAll(async () => {
    data = await tinyDigitsRun('nfhm-compare-')
    sweepDir = join(data.runsDir, 'digits-sweep')
    // Two trained models: the sub-runs of a one-seed sweep.
    const sweep = await execa('node', [nfhm, 'sweep', data.config, '--k', '10,40', '--train', '--json'], { cwd: repoRoot, reject: false })
    if (sweep.exitCode !== 0) throw new Error(`sweep failed:\n${sweep.stderr}`)
    runArg = join(sweepDir, 'k-10', 'seed-0')
    checkpointArg = join(sweepDir, 'k-40', 'seed-0', 'round-1', 'train', 'trained_model.pt')
    const run = await compare([runArg, checkpointArg, '--json'], data.config)
    if (run.exitCode !== 0) throw new Error(`compare failed:\n${run.stderr}`)
    // Under --json the table goes to stderr and stdout holds nothing but the document.
    human = run.stderr
    printed = { compare: JSON.parse(run.stdout), sweep: JSON.parse(sweep.stdout) }
    expect(run.stderr).not.toMatch(/^warning:/m)
    comparison = readJson<Comparison>(join(data.runsDir, 'digits-compare', 'compare.json'))
  })

  it('--json prints what compare.json and sweep.json hold, and nothing else on stdout', () => {
    expect(printed.compare).toEqual(comparison)
    expect(printed.sweep).toEqual(readJson(join(sweepDir, 'sweep.json')))
    expect(human).toContain(`compare.json: ${join(data.runsDir, 'digits-compare', 'compare.json')}`)
  })

  it('writes compare.json, compare.md and its chart, one row per model, baselines first', () => {
    const dir = join(data.runsDir, 'digits-compare')
    expect(readFileSync(join(dir, 'compare.svg'), 'utf8')).toMatch(/^<svg/)
    expect(readFileSync(join(dir, 'compare.md'), 'utf8')).toContain('](compare.svg)')
    expect(comparison.models.map((m) => [m.name, m.kind])).toEqual([
      ['random init', 'baseline'],
      ['pixels', 'baseline'],
      [runArg, 'run'],
      [checkpointArg, 'checkpoint'],
    ])
    expect(comparison.metrics).toEqual(['recall@1', 'recall@2', 'recall@4', 'recall@8', 'map@r', 'r_precision', 'knn@10', 'knn@20', 'knn@100'])
    for (const m of comparison.models) expect(Object.keys(m.metrics)).toEqual(comparison.metrics)
    for (const m of comparison.models) expect(m.queries).toBe(comparison.test.queries)
  })

  it("gives each trained model the numbers of its own run's evaluation (one protocol, one test split)", () => {
    const own = (k: number) => readJson<EvalRecord[]>(join(sweepDir, `k-${k}`, 'seed-0', 'eval.json'))[0]!
    expect(comparison.models[2]!.metrics).toEqual(own(10).metrics)
    expect(comparison.models[3]!.metrics).toEqual(own(40).metrics)
    expect(comparison.models[2]!.model.weights).toBe(join(runArg, 'round-1', 'train', 'trained_model.pt'))
  })

  it('has the intervals numpy computes over queries from the same resamples', async () => {
    const ref = await runPythonJson<Record<string, [number, number, number]>>(
      `
import json, sys
import numpy as np, pyarrow as pa
cfg = json.load(sys.stdin)
idx = np.array(cfg["indices"]).reshape(cfg["resamples"], -1)
table = pa.ipc.open_file(cfg["per_query"]).read_all()
out = {}
for m in cfg["metrics"]:
    v = table.column(m).to_numpy()
    lo, hi = np.percentile(v[idx].mean(axis=1), [2.5, 97.5])
    out[m] = [v.mean(), lo, hi]
print(json.dumps(out))
`,
      {
        indices: resampleIndices(comparison.test.queries, comparison.bootstrap),
        resamples: comparison.bootstrap.resamples,
        metrics: comparison.metrics,
        per_query: join(runArg, 'per_query.arrow'),
      },
    )
    for (const metric of comparison.metrics) {
      const [estimate, lower, upper] = ref[metric]!
      const ci = comparison.models[2]!.metrics[metric]!
      expect(ci.estimate).toBeCloseTo(estimate, 12)
      expect(ci.lower).toBeCloseTo(lower, 12)
      expect(ci.upper).toBeCloseTo(upper, 12)
    }
  })

  it("marks the best model per metric only where its interval does not overlap the runner-up's", () => {
    const md = readFileSync(join(data.runsDir, 'digits-compare', 'compare.md'), 'utf8')
    let marks = 0
    for (const metric of comparison.metrics) {
      const ranked = [...comparison.models].sort((a, b) => b.metrics[metric]!.estimate - a.metrics[metric]!.estimate)
      const [best, second] = [ranked[0]!, ranked[1]!]
      const clear = best.metrics[metric]!.lower > second.metrics[metric]!.upper
      expect(comparison.best[metric]).toMatchObject({ model: best.name, runner_up: second.name, marked: clear })
      expect(comparison.best[metric]!.difference!.estimate).toBeCloseTo(best.metrics[metric]!.estimate - second.metrics[metric]!.estimate, 12)
      if (clear) marks++
    }
    // One bold cell per marked metric, none elsewhere (the table before the next section).
    const table = md.slice(0, md.indexOf('## Best against the runner-up'))
    expect(table.match(/\*\*\d\.\d{3} \[/g) ?? []).toHaveLength(marks)
    // Raw pixels beat an untrained random ViT on digits by far: at least one mark to check.
    expect(marks).toBeGreaterThan(0)
    expect(human).toMatch(/\* best, its 95% interval clear of the runner-up's/)
  })

  it('refuses what it cannot compare, naming the fix, before any worker starts', async () => {
    const cli = await compare([join(data.runsDir, 'nope')], data.config)
    expect(cli.exitCode).toBe(EXIT.badInput)
    expect(cli.stderr).toMatch(/^nfhm: .*nope: no such run directory or checkpoint$/m)
    expect(cli.stderr).not.toContain('images:')

    const untrained = join(data.runsDir, 'untrained')
    mkdirSync(untrained, { recursive: true })
    cpSync(join(runArg, 'manifest.json'), join(untrained, 'manifest.json'))
    const config = loadConfig(data.config)
    const resolve = (args: string[]) => () => resolveInputs(config, args)
    expect(resolve([sweepDir])).toThrow(/is a sweep: pass its sub-runs, e.g. .*k-1000\/seed-0/)
    expect(resolve([join(data.runsDir, 'nope')])).toThrow(/nope: no such run directory or checkpoint/)
    expect(resolve([untrained])).toThrow(/holds no trained model .*train it first/)
    expect(resolve([runArg, `${runArg}/`])).toThrow(/is named twice/)
    expect(resolve([])).toThrow(/name at least one run directory or checkpoint/)
  })

  it('warns that a run trained on other data only when its training images differ', async () => {
    // A sweep's sub-run trained on the images its sweep listed.
    const [input] = resolveInputs(loadConfig(data.config), [runArg])
    expect(input!.imageList).toBe(join(sweepDir, 'images.arrow'))
    const list = readArrowFile(input!.imageList!)
    const paths = list.getChild('path')!.toArray() as string[]
    const split = Uint8Array.from(list.getChild('split')!.toArray() as string[], (s) => (s === 'test' ? TEST : TRAIN))
    expect(trainingDataWarning(input!, { paths, split })).toBeNull()
    const moved = split.slice()
    moved[split.indexOf(TRAIN)] = TEST
    expect(trainingDataWarning(input!, { paths, split: moved })).toMatch(/trained on other images than this comparison's training split: 1 of its 400 training images are test images here/)

    // The same table with its label column renamed: other data settings, the same training images, no warning.
    const config = readFileSync(data.config, 'utf8')
    const table = /table: ([^,]+),/.exec(config)![1]!
    const renamed = join(data.runsDir, 'digits-renamed.csv')
    writeFileSync(renamed, readFileSync(table, 'utf8').replace(/^path,label/, 'path,digit'))
    const renamedConfig = join(data.runsDir, 'renamed.yaml')
    writeFileSync(
      renamedConfig,
      config
        .replace(`table: ${table},`, `table: ${renamed}, label_column: digit,`)
        .replace('name: digits', 'name: renamed')
        .replace(/baselines: \[[^\]]*\]/, 'baselines: []'),
    )
    const same = await compare([runArg], renamedConfig)
    expect(same.exitCode).toBe(0)
    expect(same.stderr).toContain('images: 600 from')
    expect(same.stderr).not.toMatch(/^warning:/m)
  })
})

// Evaluation protocols through the CLI on a small real set: queries against a
// gallery chosen by a column, on the whole collection, with labels that look
// like numbers and unlabelled rows, checked against pytorch-metric-learning's
// AccuracyCalculator on the run's own embeddings; and a run with no label at
// all, whose evaluation is skipped rather than scored.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { tableFromIPC } from 'apache-arrow'
import { execa } from 'execa'
import { beforeAll, expect, test } from 'vitest'
import { repoRoot } from '../src/bridge/python.js'
import type { EvalRecord } from '../src/run/records.js'
import { buildDigits, type DigitsData } from './helpers/digits.js'
import { runPythonJson } from './helpers/python.js'

const nfhm = join(repoRoot, 'bin', 'nfhm.js')
const root = mkdtempSync(join(tmpdir(), 'nfhm-protocols-'))
let digits: DigitsData
const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T

/** Digits 0-3 renamed to labels a spreadsheet would call numbers: '+1' and '1' are two classes. */
const RENAMED: Record<string, string> = { 'digit-0': '+1', 'digit-1': '-1', 'digit-2': '100', 'digit-3': '1' }

beforeAll(async () => {
  digits = await buildDigits(join(root, 'digits'), 20)
})

/**
 * The digits' table with a domain column: each class alternates field and
 * museum images, but every 9 is a field image (queries with no match in the
 * gallery); every tenth 8 has its label blanked (unlabelled). `label` picks
 * each row's label.
 */
function writeTable(name: string, label: (row: string[], i: number) => string): string {
  const [header, ...rows] = readFileSync(digits.csv, 'utf8').trimEnd().split(/\r?\n/)
  const csv = join(root, `${name}.csv`)
  const lines = rows.map((line, i) => {
    const row = line.split(',')
    const domain = row[1] === 'digit-9' || i % 2 === 0 ? 'field' : 'museum'
    return [row[0], label(row, i), domain].join(',')
  })
  writeFileSync(csv, [`${header},domain`, ...lines].join('\n') + '\n')
  return csv
}

function writeConfig(name: string, csv: string, data: string, evaluation: string): { file: string; dir: string } {
  const runsDir = join(root, `runs-${name}`)
  const file = join(root, `${name}.yaml`)
  writeFileSync(
    file,
    `name: ${name}
runs_dir: ${runsDir}
data: {table: ${csv}, image_root: ${digits.imageRoot}, ${data}}
model: {name: ViT-T/4@28px}
embed: {loader_workers: 0}
cluster: {k: 20}
train: {epochs: 1, batch_size: 32, lr: 1.0e-3, loader_workers: 0, augment: {crop_scale: [0.6, 1], randaug_ops: 0, erasing_prob: 0}}
eval: {bootstrap: 50, recall_at: [1, 4], knn_k: [5], baselines: [pixels], ${evaluation}}
`,
  )
  return { file, dir: join(runsDir, name) }
}

test('queries against a gallery by column, on the whole collection: agrees with AccuracyCalculator; numbers as names; unlabelled rows trained on, never queried', async () => {
  const csv = writeTable('domains', (row, i) => (row[1] === 'digit-8' && i % 10 === 0 ? '' : (RENAMED[row[1]!] ?? row[1]!)))
  const { file, dir } = writeConfig('domains', csv, 'split: {by: none}', 'protocol: {by: column, column: domain, query: field, gallery: museum}')
  const run = await execa('node', [nfhm, 'run', file], { cwd: root, reject: false })
  expect(run.stderr).not.toMatch(/^nfhm: /m)
  expect(run.exitCode).toBe(0)

  // 200 images, 2 of them unlabelled; '+1' and '1' are two of the 10 classes.
  const images = tableFromIPC(readFileSync(join(dir, 'images.arrow')))
  const labels = images.getChild('label')!.toArray() as Array<string | null>
  const classOf = images.getChild('class')!.toArray() as Int32Array
  const domainOf = readFileSync(csv, 'utf8').trimEnd().split('\n').slice(1).map((line) => line.split(',')[2]!)
  expect(new Set(labels)).toEqual(new Set(['+1', '-1', '100', '1', 'digit-4', 'digit-5', 'digit-6', 'digit-7', 'digit-8', 'digit-9', null]))
  const unlabelled = labels.filter((l) => l === null).length
  expect(unlabelled).toBe(2)
  const splits = images.getChild('split')!.toArray() as string[]
  expect(splits.every((s, i) => s === (labels[i] === null ? 'train' : 'train+test'))).toBe(true)

  // Stated as the whole collection in the manifest, eval.json and the report; trained on every image.
  const manifest = readJson<{ inputs: Record<string, unknown>; evaluation: Record<string, unknown> }>(join(dir, 'manifest.json'))
  expect(manifest.inputs).toMatchObject({ images: 200, classes: 10, unlabelled: 2, train: 200, test: 198, evaluated: 'whole collection' })
  const queryIds = [...classOf.keys()].filter((i) => classOf[i]! >= 0 && domainOf[i] === 'field')
  const galleryIds = [...classOf.keys()].filter((i) => classOf[i]! >= 0 && domainOf[i] === 'museum')
  const protocol = { images: 'whole collection', by: 'column', column: 'domain', query: ['field'], gallery: ['museum'], query_images: queryIds.length, gallery_images: galleryIds.length, unlabelled: 0 }
  expect(manifest.evaluation).toEqual(protocol)
  expect(tableFromIPC(readFileSync(join(dir, 'round-1', 'cluster', 'pseudo_labels.arrow'))).numRows).toBe(200)
  const evaluation = readJson<EvalRecord[]>(join(dir, 'eval.json'))
  expect(evaluation.map((e) => e.name)).toEqual(['pixels', 'round 1'])
  const report = readFileSync(join(dir, 'report', 'report.md'), 'utf8')
  expect(report).toContain('the whole collection: all 200 for training (their labels unused), and the 198 labelled ones, the same images, for evaluation')
  expect(report).toContain('## Retrieval on the whole collection')
  expect(report).toContain(`the ${queryIds.length} with domain = "field" search the ${galleryIds.length} with domain = "museum"`)
  expect(report).toContain('## Pictures of the whole collection')
  expect(report).toContain('nearest gallery images under round 1')
  expect(report).toContain('](neighbours.png)')

  // Every 9 is a query with no match in the gallery: counted and left out.
  const nines = queryIds.filter((i) => labels[i] === 'digit-9').length
  expect(nines).toBe(20)
  for (const e of evaluation) {
    expect(e.protocol).toEqual(protocol)
    expect(e.excluded_queries).toBe(nines)
    expect(e.queries).toBe(queryIds.length - nines)
    const reference = await runPythonJson<Record<string, number>>(
      `
import glob, json, sys
import numpy as np
import pyarrow as pa
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
cfg = json.load(sys.stdin)
classes = np.array(cfg["classes"])
def side(folder):
    table = pa.concat_tables(pa.ipc.open_file(p).read_all() for p in sorted(glob.glob(folder + "/shard-*.arrow")))
    vectors = np.stack(table["embedding"].to_numpy(zero_copy_only=False)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, classes[table["id"].to_numpy()]
queries, query_labels = side(cfg["queries"])
gallery, gallery_labels = side(cfg["gallery"])
calculator = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"), k="max_bin_count")
acc = calculator.get_accuracy(queries, query_labels, gallery, gallery_labels, ref_includes_query=False)
print(json.dumps({k: float(v) for k, v in acc.items()}))
`,
      { queries: e.embeddings, gallery: e.gallery_embeddings, classes: classOf },
    )
    expect(e.metrics['recall@1']!.estimate).toBeCloseTo(reference.precision_at_1!, 6)
    expect(e.metrics['map@r']!.estimate).toBeCloseTo(reference.mean_average_precision_at_r!, 6)
    expect(e.metrics['r_precision']!.estimate).toBeCloseTo(reference.r_precision!, 6)
  }
  const trained = evaluation[1]!
  expect(Object.keys(trained.versus!)).toEqual(['pixels'])
  const nmi = trained.versus!.pixels!.nmi!
  expect(nmi.lower).toBeLessThanOrEqual(nmi.estimate)
  expect(nmi.upper).toBeGreaterThanOrEqual(nmi.estimate)
})

test('no image has a label: trained on every image, evaluation skipped with the reason instead of scored', async () => {
  const csv = writeTable('unlabelled', () => '')
  const { file, dir } = writeConfig('unlabelled', csv, 'split: {by: image, test_fraction: 0.25}', 'protocol: {by: all}')
  const run = await execa('node', [nfhm, 'run', file], { cwd: root, reject: false })
  expect(run.stderr).not.toMatch(/^nfhm: /m)
  expect(run.exitCode).toBe(0)
  const reason = 'no test image has a label (data.label_column: label), so retrieval has nothing to be right about; label some images to evaluate'
  expect(run.stderr).toContain(`eval: skipped: ${reason}`)
  expect(run.stderr).toContain('(0 classes, 200 unlabelled; 200 train, 0 test)')
  expect(existsSync(join(dir, 'eval.json'))).toBe(false)
  expect(run.stdout).not.toMatch(/1\.000/)
  expect(tableFromIPC(readFileSync(join(dir, 'round-1', 'cluster', 'pseudo_labels.arrow'))).numRows).toBe(200)
  expect(readJson<{ evaluation: unknown }>(join(dir, 'manifest.json')).evaluation).toEqual({ skipped: reason })
  expect(readFileSync(join(dir, 'report', 'report.md'), 'utf8')).toContain(`## Retrieval\n\nNot evaluated: ${reason}.`)
})

// Bad input through the real CLI: bad image files, tables, configs and
// checkpoints. Each is refused with an error that names the file and the row
// or field; a run refused before its inputs were checked writes nothing.
import { cpSync, existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { tableFromIPC } from 'apache-arrow'
import { beforeAll, describe, expect, test } from 'vitest'
import { buildFaultyCollection, faultConfig, filesUnder, nfhm, snapshot, type FaultyCollection } from './helpers/faults.js'
import { EXIT } from '../src/run/exit-codes.js'
import { runPythonJson } from './helpers/python.js'

const root = mkdtempSync(join(tmpdir(), 'nfhm-faults-input-'))
let data: FaultyCollection

beforeAll(async () => {
  data = await buildFaultyCollection(join(root, 'data'))
})

/** A config file over `csv`; `edit` may change its YAML text. */
function config(name: string, csv = data.csv, edit = (yaml: string) => yaml): { file: string; runsDir: string; dir: string } {
  const runsDir = join(root, `runs-${name}`)
  const file = join(root, `${name}.yaml`)
  writeFileSync(file, edit(faultConfig(name, runsDir, { csv, imageRoot: data.imageRoot })))
  return { file, runsDir, dir: join(runsDir, name) }
}

/** The "path: reason" lines of a BadImagesError, by path relative to the image root. */
function listedBadImages(stderr: string): Record<string, string> {
  const listed: Record<string, string> = {}
  for (const match of stderr.matchAll(/^ {2}(\S+): (.+)$/gm)) listed[match[1]!.replace(`${data.imageRoot}/`, '')] = match[2]!
  return listed
}

describe('bad image files', () => {
  test('stop the run before any training, each one listed with its reason (test split included)', async () => {
    const { file, dir } = config('bad-images')
    const run = await nfhm(['run', file])
    expect(run.exitCode).toBe(EXIT.badInput)
    expect(run.stderr).toMatch(`nfhm: ${Object.keys(data.bad).length} image(s) cannot be read; fix or remove them, or rerun with --skip-bad:`)
    const listed = listedBadImages(run.stderr)
    expect(Object.keys(listed).sort()).toEqual(Object.keys(data.bad).sort())
    for (const [path, reason] of Object.entries(data.bad)) expect(listed[path]?.slice(0, reason.length)).toBe(reason)
    // CMYK and 16-bit files are converted, not refused.
    for (const path of data.odd) expect(run.stderr).not.toContain(path)
    // Nothing was clustered or trained.
    expect(existsSync(join(dir, 'round-1'))).toBe(false)
    expect(existsSync(join(dir, 'metrics.jsonl'))).toBe(false)
  })

  test('--skip-bad goes on and records the skipped files in the manifest and the report', async () => {
    const { file, dir } = config('skip-bad')
    const run = await nfhm(['run', file, '--skip-bad'])
    expect(run.stderr).not.toMatch(/^nfhm: /m)
    expect(run.exitCode).toBe(0)
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { skipped_images: Array<{ path: string; reason: string }> }
    const skipped = Object.fromEntries(manifest.skipped_images.map((b) => [b.path.replace(`${data.imageRoot}/`, ''), b.reason]))
    expect(Object.keys(skipped).sort()).toEqual(Object.keys(data.bad).sort())
    for (const [path, reason] of Object.entries(data.bad)) expect(skipped[path]?.slice(0, reason.length)).toBe(reason)
    const report = readFileSync(join(dir, 'report', 'report.md'), 'utf8')
    const section = report.slice(report.indexOf('## Skipped images'))
    for (const b of manifest.skipped_images) expect(section).toContain(`- \`${b.path}\`: ${b.reason}`)
    // Every readable training image, the CMYK and 16-bit ones included, got a pseudo-label.
    const badTrain = Object.keys(data.bad).filter((p) => !p.includes('test-')).length
    const labels = tableFromIPC(readFileSync(join(dir, 'round-1', 'cluster', 'pseudo_labels.arrow')))
    expect(labels.numRows).toBe(data.trainImages - badTrain)
  })
})

test('an image-folder tree: a symlink loop is entered once, with a warning; a file changed in place is embedded again', async () => {
  const tree = join(root, 'tree')
  cpSync(data.imageRoot, tree, { recursive: true, filter: (path) => !path.startsWith(join(data.imageRoot, 'odd')) }) // the digits
  symlinkSync(tree, join(tree, '3', 'loop'))
  const { file, runsDir, dir } = config('tree', data.goodCsv, (yaml) => yaml.replace(/^data:\n(?: {2}.*\n)+/m, `data:\n  folder: ${tree}\n  split: {by: image}\n`))
  const embed = async () => {
    const run = await nfhm(['run', file, '--until', 'embed'])
    expect(run.exitCode, run.stderr).toBe(0)
    const shards = /-> (\S+)/.exec(run.stderr)![1]!
    // Each image's embedding, by path.
    const images = tableFromIPC(readFileSync(join(dir, 'images.arrow')))
    const vectors = new Map<string, number[]>()
    for (const shard of filesUnder(shards, /^shard-\d+\.arrow$/)) {
      const table = tableFromIPC(readFileSync(shard))
      for (let i = 0; i < table.numRows; i++) vectors.set(images.get(table.getChild('id')!.get(i) as number)!.path as string, Array.from(table.getChild('embedding')!.get(i)!.toArray() as Float32Array))
    }
    return { stderr: run.stderr, vectors }
  }
  const first = await embed()
  expect(first.stderr).toContain(`images: ${data.images} from ${tree}`) // each once
  expect(first.stderr).toContain(`warning: images: skipped folder ${tree}/3/loop: a link back to ${tree}, which contains it (a loop); not followed`)
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { inputs: { skipped_folders: Array<{ path: string }> } }
  expect(manifest.inputs.skipped_folders.map((f) => f.path)).toEqual([`${tree}/3/loop`])

  // Another digit's pixels under the same path, the same inode: only its size and time tell.
  const other = join(tree, '7', '000.png')
  const [changed, unchanged] = [...first.vectors.keys()].filter((path) => path !== other)
  writeFileSync(changed!, readFileSync(other))
  const second = await embed()
  expect(second.stderr).not.toContain('(cached:')
  expect(second.vectors.get(changed!)).not.toEqual(first.vectors.get(changed!))
  expect(second.vectors.get(unchanged!)).toEqual(first.vectors.get(unchanged!))
  expect(filesUnder(join(runsDir, '.cache', 'embeddings'), /embeddings\.json$/)).toHaveLength(2)
})

describe('bad tables and configs are refused with nothing written', () => {
  const rows = () => readFileSync(data.goodCsv, 'utf8').trimEnd().split(/\r?\n/)

  test('a damaged table is bad input (exit 3), not a worker failure; a command-line mistake is a usage error (exit 2)', async () => {
    const table = join(root, 'damaged.parquet')
    writeFileSync(table, 'PAR1 not a Parquet file PAR1')
    const { file, runsDir } = config('damaged-table', table)
    const run = await nfhm(['run', file])
    expect(run.exitCode).toBe(EXIT.badInput)
    expect(run.stderr).toContain(`nfhm: worker method "data.scan" raised ValueError: ${table}: cannot read the table: `)
    expect(existsSync(runsDir)).toBe(false)
    for (const [args, expected] of [
      [['run', file, '--bogus'], "error: unknown option '--bogus'"],
      [['sweep', file, '--workers', '0'], "error: option '--workers <n>' argument '0' is invalid. expected a whole number >= 1"],
      [['compare', file], "error: required option '--config <file>' not specified"],
    ] as const) {
      const usage = await nfhm([...args])
      expect(usage.exitCode).toBe(EXIT.usage)
      expect(usage.stderr).toContain(expected)
    }
    expect(existsSync(runsDir)).toBe(false)
  })

  test.each([
    ['a missing column', (r: string[]) => [r[0]!.replace('path', 'file'), ...r.slice(1)], [], `no column 'path' (data.path_column); the columns are ['file', 'label', 'split']`],
    ['duplicate paths', (r: string[]) => [...r.slice(0, 3), r[1]!, ...r.slice(3)], [], `column 'path' lists 1 image more than once (row numbers as a spreadsheet shows them: the header is row 1): rows 2, 4: `],
    [
      'text among number labels',
      (r: string[]) => [r[0]!, ...r.slice(1).map((row, i) => (i === 0 ? row : row.replace(/digit-(\d)/, '$1')))],
      ['--set', 'data.label_type=number'],
      `column 'label' holds text where data.label_type is 'number' (row numbers as a spreadsheet shows them: the header is row 1): row 2 (e.g. 'digit-0'). Set data.label_type: name to use every label as a name`,
    ],
  ])('%s: the error names the table, the column and the rows, and no run directory is made', async (name, edit, args, expected) => {
    const csv = join(root, `${name.replaceAll(' ', '-')}.csv`)
    writeFileSync(csv, edit(rows()).join('\n') + '\n')
    const { file, runsDir } = config(name.replaceAll(' ', '-'), csv)
    const run = await nfhm(['run', file, ...args])
    expect(run.exitCode).toBe(EXIT.badInput)
    expect(run.stderr).toContain(`nfhm: worker method "data.scan" raised ValueError: ${csv}: ${expected}`)
    expect(existsSync(runsDir)).toBe(false)
  })

  test.each([
    ['an unknown config key', /^eval: .*$/m, 'eval: {recal_at: [1]}', /eval\.recal_at: unknown field \(did you mean "recall_at"\?\)/],
    ['a wrong type', /^cluster: .*$/m, 'cluster: {k: 10, niter: many}', /cluster\.niter = "many": Invalid input: expected number, received string/],
  ])('%s: the error names the file and the field', async (name, line, replacement, expected) => {
    const { file, runsDir } = config(name.replaceAll(' ', '-'), data.goodCsv, (yaml) => yaml.replace(line, replacement))
    const run = await nfhm(['run', file])
    expect(run.exitCode).toBe(EXIT.badInput)
    expect(run.stderr).toContain(`nfhm: invalid config in ${file}`)
    expect(run.stderr).toMatch(expected)
    expect(existsSync(runsDir)).toBe(false)
  })

  test.each([
    ['one cluster', ['--set', 'cluster.k=1'], 'cluster.k = 1: K must be at least 2'],
    ['one cluster by ratio', ['--set', 'cluster.ratio=0.005'], 'nfhm: cluster.ratio = 0.005: K=1 for n=120 images; K must be at least 2 (one cluster is no class to tell apart); choose cluster.ratio >= 0.017'],
    [
      'a batch too small for BatchNorm',
      ['--set', 'train.batch_size=8'],
      'nfhm: train.batch_size = 8: ViT-T/4@28px has BatchNorm layers, which need at least 16 images per step; choose train.batch_size >= 16',
    ],
    [
      'a query and gallery column that does not exist',
      ['--set', 'eval.protocol={by: column, column: domain, query: field, gallery: museum}'],
      "raised ValueError: TABLE: no column 'domain' (eval.protocol.column); the columns are ['path', 'label', 'split']",
    ],
    [
      'a gallery filter that picks no image',
      ['--set', 'eval.protocol={by: column, column: label, query: digit-1, gallery: [digit-11, digit-12]}'],
      'nfhm: eval.protocol.gallery = ["digit-11","digit-12"]: no labelled test image has label = "digit-11" or "digit-12"; the values of label there are "digit-0" (',
    ],
  ])('%s: refused before any stage, naming the field and what is allowed; no run directory is made', async (name, args, expected) => {
    const { file, runsDir } = config(name.replaceAll(' ', '-'), data.goodCsv)
    const run = await nfhm(['run', file, ...args])
    expect(run.exitCode).toBe(EXIT.badInput)
    expect(run.stderr).toContain(expected.replace('TABLE', data.goodCsv))
    expect(existsSync(runsDir)).toBe(false)
  })

  test('nfhm sweep --train refuses a batch too small for BatchNorm as nfhm run does: before any stage, no run directory made', async () => {
    const { file, runsDir } = config('sweep-small-batch', data.goodCsv)
    const run = await nfhm(['sweep', file, '--k', '5,10', '--train', '--set', 'train.batch_size=8'])
    expect(run.exitCode).toBe(EXIT.badInput)
    expect(run.stderr).toContain('nfhm: train.batch_size = 8: ViT-T/4@28px has BatchNorm layers, which need at least 16 images per step; choose train.batch_size >= 16')
    expect(run.stderr).not.toMatch(/^embed /m)
    expect(existsSync(runsDir)).toBe(false)
  })

  test('K larger than the number of images: the field and the largest K are named, and an existing run is left exactly as it was', async () => {
    // The extension writes a line to worker.log in every session: the refused one's must go too.
    const env = { NFHM_WORKER_EXTENSIONS: 'nfhm_faults' }
    const existing = config('existing', data.goodCsv)
    expect((await nfhm(['run', existing.file, '--until', 'embed'], { env })).exitCode).toBe(0)
    const before = snapshot(existing.runsDir)
    expect(Object.keys(before)).toEqual(expect.arrayContaining(['existing/manifest.json', 'existing/images.arrow', 'existing/worker.log']))
    expect(readFileSync(join(existing.dir, 'worker.log'), 'utf8')).toMatch(/nfhm_faults: imported/)
    const refused = await nfhm(['run', existing.file, '--set', 'cluster.k=1000'], { env })
    expect(refused.exitCode).toBe(EXIT.badInput)
    const n = data.goodTrainImages
    expect(refused.stderr).toContain(`nfhm: cluster.k = 1000: K=1000 is larger than the number of images to cluster (n=${n}); choose K <= ${n}`)
    expect(snapshot(existing.runsDir)).toEqual(before)
  })
})

// One bad checkpoint through the CLI, to show what a user reads; a truncated file and a
// pickle that is not a plain state dict (refused by weights_only) take the same path, and
// test/python/test_model.py checks each message.
test('a checkpoint of the wrong architecture is refused before any training, every mismatched key listed', async () => {
  const weights = join(root, 'wrong.pt')
  await runPythonJson(
    `
import json, sys, torch
from nfhm.core.model import load
model, _ = load("ViT-T/4@28px")
wrong = {k: v for k, v in model.state_dict().items() if not k.startswith("feature.")}
wrong["classifier.weight"] = torch.zeros(2, 2)
torch.save(wrong, json.load(sys.stdin))
print("null")
`,
    weights,
  )
  const { file, dir } = config('wrong-checkpoint', data.goodCsv)
  const run = await nfhm(['run', file, '--set', `model.weights=${weights}`])
  expect(run.exitCode).toBe(EXIT.badInput)
  expect(run.stderr).toContain(`nfhm: worker method "model.describe" raised CheckpointError: ${weights}: checkpoint does not fit the model`)
  expect(run.stderr).toMatch(/^ {2}missing \(\d+\): feature\.0\.weight, /m)
  expect(run.stderr).toMatch(/^ {2}unexpected \(1\): classifier\.weight/m)
  expect(existsSync(join(dir, 'round-1'))).toBe(false)
})

// The model settings of a pretrained start, refused before any stage with nothing written.
describe('model settings the backbone cannot take', () => {
  test.each([
    ['train.freeze beyond the depth', ['--set', 'train.freeze=3'], 'nfhm: train.freeze = 3: ViT-T/4@28px has 2 blocks; choose train.freeze between 0 and 2'],
    ['freezing a model that has no blocks', ['--set', 'model.name=pixels@28', '--set', 'model.loader=nfhm.core.pixels:load', '--set', 'train.freeze=1'], 'nfhm: train.freeze = 1: pixels@28 cannot be partly frozen; use train.freeze = 0'],
    ['an image size the backbone cannot take', ['--set', 'model.name=efficientnet-lite0', '--set', 'model.image_size=16'], 'model.image_size=16 is too small for efficientnet-lite0: it downsamples by 32, so image_size must be >= 32 (its native size is 224)'],
    ['an image size off the patch grid', ['--set', 'model.image_size=30'], 'model.image_size=30 is not a multiple of the patch size 4: the nearest sizes this model takes are 28 and 32 (its native size is 28)'],
  ])('%s', async (name, args, expected) => {
    const { file, runsDir } = config(name.replaceAll(' ', '-').replaceAll('.', ''), data.goodCsv)
    const run = await nfhm(['run', file, ...args])
    expect(run.exitCode).toBe(EXIT.badInput)
    expect(run.stderr).toContain(expected.replace('TABLE', data.goodCsv))
    expect(existsSync(runsDir)).toBe(false)
  })
})

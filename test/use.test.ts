// `nfhm embed`, `nfhm index` and `nfhm search` on a small real set: one tiny
// trained run, its model put to use. The embeddings file reads in pyarrow and
// pandas and its rows equal the embeddings eval made of the same images; the
// neighbours are numpy's; bad input is refused naming the file, with nothing
// written.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { beforeAll, describe, expect, test } from 'vitest'
import { readArrowFile } from '../src/run/arrow.js'
import { EXIT } from '../src/run/exit-codes.js'
import type { SearchSummary } from '../src/use/search-command.js'
import { nfhm } from './helpers/faults.js'
import { runPythonJson } from './helpers/python.js'
import { tinyDigitsRun, type TinyRun } from './helpers/tiny-run.js'

let data: TinyRun
let root: string
let imageRoot: string
let runDir: string
let cache: string
const out = (name: string) => join(root, name)
const embedding = () => ['--cache-dir', cache, '--loader-workers', '0']

/** Eval's embeddings of the test images by the trained model: the cache folder its embeddings.json names. */
function evalShards(): { shards: string[]; images: string } {
  const base = join(cache, 'embeddings')
  for (const key of readdirSync(base)) {
    const record = JSON.parse(readFileSync(join(base, key, 'embeddings.json'), 'utf8')) as { model: { weights: string | null }; rows: number }
    if (record.model.weights?.endsWith('trained_model.pt') && record.rows === 200) {
      return { shards: readdirSync(join(base, key)).filter((f) => f.endsWith('.arrow')).map((f) => join(base, key, f)), images: join(runDir, 'images.arrow') }
    }
  }
  throw new Error('no eval embeddings of the trained model in the cache')
}

beforeAll(async () => {
  data = await tinyDigitsRun('nfhm-use-')
  root = dirname(data.config)
  imageRoot = join(root, 'digits', 'images')
  runDir = join(data.runsDir, 'digits')
  cache = join(data.runsDir, '.cache')
  const run = await nfhm(['run', data.config, '--set', 'cluster.k=10', '--set', 'eval.baselines=[]'])
  if (run.exitCode !== 0) throw new Error(`run failed:\n${run.stderr}`)
})

describe('nfhm embed', () => {
  let broken: string
  beforeAll(() => {
    // The table, plus one file that is not an image.
    broken = join(root, 'broken.png')
    writeFileSync(broken, 'not a png')
    const csv = readFileSync(join(root, 'digits', 'digits.csv'), 'utf8').trimEnd()
    writeFileSync(out('with-bad.csv'), `${csv}\n${broken},digit-x\n`)
  })

  test('a folder (by run directory) and a table (by trained_model.pt): rows equal eval\'s embeddings, read by pyarrow and pandas', async () => {
    const model = join(runDir, 'round-1', 'train', 'trained_model.pt')
    const tableArgs = ['embed', out('with-bad.csv'), '--label-column', 'label', '--image-root', imageRoot, '--model', model, '--out', out('table.arrow'), '--normalize', ...embedding()]
    // Unreadable images are refused, listed, and nothing is written; or with --skip-bad listed on stderr and in the file's metadata.
    const tableRuns = async () => {
      const refused = await nfhm(tableArgs)
      const exists = existsSync(out('table.arrow'))
      return { refused, exists, table: await nfhm([...tableArgs, '--skip-bad']) }
    }
    // Commands side by side: each spends seconds starting its worker.
    const [folder, { refused, exists, table }] = await Promise.all([nfhm(['embed', imageRoot, '--model', runDir, '--out', out('folder.parquet'), ...embedding()]), tableRuns()])
    expect(folder.exitCode, folder.stderr).toBe(0)
    expect(folder.stderr).toMatch(/embed images: 600 images in/)
    expect(refused.exitCode).toBe(EXIT.badInput)
    expect(refused.stderr).toContain(`1 image(s) cannot be read; fix or remove them, or rerun with --skip-bad:\n  ${broken}: `)
    expect(exists).toBe(false)
    expect(table.exitCode, table.stderr).toBe(0)
    expect(table.stderr).toContain(`warning: skipped 1 unreadable image(s):\n  ${broken}: `)

    const check = await runPythonJson<Record<string, unknown>>(
      `
import json, sys
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
cfg = json.load(sys.stdin)
ids = pa.ipc.open_file(cfg["images"]).read_all()
path_of = dict(zip(ids["id"].to_pylist(), ids["path"].to_pylist()))
reference = {}
for shard in cfg["shards"]:
    t = pa.ipc.open_file(shard).read_all()
    for i, v in zip(t["id"].to_pylist(), t["embedding"].to_pylist()):
        reference[path_of[i]] = np.asarray(v, np.float32)
folder = pq.read_table(cfg["folder"])
table = pa.ipc.open_file(cfg["table"]).read_all()
frames = {"folder": pd.read_parquet(cfg["folder"]), "table": pd.read_feather(cfg["table"])}
def diff(frame, normalize):
    rows = {p: np.asarray(e, np.float32) for p, e in zip(frame["path"], frame["embedding"])}
    worst = 0.0
    for p, v in reference.items():
        want = v / np.linalg.norm(v) if normalize else v
        worst = max(worst, float(np.abs(rows[p] - want).max()))
    return worst
print(json.dumps({
    "types": [[str(t.schema.field("embedding").type.value_type), t.schema.field("embedding").type.list_size] for t in (folder, table)],
    "columns": [list(f.columns) for f in frames.values()],
    "rows": [len(f) for f in frames.values()],
    "labels": sorted(set(frames["folder"]["label"])),
    "meta": [json.loads(t.schema.metadata[b"nfhm"]) for t in (folder, table)],
    "diff": [diff(frames["folder"], False), diff(frames["table"], True)],
    "norms": [float(np.linalg.norm(np.stack(frames["table"]["embedding"]), axis=1).min()), float(np.linalg.norm(np.stack(frames["table"]["embedding"]), axis=1).max())],
    "compared": len(reference),
}))
`,
      { ...evalShards(), folder: out('folder.parquet'), table: out('table.arrow') },
    )
    expect(check.types).toEqual([['float', 32], ['float', 32]])
    expect(check.columns).toEqual([['path', 'label', 'embedding'], ['path', 'label', 'embedding']])
    expect(check.rows).toEqual([600, 600])
    expect(check.labels).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) // the class folders
    expect(check.compared).toBe(200)
    // Unnormalised values of magnitude ~1: float32 rounding is ~6e-8; batch composition may move the last bits.
    for (const d of check.diff as number[]) expect(d).toBeLessThanOrEqual(1e-6)
    for (const n of check.norms as number[]) expect(n).toBeCloseTo(1, 6)
    const [folderMeta, tableMeta] = check.meta as [Record<string, any>, Record<string, any>]
    expect(folderMeta).toMatchObject({ normalized: false, images: 600, embedding_size: 32, skipped: [], model: { source: { path: runDir }, kind: 'run', spec: { weights: model } } })
    expect(tableMeta).toMatchObject({ normalized: true, images: 600, model: { source: { path: model }, kind: 'trained' } })
    expect(tableMeta.skipped).toEqual([{ path: broken, reason: expect.any(String) }])
    expect(folderMeta.model.weights_sha256).toMatch(/^[0-9a-f]{64}$/)
  })

  test('an existing --out is refused before any work unless --overwrite; an unknown model file is refused naming it', async () => {
    writeFileSync(out('exists.parquet'), 'mine')
    const notModel = out('not-a-model.pt')
    writeFileSync(notModel, 'random bytes, not a state dict')
    const [exists, unknown] = await Promise.all([
      nfhm(['embed', imageRoot, '--model', runDir, '--out', out('exists.parquet'), ...embedding()]),
      nfhm(['embed', imageRoot, '--model', notModel, '--out', out('unknown.parquet'), ...embedding()]),
    ])
    expect(exists.exitCode).toBe(EXIT.badInput)
    expect(exists.stderr).toContain(`nfhm: ${out('exists.parquet')} exists; rerun with --overwrite to replace it`)
    expect(readFileSync(out('exists.parquet'), 'utf8')).toBe('mine')

    expect(unknown.exitCode).not.toBe(0)
    expect(unknown.stderr).toContain(notModel)
    expect(unknown.stderr).toContain('model.resolve')
    expect(existsSync(out('unknown.parquet'))).toBe(false)
  })
})

describe('nfhm index and nfhm search', () => {
  const queries = () => [join(imageRoot, '3', '000.png'), join(imageRoot, '7', '011.png'), join(imageRoot, '0', '042.png')]
  type Run = Awaited<ReturnType<typeof nfhm>>
  let built: Record<'exact' | 'hnsw' | 'cut', Run>
  let searched: Record<'exact' | 'cut' | 'sheet', Run>

  beforeAll(async () => {
    if (!existsSync(out('folder.parquet'))) throw new Error('the embed test writes folder.parquet first')
    // The folder's file with its embeddings cut to 7 dimensions, the metadata kept.
    await runPythonJson(
      `
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
cfg = json.load(sys.stdin)
t = pq.read_table(cfg["src"])
cut = pa.FixedSizeListArray.from_arrays(pa.array([v[:7] for v in t["embedding"].to_pylist()], pa.list_(pa.float32())).flatten(), 7)
pq.write_table(t.set_column(t.schema.get_field_index("embedding"), "embedding", cut).replace_schema_metadata({b"nfhm": t.schema.metadata[b"nfhm"]}), cfg["dst"])
print("{}")
`,
      { src: out('folder.parquet'), dst: out('cut.parquet') },
    )
    // Commands side by side: each spends seconds starting its worker.
    const [exact, hnsw, cut] = await Promise.all([
      nfhm(['index', out('folder.parquet'), '--out', out('exact.faiss')]),
      nfhm(['index', out('folder.parquet'), '--out', out('hnsw.faiss'), '--approximate', 'hnsw', '--hnsw-m', '4', '--ef-construction', '8', '--ef-search', '4']),
      nfhm(['index', out('cut.parquet'), '--out', out('cut.faiss')]),
    ])
    built = { exact, hnsw, cut }
    const [exactSearch, cutSearch, sheetSearch] = await Promise.all([
      nfhm(['search', '--index', out('exact.faiss'), ...queries(), '--k', '5', '--out', out('neighbours.csv'), '--page', out('grid.html'), '--json', ...embedding()]),
      nfhm(['search', '--index', out('cut.faiss'), queries()[0]!, '--out', out('cut.csv'), ...embedding()]),
      nfhm(['search', '--index', out('exact.faiss'), ...queries(), '--k', '3', '--out', out('sheet.parquet'), '--page', out('grid.png'), ...embedding()]),
    ])
    searched = { exact: exactSearch, cut: cutSearch, sheet: sheetSearch }
  })

  test('an exact index: the neighbours, scores and page are numpy\'s nearest by cosine; --json matches the files', async () => {
    expect(built.exact.exitCode, built.exact.stderr).toBe(0)
    expect(built.exact.stderr).toContain(`index: 600 x 32, flat -> ${out('exact.faiss')}`)
    const search = searched.exact
    expect(search.exitCode, search.stderr).toBe(0)
    const printed = JSON.parse(search.stdout) as SearchSummary
    expect(printed.files).toEqual({ neighbours: out('neighbours.csv'), page: out('grid.html') })
    expect(printed.queries.map((q) => q.query)).toEqual(queries())

    const reference = await runPythonJson<{ csv: Array<[string, number, string, string, number]>; numpy: Array<{ scores: number[]; score_of: Record<string, number> }> }>(
      `
import json, sys
import numpy as np, pandas as pd
cfg = json.load(sys.stdin)
frame = pd.read_parquet(cfg["embeddings"])
x = np.stack(frame["embedding"]).astype(np.float64)
x /= np.linalg.norm(x, axis=1, keepdims=True)
row = {p: i for i, p in enumerate(frame["path"])}
numpy = []
for q in cfg["queries"]:
    s = x @ x[row[q]]
    numpy.append({"scores": sorted(s.tolist(), reverse=True)[:5], "score_of": dict(zip(frame["path"], s.tolist()))})
csv = pd.read_csv(cfg["csv"], keep_default_na=False, dtype={"label": str})
print(json.dumps({"csv": csv[["query", "rank", "path", "label", "score"]].values.tolist(), "numpy": numpy}))
`,
      { embeddings: out('folder.parquet'), queries: queries(), csv: out('neighbours.csv') },
    )
    expect(reference.csv).toHaveLength(15)
    printed.queries.forEach((q, i) => {
      const numpy = reference.numpy[i]!
      expect(q.neighbours.map((n) => n.rank)).toEqual([1, 2, 3, 4, 5])
      // The query is an indexed image: itself first.
      expect(q.neighbours[0]!.path).toBe(q.query)
      q.neighbours.forEach((n, r) => {
        // Cosines of float32 unit vectors of 32 dims: ~1e-7 rounding; the query re-embedded adds ~1e-6.
        expect(n.score).toBeCloseTo(numpy.scores[r]!, 5)
        expect(numpy.score_of[n.path]).toBeCloseTo(n.score, 5)
        expect(n.label).toBe(n.path.split('/').at(-2))
        expect(reference.csv[i * 5 + r]!.slice(0, 4)).toEqual([q.query, n.rank, n.path, n.label])
        expect(reference.csv[i * 5 + r]![4]).toBeCloseTo(n.score, 6)
      })
    })
    const page = readFileSync(out('grid.html'), 'utf8')
    expect(page).toContain('<img src="digits/images/3/000.png"')
    for (const link of page.matchAll(/src="([^"]+)"/g)) expect(existsSync(join(root, decodeURI(link[1]!)))).toBe(true)
  })

  test('--page grid.png draws the grid as one picture: queries framed blue, neighbours of unlabelled queries grey', async () => {
    expect(searched.sheet.exitCode, searched.sheet.stderr).toBe(0)
    const drawn = await runPythonJson<{ size: [number, number]; colours: number[][] }>(
      `
import json, sys
from PIL import Image
image = Image.open(json.load(sys.stdin)["png"]).convert("RGB")
print(json.dumps({"size": image.size, "colours": [c for _, c in image.getcolors(1 << 20)]}))
`,
      { png: out('grid.png') },
    )
    // Three rows of a query and 3 neighbours at 96 px: wider than 4 cells, taller than 3.
    expect(drawn.size[0]).toBeGreaterThan(4 * 96)
    expect(drawn.size[1]).toBeGreaterThan(3 * 96)
    expect(drawn.colours).toContainEqual([0, 114, 178])
    expect(drawn.colours).toContainEqual([153, 153, 153])
    expect(drawn.colours).not.toContainEqual([0, 158, 115])
  })

  test('an HNSW index reports its recall@10 against exact, equal to numpy\'s count', async () => {
    const index = built.hnsw
    expect(index.exitCode, index.stderr).toBe(0)
    const reported = Number(/recall@10 against exact (\d\.\d+) on 600 rows/.exec(index.stderr)![1])
    const sidecar = readArrowFile(`${out('hnsw.faiss')}.rows.arrow`)
    const meta = JSON.parse(sidecar.schema.metadata.get('nfhm')!) as { recall_at_10: number; kind: string; source_sha256: string; embedding_size: number }
    expect(meta).toMatchObject({ kind: 'hnsw', embedding_size: 32 })
    expect(sidecar.numRows).toBe(600)
    const numpy = await runPythonJson<{ recall: number; sha256: string }>(
      `
import hashlib, json, sys
import faiss, numpy as np, pandas as pd
cfg = json.load(sys.stdin)
frame = pd.read_parquet(cfg["embeddings"])
x = np.stack(frame["embedding"]).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
_, found = faiss.read_index(cfg["index"]).search(x, 10)
truth = np.argsort(-(x.astype(np.float64) @ x.T.astype(np.float64)), axis=1, kind="stable")[:, :10]
recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)])
print(json.dumps({"recall": float(recall), "sha256": hashlib.sha256(open(cfg["embeddings"], "rb").read()).hexdigest()}))
`,
      { embeddings: out('folder.parquet'), index: out('hnsw.faiss') },
    )
    expect(reported).toBeLessThan(1) // so small a graph misses some: the number is measured, not assumed
    expect(reported).toBeCloseTo(numpy.recall, 3)
    expect(meta.recall_at_10).toBeCloseTo(numpy.recall, 3)
    expect(meta.source_sha256).toBe(numpy.sha256)
  })

  test('an index of another embedding size than its model makes is refused naming the index, nothing written', () => {
    expect(built.cut.exitCode, built.cut.stderr).toBe(0)
    const search = searched.cut
    expect(search.exitCode).toBe(EXIT.badInput)
    expect(search.stderr).toContain(`nfhm: index ${out('cut.faiss')} holds 7-dimensional embeddings, but its model makes 32-dimensional ones`)
    expect(existsSync(out('cut.csv'))).toBe(false)
  })
})

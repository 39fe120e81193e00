// Times the evaluation metrics at UNICOM test-set scale:
//   npx tsx bench/eval-metrics.ts
// Python (faiss, exact inner-product search) builds 30,000 x 768 unit
// embeddings in 100 classes and their neighbour lists; the TypeScript metrics
// are then timed on them, and the clustering scores on 30,000-point labelings.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { bootstrapCIs } from '../src/eval/bootstrap.js'
import {
  adjustedMutualInfo,
  adjustedRandIndex,
  contingencyTable,
  normalizedMutualInfo,
} from '../src/eval/clustering.js'
import { Xoshiro128ss } from '../src/eval/prng.js'
import {
  type NeighborLists,
  knnAccuracy,
  mapAtR,
  neighborsNeeded,
  prepareRetrieval,
  rPrecision,
  recallAtK,
  retrievalMetrics,
} from '../src/eval/retrieval.js'
import { runPythonJson } from '../test/helpers/python.js'

const N = 30_000
const DIM = 768
const CLASSES = 100

const SEARCH = `
import json, sys, time
import numpy as np, faiss
cfg = json.load(sys.stdin)
rng = np.random.default_rng(0)
labels = np.arange(cfg["n"], dtype=np.int32) % cfg["classes"]
rng.shuffle(labels)
centers = rng.standard_normal((cfg["classes"], cfg["dim"]), dtype=np.float32)
x = centers[labels] + 4.5 * rng.standard_normal((cfg["n"], cfg["dim"]), dtype=np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True)
index = faiss.IndexFlatIP(cfg["dim"])
index.add(x)
t = time.perf_counter()
sims, idx = index.search(x, cfg["k"] + 1)
search_s = time.perf_counter() - t
# Drop each query from its own list (or the last column if it is not there).
own = idx == np.arange(cfg["n"])[:, None]
own[~own.any(axis=1), -1] = True
keep = ~own
idx = idx[keep].reshape(cfg["n"], cfg["k"]).astype(np.int32)
sims = sims[keep].reshape(cfg["n"], cfg["k"]).astype(np.float32)
labels.tofile(cfg["dir"] + "/labels.bin")
idx.tofile(cfg["dir"] + "/neighbors.bin")
sims.tofile(cfg["dir"] + "/similarities.bin")
print(json.dumps({"search_s": search_s}))
`

function time<T>(label: string, run: () => T, repeats = 5): T {
  let result = run() // warm-up
  const ms: number[] = []
  for (let i = 0; i < repeats; i++) {
    const start = performance.now()
    result = run()
    ms.push(performance.now() - start)
  }
  ms.sort((a, b) => a - b)
  console.log(`${label.padEnd(58)} ${ms[Math.floor(repeats / 2)]!.toFixed(1).padStart(8)} ms (median of ${repeats})`)
  return result
}

function readTyped<T>(file: string, make: (buffer: ArrayBuffer) => T): T {
  const bytes = readFileSync(file)
  return make(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
}

const dir = mkdtempSync(path.join(tmpdir(), 'nfhm-bench-'))
try {
  const labelsForK = Int32Array.from({ length: N }, (_, i) => i % CLASSES)
  const k = neighborsNeeded(labelsForK, labelsForK, true)
  console.log(`${N} queries x ${DIM} dims, ${CLASSES} classes: ${k} neighbours per query`)
  const { search_s } = await runPythonJson<{ search_s: number }>(SEARCH, { n: N, dim: DIM, classes: CLASSES, k, dir })
  console.log(`faiss IndexFlatIP search (Python, not timed below): ${search_s.toFixed(1)} s`)

  const labels = readTyped(path.join(dir, 'labels.bin'), (b) => new Int32Array(b))
  const lists: NeighborLists = {
    sameSet: true,
    queryLabels: labels,
    galleryLabels: labels,
    neighbors: readTyped(path.join(dir, 'neighbors.bin'), (b) => new Int32Array(b)),
    similarities: readTyped(path.join(dir, 'similarities.bin'), (b) => new Float32Array(b)),
  }

  const queries = time('prepareRetrieval (validate, R per query)', () => prepareRetrieval(lists))
  for (const K of [1, 2, 4, 8]) time(`Recall@${K}`, () => recallAtK(queries, K))
  time('MAP@R', () => mapAtR(queries))
  time('R-Precision', () => rPrecision(queries))
  for (const kk of [10, 20, 100]) time(`weighted ${kk}-NN accuracy`, () => knnAccuracy(queries, kk))
  const all = time('retrievalMetrics (all of the above)', () => retrievalMetrics(lists))
  console.log(
    `  means: R@1 ${all.recallAtK.get(1)!.mean.toFixed(4)}  MAP@R ${all.mapAtR.mean.toFixed(4)}  ` +
      `R-Prec ${all.rPrecision.mean.toFixed(4)}  20-NN ${all.knnAccuracy.get(20)!.mean.toFixed(4)}`,
  )
  const perQuery = {
    r1: all.recallAtK.get(1)!.values,
    r8: all.recallAtK.get(8)!.values,
    mapAtR: all.mapAtR.values,
    rPrecision: all.rPrecision.values,
    knn20: all.knnAccuracy.get(20)!.values,
  }
  time('bootstrap, 1000 resamples, 1 metric', () => bootstrapCIs({ mapAtR: perQuery.mapAtR }), 3)
  time('bootstrap, 1000 resamples, 5 metrics on shared resamples', () => bootstrapCIs(perQuery), 3)

  // Clustering: 10 classes; k-means-like clusters that mostly nest inside them.
  const rng = Xoshiro128ss.fromSeed(1)
  const classes10 = Int32Array.from({ length: N }, () => rng.nextBelow(10))
  const clusters3000 = classes10.map((c) => (rng.nextBelow(4) === 0 ? rng.nextBelow(3000) : c * 300 + rng.nextBelow(300)))
  const classes3000 = Int32Array.from({ length: N }, () => rng.nextBelow(3000))
  const table10 = time('contingency table, 3000 clusters vs 10 classes', () => contingencyTable(classes10, clusters3000))
  time('NMI, 3000 clusters vs 10 classes', () => normalizedMutualInfo(table10))
  time('AMI, 3000 clusters vs 10 classes', () => adjustedMutualInfo(table10))
  time('ARI, 3000 clusters vs 10 classes', () => adjustedRandIndex(table10))
  const table3000 = contingencyTable(classes3000, clusters3000)
  time('AMI, 3000 clusters vs 3000 classes', () => adjustedMutualInfo(table3000))
  // Worst case for the size grouping: every class size distinct (1..244).
  const distinctSizes = Int32Array.from({ length: N }, (_, i) => Math.floor((Math.sqrt(8 * i + 1) - 1) / 2))
  const tableDistinct = contingencyTable(distinctSizes, clusters3000)
  time(`AMI, 3000 clusters vs ${tableDistinct.classes.length} classes of distinct sizes`, () => adjustedMutualInfo(tableDistinct), 3)
} finally {
  rmSync(dir, { recursive: true, force: true })
}

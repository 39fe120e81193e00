// 5. Evaluation: nfhm's retrieval metrics (exact k-NN in the worker, metrics
// in TS) against pytorch-metric-learning's AccuracyCalculator
// (bench/python/eval_baseline.py) on the same 30,000 x 768 test embeddings.
//   npx tsx bench/eval.ts
// Synthetic embeddings in 100 classes of 300; precision@1 (nfhm's Recall@1 on
// a query set that is its own gallery), R-Precision and MAP@R must agree to 1e-6.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { loadConfig } from '../src/config/load.js'
import { readArrowFile } from '../src/run/arrow.js'
import { searchMetrics } from '../src/recipe/evaluate.js'
import { closeSession, openSession } from '../src/run/run-session.js'
import { alternate, emit, makeEmbeddings, medianOf, pairedRatio, recordCalls, row, runPython, seconds } from './lib.js'

const ROWS = 30_000
const DIM = 768
const CLASSES = 100
const METRICS = ['precision_at_1', 'r_precision', 'mean_average_precision_at_r'] as const
const TOLERANCE = 1e-6

const root = mkdtempSync(join(tmpdir(), 'nfhm-bench-eval-'))
const config = loadConfig(null, [`runs_dir=${root}`, 'name=eval', 'data.table=unused.csv'])
const ctx = await openSession(config)
try {
  const made = await makeEmbeddings(join(root, 'embeddings'), { rows: ROWS, dim: DIM, classes: CLASSES, spread: 4.5, shardRows: config.embed.shard_size })
  const labelTable = readArrowFile(made.labels)
  const queries = {
    shards: made.shards,
    ids: labelTable.getChild('id')!.toArray() as Int32Array,
    labels: labelTable.getChild('label')!.toArray() as Int32Array,
  }
  const calls = recordCalls(ctx.worker)
  let worst = 0
  const samples = await alternate('eval', {
    nfhm: async () => {
      calls.length = 0
      const started = performance.now()
      const { metrics: m } = await searchMetrics(ctx, queries, null, { recallKs: [1], knnKs: [], knnTemperature: config.eval.knn_temperature })
      const wall = seconds(started)
      const search = calls.find((c) => c.method === 'search.knn')!
      return {
        seconds: wall,
        search_s: search.inside!,
        transfer_s: (search.end - search.start) / 1000 - search.inside!,
        metrics_s: (performance.now() - search.end) / 1000,
        precision_at_1: m.recallAtK.get(1)!.mean,
        r_precision: m.rPrecision.mean,
        mean_average_precision_at_r: m.mapAtR.mean,
      }
    },
    baseline: () => runPython('eval_baseline.py', { shards: made.shards, labels: made.labels }),
  })
  for (const [i, nfhm] of samples.nfhm.entries()) {
    for (const name of METRICS) worst = Math.max(worst, Math.abs(nfhm[name]! - samples.baseline[i]![name]!))
  }
  const time = { nfhm: medianOf(samples.nfhm, 'seconds'), baseline: medianOf(samples.baseline, 'seconds') }
  const values = (side: 'nfhm' | 'baseline') => METRICS.map((name) => samples[side][0]![name]!.toFixed(6)).join(' / ')
  emit({
    name: 'eval',
    title: `5. Evaluation: ${ROWS.toLocaleString('en-US')} x ${DIM} test embeddings, ${CLASSES} classes, precision@1, R-Precision, MAP@R`,
    nfhmSide:
      'searchMetrics (what `nfhm eval` runs for the retrieval metrics) through a pythonia worker, timed on the TS side: ' +
      'search.knn (reading the shards, normalising, exact faiss IndexFlatIP search for R neighbours, ties ordered) ' +
      ', the neighbour table sent to TS, the metrics computed over its record batches',
    baselineSide:
      'bench/python/eval_baseline.py: F.normalize, then AccuracyCalculator(k="max_bin_count").get_accuracy with the queries as ' +
      'their own reference (its default faiss IndexFlatL2 k-NN, then the metrics in torch), on the embeddings already in memory',
    rows: [
      row('time', 's', time.nfhm, time.baseline, ['<', 1], pairedRatio(samples.nfhm, samples.baseline, (s) => s.seconds!)),
      { what: 'largest difference of the 3 metrics', unit: '', nfhm: worst, baseline: null, ratio: null, goal: '≤ 1e-6', met: worst <= TOLERANCE },
    ],
    notes: [
      `values (precision@1 / R-Precision / MAP@R): nfhm ${values('nfhm')}, pytorch-metric-learning ${values('baseline')}; ` +
        `largest difference ${worst.toExponential(1)} (${worst <= TOLERANCE ? 'within' : 'NOT within'} 1e-6)`,
      `nfhm's time: search in the worker ${medianOf(samples.nfhm, 'search_s').toFixed(2)} s, the neighbour table to TS ` +
        `${medianOf(samples.nfhm, 'transfer_s').toFixed(2)} s, the metrics in TS ${medianOf(samples.nfhm, 'metrics_s').toFixed(2)} s`,
    ],
  })
} finally {
  await closeSession(ctx)
  rmSync(root, { recursive: true, force: true })
}

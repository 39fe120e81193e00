// 6. Memory and scale: 1,000,000 x 128 embeddings through the cluster stage
// and the retrieval evaluation; peak RSS of this (TS) process and of the
// Python worker during each, and the time.
//   npx tsx bench/scale.ts
// 1,000 classes of 1,000 synthetic embeddings in shards of embed.shard_size
// rows; k-means with K=1,000; evaluation: each of the million queries against
// a gallery of 10,000 more embeddings of the same classes (an exact search of
// every query against all million would take hours on 2 cores), k=10.
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { loadConfig } from '../src/config/load.js'
import { readArrowFile } from '../src/run/arrow.js'
import { clusterEmbeddings } from '../src/recipe/cluster.js'
import { searchMetrics, type SearchSet } from '../src/recipe/evaluate.js'
import { closeSession, openSession } from '../src/run/run-session.js'
import { emit, makeEmbeddings, row, seconds } from './lib.js'

const ROWS = 1_000_000
const GALLERY = 10_000
const DIM = 128
const CLASSES = 1000
const K = 1000
const MiB = 2 ** 20

/** Peak resident set size of a process since its last reset (VmHWM), in bytes. */
const peakRss = (pid: number | 'self') => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024
const currentRss = (pid: number | 'self') => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024
/** Starts the peak over from the current RSS (Linux's clear_refs "5"). */
const resetPeak = (pid: number | 'self') => writeFileSync(`/proc/${pid}/clear_refs`, '5')

const root = mkdtempSync(join(tmpdir(), 'nfhm-bench-scale-'))
const config = loadConfig(null, [`runs_dir=${root}`, 'name=scale', 'data.table=unused.csv', `cluster.k=${K}`])
const ctx = await openSession(config)
try {
  // Seed 0 on both: the same class centres for queries and gallery.
  const make = (rows: number, firstId: number, dir: string) =>
    makeEmbeddings(join(root, dir), { rows, dim: DIM, classes: CLASSES, spread: 1.0, shardRows: config.embed.shard_size, firstId })
  const load = async (rows: number, firstId: number, dir: string): Promise<SearchSet> => {
    const made = await make(rows, firstId, dir)
    const labels = readArrowFile(made.labels)
    return { shards: made.shards, ids: labels.getChild('id')!.toArray() as Int32Array, labels: labels.getChild('label')!.toArray() as Int32Array }
  }
  const queries = await load(ROWS, 0, 'queries')
  const gallery = await load(GALLERY, ROWS, 'gallery')
  const pid = ctx.worker.pid!
  const measure = async <T>(run: () => Promise<T>) => {
    const rest = { ts: currentRss('self'), python: currentRss(pid) }
    resetPeak('self')
    resetPeak(pid)
    const started = performance.now()
    await run()
    return { seconds: seconds(started), ts: peakRss('self'), python: peakRss(pid), rest }
  }

  process.stderr.write(`scale: clustering ${ROWS.toLocaleString('en-US')} x ${DIM} into K=${K} ...\n`)
  const cluster = await measure(() =>
    clusterEmbeddings(ctx, { key: 'synthetic', dir: join(root, 'queries'), shards: queries.shards, rows: ROWS, dim: DIM, bad: [] }, ctx.run.path('cluster'), queries.labels, K),
  )
  process.stderr.write(`scale: ${cluster.seconds.toFixed(1)} s; searching ${ROWS.toLocaleString('en-US')} queries against ${GALLERY.toLocaleString('en-US')} ...\n`)
  let scored = 0
  const evaluation = await measure(async () => {
    const { metrics: m } = await searchMetrics(ctx, queries, gallery, { recallKs: [1, 2, 4, 8], knnKs: [10], knnTemperature: config.eval.knn_temperature })
    scored = m.evaluatedQueries.length
  })
  const mib = (bytes: number) => bytes / MiB
  const neighbourBytes = ROWS * (4 + 10 * 8)
  emit({
    name: 'scale',
    title: `6. Memory and scale: ${ROWS.toLocaleString('en-US')} x ${DIM} embeddings (${mib(ROWS * DIM * 4).toFixed(0)} MiB), one run`,
    nfhmSide:
      `clusterEmbeddings (K=${K}, max_points_per_centroid ${config.cluster.max_points_per_centroid}) and searchMetrics ` +
      `(${ROWS.toLocaleString('en-US')} queries x ${GALLERY.toLocaleString('en-US')} gallery, k=10: Recall@1,2,4,8, MAP@R, R-Precision, 10-NN) ` +
      'through a pythonia worker; peak RSS (VmHWM, reset before each stage) of this process and of the worker',
    baselineSide: 'none: the resting RSS of each process before the stage is shown beside its peak',
    reps: 1,
    rows: [
      row('cluster: time', 's', cluster.seconds, null),
      row('cluster: TS peak RSS (resting)', 'MiB', mib(cluster.ts), mib(cluster.rest.ts)),
      row('cluster: Python peak RSS (resting)', 'MiB', mib(cluster.python), mib(cluster.rest.python)),
      row('eval: time', 's', evaluation.seconds, null),
      row('eval: TS peak RSS (resting)', 'MiB', mib(evaluation.ts), mib(evaluation.rest.ts)),
      row('eval: Python peak RSS (resting)', 'MiB', mib(evaluation.python), mib(evaluation.rest.python)),
    ],
    notes: [
      `eval scored ${scored.toLocaleString('en-US')} queries; the neighbour table it received is ${mib(neighbourBytes).toFixed(0)} MiB of Arrow ` +
        `(query ids, 10 neighbour ids and similarities each), so the TS side's peak rose ${mib(evaluation.ts - evaluation.rest.ts).toFixed(0)} MiB ` +
        'above its resting RSS for that table, the per-query metric arrays and the labels',
    ],
  })
} finally {
  await closeSession(ctx)
  rmSync(root, { recursive: true, force: true })
}

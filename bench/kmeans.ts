// 4. k-means: the cluster stage through the bridge against faiss called
// directly (bench/python/kmeans_baseline.py) on the same data and settings.
//   npx tsx bench/kmeans.ts
// 30,000 synthetic embeddings in 10 classes, K=3,000 (the group's 1:10),
// spherical, the config's niter, seed and points-per-centroid bounds.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { loadConfig } from '../src/config/load.js'
import { readArrowFile } from '../src/run/arrow.js'
import { clusterEmbeddings } from '../src/recipe/cluster.js'
import { closeSession, openSession } from '../src/run/run-session.js'
import { SHORT_REPS, alternate, emit, makeEmbeddings, medianOf, pairedRatio, recordCalls, row, runPython, seconds, span } from './lib.js'

const ROWS = 30_000
const DIM = 64
const CLASSES = 10
const K = 3000

const root = mkdtempSync(join(tmpdir(), 'nfhm-bench-kmeans-'))
const config = loadConfig(null, [`runs_dir=${root}`, 'name=kmeans', 'data.table=unused.csv', `cluster.k=${K}`])
const cfg = config.cluster
const ctx = await openSession(config)
try {
  const made = await makeEmbeddings(join(root, 'embeddings'), { rows: ROWS, dim: DIM, classes: CLASSES, spread: 1.5, shardRows: config.embed.shard_size })
  const classOf = readArrowFile(made.labels).getChild('label')!.toArray() as Int32Array
  const embeddings = { key: 'synthetic', dir: join(root, 'embeddings'), shards: made.shards, rows: ROWS, dim: DIM, bad: [] }
  const calls = recordCalls(ctx.worker)
  let rep = 0
  const objectives = { nfhm: new Set<number>(), baseline: new Set<number>() }
  const samples = await alternate('kmeans', {
    nfhm: async () => {
      calls.length = 0
      const started = performance.now()
      const clustering = await clusterEmbeddings(ctx, embeddings, ctx.run.path(`cluster-${rep++}`), classOf, K)
      const wall = seconds(started)
      objectives.nfhm.add(clustering.summary.objective)
      return { seconds: wall, call_s: span(calls, 'cluster.kmeans'), worker_s: clustering.summary.seconds }
    },
    baseline: async () => {
      const r = await runPython<{ seconds: number; objective: number }>('kmeans_baseline.py', {
        shards: made.shards,
        k: K,
        niter: cfg.niter,
        nredo: cfg.nredo,
        seed: cfg.seed,
        max_points_per_centroid: cfg.max_points_per_centroid,
        min_points_per_centroid: cfg.min_points_per_centroid,
      })
      objectives.baseline.add(r.objective)
      return { seconds: r.seconds }
    },
  }, SHORT_REPS)
  const wall = { nfhm: medianOf(samples.nfhm, 'seconds'), baseline: medianOf(samples.baseline, 'seconds') }
  const call = medianOf(samples.nfhm, 'call_s')
  const worker = medianOf(samples.nfhm, 'worker_s')
  const same = objectives.nfhm.size === 1 && [...objectives.nfhm][0] === [...objectives.baseline][0]
  emit({
    reps: SHORT_REPS,
    name: 'kmeans',
    title: `4. k-means: ${ROWS.toLocaleString('en-US')} x ${DIM} embeddings, K=${K}, spherical, niter ${cfg.niter}, faiss on ${cfg.gpu ? 'GPU' : 'CPU'}`,
    nfhmSide:
      'clusterEmbeddings (the stage `nfhm cluster` runs) through a pythonia worker, timed on the TS side: reading and checking ' +
      'the shard, normalising, faiss training and assignment, pseudo_labels.arrow and centroids written, the assignments ' +
      'sent back, cluster sizes and agreement with the classes (NMI, AMI, ARI, purity) computed in TS',
    baselineSide: 'bench/python/kmeans_baseline.py: normalisation, faiss.Kmeans(...).train and index.search for the assignment, on the same array already in memory',
    rows: [row('time', 's', wall.nfhm, wall.baseline, ['<=', 1.05], pairedRatio(samples.nfhm, samples.baseline, (s) => s.seconds!))],
    notes: [
      `inside the worker: ${worker.toFixed(2)} s; the call as the TS side saw it: ${call.toFixed(2)} s; ` +
        `cluster statistics in TS: ${(wall.nfhm - call).toFixed(2)} s`,
      same ? `same result on both sides: objective ${[...objectives.nfhm][0]!.toFixed(3)}` : `objectives differ: nfhm ${[...objectives.nfhm].join(', ')}, faiss ${[...objectives.baseline].join(', ')}`,
    ],
  })
} finally {
  await closeSession(ctx)
  rmSync(root, { recursive: true, force: true })
}

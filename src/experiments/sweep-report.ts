// The sweep's report: sweep.md with the recommendation, the metric against K
// with interval bands and per-seed dots, the cluster-size distribution per K,
// and the tables; plus the table the CLI prints.
import { join } from 'node:path'
import type { Config } from '../config/schema.js'
import { HEADLINE, metricTitle } from '../report/names.js'
import { metricVsK, sizeDistributions, type MetricAtK } from '../report/plots.js'
import { formatInterval, markdownTable, textTable, type Column } from '../report/table.js'
import { writeFileAtomic } from '../run/atomic.js'
import { metricAt, type SweepPoint, type SweepSummary } from './sweep-summary.js'
import { AGREEMENT_METRICS } from './sweep.js'

const count = (x: number) => x.toLocaleString('en-US')
const short = (x: number) => String(Number(x.toPrecision(3)))

/** The retrieval metrics shown: the headline ones and the chosen one. */
function retrievalShown(summary: SweepSummary): string[] {
  const available = Object.keys(summary.points[0]?.retrieval ?? {})
  const keys: string[] = HEADLINE.map(([key]) => key).filter((key) => available.includes(key))
  if (available.includes(summary.metric) && !keys.includes(summary.metric)) keys.push(summary.metric)
  return keys
}

const xOf = (summary: SweepSummary, p: { k: number; ratio: number }) => (summary.x === 'ratio' ? p.ratio : p.k)

/** Lines (estimate and interval per K) and per-seed dots of some metrics. */
function chartPoints(summary: SweepSummary, metrics: readonly string[]): MetricAtK[] {
  return summary.points.flatMap((p) =>
    metrics.flatMap((metric) => {
      const m = metricAt(p, metric)
      if (!m) return []
      const x = xOf(summary, p)
      const line: MetricAtK = { k: x, metric: metricTitle(metric), estimate: m.estimate, lower: m.lower, upper: m.upper }
      const dots = p.seeds > 1 ? m.per_seed.map((v, seed) => ({ k: x, metric: metricTitle(metric), seed, estimate: v, lower: v, upper: v })) : []
      return [line, ...dots]
    }),
  )
}

async function metricChart(summary: SweepSummary, metrics: readonly string[], title: string): Promise<string> {
  const best = metrics.includes(summary.best.metric) ? { k: xOf(summary, summary.best), metric: metricTitle(summary.best.metric) } : undefined
  return metricVsK(chartPoints(summary, metrics), {
    title,
    xTitle: summary.x === 'ratio' ? 'K/N' : 'K',
    yTitle: 'value',
    logX: true,
    ...(best ? { best } : {}),
  })
}

interface Row {
  k: string
  ratio: string
  [column: string]: string
}

function tableRows(summary: SweepSummary): { columns: Column<Row>[]; rows: Row[] } {
  const retrieval = retrievalShown(summary)
  const agreement = summary.points.some((p) => p.agreement) ? [...AGREEMENT_METRICS] : []
  const cell = (p: SweepPoint, metric: string) => {
    const m = metricAt(p, metric)
    return m ? formatInterval(m.estimate, m.lower, m.upper) : ''
  }
  const columns: Column<Row>[] = [
    { key: 'k', title: 'K', align: 'right' },
    { key: 'ratio', title: 'K/N', align: 'right' },
    ...retrieval.map((m) => ({ key: m, title: metricTitle(m), align: 'left' as const })),
    ...(summary.seeds > 1 && summary.train ? [{ key: 'seed_sd', title: `seed sd (${metricTitle(summary.metric)})`, align: 'right' as const }] : []),
    ...agreement.map((m) => ({ key: m, title: metricTitle(m), align: 'left' as const })),
    { key: 'sizes', title: 'cluster size median (min-max)', align: 'left' },
    { key: 'singletons', title: 'singletons', align: 'right' },
    { key: 'empty', title: 'empty', align: 'right' },
  ]
  const rows: Row[] = summary.points.map((p) => {
    const row: Row = {
      k: count(p.k),
      ratio: short(p.ratio),
      sizes: `${short(p.sizes.median)} (${p.sizes.min}-${p.sizes.max})`,
      singletons: short(p.sizes.singletons),
      empty: short(p.sizes.empty),
    }
    for (const m of [...retrieval, ...agreement]) row[m] = cell(p, m)
    const sd = metricAt(p, summary.metric)?.seed_sd
    if (sd !== undefined) row.seed_sd = sd === null ? '' : sd.toFixed(4)
    return row
  })
  for (const b of summary.baselines) {
    const row: Row = { k: b.name, ratio: '' }
    for (const m of retrieval) row[m] = b.metrics[m] ? formatInterval(b.metrics[m].estimate, b.metrics[m].lower, b.metrics[m].upper) : ''
    rows.push(row)
  }
  return { columns, rows }
}

export function sweepTextTable(summary: SweepSummary): string {
  const { columns, rows } = tableRows(summary)
  return textTable(columns, rows)
}

function runRows(summary: SweepSummary): string {
  const metric = summary.metric
  const rows = summary.runs.map((r) => {
    const agreement = Object.entries(r.cluster.agreement ?? {}).find(([key]) => key === metric)?.[1]
    const value = r.eval?.metrics[metric]?.estimate ?? agreement
    return {
      run: r.dir,
      kmeans: String(r.kmeans_seed),
      train: r.train_seed === null ? '' : String(r.train_seed),
      value: value === undefined ? '' : value.toFixed(4),
      ami: r.cluster.agreement ? r.cluster.agreement.ami.toFixed(4) : '',
      loss: r.train ? `${r.train.epoch_loss[0]!.toFixed(2)} -> ${r.train.epoch_loss.at(-1)!.toFixed(2)}` : '',
      seconds: r.train ? r.train.seconds.toFixed(0) : '',
      cluster: r.cluster.seconds.toFixed(1),
    }
  })
  return markdownTable(
    [
      { key: 'run', title: 'sub-run' },
      { key: 'kmeans', title: 'k-means seed', align: 'right' },
      { key: 'train', title: 'train seed', align: 'right' },
      { key: 'value', title: metricTitle(metric), align: 'right' },
      ...(metric === 'ami' ? [] : [{ key: 'ami' as const, title: 'AMI', align: 'right' as const }]),
      { key: 'loss', title: 'epoch loss first -> last' },
      { key: 'cluster', title: 'k-means s', align: 'right' },
      { key: 'seconds', title: 'training s', align: 'right' },
    ],
    rows,
  )
}

function describe(summary: SweepSummary, config: Config): string {
  const t = config.train
  const model = `\`${config.model.name}\` (${config.model.weights ? `weights \`${config.model.weights}\`` : 'random init'})`
  const ks = summary.points.map((p) => count(p.k)).join(', ')
  const work = summary.train
    ? `Per (K, seed): k-means, then one round of training (${t.epochs} epoch${t.epochs === 1 ? '' : 's'}, batch ${t.batch_size}, lr ${t.lr}, ${t.margin.plugin.split(':')[1]} s=${t.margin.s} m2=${t.margin.m2}) and retrieval on the ${count(summary.images.test)} test images.`
    : 'Per (K, seed): k-means only; K is judged by the clusters\' agreement with the true classes.'
  const workers = summary.workers.map((w) => `${w.name} (${w.transport}, ${w.device})`).join(', ')
  const training = summary.runs.reduce((sum, r) => sum + (r.train?.seconds ?? 0), 0)
  const trainingNote = summary.train ? ` Training took ${(training / 60).toFixed(1)} min in all (sum over sub-runs).` : ''
  return (
    `${count(summary.clustered)} training images clustered (N; their labels used only to score the clusters), ${summary.images.classes} classes. ` +
    `Model ${model}. K = ${ks}, ${summary.seeds} seed(s) each (k-means seed cluster.seed + s${summary.train ? ', training seed train.seed + s' : ''}). ` +
    `${work} Workers: ${workers}. This invocation took ${(summary.seconds / 60).toFixed(1)} min (finished sub-runs are reused, not redone).${trainingNote}`
  )
}

/** Writes report/sweep.md and its SVGs under `dir`; returns the path of sweep.md. */
export async function writeSweepReport(dir: string, summary: SweepSummary, config: Config): Promise<string> {
  const svg = (name: string, content: string) => {
    writeFileAtomic(join(dir, name), content)
    return name
  }
  const lines = [`# nfhm sweep: ${summary.name}`, '', describe(summary, config), '', `**${summary.best.text}**`, '']
  lines.push('## Metric against K', '')
  const retrieval = retrievalShown(summary)
  const xWord = summary.x === 'ratio' ? 'K/N' : 'K'
  if (retrieval.length > 0) {
    const chart = await metricChart(summary, retrieval, `Retrieval of the trained model on the test split against ${xWord}`)
    lines.push(`![retrieval against ${xWord}](${svg('retrieval.svg', chart)})`, '')
    lines.push(`Bands: ${summary.intervals.retrieval}.${summary.seeds > 1 ? ' Dots: single seeds.' : ''}`, '')
  }
  if (summary.points.some((p) => p.agreement)) {
    const chart = await metricChart(summary, AGREEMENT_METRICS, `Agreement of the k-means clusters with the true classes against ${xWord}`)
    lines.push(`![agreement against ${xWord}](${svg('agreement.svg', chart)})`, '')
    lines.push(`Bands: ${summary.intervals.agreement}.`, '')
  }
  const { columns, rows } = tableRows(summary)
  lines.push('## Per K', '', markdownTable(columns, rows), '')
  if (summary.baselines.length > 0) lines.push(`The last row(s): the baselines (${summary.baselines.map((b) => b.name).join(', ')}), untrained, on the same queries.`, '')
  const sizes = summary.runs.flatMap((r) => r.cluster.sizes.histogram.sizes.map((size, i) => ({ k: r.k, size, count: r.cluster.sizes.histogram.counts[i]! })))
  const seedsNote = summary.seeds > 1 ? ` (the clusters of all ${summary.seeds} seeds together)` : ''
  lines.push('## Cluster sizes', '', `![cluster sizes per K](${svg('cluster-sizes.svg', await sizeDistributions(sizes, { title: `Cluster sizes per K${seedsNote}` }))})`, '')
  lines.push('## Sub-runs', '', runRows(summary), '', 'Each sub-run is a run directory of its own (manifest, clusters, checkpoints, eval.json); `sweep.json` holds all of the above.', '')
  const path = join(dir, 'sweep.md')
  writeFileAtomic(path, lines.join('\n'))
  return path
}

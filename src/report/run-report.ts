// report.md, its charts and pictures for a run: what a user looks at first.
import { join, relative } from 'node:path'
import { writeFileAtomic } from '../run/atomic.js'
import type { Context } from '../run/context.js'
import { readMetrics, type ClusterSummary, type EvalProtocol, type EvalRecord, type EvaluatedImages, type TrainSummary } from '../run/records.js'
import type { StageRecord } from '../run/run-dir.js'
import { headline } from './headline.js'
import { HEADLINE } from './names.js'
import { picturesSection, type EvalPictures } from './pictures.js'
import { histogram, lossCurves, metricBars } from './plots.js'
import { formatInterval, markdownTable, textTable, type Column } from './table.js'

/** What a run's report shows: its rounds, its evaluation and its pictures (recipe/pipeline.ts's PipelineResult is one). */
export interface RunResult {
  rounds: ReadonlyArray<{ round: number; clustering: { summary: ClusterSummary }; training: TrainSummary | null }>
  evaluation: readonly EvalRecord[]
  pictures: EvalPictures | null
}

interface Row {
  model: string
  [metric: string]: string
}

function evalRows(results: readonly EvalRecord[]): { columns: Column<Row>[]; rows: Row[] } {
  const metrics = HEADLINE.filter(([key]) => results.every((r) => key in r.metrics))
  const columns: Column<Row>[] = [
    { key: 'model', title: 'model' },
    ...metrics.map(([key, title]) => ({ key, title, align: 'left' as const })),
    { key: 'nmi', title: `NMI (k=${results[0]?.clustering.k ?? '?'})`, align: 'left' },
  ]
  const rows = results.map((r) => {
    const row: Row = { model: r.name }
    for (const [key] of metrics) row[key] = formatInterval(r.metrics[key]!.estimate, r.metrics[key]!.lower, r.metrics[key]!.upper)
    row.nmi = formatInterval(r.clustering.nmi.estimate, r.clustering.nmi.lower, r.clustering.nmi.upper)
    return row
  })
  return { columns, rows }
}

/** One row per (trained model, baseline): the paired difference of each headline measure. */
function versusRows(results: readonly EvalRecord[]): { columns: Column<Row>[]; rows: Row[] } | null {
  const trained = results.filter((r) => r.versus)
  if (trained.length === 0) return null
  const metrics = [...HEADLINE.filter(([key]) => trained.every((r) => Object.values(r.versus!).every((v) => key in v))), ['nmi', 'NMI'] as const]
  const columns: Column<Row>[] = [
    { key: 'model', title: 'model' },
    { key: 'baseline', title: 'baseline' },
    ...metrics.map(([key, title]) => ({ key, title: `Δ ${title}`, align: 'left' as const })),
  ]
  const rows = trained.flatMap((r) =>
    Object.entries(r.versus!).map(([baseline, d]) => {
      const row: Row = { model: r.name, baseline }
      for (const [key] of metrics) row[key] = formatInterval(d[key]!.estimate, d[key]!.lower, d[key]!.upper)
      return row
    }),
  )
  return { columns, rows }
}

/** The manifest's stages in the order they were first recorded: when each started and how long it took. */
export function stageTable(stages: Readonly<Record<string, StageRecord>>): string {
  const time = (iso: string | undefined) => (iso ? `${iso.slice(0, 19).replace('T', ' ')} UTC` : '')
  const rows = Object.entries(stages).map(([stage, r]) => ({
    stage,
    started: time(r.started),
    finished: time(r.finished),
    seconds: r.seconds.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 }),
  }))
  const columns: Column<(typeof rows)[number]>[] = [
    { key: 'stage', title: 'stage' },
    { key: 'started', title: 'started' },
    { key: 'finished', title: 'finished' },
    { key: 'seconds', title: 'seconds', align: 'right' },
  ]
  return markdownTable(columns, rows)
}

/** An evaluation's protocol in words: which images query which, and what R is. */
export function describeProtocol(p: EvalProtocol): string {
  const where = p.images === 'whole collection' ? 'the whole collection (every image was also trained on, labels unused)' : 'the test split'
  const unlabelled = p.unlabelled > 0 ? ` ${p.unlabelled.toLocaleString('en-US')} unlabelled image(s) were left out.` : ''
  if (p.by === 'all') {
    return `Every labelled image of ${where} is a query against all the others (UNICOM protocol); R = the other images of its class.${unlabelled}`
  }
  const holding = (values: readonly string[]) => `${p.column} = ${values.map((v) => `"${v}"`).join(' or ')}`
  return (
    `Queries against a gallery, among the labelled images of ${where}: the ${p.query_images.toLocaleString('en-US')} with ${holding(p.query!)} ` +
    `search the ${p.gallery_images!.toLocaleString('en-US')} with ${holding(p.gallery!)}; R = the gallery images of the query's class, ` +
    'and a query whose class is not in the gallery is left out.' + unlabelled
  )
}

export function evalTextTable(results: readonly EvalRecord[]): string {
  const { columns, rows } = evalRows(results)
  return textTable(columns, rows)
}

export async function writeReport(ctx: Context, result: RunResult): Promise<string> {
  const dir = ctx.run.path('report')
  const save = (name: string, content: string | Uint8Array) => {
    writeFileAtomic(join(dir, name), content)
    return name
  }
  const lines: string[] = [`# nfhm run: ${ctx.config.name}`, '']
  const inputs = ctx.manifest.inputs as { images: number; classes: number; unlabelled: number; train: number; test: number; evaluated: EvaluatedImages; source: string } | undefined
  if (inputs) {
    const n = (count: number) => count.toLocaleString('en-US')
    const unlabelled = inputs.unlabelled > 0 ? `, ${n(inputs.unlabelled)} unlabelled` : ''
    const use =
      inputs.evaluated === 'whole collection'
        ? `the whole collection: all ${n(inputs.train)} for training (their labels unused), and the ${n(inputs.test)} labelled ones, the same images, for evaluation`
        : `${n(inputs.train)} for training (their labels unused), ${n(inputs.test)} for evaluation`
    lines.push(
      `${n(inputs.images)} images from \`${inputs.source}\` (${inputs.classes} classes${unlabelled}): ${use}. ` +
        `Model \`${ctx.config.model.name}\` (${ctx.config.model.weights ? `weights \`${ctx.config.model.weights}\`` : 'random init'}), ` +
        `${ctx.config.rounds} round(s) of embed -> k-means -> train.`,
      '',
    )
  }

  const skipped = (ctx.manifest.evaluation as { skipped?: string } | undefined)?.skipped
  if (skipped) lines.push('## Retrieval', '', `Not evaluated: ${skipped}.`, '')
  if (result.evaluation.length > 0) {
    const { columns, rows } = evalRows(result.evaluation)
    const protocol = result.evaluation[0]!.protocol
    lines.push(`## Retrieval on ${protocol.images === 'test split' ? 'the test split' : 'the whole collection'}`, '')
    const sentence = headline(result.evaluation)
    if (sentence) lines.push(`**${sentence}**`, '')
    lines.push(
      `Means over queries with bootstrap 95% intervals. ${describeProtocol(protocol)} ` +
        'NMI: k-means of the embeddings of every evaluated image (queries and gallery) against the true classes, corrected for its small-sample bias, with a half-sampling interval (docs/evaluation.md).',
      '',
    )
    lines.push(markdownTable(columns, rows), '')
    const paired = versusRows(result.evaluation)
    if (paired) lines.push('Paired differences (model − baseline) on the same queries and images, with 95% intervals:', '', markdownTable(paired.columns, paired.rows), '')
    const bars = result.evaluation.flatMap((r) => [
      ...HEADLINE.filter(([key]) => key === 'recall@1' || key === 'map@r').map(([key, title]) => ({ group: title, series: r.name, ...r.metrics[key]! })),
      { group: `NMI (k=${r.clustering.k})`, series: r.name, ...r.clustering.nmi },
    ])
    lines.push(`![metrics](${save('metrics.svg', await metricBars(bars, { title: 'Recall@1, MAP@R and NMI per model', yTitle: 'value' }))})`, '')
  }
  if (result.pictures) lines.push(...(await picturesSection(result.pictures, save)))

  const metrics = readMetrics(ctx.run.path('metrics.jsonl'))
  if (metrics.length > 0) {
    const rounds = result.rounds.filter((r) => r.training)
    const series = (pick: (m: (typeof metrics)[number]) => number) =>
      rounds.map((r) => {
        const own = metrics.filter((m) => m.round === r.round)
        return { name: `round ${r.round}`, step: own.map((m) => m.step), value: own.map(pick) }
      })
    lines.push('## Training', '')
    lines.push(`![loss](${save('loss.svg', await lossCurves(series((m) => m.loss), { title: 'Training loss per step', yTitle: 'loss' }))})`, '')
    const lr = rounds.length > 0 ? rounds[rounds.length - 1]! : undefined
    if (lr) {
      const own = metrics.filter((m) => m.round === lr.round)
      const lrSeries = [
        { name: 'backbone lr', step: own.map((m) => m.step), value: own.map((m) => m.lr[0]) },
        { name: 'head lr', step: own.map((m) => m.step), value: own.map((m) => m.lr[1]) },
      ]
      lines.push(`![lr](${save('lr.svg', await lossCurves(lrSeries, { title: `Learning rate per step (OneCycle, round ${lr.round})`, yTitle: 'learning rate', logY: true }))})`, '')
    }
    const epochRows = rounds.map((r) => ({
      round: `round ${r.round}`,
      first: r.training!.epoch_loss[0]!.toFixed(3),
      last: r.training!.epoch_loss.at(-1)!.toFixed(3),
      ratio: (r.training!.epoch_loss.at(-1)! / r.training!.epoch_loss[0]!).toFixed(2),
      speed: r.training!.images_per_s.toFixed(0),
    }))
    lines.push(
      markdownTable(
        [
          { key: 'round', title: 'round' },
          { key: 'first', title: 'first-epoch mean loss' },
          { key: 'last', title: 'last-epoch mean loss' },
          { key: 'ratio', title: 'last / first' },
          { key: 'speed', title: 'images/s' },
        ],
        epochRows,
      ),
      '',
    )
  }

  if (result.rounds.length > 0) {
    lines.push('## Pseudo-labels', '')
    for (const r of result.rounds) {
      const s = r.clustering.summary
      const a = s.agreement
      lines.push(
        `Round ${r.round}: K=${s.k.toLocaleString('en-US')} clusters of ${s.n.toLocaleString('en-US')} images; sizes ${s.sizes.min}-${s.sizes.max} (median ${s.sizes.median}), ` +
          `${s.sizes.empty} empty, ${s.sizes.singletons} singletons` +
          (a ? `; against the true classes NMI ${a.nmi.toFixed(3)}, AMI ${a.ami.toFixed(3)}, ARI ${a.ari.toFixed(3)}, purity ${a.purity.toFixed(3)}.` : '.'),
        '',
      )
      for (const warning of s.warnings) lines.push(`> ${warning}`, '')
      const chart = await histogram(s.sizes.histogram, { title: `Cluster sizes, round ${r.round} (K=${s.k})`, xTitle: 'images in the cluster', yTitle: 'clusters' })
      lines.push(`![cluster sizes round ${r.round}](${save(`cluster-sizes-round-${r.round}.svg`, chart)})`, '')
    }
  }

  if (ctx.manifest.skipped_images.length > 0) {
    lines.push('## Skipped images', '', ...ctx.manifest.skipped_images.map((b) => `- \`${b.path}\`: ${b.reason}`), '')
  }
  if (Object.keys(ctx.manifest.stages).length > 0) {
    lines.push(
      '## Time per stage',
      '',
      "Wall-clock time of each stage as manifest.json records it. A stage that found its output made earlier under the same key keeps the time of the session that made it.",
      '',
      stageTable(ctx.manifest.stages),
      '',
    )
  }
  lines.push('## Files', '', `Everything this run made is under \`${relative(process.cwd(), ctx.run.root) || '.'}\`; see \`manifest.json\` for the config, versions, seeds and timings.`, '')
  const path = join(dir, 'report.md')
  writeFileAtomic(path, lines.join('\n'))
  return path
}

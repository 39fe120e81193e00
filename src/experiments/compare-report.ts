// compare.md (every retrieval metric, best marked), its bar chart, and the
// table the CLI prints.
import { join } from 'node:path'
import { HEADLINE, metricTitle } from '../report/names.js'
import { metricBars } from '../report/plots.js'
import { formatInterval, markdownTable, textTable, type Column } from '../report/table.js'
import { writeFileAtomic } from '../run/atomic.js'
import type { Comparison } from './compare.js'

interface Row {
  model: string
  [metric: string]: string
}

/** One row per model; a marked best cell gets `mark` around it. */
function rows(c: Comparison, metrics: readonly string[], mark: (cell: string) => string): { columns: Column<Row>[]; rows: Row[] } {
  const columns: Column<Row>[] = [{ key: 'model', title: 'model' }, ...metrics.map((m) => ({ key: m, title: metricTitle(m), align: 'left' as const }))]
  const body = c.models.map((model) => {
    const row: Row = { model: model.name }
    for (const metric of metrics) {
      const v = model.metrics[metric]!
      const cell = formatInterval(v.estimate, v.lower, v.upper)
      const best = c.best[metric]!
      row[metric] = best.marked && best.model === model.name ? mark(cell) : cell
    }
    return row
  })
  return { columns, rows: body }
}

const headline = (c: Comparison) => HEADLINE.map(([key]) => key as string).filter((key) => c.metrics.includes(key))

export function compareTextTable(c: Comparison): string {
  const { columns, rows: body } = rows(c, headline(c), (cell) => `${cell} *`)
  return `${textTable(columns, body)}\n* best, its 95% interval clear of the runner-up's`
}

/** Writes compare.md and compare.svg under `dir`; returns the path of compare.md. */
export async function writeCompareReport(dir: string, c: Comparison): Promise<string> {
  const { columns, rows: body } = rows(c, c.metrics, (cell) => `**${cell}**`)
  const lines = [
    `# nfhm compare: ${c.name}`,
    '',
    `${c.models.length} models on the same ${c.test.images.toLocaleString('en-US')} test images (${c.test.queries.toLocaleString('en-US')} queries; every test image is a query against all others). ` +
      `Means with percentile-bootstrap 95% intervals over queries (${c.bootstrap.resamples} resamples, seed ${c.bootstrap.seed}, the same for every model). ` +
      'A **bold** cell is the best model for that metric, marked only where its interval does not overlap the runner-up\'s.',
    '',
    markdownTable(columns, body),
    '',
    '## Best against the runner-up',
    '',
    markdownTable(
      [
        { key: 'metric', title: 'metric' },
        { key: 'best', title: 'highest' },
        { key: 'runner', title: 'runner-up' },
        { key: 'difference', title: 'difference (paired bootstrap)' },
        { key: 'marked', title: 'intervals clear' },
      ],
      c.metrics.map((m) => {
        const b = c.best[m]!
        return {
          metric: metricTitle(m),
          best: b.model,
          runner: b.runner_up ?? '',
          difference: b.difference ? formatInterval(b.difference.estimate, b.difference.lower, b.difference.upper) : '',
          marked: b.marked ? 'yes' : 'no',
        }
      }),
    ),
    '',
  ]
  const bars = c.models.flatMap((model) => headline(c).map((m) => ({ group: metricTitle(m), series: model.name, ...model.metrics[m]! })))
  writeFileAtomic(join(dir, 'compare.svg'), await metricBars(bars, { title: 'Retrieval on the test split (95% intervals)', yTitle: 'value' }))
  lines.push('![metrics](compare.svg)', '', 'Sources:', '', ...c.models.map((m) => `- ${m.name}: ${m.source ? `\`${m.source}\`` : 'baseline'} (\`${m.model.name}\`${m.model.weights ? `, weights \`${m.model.weights}\`` : ''})`), '')
  const path = join(dir, 'compare.md')
  writeFileAtomic(path, lines.join('\n'))
  return path
}

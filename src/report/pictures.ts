// The report's pictures of an evaluation: what the eval stage computes for
// them (recipe/pictures.ts) and the report section that shows them: the
// nearest-neighbour grid, Recall@1 per class, and a map of the evaluated embeddings.
import type { EvalProtocol } from '../run/records.js'
import { categoryBars, embeddingMap, type CategoryValue, type MapPoint } from './plots.js'

export interface ClassRecallRow {
  name: string
  queries: number
  /** Recall@1 of the model the pictures are of, and of the baseline beside it. */
  model: number
  baseline: number | null
}

export interface EvalPictures {
  /** The model the pictures are of: the last trained one. */
  model: string
  /** The protocol its queries, neighbours and embeddings come from. */
  protocol: EvalProtocol
  /** pictures.sheet's PNG; null when no query could be scored. */
  grid: {
    png: Uint8Array
    /** The strongest baseline on MAP@R, whose neighbours stand beside the model's. */
    baseline: string | null
    perGroup: number
    neighbours: number
    seed: number
  } | null
  perClass: { baseline: string | null; classes: ClassRecallRow[] }
  map: { points: MapPoint[]; of: number; seed: number }
}

/** Classes named in the text as the worst, and classes drawn in the chart at most (the lowest first). */
const WORST_LISTED = 5
const MAX_CLASS_BARS = 40

/** Classes by the model's Recall@1, lowest first; ties by name. */
function byRecall(classes: readonly ClassRecallRow[]): ClassRecallRow[] {
  return [...classes].sort((a, b) => a.model - b.model || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

/** "Shirt 0.452 (pixels 0.530, 1,000 queries)" for each of the worst classes. */
function worstClasses(pictures: EvalPictures): string {
  const { baseline, classes } = pictures.perClass
  return byRecall(classes)
    .slice(0, WORST_LISTED)
    .map((c) => {
      const beside = baseline && c.baseline !== null ? `${baseline} ${c.baseline.toFixed(3)}, ` : ''
      return `${c.name} ${c.model.toFixed(3)} (${beside}${c.queries.toLocaleString('en-US')} queries)`
    })
    .join('; ')
}

/** The section's markdown lines; `write` saves a file beside report.md and returns its name. */
export async function picturesSection(pictures: EvalPictures, write: (name: string, content: string | Uint8Array) => string): Promise<string[]> {
  const { model, grid, perClass, map, protocol } = pictures
  // "test" images are those of the test split; the whole collection's are all evaluated.
  const test = protocol.images === 'test split' ? 'test' : 'evaluated'
  const lines = [`## Pictures of ${protocol.images === 'test split' ? 'the test split' : 'the whole collection'}`, '']
  if (grid) {
    const beside = grid.baseline ? ` and under ${grid.baseline}, the strongest baseline on MAP@R` : ''
    const neighbours = protocol.by === 'column' ? 'gallery images' : `${test} images`
    lines.push(
      '### Nearest neighbours',
      '',
      `Each row is a ${protocol.images === 'test split' ? 'test query' : 'query'} (blue frame) and its ${grid.neighbours} nearest ${neighbours} under ${model}${beside}; ` +
        "a green frame marks an image of the query's class, an orange-red one another class. " +
        `The rows: the ${grid.perGroup} queries with the highest MAP@R under ${model}, the ${grid.perGroup} with the lowest, ` +
        `and ${grid.perGroup} others at random (seed ${grid.seed}).`,
      '',
      `![nearest neighbours](${write('neighbours.png', grid.png)})`,
      '',
    )
  }
  const sorted = byRecall(perClass.classes)
  const shown = sorted.slice(0, MAX_CLASS_BARS)
  const bars: CategoryValue[] = shown.flatMap((c) => [
    { category: c.name, series: model, value: c.model },
    ...(perClass.baseline && c.baseline !== null ? [{ category: c.name, series: perClass.baseline, value: c.baseline }] : []),
  ])
  const notes = shown.length < sorted.length ? [`The ${shown.length} classes with the lowest Recall@1 under ${model}, of ${sorted.length}.`] : []
  const versus = perClass.baseline ? ` and ${perClass.baseline}` : ''
  lines.push(
    '### Recall@1 per class',
    '',
    `Lowest Recall@1 under ${model}: ${worstClasses(pictures)}.${perClass.baseline ? ` (${perClass.baseline} is the strongest baseline on Recall@1.)` : ''}`,
    '',
    `![Recall@1 per class](${write('recall-per-class.svg', await categoryBars(bars, { title: `Recall@1 per class: ${model}${versus}`, xTitle: 'Recall@1', notes }))})`,
    '',
  )
  const n = map.points.length.toLocaleString('en-US')
  const sample = map.points.length < map.of ? `${n} of the ${map.of.toLocaleString('en-US')} ${test} embeddings` : `the ${n} ${test} embeddings`
  lines.push(
    `### Map of the ${test} embeddings`,
    '',
    `t-SNE (scikit-learn) of ${sample} of ${model}${map.points.length < map.of ? ` (a seeded sample, seed ${map.seed})` : ''}, coloured by true class: ` +
      'images the model finds alike lie close together; distances between distant groups mean little.',
    '',
    `![map of the ${test} embeddings](${write('embedding-map.svg', await embeddingMap(map.points, { title: `t-SNE map of ${sample}, ${model}` }))})`,
    '',
  )
  return lines
}

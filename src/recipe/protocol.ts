// Who queries whom: the evaluated images (the test split, or the whole
// collection) that have a label, as queries and gallery under eval.protocol.
// Checked before any stage, so that a filter that picks nothing is refused
// before hours of training rather than after.
import { valueList, type Config } from '../config/schema.js'
import type { EvalProtocol } from '../run/records.js'
import { subset, testSplit, type ImageList, type Subset } from './images.js'
import { evaluatedImages, TEST } from './split.js'
import { BadInputError } from '../run/exit-codes.js'

export interface EvalSets {
  protocol: EvalProtocol
  queries: Subset
  /** null: the queries are the gallery. */
  gallery: Subset | null
}

/** Why a run has nothing to score. */
export function noLabels(config: Config): string {
  const where = config.data.split.by === 'none' ? 'image' : 'test image'
  const column = config.data.folder ? '' : ` (data.label_column: ${config.data.label_column ?? 'null'})`
  return `no ${where} has a label${column}, so retrieval has nothing to be right about; label some images to evaluate`
}

/** evaluationSets for a command that exists to evaluate (`who`: compare, sweep): no labels is an error there. */
export function requireEvaluationSets(config: Config, images: ImageList, who: string): EvalSets {
  const sets = evaluationSets(config, images)
  if (!sets) throw new BadInputError(`${who}: ${noLabels(config)}`)
  return sets
}

/** How many images evaluation embeds and clusters: the queries and the gallery. */
export const evaluatedCount = (sets: EvalSets) => sets.queries.ids.length + (sets.gallery?.ids.length ?? 0)

/** Distinct values shown when a filter picks nothing. */
const SHOWN_VALUES = 20

/**
 * The queries and gallery of eval.protocol; null when no evaluated image has
 * a label (there is nothing to score). Throws, naming the field and the
 * column's values, when a filter picks no image.
 */
export function evaluationSets(config: Config, images: ImageList): EvalSets | null {
  const labelled = (i: number) => images.classIds[i]! >= 0
  if (!images.classIds.some((c) => c >= 0)) return null
  const test = testSplit(images)
  const scored = subset(images, TEST, labelled)
  if (scored.ids.length === 0) return null
  const base = { images: evaluatedImages(config.data.split), unlabelled: test.ids.length - scored.ids.length }
  const p = config.eval.protocol
  if (p.by === 'all') return { protocol: { ...base, by: 'all', query_images: scored.ids.length, gallery_images: null }, queries: scored, gallery: null }

  const [queryValues, galleryValues] = [valueList(p.query), valueList(p.gallery)]
  const pick = (values: string[], field: 'query' | 'gallery'): Subset => {
    const holds = (i: number) => images.groups[i] !== null && values.includes(images.groups[i]!)
    const picked = subset(images, TEST, (i) => labelled(i) && holds(i))
    if (picked.ids.length === 0) {
      const where = base.images === 'whole collection' ? 'labelled image' : 'labelled test image'
      throw new BadInputError(`eval.protocol.${field} = ${JSON.stringify(p[field])}: no ${where} has ${p.column} = ${values.map((v) => JSON.stringify(v)).join(' or ')}; ${valuesHeld(images, scored, p.column)}`)
    }
    return picked
  }
  const queries = pick(queryValues, 'query')
  const gallery = pick(galleryValues, 'gallery')
  const protocol: EvalProtocol = { ...base, by: 'column', column: p.column, query: queryValues, gallery: galleryValues, query_images: queries.ids.length, gallery_images: gallery.ids.length }
  return { protocol, queries, gallery }
}

/** The values `column` holds among `images`, most frequent first, with their counts. */
function valuesHeld(images: ImageList, among: Subset, column: string): string {
  const counts = new Map<string | null, number>()
  for (const id of among.ids) counts.set(images.groups[id] ?? null, (counts.get(images.groups[id] ?? null) ?? 0) + 1)
  const sorted = [...counts].sort(([a, m], [b, n]) => n - m || String(a).localeCompare(String(b)))
  const shown = sorted.slice(0, SHOWN_VALUES).map(([v, n]) => `${v === null ? '(empty)' : JSON.stringify(v)} (${n})`)
  const more = sorted.length > SHOWN_VALUES ? ` and ${sorted.length - SHOWN_VALUES} more` : ''
  return `the values of ${column} there are ${shown.join(', ')}${more}`
}

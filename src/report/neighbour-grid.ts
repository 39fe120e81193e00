// The report's nearest-neighbour grid, laid out here and drawn by the worker
// (pictures.sheet): sample test queries, each beside its nearest test images
// under one or more models, framed green where a neighbour is of the query's
// class and red where not. The queries are those the first model serves best
// and worst by per-query MAP@R, and others at random; a seeded generator
// orders ties and draws the random ones, so a rerun shows the same rows.
import type { ContactSheet } from '../bridge/methods.js'
import { shuffle, Xoshiro128ss } from '../eval/prng.js'
import type { NearestImages } from '../eval/retrieval.js'

export type QueryGroup = 'best' | 'worst' | 'random'

export interface ChosenQuery {
  group: QueryGroup
  /** Index into the per-query values (and the nearest images' queries). */
  index: number
}

/**
 * Up to `perGroup` queries with the highest score, then as many of the rest
 * with the lowest (lowest first), then as many of the rest at random. Ties
 * fall in a random order, so a model with many perfect queries shows varied ones.
 */
export function chooseQueries(scores: Float64Array, perGroup: number, seed: number): ChosenQuery[] {
  const rng = Xoshiro128ss.fromSeed(seed)
  const order = shuffle(Array.from(scores.keys()), rng)
  // Array sort is stable: equal scores keep the shuffled order.
  const ranked = [...order].sort((a, b) => scores[b]! - scores[a]!)
  const best = ranked.slice(0, perGroup)
  const worst = ranked.slice(best.length).reverse().slice(0, perGroup)
  const taken = new Set([...best, ...worst])
  const random = order.filter((i) => !taken.has(i)).slice(0, perGroup)
  const group = (name: QueryGroup) => (index: number) => ({ group: name, index })
  return [...best.map(group('best')), ...worst.map(group('worst')), ...random.map(group('random'))]
}

/** One model's column of the grid. */
export interface GridPanel {
  name: string
  nearest: NearestImages
}

export interface GridInput {
  chosen: readonly ChosenQuery[]
  /** Per-query MAP@R of the first panel's model, shown beside each query. */
  mapAtR: Float64Array
  /** The first panel's model chose the queries; each panel shows the same queries' neighbours. */
  panels: readonly GridPanel[]
  /** Class id of each image id. */
  classOf: Int32Array
  classNames: readonly string[]
}

/** The sheet for pictures.sheet (a row per chosen query: the query, then its neighbours under each panel) and the image ids it shows. */
export function neighbourSheet({ chosen, mapAtR, panels, classOf, classNames }: GridInput): { sheet: ContactSheet; images: number[] } {
  const [first] = panels
  if (!first) throw new Error('neighbourSheet: no panels')
  const name = (id: number) => classNames[classOf[id]!] ?? 'unlabelled'
  const rowOf = panels.map((p) => new Map(Array.from(p.nearest.queries, (id, row) => [id, row])))
  const images = new Set<number>()
  const rows = chosen.map(({ group, index }) => {
    const query = first.nearest.queries[index]!
    images.add(query)
    const groups = panels.map(({ nearest }, p) => {
      const row = rowOf[p]!.get(query)
      if (row === undefined) return []
      return Array.from(nearest.ids.subarray(row * nearest.k, (row + 1) * nearest.k), (id) => {
        images.add(id)
        return { id, caption: name(id), mark: classOf[id] === classOf[query] ? ('right' as const) : ('wrong' as const) }
      })
    })
    return {
      caption: `${group}: ${name(query)}\nMAP@R ${mapAtR[index]!.toFixed(2)}`,
      groups: [[{ id: query, caption: name(query), mark: 'query' as const }], ...groups],
    }
  })
  return { sheet: { headers: ['query', ...panels.map((p) => p.name)], rows }, images: [...images] }
}

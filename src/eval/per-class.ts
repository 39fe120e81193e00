// Recall@1 of each class: the classes a model confuses, which the mean over
// all queries hides. Computed from each query's nearest image, which
// evaluation keeps for every evaluated query (recipe/evaluate.ts).
import type { NearestImages } from './retrieval.js'

export interface ClassRecall {
  classId: number
  queries: number
  /** Share of the class's queries whose nearest image is of the same class. */
  recall: number
}

/** Recall@1 per class of the queries, by ascending class id; `classOf` maps an image id to its class. */
export function recallAt1ByClass(nearest: NearestImages, classOf: Int32Array): ClassRecall[] {
  const counts = new Map<number, { hits: number; queries: number }>()
  nearest.queries.forEach((query, i) => {
    const own = classOf[query]!
    const count = counts.get(own) ?? { hits: 0, queries: 0 }
    if (classOf[nearest.ids[i * nearest.k]!] === own) count.hits++
    count.queries++
    counts.set(own, count)
  })
  return [...counts]
    .sort(([a], [b]) => a - b)
    .map(([classId, { hits, queries }]) => ({ classId, queries, recall: hits / queries }))
}

// What makes evaluations comparable across models (compare, sweep): the
// metric keys evaluateModel (recipe/evaluate.ts) produces, and one bootstrap seed, so every
// model's intervals come from the same resamples of the same test queries
// and paired differences between models are possible.
import type { Config } from '../config/schema.js'

export const BOOTSTRAP_SEED = 0

/** The retrieval metric keys of an evaluation under this config, in table order. */
export function retrievalMetricKeys(evalConfig: Config['eval']): string[] {
  return [...evalConfig.recall_at.map((k) => `recall@${k}`), 'map@r', 'r_precision', ...evalConfig.knn_k.map((k) => `knn@${k}`)]
}

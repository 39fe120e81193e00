// Metric keys as people write them in tables, charts and sentences, and the
// ones every report shows first.

/** The metrics shown in tables and bars, in order. */
export const HEADLINE = [
  ['recall@1', 'Recall@1'],
  ['map@r', 'MAP@R'],
  ['r_precision', 'R-Precision'],
  ['knn@20', 'k-NN@20'],
] as const

const FIXED: Record<string, string> = {
  'map@r': 'MAP@R',
  r_precision: 'R-Precision',
  nmi: 'NMI',
  ami: 'AMI',
  ari: 'ARI',
  purity: 'purity',
}

/** "recall@1" -> "Recall@1", "knn@20" -> "k-NN@20", "map@r" -> "MAP@R"; unknown keys as they are. */
export function metricTitle(key: string): string {
  const fixed = FIXED[key]
  if (fixed) return fixed
  const at = /^(recall|knn)@(\d+)$/.exec(key)
  if (at) return `${at[1] === 'recall' ? 'Recall' : 'k-NN'}@${at[2]}`
  return key
}

// The sentence a report opens with: the last trained model against the
// strongest baseline on each headline measure, by the paired difference, so
// a win over a weak baseline is never the one quoted.
import type { EvalRecord, Interval } from '../run/records.js'
import { metricTitle } from './names.js'

/** Measures the headline judges, in the order it names them. */
const MEASURES = ['map@r', 'nmi', 'recall@1'] as const

export interface Verdict {
  metric: string
  baseline: string
  model: number
  base: number
  difference: Interval
  outcome: 'better' | 'tie' | 'worse'
}

const valueOf = (r: EvalRecord, metric: string): Interval | undefined => (metric === 'nmi' ? r.clustering.nmi : r.metrics[metric])

/** Of the baselines `model` has paired differences against, the one with the highest estimate on `metric` ('nmi' or a retrieval metric). */
export function strongestBaseline<T extends EvalRecord>(results: readonly T[], model: EvalRecord, metric: string): T | undefined {
  return results
    .filter((b) => valueOf(b, metric) && model.versus?.[b.name]?.[metric])
    .sort((a, b) => valueOf(b, metric)!.estimate - valueOf(a, metric)!.estimate)[0]
}

/** The last model with paired differences, against the baseline with the highest estimate on each measure. */
export function verdicts(results: readonly EvalRecord[]): { model: string; verdicts: Verdict[] } | null {
  const model = results.findLast((r) => r.versus)
  if (!model?.versus) return null
  const out: Verdict[] = []
  for (const metric of MEASURES) {
    const own = valueOf(model, metric)
    const strongest = strongestBaseline(results, model, metric)
    if (!own || !strongest) continue
    const difference = model.versus[strongest.name]![metric]!
    const outcome = difference.lower > 0 ? 'better' : difference.upper < 0 ? 'worse' : 'tie'
    out.push({ metric, baseline: strongest.name, model: own.estimate, base: valueOf(strongest, metric)!.estimate, difference, outcome })
  }
  return { model: model.name, verdicts: out }
}

const signed = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(3)}`
const WORDS = { better: 'better', tie: 'a tie', worse: 'worse' } as const

/** "round 1 against the strongest baseline on each measure (paired 95% intervals): MAP@R 0.479 vs 0.335 for pixels (centred), +0.144 [+0.137, +0.151]: better; ..." */
export function headline(results: readonly EvalRecord[]): string | null {
  const judged = verdicts(results)
  if (!judged || judged.verdicts.length === 0) return null
  const parts = judged.verdicts.map(
    (v) =>
      `${metricTitle(v.metric)} ${v.model.toFixed(3)} vs ${v.base.toFixed(3)} for ${v.baseline}, ` +
      `${signed(v.difference.estimate)} [${signed(v.difference.lower)}, ${signed(v.difference.upper)}]: ${WORDS[v.outcome]}`,
  )
  return `${judged.model} against the strongest baseline on each measure (paired 95% intervals): ${parts.join('; ')}.`
}

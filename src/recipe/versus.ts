// Every claim of "better" rests on a paired difference: a trained model minus
// a baseline on the same test queries (bootstrap of the per-query values on
// shared resamples) and, for NMI, on the same half-samples of the same
// images. Two models' own intervals can overlap while the paired difference
// is clear of zero, and the other way round.
import { pairedBootstrap, type BootstrapOptions } from '../eval/bootstrap.js'
import { difference, subsampleInterval } from '../eval/subsample.js'
import type { Interval } from '../run/records.js'
import type { ModelEval } from './evaluate.js'

const sameOrder = (a: Int32Array, b: Int32Array) => a.length === b.length && a.every((x, i) => x === b[i])

/** model - baseline per metric (every retrieval metric, and NMI), with paired 95% intervals. */
export function pairedDifferences(model: ModelEval, baseline: ModelEval, options: BootstrapOptions): Record<string, Interval> {
  if (!sameOrder(model.clusteredIds, baseline.clusteredIds)) {
    throw new Error(`"${model.name}" and "${baseline.name}" were evaluated on different test images; paired differences need the same ones`)
  }
  const out: Record<string, Interval> = {}
  for (const [metric, values] of Object.entries(model.perQuery)) {
    const other = baseline.perQuery[metric]
    if (!other) continue
    const { estimate, lower, upper } = pairedBootstrap(values, other, options)
    out[metric] = { estimate, lower, upper }
  }
  const { estimate, lower, upper } = subsampleInterval(difference(model.nmiSamples, baseline.nmiSamples), options)
  out.nmi = { estimate, lower, upper }
  return out
}

/** Gives each model after the first `baselines` its paired differences against each of those. */
export function addVersus(results: ModelEval[], baselines: number, options: BootstrapOptions): void {
  for (const model of results.slice(baselines)) {
    model.versus = Object.fromEntries(results.slice(0, baselines).map((b) => [b.name, pairedDifferences(model, b, options)]))
  }
}

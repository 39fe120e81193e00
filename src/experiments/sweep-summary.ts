// What a sweep found, as sweep.json holds it: per K the cluster sizes, the
// agreement with the classes and (when trained) every retrieval metric with
// its interval, and the best K by the chosen metric.
//
// Intervals (see src/eval/seeds.ts for why they differ):
// - retrieval metrics: percentile bootstrap over test queries of the
//   per-query values averaged over the K's seeds; the same resamples for
//   every K, and the best K is told from the runner-up by a paired bootstrap
//   of the difference on those resamples (more sensitive than interval
//   overlap, and what "is K=1000 better than K=300 on these queries" means);
// - agreement metrics (NMI, AMI, ARI): Student-t interval of the mean over
//   k-means seeds (none from one seed); best and runner-up are told apart
//   only when their intervals do not overlap.
import { bootstrapCIs, pairedBootstrap } from '../eval/bootstrap.js'
import { averageOverSeeds, seedInterval } from '../eval/seeds.js'
import { metricTitle } from '../report/names.js'
import { formatInterval } from '../report/table.js'
import type { Interval } from '../run/records.js'
import { BOOTSTRAP_SEED } from './comparable.js'
import { AGREEMENT_METRICS, type SweepPlan, type SweepResult, type SweepRun } from './sweep.js'

export interface MetricAtSeeds extends Interval {
  /** Each seed's value, in seed order. */
  per_seed: number[]
  /** Standard deviation over seeds (null for one seed): how much the seed moves the result. */
  seed_sd: number | null
}

export interface SweepPoint {
  k: number
  /** K / N, N = images clustered. */
  ratio: number
  seeds: number
  /** Cluster sizes: min and max over seeds; median, empty and singletons averaged over seeds. */
  sizes: { min: number; median: number; max: number; empty: number; singletons: number }
  /** Agreement of the clusters with the true classes (null without labels). */
  agreement: Record<string, MetricAtSeeds> | null
  /** The trained models' retrieval metrics on the test split (null without training). */
  retrieval: Record<string, MetricAtSeeds> | null
}

export interface Recommendation {
  metric: string
  k: number
  ratio: number
  estimate: number
  lower: number
  upper: number
  runner_up: { k: number; ratio: number; estimate: number; lower: number; upper: number } | null
  /** best - runner-up: paired bootstrap interval for retrieval metrics, bounds null for agreement metrics. */
  difference: { estimate: number; lower: number | null; upper: number | null } | null
  /** Whether the best K is told apart from the runner-up (null when no interval can say). */
  distinguishable: boolean | null
  /** The one-line recommendation. */
  text: string
}

export interface SweepSummary {
  name: string
  x: 'k' | 'ratio'
  metric: string
  seeds: number
  train: boolean
  images: SweepResult['images']
  clustered: number
  bootstrap: { resamples: number; seed: number; confidence: number }
  intervals: { retrieval: string; agreement: string }
  points: SweepPoint[]
  best: Recommendation
  baselines: Array<{ name: string; queries: number; metrics: Record<string, Interval> }>
  runs: SweepRun[]
  workers: Array<{ name: string; transport: string; device: string }>
  seconds: number
}

const INTERVALS = {
  retrieval: 'percentile bootstrap 95% interval over test queries of the per-query values averaged over seeds (same resamples for every K)',
  agreement: 'Student-t 95% interval of the mean over k-means seeds (none from a single seed)',
}

const finite = (x: number): number | null => (Number.isFinite(x) ? x : null)

function atSeeds(values: number[]): MetricAtSeeds {
  const { estimate, lower, upper, sd } = seedInterval(values)
  return { estimate, lower, upper, per_seed: values, seed_sd: finite(sd) }
}

/** Runs grouped by K (ascending), each group in seed order. */
function byK(runs: readonly SweepRun[]): Map<number, SweepRun[]> {
  const groups = new Map<number, SweepRun[]>()
  for (const run of [...runs].sort((a, b) => a.k - b.k || a.seed - b.seed)) groups.set(run.k, [...(groups.get(run.k) ?? []), run])
  return groups
}

/** Seed-averaged per-query values of every metric of a K's runs. */
function averagedPerQuery(result: SweepResult, runs: readonly SweepRun[]): Record<string, Float64Array> {
  const perSeed = runs.map((r) => result.perQuery.get(r.dir)!)
  return Object.fromEntries(Object.keys(perSeed[0]!).map((metric) => [metric, averageOverSeeds(perSeed.map((p) => p[metric]!))]))
}

function point(result: SweepResult, k: number, runs: SweepRun[], resamples: number): SweepPoint {
  const sizes = runs.map((r) => r.cluster.sizes)
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
  const labelled = runs.every((r) => r.cluster.agreement !== null)
  let retrieval: Record<string, MetricAtSeeds> | null = null
  if (runs.every((r) => r.eval !== null)) {
    const queries = new Set(runs.map((r) => r.eval!.queries))
    if (queries.size !== 1) throw new Error(`the seeds of K=${k} scored different numbers of test queries (${[...queries].join(', ')})`)
    const cis = bootstrapCIs(averagedPerQuery(result, runs), { resamples, seed: BOOTSTRAP_SEED })
    retrieval = Object.fromEntries(
      Object.entries(cis).map(([metric, ci]) => {
        const perSeed = runs.map((r) => r.eval!.metrics[metric]!.estimate)
        return [metric, { estimate: ci.estimate, lower: ci.lower, upper: ci.upper, per_seed: perSeed, seed_sd: finite(seedInterval(perSeed).sd) }]
      }),
    )
  }
  return {
    k,
    ratio: k / result.clustered,
    seeds: runs.length,
    sizes: {
      min: Math.min(...sizes.map((s) => s.min)),
      median: mean(sizes.map((s) => s.median)),
      max: Math.max(...sizes.map((s) => s.max)),
      empty: mean(sizes.map((s) => s.empty)),
      singletons: mean(sizes.map((s) => s.singletons)),
    },
    agreement: labelled
      ? Object.fromEntries(AGREEMENT_METRICS.map((m) => [m, atSeeds(runs.map((r) => r.cluster.agreement![m]))]))
      : null,
    retrieval,
  }
}

/** The value of `metric` at a point, wherever it lives. */
export function metricAt(p: SweepPoint, metric: string): MetricAtSeeds | undefined {
  return p.retrieval?.[metric] ?? p.agreement?.[metric]
}

const kText = (k: number, ratio: number) => `K = ${k.toLocaleString('en-US')} (K/N = ${Number(ratio.toPrecision(3))})`

function recommend(result: SweepResult, points: SweepPoint[], metric: string, resamples: number): Recommendation {
  const ranked = points
    .map((p) => ({ p, m: metricAt(p, metric) }))
    .filter((x): x is { p: SweepPoint; m: MetricAtSeeds } => x.m !== undefined && Number.isFinite(x.m.estimate))
    // Ties go to the smaller K: fewer classes to train.
    .sort((a, b) => b.m.estimate - a.m.estimate || a.p.k - b.p.k)
  if (ranked.length === 0) throw new Error(`sweep: no K has a value of ${metric}${metric === 'ami' ? ' (are there true labels?)' : ''}`)
  const [best, second] = [ranked[0]!, ranked[1]]
  const title = metricTitle(metric)
  const seeds = best.p.seeds === 1 ? '1 seed' : `mean of ${best.p.seeds} seeds`
  let text = `Best K by ${title}: ${kText(best.p.k, best.p.ratio)}, ${formatInterval(best.m.estimate, best.m.lower, best.m.upper)} (${seeds})`
  let difference: Recommendation['difference'] = null
  let distinguishable: boolean | null = null
  if (second) {
    const other = `K = ${second.p.k.toLocaleString('en-US')}`
    if (best.p.retrieval?.[metric]) {
      const runs = (k: number) => result.runs.filter((r) => r.k === k).sort((a, b) => a.seed - b.seed)
      const a = averagedPerQuery(result, runs(best.p.k))[metric]!
      const b = averagedPerQuery(result, runs(second.p.k))[metric]!
      const d = pairedBootstrap(a, b, { resamples, seed: BOOTSTRAP_SEED })
      difference = { estimate: d.estimate, lower: d.lower, upper: d.upper }
      distinguishable = d.lower > 0
      const by = formatInterval(d.estimate, d.lower, d.upper)
      text += distinguishable
        ? `; ahead of the runner-up ${other} by ${by} (paired bootstrap over test queries)`
        : `; not told apart from the runner-up ${other} (difference ${by}, paired bootstrap over test queries)`
      // The interval is over queries only; whether the order holds seed by seed shows the training noise.
      const pairs = best.m.per_seed.length
      const leads = best.m.per_seed.filter((v, s) => v > second.m.per_seed[s]!).length
      text += pairs > 1 ? `; ahead in ${leads} of ${pairs} seeds.` : '.'
    } else {
      difference = { estimate: best.m.estimate - second.m.estimate, lower: null, upper: null }
      const intervals = Number.isFinite(best.m.lower) && Number.isFinite(second.m.upper)
      distinguishable = intervals ? best.m.lower > second.m.upper : null
      text +=
        distinguishable === null
          ? `; runner-up ${other} at ${formatInterval(second.m.estimate, NaN, NaN)} (one seed: no interval to tell them apart).`
          : distinguishable
            ? `; its interval clears the runner-up ${other}'s (${formatInterval(second.m.estimate, second.m.lower, second.m.upper)}).`
            : `; its interval overlaps the runner-up ${other}'s (${formatInterval(second.m.estimate, second.m.lower, second.m.upper)}).`
    }
  } else {
    text += '.'
  }
  // A best K at either end of the range says where to look next.
  const ks = points.map((p) => p.k)
  if (ks.length > 1 && best.p.k === Math.max(...ks)) text += ' It is the largest K tried: the best K may lie above it.'
  if (ks.length > 1 && best.p.k === Math.min(...ks)) text += ' It is the smallest K tried: the best K may lie below it.'
  return {
    metric,
    k: best.p.k,
    ratio: best.p.ratio,
    estimate: best.m.estimate,
    lower: best.m.lower,
    upper: best.m.upper,
    runner_up: second ? { k: second.p.k, ratio: second.p.ratio, estimate: second.m.estimate, lower: second.m.lower, upper: second.m.upper } : null,
    difference,
    distinguishable,
    text,
  }
}

export interface SummaryContext {
  name: string
  resamples: number
  workers: SweepSummary['workers']
  seconds: number
}

/**
 * sweep.json's content. Before training has finished (the summary written
 * after clustering), K is judged by AMI and the recommendation says so.
 */
export function summariseSweep(result: SweepResult, context: SummaryContext): SweepSummary {
  const plan: SweepPlan = result.plan
  const points = [...byK(result.runs)].map(([k, runs]) => point(result, k, runs, context.resamples))
  const trained = result.runs.every((r) => r.eval !== null)
  const metric = plan.train && !trained ? 'ami' : plan.metric
  const best = recommend(result, points, metric, context.resamples)
  if (metric !== plan.metric) best.text = `Before training, by clustering agreement: ${best.text}`
  return {
    name: context.name,
    x: plan.ratios ? 'ratio' : 'k',
    metric,
    seeds: plan.seeds,
    train: plan.train,
    images: result.images,
    clustered: result.clustered,
    bootstrap: { resamples: context.resamples, seed: BOOTSTRAP_SEED, confidence: 0.95 },
    intervals: INTERVALS,
    points,
    best,
    baselines: result.baselines.map((b) => ({ name: b.name, queries: b.queries, metrics: b.metrics })),
    runs: result.runs,
    workers: context.workers,
    seconds: context.seconds,
  }
}

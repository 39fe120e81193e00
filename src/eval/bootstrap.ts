// Percentile-bootstrap confidence intervals over queries for per-query
// metrics, and paired comparisons of two models on the same resamples.
// Resample b draws n query indices with replacement from a seeded
// xoshiro128** stream, in order; resampleIndices() yields the very same
// indices so they can be checked independently.
import { Xoshiro128ss } from './prng.js'
import { mean, percentileOfSorted } from './stats.js'

export const DEFAULT_RESAMPLES = 1000
export const DEFAULT_CONFIDENCE = 0.95

export interface BootstrapOptions {
  /** Number of resamples B (default 1000). */
  readonly resamples?: number
  /** Seed of the resampling stream (default 0). */
  readonly seed?: number | bigint
  /** Coverage of the interval (default 0.95). */
  readonly confidence?: number
}

export interface ConfidenceInterval {
  /** The metric's mean over all queries. */
  readonly estimate: number
  readonly lower: number
  readonly upper: number
  readonly confidence: number
  readonly resamples: number
}

export interface PairedComparison extends ConfidenceInterval {
  /** Share of resamples in which A's mean is not above B's: a one-sided bootstrap p-value. */
  readonly fractionNotAbove: number
}

interface ResolvedOptions {
  readonly resamples: number
  readonly seed: number | bigint
  readonly confidence: number
}

export function resolve(options: BootstrapOptions): ResolvedOptions {
  const resamples = options.resamples ?? DEFAULT_RESAMPLES
  const confidence = options.confidence ?? DEFAULT_CONFIDENCE
  if (!Number.isInteger(resamples) || resamples < 1) throw new RangeError(`resamples must be a positive integer, got ${resamples}`)
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be in (0, 1), got ${confidence}`)
  return { resamples, seed: options.seed ?? 0, confidence }
}

/** The resample matrix (resamples x n, row-major) that the intervals use. */
export function resampleIndices(n: number, options: BootstrapOptions = {}): Int32Array {
  const { resamples, seed } = resolve(options)
  const rng = Xoshiro128ss.fromSeed(seed)
  const matrix = new Int32Array(resamples * n)
  for (let b = 0; b < resamples; b++) rng.fillBelow(n, matrix.subarray(b * n, (b + 1) * n))
  return matrix
}

function meanAt(sample: Float64Array, indices: Int32Array): number {
  let sum = 0
  for (let i = 0; i < indices.length; i++) sum += sample[indices[i]!]!
  return sum / indices.length
}

/** Mean of each sample on each resample; samples share the resamples. */
function resampledMeans(samples: readonly Float64Array[], options: ResolvedOptions): Float64Array[] {
  const n = samples[0]?.length ?? 0
  if (n === 0) throw new Error('bootstrap needs at least one query')
  for (const sample of samples) {
    if (sample.length !== n) throw new Error(`per-query arrays differ in length: ${sample.length} vs ${n}`)
  }
  const rng = Xoshiro128ss.fromSeed(options.seed)
  const draw = new Int32Array(n)
  const means = samples.map(() => new Float64Array(options.resamples))
  for (let b = 0; b < options.resamples; b++) {
    rng.fillBelow(n, draw)
    for (let s = 0; s < samples.length; s++) means[s]![b] = meanAt(samples[s]!, draw)
  }
  return means
}

function percentileInterval(estimate: number, statistics: Float64Array, options: ResolvedOptions): ConfidenceInterval {
  const sorted = statistics.slice().sort()
  // Written so that 0.95 gives exactly the 2.5th and 97.5th percentiles.
  const tail = (100 - 100 * options.confidence) / 2
  return {
    estimate,
    lower: percentileOfSorted(sorted, tail),
    upper: percentileOfSorted(sorted, 100 - tail),
    confidence: options.confidence,
    resamples: options.resamples,
  }
}

/** Intervals for several per-query metrics of the same queries, on shared resamples. */
export function bootstrapCIs<K extends string>(
  metrics: Readonly<Record<K, Float64Array>>,
  options: BootstrapOptions = {},
): Record<K, ConfidenceInterval> {
  const resolved = resolve(options)
  const names = Object.keys(metrics) as K[]
  const samples = names.map((name) => metrics[name])
  const means = resampledMeans(samples, resolved)
  return Object.fromEntries(
    names.map((name, s) => [name, percentileInterval(mean(samples[s]!), means[s]!, resolved)]),
  ) as Record<K, ConfidenceInterval>
}

export function bootstrapCI(values: Float64Array, options: BootstrapOptions = {}): ConfidenceInterval {
  return bootstrapCIs({ metric: values }, options).metric
}

/**
 * Interval for mean(a) - mean(b), where a and b are two models' per-query
 * values on the same queries: "A beats B" when `lower` > 0.
 */
export function pairedBootstrap(a: Float64Array, b: Float64Array, options: BootstrapOptions = {}): PairedComparison {
  const resolved = resolve(options)
  const [meansA, meansB] = resampledMeans([a, b], resolved) as [Float64Array, Float64Array]
  const differences = new Float64Array(resolved.resamples)
  let notAbove = 0
  for (let r = 0; r < differences.length; r++) {
    differences[r] = meansA[r]! - meansB[r]!
    if (differences[r]! <= 0) notAbove++
  }
  return {
    ...percentileInterval(mean(a) - mean(b), differences, resolved),
    fractionNotAbove: notAbove / resolved.resamples,
  }
}

// Intervals for statistics of a whole set (NMI of a clustering) by
// half-sampling without replacement. Resampling with replacement repeats
// images, and repeated images look like structure: the bootstrap NMI sits
// above the estimate (e.g. 0.894 with an "interval" of [0.926, 0.932]).
//
// Why halves: for a statistic that is close to a mean of per-image terms, a
// half-sample drawn without replacement varies exactly as much as the whole
// sample does (variance s²/m · (n-m)/(n-1) with m = n/2, i.e. s²/n), so the
// spread of the half-sample values is the sampling spread of the estimate.
// Plug-in NMI is also biased upward by about c/n (more cells than images
// can fill); halves carry twice that bias, so mean(halves) - estimate
// estimates it, and the interval and estimate are corrected by it. That
// correction is what makes the interval cover at its nominal rate when there
// are few images per (class, cluster) cell; test/subsample.test.ts checks
// the coverage by simulation.
import { resolve, type BootstrapOptions, type ConfidenceInterval } from './bootstrap.js'
import { Xoshiro128ss } from './prng.js'
import { mean, percentileOfSorted } from './stats.js'

/** A bias-corrected estimate with its interval, and the plain plug-in value. */
export interface SubsampleInterval extends ConfidenceInterval {
  /** The statistic of the whole set, uncorrected (what scikit-learn reports). */
  readonly plugin: number
  /** The estimated upward bias of `plugin`, already taken off `estimate`. */
  readonly bias: number
}

/** A statistic on the whole set and on each half-sample (the same half-samples for every statistic of a set of n). */
export interface HalfSamples {
  readonly whole: number
  readonly halves: Float64Array
}

/** The half-sample matrix (resamples x floor(n/2), row-major) the intervals use. */
export function halfSampleIndices(n: number, options: BootstrapOptions = {}): Int32Array {
  const { resamples } = resolve(options)
  const m = Math.floor(n / 2)
  const matrix = new Int32Array(resamples * m)
  forEachHalf(n, options, (draw, b) => matrix.set(draw, b * m))
  return matrix
}

// A partial Fisher-Yates shuffle of one running permutation: each draw's
// first m entries are a uniform subset whatever order the permutation was
// left in by the draw before.
function forEachHalf(n: number, options: BootstrapOptions, visit: (draw: Int32Array, b: number) => void): void {
  const { resamples, seed } = resolve(options)
  if (n < 2) throw new Error(`half-sampling needs at least 2 items, got ${n}`)
  const m = Math.floor(n / 2)
  const rng = Xoshiro128ss.fromSeed(seed)
  const order = Int32Array.from({ length: n }, (_, i) => i)
  for (let b = 0; b < resamples; b++) {
    for (let i = 0; i < m; i++) {
      const j = i + rng.nextBelow(n - i)
      const t = order[i]!
      order[i] = order[j]!
      order[j] = t
    }
    visit(order.subarray(0, m), b)
  }
}

/** `statistic` of all n items and of each half-sample. */
export function halfSamples(n: number, statistic: (draw: Int32Array) => number, options: BootstrapOptions = {}): HalfSamples {
  const halves = new Float64Array(resolve(options).resamples)
  forEachHalf(n, options, (draw, b) => (halves[b] = statistic(draw)))
  return { whole: statistic(Int32Array.from({ length: n }, (_, i) => i)), halves }
}

/** A - B on the same half-samples: the paired difference of two models' statistics on the same images. */
export function difference(a: HalfSamples, b: HalfSamples): HalfSamples {
  if (a.halves.length !== b.halves.length) throw new Error(`half-sample counts differ: ${a.halves.length} vs ${b.halves.length}`)
  return { whole: a.whole - b.whole, halves: a.halves.map((x, i) => x - b.halves[i]!) }
}

/** The bias-corrected estimate and its percentile interval. */
export function subsampleInterval(s: HalfSamples, options: BootstrapOptions = {}): SubsampleInterval {
  const { confidence, resamples } = resolve(options)
  const centre = mean(s.halves)
  const bias = centre - s.whole
  const estimate = s.whole - bias
  const deviations = s.halves.map((x) => x - centre).sort()
  const tail = (100 - 100 * confidence) / 2
  return {
    estimate,
    lower: estimate + percentileOfSorted(deviations, tail),
    upper: estimate + percentileOfSorted(deviations, 100 - tail),
    confidence,
    resamples,
    plugin: s.whole,
    bias,
  }
}

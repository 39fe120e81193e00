// Results repeated over random seeds (k-means and training seeds of a sweep).
//
// Two kinds of uncertainty, kept apart on purpose:
// - per-query metrics (retrieval): the seeds' models answer the same test
//   queries, so their per-query values are averaged query by query and the
//   average is bootstrapped over queries (bootstrap.ts). That interval is
//   the test-set uncertainty of the seed-averaged model; the spread between
//   seeds (their standard deviation) is shown beside it, not folded in.
// - whole-set statistics (NMI/AMI/ARI of a clustering against the classes):
//   resampling images with replacement inflates them (a duplicated image
//   always agrees with itself; on Fashion-MNIST's 30,000 training images
//   at K=10,000, AMI 0.167 gets the bootstrap interval [0.213, 0.216]), so their interval
//   is a Student-t interval of the mean over seeds: what varies is k-means'
//   random start, not the data.
import { logGamma } from './lgamma.js'
import { mean } from './stats.js'

export interface SeedInterval {
  /** Mean over seeds. */
  estimate: number
  /** Bounds of the t interval of the mean; NaN with a single seed. */
  lower: number
  upper: number
  /** Sample standard deviation over seeds; NaN with a single seed. */
  sd: number
  seeds: number
}

/** The regularized incomplete beta function I_x(a, b) (continued fraction, Lentz's method). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0
  if (x >= 1) return 1
  // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a)
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x)) / a
  const tiny = 1e-300
  let c = 1
  let d = 1 - ((a + b) * x) / (a + 1)
  d = 1 / (Math.abs(d) < tiny ? tiny : d)
  let f = d
  for (let m = 1; m <= 500; m++) {
    for (const numerator of [
      (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)),
      -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1)),
    ]) {
      d = 1 + numerator * d
      d = 1 / (Math.abs(d) < tiny ? tiny : d)
      c = 1 + numerator / c
      if (Math.abs(c) < tiny) c = tiny
      f *= c * d
    }
    if (Math.abs(c * d - 1) < 1e-15) break
  }
  return front * f
}

/** P(T <= t) for Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5)
  return t >= 0 ? 1 - tail : tail
}

/** The p-quantile of Student's t (bisection on the CDF, to about 1e-12). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`quantile level must be in (0, 1), got ${p}`)
  if (!(df > 0)) throw new RangeError(`degrees of freedom must be positive, got ${df}`)
  if (p < 0.5) return -studentTQuantile(1 - p, df)
  let lo = 0
  let hi = 1
  while (studentTCdf(hi, df) < p) hi *= 2
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2
    if (studentTCdf(mid, df) < p) lo = mid
    else hi = mid
  }
  return (lo + hi) / 2
}

/** Mean over seeds with its Student-t interval (no interval from one seed). */
export function seedInterval(values: readonly number[], confidence = 0.95): SeedInterval {
  const n = values.length
  if (n === 0) throw new Error('no seeds')
  const estimate = mean(values)
  if (n === 1) return { estimate, lower: NaN, upper: NaN, sd: NaN, seeds: 1 }
  const sd = Math.sqrt(values.reduce((s, v) => s + (v - estimate) ** 2, 0) / (n - 1))
  const half = studentTQuantile(1 - (1 - confidence) / 2, n - 1) * (sd / Math.sqrt(n))
  return { estimate, lower: estimate - half, upper: estimate + half, sd, seeds: n }
}

/** Query-by-query mean of the seeds' per-query values; the seeds must have scored the same queries. */
export function averageOverSeeds(perSeed: readonly Float64Array[]): Float64Array {
  const n = perSeed[0]?.length
  if (n === undefined) throw new Error('no seeds')
  const sum = new Float64Array(n)
  for (const values of perSeed) {
    if (values.length !== n) throw new Error(`seeds scored different numbers of queries: ${values.length} vs ${n}`)
    for (let q = 0; q < n; q++) sum[q]! += values[q]!
  }
  return sum.map((s) => s / perSeed.length)
}

// Summary statistics shared by the metric modules.

export function mean(values: ArrayLike<number>): number {
  let sum = 0
  for (let i = 0; i < values.length; i++) sum += values[i]!
  return sum / values.length
}

/**
 * The q-th percentile (0..100) of ascending `sorted`, interpolated exactly as
 * numpy.percentile's default method ('linear'), so intervals can be checked
 * against numpy to the last bit.
 */
export function percentileOfSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of an empty sample')
  if (!(q >= 0 && q <= 100)) throw new RangeError(`percentile ${q} is outside 0..100`)
  const position = (q / 100) * (sorted.length - 1)
  const below = Math.floor(position)
  const above = Math.min(below + 1, sorted.length - 1)
  const t = position - below
  const a = sorted[below]!
  const b = sorted[above]!
  // numpy's _lerp: interpolate from the nearer end for monotonic rounding.
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t
}

// log Γ(x) for x > 0, accurate to a few ulps of its magnitude: the expected
// mutual information (AMI) sums exp() of differences of such terms, so their
// absolute error must stay near double rounding.

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI)
// Above this, Stirling's series truncated below converges to < 1e-17.
const STIRLING_FROM = 15

export function logGamma(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) throw new RangeError(`logGamma needs a finite x > 0, got ${x}`)
  // Γ(x) = Γ(x + m) / (x (x+1) ... (x+m-1)): shift x into the series' range.
  let shifted = x
  let product = 1
  while (shifted < STIRLING_FROM) product *= shifted++
  const inv = 1 / shifted
  const inv2 = inv * inv
  // Bernoulli terms B_2j / (2j (2j-1) x^(2j-1)), j = 1..7.
  const series =
    inv *
    (1 / 12 -
      inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 * (1 / 1680 - inv2 * (1 / 1188 - inv2 * (691 / 360360 - inv2 / 156))))))
  return (shifted - 0.5) * Math.log(shifted) - shifted + HALF_LOG_2PI + series - Math.log(product)
}

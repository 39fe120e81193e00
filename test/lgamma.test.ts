import { beforeAll, describe, expect, it } from 'vitest'
import { logGamma } from '../src/eval/lgamma.js'
import { runPythonJson } from './helpers/python.js'

// Small, near the zeros at 1 and 2, around the series switch (15), integers
// as used by the AMI (log-factorials up to ~1e5), and very large.
const xs = [
  1e-300, 1e-8, 1e-3, 0.1, 0.5, 0.999, 1, 1.001, 1.5, 2, 2.5, 3, 7.3, 14.5, 14.999, 15, 15.001, 20.25, 31,
  100.5, 1001, 30_001, 123_457, 1e6 + 0.5, 1e10, 1e15, 1e300,
]

describe('logGamma', () => {
  let reference: number[]

  beforeAll(async () => {
    reference = await runPythonJson<number[]>(
      'import json, sys, math\nprint(json.dumps([math.lgamma(x) for x in json.load(sys.stdin)]))',
      xs,
    )
  })

  it('equals C lgamma (Python math.lgamma) to ~1e-14 of max(1, |lgamma|)', () => {
    xs.forEach((x, i) => {
      const ref = reference[i]!
      expect(Math.abs(logGamma(x) - ref) / Math.max(1, Math.abs(ref)), `x = ${x}`).toBeLessThan(1e-14)
    })
  })

  it('is exact enough that log-factorial differences stay at rounding level', () => {
    // log(30001! / 30000!) = log(30001): a difference of two 2.8e5-sized values.
    expect(logGamma(30_002) - logGamma(30_001)).toBeCloseTo(Math.log(30_001), 9)
  })

  it('rejects x <= 0', () => {
    expect(() => logGamma(0)).toThrow(RangeError)
    expect(() => logGamma(-1.5)).toThrow(RangeError)
    expect(() => logGamma(Number.NaN)).toThrow(RangeError)
  })
})

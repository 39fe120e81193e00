import { describe, expect, it } from 'vitest'
import { Xoshiro128ss, splitMix64 } from '../src/eval/prng.js'

describe('xoshiro128** / SplitMix64', () => {
  it('reproduces the reference C implementation (xoshiro128starstar.c, state 1,2,3,4)', () => {
    const rng = new Xoshiro128ss([1, 2, 3, 4])
    const out = Array.from({ length: 8 }, () => rng.nextUint32())
    expect(out).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849])
  })

  it('reproduces splitmix64.c from seed 0', () => {
    let state = 0n
    const out: bigint[] = []
    for (let i = 0; i < 3; i++) {
      const [next, value] = splitMix64(state)
      state = next
      out.push(value)
    }
    expect(out).toEqual([0xe220a8397b1dcdafn, 0x6e789e6aa1b965f4n, 0x06c45d188009454fn])
  })

  it('seeds the state with two SplitMix64 outputs, low word first', () => {
    // splitmix64(0) = 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4
    const seeded = Xoshiro128ss.fromSeed(0)
    const explicit = new Xoshiro128ss([0x7b1dcdaf, 0xe220a839, 0xa1b965f4, 0x6e789e6a])
    for (let i = 0; i < 5; i++) expect(seeded.nextUint32()).toBe(explicit.nextUint32())
    expect(Xoshiro128ss.fromSeed(1).nextUint32()).not.toBe(Xoshiro128ss.fromSeed(0).nextUint32())
  })

  it('draws below n by rejecting outputs under 2^32 mod n, then reducing mod n', () => {
    // From the reference outputs above: n = 1000 rejects < 296 (drops the 0);
    // n = 3e9 rejects < 1294967296 (drops the first four and 1287239034).
    const small = new Xoshiro128ss([1, 2, 3, 4])
    expect(Array.from({ length: 7 }, () => small.nextBelow(1000))).toEqual([520, 40, 200, 883, 492, 34, 849])
    const filled = new Int32Array(7)
    new Xoshiro128ss([1, 2, 3, 4]).fillBelow(1000, filled)
    expect(Array.from(filled)).toEqual([520, 40, 200, 883, 492, 34, 849])
    const large = new Xoshiro128ss([1, 2, 3, 4])
    expect(Array.from({ length: 3 }, () => large.nextBelow(3e9))).toEqual([2031721883, 1637235492, 734860849])
  })

  it('draws integers below n without bias', () => {
    const rng = Xoshiro128ss.fromSeed(99)
    const n = 7
    const draws = 70_000
    const counts = new Array<number>(n).fill(0)
    for (let i = 0; i < draws; i++) counts[rng.nextBelow(n)]!++
    // Chi-square with 6 degrees of freedom: P(> 22.5) ~ 0.001.
    const expected = draws / n
    const chi2 = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0)
    expect(chi2).toBeLessThan(22.5)
    expect(() => rng.nextBelow(0)).toThrow(RangeError)
  })

  it('refuses the all-zero state', () => {
    expect(() => new Xoshiro128ss([0, 0, 0, 0])).toThrow(/all zero/)
  })
})

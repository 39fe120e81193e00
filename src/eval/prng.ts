// xoshiro128** 1.1 (Blackman & Vigna), seeded through SplitMix64 as its
// authors recommend: a small, fast generator whose streams are reproducible
// from one integer, so bootstrap resamples can be regenerated and checked.

const MASK64 = (1n << 64n) - 1n

/** SplitMix64 step: returns [next state, output]. */
export function splitMix64(state: bigint): [bigint, bigint] {
  const next = (state + 0x9e3779b97f4a7c15n) & MASK64
  let z = next
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64
  return [next, z ^ (z >> 31n)]
}

export class Xoshiro128ss {
  private readonly s: Uint32Array
  private readonly one = new Uint32Array(1)

  /** Starts from an explicit 128-bit state (not all zero). */
  constructor(state: readonly [number, number, number, number]) {
    this.s = Uint32Array.from(state)
    if (this.s.every((word) => word === 0)) throw new RangeError('xoshiro128** state must not be all zero')
  }

  /** Two SplitMix64 outputs of `seed`, low 32-bit word first, fill the state. */
  static fromSeed(seed: number | bigint): Xoshiro128ss {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) {
      throw new RangeError(`seed must be a safe integer, got ${seed}`)
    }
    const [state, first] = splitMix64(BigInt.asUintN(64, BigInt(seed)))
    const [, second] = splitMix64(state)
    const word = (x: bigint, shift: bigint): number => Number((x >> shift) & 0xffffffffn)
    return new Xoshiro128ss([word(first, 0n), word(first, 32n), word(second, 0n), word(second, 32n)])
  }

  /** Next uniform 32-bit unsigned integer. */
  nextUint32(): number {
    this.fill(this.one, 2 ** 32)
    return this.one[0]!
  }

  /** Uniform integer in [0, n), unbiased. */
  nextBelow(n: number): number {
    this.fill(this.one, n)
    return this.one[0]!
  }

  /** Fills `out` with uniform integers in [0, n): the same draws as repeated nextBelow(n). */
  fillBelow(n: number, out: Int32Array): void {
    if (n > 2 ** 31) throw new RangeError(`fillBelow writes int32 values, so n <= 2^31; got ${n}`)
    this.fill(out, n)
  }

  // One loop with the state in locals: returning each draw from a method
  // call would box every value above 2^31 and run ~4x slower.
  private fill(out: Uint32Array | Int32Array, n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`bound must be an integer in 1..2^32, got ${n}`)
    // Rejecting the lowest 2^32 mod n outputs leaves a multiple of n values: no modulo bias.
    const rejectBelow = 2 ** 32 % n
    const s = this.s
    let s0 = s[0]!
    let s1 = s[1]!
    let s2 = s[2]!
    let s3 = s[3]!
    for (let i = 0; i < out.length; ) {
      const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9)
      const t = s1 << 9
      s2 ^= s0
      s3 ^= s1
      s1 ^= s2
      s0 ^= s3
      s2 ^= t
      s3 = rotl(s3, 11)
      // x mod n as ((x >> 1) mod n * 2 + low bit) mod n: int32 arithmetic,
      // several times faster than the floating-point modulo of x itself.
      if (r >>> 0 >= rejectBelow) out[i++] = (((r >>> 1) % n) * 2 + (r & 1)) % n
    }
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/** Fisher-Yates: `items` shuffled in place by `rng`, and returned. */
export function shuffle<T>(items: T[], rng: Xoshiro128ss): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.nextBelow(i + 1)
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

import { describe, expect, it } from 'vitest'
import { LossHealth, TrainingDivergedError } from '../src/recipe/loss-health.js'
import { Xoshiro128ss } from '../src/eval/prng.js'

const opts = { patienceSteps: 300, minGradScale: 1e-4 }

/** Feeds per-step losses in chunks of 25, as train.steps replies come; returns the warnings. */
function watch(losses: number[], gradNorms: (step: number) => number = () => 1, gradScale: number | null = null, graceSteps = 0): string[] {
  const health = new LossHealth({ ...opts, graceSteps }, () => {})
  for (let first = 0; first < losses.length; first += 25) {
    const chunk = losses.slice(first, first + 25)
    health.observe(first, chunk, chunk.map((_, i) => gradNorms(first + i)), gradScale, null)
  }
  return health.warnings
}

/** A loss curve with noise of +-`noise` (relative), like a real run's per-step losses. */
function curve(steps: number, at: (step: number) => number, noise: number): number[] {
  const rng = new Xoshiro128ss([1, 2, 3, 4])
  return Array.from({ length: steps }, (_, s) => at(s) * (1 + noise * (2 * (rng.nextUint32() / 2 ** 32) - 1)))
}

describe('LossHealth', () => {
  it('stays quiet when the loss falls and then levels off, even with noisy single steps', () => {
    // The demo's shape: 24 -> ~9.5 by mid-training, then flat and +-10% noisy for 1,000 steps.
    const losses = curve(2340, (s) => 9.5 + 14.5 * Math.exp(-s / 300), 0.1)
    expect(watch(losses)).toEqual([])
  })

  it('gives the warm-up its time: a loss lifted by the rising learning rate is not flagged before patience runs out after it', () => {
    // Rises from 20 to 21 over a 400-step warm-up, then falls to 10.
    const losses = curve(2000, (s) => (s < 400 ? 20 + s / 400 : 21 - 11 * (1 - Math.exp(-(s - 400) / 200))), 0.05)
    expect(watch(losses)).toHaveLength(1) // without grace: flagged during the warm-up
    expect(watch(losses, undefined, null, 400)).toEqual([])
  })

  it('warns once when the loss never falls (a failure docs/compute-core.md lists)', () => {
    const warnings = watch(curve(1000, () => 16.1, 0.05))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/the loss has not fallen in 300 steps \(mean of 50 steps: 1[56]\.\d+, at the start 1[56]\.\d+\)/)
  })

  it('warns about gradients that are all zero, and a collapsing fp16 scale', () => {
    const losses = curve(100, (s) => 20 - s / 10, 0.01)
    expect(watch(losses, () => 0)).toEqual([expect.stringMatching(/gradients are all zero at steps 0\.\.24: is it frozen/)])
    expect(watch(losses, () => 1, 1e-6)).toEqual([expect.stringMatching(/fp16 grad scale fell to 1\.00e-6/)])
  })

  it('stops training at a non-finite loss, naming the step', () => {
    const health = new LossHealth(opts, () => {})
    expect(() => health.observe(0, [1, Number.NaN], [1, 1], null, 1)).toThrow(TrainingDivergedError)
    expect(() => health.observe(0, [1, Number.NaN], [1, 1], null, 1)).toThrow(/non-finite at step 1/)
  })
})

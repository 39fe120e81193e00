// The OneCycle learning-rate / momentum schedule, value for value as
// torch.optim.lr_scheduler.OneCycleLR (torch 2.13) computes it, so the
// orchestrator can plan, log and plot the schedule the worker will follow.
// Step s is the value after s calls of scheduler.step(); step 0 is the value
// set at construction, and torch allows stepping up to total_steps.

export type AnnealStrategy = 'cos' | 'linear'

export interface OneCycleOptions {
  /** Peak learning rate of each parameter group. */
  readonly maxLr: readonly number[]
  /** Either totalSteps, or epochs and stepsPerEpoch. */
  readonly totalSteps?: number
  readonly epochs?: number
  readonly stepsPerEpoch?: number
  /** Share of the cycle spent increasing the learning rate (default 0.3). */
  readonly pctStart?: number
  readonly annealStrategy?: AnnealStrategy
  /** Cycle momentum (SGD) or beta1 (Adam/AdamW) inversely to the lr (default true). */
  readonly cycleMomentum?: boolean
  readonly baseMomentum?: number | readonly number[]
  readonly maxMomentum?: number | readonly number[]
  /** Without cycling, the optimizer's own beta1, reported unchanged (default 0.9, AdamW's). */
  readonly beta1?: number | readonly number[]
  readonly divFactor?: number
  readonly finalDivFactor?: number
  readonly threePhase?: boolean
}

export interface ScheduleValues {
  /** Learning rate of each parameter group. */
  readonly lr: number[]
  /** beta1 of each group (the value torch writes to `momentum` for SGD). */
  readonly beta1: number[]
}

export interface ScheduleSlice {
  /** lr[group][i] is the value at step from + i. */
  readonly lr: Float64Array[]
  readonly beta1: Float64Array[]
}

export interface OneCycleSchedule {
  readonly totalSteps: number
  readonly groups: number
  /** Values after `step` scheduler steps, 0 <= step <= totalSteps. */
  at(step: number): ScheduleValues
  /** Values for steps from (inclusive) to to (exclusive). */
  slice(from: number, to: number): ScheduleSlice
}

type Level = 'initial' | 'max' | 'min'
type MomentumLevel = 'base' | 'max'

interface Phase {
  readonly endStep: number
  readonly startLr: Level
  readonly endLr: Level
  readonly startMomentum: MomentumLevel
  readonly endMomentum: MomentumLevel
}

interface GroupLevels {
  readonly lr: Record<Level, number>
  readonly momentum: Record<MomentumLevel, number>
}

function perGroup(name: string, value: number | readonly number[], groups: number): number[] {
  if (typeof value === 'number') return Array<number>(groups).fill(value)
  if (value.length !== groups) throw new Error(`expected ${groups} values for ${name}, got ${value.length}`)
  return [...value]
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`Expected positive integer ${name}, but got ${value}`)
  return value
}

function annealCos(start: number, end: number, pct: number): number {
  const cosOut = Math.cos(Math.PI * pct) + 1
  return end + ((start - end) / 2.0) * cosOut
}

function annealLinear(start: number, end: number, pct: number): number {
  return (end - start) * pct + start
}

export function oneCycle(options: OneCycleOptions): OneCycleSchedule {
  const groups = options.maxLr.length
  if (groups === 0) throw new Error('maxLr needs one value per parameter group')
  let totalSteps: number
  if (options.totalSteps !== undefined) totalSteps = positiveInteger('total_steps', options.totalSteps)
  else if (options.epochs !== undefined && options.stepsPerEpoch !== undefined) {
    totalSteps = positiveInteger('epochs', options.epochs) * positiveInteger('steps_per_epoch', options.stepsPerEpoch)
  } else throw new Error('You must define either totalSteps OR (epochs AND stepsPerEpoch)')
  const pctStart = options.pctStart ?? 0.3
  if (!(pctStart >= 0 && pctStart <= 1)) throw new RangeError(`Expected pctStart between 0 and 1, but got ${pctStart}`)
  const strategy = options.annealStrategy ?? 'cos'
  if (strategy !== 'cos' && strategy !== 'linear') {
    throw new Error(`annealStrategy must be one of 'cos' or 'linear', instead got ${String(strategy)}`)
  }
  const anneal = strategy === 'cos' ? annealCos : annealLinear
  const cycleMomentum = options.cycleMomentum ?? true
  const divFactor = options.divFactor ?? 25
  const finalDivFactor = options.finalDivFactor ?? 1e4

  const phases: Phase[] = options.threePhase
    ? [
        { endStep: pctStart * totalSteps - 1, startLr: 'initial', endLr: 'max', startMomentum: 'max', endMomentum: 'base' },
        { endStep: 2 * pctStart * totalSteps - 2, startLr: 'max', endLr: 'initial', startMomentum: 'base', endMomentum: 'max' },
        { endStep: totalSteps - 1, startLr: 'initial', endLr: 'min', startMomentum: 'max', endMomentum: 'max' },
      ]
    : [
        { endStep: pctStart * totalSteps - 1, startLr: 'initial', endLr: 'max', startMomentum: 'max', endMomentum: 'base' },
        { endStep: totalSteps - 1, startLr: 'max', endLr: 'min', startMomentum: 'base', endMomentum: 'max' },
      ]

  const baseMomentum = perGroup('baseMomentum', options.baseMomentum ?? 0.85, groups)
  const maxMomentum = perGroup('maxMomentum', options.maxMomentum ?? 0.95, groups)
  const fixedBeta1 = perGroup('beta1', options.beta1 ?? 0.9, groups)
  const levels: GroupLevels[] = options.maxLr.map((maxLr, g) => {
    const initial = maxLr / divFactor
    return {
      lr: { initial, max: maxLr, min: initial / finalDivFactor },
      momentum: { base: baseMomentum[g]!, max: maxMomentum[g]! },
    }
  })

  const at = (step: number): ScheduleValues => {
    if (!Number.isInteger(step) || step < 0) throw new RangeError(`step must be a non-negative integer, got ${step}`)
    if (step > totalSteps) {
      throw new RangeError(`Tried to step ${step} times. The specified number of total steps is ${totalSteps}`)
    }
    // torch's phase search: the first phase whose end is not before the step, else the last.
    let startStep = 0
    let phase = phases[phases.length - 1]!
    for (let i = 0; i < phases.length; i++) {
      if (step <= phases[i]!.endStep || i === phases.length - 1) {
        phase = phases[i]!
        break
      }
      startStep = phases[i]!.endStep
    }
    if (phase.endStep === startStep) {
      // torch divides by zero here too (ZeroDivisionError).
      throw new RangeError(`OneCycle phase ending at step ${phase.endStep} has zero length; raise pctStart or totalSteps`)
    }
    const pct = (step - startStep) / (phase.endStep - startStep)
    return {
      lr: levels.map((level) => anneal(level.lr[phase.startLr], level.lr[phase.endLr], pct)),
      beta1: levels.map((level, g) =>
        cycleMomentum ? anneal(level.momentum[phase.startMomentum], level.momentum[phase.endMomentum], pct) : fixedBeta1[g]!,
      ),
    }
  }

  const slice = (from: number, to: number): ScheduleSlice => {
    if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to)) {
      throw new RangeError(`slice needs integers 0 <= from <= to, got ${from}, ${to}`)
    }
    const lr = levels.map(() => new Float64Array(to - from))
    const beta1 = levels.map(() => new Float64Array(to - from))
    for (let step = from; step < to; step++) {
      const values = at(step)
      for (let g = 0; g < groups; g++) {
        lr[g]![step - from] = values.lr[g]!
        beta1[g]![step - from] = values.beta1[g]!
      }
    }
    return { lr, beta1 }
  }

  return { totalSteps, groups, at, slice }
}

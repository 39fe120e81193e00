import { beforeAll, describe, expect, it } from 'vitest'
import { type OneCycleOptions, oneCycle } from '../src/schedule/onecycle.js'
import { runPythonJson } from './helpers/python.js'

// Steps torch's OneCycleLR from construction through total_steps (the last
// step it allows) and records lr and beta1 (or SGD momentum) of each group.
const TORCH_REFERENCE = `
import json, sys, warnings
import torch
warnings.simplefilter("ignore")  # scheduler.step() without optimizer.step()
out = []
for case in json.load(sys.stdin):
    kwargs = case["torch"]
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in kwargs["max_lr"]]
    if case["optimizer"] == "adamw":
        opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999))
        beta1 = lambda g: g["betas"][0]
    else:
        opt = torch.optim.SGD(groups, lr=1e-3, momentum=0.9)
        beta1 = lambda g: g["momentum"]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, **kwargs)
    lr, b1 = [], []
    for step in range(sched.total_steps + 1):
        if step > 0:
            sched.step()
        lr.append([g["lr"] for g in opt.param_groups])
        b1.append([beta1(g) for g in opt.param_groups])
    try:
        sched.step()
        overstep = None
    except ValueError as e:
        overstep = str(e)
    out.append({"lr": lr, "beta1": b1, "overstep": overstep})
print(json.dumps(out))
`

interface Case {
  name: string
  optimizer: 'adamw' | 'sgd'
  torch: Record<string, unknown>
  ours: OneCycleOptions
}

const cases: Case[] = [
  {
    name: 'AdamW, two groups, 10 epochs x 234 steps, pct_start 0.1 (the training default)',
    optimizer: 'adamw',
    torch: { max_lr: [1e-4, 5e-4], epochs: 10, steps_per_epoch: 234, pct_start: 0.1 },
    ours: { maxLr: [1e-4, 5e-4], epochs: 10, stepsPerEpoch: 234, pctStart: 0.1 },
  },
  {
    name: 'linear anneal, odd total steps, custom factors and momenta',
    optimizer: 'adamw',
    torch: {
      max_lr: [3e-3], total_steps: 1001, pct_start: 0.27, anneal_strategy: 'linear',
      div_factor: 10.0, final_div_factor: 100.0, base_momentum: 0.8, max_momentum: 0.9,
    },
    ours: {
      maxLr: [3e-3], totalSteps: 1001, pctStart: 0.27, annealStrategy: 'linear',
      divFactor: 10, finalDivFactor: 100, baseMomentum: 0.8, maxMomentum: 0.9,
    },
  },
  {
    name: 'three phases, per-group momenta, SGD',
    optimizer: 'sgd',
    torch: { max_lr: [0.1, 0.02, 0.5], total_steps: 997, pct_start: 0.3, three_phase: true,
             base_momentum: [0.85, 0.8, 0.7], max_momentum: [0.95, 0.9, 0.99] },
    ours: { maxLr: [0.1, 0.02, 0.5], totalSteps: 997, pctStart: 0.3, threePhase: true,
            baseMomentum: [0.85, 0.8, 0.7], maxMomentum: [0.95, 0.9, 0.99] },
  },
  {
    name: 'three phases, linear',
    optimizer: 'adamw',
    torch: { max_lr: [1e-3, 2e-3], total_steps: 120, pct_start: 0.25, three_phase: true, anneal_strategy: 'linear' },
    ours: { maxLr: [1e-3, 2e-3], totalSteps: 120, pctStart: 0.25, threePhase: true, annealStrategy: 'linear' },
  },
  {
    name: 'warm-up shorter than one step, momentum not cycled',
    optimizer: 'adamw',
    torch: { max_lr: [1e-3], total_steps: 5, pct_start: 0.1, cycle_momentum: false },
    ours: { maxLr: [1e-3], totalSteps: 5, pctStart: 0.1, cycleMomentum: false },
  },
]

interface TorchTrace {
  lr: number[][]
  beta1: number[][]
  overstep: string | null
}

const relativeError = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300)

describe('OneCycle equals torch.optim.lr_scheduler.OneCycleLR', () => {
  let traces: TorchTrace[]

  beforeAll(async () => {
    traces = await runPythonJson<TorchTrace[]>(TORCH_REFERENCE, cases.map(({ optimizer, torch }) => ({ optimizer, torch })))
  })

  it.each(cases.map((c, i) => [c.name, c, i] as const))('%s: lr and beta1 at every step', (_name, c, i) => {
    const trace = traces[i]!
    const schedule = oneCycle(c.ours)
    expect(schedule.totalSteps + 1).toBe(trace.lr.length)
    let worst = 0
    trace.lr.forEach((lrs, step) => {
      const got = schedule.at(step)
      expect(got.lr).toHaveLength(lrs.length)
      lrs.forEach((lr, g) => (worst = Math.max(worst, relativeError(got.lr[g]!, lr))))
      trace.beta1[step]!.forEach((b1, g) => (worst = Math.max(worst, relativeError(got.beta1[g]!, b1))))
    })
    expect(worst).toBeLessThan(1e-12)
  })

  it('refuses to step past total_steps, as torch does', () => {
    const schedule = oneCycle(cases[0]!.ours)
    expect(traces[0]!.overstep).toMatch(/Tried to step 2341 times/)
    expect(() => schedule.at(2341)).toThrow(/Tried to step 2341 times. The specified number of total steps is 2340/)
  })

  it('slices the same values as at()', () => {
    const schedule = oneCycle(cases[2]!.ours)
    const part = schedule.slice(290, 310)
    for (let step = 290; step < 310; step++) {
      const at = schedule.at(step)
      for (let g = 0; g < 3; g++) {
        expect(part.lr[g]![step - 290]).toBe(at.lr[g])
        expect(part.beta1[g]![step - 290]).toBe(at.beta1[g])
      }
    }
  })

  it('peaks at max_lr and ends near max_lr / (div_factor * final_div_factor)', () => {
    const schedule = oneCycle(cases[0]!.ours)
    const trace = traces[0]!
    const peak = Math.max(...trace.lr.map((lrs) => lrs[1]!))
    expect(peak).toBeCloseTo(5e-4, 12)
    expect(schedule.at(2339).lr[1]).toBeCloseTo(5e-4 / 25 / 1e4, 15)
  })

  it('rejects invalid settings', () => {
    expect(() => oneCycle({ maxLr: [1e-3] })).toThrow(/totalSteps OR/)
    expect(() => oneCycle({ maxLr: [1e-3], totalSteps: 10, pctStart: 1.5 })).toThrow(/pctStart/)
    expect(() => oneCycle({ maxLr: [1e-3, 1e-4], totalSteps: 10, baseMomentum: [0.8] })).toThrow(/expected 2 values/)
    // pct_start * total_steps = 1 makes the warm-up phase zero steps long: torch divides by zero.
    expect(() => oneCycle({ maxLr: [1e-3], totalSteps: 10, pctStart: 0.1 }).at(0)).toThrow(/zero length/)
  })
})

// Watches training for the ways this recipe is known to fail (the table
// "UNICOM's known failure modes" in docs/compute-core.md): a loss that never
// falls, an fp16 grad scale collapsing towards 0, gradients that vanish, a
// non-finite loss.

export interface HealthOptions {
  patienceSteps: number
  minGradScale: number
  /** Steps before patience starts to count: the warm-up, while a rising learning rate may lift the loss. */
  graceSteps?: number
}

export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError'
}

/** Losses are judged as means over this many steps: one step's loss is too noisy to compare. */
const WINDOW = 50

export class LossHealth {
  private recent: number[] = []
  private recentSum = 0
  private start: number | undefined
  private best = Infinity
  private bestStep = 0
  private warned = new Set<string>()
  readonly warnings: string[] = []

  constructor(
    private readonly opts: HealthOptions,
    private readonly warn: (message: string) => void,
  ) {}

  private once(kind: string, message: string): void {
    if (this.warned.has(kind)) return
    this.warned.add(kind)
    this.warnings.push(message)
    this.warn(message)
  }

  /** Feeds one chunk of steps; throws at a non-finite loss. */
  observe(firstStep: number, losses: number[], gradNorms: number[], gradScale: number | null, nonfiniteStep: number | null): void {
    if (nonfiniteStep !== null) {
      throw new TrainingDivergedError(
        `the loss became non-finite at step ${nonfiniteStep}; training stopped (lower train.lr, or use precision fp32 or bf16, and rerun)`,
      )
    }
    losses.forEach((loss, i) => this.observeLoss(firstStep + i, loss))
    if (gradNorms.length > 0 && gradNorms.every((g) => g === 0)) {
      this.once('zero-grad', `the backbone's gradients are all zero at steps ${firstStep}..${firstStep + gradNorms.length - 1}: is it frozen?`)
    }
    if (gradScale !== null && gradScale < this.opts.minGradScale) {
      this.once('scale', `the fp16 grad scale fell to ${gradScale.toExponential(2)}: gradients overflow every step; use bf16 or a lower lr`)
    }
  }

  private observeLoss(step: number, loss: number): void {
    this.recent.push(loss)
    this.recentSum += loss
    if (this.recent.length > WINDOW) this.recentSum -= this.recent.shift()!
    if (this.recent.length < WINDOW) return
    const mean = this.recentSum / WINDOW
    if (this.start === undefined) this.start = mean
    // A new best must beat the old by 1%.
    if (mean < this.best * 0.99) {
      this.best = mean
      this.bestStep = step
    }
    // A plateau after the loss has fallen is convergence; the failure is a loss still near where it began.
    const since = Math.max(this.bestStep, this.opts.graceSteps ?? 0)
    if (step - since >= this.opts.patienceSteps && mean > this.start * 0.9) {
      this.once(
        'flat',
        `the loss has not fallen in ${step - since} steps (mean of ${WINDOW} steps: ${mean.toFixed(4)}, ` +
          `at the start ${this.start.toFixed(4)}): check the learning rate, the labels and the precision`,
      )
    }
  }
}

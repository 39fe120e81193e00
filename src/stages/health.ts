// Watches training for the ways this recipe is known to fail
// (unicom-facts.md section 6): a loss that never falls, an fp16 grad scale
// collapsing towards 0, gradients that vanish, a non-finite loss.

export interface HealthOptions {
  patienceSteps: number
  minGradScale: number
}

export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError'
}

export class LossHealth {
  private best = Infinity
  private bestStep = 0
  private firstWindow: number[] = []
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
    const window = 50
    losses.forEach((loss, i) => {
      const step = firstStep + i
      if (this.firstWindow.length < window) this.firstWindow.push(loss)
      // Smoothed against noise: a new best must beat the old by 1%.
      if (loss < this.best * 0.99) {
        this.best = loss
        this.bestStep = step
      }
      if (step - this.bestStep >= this.opts.patienceSteps && this.firstWindow.length === window) {
        const start = this.firstWindow.reduce((a, b) => a + b, 0) / window
        this.once(
          'flat',
          `the loss has not fallen for ${step - this.bestStep} steps (best ${this.best.toFixed(4)} at step ${this.bestStep}, ` +
            `first steps ${start.toFixed(4)}): check the learning rate, the labels and the precision`,
        )
      }
    })
    if (gradNorms.length > 0 && gradNorms.every((g) => g === 0)) {
      this.once('zero-grad', `the backbone's gradients are all zero at steps ${firstStep}..${firstStep + gradNorms.length - 1}: is it frozen?`)
    }
    if (gradScale !== null && gradScale < this.opts.minGradScale) {
      this.once('scale', `the fp16 grad scale fell to ${gradScale.toExponential(2)}: gradients overflow every step; use bf16 or a lower lr`)
    }
  }
}

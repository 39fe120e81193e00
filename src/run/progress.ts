// Progress of long work on stderr: a redrawn bar on a terminal, plain lines
// (at most one every few seconds) when stderr is a file or a pipe.

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--'
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0')
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`
}

export interface ProgressOptions {
  stream?: NodeJS.WriteStream
  /** Seconds between plain lines when not on a terminal. */
  plainEvery?: number
}

export class Progress {
  private readonly started = performance.now()
  private readonly stream: NodeJS.WriteStream
  private readonly tty: boolean
  private readonly plainEvery: number
  private lastPlain = -Infinity
  private done = 0

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly unit: string,
    opts: ProgressOptions = {},
  ) {
    this.stream = opts.stream ?? process.stderr
    this.tty = Boolean(this.stream.isTTY)
    this.plainEvery = opts.plainEvery ?? 10
  }

  /** `done` counts units finished so far (including any resumed from before: pass `resumed`). */
  update(done: number, extra: Record<string, string> = {}, resumed = 0): void {
    this.done = done
    const elapsed = (performance.now() - this.started) / 1000
    const rate = (done - resumed) / Math.max(elapsed, 1e-9)
    const eta = rate > 0 ? (this.total - done) / rate : Infinity
    const fraction = this.total > 0 ? done / this.total : 1
    const info = [
      `${done.toLocaleString('en-US')}/${this.total.toLocaleString('en-US')} ${this.unit}`,
      `${rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)} ${this.unit}/s`,
      `ETA ${clock(eta)}`,
      ...Object.entries(extra).map(([k, v]) => `${k} ${v}`),
    ].join('  ')
    if (this.tty) {
      const width = 24
      const filled = Math.round(fraction * width)
      const bar = '#'.repeat(filled) + '.'.repeat(width - filled)
      this.stream.write(`\r\x1b[2K${this.label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${info}`)
    } else if (elapsed - this.lastPlain >= this.plainEvery || done >= this.total) {
      this.lastPlain = elapsed
      this.stream.write(`${this.label}: ${(fraction * 100).toFixed(0)}%  ${info}\n`)
    }
  }

  finish(summary = ''): void {
    const elapsed = (performance.now() - this.started) / 1000
    const line = `${this.label}: ${this.done.toLocaleString('en-US')} ${this.unit} in ${clock(elapsed)}${summary ? `  ${summary}` : ''}`
    this.stream.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`)
  }
}

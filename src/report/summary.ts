// The table the CLI ends with.
import type { Context } from '../stages/context.js'
import type { PipelineResult } from '../stages/pipeline.js'

export function printSummary(ctx: Context, result: PipelineResult): void {
  const names = ['recall@1', 'map@r', 'r_precision']
  const f = (v: { estimate: number; lower: number; upper: number }) => `${v.estimate.toFixed(3)} [${v.lower.toFixed(3)}, ${v.upper.toFixed(3)}]`
  const rows = result.evaluation.map((m) => [m.name, ...names.map((n) => f(m.metrics[n]!)), f(m.clustering.nmi)])
  const header = ['model', ...names, `NMI (k=${result.evaluation[0]?.clustering.k})`]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ')
  process.stdout.write([line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n')
  process.stdout.write(`\nrun directory: ${ctx.run.root}\n`)
}

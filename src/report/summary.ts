// The table the CLI ends with, and where to look next.
import type { Context } from '../stages/context.js'
import type { PipelineResult } from '../stages/pipeline.js'
import { evalTextTable, writeReport } from './report.js'

export async function printSummary(ctx: Context, result: PipelineResult): Promise<void> {
  const report = await writeReport(ctx, result)
  process.stdout.write(`${evalTextTable(result.evaluation)}\n\nreport: ${report}\n`)
}

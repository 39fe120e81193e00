// The table the CLI ends with, and where to look next.
import type { Context } from '../run/context.js'
import { headline } from './headline.js'
import { evalTextTable, writeReport, type RunResult } from './run-report.js'

/** Writes the report, prints the table to `out` and gives back the report's path. */
export async function printSummary(ctx: Context, result: RunResult, out: NodeJS.WritableStream): Promise<string> {
  const report = await writeReport(ctx, result)
  const sentence = headline(result.evaluation)
  const table = result.evaluation.length > 0 ? `${evalTextTable(result.evaluation)}\n\n` : ''
  out.write(`${table}${sentence ? `${sentence}\n\n` : ''}report: ${report}\n`)
  return report
}

// `nfhm compare`: the session, the comparison, compare.json and compare.md.
import { join } from 'node:path'
import type { Config } from '../config/schema.js'
import { writeJsonAtomic } from '../run/atomic.js'
import { humanOutput, printJson } from '../run/json-output.js'
import { closeSession, openSession } from '../run/run-session.js'
import { compareTextTable, writeCompareReport } from './compare-report.js'
import { compareModels, resolveInputs } from './compare.js'

export interface CompareOptions {
  /** Default runs_dir/<name>-compare. */
  runDir?: string
  /** compare.json on stdout, the table on stderr. */
  json?: boolean
}

export async function compareCommand(config: Config, models: readonly string[], opts: CompareOptions): Promise<void> {
  const inputs = resolveInputs(config, models)
  const ctx = await openSession(config, { runDir: opts.runDir ?? join(config.runs_dir, `${config.name}-compare`) })
  try {
    const comparison = await compareModels(ctx, inputs)
    writeJsonAtomic(ctx.run.path('compare.json'), comparison)
    const report = await writeCompareReport(ctx.run.root, comparison)
    humanOutput(Boolean(opts.json)).write(`${compareTextTable(comparison)}\n\ncompare.json: ${ctx.run.path('compare.json')}\nreport: ${report}\n`)
    if (opts.json) printJson(comparison)
  } finally {
    await closeSession(ctx)
  }
}

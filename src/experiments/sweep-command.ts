// `nfhm sweep`: the session, the workers, the sweep, and what it leaves:
// sweep.json (after clustering, again at the end) and report/sweep.md.
import { join } from 'node:path'
import type { Config } from '../config/schema.js'
import { writeJsonAtomic } from '../run/atomic.js'
import { humanOutput, printJson } from '../run/json-output.js'
import type { Context } from '../run/context.js'
import { closeSession, openSession } from '../run/run-session.js'
import { sweepTextTable, writeSweepReport } from './sweep-report.js'
import { summariseSweep, type SweepSummary } from './sweep-summary.js'
import { runSweep, type SweepResult } from './sweep.js'
import { closePool, localWorkers, openPool, type PoolWorker } from './worker-pool.js'

export interface SweepOptions {
  /** Default runs_dir/<name>-sweep. */
  runDir?: string
  resume?: boolean
  /** Workers in all (the session's and local stdio ones); default: the session's plus sweep.workers. */
  workers?: number
  /** sweep.json on stdout, the table on stderr. */
  json?: boolean
}

async function save(ctx: Context, result: SweepResult, pool: readonly PoolWorker[], started: number): Promise<{ summary: SweepSummary; report: string }> {
  const summary = summariseSweep(result, {
    name: ctx.config.name,
    resamples: ctx.config.eval.bootstrap,
    workers: pool.map((w) => ({ name: w.name, transport: w.transport, device: w.device })),
    seconds: (performance.now() - started) / 1000,
  })
  writeJsonAtomic(ctx.run.path('sweep.json'), summary)
  const report = await writeSweepReport(ctx.run.path('report'), summary, ctx.config)
  return { summary, report }
}

export async function sweepCommand(config: Config, opts: SweepOptions): Promise<void> {
  const started = performance.now()
  const ctx = await openSession(config, { runDir: opts.runDir ?? join(config.runs_dir, `${config.name}-sweep`), resume: opts.resume })
  try {
    const pool = await openPool(ctx, opts.workers !== undefined ? localWorkers(opts.workers) : config.sweep.workers)
    try {
      const result = await runSweep(ctx, config.sweep, pool, {
        afterClustering: async (clustered) => {
          const { summary } = await save(ctx, clustered, pool, started)
          ctx.say(`sweep: clustering done; ${summary.best.text}`)
        },
      })
      const { summary, report } = await save(ctx, result, pool, started)
      humanOutput(Boolean(opts.json)).write(`${sweepTextTable(summary)}\n\n${summary.best.text}\n\nsweep.json: ${ctx.run.path('sweep.json')}\nreport: ${report}\n`)
      if (opts.json) printJson(summary)
    } finally {
      await closePool(pool)
    }
  } finally {
    await closeSession(ctx)
  }
}

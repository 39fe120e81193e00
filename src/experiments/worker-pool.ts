// Several workers at once: the session's worker plus extra ones (another
// GPU, another machine), and jobs handed to whichever is free. A worker runs
// one call at a time, so one worker means strictly one job after another.
import type { Config } from '../config/schema.js'
import { greet } from '../bridge/contract.js'
import { workerMethods, type WorkerMethods } from '../bridge/methods.js'
import { openWorker, type Worker } from '../bridge/worker.js'
import type { Context } from '../run/context.js'
import { workerSpec } from '../run/run-session.js'
import { BadInputError } from '../run/exit-codes.js'

export type ExtraWorkerConfig = Config['sweep']['workers'][number]

export interface PoolWorker {
  /** "worker 1", "worker 2", ... in the order they were listed. */
  name: string
  /** Its settings: stages map run-folder paths to its machine with them (run/worker-files.ts). */
  config: Config['worker']
  worker: Worker<WorkerMethods>
  device: Context['device']
  transport: string
  pid: number
}

/** `--workers N`: N workers in all, the session's own and N - 1 local stdio workers. */
export function localWorkers(count: number): ExtraWorkerConfig[] {
  return Array.from({ length: Math.max(0, count - 1) }, () => ({
    transport: 'stdio' as const,
    address: null,
    token_file: null,
    python: null,
    env: {},
  }))
}

/** The session's worker first, then the extra ones (started here; close them with closePool). */
export async function openPool(ctx: Context, extra: readonly ExtraWorkerConfig[]): Promise<PoolWorker[]> {
  const first = ctx.manifest.worker as { transport: string; pid: number }
  const pool: PoolWorker[] = [
    { name: 'worker 1', config: ctx.config.worker, worker: ctx.worker, device: ctx.device, transport: first.transport, pid: first.pid },
  ]
  if (extra.filter((w) => w.transport === 'pythonia').length + (first.transport === 'pythonia' ? 1 : 0) > 1) {
    throw new BadInputError('only one pythonia worker can run per process: give the extra workers transport "stdio" or "tcp"')
  }
  try {
    for (const [i, w] of extra.entries()) {
      if (w.transport === 'tcp' && w.address === null) throw new BadInputError(`sweep.workers[${i}]: address is required for the tcp transport`)
      const base = workerSpec({ ...ctx.config, worker: w })
      const spec = base.transport === 'tcp' ? base : { ...base, env: w.env }
      const name = `worker ${i + 2}`
      ctx.say(`${name}: starting (${w.transport}${w.address ? ` ${w.address}` : ''})`)
      const worker = await openWorker(spec, workerMethods, { logFile: ctx.run.path(`worker-${i + 2}.log`) })
      const hello = await greet(worker).catch(async (e: unknown) => {
        await worker.close()
        throw e
      })
      pool.push({ name, config: w, worker, device: hello.device.type, transport: worker.kind, pid: hello.pid })
    }
  } catch (e) {
    await closePool(pool)
    throw e
  }
  return pool
}

/** Closes the extra workers; the session's own is closed with the session. */
export async function closePool(pool: readonly PoolWorker[]): Promise<void> {
  await Promise.allSettled(pool.slice(1).map((w) => w.worker.close()))
}

/**
 * Runs every job on the first free worker, results in job order. After a
 * failure no new job starts; the running ones finish (their outputs are
 * kept for a resume) and then the first error is thrown.
 */
export async function runJobs<J, R>(pool: readonly PoolWorker[], jobs: readonly J[], run: (worker: PoolWorker, job: J) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(jobs.length)
  let next = 0
  let failure: { error: unknown } | undefined
  const loop = async (worker: PoolWorker) => {
    while (!failure && next < jobs.length) {
      const index = next++
      try {
        results[index] = await run(worker, jobs[index]!)
      } catch (error) {
        failure ??= { error }
      }
    }
  }
  await Promise.all(pool.map(loop))
  if (failure) throw failure.error
  return results
}

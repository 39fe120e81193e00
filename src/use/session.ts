// A worker session without a run directory, for `nfhm embed`, `index` and
// `search`: the embed settings, the worker, and the shared embedding cache.
import { resolve } from 'node:path'
import { greet } from '../bridge/contract.js'
import { workerMethods } from '../bridge/methods.js'
import { openWorker } from '../bridge/worker.js'
import { embedSchema, workerSchema } from '../config/schema.js'
import type { Session } from '../run/context.js'
import { workerSpec } from '../run/run-session.js'

export interface SessionOptions {
  /** Default runs/.cache: embeddings cached there are shared with runs under runs/. */
  cacheDir?: string
  batchSize?: number
  loaderWorkers?: number
  skipBad?: boolean
  transport?: 'pythonia' | 'stdio'
}

export const DEFAULT_CACHE_DIR = 'runs/.cache'

export async function openUseSession(opts: SessionOptions): Promise<Session> {
  const config = {
    embed: embedSchema.parse({ batch_size: opts.batchSize, loader_workers: opts.loaderWorkers, skip_bad: opts.skipBad }),
    worker: workerSchema.parse({ transport: opts.transport }),
  }
  const worker = await openWorker(workerSpec(config), workerMethods)
  try {
    const hello = await greet(worker)
    return {
      config,
      worker,
      device: hello.device.type,
      cacheDir: resolve(opts.cacheDir ?? DEFAULT_CACHE_DIR),
      say: (message) => process.stderr.write(`${message}\n`),
      warn: (message) => process.stderr.write(`warning: ${message}\n`),
    }
  } catch (e) {
    worker.kill()
    throw e
  }
}

/** Runs `work` in a session and closes it, whatever happens. */
export async function withUseSession<T>(opts: SessionOptions, work: (session: Session) => Promise<T>): Promise<T> {
  const session = await openUseSession(opts)
  try {
    return await work(session)
  } finally {
    await session.worker.close()
  }
}

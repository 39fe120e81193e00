// Files the worker writes (embedding shards, pseudo-labels, checkpoints,
// trained models) live on the worker's machine, which for a remote worker is
// not this one. Stages name them by worker paths and ask the worker about
// them; the orchestrator keeps only its own records (manifest, metrics, JSON
// summaries, eval, report) in its run directory.
//
// Paths map by position under the runs folder: this run's folder and the
// shared .cache sit under dirname(cacheDir) here and under worker.runs_dir on
// the worker (the same path when that is unset: a shared filesystem).
import { dirname, isAbsolute, posix, relative, sep } from 'node:path'
import type { Table } from 'apache-arrow'
import type { Session } from './context.js'

/** The worker's path of `local`, a path in this run's folder or the cache. */
export function workerPath(ctx: Session, local: string): string {
  const remote = ctx.config.worker.runs_dir
  if (remote === undefined) return local
  const inside = relative(dirname(ctx.cacheDir), local)
  if (inside.startsWith('..') || isAbsolute(inside)) throw new Error(`${local} is outside the runs folder ${dirname(ctx.cacheDir)}`)
  return posix.join(remote, ...inside.split(sep))
}

/** Whether each worker path exists on the worker's machine (one call for all). */
export async function workerFilesExist(ctx: Session, paths: string[]): Promise<boolean[]> {
  if (paths.length === 0) return []
  const { result } = await ctx.worker.call('files.stat', { paths })
  return result.files.map((f) => f.exists)
}

/** An Arrow file on the worker's machine, sent back as a frame. */
export async function readWorkerTable(ctx: Session, path: string): Promise<Table> {
  const { tables } = await ctx.worker.call('files.read_table', { path })
  return tables.table!
}

// Opening a run: lock the run directory, start (or connect to) the worker,
// and keep the manifest (config, versions, seeds, inputs, timings) current.
// The manifest is first written once the inputs have been checked (the
// commit: prepareImages in recipe/images.ts): a session that fails before then - a bad table,
// a K too large - is undone by closeSession and leaves the run directory as
// it was.
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { Config } from '../config/schema.js'
import { greet } from '../bridge/contract.js'
import { workerMethods } from '../bridge/methods.js'
import { repoRoot } from '../bridge/python.js'
import { openWorker, type WorkerSpec } from '../bridge/worker.js'
import { RunDir, type Manifest } from './run-dir.js'
import type { Context } from './context.js'
import { BadInputError } from './exit-codes.js'

export const nfhmVersion = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version

export interface SessionOptions {
  /** Run directory; default runs_dir/name. */
  runDir?: string
  /** Expect an existing run to continue (an error if there is none). */
  resume?: boolean
}

/** A file a tcp worker's settings name (its token, its certificate), or an error naming the setting. */
function readSetting(field: string, path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (e) {
    throw new BadInputError(`worker.${field}: cannot read ${path}: ${(e as Error).message}`)
  }
}

export function workerSpec(config: Pick<Config, 'worker'>): WorkerSpec {
  const w = config.worker
  if (w.transport === 'tcp') {
    const [host, port] = w.address!.replace('tcp://', '').split(':')
    const token = w.token_file ? readSetting('token_file', w.token_file).trim() : (process.env.NFHM_TOKEN ?? '')
    if (!token) throw new BadInputError('worker.token_file (or NFHM_TOKEN) is needed for a tcp worker')
    const ca = w.tls_ca === undefined ? undefined : readSetting('tls_ca', w.tls_ca)
    return { transport: 'tcp', host: host!, port: Number(port), token, ca }
  }
  // Under torchrun rank 0 speaks over stdio, whichever local transport is configured.
  if (w.distributed) return { transport: 'stdio', python: w.python ?? undefined, torchrun: w.distributed }
  return { transport: w.transport, python: w.python ?? undefined }
}

export async function openSession(config: Config, opts: SessionOptions = {}): Promise<Context> {
  const root = resolve(opts.runDir ?? join(config.runs_dir, config.name))
  const run = new RunDir(root)
  const existing = run.readManifest()
  if (opts.resume && !existing) throw new BadInputError(`--resume: ${root} holds no run to continue (no manifest.json)`)
  run.lock()
  const say = (message: string) => process.stderr.write(`${message}\n`)
  const warn = (message: string) => process.stderr.write(`warning: ${message}\n`)
  const stale = run.removeStaleTemporaryFiles()
  if (stale.length > 0) say(`removed ${stale.length} partial file(s) an interrupted run left: ${stale.join(', ')}`)
  const log = run.path('worker.log')
  run.provisionalFile(log)
  let worker
  let hello
  try {
    worker = await openWorker(workerSpec(config), workerMethods, { logFile: log })
    hello = await greet(worker)
  } catch (e) {
    worker?.kill()
    run.unlock()
    run.discard()
    throw e
  }
  const now = new Date().toISOString()
  const manifest: Manifest = {
    nfhm: nfhmVersion,
    created: existing?.created ?? now,
    updated: now,
    config,
    versions: { ...hello.versions, node: process.versions.node },
    device: hello.device,
    worker: { transport: worker.kind, pid: hello.pid, world_size: hello.world_size },
    stages: existing?.stages ?? {},
    skipped_images: existing?.skipped_images ?? [],
  }
  if (existing) say(`continuing the run in ${root}`)
  return {
    config,
    run,
    worker,
    device: hello.device.type,
    cacheDir: join(dirname(root), '.cache'),
    manifest,
    say,
    warn,
  }
}

export async function closeSession(ctx: Context): Promise<void> {
  try {
    await ctx.worker.close()
  } finally {
    ctx.run.unlock()
    if (!ctx.run.committed) ctx.run.discard()
  }
}

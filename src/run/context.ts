// What every stage works with: the config, the run directory, the worker.
import type { Config } from '../config/schema.js'
import type { WorkerMethods } from '../bridge/methods.js'
import type { Worker } from '../bridge/worker.js'
import type { Manifest, RunDir } from './run-dir.js'

/** What work through the worker needs: a run's Context, or a command without a run (`nfhm embed`, `index`, `search`). */
export interface Session {
  config: Pick<Config, 'embed' | 'worker'>
  worker: Worker<WorkerMethods>
  device: 'cpu' | 'cuda'
  /** Shared by runs under the same runs_dir: embeddings keyed by what made them. */
  cacheDir: string
  /** Progress and notes for the user (stderr); stdout is kept for results. */
  say(message: string): void
  warn(message: string): void
}

export interface Context extends Session {
  config: Config
  run: RunDir
  manifest: Manifest
}

export function saveManifest(ctx: Context): void {
  ctx.run.writeManifest(ctx.manifest)
}

/** 'auto' precision: bf16 autocast on CUDA, fp32 on CPU (bf16 matmuls are slow on most CPUs). */
export function resolvePrecision(ctx: Session, precision: Config['train']['precision']): 'fp32' | 'bf16' | 'fp16' {
  return precision === 'auto' ? (ctx.device === 'cuda' ? 'bf16' : 'fp32') : precision
}

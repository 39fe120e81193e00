// The embed stage (and `nfhm embed`, `nfhm search`): batched forward passes in the worker, one shard per call, each
// shard an Arrow IPC file. Shards are cached under a key of everything that
// changes the numbers (model, weights hash, transform, precision, the image
// files, each by its path, size and modification time):
// a rerun with the same key is instant, a killed run resumes at its first
// missing shard, and a changed key re-embeds.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BadImage, ModelSpec } from '../bridge/methods.js'
import { tableOf } from '../run/arrow.js'
import { writeJsonAtomic } from '../run/atomic.js'
import { BadInputError } from '../run/exit-codes.js'
import { resolvePrecision, saveManifest, type Context, type Session } from '../run/context.js'
import { keyOf } from '../run/keys.js'
import { Progress } from '../run/progress.js'
import { workerFilesExist, workerPath } from '../run/worker-files.js'
import { imagesKey, type Subset } from './images.js'

export interface EmbeddingSet {
  key: string
  dir: string
  /** Paths on the worker's machine. */
  shards: string[]
  rows: number
  dim: number
  bad: BadImage[]
}

interface ShardRecord {
  rows: number
  dim: number
  bad: BadImage[]
  seconds: number
}

export class BadImagesError extends BadInputError {
  override name = 'BadImagesError'
  constructor(readonly bad: BadImage[]) {
    const lines = bad.map((b) => `  ${b.path}: ${b.reason}`)
    super(`${bad.length} image(s) cannot be read; fix or remove them, or rerun with --skip-bad:\n${lines.join('\n')}`)
  }
}

/** Refuses unreadable images, listing every one, unless embed.skip_bad: then they are recorded in the manifest (and the report). */
export function acceptBadImages(ctx: Context, bad: BadImage[]): void {
  if (bad.length === 0) return
  if (!ctx.config.embed.skip_bad) throw new BadImagesError(bad)
  ctx.warn(`skipped ${bad.length} unreadable image(s) (listed in manifest.json)`)
  const known = new Set(ctx.manifest.skipped_images.map((b) => b.path))
  ctx.manifest.skipped_images.push(...bad.filter((b) => !known.has(b.path)))
  saveManifest(ctx)
}

function readJson<T>(path: string): T | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : undefined
}

export async function embedImages(ctx: Context, model: ModelSpec, images: Subset, label: string): Promise<EmbeddingSet> {
  return embedInCache(ctx, model, images, label, (bad) => acceptBadImages(ctx, bad))
}

/**
 * Embeds `images` into the shared cache (or finds them there); `accept` sees
 * the unreadable images and throws to refuse them, before the set is recorded.
 */
export async function embedInCache(
  ctx: Session,
  model: ModelSpec,
  images: Subset,
  label: string,
  accept: (bad: BadImage[]) => void,
): Promise<EmbeddingSet> {
  const cfg = ctx.config.embed
  const precision = resolvePrecision(ctx, cfg.precision)
  const { result: described } = await ctx.worker.call('model.describe', { model })
  const key = keyOf({
    loader: model.loader,
    name: model.name,
    // The architecture too: a named config that changes between versions must not reuse old shards.
    image_size: described.image_size,
    embedding_size: described.embedding_size,
    parameters: described.parameters,
    weights: described.weights_sha256,
    transform: described.transform,
    precision,
    images: await imagesKey(ctx, images),
    shard_size: cfg.shard_size,
  })
  const dir = join(ctx.cacheDir, 'embeddings', key)
  const nShards = Math.max(1, Math.ceil(images.ids.length / cfg.shard_size))
  const names = Array.from({ length: nShards }, (_, i) => `shard-${String(i).padStart(5, '0')}`)
  // The shards live where the worker is; their records stay here.
  const shards = names.map((name) => workerPath(ctx, join(dir, `${name}.arrow`)))
  const present = await workerFilesExist(ctx, shards)
  const records: ShardRecord[] = []
  const progress = new Progress(`embed ${label}`, images.ids.length, 'images')
  let done = 0
  let resumed = 0
  for (let i = 0; i < nShards; i++) {
    const start = i * cfg.shard_size
    const end = Math.min(images.ids.length, start + cfg.shard_size)
    const recordPath = join(dir, `${names[i]}.json`)
    let record = readJson<ShardRecord>(recordPath)
    // A shard with unreadable images is embedded again unless they are to be skipped.
    if (record && (record.bad.length === 0 || cfg.skip_bad) && present[i]) {
      resumed += end - start
    } else {
      const { result } = await ctx.worker.call(
        'embed.shard',
        { model, out: shards[i]!, batch_size: cfg.batch_size, loader_workers: cfg.loader_workers, precision },
        { tables: { images: tableOf({ id: images.ids.subarray(start, end), path: images.paths.slice(start, end) }) } },
      )
      record = { rows: result.rows, dim: result.dim, bad: result.bad, seconds: result.seconds }
      writeJsonAtomic(recordPath, record)
    }
    records.push(record)
    done = end
    progress.update(done, {}, resumed)
  }
  const bad = records.flatMap((r) => r.bad)
  const set: EmbeddingSet = { key, dir, shards, rows: records.reduce((a, r) => a + r.rows, 0), dim: records[0]!.dim, bad }
  const before = resumed > 0 ? ` (${resumed.toLocaleString('en-US')} embedded before)` : ''
  progress.finish(resumed === images.ids.length ? `(cached: ${dir})` : `-> ${dir}${before}`)
  accept(bad)
  writeJsonAtomic(join(dir, 'embeddings.json'), { key, model, described, precision, rows: set.rows, dim: set.dim, shards: nShards, bad })
  return set
}

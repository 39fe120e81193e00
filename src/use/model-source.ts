// The model a user names for `nfhm embed` (a trained_model.pt, a run
// directory, a UNICOM release file, a model name), resolved by the worker
// (python/nfhm/core/sources.py), and the record of it that an embeddings file
// and an index keep so that `nfhm search` embeds its queries alike.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import type { z } from 'zod'
import type { ModelSpec, workerMethods } from '../bridge/methods.js'
import type { Session } from '../run/context.js'
import { BadInputError } from '../run/exit-codes.js'

type SourceParam = z.infer<typeof workerMethods['model.resolve']['params']>['source']
type Described = z.infer<typeof workerMethods['model.describe']['result']>

/** What an embeddings file's metadata and an index's sidecar record of the model (key `model`). */
export interface ModelRecord {
  /** The source as the worker was given it: a path (absolute) or a name. */
  source: SourceParam
  kind: 'run' | 'trained' | 'unicom' | 'name'
  spec: ModelSpec
  identity: Record<string, unknown>
  embedding_size: number
  image_size: number
  weights_sha256: string | null
  transform: string
}

const FILE_LIKE = /^(\/|\.{1,2}\/|~)|\/$|\.(pt|pth|bin|safetensors)$/i

/**
 * A path when the argument names a file or folder here or looks like one (an
 * absolute or ./ path, a weights file's extension), else a model name. The two
 * travel apart so that a remote worker confines the path and never reads a
 * name as one (methods.ts, model.resolve).
 */
export function sourceParam(arg: string): SourceParam {
  return existsSync(arg) || FILE_LIKE.test(arg) ? { path: resolve(arg) } : { name: arg }
}

/** The record of `source` (as sourceParam makes it, or as a file recorded it): spec, identity, and what the loaded model says of itself. */
export async function resolveModel(session: Session, source: SourceParam): Promise<ModelRecord> {
  const { result: found } = await session.worker.call('model.resolve', { source })
  const { result: described } = await session.worker.call('model.describe', { model: found.spec })
  return recordOf(source, found, described)
}

function recordOf(source: SourceParam, found: { kind: ModelRecord['kind']; spec: ModelSpec; identity: Record<string, unknown> }, described: Described): ModelRecord {
  return {
    source,
    kind: found.kind,
    spec: found.spec,
    identity: found.identity,
    embedding_size: described.embedding_size,
    image_size: described.image_size,
    weights_sha256: described.weights_sha256,
    transform: described.transform,
  }
}

const sourceName = (source: SourceParam) => ('path' in source ? source.path : source.name)

/**
 * The model `recorded` names, resolved again now; refused, naming `where`,
 * when its weights, transform or embedding size are no longer those the
 * recorded embeddings were made with.
 */
export async function sameModelAgain(session: Session, recorded: ModelRecord, where: string): Promise<ModelRecord> {
  const now = await resolveModel(session, recorded.source)
  const name = sourceName(recorded.source)
  const changed = (what: string, then: unknown, today: unknown) =>
    new BadInputError(`${where} was built from embeddings of ${name} with ${what} ${String(then)}, but ${name} now has ${String(today)}: embed the images again (nfhm embed) and rebuild the index`)
  if (now.embedding_size !== recorded.embedding_size) throw changed('embedding size', recorded.embedding_size, now.embedding_size)
  if (now.weights_sha256 !== recorded.weights_sha256) throw changed('weights sha256', recorded.weights_sha256, now.weights_sha256)
  if (now.transform !== recorded.transform) throw changed('transform', recorded.transform, now.transform)
  return now
}

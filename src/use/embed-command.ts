// `nfhm embed <table|folder> --model <source> --out <file>`: every image
// embedded by any model into one Parquet or Arrow file (docs/use.md), through
// the shared embedding cache that evaluation uses, so the rows equal eval's
// embeddings of the same images and an interrupted embed resumes from its
// finished shards.
import { embedInCache } from '../recipe/embed.js'
import { tableOf, type Column } from '../run/arrow.js'
import { nfhmVersion } from '../run/run-session.js'
import { asSubset, badImagesPolicy, scanImages, type ImageColumns } from './inputs.js'
import { resolveModel, sourceParam, type ModelRecord } from './model-source.js'
import { inputPath, outputFile } from './outputs.js'
import { withUseSession, type SessionOptions } from './session.js'

export const EMBEDDINGS_FORMATS = ['.parquet', '.arrow'] as const

export interface EmbedOptions extends SessionOptions, ImageColumns {
  model: string
  out: string
  normalize: boolean
  overwrite: boolean
}

export interface EmbedSummary {
  out: string
  rows: number
  dim: number
  skipped: number
  model: ModelRecord
}

export async function embedCommand(input: string, opts: EmbedOptions): Promise<EmbedSummary> {
  const out = outputFile(opts.out, 'an embeddings file', EMBEDDINGS_FORMATS, opts.overwrite)
  inputPath(input, 'image table or folder')
  return withUseSession(opts, async (session) => {
    const model = await resolveModel(session, sourceParam(opts.model))
    const images = await scanImages(session, input, opts)
    const subset = asSubset(images)
    const set = await embedInCache(session, model.spec, subset, 'images', badImagesPolicy(session, Boolean(opts.skipBad)))
    const columns: Record<string, Column> = { id: subset.ids, path: subset.paths }
    if (images.labels !== null) columns.label = images.labels
    const { result } = await session.worker.call(
      'embeddings.write',
      {
        shards: set.shards,
        out,
        normalize: opts.normalize,
        metadata: { model, input: images.source, skipped: set.bad.map(({ path, reason }) => ({ path, reason })), nfhm: nfhmVersion },
      },
      { tables: { images: tableOf(columns) } },
    )
    session.say(`embeddings: ${result.rows.toLocaleString('en-US')} x ${result.dim} -> ${out}`)
    return { out, rows: result.rows, dim: result.dim, skipped: set.bad.length, model }
  })
}

// `nfhm index <embeddings file> --out <index>`: a faiss index for cosine
// similarity over an embeddings file, exact or HNSW (its recall@10 against
// exact measured when built), with its sidecar <index>.rows.arrow
// (python/nfhm/core/vector_index.py).
import { BadInputError } from '../run/exit-codes.js'
import { EMBEDDINGS_FORMATS } from './embed-command.js'
import { inputPath, outputFile } from './outputs.js'
import { withUseSession, type SessionOptions } from './session.js'

export const INDEX_FORMATS = ['.faiss', '.index'] as const

export interface HnswOptions {
  m: number
  efConstruction: number
  efSearch: number
}

export interface IndexOptions extends Pick<SessionOptions, 'transport'> {
  out: string
  overwrite: boolean
  /** null: exact (IndexFlatIP). */
  hnsw: HnswOptions | null
  /** Rows whose exact neighbours the approximate index is checked against. */
  recallSample: number
  seed: number
}

export interface IndexSummary {
  index: string
  sidecar: string
  rows: number
  dim: number
  kind: 'flat' | 'hnsw'
  recall_at_10: number | null
  recall_queries: number
}

export async function indexCommand(embeddings: string, opts: IndexOptions): Promise<IndexSummary> {
  const source = inputPath(embeddings, 'embeddings file')
  if (!EMBEDDINGS_FORMATS.some((ext) => source.toLowerCase().endsWith(ext))) {
    throw new BadInputError(`${embeddings}: an embeddings file is ${EMBEDDINGS_FORMATS.join(' or ')} (written by nfhm embed)`)
  }
  const out = outputFile(opts.out, 'an index', INDEX_FORMATS, opts.overwrite)
  return withUseSession(opts, async (session) => {
    const hnsw = opts.hnsw && { m: opts.hnsw.m, ef_construction: opts.hnsw.efConstruction, ef_search: opts.hnsw.efSearch }
    const { result } = await session.worker.call('index.build', { embeddings: source, out, hnsw, recall_sample: opts.recallSample, seed: opts.seed })
    const recall = result.recall_at_10 === null ? '' : `, recall@10 against exact ${result.recall_at_10.toFixed(4)} on ${result.recall_queries} rows`
    session.say(`index: ${result.rows.toLocaleString('en-US')} x ${result.dim}, ${result.kind}${recall} -> ${out}`)
    return { index: out, sidecar: result.sidecar, rows: result.rows, dim: result.dim, kind: result.kind, recall_at_10: result.recall_at_10, recall_queries: result.recall_queries }
  })
}

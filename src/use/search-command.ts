// `nfhm search --index <index> <images... | table> --k 10 --out <file>`: the
// queries embedded by the model the index records (resolved again, refused
// when it changed), their k nearest indexed images written one row per
// (query, rank), and optionally a page of thumbnails (page.ts).
import { statSync } from 'node:fs'
import type { Table } from 'apache-arrow'
import { embedInCache } from '../recipe/embed.js'
import { tableOf } from '../run/arrow.js'
import { writeFileAtomic } from '../run/atomic.js'
import { BadInputError } from '../run/exit-codes.js'
import { asSubset, badImagesPolicy, isTable, scanImages, type ImageColumns, type InputImages } from './inputs.js'
import { sameModelAgain, type ModelRecord } from './model-source.js'
import { inputPath, outputFile } from './outputs.js'
import { base, caption, searchPage, type QueryNeighbours } from './page.js'
import type { ContactSheet } from '../bridge/methods.js'
import type { Session } from '../run/context.js'
import { withUseSession, type SessionOptions } from './session.js'

/** The most queries one PNG grid shows (the contact sheet's limit), and its thumbnails' size. */
const SHEET_ROWS = 64
const SHEET_THUMBNAIL = 96

export interface SearchOptions extends SessionOptions, ImageColumns {
  index: string
  k: number
  out: string
  page: string | null
  overwrite: boolean
}

export interface SearchSummary {
  index: string
  k: number
  files: { neighbours: string; page: string | null }
  skipped: Array<{ path: string; reason: string }>
  queries: QueryNeighbours[]
}

/** One table or folder, scanned; else image files, each of which must exist. */
function queryList(queries: string[]): InputImages | string {
  if (queries.length === 0) throw new BadInputError('no query images given: name image files, a folder or a table')
  const [first] = queries
  if (queries.length === 1 && (isTable(first!) || statSync(inputPath(first!, 'query image, folder or table')).isDirectory())) return first!
  return { source: null, paths: queries.map((q) => inputPath(q, 'query image')), labels: null }
}

export async function searchCommand(queries: string[], opts: SearchOptions): Promise<SearchSummary> {
  if (!(Number.isInteger(opts.k) && opts.k >= 1)) throw new BadInputError(`--k ${opts.k}: expected a whole number >= 1`)
  const index = inputPath(opts.index, 'index')
  const out = outputFile(opts.out, 'the neighbours table', ['.parquet', '.csv'], opts.overwrite)
  const page = opts.page === null ? null : outputFile(opts.page, 'the grid page', ['.html', '.md', '.png'], opts.overwrite)
  const listed = queryList(queries)
  return withUseSession(opts, async (session) => {
    const { result: record } = await session.worker.call('index.describe', { index })
    if (record.model === null) throw new BadInputError(`index ${index} records no model: its embeddings file was not written by nfhm embed`)
    const model = await sameModelAgain(session, record.model as unknown as ModelRecord, `index ${index}`)
    if (record.embedding_size !== model.embedding_size) {
      throw new BadInputError(
        `index ${index} holds ${record.embedding_size}-dimensional embeddings, but its model makes ${model.embedding_size}-dimensional ones: build the index from this model's embeddings (nfhm embed, nfhm index)`,
      )
    }
    const images = typeof listed === 'string' ? await scanImages(session, listed, opts) : listed
    const subset = asSubset(images)
    const set = await embedInCache(session, model.spec, subset, 'queries', badImagesPolicy(session, Boolean(opts.skipBad)))
    const { tables } = await session.worker.call(
      'index.search',
      { index, query_shards: set.shards, k: opts.k, out },
      { tables: { queries: tableOf({ id: subset.ids, path: subset.paths }) } },
    )
    const results = groupByQuery(tables.neighbours!)
    if (page?.toLowerCase().endsWith('.png')) writeFileAtomic(page, await searchSheet(session, results, labelOf(images)))
    else if (page !== null) writeFileAtomic(page, searchPage(page, index, results))
    session.say(`search: ${results.length} queries x ${opts.k} neighbours -> ${out}${page === null ? '' : `, ${page}`}`)
    return { index, k: opts.k, files: { neighbours: out, page }, skipped: set.bad.map(({ path, reason }) => ({ path, reason })), queries: results }
  })
}

/** A query's label where its input has labels, to frame its neighbours as of its label or not. */
function labelOf(images: InputImages): (path: string) => string | null {
  const labels = new Map(images.paths.map((path, i) => [path, images.labels?.[i] ?? null]))
  return (path) => labels.get(path) ?? null
}

/** The grid as one PNG, drawn by the worker (the report's contact sheet): for a README or a slide. */
async function searchSheet(session: Session, results: QueryNeighbours[], queryLabel: (path: string) => string | null): Promise<Buffer> {
  const shown = results.slice(0, SHEET_ROWS)
  if (shown.length < results.length) session.warn(`search: the PNG grid shows the first ${SHEET_ROWS} of ${results.length} queries`)
  const ids = new Map<string, number>()
  const idOf = (path: string) => ids.get(path) ?? ids.set(path, ids.size).size - 1
  const rows: ContactSheet['rows'] = shown.map((r) => {
    const label = queryLabel(r.query)
    const mark = (n: QueryNeighbours['neighbours'][number]) => (label === null || n.label === null ? 'neighbour' : n.label === label ? 'right' : 'wrong')
    return {
      caption: base(r.query),
      groups: [
        [{ id: idOf(r.query), caption: label ?? '', mark: 'query' }],
        r.neighbours.map((n) => ({ id: idOf(n.path), caption: caption(n), mark: mark(n) })),
      ],
    }
  })
  const images = tableOf({ id: Int32Array.from(ids.values()), path: [...ids.keys()] })
  const k = Math.max(...shown.map((r) => r.neighbours.length))
  const { result } = await session.worker.call('pictures.sheet', { headers: ['query', `nearest ${k}`], rows, size: SHEET_THUMBNAIL }, { tables: { images } })
  return Buffer.from(result.png, 'base64')
}

function groupByQuery(table: Table): QueryNeighbours[] {
  const column = <T>(name: string) => table.getChild(name)!.toArray() as ArrayLike<T>
  const [query, rank, path, label, score] = [column<string>('query'), column<number>('rank'), column<string>('path'), column<string | null>('label'), column<number>('score')]
  const results: QueryNeighbours[] = []
  for (let i = 0; i < table.numRows; i++) {
    if (rank[i] === 1) results.push({ query: query[i]!, neighbours: [] })
    results.at(-1)!.neighbours.push({ rank: rank[i]!, path: path[i]!, label: label[i] ?? null, score: score[i]! })
  }
  return results
}

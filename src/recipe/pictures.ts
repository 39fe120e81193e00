// The report's pictures, computed in the eval stage from the run's own
// evaluated embeddings and neighbour lists (queries and their gallery neighbours): the nearest-neighbour grid (laid out here,
// drawn by the worker), Recall@1 per class, and a t-SNE map of the last
// trained model's test embeddings (the worker's, on a seeded sample).
import { recallAt1ByClass } from '../eval/per-class.js'
import { strongestBaseline } from '../report/headline.js'
import { chooseQueries, neighbourSheet } from '../report/neighbour-grid.js'
import type { EvalPictures } from '../report/pictures.js'
import { tableOf } from '../run/arrow.js'
import type { Context } from '../run/context.js'
import type { ModelEval } from './evaluate.js'
import type { ImageList } from './images.js'

/** Queries in each of the grid's groups (best, worst, random), and its thumbnails' size in pixels. */
const GRID_QUERIES = 4
const THUMBNAIL = 64
/** Test embeddings the map places at most: t-SNE's time grows with them (python/nfhm/core/embedding_map.py). */
const MAP_POINTS = 2000

/** The pictures of the last of `results` after the first `baselines`; null when no model was trained. */
export async function evaluationPictures(
  ctx: Context,
  images: ImageList,
  results: readonly ModelEval[],
  baselines: number,
  seed: number,
): Promise<EvalPictures | null> {
  const model = results.at(-1)
  if (!model || results.length === baselines) return null
  const started = performance.now()
  const pictures: EvalPictures = {
    model: model.name,
    protocol: model.protocol,
    grid: await neighbourGrid(ctx, images, results, model, seed),
    perClass: classRecall(images, results, model),
    map: await embeddingMapOf(ctx, images, model, seed),
  }
  const seconds = (performance.now() - started) / 1000
  ctx.say(`pictures: neighbour grid, Recall@1 per class and a map of ${pictures.map.points.length.toLocaleString('en-US')} embeddings in ${seconds.toFixed(1)} s`)
  return pictures
}

async function neighbourGrid(ctx: Context, images: ImageList, results: readonly ModelEval[], model: ModelEval, seed: number): Promise<EvalPictures['grid']> {
  const mapAtR = model.perQuery['map@r']!
  const chosen = chooseQueries(mapAtR, GRID_QUERIES, seed)
  if (chosen.length === 0) return null
  const baseline = strongestBaseline(results, model, 'map@r')
  const panels = [model, ...(baseline ? [baseline] : [])]
  const { sheet, images: shown } = neighbourSheet({ chosen, mapAtR, panels, classOf: images.classIds, classNames: images.classNames })
  const ids = Int32Array.from(shown)
  const list = tableOf({ id: ids, path: Array.from(ids, (id) => images.paths[id]!) })
  const { result } = await ctx.worker.call('pictures.sheet', { ...sheet, size: THUMBNAIL }, { tables: { images: list } })
  if (result.unreadable > 0) ctx.warn(`pictures: ${result.unreadable} image(s) of the neighbour grid could not be read now; they are drawn grey`)
  return { png: Buffer.from(result.png, 'base64'), baseline: baseline?.name ?? null, perGroup: GRID_QUERIES, neighbours: model.nearest.k, seed }
}

function classRecall(images: ImageList, results: readonly ModelEval[], model: ModelEval): EvalPictures['perClass'] {
  const baseline = strongestBaseline(results, model, 'recall@1')
  const theirs = new Map(baseline ? recallAt1ByClass(baseline.nearest, images.classIds).map((c) => [c.classId, c.recall]) : [])
  const classes = recallAt1ByClass(model.nearest, images.classIds).map((c) => ({
    name: images.classNames[c.classId] ?? 'unlabelled',
    queries: c.queries,
    model: c.recall,
    baseline: theirs.get(c.classId) ?? null,
  }))
  return { baseline: baseline?.name ?? null, classes }
}

async function embeddingMapOf(ctx: Context, images: ImageList, model: ModelEval, seed: number): Promise<EvalPictures['map']> {
  const { result, tables } = await ctx.worker.call('pictures.map', { shards: model.shards, points: MAP_POINTS, seed })
  const table = tables.points!
  const [ids, xs, ys] = (['id', 'x', 'y'] as const).map((name) => table.getChild(name)!.toArray() as Int32Array | Float32Array)
  const points = Array.from(ids!, (id, i) => ({ x: xs![i]!, y: ys![i]!, group: images.classNames[images.classIds[id]!] ?? 'unlabelled' }))
  return { points, of: result.of, seed }
}

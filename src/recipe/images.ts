// The image list: the user's table or folder tree, with ids, class ids and a split.
import type { BadImage } from '../bridge/methods.js'
import { tableOf, writeArrowFile } from '../run/arrow.js'
import { saveManifest, type Context } from '../run/context.js'
import { keyOf } from '../run/keys.js'
import { splitImages, TEST } from './split.js'

export interface ImageList {
  /** Image i has id i. */
  paths: string[]
  labels: Array<string | null>
  /** Index into classNames, or -1 when unlabelled. */
  classIds: Int32Array
  classNames: string[]
  /** TRAIN (0) or TEST (1) per image. */
  split: Uint8Array
  sha256: string
}

export interface Subset {
  ids: Int32Array
  paths: string[]
  classIds: Int32Array
}

export function subset(images: ImageList, which: number): Subset {
  const ids = Int32Array.from(Array.from(images.split.keys()).filter((i) => images.split[i] === which))
  return { ids, paths: Array.from(ids, (i) => images.paths[i]!), classIds: ids.map((i) => images.classIds[i]!) }
}

/**
 * Scans the table or folder and splits it; `check` may refuse the list (a K
 * too large, say) before anything is written. Then images.arrow and the
 * manifest are written: the run is committed.
 */
export async function prepareImages(ctx: Context, check: (images: ImageList) => void | Promise<void> = () => {}): Promise<ImageList> {
  const d = ctx.config.data
  const splitColumn = d.split.by === 'column' ? d.split.column : null
  const { result, tables } = await ctx.worker.call('data.scan', {
    table: d.table,
    folder: d.folder,
    image_root: d.image_root,
    path_column: d.path_column,
    label_column: d.folder ? null : d.label_column,
    split_column: splitColumn,
  })
  const table = tables.images!
  const paths = table.getChild('path')!.toArray() as string[]
  const labels = (table.getChild('label')?.toArray() as Array<string | null> | undefined) ?? paths.map(() => null)
  const classNames = [...new Set(labels.filter((l): l is string => l !== null))].sort()
  const classOf = new Map(classNames.map((name, i) => [name, i]))
  const classIds = Int32Array.from(labels, (l) => (l === null ? -1 : classOf.get(l)!))
  const splitValues = (table.getChild('split')?.toArray() as Array<string | null> | undefined) ?? paths.map(() => null)
  const split = splitImages(d.split, classIds, splitValues)
  const images: ImageList = { paths: Array.from(paths), labels: Array.from(labels), classIds, classNames, split, sha256: result.sha256 }
  await check(images)

  writeArrowFile(
    ctx.run.path('images.arrow'),
    tableOf({
      id: Int32Array.from(paths, (_, i) => i),
      path: images.paths,
      label: images.labels,
      class: classIds,
      split: Array.from(split, (s) => (s === TEST ? 'test' : 'train')),
    }),
  )
  const nTest = split.reduce((a, s) => a + s, 0)
  const skipped = result.skipped_folders
  ctx.manifest.inputs = { source: result.source, sha256: result.sha256, images: paths.length, classes: classNames.length, train: paths.length - nTest, test: nTest, skipped_folders: skipped }
  saveManifest(ctx)
  for (const folder of skipped) ctx.warn(`images: skipped folder ${folder.path}: ${folder.reason}`)
  ctx.say(`images: ${paths.length.toLocaleString('en-US')} from ${result.source} (${classNames.length} classes; ${paths.length - nTest} train, ${nTest} test)`)
  return images
}

/** The images of `images` that cannot be decoded (read now, without a model). */
export async function findBadImages(ctx: Context, images: Subset): Promise<BadImage[]> {
  const { result } = await ctx.worker.call(
    'data.check',
    { loader_workers: ctx.config.embed.loader_workers },
    { tables: { images: tableOf({ id: images.ids, path: images.paths }) } },
  )
  return result.bad
}

/**
 * The key of a subset's images in cache keys: which files, and each file's
 * size and modification time on the worker's machine, so that a file changed
 * in place counts as a new image.
 */
export async function imagesKey(ctx: Context, images: Subset): Promise<string> {
  const { result } = await ctx.worker.call('data.stat', {}, { tables: { images: tableOf({ id: images.ids, path: images.paths }) } })
  return keyOf({ ids: Array.from(images.ids), paths: images.paths, files: result.sha256 }, 64)
}

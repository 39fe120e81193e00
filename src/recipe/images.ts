// The image list: the user's table or folder tree, with ids, class ids and a split.
import type { BadImage } from '../bridge/methods.js'
import { tableOf, writeArrowFile } from '../run/arrow.js'
import { saveManifest, type Context, type Session } from '../run/context.js'
import { keyOf } from '../run/keys.js'
import { BOTH, evaluatedImages, splitImages, TEST, TRAIN } from './split.js'
import { BadInputError } from '../run/exit-codes.js'

export interface ImageList {
  /** Image i has id i. */
  paths: string[]
  labels: Array<string | null>
  /** Index into classNames, or -1 when unlabelled. */
  classIds: Int32Array
  classNames: string[]
  /** TRAIN, TEST or BOTH per image. */
  split: Uint8Array
  /** Each image's value in eval.protocol's column (null without one). */
  groups: Array<string | null>
  sha256: string
}

export interface Subset {
  ids: Int32Array
  paths: string[]
  classIds: Int32Array
}

/** The images whose split flag has `which` (TRAIN or TEST), and `keep` says yes to. */
export function subset(images: ImageList, which: number, keep: (id: number) => boolean = () => true): Subset {
  const ids = Int32Array.from(Array.from(images.split.keys()).filter((i) => (images.split[i]! & which) !== 0 && keep(i)))
  return { ids, paths: Array.from(ids, (i) => images.paths[i]!), classIds: ids.map((i) => images.classIds[i]!) }
}

/** The test split, which evaluation cannot do without. */
export function testSplit(images: ImageList): Subset {
  const test = subset(images, TEST)
  if (test.ids.length === 0) throw new BadInputError('the test split is empty: set data.split to hold out images for evaluation')
  return test
}

/** images.arrow's name of each split flag. */
const SPLIT_NAMES: Record<number, string> = { [TRAIN]: 'train', [TEST]: 'test', [BOTH]: 'train+test' }

/** The split flag of images.arrow's `split` value. */
export function splitFlag(name: string): number {
  const flag = Object.entries(SPLIT_NAMES).find(([, n]) => n === name)?.[0]
  if (flag === undefined) throw new Error(`images.arrow: unknown split ${JSON.stringify(name)}`)
  return Number(flag)
}

const byNumber = (a: string, b: string) => Number(a) - Number(b)

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
    group_column: ctx.config.eval.protocol.by === 'column' ? ctx.config.eval.protocol.column : null,
    label_type: d.label_type,
  })
  const table = tables.images!
  const paths = table.getChild('path')!.toArray() as string[]
  const labels = (table.getChild('label')?.toArray() as Array<string | null> | undefined) ?? paths.map(() => null)
  const classNames = [...new Set(labels.filter((l): l is string => l !== null))].sort(d.label_type === 'number' ? byNumber : undefined)
  const classOf = new Map(classNames.map((name, i) => [name, i]))
  const classIds = Int32Array.from(labels, (l) => (l === null ? -1 : classOf.get(l)!))
  const splitValues = (table.getChild('split')?.toArray() as Array<string | null> | undefined) ?? paths.map(() => null)
  const split = splitImages(d.split, classIds, splitValues)
  const groups = (table.getChild('group')?.toArray() as Array<string | null> | undefined) ?? paths.map(() => null)
  const images: ImageList = { paths: Array.from(paths), labels: Array.from(labels), classIds, classNames, split, groups: Array.from(groups), sha256: result.sha256 }
  await check(images)

  writeArrowFile(
    ctx.run.path('images.arrow'),
    tableOf({
      id: Int32Array.from(paths, (_, i) => i),
      path: images.paths,
      label: images.labels,
      class: classIds,
      split: Array.from(split, (s) => SPLIT_NAMES[s]!),
    }),
  )
  const count = (which: number) => split.reduce((n, s) => n + (s & which ? 1 : 0), 0)
  const [nTrain, nTest] = [count(TRAIN), count(TEST)]
  const unlabelled = labels.filter((l) => l === null).length
  const skipped = result.skipped_folders
  const evaluated = evaluatedImages(d.split)
  ctx.manifest.inputs = { source: result.source, sha256: result.sha256, images: paths.length, classes: classNames.length, unlabelled, train: nTrain, test: nTest, evaluated, skipped_folders: skipped }
  saveManifest(ctx)
  for (const folder of skipped) ctx.warn(`images: skipped folder ${folder.path}: ${folder.reason}`)
  const parts = evaluated === 'whole collection' ? `the whole collection: ${nTrain} train, the ${nTest} labelled ones test` : `${nTrain} train, ${nTest} test`
  const none = unlabelled > 0 ? `, ${unlabelled} unlabelled` : ''
  ctx.say(`images: ${paths.length.toLocaleString('en-US')} from ${result.source} (${classNames.length} classes${none}; ${parts})`)
  return images
}

/** The images of `images` that cannot be decoded (read now, without a model). */
export async function findBadImages(ctx: Session, images: Subset): Promise<BadImage[]> {
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
export async function imagesKey(ctx: Session, images: Subset): Promise<string> {
  const { result } = await ctx.worker.call('data.stat', {}, { tables: { images: tableOf({ id: images.ids, path: images.paths }) } })
  return keyOf({ ids: Array.from(images.ids), paths: images.paths, files: result.sha256 }, 64)
}

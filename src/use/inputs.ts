// The images `nfhm embed` and `nfhm search` work on: a table (CSV, TSV,
// Parquet) or a class-folder tree, scanned by the worker as a run's data is
// (data.scan), or a list of image files.
import { statSync } from 'node:fs'
import { extname } from 'node:path'
import type { BadImage } from '../bridge/methods.js'
import { BadImagesError } from '../recipe/embed.js'
import type { Subset } from '../recipe/images.js'
import type { Session } from '../run/context.js'
import { BadInputError } from '../run/exit-codes.js'
import { inputPath } from './outputs.js'

export interface ImageColumns {
  pathColumn: string
  /** null: the table's images are unlabelled. */
  labelColumn: string | null
  /** Relative paths in the table are under this folder (default: the table's own). */
  imageRoot: string | null
}

export interface InputImages {
  /** The table or folder scanned, or null for a list of files. */
  source: string | null
  paths: string[]
  /** null: the input has no labels. */
  labels: Array<string | null> | null
}

const TABLES = ['.csv', '.tsv', '.parquet']

export function isTable(path: string): boolean {
  return TABLES.includes(extname(path).toLowerCase())
}

/** A table or a folder tree, through data.scan; labels from the label column or the class folders. */
export async function scanImages(session: Session, input: string, columns: ImageColumns): Promise<InputImages> {
  const path = inputPath(input, 'image table or folder')
  const folder = statSync(path).isDirectory()
  if (!folder && !isTable(path)) throw new BadInputError(`${input}: expected a table (${TABLES.join(', ')}) or a folder with one sub-folder per class`)
  const { result, tables } = await session.worker.call('data.scan', {
    table: folder ? null : path,
    folder: folder ? path : null,
    image_root: columns.imageRoot === null ? null : inputPath(columns.imageRoot, 'image root'),
    path_column: columns.pathColumn,
    label_column: folder ? null : columns.labelColumn,
    split_column: null,
    group_column: null,
    label_type: 'name',
  })
  for (const skipped of result.skipped_folders) session.warn(`images: skipped folder ${skipped.path}: ${skipped.reason}`)
  const table = tables.images!
  const paths = Array.from(table.getChild('path')!.toArray() as string[])
  const labelled = folder || columns.labelColumn !== null
  const labels = labelled ? Array.from(table.getChild('label')!.toArray() as Array<string | null>) : null
  session.say(`images: ${paths.length.toLocaleString('en-US')} from ${result.source}`)
  return { source: result.source, paths, labels }
}

/** The images as a subset with ids 0..n-1, the form the embedding cache takes. */
export function asSubset(images: InputImages): Subset {
  const ids = Int32Array.from(images.paths, (_, i) => i)
  return { ids, paths: images.paths, classIds: new Int32Array(ids.length).fill(-1) }
}

/** Unreadable images refused with the list (BadImagesError), or with `skipBad` listed on stderr and left out. */
export function badImagesPolicy(session: Session, skipBad: boolean): (bad: BadImage[]) => void {
  return (bad) => {
    if (bad.length === 0) return
    if (!skipBad) throw new BadImagesError(bad)
    session.warn(`skipped ${bad.length} unreadable image(s):\n${bad.map((b) => `  ${b.path}: ${b.reason}`).join('\n')}`)
  }
}

// The Arrow tables that cross between the orchestrator and the worker, as
// calls' tables or as files (shards, pseudo-labels): declared once here,
// shipped to Python in contract.json, and checked where they are read.
import type { DataType, Table } from 'apache-arrow'
import { Type } from 'apache-arrow'

export type ColumnType = 'int32' | 'float32' | 'utf8' | 'fixed_size_list<int32>' | 'fixed_size_list<float32>'

export interface ColumnLayout {
  name: string
  type: ColumnType
  /** The column must be present (optional ones, like a label, may be missing). */
  required: boolean
  /** Values may be null. */
  nullable: boolean
  /** Values are paths on the worker's machine, which a remote worker confines (confinement.ts). */
  workerPath: boolean
}

const col = (name: string, type: ColumnType, opts: Partial<Omit<ColumnLayout, 'name' | 'type'>> = {}): ColumnLayout => ({
  name,
  type,
  required: opts.required ?? true,
  nullable: opts.nullable ?? false,
  workerPath: opts.workerPath ?? false,
})

export const tableLayouts = {
  /** data.scan's answer: one row per image found. */
  scanned_images: [
    col('path', 'utf8', { workerPath: true }),
    col('label', 'utf8', { required: false, nullable: true }),
    col('split', 'utf8', { required: false, nullable: true }),
    col('group', 'utf8', { required: false, nullable: true }),
  ],
  /** The images a call works on, by the id the run gave them. */
  image_list: [col('id', 'int32'), col('path', 'utf8', { workerPath: true })],
  /** Training input: each image with its pseudo-label. */
  training_images: [col('id', 'int32'), col('path', 'utf8', { workerPath: true }), col('label', 'int32')],
  /** An embedding shard file (runs/.cache/embeddings/<key>/shard-*.arrow). */
  embedding_shard: [col('id', 'int32'), col('embedding', 'fixed_size_list<float32>')],
  /** k-means assignments, also pseudo_labels.arrow. */
  pseudo_labels: [col('id', 'int32'), col('cluster', 'int32'), col('distance', 'float32')],
  /** k-NN answers, nearest first. */
  neighbors: [
    col('query_id', 'int32'),
    col('ids', 'fixed_size_list<int32>'),
    col('similarities', 'fixed_size_list<float32>'),
  ],
  /** Images to embed into an embeddings file (`nfhm embed`): the label when the input has labels. */
  labelled_images: [col('id', 'int32'), col('path', 'utf8', { workerPath: true }), col('label', 'utf8', { required: false, nullable: true })],
  /** `nfhm search`'s answer: one row per (query, rank), nearest first. */
  search_results: [
    col('query', 'utf8'),
    col('rank', 'int32'),
    col('path', 'utf8'),
    col('label', 'utf8', { nullable: true }),
    col('score', 'float32'),
  ],
  /** A 2-D map of embeddings (pictures.map): each image's coordinates. */
  map_points: [col('id', 'int32'), col('x', 'float32'), col('y', 'float32')],
} as const satisfies Record<string, readonly ColumnLayout[]>

export type TableLayoutName = keyof typeof tableLayouts

function columnType(type: DataType): string {
  switch (type.typeId) {
    case Type.Int:
      return `${(type as unknown as { isSigned: boolean }).isSigned ? '' : 'u'}int${(type as unknown as { bitWidth: number }).bitWidth}`
    case Type.Float: {
      const precision = (type as unknown as { precision: number }).precision
      return ['float16', 'float32', 'float64'][precision] ?? 'float'
    }
    case Type.Utf8:
      return 'utf8'
    case Type.LargeUtf8:
      return 'large_utf8'
    case Type.FixedSizeList:
      return `fixed_size_list<${columnType((type as unknown as { valueType: DataType }).valueType)}>`
    default:
      return String(type)
  }
}

/** Throws an error naming `where`, the column, and the expected and found types. */
export function checkTable(table: Table, layout: TableLayoutName, where: string): void {
  for (const column of tableLayouts[layout]) {
    const field = table.schema.fields.find((f) => f.name === column.name)
    if (!field) {
      if (column.required) {
        const found = table.schema.fields.map((f) => f.name).join(', ') || 'none'
        throw new Error(`${where}: column "${column.name}" (${column.type}) is missing; found columns: ${found}`)
      }
      continue
    }
    const found = columnType(field.type)
    // An all-null optional column may arrive typed as null.
    if (found !== column.type && !(column.nullable && field.type.typeId === Type.Null)) {
      throw new Error(`${where}: column "${column.name}" should be ${column.type}, found ${found}`)
    }
  }
}

// Arrow IPC files in the run directory (written atomically, read zero-copy).
import { readFileSync } from 'node:fs'
import { makeVector, Table, tableFromIPC, tableToIPC, Utf8, vectorFromArray, type Vector } from 'apache-arrow'
import { writeFileAtomic } from './atomic.js'

export type Column = Vector | Int32Array | Float32Array | Float64Array | Uint8Array | Array<string | null>

function toVector(column: Column): Vector {
  if (Array.isArray(column)) return vectorFromArray(column, new Utf8())
  if (column instanceof Int32Array) return makeVector(column)
  if (column instanceof Float32Array) return makeVector(column)
  if (column instanceof Float64Array) return makeVector(column)
  if (column instanceof Uint8Array) return makeVector(column)
  return column
}

export function tableOf(columns: Record<string, Column>): Table {
  return new Table(Object.fromEntries(Object.entries(columns).map(([name, c]) => [name, toVector(c)])))
}

export function writeArrowFile(path: string, table: Table): void {
  writeFileAtomic(path, tableToIPC(table, 'file'))
}

export function readArrowFile(path: string): Table {
  return tableFromIPC(readFileSync(path))
}

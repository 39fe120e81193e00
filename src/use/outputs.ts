// The files `nfhm embed`, `index` and `search` write: checked before any work,
// so a typo in a name or an existing file costs nothing.
import { existsSync } from 'node:fs'
import { extname, resolve } from 'node:path'
import { BadInputError } from '../run/exit-codes.js'

/** `path`, absolute, once its extension is one of `allowed` and it does not exist (unless `overwrite`). */
export function outputFile(path: string, what: string, allowed: readonly string[], overwrite: boolean): string {
  const ext = extname(path).toLowerCase()
  if (!allowed.includes(ext)) throw new BadInputError(`${path}: ${what} is written as ${allowed.join(' or ')}, not ${ext || 'a name without extension'}`)
  if (existsSync(path) && !overwrite) throw new BadInputError(`${path} exists; rerun with --overwrite to replace it`)
  return resolve(path)
}

/** An input file or folder that must exist here. */
export function inputPath(path: string, what: string): string {
  if (!existsSync(path)) throw new BadInputError(`${what} ${path} not found`)
  return resolve(path)
}

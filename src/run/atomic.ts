// Files appear under their final name only when complete: written to a
// temporary name, then renamed (a rename within a folder is atomic). A write
// that fails for lack of room says so and names the file.
import { appendFileSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

const NO_ROOM: Record<string, string> = {
  ENOSPC: 'no space left on the device; free some space',
  EDQUOT: 'the disk quota is used up; free some space',
  EFBIG: 'the file is larger than the file-size limit (ulimit -f); raise the limit',
}

/** An error naming `path`; lack of room is said in words, with what to do. */
function writeError(path: string, e: unknown): Error {
  const reason = NO_ROOM[(e as NodeJS.ErrnoException).code ?? '']
  if (!reason) return e as Error
  return new Error(`cannot write ${path}: ${reason}, then rerun: finished work is kept`, { cause: e })
}

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path}.tmp-${process.pid}`
  try {
    writeFileSync(tmp, data)
    renameSync(tmp, path)
  } catch (e) {
    throw writeError(path, e)
  } finally {
    rmSync(tmp, { force: true })
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n')
}

/** Appends to a log (metrics.jsonl, TensorBoard's event files); its readers skip a last record cut short. */
export function appendToFile(path: string, data: string | Uint8Array): void {
  try {
    appendFileSync(path, data)
  } catch (e) {
    throw writeError(path, e)
  }
}

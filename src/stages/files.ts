// Files appear under their final name only when complete: written to a
// temporary name, then renamed (a rename within a folder is atomic).
import { createHash } from 'node:crypto'
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true })
  const tmp = `${path}.tmp-${process.pid}`
  try {
    writeFileSync(tmp, data)
    renameSync(tmp, path)
  } finally {
    rmSync(tmp, { force: true })
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n')
}

/** A stable key for a JSON-able value: sha256 of its canonical form (sorted keys). */
export function keyOf(value: unknown, length = 16): string {
  const canonical = JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  )
  return createHash('sha256').update(canonical).digest('hex').slice(0, length)
}

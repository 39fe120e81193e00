// Keys of stage outputs: a stage's output is reused only under the key of
// everything that made it.
import { createHash } from 'node:crypto'

/** A stable key for a JSON-able value: sha256 of its canonical form (sorted keys). */
export function keyOf(value: unknown, length = 16): string {
  const canonical = JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  )
  return createHash('sha256').update(canonical).digest('hex').slice(0, length)
}

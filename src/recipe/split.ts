// Train/test splits: by image (stratified by class), by class (disjoint
// classes, as UNICOM's CUB protocol), from a column of the input table, or
// none (the whole collection: every image trained on, every labelled one tested).
import { valueList, type Config } from '../config/schema.js'
import { shuffle, Xoshiro128ss } from '../eval/prng.js'
import type { EvaluatedImages } from '../run/records.js'
import { BadInputError } from '../run/exit-codes.js'

/** Split flags are bits: an image of the whole collection is both. */
export const TRAIN = 1
export const TEST = 2
export const BOTH = TRAIN | TEST

export function evaluatedImages(split: Config['data']['split']): EvaluatedImages {
  return split.by === 'none' ? 'whole collection' : 'test split'
}

function membersByClass(classIds: Int32Array): Map<number, number[]> {
  const groups = new Map<number, number[]>()
  classIds.forEach((c, i) => {
    const group = groups.get(c)
    if (group) group.push(i)
    else groups.set(c, [i])
  })
  return groups
}

/**
 * One split flag (TRAIN, TEST or BOTH) per image. `classIds` are -1 for
 * unlabelled images: split by image, by class or none, they are only trained
 * on, since a query without a label cannot be scored.
 */
export function splitImages(split: Config['data']['split'], classIds: Int32Array, splitColumn: Array<string | null>): Uint8Array {
  const flags = new Uint8Array(classIds.length).fill(TRAIN)
  if (split.by === 'column') {
    const [train, test] = [valueList(split.train), valueList(split.test)]
    const bad: string[] = []
    splitColumn.forEach((value, i) => {
      if (value !== null && test.includes(value)) flags[i] = TEST
      else if ((value === null || !train.includes(value)) && bad.length < 5) bad.push(`row ${i + 1}: ${JSON.stringify(value)}`)
    })
    if (bad.length > 0) {
      const allowed = [...train, ...test].map((v) => JSON.stringify(v)).join(', ')
      throw new BadInputError(`split column "${split.column}" must hold one of ${allowed}; found ${bad.join(', ')}`)
    }
    return flags
  }
  if (split.by === 'none') {
    classIds.forEach((c, i) => (flags[i] = c < 0 ? TRAIN : BOTH))
    return flags
  }
  const rng = Xoshiro128ss.fromSeed(split.seed)
  const groups = [...membersByClass(classIds).entries()].filter(([c]) => c >= 0).sort(([a], [b]) => a - b)
  if (split.by === 'class') {
    const classes = shuffle(groups.map(([c]) => c), rng)
    const testClasses = new Set(classes.slice(0, Math.round(split.test_fraction * classes.length)))
    classIds.forEach((c, i) => (flags[i] = testClasses.has(c) ? TEST : TRAIN))
    return flags
  }
  for (const [, members] of groups) {
    // A class with one image stays in train: it could not be retrieved in test.
    const nTest = members.length < 2 ? 0 : Math.min(members.length - 1, Math.round(split.test_fraction * members.length))
    for (const i of shuffle(members, rng).slice(0, nTest)) flags[i] = TEST
  }
  return flags
}

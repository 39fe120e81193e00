// Train/test splits: by image (stratified by class), by class (disjoint
// classes, as UNICOM's CUB protocol), or from a column of the input table.
import type { Config } from '../config/schema.js'
import { shuffle, Xoshiro128ss } from '../eval/prng.js'

export const TRAIN = 0
export const TEST = 1

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
 * One split flag (TRAIN or TEST) per image. `classIds` are -1 for unlabelled
 * images, which form one group of their own when stratifying.
 */
export function splitImages(split: Config['data']['split'], classIds: Int32Array, splitColumn: Array<string | null>): Uint8Array {
  const flags = new Uint8Array(classIds.length)
  if (split.by === 'column') {
    const bad: string[] = []
    splitColumn.forEach((value, i) => {
      if (value === split.test) flags[i] = TEST
      else if (value !== split.train && bad.length < 5) bad.push(`row ${i + 1}: ${JSON.stringify(value)}`)
    })
    if (bad.length > 0) {
      throw new Error(`split column "${split.column}" must hold "${split.train}" or "${split.test}"; found ${bad.join(', ')}`)
    }
    return flags
  }
  const rng = Xoshiro128ss.fromSeed(split.seed)
  const groups = [...membersByClass(classIds).entries()].sort(([a], [b]) => a - b)
  if (split.by === 'class') {
    const classes = shuffle(groups.filter(([c]) => c >= 0).map(([c]) => c), rng)
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

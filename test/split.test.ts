import { describe, expect, test } from 'vitest'
import { BOTH, splitImages, TEST, TRAIN } from '../src/recipe/split.js'

const classes = Int32Array.from({ length: 1000 }, (_, i) => i % 10)

describe('train/test split', () => {
  test('by image: stratified, seeded, every class in both parts', () => {
    const flags = splitImages({ by: 'image', test_fraction: 0.2, seed: 7 }, classes, [])
    for (let c = 0; c < 10; c++) {
      const members = Array.from(flags).filter((_, i) => classes[i] === c)
      expect(members.filter((f) => f === TEST).length).toBe(20)
    }
    expect(splitImages({ by: 'image', test_fraction: 0.2, seed: 7 }, classes, [])).toEqual(flags)
    expect(splitImages({ by: 'image', test_fraction: 0.2, seed: 8 }, classes, [])).not.toEqual(flags)
  })

  test('by image: a one-image class stays in train', () => {
    const flags = splitImages({ by: 'image', test_fraction: 0.5, seed: 0 }, Int32Array.from([0, 1, 1, 1, 1]), [])
    expect(flags[0]).toBe(TRAIN)
  })

  test('by class: disjoint classes', () => {
    const flags = splitImages({ by: 'class', test_fraction: 0.3, seed: 1 }, classes, [])
    const testClasses = new Set(Array.from(classes).filter((_, i) => flags[i] === TEST))
    const trainClasses = new Set(Array.from(classes).filter((_, i) => flags[i] === TRAIN))
    expect(testClasses.size).toBe(3)
    expect([...testClasses].some((c) => trainClasses.has(c))).toBe(false)
  })

  test('from a column, naming rows with other values', () => {
    const cfg = { by: 'column' as const, column: 'split', train: 'train', test: 'test' }
    expect(Array.from(splitImages(cfg, Int32Array.from([0, 0, 1]), ['train', 'test', 'train']))).toEqual([TRAIN, TEST, TRAIN])
    expect(() => splitImages(cfg, Int32Array.from([0, 0]), ['train', 'val'])).toThrow('split column "split" must hold one of "train", "test"; found row 2: "val"')
  })

  test("from a column with several test values (In-shop's query and gallery)", () => {
    const cfg = { by: 'column' as const, column: 'split', train: 'train', test: ['query', 'gallery'] as [string, ...string[]] }
    expect(Array.from(splitImages(cfg, Int32Array.from([0, 0, 1]), ['train', 'query', 'gallery']))).toEqual([TRAIN, TEST, TEST])
  })

  test('unlabelled images (class -1) are only trained on: never held out by image or by class', () => {
    const withUnlabelled = Int32Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? -1 : i % 5))
    for (const split of [{ by: 'image' as const, test_fraction: 0.5, seed: 0 }, { by: 'class' as const, test_fraction: 0.5, seed: 0 }]) {
      const flags = splitImages(split, withUnlabelled, [])
      expect(Array.from(flags).some((f, i) => f === TEST && withUnlabelled[i] === -1)).toBe(false)
      expect(Array.from(flags).filter((f) => f === TEST).length).toBeGreaterThan(0)
    }
  })

  test('none, the whole collection: every image trained on, every labelled one also tested', () => {
    expect(Array.from(splitImages({ by: 'none' }, Int32Array.from([0, -1, 1, 1]), []))).toEqual([BOTH, TRAIN, BOTH, BOTH])
  })
})

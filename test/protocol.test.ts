// Which images query which (recipe/protocol.ts): the sets, and the refusals
// of a filter that picks nothing, made before any stage.
import { describe, expect, test } from 'vitest'
import { configSchema } from '../src/config/schema.js'
import type { ImageList } from '../src/recipe/images.js'
import { evaluationSets, noLabels } from '../src/recipe/protocol.js'
import { BOTH, TEST, TRAIN } from '../src/recipe/split.js'

/** Images with these class ids (-1: unlabelled), split flags and protocol-column values. */
function imageList(classIds: number[], split: number[], groups: Array<string | null>): ImageList {
  return {
    paths: classIds.map((_, i) => `${i}.png`),
    labels: classIds.map((c) => (c < 0 ? null : `c${c}`)),
    classIds: Int32Array.from(classIds),
    classNames: [...new Set(classIds.filter((c) => c >= 0))].sort().map((c) => `c${c}`),
    split: Uint8Array.from(split),
    groups,
    sha256: '',
  }
}

const config = (extra: Record<string, unknown> = {}, split: unknown = { by: 'image' }) =>
  configSchema.parse({ data: { table: 'x.csv', split }, ...extra })
const byDomain = config({ eval: { protocol: { by: 'column', column: 'domain', query: 'field', gallery: ['museum', 'lab'] } } })
const ids = (s: { ids: Int32Array } | null | undefined) => Array.from(s?.ids ?? [])

describe('evaluation sets', () => {
  const images = imageList(
    [0, 0, 1, 1, -1, 2, 2, 0],
    [TEST, TEST, TEST, TEST, TEST, TEST, TEST, TRAIN],
    ['field', 'museum', 'field', 'lab', 'field', 'museum', 'other', 'field'],
  )

  test('all: every labelled test image queries the others; unlabelled ones are left out and counted', () => {
    const sets = evaluationSets(config(), images)!
    expect(ids(sets.queries)).toEqual([0, 1, 2, 3, 5, 6])
    expect(sets.gallery).toBeNull()
    expect(sets.protocol).toEqual({ images: 'test split', by: 'all', query_images: 6, gallery_images: null, unlabelled: 1 })
  })

  test('by column: queries and gallery picked by their values, among labelled test images', () => {
    const sets = evaluationSets(byDomain, images)!
    expect(ids(sets.queries)).toEqual([0, 2])
    expect(ids(sets.gallery)).toEqual([1, 3, 5])
    expect(sets.protocol).toEqual({ images: 'test split', by: 'column', column: 'domain', query: ['field'], gallery: ['museum', 'lab'], query_images: 2, gallery_images: 3, unlabelled: 1 })
  })

  test('the whole collection: the images are stated as such', () => {
    const whole = imageList([0, 0, -1], [BOTH, BOTH, TRAIN], [null, null, null])
    expect(evaluationSets(config({}, { by: 'none' }), whole)!.protocol).toMatchObject({ images: 'whole collection', query_images: 2, unlabelled: 0 })
  })

  test('no labelled image to evaluate: no sets (evaluation is skipped), with the reason', () => {
    expect(evaluationSets(config(), imageList([-1, -1], [TRAIN, TRAIN], [null, null]))).toBeNull()
    expect(evaluationSets(config(), imageList([0, 0, -1], [TRAIN, TRAIN, TEST], [null, null, null]))).toBeNull()
    expect(noLabels(config())).toBe('no test image has a label (data.label_column: label), so retrieval has nothing to be right about; label some images to evaluate')
  })

  test('a filter that picks no image is refused, naming the field and the values there are', () => {
    const typo = config({ eval: { protocol: { by: 'column', column: 'domain', query: 'feild', gallery: 'museum' } } })
    expect(() => evaluationSets(typo, images)).toThrow('eval.protocol.query = "feild": no labelled test image has domain = "feild"; the values of domain there are "field" (2), "museum" (2), "lab" (1), "other" (1)')
    const unlabelledOnly = config({ eval: { protocol: { by: 'column', column: 'domain', query: 'field', gallery: ['none', 'nil'] } } })
    expect(() => evaluationSets(unlabelledOnly, images)).toThrow('eval.protocol.gallery = ["none","nil"]: no labelled test image has domain = "none" or "nil"; ')
  })

  test('the config refuses a value that picks both sides, and a column protocol without a table', () => {
    const both = configSchema.safeParse({ data: { table: 'x.csv' }, eval: { protocol: { by: 'column', column: 'd', query: ['a', 'b'], gallery: 'b' } } })
    expect(both.error?.issues[0]).toMatchObject({ path: ['eval', 'protocol', 'gallery'], message: 'a value cannot pick both queries and gallery images: an image would find itself' })
    const folder = configSchema.safeParse({ data: { folder: 'images' }, eval: { protocol: { by: 'column', column: 'd', query: 'a', gallery: 'b' } } })
    expect(folder.error?.issues[0]?.path).toEqual(['eval', 'protocol', 'by'])
  })
})

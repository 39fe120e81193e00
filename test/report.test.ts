import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { recallAt1ByClass } from '../src/eval/per-class.js'
import { recallAtK, prepareRetrieval } from '../src/eval/retrieval.js'
import { chooseQueries, neighbourSheet } from '../src/report/neighbour-grid.js'
import { picturesSection, type EvalPictures } from '../src/report/pictures.js'
import { categoryBars, embeddingMap, histogram, lossCurves, metricBars, metricVsK, sizeDistributions, type MetricAtK } from '../src/report/plots.js'
import { stageTable } from '../src/report/run-report.js'
import { formatInterval, markdownTable, textTable } from '../src/report/table.js'
import { headline, strongestBaseline, verdicts } from '../src/report/headline.js'
import type { EvalRecord } from '../src/run/records.js'

// ------------------------------------------------------------ a tiny XML reader

interface Element {
  name: string
  attrs: Record<string, string>
  children: Element[]
  text: string
}

const ENTITY = /&(?:amp|lt|gt|quot|apos|#\d+|#x[\da-f]+);/gi
const decode = (s: string): string =>
  s.replace(ENTITY, (e) =>
    ({ '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&apos;': "'" })[e] ??
    String.fromCodePoint(Number(e.startsWith('&#x') ? `0x${e.slice(3, -1)}` : e.slice(2, -1))),
  )

/** Parses the subset of XML that vega writes (no comments, CDATA or declarations), or throws. */
function parseXml(doc: string): Element {
  const root: Element = { name: '#document', attrs: {}, children: [], text: '' }
  const stack = [root]
  const token = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/y
  while (token.lastIndex < doc.length) {
    const at = token.lastIndex
    const m = token.exec(doc)
    if (!m) throw new Error(`not XML at ${at}: ${doc.slice(at, at + 60)}`)
    const [raw, closing, name, attrText, selfClosing, text] = m
    if (raw.replace(ENTITY, '').includes('&')) throw new Error(`bare & at ${at}`)
    const top = stack.at(-1)!
    if (text !== undefined) {
      top.text += decode(text)
    } else if (closing) {
      if (top.name !== name) throw new Error(`</${name}> closes <${top.name}> at ${at}`)
      stack.pop()
    } else {
      const attrs: Record<string, string> = {}
      for (const [, key, value] of attrText!.matchAll(/([\w:.-]+)="([^"]*)"/g)) attrs[key!] = decode(value!)
      const element: Element = { name: name!, attrs, children: [], text: '' }
      top.children.push(element)
      if (!selfClosing) stack.push(element)
    }
  }
  if (stack.length !== 1) throw new Error(`unclosed <${stack.at(-1)!.name}>`)
  if (root.children.length !== 1 || root.text.trim() !== '') throw new Error('not a single root element')
  return root.children[0]!
}

function* walk(e: Element): Generator<Element> {
  yield e
  for (const child of e.children) yield* walk(child)
}

/** A parsed chart: its root, its <text> strings, and its mark items by vega-lite mark name. */
function chart(svg: string) {
  expect(svg.startsWith('<svg')).toBe(true)
  const root = parseXml(svg)
  expect(root.name).toBe('svg')
  const all = [...walk(root)]
  return {
    root,
    // Multi-line text (subtitles) comes as one <tspan> per line.
    texts: all.filter((e) => (e.name === 'text' || e.name === 'tspan') && e.text !== '').map((e) => e.text),
    /** The items (paths, lines, texts) of every mark group named `name` ('marks' in a single-mark chart). */
    items: (name: string): Element[] =>
      all.filter((e) => e.name === 'g' && (e.attrs.class ?? '').split(' ').includes('role-mark') && e.attrs.class!.split(' ').includes(name)).flatMap((g) => g.children),
  }
}

const range = (n: number, f: (i: number) => number = (i) => i): number[] => Array.from({ length: n }, (_, i) => f(i))

describe('parseXml (the test helper)', () => {
  it('rejects what is not well-formed', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow(/closes/)
    expect(() => parseXml('<svg><g>')).toThrow(/unclosed/)
    expect(() => parseXml('<svg>a & b</svg>')).toThrow(/bare &/)
    expect(parseXml('<svg a="1"><text>x &amp; y</text><path/></svg>').children.map((c) => c.name)).toEqual(['text', 'path'])
  })
})

// ---------------------------------------------------------------------- plots

describe('plots', () => {
  const warn = vi.spyOn(console, 'warn')
  const error = vi.spyOn(console, 'error')
  beforeEach(() => {
    warn.mockClear()
    error.mockClear()
  })
  // vega's warnings (empty data, bad scales) would mean a faulty spec.
  afterEach(() => {
    expect(warn).not.toHaveBeenCalled()
    expect(error).not.toHaveBeenCalled()
  })

  describe('lossCurves', () => {
    const rounds = [1, 2, 3].map((r) => ({
      name: `round ${r}`,
      step: range(100),
      value: range(100, (i) => 8 * Math.exp(-i / 20) + r),
    }))

    it('draws one titled line per series on a white background, the same every time', async () => {
      const svg = await lossCurves(rounds, { title: 'Training loss', yTitle: 'loss' })
      const { root, texts, items } = chart(svg)
      expect(root.children[0]).toMatchObject({ name: 'rect', attrs: { fill: 'white' } })
      expect(texts).toEqual(expect.arrayContaining(['Training loss', 'step', 'loss', 'round 1', 'round 2', 'round 3']))
      expect(items('lines_marks')).toHaveLength(3)
      expect(await lossCurves(rounds, { title: 'Training loss', yTitle: 'loss' })).toBe(svg)
    })

    it('averages long series in windows and says so', async () => {
      const n = 10_000
      const svg = await lossCurves([{ name: 'round 1', step: Float64Array.from(range(n)), value: Float64Array.from(range(n, (i) => 1 / (1 + i))) }], {
        title: 'Loss',
        yTitle: 'loss',
      })
      const { texts, items } = chart(svg)
      const [line] = items('lines_marks')
      expect(line!.attrs.d!.split('L')).toHaveLength(2000)
      expect(texts).toContain('Each point is the mean of up to 5 consecutive steps.')
    })

    it('drops non-finite points, and non-positive ones on a log scale, with a note', async () => {
      const value = [1e-3, Number.NaN, 1e-4, 0, 1e-5, Number.POSITIVE_INFINITY]
      const { texts, items } = chart(
        await lossCurves([{ name: 'head lr', step: range(6), value }], { title: 'LR', yTitle: 'learning rate', logY: true }),
      )
      expect(texts).toEqual(expect.arrayContaining(['2 non-finite points dropped.', '1 non-positive point dropped (log scale).']))
      expect(items('lines_marks')).toHaveLength(1)
    })

    it('marks the points of short series, so a single point shows', async () => {
      const { items } = chart(await lossCurves([{ name: 'round 1', step: [7], value: [2.5] }], { title: 'Loss', yTitle: 'loss' }))
      expect(items('points_marks')).toHaveLength(1)
    })

    it('refuses empty or inconsistent input', async () => {
      const opts = { title: 'Loss', yTitle: 'loss' }
      await expect(lossCurves([], opts)).rejects.toThrow('lossCurves: no series to plot')
      await expect(lossCurves([{ name: 'a', step: [], value: [] }], opts)).rejects.toThrow('series "a" is empty')
      await expect(lossCurves([{ name: 'a', step: [1], value: [Number.NaN] }], opts)).rejects.toThrow('no plottable points')
      await expect(lossCurves([{ name: 'a', step: [1, 2], value: [1] }], opts)).rejects.toThrow('2 steps but 1 values')
      const a = { name: 'a', step: [1], value: [1] }
      await expect(lossCurves([a, a], opts)).rejects.toThrow('unique')
    })
  })

  describe('histogram', () => {
    const opts = { title: 'Cluster sizes', xTitle: 'cluster size', yTitle: 'clusters' }
    /** Bar counts read back from the bars' accessible labels. */
    const barCounts = (svg: string): number[] =>
      chart(svg)
        .items('marks')
        .map((bar) => Number(/clusters: ([\d,]+)/.exec(bar.attrs['aria-label']!)![1]!.replaceAll(',', '')))

    it('gives each size its own bar when there are few', async () => {
      const svg = await histogram({ sizes: [3, 1, 2, 5, 3], counts: [4, 1, 2, 1, 1] }, opts)
      expect(barCounts(svg)).toEqual([1, 2, 5, 1])
      expect(chart(svg).texts).toEqual(expect.arrayContaining(['Cluster sizes', 'cluster size', 'clusters', '9 clusters, sizes 1 to 5.']))
      expect(await histogram({ sizes: [3, 1, 2, 5, 3], counts: [4, 1, 2, 1, 1] }, opts)).toBe(svg)
    })

    it('bins many distinct sizes into at most about 40 bars, keeping every cluster', async () => {
      const sizes = range(2000, (i) => i + 1)
      const counts = range(2000, (i) => (i % 7) + 1)
      const total = counts.reduce((a, b) => a + b, 0)
      for (const logX of [false, true]) {
        const svg = await histogram({ sizes, counts }, { ...opts, logX })
        const bars = barCounts(svg)
        expect(bars.length).toBeGreaterThan(20)
        expect(bars.length).toBeLessThanOrEqual(41)
        expect(bars.reduce((a, b) => a + b, 0)).toBe(total)
        expect(chart(svg).texts).toContain(logX ? 'Logarithmic bins.' : 'Bins 50 sizes wide.')
      }
    })

    it('leaves empty clusters off a log axis and drops non-finite entries, with notes', async () => {
      const svg = await histogram({ sizes: [0, 1, 10, Number.NaN], counts: [3, 5, 2, 1] }, { ...opts, logX: true })
      expect(barCounts(svg)).toEqual([5, 2])
      expect(chart(svg).texts).toEqual(
        expect.arrayContaining(['10 clusters, sizes 1 to 10.', '3 empty clusters not shown (log scale).', '1 non-finite entry dropped.']),
      )
    })

    it('draws a single size', async () => {
      expect(barCounts(await histogram({ sizes: [12], counts: [40] }, opts))).toEqual([40])
    })

    it('refuses empty or invalid input', async () => {
      await expect(histogram({ sizes: [], counts: [] }, opts)).rejects.toThrow('histogram: no clusters to plot')
      await expect(histogram({ sizes: [1], counts: [] }, opts)).rejects.toThrow('1 sizes but 0 counts')
      await expect(histogram({ sizes: [1.5], counts: [1] }, opts)).rejects.toThrow('not a non-negative integer')
      await expect(histogram({ sizes: [0], counts: [4] }, { ...opts, logX: true })).rejects.toThrow('no clusters to plot')
    })
  })

  describe('metricBars', () => {
    const metrics = ['Recall@1', 'MAP@R', 'NMI']
    const models = ['random init', 'pixels', 'round 1', 'round 2']
    const rows = metrics.flatMap((group, g) =>
      models.map((series, s) => {
        const estimate = 0.2 + 0.15 * s + 0.05 * g
        // NMI is not bootstrapped: no interval.
        return group === 'NMI' ? { group, series, estimate, lower: Number.NaN, upper: Number.NaN } : { group, series, estimate, lower: estimate - 0.02, upper: estimate + 0.01 }
      }),
    )
    const opts = { title: 'Test-split retrieval', yTitle: 'score' }

    it('draws a bar per row and an error bar per interval, in the given order', async () => {
      const svg = await metricBars(rows, opts)
      const { texts, items } = chart(svg)
      expect(items('bars_marks')).toHaveLength(12)
      expect(items('intervals_layer_2_marks')).toHaveLength(8)
      expect(texts).toEqual(expect.arrayContaining(['Test-split retrieval', 'score', ...metrics, ...models, '4 bars without an interval.']))
      const legend = texts.filter((t) => models.includes(t))
      expect(legend).toEqual(models)
      expect(await metricBars(rows, opts)).toBe(svg)
    })

    it('drops non-finite estimates with a note, and draws a single bar', async () => {
      const { texts, items } = chart(await metricBars([...rows.slice(0, 2), { ...rows[2]!, estimate: Number.NaN }], opts))
      expect(items('bars_marks')).toHaveLength(2)
      expect(texts).toContain('1 non-finite estimate dropped.')
      expect(chart(await metricBars([rows[0]!], opts)).items('bars_marks')).toHaveLength(1)
    })

    it('does not change the rows it is given', async () => {
      const copy = rows.map((r) => ({ ...r }))
      await metricBars(rows, opts)
      expect(rows).toEqual(copy)
      expect(Object.getOwnPropertySymbols(rows[0]!)).toEqual([])
    })

    it('refuses empty, duplicate or reversed input', async () => {
      await expect(metricBars([], opts)).rejects.toThrow('metricBars: no rows to plot')
      await expect(metricBars([rows[0]!, rows[0]!], opts)).rejects.toThrow('"random init" appears twice in group "Recall@1"')
      await expect(metricBars([{ ...rows[0]!, lower: 0.9, upper: 0.1 }], opts)).rejects.toThrow('reversed')
      await expect(metricBars([{ ...rows[0]!, estimate: Number.NaN }], opts)).rejects.toThrow('no finite estimates')
    })
  })

  describe('metricVsK', () => {
    const ks = [500, 1000, 2000, 4000]
    const points: MetricAtK[] = ['Recall@1', 'MAP@R'].flatMap((metric, m) =>
      ks.flatMap((k, i) => {
        const estimate = 0.7 - 0.3 * m - 0.01 * (i - 1) ** 2
        return [
          { k, metric, estimate, lower: estimate - 0.01, upper: estimate + 0.01 },
          ...[0, 1, 2].map((seed) => ({ k, metric, seed, estimate: estimate + 0.004 * (seed - 1), lower: Number.NaN, upper: Number.NaN })),
        ]
      }),
    )
    const opts = { title: 'Choosing K', xTitle: 'K', yTitle: 'score', logX: true, best: { k: 1000, metric: 'Recall@1' } }

    it('draws a line and band per metric, a dot per seed and the best K', async () => {
      const svg = await metricVsK(points, opts)
      const { texts, items } = chart(svg)
      expect(items('lines_marks')).toHaveLength(2)
      expect(items('points_marks')).toHaveLength(8)
      expect(items('band_marks')).toHaveLength(2)
      expect(items('seeds_marks')).toHaveLength(24)
      expect(items('best_layer_0_marks')).toHaveLength(1)
      expect(items('best_layer_1_marks')).toHaveLength(1)
      expect(texts).toEqual(expect.arrayContaining(['Choosing K', 'K', 'score', 'Recall@1', 'MAP@R', 'best K = 1,000', '500', '4,000']))
      expect(await metricVsK(points, opts)).toBe(svg)
    })

    it('draws a lone summary point, or seeds alone, without warnings', async () => {
      const lone = chart(await metricVsK([points[0]!], { ...opts, best: { k: 500, metric: 'Recall@1' } }))
      expect(lone.items('points_marks')).toHaveLength(1)
      const seeds = chart(await metricVsK(points.filter((p) => p.seed !== undefined), { ...opts, best: undefined }))
      expect(seeds.items('seeds_marks')).toHaveLength(24)
      expect(seeds.items('lines_marks')).toHaveLength(0)
    })

    it('drops points it cannot place, with a note', async () => {
      const { texts, items } = chart(await metricVsK([...points, { k: 0, metric: 'MAP@R', estimate: 0.1, lower: 0, upper: 0.2 }], opts))
      expect(texts).toContain('1 point with a non-finite or non-positive value dropped.')
      expect(items('lines_marks')).toHaveLength(2)
    })

    it('refuses empty input, duplicate summaries and a best K it does not have', async () => {
      await expect(metricVsK([], opts)).rejects.toThrow('metricVsK: no points to plot')
      await expect(metricVsK([points[0]!, points[0]!], { ...opts, best: undefined })).rejects.toThrow('two summary points for Recall@1 at 500')
      await expect(metricVsK(points, { ...opts, best: { k: 3000, metric: 'Recall@1' } })).rejects.toThrow('best Recall@1 at 3000')
    })
  })

  describe('sizeDistributions', () => {
    const rows = [
      ...[1, 2, 3, 4, 5, 10, 20].map((size) => ({ k: 100, size, count: 3 })),
      ...[0, 1, 2, 3].map((size) => ({ k: 1000, size, count: 10 })),
      { k: 10, size: 200, count: 10 },
      { k: 5, size: 0, count: 5 },
    ]

    it('draws one line per K in ascending K, labelled with median and max', async () => {
      const svg = await sizeDistributions(rows, { title: 'Cluster sizes by K' })
      const { texts, items } = chart(svg)
      expect(items('lines_marks')).toHaveLength(3)
      expect(items('points_marks')).toHaveLength(11)
      const legend = texts.filter((t) => t.startsWith('K = '))
      expect(legend).toEqual(['K = 10 (median 200, max 200)', 'K = 100 (median 4, max 20)', 'K = 1,000 (median 2, max 3)'])
      expect(texts).toEqual(expect.arrayContaining(['cluster size', 'share of clusters with at least this size', '15 empty clusters counted but not drawn (log scale).']))
      expect(await sizeDistributions(rows, { title: 'Cluster sizes by K' })).toBe(svg)
    })

    it('refuses empty or invalid input', async () => {
      await expect(sizeDistributions([], { title: 't' })).rejects.toThrow('sizeDistributions: no rows to plot')
      await expect(sizeDistributions([{ k: 5, size: 0, count: 5 }], { title: 't' })).rejects.toThrow('no non-empty clusters')
      await expect(sizeDistributions([{ k: 5, size: -1, count: 5 }], { title: 't' })).rejects.toThrow('not a non-negative integer')
    })
  })

  describe('categoryBars', () => {
    const rows = ['Shirt', 'Pullover', 'Coat'].flatMap((category, i) => [
      { category, series: 'round 1', value: 0.4 + 0.2 * i },
      { category, series: 'pixels', value: 0.5 + 0.1 * i },
    ])
    const opts = { title: 'Recall@1 per class', xTitle: 'Recall@1', notes: ['The 3 lowest of 10 classes.'] }

    it('draws a bar per category and series, the categories top to bottom in the order given', async () => {
      const svg = await categoryBars(rows, opts)
      const { texts, items } = chart(svg)
      const bars = items('marks')
      expect(bars).toHaveLength(6)
      expect(new Set(bars.map((b) => b.attrs.fill)).size).toBe(2)
      expect(texts).toEqual(expect.arrayContaining(['Recall@1 per class', 'Recall@1', 'round 1', 'pixels', 'The 3 lowest of 10 classes.']))
      const labels = texts.filter((t) => ['Shirt', 'Pullover', 'Coat'].includes(t))
      expect(labels).toEqual(['Shirt', 'Pullover', 'Coat'])
      expect(await categoryBars(rows, opts)).toBe(svg)
    })

    it('drops non-finite values with a note, and refuses what it cannot draw', async () => {
      const { texts, items } = chart(await categoryBars([...rows.slice(0, 5), { ...rows[5]!, value: Number.NaN }], opts))
      expect(items('marks')).toHaveLength(5)
      expect(texts).toContain('1 non-finite value dropped.')
      await expect(categoryBars([], opts)).rejects.toThrow('categoryBars: no rows to plot')
      await expect(categoryBars([rows[0]!, rows[0]!], opts)).rejects.toThrow('"round 1" appears twice for "Shirt"')
      await expect(categoryBars([{ ...rows[0]!, value: Number.POSITIVE_INFINITY }], opts)).rejects.toThrow('no finite values')
    })
  })

  describe('embeddingMap', () => {
    const points = Array.from({ length: 60 }, (_, i) => ({ x: Math.cos(i) * (1 + (i % 3)), y: Math.sin(i) * (1 + (i % 3)), group: ['b-class', 'a-class', 'c-class'][i % 3]! }))

    it('draws a point per embedding, a colour per class and the legend in name order, without axes', async () => {
      const svg = await embeddingMap(points, { title: 't-SNE map' })
      const { texts, items } = chart(svg)
      const marks = items('marks')
      expect(marks).toHaveLength(60)
      expect(new Set(marks.map((m) => m.attrs.fill)).size).toBe(3)
      // No axis titles or tick labels: the legend in name order, then the title.
      expect(texts).toEqual(['a-class', 'b-class', 'c-class', 't-SNE map'])
      expect(await embeddingMap(points, { title: 't-SNE map' })).toBe(svg)
    })

    it('leaves the legend out past 20 classes, drops non-finite points, each with a note', async () => {
      const many = Array.from({ length: 50 }, (_, i) => ({ x: i, y: i % 7, group: `class ${i}` }))
      const { texts, items } = chart(await embeddingMap([...many, { x: Number.NaN, y: 0, group: 'class 0' }], { title: 'map' }))
      expect(items('marks')).toHaveLength(50)
      expect(texts).toEqual(['map', '1 non-finite point dropped.', '50 classes: colours repeat, no legend.'])
      await expect(embeddingMap([], { title: 'map' })).rejects.toThrow('embeddingMap: no points to plot')
    })
  })
})

// ------------------------------------------------------------------- pictures

describe('pictures', () => {
  // Six test images of classes 0, 0, 1, 1, 2, 2 (ids 10..15) and their nearest two, as evaluation keeps them.
  const classOf = Int32Array.from([...range(10, () => -1), 0, 0, 1, 1, 2, 2])
  const classNames = ['coat', 'shirt', 'shoe']
  const model = { queries: Int32Array.from([10, 11, 12, 13, 14, 15]), ids: Int32Array.from([11, 12, 10, 14, 14, 13, 12, 15, 15, 10, 14, 11]), k: 2 }
  // The baseline's lists hold the same queries in another order.
  const baseline = { queries: Int32Array.from([15, 14, 13, 12, 11, 10]), ids: Int32Array.from([14, 13, 15, 11, 12, 10, 13, 14, 10, 12, 11, 13]), k: 2 }

  it('computes Recall@1 per class as the share of queries whose nearest image shares their class', () => {
    const own = recallAt1ByClass(model, classOf)
    expect(own).toEqual([
      { classId: 0, queries: 2, recall: 1 },
      { classId: 1, queries: 2, recall: 0.5 },
      { classId: 2, queries: 2, recall: 1 },
    ])
    // The mean over queries is retrieval.ts's Recall@1 of the same lists.
    const rows = Int32Array.from(model.ids, (id) => id - 10)
    const labels = classOf.subarray(10)
    const queries = prepareRetrieval({ neighbors: rows, similarities: new Float32Array(12), queryLabels: labels, galleryLabels: labels, sameSet: true })
    const overall = recallAtK(queries, 1).reduce((a, b) => a + b, 0) / 6
    expect(own.reduce((a, c) => a + c.recall * c.queries, 0) / 6).toBeCloseTo(overall, 12)
  })

  it('chooses the best, the worst and other queries at random, the same for a seed', () => {
    const scores = Float64Array.from(range(40, (i) => (i * 7919) % 40 / 40))
    const chosen = chooseQueries(scores, 4, 0)
    expect(chosen.map((c) => c.group)).toEqual([...Array(4).fill('best'), ...Array(4).fill('worst'), ...Array(4).fill('random')])
    const values = (group: string) => chosen.filter((c) => c.group === group).map((c) => scores[c.index]!)
    expect(values('best')).toEqual([39, 38, 37, 36].map((v) => v / 40))
    expect(values('worst')).toEqual([0, 1, 2, 3].map((v) => v / 40))
    expect(new Set(chosen.map((c) => c.index)).size).toBe(12)
    expect(chooseQueries(scores, 4, 0)).toEqual(chosen)
    expect(chooseQueries(scores, 4, 1).filter((c) => c.group === 'random')).not.toEqual(chosen.filter((c) => c.group === 'random'))
    // Ties in a seeded random order: many perfect queries show varied ones.
    const perfect = new Float64Array(40).fill(1)
    expect(chooseQueries(perfect, 4, 0).slice(0, 4)).not.toEqual(chooseQueries(perfect, 4, 1).slice(0, 4))
    // Fewer queries than places: each shows once.
    expect(chooseQueries(Float64Array.from([0.5, 0.1, 0.9]), 4, 0).map((c) => [c.group, c.index])).toEqual([
      ['best', 2],
      ['best', 0],
      ['best', 1],
    ])
  })

  it("lays out each query beside its neighbours under every model, framed by whether they share the query's class", () => {
    const { sheet, images } = neighbourSheet({
      chosen: [{ group: 'worst', index: 1 }],
      mapAtR: Float64Array.from([1, 0.25, 1, 1, 1, 1]),
      panels: [
        { name: 'round 1', nearest: model },
        { name: 'pixels', nearest: baseline },
      ],
      classOf,
      classNames,
    })
    expect(sheet.headers).toEqual(['query', 'round 1', 'pixels'])
    expect(sheet.rows).toEqual([
      {
        caption: 'worst: coat\nMAP@R 0.25',
        groups: [
          [{ id: 11, caption: 'coat', mark: 'query' }],
          [
            { id: 10, caption: 'coat', mark: 'right' },
            { id: 14, caption: 'shoe', mark: 'wrong' },
          ],
          [
            { id: 10, caption: 'coat', mark: 'right' },
            { id: 12, caption: 'shirt', mark: 'wrong' },
          ],
        ],
      },
    ])
    expect(images.sort()).toEqual([10, 11, 12, 14])
  })

  it('writes the grid, the per-class chart and the map, and names the worst classes', async () => {
    const written = new Map<string, string | Uint8Array>()
    const write = (name: string, content: string | Uint8Array) => (written.set(name, content), name)
    const classes = Array.from({ length: 45 }, (_, i) => ({ name: `class ${String(i).padStart(2, '0')}`, queries: 10, model: (i % 9) / 10, baseline: 0.5 }))
    const pictures: EvalPictures = {
      model: 'round 1',
      protocol: { images: 'test split', by: 'all', query_images: 8, gallery_images: null, unlabelled: 0 },
      grid: { png: Uint8Array.from([137, 80, 78, 71]), baseline: 'pixels', perGroup: 4, neighbours: 5, seed: 0 },
      perClass: { baseline: 'pixels (centred)', classes },
      map: { points: Array.from({ length: 30 }, (_, i) => ({ x: i, y: i * i, group: `class ${i % 3}` })), of: 100, seed: 0 },
    }
    const md = (await picturesSection(pictures, write)).join('\n')
    expect([...written.keys()]).toEqual(['neighbours.png', 'recall-per-class.svg', 'embedding-map.svg'])
    for (const name of written.keys()) expect(md).toContain(`](${name})`)
    expect(md).toContain('and under pixels, the strongest baseline on MAP@R')
    expect(md).toContain(
      'Lowest Recall@1 under round 1: class 00 0.000 (pixels (centred) 0.500, 10 queries); class 09 0.000 (pixels (centred) 0.500, 10 queries); ' +
        'class 18 0.000 (pixels (centred) 0.500, 10 queries); class 27 0.000 (pixels (centred) 0.500, 10 queries); class 36 0.000 (pixels (centred) 0.500, 10 queries).',
    )
    expect(md).toContain('(pixels (centred) is the strongest baseline on Recall@1.)')
    expect(md).toContain('t-SNE (scikit-learn) of 30 of the 100 test embeddings of round 1 (a seeded sample, seed 0)')
    const bars = chart(written.get('recall-per-class.svg') as string)
    expect(bars.items('marks')).toHaveLength(80)
    expect(bars.texts).toContain('The 40 classes with the lowest Recall@1 under round 1, of 45.')
  })
})

// --------------------------------------------------------------------- tables

describe('tables', () => {
  interface Row {
    model: string
    recall: number
    note?: string
  }
  const rows: Row[] = [
    { model: 'random init', recall: 0.30123 },
    { model: 'pixels | raw', recall: 0.5, note: 'two\nlines' },
  ]

  it('aligns text columns under a rule, numbers right by default', () => {
    const table = textTable<Row>(
      [
        { key: 'model', title: 'model' },
        { key: 'recall', title: 'Recall@1', format: (v) => v.toFixed(3) },
        { key: 'note', title: 'note' },
      ],
      rows,
    )
    expect(table).toBe(
      ['model         Recall@1  note', '------------  --------  ---------', 'random init      0.301', 'pixels | raw     0.500  two lines'].join('\n'),
    )
  })

  it('honours an explicit alignment', () => {
    const table = textTable([{ key: 'x', title: 'x', align: 'left' }, { key: 'y', title: 'yy', align: 'right' }], [{ x: 1, y: 'a' }, { x: 100, y: 'b' }])
    expect(table.split('\n')).toEqual(['x    yy', '---  --', '1     a', '100   b'])
  })

  it('writes Markdown with escaped pipes, <br> for newlines and an alignment row', () => {
    const table = markdownTable<Row>(
      [
        { key: 'model', title: 'model | name' },
        { key: 'recall', title: 'R', format: (v, row) => `${v.toFixed(2)}${row.note ? '*' : ''}` },
        { key: 'note', title: 'note' },
      ],
      rows,
    )
    expect(table.split('\n')).toEqual([
      '| model \\| name |     R | note         |',
      '| :------------ | ----: | :----------- |',
      '| random init   |  0.30 |              |',
      '| pixels \\| raw | 0.50* | two<br>lines |',
    ])
    // Every line splits into the same number of cells at unescaped pipes.
    for (const line of table.split('\n')) expect(line.split(/(?<!\\)\|/)).toHaveLength(5)
  })

  it('writes a header alone for no rows, and refuses no columns', () => {
    expect(markdownTable([{ key: 'K', title: 'K' }], [])).toBe('| K   |\n| :-- |')
    expect(() => textTable([], rows)).toThrow('at least one column')
  })

  it('formats intervals', () => {
    expect(formatInterval(0.81234, 0.80111, 0.8234)).toBe('0.812 [0.801, 0.823]')
    expect(formatInterval(0.5, 0.25, 0.75, 1)).toBe('0.5 [0.3, 0.8]')
    expect(formatInterval(-0.0001, -0.0123, 0.0004)).toBe('0.000 [-0.012, 0.000]')
    expect(formatInterval(0.9, Number.NaN, Number.NaN)).toBe('0.900')
  })

  it("shows the manifest's stage times, with no start for a stage recorded before starts were", () => {
    const table = stageTable({
      'embed.round-1': { key: 'a', started: '2026-01-02T03:04:05.678Z', finished: '2026-01-02T03:05:05.678Z', seconds: 60 },
      'train.round-1': { key: 'b', finished: '2026-01-02T04:05:05.678Z', seconds: 3661.25 },
      eval: { started: '2026-01-02T04:05:06.000Z', finished: '2026-01-02T04:06:06.100Z', seconds: 60.1 },
    })
    const cells = table.split('\n').map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()))
    expect(cells[0]).toEqual(['stage', 'started', 'finished', 'seconds'])
    expect(cells.slice(2)).toEqual([
      ['embed.round-1', '2026-01-02 03:04:05 UTC', '2026-01-02 03:05:05 UTC', '60.0'],
      ['train.round-1', '', '2026-01-02 04:05:05 UTC', '3,661.3'],
      ['eval', '2026-01-02 04:05:06 UTC', '2026-01-02 04:06:06 UTC', '60.1'],
    ])
  })
})

describe('headline', () => {
  const interval = (estimate: number, half = 0.01) => ({ estimate, lower: estimate - half, upper: estimate + half })
  const record = (name: string, mapR: number, recall: number, nmi: number, versus?: EvalRecord['versus']): EvalRecord => ({
    name,
    model: { loader: 'nfhm.core.model:load', name: 'x', weights: null, image_size: null, embedding_size: null },
    protocol: { images: 'test split', by: 'all', query_images: 100, gallery_images: null, unlabelled: 0 },
    embeddings: '',
    queries: 100,
    excluded_queries: 0,
    metrics: { 'map@r': interval(mapR), 'recall@1': interval(recall) },
    clustering: { k: 10, nmi: { ...interval(nmi), plugin: nmi, bias: 0 }, ami: 0, ari: 0, purity: 0 },
    ...(versus ? { versus } : {}),
  })
  const results = [
    record('pretrained', 0.3, 0.8, 0.55),
    record('pixels', 0.33, 0.82, 0.56),
    record('round 1', 0.48, 0.8, 0.64, {
      pretrained: { 'map@r': interval(0.18), 'recall@1': interval(0), nmi: interval(0.09) },
      pixels: { 'map@r': interval(0.15), 'recall@1': interval(-0.02, 0.005), nmi: interval(0.08, 0.1) },
    }),
  ]

  it('judges the last trained model against the strongest baseline on each measure, by the paired interval', () => {
    const judged = verdicts(results)!
    expect(judged.model).toBe('round 1')
    expect(judged.verdicts.map((v) => [v.metric, v.baseline, v.outcome])).toEqual([
      ['map@r', 'pixels', 'better'],
      ['nmi', 'pixels', 'tie'],
      ['recall@1', 'pixels', 'worse'],
    ])
    expect(headline(results)).toBe(
      'round 1 against the strongest baseline on each measure (paired 95% intervals): ' +
        'MAP@R 0.480 vs 0.330 for pixels, +0.150 [+0.140, +0.160]: better; ' +
        'NMI 0.640 vs 0.560 for pixels, +0.080 [−0.020, +0.180]: a tie; ' +
        'Recall@1 0.800 vs 0.820 for pixels, −0.020 [−0.025, −0.015]: worse.',
    )
  })

  it('has nothing to say without a trained model', () => {
    expect(headline(results.slice(0, 2))).toBeNull()
  })

  it("finds the strongest of a model's baselines on the measure asked", () => {
    const d = { 'map@r': interval(0), 'recall@1': interval(0), nmi: interval(0) }
    const four = [...results.slice(0, 2), record('pixels (centred)', 0.32, 0.83, 0.5), record('round 1', 0.48, 0.8, 0.64, { pretrained: d, pixels: d, 'pixels (centred)': d })]
    expect(strongestBaseline(four, four[3]!, 'map@r')!.name).toBe('pixels')
    expect(strongestBaseline(four, four[3]!, 'recall@1')!.name).toBe('pixels (centred)')
    expect(strongestBaseline(four, four[3]!, 'nmi')!.name).toBe('pixels')
    expect(strongestBaseline(four, four[0]!, 'map@r')).toBeUndefined()
  })
})

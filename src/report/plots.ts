// The report's charts as SVG documents. Each function checks and tidies plain
// data, builds a vega-lite spec and renders it headless with vega (renderer
// 'none': SVG needs no canvas). The output depends only on the input, so runs
// can be compared byte for byte. Dropped or averaged data is said in the
// chart's subtitle rather than hidden.
import type { TopLevelSpec } from 'vega-lite'

type Numbers = Float64Array | readonly number[]

const WIDTH = 640
const HEIGHT = 320
/** Longer loss or learning-rate series are averaged in windows down to this many points. */
const MAX_LINE_POINTS = 2000
/** Sparser line series get a marker on every point, so a single point still shows. */
const MARKED_LINE_POINTS = 30
const MAX_BINS = 40
const MAX_K_TICKS = 12
/** Thickness of one bar of categoryBars (with its share of the padding). */
const CATEGORY_BAR = 12
/** A map with more groups than this gets no legend (the colours repeat anyway). */
const MAX_MAP_LEGEND = 20
const MAP_HEIGHT = 480

async function render(spec: TopLevelSpec): Promise<string> {
  // Loaded on the first chart: ~0.6 s of start-up that most commands never need.
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')])
  // Warnings (compile and runtime) go to console.warn: they mean a spec bug.
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none', logLevel: vega.Warn })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

/** Size, background and title shared by every chart; notes become subtitle lines. */
function frame(title: string, notes: readonly string[]) {
  return {
    width: WIDTH,
    height: HEIGHT,
    background: 'white',
    padding: 10,
    title: { text: title, anchor: 'start' as const, ...(notes.length > 0 ? { subtitle: [...notes] } : {}) },
  }
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`

/** A number as a short label: integers with thousands separators, others to 4 significant digits. */
const label = (x: number): string => (Number.isInteger(x) ? x.toLocaleString('en-US') : String(Number(x.toPrecision(4))))

/** First-appearance order of a key, for legends and axes that follow the caller's order. */
const orderOf = <T>(items: readonly T[], key: (item: T) => string): string[] => [...new Set(items.map(key))]

/** One layer of a layered chart. */
type Layer = Extract<TopLevelSpec, { layer: unknown }>['layer'][number]

/**
 * The layer with `values` as its data, or no layer when there are none (vega
 * warns of infinite extents for empty data). Rows are copied: vega tags the
 * objects it is given.
 */
function layerWith(values: readonly object[], layer: Layer): Layer[] {
  return values.length > 0 ? [{ ...layer, data: { values: values.map((v) => ({ ...v })) } }] : []
}

/** Lines named 'lines', and markers named 'points' on sparse lines (a lone point draws no line). */
function lineLayers(sparse: boolean, interpolate: 'linear' | 'step-after' = 'linear'): Layer[] {
  return [
    { name: 'lines', mark: { type: 'line', interpolate } },
    ...(sparse ? [{ name: 'points', mark: { type: 'point', filled: true, size: 30 } } satisfies Layer] : []),
  ]
}

function requireRows(chart: string, rows: readonly unknown[], what: string): void {
  if (rows.length === 0) throw new Error(`${chart}: no ${what} to plot`)
}

// ---------------------------------------------------------------- lossCurves

export interface LineSeries {
  name: string
  step: Numbers
  value: Numbers
}

export interface LossCurveOptions {
  title: string
  yTitle: string
  /** Log-scaled y (the learning rate); non-positive values are then dropped. */
  logY?: boolean
}

/** Mean of each window of `size` consecutive points (the last window may be shorter). */
function windowMeans(xs: readonly number[], size: number): number[] {
  const means: number[] = []
  for (let start = 0; start < xs.length; start += size) {
    const window = xs.slice(start, start + size)
    means.push(window.reduce((a, b) => a + b, 0) / window.length)
  }
  return means
}

/** One line per series over training steps: losses per round, or learning rates (logY). */
export async function lossCurves(series: readonly LineSeries[], opts: LossCurveOptions): Promise<string> {
  requireRows('lossCurves', series, 'series')
  const names = orderOf(series, (s) => s.name)
  if (names.length !== series.length) throw new Error('lossCurves: series names must be unique')
  const rows: Array<{ series: string; step: number; value: number }> = []
  let nonFinite = 0
  let nonPositive = 0
  let window = 1
  let longest = 0
  let smallest = Infinity
  for (const { name, step, value } of series) {
    if (step.length !== value.length) {
      throw new Error(`lossCurves: series "${name}" has ${step.length} steps but ${value.length} values`)
    }
    if (step.length === 0) throw new Error(`lossCurves: series "${name}" is empty`)
    const steps: number[] = []
    const values: number[] = []
    for (let i = 0; i < step.length; i++) {
      const s = step[i]!
      const v = value[i]!
      if (!Number.isFinite(s) || !Number.isFinite(v)) nonFinite++
      else if (opts.logY && v <= 0) nonPositive++
      else {
        steps.push(s)
        values.push(v)
      }
    }
    if (steps.length === 0) throw new Error(`lossCurves: series "${name}" has no plottable points`)
    const size = Math.ceil(steps.length / MAX_LINE_POINTS)
    window = Math.max(window, size)
    const xs = windowMeans(steps, size)
    const ys = windowMeans(values, size)
    longest = Math.max(longest, xs.length)
    smallest = Math.min(smallest, ...ys)
    xs.forEach((x, i) => rows.push({ series: name, step: x, value: ys[i]! }))
  }
  const notes: string[] = []
  if (window > 1) notes.push(`Each point is the mean of up to ${plural(window, 'consecutive step')}.`)
  if (nonFinite > 0) notes.push(`${plural(nonFinite, 'non-finite point')} dropped.`)
  if (nonPositive > 0) notes.push(`${plural(nonPositive, 'non-positive point')} dropped (log scale).`)
  return render({
    ...frame(opts.title, notes),
    data: { values: rows },
    layer: lineLayers(longest <= MARKED_LINE_POINTS),
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step', scale: { zero: false } },
      y: {
        field: 'value',
        type: 'quantitative',
        title: opts.yTitle,
        scale: opts.logY ? { type: 'log' } : { zero: false },
        // d3's default mixes 0.000001 with 1e-7 on log axes of small values.
        ...(opts.logY && smallest < 1e-3 ? { axis: { format: '~e' } } : {}),
      },
      color: { field: 'series', type: 'nominal', sort: names, legend: { title: null } },
    },
  })
}

// ----------------------------------------------------------------- histogram

export interface SizeCounts {
  /** Distinct cluster sizes (non-negative integers); repeats are summed. */
  sizes: readonly number[]
  /** Number of clusters of each size. */
  counts: readonly number[]
}

export interface HistogramOptions {
  title: string
  xTitle: string
  yTitle: string
  /** Log-scaled x with logarithmic bins, for heavy tails; size 0 is then left out. */
  logX?: boolean
}

/** 1, 2, 5, 10, 20, 50 ... : the smallest such width at or above `x`. */
function niceWidth(x: number): number {
  const decade = 10 ** Math.floor(Math.log10(x))
  return [1, 2, 5, 10].map((m) => m * decade).find((w) => w >= x)!
}

/**
 * Integer bin edges: bin i holds sizes in [edges[i], edges[i+1]), and the
 * last edge is above max. About MAX_BINS bins, each 1 wide where the range
 * allows. Log bins grow geometrically, rounded to whole sizes and never
 * narrower than the bin before, so that counts do not zigzag between bins
 * of 1 and 2 sizes.
 */
function binEdges(min: number, max: number, log: boolean): number[] {
  const edges: number[] = []
  if (!log) {
    const width = niceWidth(Math.max(1, (max - min + 1) / MAX_BINS))
    for (let e = Math.floor(min / width) * width; e <= max; e += width) edges.push(e)
    edges.push(edges.at(-1)! + width)
    return edges
  }
  const ratio = ((max + 1) / min) ** (1 / MAX_BINS)
  let width = 1
  for (let e = min; e <= max; e += width) {
    edges.push(e)
    width = Math.max(width, Math.round(e * ratio) - e)
  }
  edges.push(edges.at(-1)! + width)
  return edges
}

/** Bars of the number of clusters per (binned) cluster size. */
export async function histogram(values: SizeCounts, opts: HistogramOptions): Promise<string> {
  const { sizes, counts } = values
  if (sizes.length !== counts.length) {
    throw new Error(`histogram: ${sizes.length} sizes but ${counts.length} counts`)
  }
  const totals = new Map<number, number>()
  let nonFinite = 0
  let emptyClusters = 0
  sizes.forEach((size, i) => {
    const count = counts[i]!
    if (!Number.isFinite(size) || !Number.isFinite(count)) return void nonFinite++
    if (!Number.isInteger(size) || size < 0) throw new Error(`histogram: size ${size} is not a non-negative integer`)
    if (count < 0) throw new Error(`histogram: negative count ${count} for size ${size}`)
    if (opts.logX && size === 0) emptyClusters += count
    else if (count > 0) totals.set(size, (totals.get(size) ?? 0) + count)
  })
  if (totals.size === 0) throw new Error('histogram: no clusters to plot')
  const present = [...totals.keys()].sort((a, b) => a - b)
  const edges = binEdges(present[0]!, present.at(-1)!, opts.logX ?? false)
  const bins: Array<{ from: number; to: number; count: number }> = []
  let next = 0
  for (let b = 0; b + 1 < edges.length; b++) {
    let count = 0
    for (; next < present.length && present[next]! < edges[b + 1]!; next++) count += totals.get(present[next]!)!
    // A bar spans half a size beyond its first and last sizes, so a bin of one size sits centred on it.
    if (count > 0) bins.push({ from: edges[b]! - 0.5, to: edges[b + 1]! - 0.5, count })
  }
  const clusters = [...totals.values()].reduce((a, b) => a + b, 0) + emptyClusters
  const notes = [`${plural(clusters, 'cluster')}, sizes ${label(present[0]!)} to ${label(present.at(-1)!)}.`]
  if (opts.logX) notes.push('Logarithmic bins.')
  else if (edges[1]! - edges[0]! > 1) notes.push(`Bins ${plural(edges[1]! - edges[0]!, 'size')} wide.`)
  if (emptyClusters > 0) notes.push(`${plural(emptyClusters, 'empty cluster')} not shown (log scale).`)
  if (nonFinite > 0) notes.push(`${plural(nonFinite, 'non-finite entry', 'non-finite entries')} dropped.`)
  return render({
    ...frame(opts.title, notes),
    data: { values: bins },
    mark: { type: 'rect', stroke: 'white', strokeWidth: 0.5 },
    encoding: {
      x: {
        field: 'from',
        type: 'quantitative',
        title: opts.xTitle,
        // Not nice: rounding the half-size bar ends out would add an empty decade or a negative size.
        scale: opts.logX ? { type: 'log', nice: false } : { zero: false, nice: false },
      },
      x2: { field: 'to' },
      y: { field: 'count', type: 'quantitative', title: opts.yTitle },
      y2: { datum: 0 },
      color: { value: '#4c78a8' },
    },
  })
}

// ---------------------------------------------------------------- metricBars

export interface IntervalRow {
  group: string
  series: string
  estimate: number
  /** Bounds of the 95% interval; a bar whose bounds are not finite gets no error bar. */
  lower: number
  upper: number
}

export interface MetricBarsOptions {
  title: string
  yTitle: string
}

/** Grouped bars (groups along x, one colour per series) with 95% error bars. */
export async function metricBars(rows: readonly IntervalRow[], opts: MetricBarsOptions): Promise<string> {
  requireRows('metricBars', rows, 'rows')
  const seen = new Set<string>()
  for (const r of rows) {
    const key = JSON.stringify([r.group, r.series])
    if (seen.has(key)) throw new Error(`metricBars: "${r.series}" appears twice in group "${r.group}"`)
    seen.add(key)
    if (r.lower > r.upper) throw new Error(`metricBars: interval [${r.lower}, ${r.upper}] of "${r.series}" in "${r.group}" is reversed`)
  }
  const bars = rows.filter((r) => Number.isFinite(r.estimate))
  if (bars.length === 0) throw new Error('metricBars: no finite estimates to plot')
  const intervals = bars.filter((r) => Number.isFinite(r.lower) && Number.isFinite(r.upper))
  const notes: string[] = []
  if (bars.length < rows.length) notes.push(`${plural(rows.length - bars.length, 'non-finite estimate')} dropped.`)
  if (intervals.length < bars.length) notes.push(`${plural(bars.length - intervals.length, 'bar')} without an interval.`)
  const series = orderOf(bars, (r) => r.series)
  return render({
    ...frame(opts.title, notes),
    encoding: {
      x: { field: 'group', type: 'nominal', sort: orderOf(bars, (r) => r.group), title: null, axis: { labelAngle: 0 } },
      xOffset: { field: 'series', type: 'nominal', sort: series },
    },
    layer: [
      ...layerWith(bars, {
        name: 'bars',
        mark: 'bar',
        encoding: {
          y: { field: 'estimate', type: 'quantitative', title: opts.yTitle },
          color: { field: 'series', type: 'nominal', sort: series, legend: { title: null } },
        },
      }),
      ...layerWith(intervals, {
        name: 'intervals',
        mark: { type: 'errorbar', ticks: true, color: '#333' },
        encoding: { y: { field: 'lower', type: 'quantitative', title: opts.yTitle }, y2: { field: 'upper' } },
      }),
    ],
  })
}

// ----------------------------------------------------------------- metricVsK

export interface MetricAtK {
  k: number
  metric: string
  /** Set on one seed's result (drawn as a dot); unset on the summary over seeds (the line and band). */
  seed?: number
  estimate: number
  lower: number
  upper: number
}

export interface MetricVsKOptions {
  title: string
  xTitle: string
  yTitle: string
  logX?: boolean
  /** The chosen K, marked by a dashed rule and a ringed point on that metric's line. */
  best?: { k: number; metric: string }
}

/** A line and shaded interval per metric over K (or K/N), per-seed dots, and the best K marked. */
export async function metricVsK(points: readonly MetricAtK[], opts: MetricVsKOptions): Promise<string> {
  requireRows('metricVsK', points, 'points')
  const plottable = (p: MetricAtK): boolean => Number.isFinite(p.k) && Number.isFinite(p.estimate) && (!opts.logX || p.k > 0)
  const kept = points.filter(plottable)
  if (kept.length === 0) throw new Error('metricVsK: no plottable points')
  const summary = kept.filter((p) => p.seed === undefined)
  const seeds = kept.filter((p) => p.seed !== undefined)
  const keys = new Set<string>()
  for (const p of summary) {
    const key = JSON.stringify([p.metric, p.k])
    if (keys.has(key)) throw new Error(`metricVsK: two summary points for ${p.metric} at ${p.k}`)
    keys.add(key)
  }
  // Lines need ascending K; the band needs both bounds.
  const lines = [...summary].sort((a, b) => a.k - b.k)
  const bands = lines.filter((p) => Number.isFinite(p.lower) && Number.isFinite(p.upper))
  const best = opts.best && lines.find((p) => p.k === opts.best!.k && p.metric === opts.best!.metric)
  if (opts.best && !best) throw new Error(`metricVsK: best ${opts.best.metric} at ${opts.best.k} is not a summary point`)
  const notes: string[] = []
  if (lines.length > 0 && seeds.length > 0) notes.push('Lines: estimate and 95% interval; dots: single seeds.')
  if (kept.length < points.length) {
    notes.push(`${plural(points.length - kept.length, 'point')} with a non-finite${opts.logX ? ' or non-positive' : ''} value dropped.`)
  }
  if (bands.length < lines.length) notes.push(`${plural(lines.length - bands.length, 'point')} without an interval.`)
  const metrics = orderOf(kept, (p) => p.metric)
  // Every layer titles y and keeps zero out, as whichever layers are present share the axis.
  const y = (field: string) => ({ field, type: 'quantitative' as const, title: opts.yTitle, scale: { zero: false } })
  const ks = [...new Set(kept.map((p) => p.k))].sort((a, b) => a - b)
  const x = {
    field: 'k',
    type: 'quantitative' as const,
    title: opts.xTitle,
    // The few K tried make better ticks than round numbers between them.
    ...(ks.length <= MAX_K_TICKS ? { axis: { values: ks } } : {}),
    // A nice log domain would pad to whole decades, mostly empty.
    scale: opts.logX ? { type: 'log' as const, nice: false } : { zero: false },
  }
  // Full opacity, or the legend takes the band's pale fill.
  const color = { field: 'metric', type: 'nominal' as const, sort: metrics, legend: { title: null, symbolOpacity: 1 } }
  return render({
    ...frame(opts.title, notes),
    encoding: { x },
    layer: [
      ...layerWith(bands, {
        name: 'band',
        mark: { type: 'area', opacity: 0.18 },
        encoding: { y: y('lower'), y2: { field: 'upper' }, color },
      }),
      ...layerWith(lines, {
        name: 'lines',
        mark: 'line',
        encoding: { y: y('estimate'), color },
      }),
      ...layerWith(lines, {
        name: 'points',
        mark: { type: 'point', filled: true, size: 40 },
        encoding: { y: y('estimate'), color },
      }),
      ...layerWith(seeds, {
        name: 'seeds',
        mark: { type: 'point', filled: true, size: 14, opacity: 0.6 },
        encoding: { y: y('estimate'), color },
      }),
      ...layerWith(best ? [{ ...best, text: `best ${opts.xTitle} = ${label(best.k)}` }] : [], {
        name: 'best',
        layer: [
          { mark: { type: 'rule', strokeDash: [4, 4], color: '#666' } },
          { mark: { type: 'point', size: 180, strokeWidth: 2, color: '#222' }, encoding: { y: y('estimate') } },
          {
            mark: { type: 'text', align: 'left', dx: 8, dy: -10, color: '#222' },
            encoding: { y: y('estimate'), text: { field: 'text' } },
          },
        ],
      }),
    ],
  })
}

// --------------------------------------------------------- sizeDistributions

export interface SizeCountAtK {
  k: number
  /** A cluster size (non-negative integer). */
  size: number
  /** Number of clusters of that size at this K. */
  count: number
}

export interface SizeDistributionsOptions {
  title: string
}

/**
 * Per K, the share of clusters with at least each size, on log-log axes: a
 * step line per K that starts at 1 and falls to 1/K at the largest cluster,
 * so balance and heavy tails compare across K at a glance.
 */
export async function sizeDistributions(rows: readonly SizeCountAtK[], opts: SizeDistributionsOptions): Promise<string> {
  requireRows('sizeDistributions', rows, 'rows')
  const byK = new Map<number, Map<number, number>>()
  let nonFinite = 0
  for (const { k, size, count } of rows) {
    if (!Number.isFinite(k) || !Number.isFinite(size) || !Number.isFinite(count)) {
      nonFinite++
      continue
    }
    if (!Number.isInteger(size) || size < 0) throw new Error(`sizeDistributions: size ${size} is not a non-negative integer`)
    if (count < 0) throw new Error(`sizeDistributions: negative count ${count} for size ${size} at K ${k}`)
    const sizes = byK.get(k) ?? new Map<number, number>()
    sizes.set(size, (sizes.get(size) ?? 0) + count)
    byK.set(k, sizes)
  }
  const points: Array<{ k: string; size: number; share: number }> = []
  const names: string[] = []
  let empty = 0
  for (const k of [...byK.keys()].sort((a, b) => a - b)) {
    const sizes = [...byK.get(k)!].filter(([, count]) => count > 0).sort(([a], [b]) => a - b)
    const total = sizes.reduce((sum, [, count]) => sum + count, 0)
    // A K whose clusters are all empty has no line; its legend entry would mislead.
    if (!sizes.some(([size]) => size > 0)) {
      empty += total
      continue
    }
    let below = 0
    const median = sizes.find(([, count]) => (below += count) > total / 2)![0]
    const name = `K = ${label(k)} (median ${label(median)}, max ${label(sizes.at(-1)![0])})`
    names.push(name)
    let atLeast = total
    for (const [size, count] of sizes) {
      if (size === 0) empty += count
      else points.push({ k: name, size, share: atLeast / total })
      atLeast -= count
    }
  }
  if (points.length === 0) throw new Error('sizeDistributions: no non-empty clusters to plot')
  const notes: string[] = []
  if (empty > 0) notes.push(`${plural(empty, 'empty cluster')} counted but not drawn (log scale).`)
  if (nonFinite > 0) notes.push(`${plural(nonFinite, 'non-finite row')} dropped.`)
  return render({
    ...frame(opts.title, notes),
    data: { values: points },
    layer: lineLayers(points.length <= MARKED_LINE_POINTS, 'step-after'),
    encoding: {
      x: { field: 'size', type: 'quantitative', title: 'cluster size', scale: { type: 'log' } },
      y: {
        field: 'share',
        type: 'quantitative',
        title: 'share of clusters with at least this size',
        scale: { type: 'log' },
        axis: { format: '~%' },
      },
      color: { field: 'k', type: 'nominal', sort: names, legend: { title: null, labelLimit: 320 } },
    },
  })
}

// --------------------------------------------------------------- categoryBars

export interface CategoryValue {
  category: string
  series: string
  value: number
}

export interface CategoryBarsOptions {
  title: string
  xTitle: string
  /** What the caller left out or chose (e.g. "the 40 lowest of 100 classes"), as subtitle lines. */
  notes?: readonly string[]
}

/** Horizontal bars of a value per category, a row per category in the order given, a colour per series. */
export async function categoryBars(rows: readonly CategoryValue[], opts: CategoryBarsOptions): Promise<string> {
  requireRows('categoryBars', rows, 'rows')
  const seen = new Set<string>()
  for (const r of rows) {
    const key = JSON.stringify([r.category, r.series])
    if (seen.has(key)) throw new Error(`categoryBars: "${r.series}" appears twice for "${r.category}"`)
    seen.add(key)
  }
  const bars = rows.filter((r) => Number.isFinite(r.value))
  if (bars.length === 0) throw new Error('categoryBars: no finite values to plot')
  const notes = [...(opts.notes ?? [])]
  if (bars.length < rows.length) notes.push(`${plural(rows.length - bars.length, 'non-finite value')} dropped.`)
  const series = orderOf(bars, (r) => r.series)
  return render({
    ...frame(opts.title, notes),
    // With an offset channel the step is one bar's: the chart grows with the categories.
    height: { step: CATEGORY_BAR },
    data: { values: bars.map((r) => ({ ...r })) },
    mark: 'bar',
    encoding: {
      y: { field: 'category', type: 'nominal', sort: orderOf(bars, (r) => r.category), title: null, axis: { labelLimit: 240 } },
      yOffset: { field: 'series', type: 'nominal', sort: series },
      x: { field: 'value', type: 'quantitative', title: opts.xTitle },
      color: { field: 'series', type: 'nominal', sort: series, legend: { title: null, orient: 'bottom' } },
    },
  })
}

// --------------------------------------------------------------- embeddingMap

export interface MapPoint {
  x: number
  y: number
  /** The colour's meaning: a class name. */
  group: string
}

export interface EmbeddingMapOptions {
  title: string
}

/** A scatter of 2-D map coordinates coloured by group; no axes, since a t-SNE map's axes have no units. */
export async function embeddingMap(points: readonly MapPoint[], opts: EmbeddingMapOptions): Promise<string> {
  requireRows('embeddingMap', points, 'points')
  const kept = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
  if (kept.length === 0) throw new Error('embeddingMap: no finite points to plot')
  // The legend in name order; the points in the order given, so that no group is drawn over all the others.
  const groups = [...new Set(kept.map((p) => p.group))].sort()
  const notes: string[] = []
  if (kept.length < points.length) notes.push(`${plural(points.length - kept.length, 'non-finite point')} dropped.`)
  const legend = groups.length <= MAX_MAP_LEGEND
  if (!legend) notes.push(`${plural(groups.length, 'class', 'classes')}: colours repeat, no legend.`)
  const axis = { field: '', type: 'quantitative' as const, axis: null, scale: { zero: false } }
  return render({
    ...frame(opts.title, notes),
    height: MAP_HEIGHT,
    data: { values: kept.map((p) => ({ ...p })) },
    // No per-point aria labels: they would be most of the file.
    mark: { type: 'circle', size: 14, opacity: 0.75, aria: false },
    encoding: {
      x: { ...axis, field: 'x' },
      y: { ...axis, field: 'y' },
      color: {
        field: 'group',
        type: 'nominal',
        sort: groups,
        scale: { scheme: groups.length <= 10 ? 'tableau10' : 'tableau20' },
        legend: legend ? { title: null } : null,
      },
    },
  })
}

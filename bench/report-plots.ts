// Times the report's charts at the scale of a real run:
//   npx tsx bench/report-plots.ts [out-dir]
// Prints the module load, each chart's first render and the median of five
// more, and the SVG's size; with out-dir, writes the SVGs there to look at.
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { Xoshiro128ss } from '../src/eval/prng.js'
import { textTable } from '../src/report/table.js'

const loadStart = performance.now()
const plots = await import('../src/report/plots.js')
const loadMs = performance.now() - loadStart

const rng = Xoshiro128ss.fromSeed(1)
const uniform = (): number => rng.nextUint32() / 2 ** 32
const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i))

const STEPS = 20_000
const steps = Float64Array.from(range(STEPS, (i) => i))
const losses = [1, 2, 3].map((round) => ({
  name: `round ${round}`,
  step: steps,
  value: Float64Array.from(range(STEPS, (i) => 7 * Math.exp(-i / (2000 * round)) + 2 + 0.1 * round + 0.4 * uniform())),
}))
/** OneCycle-like: cosine warm-up over 30% from max/25, cosine decay to max/1e4. */
const oneCycle = (max: number): Float64Array =>
  Float64Array.from(
    range(STEPS, (i) => {
      const p = i / STEPS
      const [from, to, t] = p < 0.3 ? [max / 25, max, p / 0.3] : [max, max / 1e4, (p - 0.3) / 0.7]
      return to + ((from - to) * (1 + Math.cos(Math.PI * t))) / 2
    }),
  )
/** Cluster sizes of K clusters over n images: normalised log-normal draws. */
function clusterSizes(k: number, n: number): Map<number, number> {
  const raw = range(k, () => Math.exp(2.5 * uniform() + 1.5 * uniform()))
  const sum = raw.reduce((a, b) => a + b, 0)
  const counts = new Map<number, number>()
  for (const r of raw) {
    const size = Math.floor((r / sum) * n)
    counts.set(size, (counts.get(size) ?? 0) + 1)
  }
  return counts
}
const N = 1_000_000
const sizes10k = clusterSizes(10_000, N)
const ks = [1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000]
const sizesByK = ks.flatMap((k) => [...clusterSizes(k, N)].map(([size, count]) => ({ k, size, count })))
const models = ['random init', 'pixels', 'pretrained', 'round 1', 'round 2', 'round 3']

const charts: Array<[string, () => Promise<string>]> = [
  ['lossCurves: 3 x 20,000 steps', () => plots.lossCurves(losses, { title: 'Training loss', yTitle: 'loss' })],
  [
    'lossCurves: learning rates, log y',
    () =>
      plots.lossCurves(
        [
          { name: 'backbone lr', step: steps, value: oneCycle(1e-4) },
          { name: 'head lr', step: steps, value: oneCycle(1e-2) },
        ],
        { title: 'Learning rate', yTitle: 'learning rate', logY: true },
      ),
  ],
  [
    'histogram: K = 10,000, log x',
    () =>
      plots.histogram(
        { sizes: [...sizes10k.keys()], counts: [...sizes10k.values()] },
        { title: 'Cluster sizes', xTitle: 'cluster size', yTitle: 'clusters', logX: true },
      ),
  ],
  [
    'metricBars: 3 metrics x 6 models',
    () =>
      plots.metricBars(
        ['Recall@1', 'MAP@R', 'NMI'].flatMap((group, g) =>
          models.map((series, s) => {
            const estimate = 0.25 + 0.1 * s + 0.05 * g
            return { group, series, estimate, lower: estimate - 0.02, upper: estimate + 0.015 }
          }),
        ),
        { title: 'Test-split retrieval', yTitle: 'score' },
      ),
  ],
  [
    'metricVsK: 3 metrics x 7 K x 3 seeds',
    () =>
      plots.metricVsK(
        ['Recall@1', 'MAP@R', 'NMI'].flatMap((metric, m) =>
          ks.flatMap((k) => {
            const estimate = 0.75 - 0.2 * m - 0.01 * Math.log(k / 10_000) ** 2
            return [
              { k, metric, estimate, lower: estimate - 0.012, upper: estimate + 0.012 },
              ...[0, 1, 2].map((seed) => ({ k, metric, seed, estimate: estimate + 0.02 * (uniform() - 0.5), lower: Number.NaN, upper: Number.NaN })),
            ]
          }),
        ),
        { title: 'Choosing K', xTitle: 'K', yTitle: 'score', logX: true, best: { k: 10_000, metric: 'Recall@1' } },
      ),
  ],
  [
    'sizeDistributions: 7 K',
    () =>
      plots.sizeDistributions(
        sizesByK,
        { title: 'Cluster sizes by K' },
      ),
  ],
]

const outDir = process.argv[2]
if (outDir) mkdirSync(outDir, { recursive: true })
const rows: Array<{ chart: string; first: number; median: number; kb: number }> = []
for (const [index, [chart, render]] of charts.entries()) {
  let start = performance.now()
  const svg = await render()
  const first = performance.now() - start
  const ms: number[] = []
  for (let i = 0; i < 5; i++) {
    start = performance.now()
    await render()
    ms.push(performance.now() - start)
  }
  ms.sort((a, b) => a - b)
  rows.push({ chart, first, median: ms[2]!, kb: svg.length / 1024 })
  if (outDir) writeFileSync(path.join(outDir, `${index + 1}-${chart.split(':')[0]}.svg`), svg)
}
console.log(`module load (vega, vega-lite): ${loadMs.toFixed(0)} ms`)
const ms = (v: number): string => v.toFixed(0)
console.log(
  textTable(
    [
      { key: 'chart', title: 'chart' },
      { key: 'first', title: 'first ms', format: ms },
      { key: 'median', title: 'median ms', format: ms },
      { key: 'kb', title: 'SVG KiB', format: (v) => v.toFixed(0) },
    ],
    rows,
  ),
)

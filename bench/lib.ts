// What every comparison shares: nfhm and its baseline run alternately, each
// measurement is a median over the repetitions, and a script's result goes to
// run-all.ts as JSON (NFHM_BENCH_OUT) and to the terminal as a table.
import { writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { execa } from 'execa'
import type { WorkerMethods } from '../src/bridge/methods.js'
import { pythonInterpreter, repoRoot, workerEnv } from '../src/bridge/python.js'
import type { Worker } from '../src/bridge/worker.js'
import { textTable, type Column } from '../src/report/table.js'

/** Repetitions of every alternated pair; NFHM_BENCH_REPS lowers it for a quick look only. */
export const REPS = Number(process.env.NFHM_BENCH_REPS ?? 5)
/**
 * For comparisons whose runs take a few seconds: on this shared machine a 2 s k-means run
 * varied from 1.9 to 3.3 s within one invocation, and five pairs left ratios 0.79-1.11.
 */
export const SHORT_REPS = Number(process.env.NFHM_BENCH_REPS ?? 11)

export type Sample = Record<string, number>

export interface Row {
  what: string
  unit: string
  nfhm: number
  baseline: number | null
  /** nfhm's value over the baseline's, in a row with a goal. */
  ratio: number | null
  goal: string | null
  met: boolean | null
}

export interface Result {
  name: string
  title: string
  /** What each side's measurement includes. */
  nfhmSide: string
  baselineSide: string
  reps: number
  rows: Row[]
  notes: string[]
  /** 1-minute load average when the script started and ended: the machine is shared. */
  load: [number, number]
  seconds: number
  /** When it ended (ISO 8601). */
  date: string
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export const medianOf = (samples: readonly Sample[], key: string): number => median(samples.map((s) => s[key]!))

/**
 * Runs every side once per repetition, in turn, so that a change in the
 * machine's load falls on both alike; returns each side's samples.
 */
export async function alternate<S extends string>(
  label: string,
  sides: Record<S, () => Promise<Sample>>,
  reps = REPS,
): Promise<Record<S, Sample[]>> {
  const names = Object.keys(sides) as S[]
  const out = Object.fromEntries(names.map((n) => [n, [] as Sample[]])) as Record<S, Sample[]>
  for (let rep = 1; rep <= reps; rep++) {
    for (const name of names) {
      const sample = await sides[name]()
      out[name].push(sample)
      const shown = Object.entries(sample).map(([k, v]) => `${k} ${v.toPrecision(4)}`)
      process.stderr.write(`${label} ${rep}/${reps} ${name}: ${shown.join(', ')}\n`)
    }
  }
  return out
}

export type Goal = ['>=' | '<=' | '<', number]

const SIGNS = { '>=': '≥', '<=': '≤', '<': '<' } as const

/**
 * The median over repetitions of value(nfhm) / value(baseline) within each alternated pair.
 * The two runs of a pair share the machine's load at that moment, so on a shared machine this
 * is steadier than the ratio of the medians: 11 k-means pairs whose runs took 2.0 or 3.0 s as
 * the load came and went gave 1.30 as a ratio of medians and 1.01 paired.
 */
export function pairedRatio(nfhm: readonly Sample[], baseline: readonly Sample[], value: (sample: Sample) => number): number {
  return median(nfhm.map((sample, i) => value(sample) / value(baseline[i]!)))
}

/** A row of medians; with a goal, the paired ratio (default: nfhm's median over the baseline's) is checked against it. */
export function row(what: string, unit: string, nfhm: number, baseline: number | null, goal: Goal | null = null, paired?: number): Row {
  const ratio = baseline === null || goal === null ? null : (paired ?? nfhm / baseline)
  return { what, unit, nfhm, baseline, ratio, goal: goal ? `${SIGNS[goal[0]]} ${goal[1]}` : null, met: goal && ratio !== null ? meets(ratio, goal) : null }
}

const meets = (value: number, [op, bound]: Goal): boolean => (op === '>=' ? value >= bound : op === '<=' ? value <= bound : value < bound)

/**
 * Runs a script of bench/python (a baseline, or a data maker) with the venv Python (nfhm
 * importable); its last stdout line is JSON. OpenMP waits passively, as in every worker
 * (python/nfhm/rpc/__init__.py), so that a baseline differs from nfhm only in the code compared.
 */
export async function runPython<T = Sample>(script: string, config: unknown): Promise<T> {
  const result = await execa(pythonInterpreter(), [join(repoRoot, 'bench', 'python', script), JSON.stringify(config)], {
    env: workerEnv({ OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' }),
    extendEnv: false,
    reject: false,
  })
  if (result.exitCode !== 0) throw new Error(`bench/python/${script} failed (${result.exitCode ?? result.signal}):\n${result.stderr}`)
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as T
}

export interface SyntheticEmbeddings {
  shards: string[]
  /** An Arrow file of id and label per row. */
  labels: string
}

/**
 * Writes `rows` embeddings drawn around one centre per class (bench/python/make_embeddings.py)
 * as Arrow shards of `shardRows` under `outDir`. The same seed gives the same class centres.
 */
export function makeEmbeddings(
  outDir: string,
  spec: { rows: number; dim: number; classes: number; spread: number; shardRows: number; firstId?: number; seed?: number },
): Promise<SyntheticEmbeddings> {
  const { rows, dim, classes, spread, shardRows, firstId = 0, seed = 0 } = spec
  return runPython<SyntheticEmbeddings>('make_embeddings.py', {
    out_dir: outDir,
    rows,
    dim,
    classes,
    spread,
    shard_rows: shardRows,
    first_id: firstId,
    seed,
  })
}

export interface CallTime {
  method: string
  start: number
  end: number
  /** The `seconds` the method's result reports: its time inside the worker. */
  inside: number | undefined
}

/** Records the wall time of every call made through `worker` from now on (as the TS side sees it). */
export function recordCalls(worker: Worker<WorkerMethods>): CallTime[] {
  const calls: CallTime[] = []
  const call = worker.call.bind(worker)
  worker.call = (async (method: string, params: never, opts?: never) => {
    const start = performance.now()
    const reply = await call(method as never, params, opts)
    const inside = (reply.result as { seconds?: unknown }).seconds
    calls.push({ method, start, end: performance.now(), inside: typeof inside === 'number' ? inside : undefined })
    return reply
  }) as typeof worker.call
  return calls
}

/** Seconds from the first call of `method` to the reply of its last one. */
export function span(calls: readonly CallTime[], method: string): number {
  const mine = calls.filter((c) => c.method === method)
  return (mine.at(-1)!.end - mine[0]!.start) / 1000
}

export const seconds = (since: number): number => (performance.now() - since) / 1000

const started = performance.now()
const loadAtStart = loadavg()[0]!

const figure = (v: number | null): string =>
  v === null ? '' : Math.abs(v) >= 100 ? v.toFixed(0) : v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(1) : v.toPrecision(3)

/** The columns of a result's table, on the terminal and in BENCHMARKS.md. */
export const COLUMNS: Column<Row>[] = [
  { key: 'what', title: 'measurement' },
  { key: 'unit', title: 'unit' },
  { key: 'nfhm', title: 'nfhm', format: figure },
  { key: 'baseline', title: 'baseline', format: figure },
  { key: 'ratio', title: 'ratio', format: (v) => (v === null ? '' : v.toFixed(3)) },
  { key: 'goal', title: 'goal' },
  { key: 'met', title: 'met', format: (v) => (v === null ? '' : v ? 'yes' : 'NO') },
]

/** Prints the result as a table, and hands it to run-all.ts when it asked for it. */
export function emit(result: Omit<Result, 'load' | 'seconds' | 'reps' | 'date'> & { reps?: number }): void {
  const full: Result = { reps: REPS, ...result, load: [loadAtStart, loadavg()[0]!], seconds: seconds(started), date: new Date().toISOString() }
  console.log(`\n${full.title} (medians of ${full.reps} alternated runs; load ${full.load.map((l) => l.toFixed(1)).join(' -> ')})`)
  console.log(textTable(COLUMNS, full.rows))
  for (const note of full.notes) console.log(`- ${note}`)
  if (process.env.NFHM_BENCH_OUT) writeFileSync(process.env.NFHM_BENCH_OUT, JSON.stringify(full, null, 2))
}

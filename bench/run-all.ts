// `make bench`: every comparison in its own process (so that each one's peak
// memory is its own), one after another, then the tables of BENCHMARKS.md
// rewritten between its markers; the text around them is left as it is.
//   npx tsx bench/run-all.ts [name ...]   (default: all, in the order below)
// Each result is kept in runs/bench/<name>.json, so that running some of them
// again leaves the others' tables (each with its date) in place.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { execa } from 'execa'
import { repoRoot } from '../src/bridge/python.js'
import { markdownTable } from '../src/report/table.js'
import { COLUMNS, REPS, SHORT_REPS, runPython, seconds, type Result, type Row } from './lib.js'

const SCRIPTS = ['train', 'frozen', 'embed', 'embed-pretrained', 'transfer', 'kmeans', 'eval', 'scale', 'latency', 'use-embed', 'search']
/** Benchmarks that are a variant of another's script: name -> [script, argument]. */
const VARIANTS: Record<string, [string, string]> = { 'embed-pretrained': ['embed', 'pretrained'] }
const BEGIN = '<!-- bench:begin (bench/run-all.ts rewrites everything down to bench:end) -->'
const END = '<!-- bench:end -->'
const DOC = join(repoRoot, 'BENCHMARKS.md')

const chosen = process.argv.slice(2)
const unknown = chosen.filter((name) => !SCRIPTS.includes(name))
if (unknown.length) throw new Error(`unknown benchmark(s) ${unknown.join(', ')}; known: ${SCRIPTS.join(', ')}`)
const names = chosen.length ? SCRIPTS.filter((name) => chosen.includes(name)) : SCRIPTS

const started = performance.now()
const loadBefore = loadavg()
const outDir = join(repoRoot, 'runs', 'bench')
mkdirSync(outDir, { recursive: true })
const resultPath = (name: string) => join(outDir, `${name}.json`)
const failed: string[] = []
for (const name of names) {
  process.stderr.write(`\n=== bench/${name}.ts\n`)
  rmSync(resultPath(name), { force: true }) // a failed run must not leave the last result standing in for it
  const [script, ...args] = VARIANTS[name] ?? [name]
  const run = await execa('npx', ['tsx', join('bench', `${script}.ts`), ...args], {
    cwd: repoRoot,
    env: { NFHM_BENCH_OUT: resultPath(name) },
    stdout: 'inherit',
    stderr: 'inherit',
    reject: false,
  })
  if (run.exitCode !== 0 || !existsSync(resultPath(name))) failed.push(name)
}
const total = seconds(started)
const results = SCRIPTS.filter((name) => existsSync(resultPath(name))).map((name) => JSON.parse(readFileSync(resultPath(name), 'utf8')) as Result)

const stamp = (iso: string) => iso.slice(0, 16).replace('T', ' ')
const versions = await runPython<Record<string, string>>('versions.py', {})
// Every row with a goal, under its comparison's number ("1. Training").
const goals = results.flatMap((r) => r.rows.filter((x) => x.goal !== null).map((x): Row => ({ ...x, what: `${r.title.split(':')[0]}: ${x.what}` })))

const lines = [
  BEGIN,
  '',
  names.length === SCRIPTS.length
    ? `Last run: ${stamp(new Date().toISOString())} UTC; \`make bench\` took ${(total / 60).toFixed(1)} min.`
    : `Last run: ${names.join(', ')} (${(total / 60).toFixed(1)} min); the other tables are from the dates they show.`,
  '',
  markdownTable(
    [
      { key: 'k', title: 'machine' },
      { key: 'v', title: '' },
    ],
    [
      { k: 'CPU', v: `${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores` },
      { k: 'memory', v: `${(totalmem() / 2 ** 30).toFixed(0)} GiB` },
      { k: 'load average (1 min) before / after', v: `${loadBefore[0]!.toFixed(1)} / ${loadavg()[0]!.toFixed(1)}` },
      { k: 'software', v: `Node ${process.versions.node}, ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')}` },
    ],
  ),
  '',
  '### Goals',
  '',
  markdownTable(COLUMNS, goals),
  ...(failed.length ? ['', `**Failed (no result):** ${failed.join(', ')}; run \`npx tsx bench/<name>.ts\` to see why.`] : []),
  '',
  ...results.flatMap((r) => [
    `### ${r.title}`,
    '',
    `Medians of ${r.reps} alternated run${r.reps > 1 ? 's' : ''}; ${stamp(r.date)} UTC, ${r.seconds.toFixed(0)} s in all; load ${r.load.map((l) => l.toFixed(1)).join(' -> ')}.`,
    '',
    `- nfhm: ${r.nfhmSide}.`,
    `- baseline: ${r.baselineSide}.`,
    ...r.notes.map((note) => `- ${note}.`),
    '',
    markdownTable(COLUMNS, r.rows),
    '',
  ]),
  END,
]
const generated = lines.join('\n')
const doc = existsSync(DOC) ? readFileSync(DOC, 'utf8') : `# Benchmarks\n\n${BEGIN}\n${END}\n`
const [before, rest] = doc.split(BEGIN)
if (rest === undefined || !rest.includes(END)) throw new Error(`${DOC} lacks the markers ${BEGIN} ... ${END}`)
writeFileSync(DOC, before + generated + rest.slice(rest.indexOf(END) + END.length))
process.stderr.write(`\n${names.length - failed.length} of ${names.length} benchmarks in ${(total / 60).toFixed(1)} min (reps ${REPS}, ${SHORT_REPS} for the short ones); tables written to BENCHMARKS.md\n`)
if (failed.length) process.exitCode = 1

// No process of a run outlives its CLI: SIGKILL of the CLI at random moments
// of embedding and training, and 2 s later nothing it started is left (the
// worker, and the DataLoader processes it forks for every shard and epoch).
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { Xoshiro128ss } from '../src/eval/prng.js'
import { buildFaultyCollection, faultConfig, nfhm, running, type FaultyCollection } from './helpers/faults.js'
import { waitUntil } from './helpers/workers.js'

const root = mkdtempSync(join(tmpdir(), 'nfhm-faults-orphans-'))
let data: FaultyCollection

type Stage = 'embedding' | 'training'
const stages: Stage[] = ['embedding', 'training']

beforeAll(async () => {
  data = await buildFaultyCollection(join(root, 'data'))
})

// A failed check leaves what it found running: end it, so it burdens no other test.
afterAll(() => {
  for (const stage of stages) for (const pid of processesOfRun(stage)) process.kill(pid, 'SIGKILL')
})

// Every process of a stage's runs inherits this variable; /proc/<pid>/environ finds them all.
const mark = (stage: Stage) => `NFHM_TEST_RUN=${join(root, stage)}`

/** The live processes that carry `stage`'s mark: CLIs, workers and DataLoader processes. */
function processesOfRun(stage: Stage): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(mark(stage)) && running(Number(pid))
      } catch {
        return false // gone meanwhile
      }
    })
    .map(Number)
}

/** `/proc/<pid>/cmdline` and parent, to say what was left behind. */
function describeProcess(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const parent = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]
    return `${pid} (parent ${parent}): ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')}`
  } catch {
    return `${pid} (gone)`
  }
}

/** A run whose embedding and training each fork DataLoader processes again and again. */
function config(name: string): { file: string; cache: string } {
  const runsDir = join(root, `runs-${name}`)
  const file = join(root, `${name}.yaml`)
  const yaml = faultConfig(name, runsDir, { csv: data.goodCsv, imageRoot: data.imageRoot })
    .replace('model: {name: ViT-T/4@28px}', 'model: {name: ViT-T/4@28px, loader: "nfhm_faults:load"}')
    .replace('embed: {loader_workers: 0,', 'embed: {loader_workers: 2,')
    .replace(/ {2}loader_workers: 0\n/, '  loader_workers: 2\n')
    .replace('epochs: 2', 'epochs: 1000')
  writeFileSync(file, yaml)
  return { file, cache: join(runsDir, '.cache') }
}

test('SIGKILL of the CLI at 25 random moments of embedding and training: no process of the run is alive 2 s after each kill', async () => {
  const seed = Date.now()
  // Each kill lands within this long after its stage began: embedding 8 shards, or some epochs.
  const window = 2000
  const kills: string[] = []
  let failed = false
  // The stages' runs go on side by side, each in its own run directory with its own mark: a
  // kill's check sees the processes of its own run only, and one stage's waits overlap the other's.
  const killRepeatedly = async (stage: Stage, times: number, random: Xoshiro128ss) => {
    const { file, cache } = config(`orphans-${stage}`)
    // Embedding starts from scratch every time; training resumes from its last checkpoint.
    const began = stage === 'embedding' ? /^images: /m : /^cluster: (K=\d+ \(cached|[\d.]+ s;)/m
    for (let i = 0; i < times && !failed; i++) {
      if (stage === 'embedding') rmSync(join(cache, 'embeddings'), { recursive: true, force: true })
      const cli = nfhm(['train', file], { env: { NFHM_TEST_RUN: join(root, stage), NFHM_SLOW_FORWARD_S: '0.05' } })
      let stderr = ''
      cli.stderr!.on('data', (chunk: unknown) => (stderr += String(chunk)))
      expect(await waitUntil(() => began.test(stderr) || cli.exitCode !== null, 120_000), stderr).toBe(true)
      expect(cli.exitCode, stderr).toBeNull()
      const delay = random.nextBelow(window)
      await new Promise((r) => setTimeout(r, delay))
      const alive = processesOfRun(stage).length
      cli.kill('SIGKILL')
      await cli
      const gone = await waitUntil(() => processesOfRun(stage).length === 0, 2000)
      kills.push(`${stage} +${delay} ms: ${alive} processes`)
      expect(gone, `seed ${seed}, ${stage} kill ${i + 1} (${kills.at(-1)}) left:\n${processesOfRun(stage).map(describeProcess).join('\n')}`).toBe(true)
    }
  }
  const lane = (stage: Stage, times: number, random: Xoshiro128ss) =>
    killRepeatedly(stage, times, random).catch((e: unknown) => {
      failed = true // the other stage stops too, so nothing runs on after the test
      throw e
    })
  const lanes = await Promise.allSettled([lane('embedding', 13, Xoshiro128ss.fromSeed(seed)), lane('training', 12, Xoshiro128ss.fromSeed(seed + 1))])
  for (const result of lanes) if (result.status === 'rejected') throw result.reason
  expect(kills).toHaveLength(25)
  process.stderr.write(`orphans (seed ${seed}): ${kills.join('; ')}\n`)
})

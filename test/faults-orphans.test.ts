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
// Every process of these runs inherits this variable; /proc/<pid>/environ finds them all.
const mark = `NFHM_TEST_RUN=${root}`
let data: FaultyCollection

beforeAll(async () => {
  data = await buildFaultyCollection(join(root, 'data'))
})

// A failed check leaves what it found running: end it, so it burdens no other test.
afterAll(() => {
  for (const pid of processesOfRuns()) process.kill(pid, 'SIGKILL')
})

/** The live processes that carry this test's mark: CLIs, workers and DataLoader processes. */
function processesOfRuns(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(mark) && running(Number(pid))
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

test('SIGKILL of the CLI at 25 random moments of embedding and training: no process of the run is alive 2 s later', async () => {
  const seed = Date.now()
  const random = Xoshiro128ss.fromSeed(seed)
  const embedding = config('orphans-embed')
  const training = config('orphans-train')
  // Each kill lands within this long after its stage began: embedding 8 shards, or some epochs.
  const window = 2000
  const kills: string[] = []
  for (let i = 0; i < 25; i++) {
    const stage = i % 2 === 0 ? 'embedding' : 'training'
    const { file, cache } = stage === 'embedding' ? embedding : training
    // Embedding starts from scratch every time; training resumes from its last checkpoint.
    if (stage === 'embedding') rmSync(join(cache, 'embeddings'), { recursive: true, force: true })
    const began = stage === 'embedding' ? /^images: /m : /^cluster: (K=\d+ \(cached|[\d.]+ s;)/m
    const cli = nfhm(['train', file], { env: { NFHM_TEST_RUN: root, NFHM_SLOW_FORWARD_S: '0.05' } })
    let stderr = ''
    cli.stderr!.on('data', (chunk: unknown) => (stderr += String(chunk)))
    expect(await waitUntil(() => began.test(stderr) || cli.exitCode !== null, 120_000), stderr).toBe(true)
    expect(cli.exitCode, stderr).toBeNull()
    const delay = random.nextBelow(window)
    await new Promise((r) => setTimeout(r, delay))
    const alive = processesOfRuns().length
    cli.kill('SIGKILL')
    await cli
    const gone = await waitUntil(() => processesOfRuns().length === 0, 2000)
    kills.push(`${stage} +${delay} ms: ${alive} processes`)
    expect(gone, `seed ${seed}, kill ${i + 1} (${kills.at(-1)}) left:\n${processesOfRuns().map(describeProcess).join('\n')}`).toBe(true)
  }
  process.stderr.write(`orphans (seed ${seed}): ${kills.join('; ')}\n`)
})

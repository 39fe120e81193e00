// A remote worker: `python -m nfhm.rpc.serve --listen` with a token, driven with
// `--worker tcp://host:port`. A client without the right token is refused
// before any method runs; a run through it keeps the heavy files on the
// server side (--worker-dir) and its records here; a server killed
// mid-training ends the CLI within seconds with what to do, and --resume after
// a restart finishes the run.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { beforeAll, expect, test } from 'vitest'
import { repoRoot } from '../src/bridge/python.js'
import { openWorker } from '../src/bridge/worker.js'
import { buildDigits, type DigitsData } from './helpers/digits.js'
import { conformanceEnv, conformanceMethods, startTcpServer, waitUntil, type TcpServer } from './helpers/workers.js'

const nfhm = join(repoRoot, 'bin', 'nfhm.js')
const root = mkdtempSync(join(tmpdir(), 'nfhm-remote-'))
// The server's own folder, apart from the orchestrator's runs folder.
const serverDir = join(root, 'server')
const serverEnv = { ...conformanceEnv, OMP_NUM_THREADS: '1' }
let digits: DigitsData

function writeConfig(name: string, train: string): string {
  const path = join(root, `${name}.yaml`)
  writeFileSync(
    path,
    `name: ${name}
runs_dir: ${join(root, 'runs')}
data:
  table: ${digits.csv}
  image_root: ${digits.imageRoot}
  split: {by: image, test_fraction: 0.25, seed: 3}
model: {name: ViT-T/4@28px}
embed: {loader_workers: 0, shard_size: 128}
cluster: {k: 20}
train: {batch_size: 32, lr: 1.0e-3, precision: fp32, loader_workers: 0, ${train}}
eval: {bootstrap: 50, knn_k: [5]}
`,
  )
  return path
}

function tokenFile(token: string): string {
  const path = join(root, `token-${token}`)
  writeFileSync(path, `${token}\n`)
  return path
}

const cli = (args: string[], server: TcpServer, token = server.token) =>
  execa('node', [nfhm, ...args, '--worker', `tcp://127.0.0.1:${server.port}`, '--token-file', tokenFile(token), '--worker-dir', serverDir], {
    cwd: root,
    reject: false,
  })

/** Sends raw protocol lines; resolves with every reply line once the server closes the connection. */
function rawExchange(port: number, lines: unknown[]): Promise<Array<{ ok: boolean; error?: { message: string } }>> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    let received = ''
    socket.on('data', (chunk) => (received += chunk.toString()))
    socket.on('error', reject)
    socket.on('close', () => resolve(received.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))))
    socket.on('connect', () => {
      for (const line of lines) socket.write(`${JSON.stringify(line)}\n`)
    })
  })
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

beforeAll(async () => {
  digits = await buildDigits(join(root, 'digits'), 40)
})

test('a client without the token, or with a wrong one, is refused before any method runs', async () => {
  const server = await startTcpServer(serverEnv)
  try {
    const touched = { noToken: join(root, 'no-token'), wrongToken: join(root, 'wrong-token') }
    const noToken = await rawExchange(server.port, [{ id: 1, method: 'conf.touch', params: { path: touched.noToken } }])
    const wrongToken = await rawExchange(server.port, [{ id: 1, auth: 'wrong' }, { id: 2, method: 'conf.touch', params: { path: touched.wrongToken } }])
    for (const replies of [noToken, wrongToken]) {
      expect(replies).toHaveLength(1)
      expect(replies[0]).toMatchObject({ ok: false, error: { message: expect.stringMatching(/authentication failed/) } })
    }
    for (const path of Object.values(touched)) expect(existsSync(path)).toBe(false)

    const refused = await openWorker({ transport: 'tcp', host: '127.0.0.1', port: server.port, token: 'wrong' }, conformanceMethods).catch((e: Error) => e)
    expect(String(refused)).toMatch(/refused the connection: authentication failed/)
    const run = await cli(['run', writeConfig('refused', 'epochs: 1')], server, 'wrong')
    expect(run.exitCode).toBe(1)
    expect(run.stderr).toMatch(/refused the connection/)
    expect(existsSync(join(serverDir, 'refused'))).toBe(false)

    // The server still serves a client with the token.
    const worker = await openWorker({ transport: 'tcp', host: '127.0.0.1', port: server.port, token: server.token }, conformanceMethods)
    await worker.call('conf.touch', { path: touched.noToken })
    await worker.close()
    expect(existsSync(touched.noToken)).toBe(true)
  } finally {
    await server.stop()
  }
})

test('a run through the server keeps its heavy files there and its records here', async () => {
  const server = await startTcpServer(serverEnv)
  try {
    const run = await cli(['run', writeConfig('remote', 'epochs: 2, checkpoint_every: 6')], server)
    expect(run.stderr).not.toMatch(/^nfhm: /m)
    expect(run.exitCode).toBe(0)
  } finally {
    await server.stop()
  }
  const local = join(root, 'runs', 'remote')
  for (const file of ['manifest.json', 'metrics.jsonl', 'eval.json', 'report/report.md', 'round-1/cluster/cluster.json', 'round-1/train/train.json']) {
    expect(existsSync(join(local, file)), file).toBe(true)
  }
  const remote = join(serverDir, 'remote')
  for (const file of ['round-1/cluster/pseudo_labels.arrow', 'round-1/train/checkpoint.pt', 'round-1/train/trained_model.pt', 'round-1/train/final_centroids.npy']) {
    expect(existsSync(join(remote, file)), file).toBe(true)
    expect(existsSync(join(local, file)), file).toBe(false)
  }
  const caches = readdirSync(join(serverDir, '.cache', 'embeddings'))
  expect(caches.length).toBeGreaterThan(0)
  for (const key of caches) {
    expect(readdirSync(join(serverDir, '.cache', 'embeddings', key)).every((f) => f.endsWith('.arrow'))).toBe(true)
    expect(readdirSync(join(root, 'runs', '.cache', 'embeddings', key)).some((f) => f.endsWith('.arrow'))).toBe(false)
  }
  const summary = JSON.parse(readFileSync(join(local, 'round-1', 'train', 'train.json'), 'utf8')) as { model: string }
  expect(summary.model).toBe(join(remote, 'round-1', 'train', 'trained_model.pt'))
})

test('a server killed mid-training ends the CLI within seconds; --resume after a restart finishes the run', async () => {
  const port = await freePort()
  const token = 'resume-token'
  let server = await startTcpServer(serverEnv, port, token)
  const config = writeConfig('killed', 'epochs: 6, chunk_steps: 1, checkpoint_every: 3')
  const local = join(root, 'runs', 'killed')
  const first = cli(['train', config], server)
  const checkpointed = await waitUntil(() => existsSync(join(local, 'round-1', 'train', 'checkpoint.json')), 60_000)
  const killedAt = Date.now()
  await server.stop() // SIGKILL, mid-training
  expect(checkpointed).toBe(true)
  const ended = await first
  const seconds = (Date.now() - killedAt) / 1000
  process.stderr.write(`the CLI ended ${seconds.toFixed(2)} s after the server was killed\n`)
  expect(seconds).toBeLessThan(5)
  expect(ended.exitCode).toBe(1)
  expect(ended.stderr).toMatch(new RegExp(`connection to tcp://127\\.0\\.0\\.1:${port} was lost`))
  expect(ended.stderr).toMatch(/again .*then rerun this command with --resume/)

  server = await startTcpServer(serverEnv, port, token)
  try {
    const resumed = await cli(['train', config, '--resume'], server)
    expect(resumed.stderr).not.toMatch(/^nfhm: /m)
    expect(resumed.exitCode).toBe(0)
    expect(resumed.stderr).toMatch(/cluster: K=20 \(cached/)
    const at = Number(/resuming at step (\d+) of 54/.exec(resumed.stderr)?.[1])
    expect(at).toBeGreaterThan(0)
  } finally {
    await server.stop()
  }
  const steps = readFileSync(join(local, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step)
  expect(steps).toEqual(Array.from({ length: 54 }, (_, i) => i))
  expect(existsSync(join(serverDir, 'killed', 'round-1', 'train', 'trained_model.pt'))).toBe(true)
})

// A remote worker: `python -m nfhm.rpc.serve --listen` with a token, driven with
// `--worker tcp://host:port`. A client without the right token is refused
// before any method runs; a run through it, over TLS, keeps the heavy files on
// the server side (--worker-dir) and its records here, and a client without the
// server's certificate is refused; no client can have the server read or write
// outside its --allow-dir directories or import plug-ins it was not given; a
// server killed mid-training ends the CLI within seconds with what to do, and
// --resume after a restart finishes the run.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Table, Utf8, makeVector, vectorFromArray } from 'apache-arrow'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { repoRoot } from '../src/bridge/python.js'
import { EXIT } from '../src/run/exit-codes.js'
import { openWorker } from '../src/bridge/worker.js'
import { buildDigits, type DigitsData } from './helpers/digits.js'
import { conformanceEnv, conformanceMethods, openConformanceWorker, startTcpServer, waitUntil, type TcpServer } from './helpers/workers.js'

const nfhm = join(repoRoot, 'bin', 'nfhm.js')
const root = mkdtempSync(join(tmpdir(), 'nfhm-remote-'))
// The server's own folder, apart from the orchestrator's runs folder.
const serverDir = join(root, 'server')
const serverEnv = { ...conformanceEnv, OMP_NUM_THREADS: '1' }
// The images and the server's folder, and nothing else.
const serverArgs = ['--allow-dir', root]
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

const cli = (args: string[], server: TcpServer, { token = server.token, tlsCa }: { token?: string; tlsCa?: string } = {}) =>
  execa(
    'node',
    [nfhm, ...args, '--worker', `tcp://127.0.0.1:${server.port}`, '--token-file', tokenFile(token), '--worker-dir', serverDir, ...(tlsCa ? ['--tls-ca', tlsCa] : [])],
    { cwd: root, reject: false },
  )

/** A self-signed certificate for 127.0.0.1 and its key (mode 600), from the openssl command. */
async function selfSigned(name: string): Promise<{ cert: string; key: string }> {
  const cert = join(root, `${name}-cert.pem`)
  const key = join(root, `${name}-key.pem`)
  const subject = ['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']
  await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', ...subject, '-keyout', key, '-out', cert])
  chmodSync(key, 0o600)
  return { cert, key }
}
const hasOpenssl = (await execa('openssl', ['version'], { reject: false }).catch(() => ({ exitCode: 1 }))).exitCode === 0

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
  const server = await startTcpServer(serverEnv, 0, undefined, serverArgs)
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
    const run = await cli(['run', writeConfig('refused', 'epochs: 1')], server, { token: 'wrong' })
    expect(run.exitCode).toBe(EXIT.badInput)
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

describe.skipIf(!hasOpenssl)('over TLS', () => {
  let server: TcpServer
  let ca: string
  beforeAll(async () => {
    const { cert, key } = await selfSigned('server')
    ca = cert
    server = { ...(await startTcpServer(serverEnv, 0, undefined, [...serverArgs, '--tls-cert', cert, '--tls-key', key])), ca: readFileSync(cert, 'utf8') }
  })
  afterAll(async () => {
    await server.stop()
  })

  test('a client with another certificate, or without TLS, is refused; the server goes on', async () => {
    const other = await selfSigned('other')
    const impostor = await openConformanceWorker('tcp', { ...server, ca: readFileSync(other.cert, 'utf8') }).catch((e: Error) => e)
    expect(String(impostor)).toMatch(/cannot connect to the worker at tcp:\/\/127\.0\.0\.1:\d+ over TLS: self-signed certificate/)
    const plain = await openConformanceWorker('tcp', { ...server, ca: undefined }).catch((e: Error) => e)
    expect(String(plain)).toMatch(/closed before the token was answered \(a worker started with --tls-cert needs worker\.tls_ca here\)/)
    const worker = await openConformanceWorker('tcp', server)
    expect((await worker.call('conf.pid', {})).result.pid).toBe(server.process.pid)
    await worker.close()
  })

  test('a run through the server keeps its heavy files there and its records here', async () => {
    const run = await cli(['run', writeConfig('remote', 'epochs: 2, checkpoint_every: 6')], server, { tlsCa: ca })
    expect(run.stderr).not.toMatch(/^nfhm: /m)
    expect(run.exitCode).toBe(0)
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
})

test('no client can have the server read or write outside its --allow-dir directories, or import a plug-in it was not given', async () => {
  const allowed = join(root, 'allowed')
  const outside = join(root, 'outside')
  mkdirSync(allowed)
  mkdirSync(outside)
  const secret = join(outside, 'secret.arrow')
  writeFileSync(secret, 'keep')
  writeFileSync(join(outside, 'table.csv'), 'path\na.png\n')
  symlinkSync(outside, join(allowed, 'link'))
  const server = await startTcpServer(serverEnv, 0, undefined, ['--allow-dir', allowed])
  const worker = await openConformanceWorker('tcp', server)
  const model = { name: 'ViT-T/4@28px' }
  const images = (path: string) => new Table({ id: makeVector(new Int32Array([0])), path: vectorFromArray([path], new Utf8()) })
  const refusal = (e: Error) => e.message.split('\n')[0]!
  try {
    const calls: Array<[string, Promise<unknown>]> = [
      ['writes', worker.call('embed.mean', { shards: [join(allowed, 'shard.arrow')], out: secret })],
      ['writes', worker.call('embed.shard', { model, out: secret, batch_size: 1, loader_workers: 0, precision: 'fp32' }, { tables: { images: images(join(allowed, 'a.png')) } })],
      ['writes', worker.call('train.export', { model_path: join(allowed, 'model.pt'), centroids_path: secret, model, round: 1, formats: { safetensors: true, onnx: true } })],
      ['writes', worker.call('cluster.kmeans', { shards: [], k: 1, spherical: true, niter: 1, nredo: 1, seed: 0, max_points_per_centroid: 1, min_points_per_centroid: 0, gpu: null, out_dir: outside })],
      ['reads', worker.call('files.read_table', { path: secret })],
      ['reads', worker.call('files.stat', { paths: [join(allowed, 'x'), secret] })],
      ['reads', worker.call('data.scan', { table: join(outside, 'table.csv'), folder: null, image_root: null, path_column: 'path', label_column: null, split_column: null, group_column: null, label_type: 'name' })],
      ['reads', worker.call('data.check', { loader_workers: 0 }, { tables: { images: images(join(outside, 'a.png')) } })],
      ['reads', worker.call('model.describe', { model: { ...model, weights: secret } })],
      ['reads', worker.call('files.read_table', { path: join(allowed, 'link', 'secret.arrow') })],
    ]
    for (const [what, call] of calls) {
      const message = await call.then(() => 'ran', refusal)
      expect(message, what).toMatch(/raised PermissionError: .*lies outside the directories this worker may use: .*allowed \(start it with --allow-dir DIR/)
    }
    for (const loader of ['os:system', 'nfhm.core.model:os.system']) {
      const message = await worker.call('model.describe', { model: { ...model, loader } }).then(() => 'ran', refusal)
      expect(message, loader).toMatch(/raised PermissionError: .*plug-in .* (is not from a module this worker allows|names an object of module 'posix')/)
    }
    expect(readFileSync(secret, 'utf8')).toBe('keep')
    expect(existsSync(join(outside, 'pseudo_labels.arrow'))).toBe(false)
    // Inside, the same methods run.
    const inside = await worker.call('files.stat', { paths: [join(allowed, 'x')] })
    expect(inside.result.files).toEqual([{ path: join(allowed, 'x'), exists: false, bytes: null }])
  } finally {
    await worker.close()
    await server.stop()
  }
})

test('a server killed mid-training ends the CLI within seconds; --resume after a restart finishes the run', async () => {
  const port = await freePort()
  const token = 'resume-token'
  let server = await startTcpServer(serverEnv, port, token, serverArgs)
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
  expect(ended.exitCode).toBe(EXIT.worker)
  expect(ended.stderr).toMatch(new RegExp(`connection to tcp://127\\.0\\.0\\.1:${port} was lost`))
  expect(ended.stderr).toMatch(/again .*then rerun this command with --resume/)

  server = await startTcpServer(serverEnv, port, token, serverArgs)
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

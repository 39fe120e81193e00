// One suite, unchanged, against every transport: the guarantees of the bridge.
import { mkdtempSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { execa } from 'execa'
import { Field, FixedSizeList, Float32, makeData, makeVector, Table, tableFromArrays } from 'apache-arrow'
import { z } from 'zod'
import { ProtocolError, WorkerDiedError, WorkerError, WorkerTimeoutError } from '../src/bridge/errors.js'
import { repoRoot } from '../src/bridge/python.js'
import { EXIT } from '../src/run/exit-codes.js'
import type { Worker } from '../src/bridge/worker.js'
import {
  conformanceMethods,
  isAlive,
  openConformanceWorker,
  startTcpServer,
  waitUntil,
  type TcpServer,
  type Transport,
} from './helpers/workers.js'

const transports: Transport[] = ['pythonia', 'stdio', 'tcp']

describe.each(transports)('bridge conformance over %s', (transport) => {
  // These tests leave their worker as they found it, so they share one (over TCP: one server, one connection).
  describe('on a shared worker', () => {
    let server: TcpServer | undefined
    let worker: Worker<typeof conformanceMethods>
    beforeAll(async () => {
      if (transport === 'tcp') server = await startTcpServer()
      worker = await openConformanceWorker(transport, server)
    })
    afterAll(async () => {
      await worker?.close()
      await server?.stop()
    })

    test('a call returns a schema-checked result', async () => {
      const { result } = await worker.call('hello', {})
      expect(result.versions.torch).toMatch(/^\d+\.\d+/)
      expect(result.device.type).toBe('cpu')
      expect(result.methods).toContain('echo')
    })

    test('a Python exception carries the Python traceback', async () => {
      const error = await worker.call('conf.fail', { message: 'bad thing 42' }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(WorkerError)
      const e = error as WorkerError
      expect(e.pythonType).toBe('ValueError')
      expect(e.pythonMessage).toBe('bad thing 42')
      expect(e.pythonTraceback).toMatch(/Traceback \(most recent call last\)[\s\S]*nfhm_conformance\.py[\s\S]*ValueError: bad thing 42/)
      // the worker survives an exception
      expect((await worker.call('conf.pid', {})).result.pid).toBeGreaterThan(0)
    })

    test('NaN, infinities and integers beyond 2^53 cross without loss', async () => {
      const { result } = await worker.call('conf.specials', {})
      expect(result.nan).toBeNaN()
      expect(result.inf).toBe(Infinity)
      expect(result.ninf).toBe(-Infinity)
      expect(result.big).toBe(2n ** 63n + 1n)
      expect(result.negbig).toBe(-(2n ** 60n))
      expect(result.safe).toBe(2 ** 53 - 1)
      expect(result.np_float).toBe(0.5)
      expect(result.np_int).toBe(7)
      const echoed = await worker.call('echo', { n: NaN, i: -Infinity, b: 2n ** 64n })
      expect(echoed.result.n).toBeNaN()
      expect(echoed.result.i).toBe(-Infinity)
      expect(echoed.result.b).toBe(2n ** 64n)
    })

    test('an Arrow round trip is bit-exact for NaN payloads, -0, denormals and infinities', async () => {
      const bits = new Uint32Array([0x7fc00001, 0xffc12345, 0x7f800001, 0x80000000, 0x00000001, 0x807fffff, 0x7f800000, 0xff800000, 0x3f800000])
      const f32 = new Float32Array(bits.buffer)
      const f64bits = new BigUint64Array([0x7ff8000000000123n, 0x8000000000000000n, 0x0000000000000001n, 0xfff0000000000000n])
      const f64 = new Float64Array(f64bits.buffer)
      const dim = 3
      const flat = new Float32Array(bits.buffer.slice(0, 36))
      const embedding = makeData({
        type: new FixedSizeList(dim, new Field('item', new Float32(), false)),
        length: 3,
        nullCount: 0,
        child: makeData({ type: new Float32(), length: 9, data: flat }),
      })
      const embeddings = new Table({ id: makeVector(new BigInt64Array([1n, 2n, 2n ** 62n])), embedding: makeVector(embedding) })
      const { tables } = await worker.call(
        'echo',
        {},
        { tables: { scalars: tableFromArrays({ f32 }), doubles: tableFromArrays({ f64 }), embeddings } },
      )
      const back32 = tables.scalars!.getChild('f32')!.toArray() as Float32Array
      expect(Array.from(new Uint32Array(back32.buffer, back32.byteOffset, back32.length))).toEqual(Array.from(bits))
      const back64 = tables.doubles!.getChild('f64')!.toArray() as Float64Array
      expect(Array.from(new BigUint64Array(back64.buffer, back64.byteOffset, back64.length))).toEqual(Array.from(f64bits))
      const emb = tables.embeddings!
      expect(String(emb.schema.fields[1]!.type)).toBe('FixedSizeList[3]<Float32>')
      expect(Array.from(emb.getChild('id')!.toArray() as BigInt64Array)).toEqual([1n, 2n, 2n ** 62n])
      const values = emb.getChild('embedding')!.data[0]!.children[0]!.values as Float32Array
      expect(Array.from(new Uint32Array(values.buffer, values.byteOffset, 9))).toEqual(Array.from(bits))
    })
  })

  // These tests end their worker, or read its results with other schemas: each opens its own (over TCP: its own server).
  describe('on a worker of its own', () => {
    let server: TcpServer | undefined
    const open = () => openConformanceWorker(transport, server)

    beforeEach(async () => {
      if (transport === 'tcp') server = await startTcpServer()
    })
    afterEach(async () => {
      await server?.stop()
    })

    test('a result that breaks its schema is an error naming the method and field', async () => {
      const strict = { ...conformanceMethods, 'conf.specials': { params: z.object({}), result: z.object({ nan: z.string() }) } }
      const worker = await openConformanceWorker(transport, server, strict)
      try {
        const error = await worker.call('conf.specials', {}).catch((e: unknown) => e)
        expect(error).toBeInstanceOf(ProtocolError)
        expect((error as Error).message).toMatch(/conf\.specials/)
        expect((error as Error).message).toMatch(/field "nan"/)
      } finally {
        await worker.close()
      }
    })

    test('a worker that exits mid-call rejects every pending call within 1 s, with the exit code and stderr', async () => {
      const worker = await open()
      await worker.call('conf.exit_later', { delay: 0.5, code: 7, stderr: 'last words from python' })
      const started = Date.now()
      const pending = [worker.call('conf.sleep', { seconds: 30 }), worker.call('conf.pid', {})]
      const errors = await Promise.all(pending.map((p) => p.catch((e: unknown) => e)))
      // the worker dies 0.5 s in; its calls must reject less than 1 s later
      expect(Date.now() - started).toBeLessThan(1500)
      for (const error of errors) {
        expect(error).toBeInstanceOf(WorkerDiedError)
        // A TCP worker's exit belongs to the server; a child's is the worker's own.
        if (transport === 'tcp') {
          expect((error as Error).message).toMatch(/connection to tcp:\/\/127\.0\.0\.1:\d+ was lost/)
        } else {
          expect((error as WorkerDiedError).exitCode).toBe(7)
          expect((error as Error).message).toMatch(/last words from python/)
        }
      }
      await expect(worker.call('conf.pid', {})).rejects.toBeInstanceOf(WorkerDiedError)
      await worker.close()
    })

    test('SIGKILL of the worker mid-call rejects within 1 s', async () => {
      const worker = await open()
      const pid = (await worker.call('conf.pid', {})).result.pid
      const pending = worker.call('conf.sleep', { seconds: 30 })
      await new Promise((r) => setTimeout(r, 100))
      const started = Date.now()
      process.kill(pid, 'SIGKILL')
      const error = await pending.catch((e: unknown) => e)
      expect(Date.now() - started).toBeLessThan(1000)
      expect(error).toBeInstanceOf(WorkerDiedError)
      if (transport !== 'tcp') expect((error as WorkerDiedError).signal).toBe('SIGKILL')
      await worker.close()
    })

    test('a per-call timeout rejects and stops the call; no timeout by default', async () => {
      const worker = await open()
      const slow = await worker.call('conf.sleep', { seconds: 1.5 })
      expect(slow.result.slept).toBe(1.5)
      const pid = (await worker.call('conf.pid', {})).result.pid
      const started = Date.now()
      const error = await worker.call('conf.sleep', { seconds: 30 }, { timeoutMs: 300 }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(WorkerTimeoutError)
      expect(Date.now() - started).toBeLessThan(1000)
      if (transport !== 'tcp') expect(await waitUntil(() => !isAlive(pid), 2000)).toBe(true)
      await worker.close()
    })

    test.skipIf(transport === 'tcp')('closing leaves no worker process behind', async () => {
      const worker = await open()
      const pid = (await worker.call('conf.pid', {})).result.pid
      expect(isAlive(pid)).toBe(true)
      await worker.close()
      expect(await waitUntil(() => !isAlive(pid), 2000)).toBe(true)
    })

    test.skipIf(transport === 'tcp').each(['SIGINT', 'SIGTERM', 'SIGKILL'] as const)(
      'no worker outlives an orchestrator stopped by %s mid-call',
      async (signal) => {
        const orchestrator = execa('node', ['--import', 'tsx', join(repoRoot, 'test/fixtures/hold-worker.ts'), transport, 'hold'], {
          cwd: repoRoot,
          reject: false,
          buffer: false,
        })
        const pid = await new Promise<number>((resolve) => {
          orchestrator.stdout!.on('data', (chunk: Buffer) => resolve((JSON.parse(chunk.toString()) as { pid: number }).pid))
        })
        expect(isAlive(pid)).toBe(true)
        orchestrator.kill(signal)
        const ended = await orchestrator
        expect(await waitUntil(() => !isAlive(pid), 2000)).toBe(true)
        // SIGINT and SIGTERM end with 128 + the signal's number, as shells report them (README, "Exit codes").
        const expected = { SIGINT: [EXIT.interrupted, undefined], SIGTERM: [143, undefined], SIGKILL: [undefined, 'SIGKILL'] }[signal]
        expect([ended.exitCode, ended.signal]).toEqual(expected)
      },
      30_000,
    )

    test.skipIf(transport === 'tcp')("Python's stdout never reaches the orchestrator's stdout", async () => {
      const run = await execa('node', ['--import', 'tsx', join(repoRoot, 'test/fixtures/hold-worker.ts'), transport, 'print'], { cwd: repoRoot })
      expect(run.stdout).toBe('orchestrator-done')
    })
  })
})

describe('tcp authentication', () => {
  let server: TcpServer
  beforeAll(async () => {
    server = await startTcpServer()
  })
  afterAll(async () => {
    await server.stop()
  })

  test.each([
    ['a wrong token', 'not-the-token'],
    ['an empty token', ''],
  ])('%s is refused', async (_, token) => {
    await expect(openConformanceWorker('tcp', { ...server, token })).rejects.toThrow(/refused the connection: authentication failed/)
  })

  test('a client that skips authentication runs nothing', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'nfhm-auth-')), 'ran')
    const { connect } = await import('node:net')
    const reply = await new Promise<string>((resolve) => {
      const socket = connect({ host: server.host, port: server.port }, () => {
        socket.write(JSON.stringify({ id: 1, method: 'conf.touch', params: { path: marker }, tables: [] }) + '\n')
      })
      let text = ''
      socket.on('data', (d) => (text += d.toString()))
      socket.on('close', () => resolve(text))
    })
    expect(reply).toMatch(/authentication failed/)
    expect(existsSync(marker)).toBe(false)
    // and the server goes on serving authenticated clients
    const worker = await openConformanceWorker('tcp', server)
    expect((await worker.call('conf.pid', {})).result.pid).toBeGreaterThan(0)
    await worker.close()
  })
})

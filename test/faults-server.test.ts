// The TCP worker against clients that misbehave: oversized, malformed and
// garbage frames are refused with an error (and the connection closed, since
// its framing can no longer be trusted), and a client that hangs up, even in
// the middle of a call, never ends or blocks the server. Connections without
// the token wait side by side, each for at most 5 s and 4 KiB, so a crowd of
// them neither delays a client with the token nor grows the server. (A wrong
// token is refused: bridge-conformance.test.ts and remote.test.ts.)
import { readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { makeVector, Table } from 'apache-arrow'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { encodeMessage } from '../src/bridge/frames.js'
import { conformanceEnv, openConformanceWorker, startTcpServer, type TcpServer } from './helpers/workers.js'

const MAX_FRAME = 8_000_000_000
let server: TcpServer

beforeAll(async () => {
  // 6 GB of address space: a frame the server tried to hold at once would not fit, as on a
  // machine that does not overcommit memory.
  server = await startTcpServer({ ...conformanceEnv, NFHM_CONF_MAX_ADDRESS_SPACE: String(6e9) }, 0, undefined, ['--max-frame-bytes', String(MAX_FRAME)])
})
afterAll(async () => {
  await server.stop()
})

const line = (value: unknown) => Buffer.from(JSON.stringify(value) + '\n')
const length = (n: number) => {
  const bytes = Buffer.alloc(8)
  bytes.writeBigUInt64LE(BigInt(n))
  return bytes
}

interface Reply {
  ok: boolean
  error?: { type: string; message: string }
}

/**
 * Sends `parts` (once the token is accepted, unless `auth` is false) and
 * gives back the replies once the server has closed the connection; with
 * `hangUp` this side closes it as soon as its last byte is sent.
 */
function exchange(parts: Buffer[], { auth = true, hangUp = false, to = server } = {}): Promise<Reply[]> {
  return new Promise((resolve) => {
    const socket = connect({ host: to.host, port: to.port })
    let received = ''
    const send = () => parts.forEach((part, i) => socket.write(part, hangUp && i === parts.length - 1 ? () => socket.destroy() : undefined))
    socket.on('data', (chunk) => {
      const first = received === ''
      received += chunk.toString()
      if (auth && first) send() // the token's answer came: only now is the rest read as a request
    })
    socket.on('error', () => {}) // a reset after the server's reply: 'close' follows
    socket.on('close', () => resolve(received.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Reply)))
    socket.on('connect', () => (auth ? socket.write(line({ id: 0, auth: to.token })) : send()))
  })
}

/** The server is up and serves a well-behaved client. */
async function serves(to = server): Promise<boolean> {
  const worker = await openConformanceWorker('tcp', to)
  try {
    return (await worker.call('conf.pid', {})).result.pid === to.process.pid
  } finally {
    await worker.close()
  }
}

/** The process's resident memory now, and its peak since the last resetPeak, in bytes (Linux). */
function memory(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const bytes = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024
  return { now: bytes('VmRSS'), peak: bytes('VmHWM') }
}
const resetPeak = (pid: number) => writeFileSync(`/proc/${pid}/clear_refs`, '5')

/**
 * A connection that never completes its token line: it sends `opening` and, with
 * `drip`, one more byte every 0.5 s. Resolves once connected, with what the
 * server says before it closes the connection.
 */
function idleConnection(opening: string, drip = false): Promise<{ closed: Promise<string> }> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined
    const socket = connect({ host: server.host, port: server.port }, () => {
      socket.write(opening)
      if (drip) timer = setInterval(() => socket.write('a'), 500)
      resolve({ closed })
    })
    let received = ''
    socket.on('data', (chunk) => (received += chunk.toString()))
    socket.on('error', () => {}) // a write after the server closed: 'close' follows
    const closed = new Promise<string>((done) =>
      socket.on('close', () => {
        clearInterval(timer)
        done(received)
      }),
    )
  })
}

const overLimit = (size: number, limit: number) =>
  `frames of ${size} bytes in one message exceed the limit of ${limit} bytes (the worker's --max-frame-bytes)`

test('a frame longer than --max-frame-bytes is refused with the limit named; the server goes on', async () => {
  const replies = await exchange([line({ id: 1, method: 'echo', params: {}, tables: ['t'] }), length(MAX_FRAME + 1)])
  expect(replies.slice(1)).toEqual([
    { id: null, ok: false, error: expect.objectContaining({ type: 'ProtocolError', message: overLimit(MAX_FRAME + 1, MAX_FRAME) }), tables: [] },
  ])
  expect(await serves()).toBe(true)
})

test.each([
  ['malformed JSON', [Buffer.from('{"id": 1, "method": \n')], true, /^malformed JSON message: /],
  ['a JSON line that is not an object', [line([1, 2, 3])], true, /^a message must be a JSON object$/],
  ['a line that is not UTF-8', [Buffer.from([0xff, 0xfe, 0x41, 0x0a])], true, /^malformed JSON message: /],
  ['JSON nested 100,000 deep', [Buffer.from('['.repeat(100_000) + '\n')], true, /^malformed JSON message: nested too deeply$/],
  ['JSON nested 100,000 deep before the token', [Buffer.from('['.repeat(100_000) + '\n')], false, /^authentication failed/],
  ['garbage where an Arrow frame belongs', [line({ id: 1, method: 'echo', params: {}, tables: ['t'] }), length(16), Buffer.alloc(16, 0xab)], true, /^malformed Arrow frame: /],
])('%s: one error reply, the connection closed, the server goes on', async (_, parts, auth, message) => {
  const replies = await exchange(parts, { auth })
  const errors = replies.filter((r) => !r.ok)
  expect(errors).toHaveLength(1)
  expect(errors[0]!.error!.message).toMatch(message)
  expect(await serves()).toBe(true)
})

test('a frame within the limit but larger than memory, then a hang-up, costs the server nothing', async () => {
  // The server must not try to hold the 7 GB it was promised before any of it arrives.
  const replies = await exchange([line({ id: 1, method: 'echo', params: {}, tables: ['t'] }), length(7_000_000_000), Buffer.alloc(1000)], { hangUp: true })
  expect(replies.slice(1)).toEqual([])
  expect(await serves()).toBe(true)
})

test('a client that hangs up mid-call leaves the server free for the next client once the call ends', async () => {
  // A reply too large for the socket's buffers: writing it to the vanished client fails.
  const big = new Table({ x: makeVector(new Float64Array(3_000_000)) })
  const parts = [
    line({ id: 1, method: 'conf.sleep', params: { seconds: 1 }, tables: [] }),
    ...encodeMessage({ id: 2, method: 'echo', params: {} }, { big }),
  ]
  const started = Date.now()
  await exchange(parts, { hangUp: true })
  expect(await serves()).toBe(true)
  expect(Date.now() - started).toBeLessThan(10_000)
})

test('20 idle connections without the token do not delay a client with it; each is closed at its deadline', async () => {
  const timed = async () => {
    const started = performance.now()
    expect(await serves()).toBe(true)
    return performance.now() - started
  }
  const alone = Math.min(await timed(), await timed())
  // Silent ones, ones that stop mid-line, and ones that keep sending a byte at a time.
  const idle = await Promise.all(Array.from({ length: 20 }, (_, i) => idleConnection(['', '{"id": 0, "auth": "', 'a'][i % 3]!, i % 3 === 2)))
  const crowded = await timed()
  process.stderr.write(`a client with the token: ${alone.toFixed(0)} ms alone, ${crowded.toFixed(0)} ms beside 20 idle connections\n`)
  expect(crowded - alone).toBeLessThan(1000)
  for (const said of await Promise.all(idle.map((c) => c.closed))) {
    expect(said).toMatch(/authentication failed: no token within 5 s/)
  }
})

test('an over-long line before the token and an over-limit frame after it are refused; the server grows by less than 4 MB', async () => {
  const fresh = await startTcpServer(conformanceEnv) // the default frame limit
  try {
    const pid = fresh.process.pid!
    expect(await serves(fresh)).toBe(true) // what serving itself allocates is not counted
    resetPeak(pid)
    const before = memory(pid).now
    const longLine = await exchange([Buffer.alloc(63_000_000, 0x61)], { auth: false, to: fresh })
    const frame = await exchange([line({ id: 1, method: 'echo', params: {}, tables: ['t'] }), length(2 ** 30 + 1), Buffer.alloc(32_000_000)], { to: fresh })
    const grown = memory(pid).peak - before
    process.stderr.write(`the server's peak memory grew by ${(grown / 2 ** 20).toFixed(2)} MiB\n`)
    // The refusal may not reach this side: the server closes with the rest of the line unread, which resets the connection.
    expect(longLine.filter((r) => r.error?.message !== 'authentication failed: the first line is longer than 4096 bytes')).toEqual([])
    expect(frame.slice(1).map((r) => r.error?.message)).toEqual([overLimit(2 ** 30 + 1, 2 ** 30)])
    expect(grown).toBeLessThan(4 * 2 ** 20)
    expect(await serves(fresh)).toBe(true)
  } finally {
    await fresh.stop()
  }
})

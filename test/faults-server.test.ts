// The TCP worker against clients that misbehave: oversized, malformed and
// garbage frames are refused with an error (and the connection closed, since
// its framing can no longer be trusted), and a client that hangs up, even in
// the middle of a call, never ends or blocks the server. (A wrong token is
// refused: bridge-conformance.test.ts and remote.test.ts.)
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
function exchange(parts: Buffer[], { auth = true, hangUp = false } = {}): Promise<Reply[]> {
  return new Promise((resolve) => {
    const socket = connect({ host: server.host, port: server.port })
    let received = ''
    const send = () => parts.forEach((part, i) => socket.write(part, hangUp && i === parts.length - 1 ? () => socket.destroy() : undefined))
    socket.on('data', (chunk) => {
      const first = received === ''
      received += chunk.toString()
      if (auth && first) send() // the token's answer came: only now is the rest read as a request
    })
    socket.on('error', () => {}) // a reset after the server's reply: 'close' follows
    socket.on('close', () => resolve(received.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Reply)))
    socket.on('connect', () => (auth ? socket.write(line({ id: 0, auth: server.token })) : send()))
  })
}

/** The server is up and serves a well-behaved client. */
async function serves(): Promise<boolean> {
  const worker = await openConformanceWorker('tcp', server)
  try {
    return (await worker.call('conf.pid', {})).result.pid === server.process.pid
  } finally {
    await worker.close()
  }
}

test('a frame longer than --max-frame-bytes is refused with the limit named; the server goes on', async () => {
  const replies = await exchange([line({ id: 1, method: 'echo', params: {}, tables: ['t'] }), length(MAX_FRAME + 1)])
  expect(replies.slice(1)).toEqual([
    { id: null, ok: false, error: expect.objectContaining({ type: 'ProtocolError', message: `frame of ${MAX_FRAME + 1} bytes exceeds the limit of ${MAX_FRAME} bytes` }), tables: [] },
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

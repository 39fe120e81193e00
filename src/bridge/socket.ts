// The socket transport: `python -m nfhm.rpc.serve` as a child over stdio, or an
// already running server over TCP (with a shared token, and TLS when the server
// has a certificate).
import { connect, type Socket } from 'node:net'
import { connect as connectTls } from 'node:tls'
import type { Readable, Writable } from 'node:stream'
import { execa } from 'execa'
import { MessageReader, encodeMessage, type Message } from './frames.js'
import { ProtocolError, WorkerDiedError } from './errors.js'
import { BadInputError } from '../run/exit-codes.js'
import { trackChild } from './children.js'
import { workerEnv } from './python.js'
import { torchrunArgs, type TorchrunLaunch } from './torchrun.js'
import { Lifeline, tailFile, type RawReply, type Transport, type TransportKind } from './transport.js'

/** Request/reply over a duplex byte stream; replies come back in request order. */
class Channel {
  private nextId = 1
  private readonly waiting: Array<{ id: number; resolve: (m: Message) => void; reject: (e: Error) => void }> = []
  readonly reader: MessageReader

  constructor(
    private readonly output: Writable,
    private readonly lifeline: Lifeline,
  ) {
    this.reader = new MessageReader((message) => this.deliver(message))
  }

  feed(chunk: Buffer): void {
    this.parse(() => this.reader.push(chunk))
  }

  /** A socket read `n` bytes into `buffer`, from reader.readBuffer(). */
  received(n: number, buffer: Buffer): void {
    this.parse(() => this.reader.onRead(n, buffer))
  }

  private parse(work: () => void): void {
    try {
      work()
    } catch (e) {
      this.lifeline.die(e as Error)
    }
  }

  private deliver(message: Message): void {
    const next = this.waiting.shift()
    if (!next || message.header.id !== next.id) {
      const error = message.header.error as { message?: string } | undefined
      this.lifeline.die(new ProtocolError(`unexpected reply from the worker: ${error?.message ?? JSON.stringify(message.header).slice(0, 200)}`))
      return
    }
    next.resolve(message)
  }

  request(header: Record<string, unknown>, tables: Message['tables']): Promise<Message> {
    const id = this.nextId++
    const reply = new Promise<Message>((resolve, reject) => this.waiting.push({ id, resolve, reject }))
    for (const part of encodeMessage({ id, ...header }, tables)) this.output.write(part)
    return this.lifeline.guard(reply)
  }
}

function toRawReply({ header, tables }: Message): RawReply {
  if (typeof header.ok !== 'boolean') throw new ProtocolError('a reply needs a boolean "ok"')
  return { ok: header.ok, result: header.result, error: header.error as RawReply['error'], tables }
}

function transportOver(
  kind: TransportKind,
  pid: number | undefined,
  channel: Channel,
  lifeline: Lifeline,
  stop: { kill(): void; close(): Promise<void> },
): Transport {
  return {
    kind,
    pid,
    async send(method, params, tables) {
      return toRawReply(await channel.request({ method, params }, tables))
    },
    kill: stop.kill,
    close: stop.close,
  }
}

export interface StdioOptions {
  python: string
  logFile: string
  env?: Record<string, string>
  /** Launch through torchrun (several processes, rank 0 on this stdio). */
  torchrun?: TorchrunLaunch
}

export async function startStdio(opts: StdioOptions): Promise<Transport> {
  const serve = ['--stdio']
  const args = opts.torchrun ? torchrunArgs(opts.torchrun, serve) : ['-m', 'nfhm.rpc.serve', ...serve]
  const child = execa(opts.python, args, {
    env: workerEnv(opts.env),
    extendEnv: false,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: { file: opts.logFile, append: true },
    buffer: false,
    encoding: 'buffer',
    cleanup: true,
  })
  child.catch(() => {}) // its exit is reported through the lifeline
  const lifeline = new Lifeline()
  const untrack = child.pid ? trackChild(child.pid) : () => {}
  let closing = false
  child.once('exit', (code, signal) => {
    untrack()
    if (closing) return lifeline.die(new WorkerDiedError('was closed', code, signal, ''))
    void tailFile(opts.logFile).then((tail) =>
      lifeline.die(new WorkerDiedError(`exited (code ${code}, signal ${signal})`, code, signal, tail)),
    )
  })
  const channel = new Channel(child.stdin as Writable, lifeline)
  ;(child.stdout as Readable).on('data', (chunk: Buffer) => channel.feed(chunk))
  child.stdin!.on('error', () => {}) // EPIPE after a crash; the exit event reports it
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return transportOver(opts.torchrun ? 'torchrun' : 'stdio', child.pid, channel, lifeline, {
    kill: () => {
      closing = true
      child.kill('SIGKILL')
    },
    async close() {
      closing = true
      child.stdin!.end()
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  })
}

export interface TcpOptions {
  host: string
  port: number
  token: string
  /** TLS: the server's certificate, or the CA that signed it (PEM); the server must prove it holds its key. */
  ca?: string
}

export async function connectTcp(opts: TcpOptions): Promise<Transport> {
  const where = `tcp://${opts.host}:${opts.port}${opts.ca ? ' over TLS' : ''}`
  const lifeline = new Lifeline()
  // Replies are read straight into their frames' memory (MessageReader.readBuffer):
  // a table's bytes are copied once, by the kernel. A 92 MB table took ~200 ms
  // this way against ~430 ms as 64 KiB 'data' chunks copied into the frame.
  let channel: Channel | undefined
  const beforeChannel = Buffer.allocUnsafe(64 * 1024) // what connect() reads into first: the channel is made just after
  const onread = {
    buffer: () => channel?.reader.readBuffer() ?? beforeChannel,
    callback: (n: number, buffer: Uint8Array) => {
      channel!.received(n, buffer as Buffer)
      return true
    },
  }
  const target = { host: opts.host, port: opts.port, onread }
  // Only the CA given here is trusted, and the certificate must name the host as written in the address.
  const socket: Socket = opts.ca ? connectTls({ ...target, ca: opts.ca }) : connect(target)
  channel = new Channel(socket, lifeline)
  socket.setNoDelay(true)
  // A peer that vanishes without closing (a cut network) is noticed by TCP
  // keepalive probes instead of never.
  socket.setKeepAlive(true, 15_000)
  await new Promise<void>((resolve, reject) => {
    socket.once(opts.ca ? 'secureConnect' : 'connect', resolve)
    socket.once('error', (e) => reject(new Error(`cannot connect to the worker at ${where}: ${e.message}`)))
  })
  let closing = false
  let admitted = false
  socket.on('error', () => {})
  socket.once('close', () => {
    const tlsHint = opts.ca ? '' : ' (a worker started with --tls-cert needs worker.tls_ca here)'
    const lost = admitted ? `connection to ${where} was lost` : `connection to ${where} was closed before the token was answered${tlsHint}`
    lifeline.die(new WorkerDiedError(closing ? 'connection was closed' : lost, null, null, ''))
  })
  // The server reads nothing else before the token matches.
  const answer = await channel.request({ auth: opts.token }, {})
  admitted = true
  if (answer.header.ok !== true) {
    socket.destroy()
    const error = answer.header.error as { message?: string } | undefined
    // A wrong token or certificate: the user's settings (worker.token_file, worker.tls_ca).
    throw new BadInputError(`the worker at ${where} refused the connection: ${error?.message ?? 'no reason given'}`)
  }
  return transportOver('tcp', undefined, channel, lifeline, {
    kill: () => {
      closing = true
      socket.destroy()
    },
    async close() {
      closing = true
      if (!socket.destroyed) await new Promise<void>((resolve) => socket.end(resolve))
    },
  })
}

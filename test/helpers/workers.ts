// Starting real workers for tests: the conformance extension, and a TCP
// server process the test owns.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { z } from 'zod'
import { anyFloat, workerMethods } from '../../src/bridge/methods.js'
import { pythonInterpreter, repoRoot, workerEnv } from '../../src/bridge/python.js'
import { openWorker, type MethodTable, type WorkerSpec } from '../../src/bridge/worker.js'

export const conformanceEnv = {
  NFHM_WORKER_EXTENSIONS: 'nfhm_conformance',
  PYTHONPATH: join(repoRoot, 'test', 'fixtures', 'python'),
}

export const conformanceMethods = {
  ...workerMethods,
  'conf.sleep': { params: z.object({ seconds: z.number() }), result: z.object({ slept: z.number() }) },
  'conf.fail': { params: z.object({ message: z.string() }), result: z.object({}) },
  'conf.exit_later': { params: z.object({ delay: z.number(), code: z.number(), stderr: z.string() }), result: z.object({}) },
  'conf.specials': {
    params: z.object({}),
    result: z.object({
      nan: anyFloat,
      inf: anyFloat,
      ninf: anyFloat,
      big: z.bigint(),
      negbig: z.bigint(),
      safe: z.number(),
      np_float: z.number(),
      np_int: z.number(),
    }),
  },
  'conf.print': { params: z.object({ text: z.string() }), result: z.object({ printed: z.boolean() }) },
  'conf.pid': { params: z.object({}), result: z.object({ pid: z.number() }) },
  'conf.touch': { params: z.object({ path: z.string() }), result: z.object({}) },
} satisfies MethodTable

export interface TcpServer {
  host: string
  port: number
  token: string
  /** The certificate a client trusts, for a server started with --tls-cert (PEM). */
  ca?: string
  process: ResultPromise
  stop(): Promise<void>
}

/** `python -m nfhm.rpc.serve --listen 127.0.0.1:<port>` (0: a free one) with a token file holding `token` (default: a fresh one), and `args`. */
export async function startTcpServer(env: Record<string, string> = conformanceEnv, listen = 0, token?: string, args: string[] = []): Promise<TcpServer> {
  const dir = mkdtempSync(join(tmpdir(), 'nfhm-server-'))
  token ??= `token-${Math.random().toString(36).slice(2)}`
  writeFileSync(join(dir, 'token'), token, { mode: 0o600 }) // the server refuses a token others can read
  const proc = execa(pythonInterpreter(), ['-m', 'nfhm.rpc.serve', '--listen', `127.0.0.1:${listen}`, '--token-file', join(dir, 'token'), ...args], {
    env: workerEnv(env),
    extendEnv: false,
    stdout: 'pipe',
    stderr: 'inherit',
    buffer: false,
    reject: false,
  })
  const line = await new Promise<string>((resolve, reject) => {
    let text = ''
    proc.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      if (text.includes('\n')) resolve(text.split('\n')[0]!)
    })
    void proc.then(() => reject(new Error(`server exited before listening: ${text}`)))
  })
  const [host, port] = (JSON.parse(line) as { listening: string }).listening.split(':')
  return {
    host: host!,
    port: Number(port),
    token,
    process: proc,
    async stop() {
      proc.kill('SIGKILL')
      await proc
    },
  }
}

export type Transport = 'pythonia' | 'stdio' | 'tcp'

/** A worker with the conformance methods on the named transport. */
export async function openConformanceWorker<M extends MethodTable = typeof conformanceMethods>(
  transport: Transport,
  server?: TcpServer,
  methods: M = conformanceMethods as unknown as M,
) {
  const spec: WorkerSpec =
    transport === 'tcp'
      ? { transport, host: server!.host, port: server!.port, token: server!.token, ca: server!.ca }
      : { transport, env: conformanceEnv }
  return openWorker(spec, methods)
}

/** True while the process runs; a zombie (dead, not yet reaped by its new parent) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true // no /proc (not Linux): kill(0) is all we have
  }
}

export async function waitUntil(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (check()) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return check()
}

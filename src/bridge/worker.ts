// The typed worker: every call's params and result are checked against the
// method's zod schemas, whatever transport carries them.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { z } from 'zod'
import { ProtocolError, WorkerError, WorkerTimeoutError } from './errors.js'
import { startPythonia } from './pythonia.js'
import { pythonInterpreter } from './python.js'
import { connectTcp, startStdio } from './socket.js'
import { checkTable, type TableLayoutName } from './tables.js'
import type { TorchrunLaunch } from './torchrun.js'
import type { Tables, Transport, TransportKind } from './transport.js'

export interface MethodSpec {
  params: z.ZodType
  result: z.ZodType
  /** Layouts of the Arrow tables the call takes (`in`) and gives (`out`), by table name. */
  tables?: { in?: Record<string, TableLayoutName>; out?: Record<string, TableLayoutName> }
}
export type MethodTable = Record<string, MethodSpec>

export interface CallOptions {
  tables?: Tables
  /** No limit by default: training calls may run for hours. */
  timeoutMs?: number
}

export interface Reply<R> {
  result: R
  tables: Tables
}

export type WorkerSpec =
  | { transport: 'pythonia'; python?: string; env?: Record<string, string> }
  | { transport: 'stdio'; python?: string; env?: Record<string, string>; torchrun?: TorchrunLaunch }
  | { transport: 'tcp'; host: string; port: number; token: string; ca?: string }

export interface OpenOptions {
  /** Where the worker's stdout and stderr go (a child worker only). */
  logFile?: string
}

export class Worker<M extends MethodTable> {
  constructor(
    private readonly transport: Transport,
    private readonly methods: M,
    private readonly cleanup: () => void,
  ) {}

  get kind(): TransportKind {
    return this.transport.kind
  }

  get pid(): number | undefined {
    return this.transport.pid
  }

  async call<K extends keyof M & string>(
    method: K,
    params: z.input<M[K]['params']>,
    opts: CallOptions = {},
  ): Promise<Reply<z.output<M[K]['result']>>> {
    const spec = this.methods[method]
    if (!spec) throw new Error(`unknown worker method "${method}"`)
    const checked = spec.params.safeParse(params)
    if (!checked.success) throw new ProtocolError(`params of worker method "${method}": ${describeIssues(checked.error)}`)
    checkTables(method, 'in', spec, opts.tables ?? {})
    const sent = this.transport.send(method, checked.data, opts.tables ?? {})
    const raw = await (opts.timeoutMs === undefined ? sent : this.withTimeout(sent, method, opts.timeoutMs))
    if (!raw.ok) {
      const e = raw.error ?? { type: 'Error', message: 'no error details', traceback: '' }
      throw new WorkerError(method, e.type, e.message, e.traceback, e.bad_input === true)
    }
    const result = spec.result.safeParse(raw.result)
    if (!result.success) {
      throw new ProtocolError(`result of worker method "${method}" is invalid: ${describeIssues(result.error)}`)
    }
    checkTables(method, 'out', spec, raw.tables)
    return { result: result.data as z.output<M[K]['result']>, tables: raw.tables }
  }

  private withTimeout<T>(p: Promise<T>, method: string, ms: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Python cannot be interrupted mid-call and runs one call at a time.
        this.transport.kill()
        reject(new WorkerTimeoutError(method, ms))
      }, ms)
    })
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
  }

  kill(): void {
    this.transport.kill()
    this.cleanup()
  }

  async close(): Promise<void> {
    try {
      await this.transport.close()
    } finally {
      this.cleanup()
    }
  }
}

function checkTables(method: string, direction: 'in' | 'out', spec: MethodSpec, tables: Tables): void {
  for (const [name, layout] of Object.entries(spec.tables?.[direction] ?? {})) {
    const where = `${direction === 'in' ? 'table sent to' : 'table returned by'} worker method "${method}" ("${name}")`
    const table = tables[name]
    if (!table) throw new ProtocolError(`${where} is missing`)
    try {
      checkTable(table, layout, where)
    } catch (e) {
      throw new ProtocolError((e as Error).message)
    }
  }
}

export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `field "${issue.path.join('.') || '(root)'}": ${issue.message}`)
    .join('; ')
}

/** Fast shared memory for Arrow files when the system has it. */
function scratchRoot(): string {
  try {
    mkdirSync('/dev/shm', { recursive: true })
    return mkdtempSync('/dev/shm/nfhm-')
  } catch {
    return mkdtempSync(join(tmpdir(), 'nfhm-'))
  }
}

export async function openWorker<M extends MethodTable>(
  spec: WorkerSpec,
  methods: M,
  opts: OpenOptions = {},
): Promise<Worker<M>> {
  if (spec.transport === 'tcp') {
    return new Worker(await connectTcp(spec), methods, () => {})
  }
  const scratchDir = scratchRoot()
  const cleanup = () => rmSync(scratchDir, { recursive: true, force: true })
  const logFile = opts.logFile ?? join(scratchDir, 'worker.log')
  const python = pythonInterpreter(spec.python)
  try {
    const transport =
      spec.transport === 'pythonia'
        ? await startPythonia({ python, logFile, scratchDir, env: spec.env })
        : await startStdio({ python, logFile, env: spec.env, torchrun: spec.torchrun })
    return new Worker(transport, methods, cleanup)
  } catch (e) {
    cleanup()
    throw e
  }
}

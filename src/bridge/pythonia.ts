// The pythonia transport: the worker in a pythonia child of this process.
// pythonia's own weak spots (measured; docs/architecture.md) are covered here:
// - calls hang when the child dies: every call races the child's exit event;
// - its 100 s request timeout would kill long work: 0 turns it off (a long
//   timer instead would keep the CLI alive after the child died);
// - NaN, Infinity, big integers, numpy values: only JSON strings cross;
// - Python's output on the CLI's stdout: a launcher sends it to a log file;
// - bulk data is slow through its values: tables cross as Arrow IPC files.
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { tableFromIPC, tableToIPC } from 'apache-arrow'
import { decodeJson, encodeJson } from './json.js'
import { ProtocolError, WorkerDiedError } from './errors.js'
import { trackChild } from './children.js'
import { pythonPackageDir, workerEnv } from './python.js'
import { Lifeline, tailFile, type RawReply, type Tables, type Transport } from './transport.js'

interface PythoniaModule {
  python: ((module: string) => Promise<{ pythonia_call(request: string): Promise<string> }>) & { exit(): void }
  com: { proc: import('node:child_process').ChildProcess | null }
}

export interface PythoniaOptions {
  python: string
  logFile: string
  scratchDir: string
  env?: Record<string, string>
}

let active = false

export async function startPythonia(opts: PythoniaOptions): Promise<Transport> {
  if (active) throw new Error('only one pythonia worker can run per process; use the stdio transport for more')
  active = true
  // pythonia reads its settings from the environment when it spawns the child;
  // they are set only around the spawn so this process's own env stays clean.
  const saved = { ...process.env }
  Object.assign(
    process.env,
    workerEnv({
      ...opts.env,
      PYTHON_BIN: join(pythonPackageDir, 'nfhm', 'bin', 'pythonia-python'),
      NFHM_PYTHON: opts.python,
      NFHM_WORKER_LOG: opts.logFile,
      NFHM_SCRATCH: opts.scratchDir,
      REQ_TIMEOUT: '0',
    }),
  )
  let python: PythoniaModule['python']
  let com: PythoniaModule['com']
  let modulePromise: ReturnType<PythoniaModule['python']>
  try {
    const imported = (await import('pythonia')) as unknown as PythoniaModule & { default?: PythoniaModule }
    ;({ python, com } = imported.default ?? imported)
    modulePromise = python('nfhm.rpc.pythonia') // (re)starts the child
  } catch (e) {
    active = false
    throw e
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key]
    Object.assign(process.env, saved)
  }
  const lifeline = new Lifeline()
  const proc = com.proc
  if (!proc?.pid) {
    active = false
    throw new Error('pythonia did not start a Python process')
  }
  const untrack = trackChild(proc.pid)
  let closing = false
  proc.on('error', () => {}) // a write to a dead child's channel must not crash Node
  proc.on('exit', (code, signal) => {
    untrack()
    if (closing) return lifeline.die(new WorkerDiedError('was closed', code, signal, ''))
    void tailFile(opts.logFile).then((tail) =>
      lifeline.die(new WorkerDiedError(`exited (code ${code}, signal ${signal})`, code, signal, tail)),
    )
  })
  const shutdown = () => {
    if (closing) return
    closing = true
    python.exit()
    active = false
  }
  let worker: Awaited<typeof modulePromise>
  try {
    worker = await lifeline.guard(modulePromise)
  } catch (e) {
    shutdown()
    throw e
  }

  return {
    kind: 'pythonia',
    pid: proc.pid,
    async send(method, params, tables): Promise<RawReply> {
      const inputs: Record<string, string> = {}
      try {
        for (const [name, table] of Object.entries(tables)) {
          inputs[name] = join(opts.scratchDir, `${randomUUID()}.arrow`)
          writeFileSync(inputs[name], tableToIPC(table, 'file'))
        }
        const text = await lifeline.guard(worker.pythonia_call(encodeJson({ method, params, tables: inputs })))
        return readReply(text)
      } finally {
        for (const path of Object.values(inputs)) rmSync(path, { force: true })
      }
    },
    kill() {
      proc.kill('SIGKILL')
      shutdown()
    },
    async close() {
      if (lifeline.dead) return shutdown()
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      shutdown()
      await exited
    },
  }
}

function readReply(text: string): RawReply {
  const reply = decodeJson(text) as RawReply & { tables?: Record<string, string> }
  if (typeof reply !== 'object' || reply === null || typeof reply.ok !== 'boolean') {
    throw new ProtocolError(`malformed reply from the pythonia worker: ${text.slice(0, 200)}`)
  }
  const tables: Tables = {}
  for (const [name, path] of Object.entries(reply.tables ?? {})) {
    tables[name] = tableFromIPC(readFileSync(path))
    // Freeing a large file's pages takes tens of ms (30-60 for 92 MB): not on the caller's time.
    void rm(path, { force: true }).catch(() => {})
  }
  return { ...reply, tables }
}

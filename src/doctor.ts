// `nfhm doctor`: is everything nfhm needs here, and how fast is the bridge?
import { execa } from 'execa'
import { greet } from './bridge/contract.js'
import { workerMethods } from './bridge/methods.js'
import { pythonInterpreter, workerEnv } from './bridge/python.js'
import { openWorker, type Worker, type WorkerSpec } from './bridge/worker.js'

export interface DoctorReport {
  ok: boolean
  lines: Array<[string, string]>
  problems: string[]
}

const ROUND_TRIPS = 200

async function medianRoundTripMs(worker: Worker<typeof workerMethods>): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const t = performance.now()
    await worker.call('echo', { i })
    times.push(performance.now() - t)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]!
}

const REQUIRED_MODULES = ['nfhm', 'torch', 'faiss', 'pyarrow', 'numpy', 'PIL', 'sklearn']

async function missingPythonModules(python: string): Promise<string[]> {
  const code = `import importlib.util, json, sys; print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]))`
  const run = await execa(python, ['-c', code, ...REQUIRED_MODULES], { env: workerEnv() })
  return JSON.parse(run.stdout) as string[]
}

export async function doctor(): Promise<DoctorReport> {
  const lines: Array<[string, string]> = [['node', process.version]]
  const problems: string[] = []
  let python: string
  try {
    python = pythonInterpreter()
  } catch (e) {
    return { ok: false, lines, problems: [(e as Error).message] }
  }
  lines.push(['python interpreter', python])
  const missing = await missingPythonModules(python)
  if (missing.length > 0) {
    return { ok: false, lines, problems: [`Python packages missing in ${python}: ${missing.join(', ')}: run \`make setup\``] }
  }
  for (const transport of ['stdio', 'pythonia'] as const) {
    const spec: WorkerSpec = { transport }
    let worker: Worker<typeof workerMethods> | undefined
    try {
      worker = await openWorker(spec, workerMethods)
      const result = await greet(worker)
      if (transport === 'stdio') {
        for (const [name, version] of Object.entries(result.versions)) lines.push([name, version])
        lines.push(['compute device', `${result.device.type} (${result.device.name}${result.device.count > 1 ? ` x${result.device.count}` : ''})`])
      }
      lines.push([`${transport} round trip`, `${(await medianRoundTripMs(worker)).toFixed(3)} ms (median of ${ROUND_TRIPS})`])
    } catch (e) {
      problems.push(`the ${transport} transport failed: ${(e as Error).message}`)
    } finally {
      await worker?.close()
    }
  }
  return { ok: problems.length === 0, lines, problems }
}

// 7. Bridge latency: the round trip of a small call (`echo` of a few fields)
// on each transport, against a bare pipe to Python (one JSON line each way,
// no nfhm) as the floor.
//   npx tsx bench/latency.ts
import { performance } from 'node:perf_hooks'
import { execa } from 'execa'
import { workerMethods } from '../src/bridge/methods.js'
import { pythonInterpreter } from '../src/bridge/python.js'
import { openWorker } from '../src/bridge/worker.js'
import { startTcpServer } from '../test/helpers/workers.js'
import { alternate, emit, median, medianOf, row, type Sample } from './lib.js'

const CALLS = 300
const WARMUP = 30
const PARAMS = { step: 1, lr: [0.001, 0.005], note: 'small' }

/** Median and 90th percentile of CALLS round trips of `roundTrip`, in microseconds. */
async function measure(roundTrip: () => Promise<unknown>): Promise<Sample> {
  for (let i = 0; i < WARMUP; i++) await roundTrip()
  const us: number[] = []
  for (let i = 0; i < CALLS; i++) {
    const start = performance.now()
    await roundTrip()
    us.push((performance.now() - start) * 1000)
  }
  us.sort((a, b) => a - b)
  return { median_us: median(us), p90_us: us[Math.floor(0.9 * us.length)]! }
}

/** The floor: a Python process that answers each JSON line with the same line. */
function barePipe() {
  const code = 'import sys, json\nfor line in sys.stdin:\n    sys.stdout.write(json.dumps(json.loads(line)) + "\\n"); sys.stdout.flush()'
  const child = execa(pythonInterpreter(), ['-c', code], { stdin: 'pipe', stdout: 'pipe', buffer: false, reject: false })
  let waiting: (() => void) | undefined
  child.stdout!.on('data', () => waiting?.())
  const line = JSON.stringify({ id: 1, method: 'echo', params: PARAMS }) + '\n'
  return {
    roundTrip: () =>
      new Promise<void>((resolve) => {
        waiting = resolve
        child.stdin!.write(line)
      }),
    stop: async () => {
      child.stdin!.end()
      await child
    },
  }
}

const server = await startTcpServer({})
const workers = {
  pythonia: await openWorker({ transport: 'pythonia' }, workerMethods),
  stdio: await openWorker({ transport: 'stdio' }, workerMethods),
  tcp: await openWorker({ transport: 'tcp', host: server.host, port: server.port, token: server.token }, workerMethods),
}
const pipe = barePipe()
try {
  const samples = await alternate('latency', {
    pythonia: () => measure(() => workers.pythonia.call('echo', PARAMS)),
    stdio: () => measure(() => workers.stdio.call('echo', PARAMS)),
    tcp: () => measure(() => workers.tcp.call('echo', PARAMS)),
    pipe: () => measure(pipe.roundTrip),
  })
  const us = (side: keyof typeof samples, key = 'median_us') => medianOf(samples[side], key)
  emit({
    name: 'latency',
    title: `7. Bridge latency: round trip of a small call (echo), ${CALLS} calls per run`,
    nfhmSide: 'Worker.call("echo", ...) with its zod checks, JSON encoding and the transport, awaited one after another',
    baselineSide: 'a bare pipe: one JSON line to a Python loop that parses it and writes it back (no nfhm, no checks)',
    rows: [
      row('pythonia (default), median', 'µs', us('pythonia'), us('pipe')),
      row('stdio, median', 'µs', us('stdio'), us('pipe')),
      row('tcp (127.0.0.1), median', 'µs', us('tcp'), us('pipe')),
    ],
    notes: [`90th percentiles: pythonia ${us('pythonia', 'p90_us').toFixed(0)} µs, stdio ${us('stdio', 'p90_us').toFixed(0)} µs, tcp ${us('tcp', 'p90_us').toFixed(0)} µs, bare pipe ${us('pipe', 'p90_us').toFixed(0)} µs`],
  })
} finally {
  for (const worker of Object.values(workers)) await worker.close()
  await pipe.stop()
  await server.stop()
}

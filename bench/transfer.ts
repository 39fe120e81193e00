// 3. Bulk transfer: a 30,000 x 768 float32 embedding table held in the
// worker's memory, into the TS side over each transport, against reading the
// same Arrow IPC bytes from a file in Node (readFileSync + tableFromIPC).
//   npx tsx bench/transfer.ts
// Each side must end with the embedding column as a Float32Array that views
// the received bytes: no copy on the TS side.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { tableFromIPC, type Table } from 'apache-arrow'
import { z } from 'zod'
import { workerMethods } from '../src/bridge/methods.js'
import { repoRoot } from '../src/bridge/python.js'
import { openWorker, type MethodTable, type Worker } from '../src/bridge/worker.js'
import { startTcpServer } from '../test/helpers/workers.js'
import { alternate, emit, medianOf, pairedRatio, row, seconds, type Sample } from './lib.js'

const ROWS = 30_000
const DIM = 768

const benchEnv = { NFHM_WORKER_EXTENSIONS: 'nfhm_bench', PYTHONPATH: join(repoRoot, 'bench', 'python') }
const methods = {
  ...workerMethods,
  'bench.make_embeddings': {
    params: z.object({ rows: z.number().int(), dim: z.number().int(), seed: z.number().int(), path: z.string().nullable() }),
    result: z.object({ bytes: z.number().int() }),
  },
  'bench.embeddings': { params: z.object({}), result: z.object({}) },
} satisfies MethodTable

/** The embedding column is a view on the whole received message (its ArrayBuffer holds the ids too), not a copy of its own. */
function viewsMessage(table: Table): boolean {
  const column = table.getChild('embedding')!
  const values = column.data[0]!.children[0]!.values as Float32Array
  return column.data.length === 1 && values.length >= ROWS * DIM && values.buffer.byteLength > values.byteLength
}

const dir = mkdtempSync(join(tmpdir(), 'nfhm-bench-transfer-'))
const file = join(dir, 'embeddings.arrow')
const server = await startTcpServer(benchEnv)
const workers: Record<string, Worker<typeof methods>> = {
  pythonia: await openWorker({ transport: 'pythonia', env: benchEnv }, methods),
  stdio: await openWorker({ transport: 'stdio', env: benchEnv }, methods),
  tcp: await openWorker({ transport: 'tcp', host: server.host, port: server.port, token: server.token }, methods),
}
try {
  for (const [name, worker] of Object.entries(workers)) {
    await worker.call('bench.make_embeddings', { rows: ROWS, dim: DIM, seed: 0, path: name === 'pythonia' ? file : null })
  }
  const bytes = statSync(file).size
  const copies: string[] = []
  const timed = (name: string, receive: () => Promise<Table> | Table) => async (): Promise<Sample> => {
    const started = performance.now()
    const received = await receive()
    const s = seconds(started)
    if (received.numRows !== ROWS) throw new Error(`${name}: ${received.numRows} rows`)
    if (!viewsMessage(received)) copies.push(name)
    return { seconds: s, mb_s: bytes / 1e6 / s }
  }
  const samples = await alternate('transfer', {
    file: timed('file', () => tableFromIPC(readFileSync(file))),
    pythonia: timed('pythonia', async () => (await workers.pythonia!.call('bench.embeddings', {})).tables.table!),
    stdio: timed('stdio', async () => (await workers.stdio!.call('bench.embeddings', {})).tables.table!),
    tcp: timed('tcp', async () => (await workers.tcp!.call('bench.embeddings', {})).tables.table!),
  })
  const rate = (side: keyof typeof samples) => medianOf(samples[side], 'mb_s')
  const time = (side: keyof typeof samples) => medianOf(samples[side], 'seconds') * 1e3
  emit({
    name: 'transfer',
    title: `3. Bulk transfer: ${ROWS.toLocaleString('en-US')} x ${DIM} float32 embeddings (${(bytes / 1e6).toFixed(1)} MB of Arrow IPC), worker -> TS`,
    nfhmSide:
      'Worker.call of a method returning the table from the worker\'s memory, until the Arrow Table is in hand on the TS side: ' +
      'pythonia writes it as an Arrow file to the scratch folder (/dev/shm) and the TS side reads that; stdio and tcp send ' +
      'it as a length-prefixed Arrow stream frame',
    baselineSide: 'readFileSync + tableFromIPC of the same table, written as an Arrow IPC file (in the page cache)',
    rows: [
      row('pythonia (default)', 'MB/s', rate('pythonia'), rate('file'), ['>=', 0.8], pairedRatio(samples.pythonia, samples.file, (s) => s.mb_s!)),
      row('stdio', 'MB/s', rate('stdio'), rate('file'), ['>=', 0.8], pairedRatio(samples.stdio, samples.file, (s) => s.mb_s!)),
      row('tcp (127.0.0.1)', 'MB/s', rate('tcp'), rate('file'), ['>=', 0.8], pairedRatio(samples.tcp, samples.file, (s) => s.mb_s!)),
    ],
    notes: [
      `median times: file ${time('file').toFixed(0)} ms, pythonia ${time('pythonia').toFixed(0)} ms, stdio ${time('stdio').toFixed(0)} ms, tcp ${time('tcp').toFixed(0)} ms`,
      copies.length === 0
        ? 'no copy on the TS side: on every transport the embedding column is a Float32Array over the received message\'s own ArrayBuffer'
        : `the embedding column was copied on: ${[...new Set(copies)].join(', ')}`,
    ],
  })
} finally {
  for (const worker of Object.values(workers)) await worker.close()
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
}

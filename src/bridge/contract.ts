// The worker contract as data: the JSON Schema of every method's params and
// result, and the table layouts, generated from methods.ts and tables.ts.
// `npm run contract` writes it to python/nfhm/contract.json, which the Python
// dispatcher validates every call against; the worker reports the hash of the
// contract it holds in `hello`, and `checkHello` refuses a worker whose
// contract or methods differ from this side's.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { z } from 'zod'
import { ProtocolError } from './errors.js'
import { workerMethods } from './methods.js'
import { repoRoot } from './python.js'
import { tableLayouts } from './tables.js'
import type { MethodTable, Worker } from './worker.js'

export const contractFile = join(repoRoot, 'python', 'nfhm', 'contract.json')

// 'output': the values as the orchestrator sends them, defaults filled in, so
// Python sees every field as required.
const jsonSchema = (schema: z.ZodType) =>
  z.toJSONSchema(schema, { target: 'draft-2020-12', unrepresentable: 'any', io: 'output' })

export function buildContract(methods: MethodTable = workerMethods) {
  const body = {
    methods: Object.fromEntries(
      Object.entries(methods).map(([name, spec]) => [
        name,
        { params: jsonSchema(spec.params), result: jsonSchema(spec.result), tables: spec.tables ?? {} },
      ]),
    ),
    tables: Object.fromEntries(Object.entries(tableLayouts).map(([name, columns]) => [name, { columns }])),
  }
  const sha256 = createHash('sha256').update(JSON.stringify(body)).digest('hex')
  return { sha256, ...body }
}

export type Contract = ReturnType<typeof buildContract>

/** The file's text: stable, so `git diff` shows what a schema change did. */
export function contractText(contract: Contract = buildContract()): string {
  return `${JSON.stringify(contract, null, 2)}\n`
}

interface Hello {
  methods: string[]
  contract_sha256: string
}

/**
 * A worker built from another version of the contract (a stale remote server,
 * a contract.json not regenerated) fails here, before any stage, naming what differs.
 */
export function checkHello(hello: Hello, methods: MethodTable = workerMethods, expected = buildContract(methods).sha256): void {
  const ours = Object.keys(methods)
  const missing = ours.filter((m) => !hello.methods.includes(m))
  const extra = hello.methods.filter((m) => !(m in methods))
  if (missing.length || extra.length) {
    throw new ProtocolError(
      `the worker's methods differ from the orchestrator's: ${[
        missing.length ? `missing in the worker: ${missing.join(', ')}` : '',
        extra.length ? `unknown to the orchestrator: ${extra.join(', ')}` : '',
      ]
        .filter(Boolean)
        .join('; ')} (are both sides the same nfhm version?)`,
    )
  }
  if (hello.contract_sha256 !== expected) {
    throw new ProtocolError(
      `the worker's contract (sha256 ${hello.contract_sha256.slice(0, 12)}) differs from the orchestrator's (${expected.slice(0, 12)}): ` +
        'run `npm run contract` if you changed src/bridge/methods.ts, or start the worker from the same nfhm version',
    )
  }
}

/** The first call to every worker: its versions and device, once its contract is known to match. */
export async function greet(worker: Worker<typeof workerMethods>): Promise<z.output<typeof workerMethods.hello.result>> {
  const { result } = await worker.call('hello', {})
  checkHello(result)
  return result
}

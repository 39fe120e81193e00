// The worker contract is declared once (src/bridge/methods.ts, tables.ts); the
// Python side reads the generated python/nfhm/contract.json.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Table, Utf8, vectorFromArray } from 'apache-arrow'
import { describe, expect, test } from 'vitest'
import { z } from 'zod'
import { buildContract, checkHello, contractFile, contractText } from '../src/bridge/contract.js'
import { workerMethods } from '../src/bridge/methods.js'
import { checkTable } from '../src/bridge/tables.js'
import { openWorker } from '../src/bridge/worker.js'

describe('the generated contract', () => {
  test('python/nfhm/contract.json is what methods.ts and tables.ts generate (else: npm run contract)', () => {
    expect(readFileSync(contractFile, 'utf8')).toBe(contractText())
  })

  test('a field added to a method schema changes the contract and its hash', () => {
    const base = buildContract()
    const changed = buildContract({
      ...workerMethods,
      'files.stat': { ...workerMethods['files.stat'], params: z.object({ paths: z.array(z.string()), follow: z.boolean() }) },
    })
    expect(changed.sha256).not.toBe(base.sha256)
    expect(changed.methods['files.stat']?.params).toMatchObject({
      properties: { follow: { type: 'boolean' } },
      required: ['paths', 'follow'],
    })
  })
})

describe('checkHello', () => {
  const sha256 = buildContract().sha256
  const methods = Object.keys(workerMethods)

  test('accepts a worker with the same methods and contract', () => {
    expect(() => checkHello({ methods, contract_sha256: sha256 })).not.toThrow()
  })

  test('names the methods that differ', () => {
    expect(() => checkHello({ methods: [...methods.filter((m) => m !== 'search.knn'), 'search.other'], contract_sha256: sha256 })).toThrow(
      /missing in the worker: search\.knn; unknown to the orchestrator: search\.other/,
    )
  })

  test('refuses a worker holding another version of the contract', () => {
    expect(() => checkHello({ methods, contract_sha256: 'f'.repeat(64) })).toThrow(/contract \(sha256 ffffffffffff\) differs.*npm run contract/)
  })
})

describe('table layouts', () => {
  const utf8 = (values: string[]) => vectorFromArray(values, new Utf8())

  test('a table in its layout passes, extra columns allowed', () => {
    const t = new Table({ id: vectorFromArray(Int32Array.from([1])), path: utf8(['a.png']), extra: vectorFromArray(Float64Array.from([1])) })
    expect(() => checkTable(t, 'image_list', 'x.arrow')).not.toThrow()
  })

  test('a missing column or a wrong type is named with the place it was read', () => {
    const noPath = new Table({ id: vectorFromArray(Int32Array.from([1])) })
    expect(() => checkTable(noPath, 'image_list', 'images.arrow')).toThrow(/images\.arrow: column "path" \(utf8\) is missing; found columns: id/)
    const floatIds = new Table({ id: vectorFromArray(Float64Array.from([1])), path: utf8(['a.png']) })
    expect(() => checkTable(floatIds, 'image_list', 'images.arrow')).toThrow(/images\.arrow: column "id" should be int32, found float64/)
  })

  test('optional columns may be missing', () => {
    expect(() => checkTable(new Table({ path: utf8(['a.png']) }), 'scanned_images', 'scan')).not.toThrow()
  })
})

describe.each(['pythonia', 'stdio'] as const)('the Python side validates against the generated contract (%s)', (transport) => {
  test('a field added only to the zod schema is checked by the worker, naming the field', async () => {
    // The new field exists only in this generated contract; nothing changes on the Python side.
    const withFollow = buildContract({
      ...workerMethods,
      'files.stat': { ...workerMethods['files.stat'], params: z.object({ paths: z.array(z.string()), follow: z.boolean() }) },
    })
    const dir = mkdtempSync(join(tmpdir(), 'nfhm-contract-'))
    const file = join(dir, 'contract.json')
    writeFileSync(file, contractText(withFollow))
    // This side sends what the new schema forbids, to see the worker refuse it.
    const loose = { 'files.stat': { params: z.record(z.string(), z.unknown()), result: z.unknown() } }
    const worker = await openWorker({ transport, env: { NFHM_CONTRACT: file } }, loose)
    try {
      await expect(worker.call('files.stat', { paths: [], follow: 'yes' })).rejects.toThrow(/files\.stat: params\.follow: 'yes' is not of type 'boolean'/)
      await expect(worker.call('files.stat', { paths: [] })).rejects.toThrow(/files\.stat: params: 'follow' is a required property/)
    } finally {
      await worker.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

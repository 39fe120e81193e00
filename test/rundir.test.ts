import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { describe, expect, test } from 'vitest'
import { RunDir, RunLockedError } from '../src/stages/rundir.js'
import { keyOf, writeJsonAtomic } from '../src/stages/files.js'

const fresh = () => mkdtempSync(join(tmpdir(), 'nfhm-run-'))

describe('run directory', () => {
  test('a second run is refused while the first is alive, and allowed after it crashed', async () => {
    const root = fresh()
    const holder = execa('sleep', ['30'])
    writeFileSync(join(root, 'run.lock'), JSON.stringify({ pid: holder.pid, host: hostname(), started: 'then' }))
    expect(() => new RunDir(root).lock()).toThrow(RunLockedError)
    expect(() => new RunDir(root).lock()).toThrow(new RegExp(`in use by process ${holder.pid}`))
    holder.kill('SIGKILL')
    await holder.catch(() => {})
    const run = new RunDir(root)
    run.lock() // the lock of a dead process is stale
    expect(JSON.parse(readFileSync(join(root, 'run.lock'), 'utf8')).pid).toBe(process.pid)
    run.unlock()
    expect(existsSync(join(root, 'run.lock'))).toBe(false)
  })

  test('atomic writes leave no temporary files and keys ignore key order', () => {
    const root = fresh()
    writeJsonAtomic(join(root, 'a', 'b.json'), { x: 1 })
    expect(readdirSync(join(root, 'a'))).toEqual(['b.json'])
    expect(keyOf({ a: 1, b: [1, { c: 2, d: 3 }] })).toBe(keyOf({ b: [1, { d: 3, c: 2 }], a: 1 }))
    expect(keyOf({ a: 1 })).not.toBe(keyOf({ a: 2 }))
  })
})

import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa, execaSync } from 'execa'
import { describe, expect, test } from 'vitest'
import { repoRoot } from '../src/bridge/python.js'
import { EXIT } from '../src/run/exit-codes.js'
import { RunDir, RunLockedError } from '../src/run/run-dir.js'
import { writeJsonAtomic } from '../src/run/atomic.js'
import { keyOf } from '../src/run/keys.js'

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

  test('a write that runs out of room names the file, and the earlier version stays', async () => {
    const root = fresh()
    const file = join(root, 'eval.json')
    writeFileSync(file, 'earlier')
    // XFSZ ignored, as Node does itself: the write fails with EFBIG instead of killing the process.
    const run = await execa('bash', ['-c', 'trap "" XFSZ; ulimit -f 8; exec node --import tsx "$@"', 'bash', join(repoRoot, 'test/fixtures/write-file.ts'), file, '100000'], {
      cwd: repoRoot,
      reject: false,
    })
    expect(run.exitCode).not.toBe(0)
    expect(run.stderr).toContain(`cannot write ${file}: the file is larger than the file-size limit (ulimit -f); raise the limit, then rerun: finished work is kept`)
    expect(readFileSync(file, 'utf8')).toBe('earlier')
    expect(readdirSync(root)).toEqual(['eval.json'])
  })

  test('a run discarded before its manifest was written leaves no trace, in a new or an existing directory', () => {
    const parent = fresh()
    const brandNew = new RunDir(join(parent, 'runs', 'new'))
    brandNew.lock()
    brandNew.provisionalFile(brandNew.path('worker.log'))
    writeFileSync(brandNew.path('worker.log'), 'started\n')
    brandNew.unlock()
    brandNew.discard()
    expect(readdirSync(parent)).toEqual([]) // runs/ was made by lock() too

    const root = join(parent, 'old')
    mkdirSync(root)
    writeFileSync(join(root, 'worker.log'), 'an earlier session\n')
    const before = statSync(join(root, 'worker.log'))
    const existing = new RunDir(root)
    existing.lock()
    existing.provisionalFile(existing.path('worker.log'))
    appendFileSync(existing.path('worker.log'), 'this session\n')
    existing.unlock()
    existing.discard()
    expect(readFileSync(join(root, 'worker.log'), 'utf8')).toBe('an earlier session\n')
    expect(Math.round(statSync(join(root, 'worker.log')).mtimeMs)).toBe(Math.round(before.mtimeMs))
    expect(readdirSync(root)).toEqual(['worker.log'])

    existing.writeManifest({ nfhm: '0', created: '', updated: '', config: {}, versions: {}, stages: {}, skipped_images: [] })
    expect(() => existing.discard()).toThrow(/holds a committed run/)
  })

  test('a run directory that cannot be made is refused within a second, naming the path and the reason', () => {
    const parent = fresh()
    writeFileSync(join(parent, 'file'), 'not a folder')
    const cases = [
      // Node's own recursive mkdir spins for ever here.
      ['/proc/nfhm-runs/demo', 'cannot create the run directory /proc/nfhm-runs/demo: /proc is on procfs, a view of the kernel that holds no files'],
      ['/proc/self/fd', 'cannot create the run directory /proc/self/fd: /proc/self/fd is on procfs'],
      [join(parent, 'file', 'runs', 'demo'), `cannot create the run directory ${join(parent, 'file', 'runs', 'demo')}: ${join(parent, 'file')} is a file, not a folder`],
    ]
    // Root may write in any folder: only another user is kept out by the folder's mode.
    if (process.getuid?.() !== 0) {
      const locked = join(parent, 'locked')
      mkdirSync(locked, { mode: 0o555 })
      cases.push([join(locked, 'runs', 'demo'), `: no permission to write in ${locked}`])
    }
    for (const [dir, reason] of cases) {
      const started = performance.now()
      expect(() => new RunDir(dir!).lock()).toThrow(reason)
      expect(performance.now() - started).toBeLessThan(1000)
    }
    expect(readdirSync(parent).sort()).toEqual(process.getuid?.() !== 0 ? ['file', 'locked'] : ['file'])
  })

  // A read-only bind mount in namespaces of its own (user and mount): no root needed, nothing outside changes.
  const namespaces = (() => {
    try {
      return execaSync('unshare', ['-rm', 'true'], { reject: false }).exitCode === 0
    } catch {
      return false
    }
  })()

  test.skipIf(!namespaces)('the CLI names a run directory on a read-only filesystem as such', async () => {
    const parent = fresh()
    const config = join(parent, 'run.yaml')
    writeFileSync(config, `name: demo\nruns_dir: ${join(parent, 'runs')}\ndata: {table: ${join(parent, 'images.csv')}}\n`)
    const cli = `mount --bind -o ro ${parent} ${parent} && exec node ${join(repoRoot, 'bin', 'nfhm.js')} run ${config}`
    const run = await execa('unshare', ['-rm', 'sh', '-c', cli], { cwd: repoRoot, reject: false })
    expect(run.exitCode).toBe(EXIT.badInput)
    expect(run.stderr).toContain(`nfhm: cannot create the run directory ${join(parent, 'runs', 'demo')}: ${parent} is on a read-only filesystem`)
  })

  test("temporary files of writers killed mid-write are removed, a live process's are kept", async () => {
    const root = fresh()
    const dead = execa('true')
    await dead
    const live = execa('sleep', ['30'])
    mkdirSync(join(root, 'round-1', 'train'), { recursive: true })
    const files = [`round-1/train/checkpoint.pt.tmp-${dead.pid}`, `images.arrow.tmp-${dead.pid}`, `metrics.jsonl.tmp-${live.pid}`]
    for (const f of files) writeFileSync(join(root, f), 'partial')
    try {
      expect(new RunDir(root).removeStaleTemporaryFiles().sort()).toEqual(files.slice(0, 2).sort())
      expect(readdirSync(root).sort()).toEqual([`metrics.jsonl.tmp-${live.pid}`, 'round-1'])
      expect(readdirSync(join(root, 'round-1', 'train'))).toEqual([])
    } finally {
      live.kill('SIGKILL')
      await live.catch(() => {})
    }
  })
})

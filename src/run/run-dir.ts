// A run directory: everything one run made, its manifest and its lock.
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statfsSync, statSync, truncateSync, utimesSync, writeFileSync, type Stats } from 'node:fs'
import { hostname } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { writeJsonAtomic } from './atomic.js'
import { BadInputError } from './exit-codes.js'

export class RunLockedError extends BadInputError {
  override name = 'RunLockedError'
}

interface LockInfo {
  pid: number
  host: string
  started: string
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

// Filesystems that are views of the kernel, not storage, by their statfs magic number.
const KERNEL_FILESYSTEMS: Record<number, string> = { 0x9fa0: 'procfs', 0x62656572: 'sysfs', 0x63677270: 'cgroup2' }

function cannotWrite(e: unknown, folder: string): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case 'EROFS':
      return `${folder} is on a read-only filesystem`
    case 'EACCES':
    case 'EPERM':
      return `no permission to write in ${folder}`
    default:
      return `${folder}: ${(e as Error).message}`
  }
}

/**
 * Makes `dir` and its missing parents, and returns the outermost one made (as
 * mkdirSync's recursive mode does). Unlike that mode it fails at once, with
 * the reason: under /proc Node's recursive mkdir loops for ever (ENOENT for a
 * parent that exists), and on a read-only filesystem it reports ENOENT.
 */
function makeDirectory(dir: string): string | undefined {
  const missing: string[] = []
  let existing = dir
  for (; !existsSync(existing); existing = dirname(existing)) missing.unshift(existing)
  const cannot = `cannot create the run directory ${dir}`
  if (!statSync(existing).isDirectory()) throw new BadInputError(`${cannot}: ${existing} is a file, not a folder`)
  const kernel = KERNEL_FILESYSTEMS[statfsSync(existing).type]
  if (kernel) throw new BadInputError(`${cannot}: ${existing} is on ${kernel}, a view of the kernel that holds no files; choose another runs_dir or --run-dir`)
  try {
    accessSync(existing, constants.W_OK)
  } catch (e) {
    throw new BadInputError(`${cannot}: ${cannotWrite(e, existing)}`)
  }
  for (const folder of missing) {
    try {
      mkdirSync(folder)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new BadInputError(`${cannot}: ${cannotWrite(e, dirname(folder))}`) // EEXIST: made by a run beside this one
    }
  }
  return missing[0]
}

/** When a stage last made its output (run/stage-times.ts). */
export interface StageRecord {
  /** The key of its output, for stages whose output is kept and reused. */
  key?: string
  /** Absent in runs made before nfhm recorded it. */
  started?: string
  finished: string
  seconds: number
  [more: string]: unknown
}

export interface Manifest {
  nfhm: string
  created: string
  updated: string
  config: unknown
  versions: Record<string, string>
  stages: Record<string, StageRecord>
  skipped_images: Array<{ id: number; path: string; reason: string }>
  [more: string]: unknown
}

export class RunDir {
  readonly root: string
  private releaseLock: (() => void) | undefined
  /** The outermost folder lock() had to create, if any. */
  private created: string | undefined
  /** Files written before the run is committed, as they were then (undefined: absent). */
  private readonly provisional = new Map<string, Stats | undefined>()
  private wroteManifest = false

  constructor(root: string) {
    this.root = resolve(root)
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts)
  }

  /** Refuses a second live run in the same directory; a dead run's lock is taken over. */
  lock(): void {
    this.created = makeDirectory(this.root)
    const file = this.path('run.lock')
    const mine: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() }
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(file, JSON.stringify(mine), { flag: 'wx' })
        const release = () => {
          try {
            const holder = JSON.parse(readFileSync(file, 'utf8')) as LockInfo
            if (holder.pid === process.pid) rmSync(file, { force: true })
          } catch {
            // gone already
          }
        }
        process.once('exit', release)
        this.releaseLock = () => {
          process.off('exit', release)
          release()
        }
        return
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      }
      let holder: LockInfo | undefined
      try {
        holder = JSON.parse(readFileSync(file, 'utf8')) as LockInfo
      } catch {
        holder = undefined // unreadable: a crash while writing it
      }
      if (holder && holder.host === hostname() && alive(holder.pid) && holder.pid !== process.pid) {
        throw new RunLockedError(
          `run directory ${this.root} is in use by process ${holder.pid} (started ${holder.started}); wait for it or stop it`,
        )
      }
      if (holder && holder.host !== hostname()) {
        throw new RunLockedError(`run directory ${this.root} is locked by ${holder.host} (process ${holder.pid}); remove ${file} if that run is gone`)
      }
      rmSync(file, { force: true }) // stale: its process is gone
    }
    throw new RunLockedError(`could not lock ${this.root}`)
  }

  unlock(): void {
    this.releaseLock?.()
    this.releaseLock = undefined
  }

  /** Deletes the temporary files (`*.tmp-<pid>`) that writers killed mid-write left here. */
  removeStaleTemporaryFiles(): string[] {
    const stale = readdirSync(this.root, { recursive: true, encoding: 'utf8' }).filter((name) => {
      const pid = /\.tmp-(\d+)$/.exec(name)?.[1]
      return pid !== undefined && !alive(Number(pid))
    })
    for (const name of stale) rmSync(this.path(name), { force: true })
    return stale
  }

  /**
   * The run is committed once this process writes its manifest (after the
   * inputs were checked). Until then `file` (the worker's log) may be written
   * but is put back as it was by discard().
   */
  provisionalFile(file: string): void {
    this.provisional.set(file, existsSync(file) ? statSync(file) : undefined)
  }

  get committed(): boolean {
    return this.wroteManifest
  }

  /** Undoes an uncommitted run: its provisional files as they were, and the folders lock() made, if empty. */
  discard(): void {
    if (this.committed) throw new Error(`${this.root} holds a committed run; it cannot be discarded`)
    for (const [file, was] of this.provisional) {
      if (was === undefined) {
        rmSync(file, { force: true })
      } else if (existsSync(file)) {
        truncateSync(file, was.size)
        utimesSync(file, was.atimeMs / 1000, was.mtimeMs / 1000)
      }
    }
    if (!this.created) return
    for (let dir = this.root; ; dir = dirname(dir)) {
      try {
        rmdirSync(dir)
      } catch {
        return // not empty: something else lives there
      }
      if (dir === this.created) return
    }
  }

  readManifest(): Manifest | undefined {
    const file = this.path('manifest.json')
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Manifest) : undefined
  }

  writeManifest(manifest: Manifest): void {
    writeJsonAtomic(this.path('manifest.json'), { ...manifest, updated: new Date().toISOString() })
    this.wroteManifest = true
  }
}

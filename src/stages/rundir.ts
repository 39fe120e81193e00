// A run directory: everything one run made, its manifest and its lock.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { writeJsonAtomic } from './files.js'

export class RunLockedError extends Error {
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

export interface StageRecord {
  key: string
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

  constructor(root: string) {
    this.root = resolve(root)
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts)
  }

  /** Refuses a second live run in the same directory; a dead run's lock is taken over. */
  lock(): void {
    mkdirSync(this.root, { recursive: true })
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

  readManifest(): Manifest | undefined {
    const file = this.path('manifest.json')
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Manifest) : undefined
  }

  writeManifest(manifest: Manifest): void {
    writeJsonAtomic(this.path('manifest.json'), { ...manifest, updated: new Date().toISOString() })
  }
}

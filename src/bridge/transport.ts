// What every transport provides: one request/reply exchange at a time,
// and a death that rejects every pending call at once.
import { open } from 'node:fs/promises'
import type { Table } from 'apache-arrow'

export type Tables = Record<string, Table>

export interface RawReply {
  ok: boolean
  result?: unknown
  error?: { type: string; message: string; traceback: string; bad_input?: boolean }
  tables: Tables
}

export type TransportKind = 'pythonia' | 'stdio' | 'torchrun' | 'tcp'

export interface Transport {
  readonly kind: TransportKind
  /** The worker's process id when it is a child of this process. */
  readonly pid: number | undefined
  send(method: string, params: unknown, tables: Tables): Promise<RawReply>
  /** Stops the worker now; pending calls reject. */
  kill(): void
  /** Asks the worker to finish and waits for it. */
  close(): Promise<void>
}

/** Rejects every guarded promise the moment the worker is known dead. */
export class Lifeline {
  dead: Error | undefined
  private readonly death: Promise<never>
  private rejectDeath!: (e: Error) => void

  constructor() {
    this.death = new Promise<never>((_, reject) => (this.rejectDeath = reject))
    this.death.catch(() => {})
  }

  die(error: Error): void {
    if (this.dead) return
    this.dead = error
    this.rejectDeath(error)
  }

  guard<T>(p: Promise<T>): Promise<T> {
    if (this.dead) return Promise.reject(this.dead)
    return Promise.race([p, this.death])
  }
}

/** The last `lines` lines of a log file ('' when it does not exist). */
export async function tailFile(path: string, lines = 20, maxBytes = 64 * 1024): Promise<string> {
  let fh
  try {
    fh = await open(path, 'r')
  } catch {
    return ''
  }
  try {
    const { size } = await fh.stat()
    const start = Math.max(0, size - maxBytes)
    const buf = Buffer.alloc(size - start)
    await fh.read(buf, 0, buf.length, start)
    return buf.toString('utf8').split('\n').slice(-lines - 1).join('\n')
  } finally {
    await fh.close()
  }
}

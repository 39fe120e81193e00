// The socket wire format (python/nfhm/serve.py): a JSON control line, then
// the Arrow IPC frames its "tables" list names, each behind an 8-byte
// little-endian length.
import { tableFromIPC, tableToIPC, type Table } from 'apache-arrow'
import { decodeJson, encodeJson } from './json.js'
import { ProtocolError } from './errors.js'
import type { Tables } from './transport.js'

export interface Message {
  header: Record<string, unknown>
  tables: Tables
}

export function encodeMessage(header: Record<string, unknown>, tables: Tables = {}): Buffer[] {
  const parts: Buffer[] = [Buffer.from(encodeJson({ ...header, tables: Object.keys(tables) }) + '\n')]
  for (const table of Object.values(tables)) {
    const bytes = tableToIPC(table, 'stream')
    const length = Buffer.alloc(8)
    length.writeBigUInt64LE(BigInt(bytes.byteLength))
    parts.push(length, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  }
  return parts
}

/** Incremental parser: push() bytes as they arrive, get whole messages back. */
export class MessageReader {
  private chunks: Buffer[] = []
  private buffered = 0
  private header: Record<string, unknown> | undefined
  private names: string[] = []
  private tables: Tables = {}
  private frameSize: number | undefined

  constructor(
    private readonly onMessage: (message: Message) => void,
    private readonly maxFrameBytes = 16 * 2 ** 30,
  ) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    while (this.step());
  }

  /** Consumes one unit (line, length or frame) if enough bytes are buffered. */
  private step(): boolean {
    if (this.header === undefined) {
      const end = this.indexOfNewline()
      if (end < 0) return false
      const line = this.take(end + 1).toString('utf8')
      const header = decodeJson(line)
      if (typeof header !== 'object' || header === null || Array.isArray(header)) {
        throw new ProtocolError(`a message must be a JSON object: ${line.slice(0, 200)}`)
      }
      this.header = header as Record<string, unknown>
      const names = this.header.tables ?? []
      if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
        throw new ProtocolError('"tables" must be a list of names')
      }
      this.names = names
    } else if (this.frameSize === undefined) {
      if (this.buffered < 8) return false
      const size = Number(this.take(8).readBigUInt64LE())
      if (size > this.maxFrameBytes) throw new ProtocolError(`frame of ${size} bytes exceeds the limit`)
      this.frameSize = size
    } else {
      if (this.buffered < this.frameSize) return false
      const name = this.names[Object.keys(this.tables).length]!
      this.tables[name] = tableFromIPC(this.take(this.frameSize)) as Table
      this.frameSize = undefined
    }
    if (this.header !== undefined && this.frameSize === undefined && Object.keys(this.tables).length === this.names.length) {
      const message = { header: this.header, tables: this.tables }
      this.header = undefined
      this.tables = {}
      this.onMessage(message)
    }
    return true
  }

  private indexOfNewline(): number {
    let offset = 0
    for (const chunk of this.chunks) {
      const i = chunk.indexOf(10)
      if (i >= 0) return offset + i
      offset += chunk.length
    }
    return -1
  }

  /** The next n bytes as one Buffer; a frame is copied once, into its own memory. */
  private take(n: number): Buffer {
    const first = this.chunks[0]
    let out: Buffer
    if (first && first.length >= n) {
      out = first.subarray(0, n)
      if (first.length === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
    } else {
      out = Buffer.allocUnsafeSlow(n)
      let filled = 0
      while (filled < n) {
        const chunk = this.chunks[0]!
        const used = Math.min(chunk.length, n - filled)
        chunk.copy(out, filled, 0, used)
        filled += used
        if (used === chunk.length) this.chunks.shift()
        else this.chunks[0] = chunk.subarray(used)
      }
    }
    this.buffered -= n
    return out
  }
}

// The socket wire format (python/nfhm/rpc/serve.py): a JSON control line, then
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

/**
 * Incremental parser: push() bytes as they arrive, get whole messages back.
 * A frame larger than what has arrived gets its own buffer at once, and each
 * later chunk is copied into it on arrival: the copy overlaps the transfer,
 * and the chunks are not held beside the frame. Its tables are views on it.
 * A socket can skip even that copy: see readBuffer().
 */
export class MessageReader {
  private chunks: Buffer[] = []
  private buffered = 0
  private header: Record<string, unknown> | undefined
  private names: string[] = []
  private tables: Tables = {}
  private frameSize: number | undefined
  private frame: Buffer | undefined
  private filled = 0
  private readonly spare = Buffer.allocUnsafeSlow(64 * 1024)

  constructor(
    private readonly onMessage: (message: Message) => void,
    private readonly maxFrameBytes = 16 * 2 ** 30,
  ) {}

  push(chunk: Buffer): void {
    if (this.frame) {
      const used = Math.min(chunk.length, this.frame.length - this.filled)
      chunk.copy(this.frame, this.filled, 0, used)
      this.filled += used
      if (this.filled < this.frame.length) return
      this.completeFrame()
      chunk = chunk.subarray(used)
    }
    this.chunks.push(chunk)
    this.buffered += chunk.length
    while (this.step());
  }

  /**
   * Where a socket should read its next bytes (net.Socket's `onread`): into
   * the unfilled rest of the frame being read, so that the kernel's copy is
   * the only one, else into spare space that onRead() copies out of.
   */
  readBuffer(): Buffer {
    return this.frame ? this.frame.subarray(this.filled) : this.spare
  }

  /** `n` bytes have landed in `buffer`, which the last readBuffer() gave. */
  onRead(n: number, buffer: Buffer): void {
    if (this.frame && buffer.buffer === this.frame.buffer) {
      this.filled += n
      if (this.filled === this.frame.length) this.completeFrame()
    } else {
      this.push(Buffer.from(buffer.subarray(0, n))) // the spare space takes the next read
    }
  }

  private completeFrame(): void {
    const frame = this.frame!
    this.frame = undefined
    this.addTable(frame)
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
    } else if (this.buffered < this.frameSize) {
      // The rest of the frame is still on its way: push() fills it from here on.
      this.frame = Buffer.allocUnsafeSlow(this.frameSize)
      this.filled = 0
      for (const chunk of this.chunks) this.filled += chunk.copy(this.frame, this.filled)
      this.chunks = []
      this.buffered = 0
      return false
    } else {
      this.addTable(this.take(this.frameSize))
      return true
    }
    this.deliverIfComplete()
    return true
  }

  private addTable(frame: Buffer): void {
    const name = this.names[Object.keys(this.tables).length]!
    this.tables[name] = tableFromIPC(frame) as Table
    this.frameSize = undefined
    this.deliverIfComplete()
  }

  private deliverIfComplete(): void {
    if (this.header !== undefined && this.frameSize === undefined && Object.keys(this.tables).length === this.names.length) {
      const message = { header: this.header, tables: this.tables }
      this.header = undefined
      this.tables = {}
      this.onMessage(message)
    }
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

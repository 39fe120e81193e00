// TensorBoard event files, written here without TensorFlow: TFRecord framing
// (length, masked CRC32C of the length, the record, masked CRC32C of the
// record) around hand-encoded protobuf `Event`s (tensorboard's
// compat/proto/event.proto, summary.proto, histogram.proto).
//
// Each process appends to one file per run directory, named as TensorFlow
// names them, so `tensorboard --logdir runs` shows every run directory as a
// run. Records are buffered and appended at each flush; a file cut short by
// a kill is still read up to its last whole record, so appending (rather
// than an atomic write) loses at most what was not yet flushed.
import { existsSync, mkdirSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { appendToFile } from './atomic.js'

/** Protobuf wire types. */
const VARINT = 0
const FIXED64 = 1
const LENGTH_DELIMITED = 2
const FIXED32 = 5

/** Bytes of one protobuf message, field by field. */
class Message {
  private readonly bytes: number[] = []

  private varint(value: number): void {
    // Non-negative integers up to 2^53: division keeps them exact where bit operators (32-bit) would not.
    let v = value
    while (v >= 0x80) {
      this.bytes.push((v % 0x80) | 0x80)
      v = Math.floor(v / 0x80)
    }
    this.bytes.push(v)
  }

  private key(field: number, wireType: number): void {
    this.varint((field << 3) | wireType)
  }

  private raw(data: Uint8Array): void {
    for (const b of data) this.bytes.push(b)
  }

  int64(field: number, value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`protobuf field ${field}: ${value} is not a non-negative integer`)
    this.key(field, VARINT)
    this.varint(value)
    return this
  }

  double(field: number, value: number): this {
    this.key(field, FIXED64)
    this.raw(littleEndian(8, (view) => view.setFloat64(0, value, true)))
    return this
  }

  float(field: number, value: number): this {
    this.key(field, FIXED32)
    this.raw(littleEndian(4, (view) => view.setFloat32(0, value, true)))
    return this
  }

  packedDoubles(field: number, values: readonly number[]): this {
    return this.bytesField(field, littleEndian(8 * values.length, (view) => values.forEach((v, i) => view.setFloat64(8 * i, v, true))))
  }

  string(field: number, value: string): this {
    return this.bytesField(field, new TextEncoder().encode(value))
  }

  message(field: number, value: Message): this {
    return this.bytesField(field, value.encode())
  }

  private bytesField(field: number, data: Uint8Array): this {
    this.key(field, LENGTH_DELIMITED)
    this.varint(data.length)
    this.raw(data)
    return this
  }

  encode(): Uint8Array {
    return Uint8Array.from(this.bytes)
  }
}

function littleEndian(size: number, write: (view: DataView) => void): Uint8Array {
  const out = new Uint8Array(size)
  write(new DataView(out.buffer))
  return out
}

// CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), as TFRecord checks it.
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff
  for (const b of data) crc = CRC_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

/** TFRecord's masked CRC: rotated right by 15 bits, plus a constant. */
function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data)
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0
}

/** One TFRecord: uint64 length, its masked CRC, the data, the data's masked CRC (all little-endian). */
function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4)
  const view = new DataView(out.buffer)
  view.setBigUint64(0, BigInt(data.length), true)
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true)
  out.set(data, 12)
  view.setUint32(12 + data.length, maskedCrc32c(data), true)
  return out
}

/** tensorboard.HistogramProto: `bucket[i]` values v with bucketLimit[i-1] <= v < bucketLimit[i]. */
export interface Histogram {
  min: number
  max: number
  num: number
  sum: number
  sumSquares: number
  bucketLimit: number[]
  bucket: number[]
}

/**
 * The histogram of integer values given as distinct values (ascending) and
 * how often each occurs: one bucket of width 1 around each value, and an
 * empty bucket over each gap between them, so every count stays at its value.
 */
export function integerHistogram(values: ArrayLike<number>, counts: ArrayLike<number>): Histogram {
  if (values.length === 0 || values.length !== counts.length) throw new RangeError(`a histogram needs one count per value (${values.length} values, ${counts.length} counts)`)
  const h: Histogram = { min: values[0]!, max: values[values.length - 1]!, num: 0, sum: 0, sumSquares: 0, bucketLimit: [], bucket: [] }
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!
    const c = counts[i]!
    if (i > 0 && v - 0.5 > values[i - 1]! + 0.5) {
      h.bucketLimit.push(v - 0.5)
      h.bucket.push(0)
    }
    h.bucketLimit.push(v + 0.5)
    h.bucket.push(c)
    h.num += c
    h.sum += c * v
    h.sumSquares += c * v * v
  }
  return h
}

function histogramMessage(h: Histogram): Message {
  return new Message()
    .double(1, h.min)
    .double(2, h.max)
    .double(3, h.num)
    .double(4, h.sum)
    .double(5, h.sumSquares)
    .packedDoubles(6, h.bucketLimit)
    .packedDoubles(7, h.bucket)
}

/** An Event (wall_time 1, step 2, file_version 3, summary 5) holding one Summary.Value (tag 1, simple_value 2 or histo 5). */
function summaryEvent(step: number, value: Message): Uint8Array {
  return new Message()
    .double(1, Date.now() / 1000)
    .int64(2, step)
    .message(5, new Message().message(1, value))
    .encode()
}

/** Distinguishes the files one process opens within the same second. */
let filesOpened = 0

/** The event file this process appends to in one directory; created at the first flush that has records. */
export class EventFile {
  private path: string | undefined
  private pending: Uint8Array[] = []

  constructor(readonly dir: string) {}

  scalar(tag: string, step: number, value: number): void {
    this.pending.push(tfRecord(summaryEvent(step, new Message().string(1, tag).float(2, value))))
  }

  histogram(tag: string, step: number, histogram: Histogram): void {
    this.pending.push(tfRecord(summaryEvent(step, new Message().string(1, tag).message(5, histogramMessage(histogram)))))
  }

  /** Appends the records written since the last flush. */
  flush(): void {
    if (this.pending.length === 0) return
    const records = this.pending
    this.pending = []
    // A file removed meanwhile (its run directory deleted) starts again with its header.
    if (this.path === undefined || !existsSync(this.path)) {
      mkdirSync(this.dir, { recursive: true })
      this.path ??= join(this.dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}.${process.pid}.${filesOpened++}`)
      records.unshift(tfRecord(new Message().double(1, Date.now() / 1000).string(3, 'brain.Event:2').encode()))
    }
    appendToFile(this.path, Buffer.concat(records))
  }
}

const openFiles = new Map<string, EventFile>()

/** This process's event file in the run directory `dir`: one per directory, whichever stage writes to it. */
export function runEvents(dir: string): EventFile {
  let file = openFiles.get(dir)
  if (!file) openFiles.set(dir, (file = new EventFile(dir)))
  return file
}

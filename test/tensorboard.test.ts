// TensorBoard event files written by src/run/tensorboard.ts, read back by
// tensorboard's own reader (EventAccumulator) and its record framing and
// CRC-32C checked by tensorboard's TensorFlow-free implementation.
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { EventFile, integerHistogram, runEvents } from '../src/run/tensorboard.js'
import { readEvents } from './helpers/tensorboard.js'
import { runPythonJson } from './helpers/python.js'

const root = mkdtempSync(join(tmpdir(), 'nfhm-tensorboard-'))

// Doubles that float32 rounds (simple_value is a float), signs, tiny and large magnitudes.
const VALUES = [0.1, -1 / 3, 1e-7, 123456.789, 0, 3.4e38]
// Steps from 0 past 2^32: the int64 varint takes several bytes.
const STEPS = [0, 1, 127, 128, 300, 2 ** 40 + 3]

/** Each record's framing and CRCs, checked with tensorboard's masked_crc32c, and each record parsed as an Event. */
function checkRecords(file: string) {
  return runPythonJson<{ records: number; first: { file_version: string; wall_time: number; step: number }; crcOk: boolean }>(
    `
import json, struct, sys
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
data = open(json.load(sys.stdin), "rb").read()
at, events, ok = 0, [], True
while at < len(data):
    header = data[at:at + 8]
    (length,) = struct.unpack("<Q", header)
    ok &= struct.unpack("<I", data[at + 8:at + 12])[0] == masked_crc32c(header)
    record = data[at + 12:at + 12 + length]
    ok &= struct.unpack("<I", data[at + 12 + length:at + 16 + length])[0] == masked_crc32c(record)
    events.append(event_pb2.Event.FromString(record))
    at += 16 + length
first = events[0]
print(json.dumps({"records": len(events), "crcOk": bool(ok), "first": {"file_version": first.file_version, "wall_time": first.wall_time, "step": first.step}}))
`,
    file,
  )
}

describe('event files', () => {
  test('scalars and a histogram read back by tensorboard: tags, steps, float32 values, buckets; CRCs verified', async () => {
    const dir = join(root, 'run-a')
    const before = Date.now() / 1000
    const events = new EventFile(dir)
    STEPS.forEach((step, i) => events.scalar('train/loss', step, VALUES[i]!))
    events.flush()
    // A second flush appends to the same file; the header is written once.
    events.scalar('eval/round-1/map@r', 1, 0.625)
    const sizes = [0, 1, 5, 6, 40]
    const counts = [3, 10, 2, 1, 1]
    events.histogram('cluster/size', 1, integerHistogram(sizes, counts))
    events.flush()
    events.flush() // nothing pending: nothing written

    const files = readdirSync(dir)
    expect(files).toHaveLength(1)
    expect(files[0]).toMatch(new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.${hostname().replace(/\./g, '\\.')}\\.${process.pid}\\.\\d+$`))
    const framing = await checkRecords(join(dir, files[0]!))
    expect(framing.crcOk).toBe(true)
    expect(framing.records).toBe(1 + STEPS.length + 2)
    expect(framing.first.file_version).toBe('brain.Event:2')
    expect(framing.first.wall_time).toBeGreaterThanOrEqual(Math.floor(before))
    expect(framing.first.wall_time).toBeLessThanOrEqual(Date.now() / 1000)

    const read = await readEvents(dir)
    expect(read.fileVersion).toBe(2)
    expect(read.tags.scalars.sort()).toEqual(['eval/round-1/map@r', 'train/loss'])
    expect(read.tags.histograms).toEqual(['cluster/size'])
    // simple_value is a float32: the written doubles come back rounded to float32, exactly.
    expect(read.scalars['train/loss']).toEqual(STEPS.map((step, i) => [step, Math.fround(VALUES[i]!)]))
    expect(read.scalars['eval/round-1/map@r']).toEqual([[1, 0.625]])

    const [h] = read.histograms['cluster/size']!
    const all = sizes.flatMap((s, i) => Array<number>(counts[i]!).fill(s))
    expect(h).toMatchObject({ step: 1, min: 0, max: 40, num: all.length, sum: all.reduce((a, b) => a + b), sum_squares: all.reduce((a, b) => a + b * b, 0) })
    // Width-1 buckets around each size, an empty one over each gap (1.5..4.5, 6.5..39.5).
    expect(h!.bucket_limit).toEqual([0.5, 1.5, 4.5, 5.5, 6.5, 39.5, 40.5])
    expect(h!.bucket).toEqual([3, 10, 0, 2, 1, 0, 1])
    // As the histogram dashboard gets them: each count in a bucket that holds its size.
    const shown = h!.buckets.filter(([, , count]) => count > 0)
    expect(shown.map(([, , count]) => count)).toEqual(counts)
    shown.forEach(([left, right], i) => {
      expect(left).toBeLessThanOrEqual(sizes[i]!)
      expect(right).toBeGreaterThanOrEqual(sizes[i]!)
    })
  })

  test('one file per process and directory; a later process adds its own file, read together', async () => {
    const dir = join(root, 'run-b')
    expect(runEvents(dir)).toBe(runEvents(dir))
    runEvents(dir).scalar('train/loss', 0, 1.5)
    runEvents(dir).flush()
    // A resumed run (another process) appends its steps to a file of its own.
    const later = new EventFile(dir)
    later.scalar('train/loss', 1, 1.25)
    later.flush()
    const read = await readEvents(dir)
    expect(read.files).toHaveLength(2)
    expect(read.scalars['train/loss']).toEqual([
      [0, 1.5],
      [1, 1.25],
    ])
  })

  test('a record cut short (a kill mid-append) is read up to it; one with a flipped byte fails the CRC check', async () => {
    const dir = join(root, 'run-c')
    const events = new EventFile(dir)
    for (let step = 0; step < 4; step++) events.scalar('train/loss', step, step / 2)
    events.flush()
    const file = join(dir, readdirSync(dir)[0]!)
    const bytes = readFileSync(file)
    expect((await readEvents(dir)).scalars['train/loss']).toHaveLength(4)
    // The value of the third scalar event: its record's last 4 bytes are the CRC, the 4 before them the float.
    const records = recordEnds(bytes)
    writeFileSync(file, bytes.subarray(0, records[4]! - 3))
    expect((await readEvents(dir)).scalars['train/loss']).toHaveLength(3)
    bytes[records[3]! - 6]! ^= 0x01
    writeFileSync(file, bytes)
    expect((await readEvents(dir)).scalars['train/loss']).toEqual([
      [0, 0],
      [1, 0.5],
    ])
  })

  test('a histogram needs one count per value', () => {
    expect(() => integerHistogram([1, 2], [1])).toThrow('a histogram needs one count per value (2 values, 1 counts)')
    expect(() => integerHistogram([], [])).toThrow(RangeError)
  })
})

/** The end offset of each TFRecord in `bytes`. */
function recordEnds(bytes: Buffer): number[] {
  const ends: number[] = []
  for (let at = 0; at < bytes.length; ) {
    at += 16 + Number(bytes.readBigUInt64LE(at))
    ends.push(at)
  }
  return ends
}

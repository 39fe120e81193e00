import fc from 'fast-check'
import { makeVector, Table } from 'apache-arrow'
import { describe, expect, it } from 'vitest'
import { MessageReader, encodeMessage, type Message } from '../src/bridge/frames.js'

/** The bytes of `parts` cut at the given fractions of their total length. */
function cut(parts: Buffer[], fractions: number[]): Buffer[] {
  const bytes = Buffer.concat(parts)
  const at = [...new Set(fractions.map((f) => Math.floor(f * bytes.length)))].sort((a, b) => a - b)
  return [0, ...at].map((start, i) => bytes.subarray(start, at[i] ?? bytes.length)).filter((c) => c.length > 0)
}

const bytes = (table: Table) => {
  const x = table.getChild('x')!.toArray() as Float32Array
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength)
}

describe('MessageReader', () => {
  const big = new Table({ x: makeVector(Float32Array.from({ length: 10_000 }, (_, i) => i / 7)) })
  const small = new Table({ id: makeVector(Int32Array.from([3, 1, 2])) })
  const messages = [
    encodeMessage({ id: 1, ok: true }),
    encodeMessage({ id: 2, ok: true }, { big, small }),
    encodeMessage({ id: 3, ok: true }, { small }),
  ]

  it('gives back every message and table whatever the chunks the bytes arrive in', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 }), (fractions) => {
        const got: Message[] = []
        const reader = new MessageReader((m) => got.push(m))
        for (const chunk of cut(messages.flat(), fractions)) reader.push(chunk)
        expect(got.map((m) => m.header.id)).toEqual([1, 2, 3])
        expect(Object.keys(got[1]!.tables)).toEqual(['big', 'small'])
        expect(bytes(got[1]!.tables.big!).equals(bytes(big))).toBe(true)
        expect(Array.from(got[2]!.tables.small!.getChild('id')!.toArray() as Int32Array)).toEqual([3, 1, 2])
      }),
      { numRuns: 100 },
    )
  })

  it('lets a socket read straight into the frame, in reads of any size', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 20 }), (sizes) => {
        const wire = Buffer.concat(messages.flat())
        const got: Message[] = []
        const reader = new MessageReader((m) => got.push(m))
        for (let at = 0, i = 0; at < wire.length; i++) {
          const target = reader.readBuffer()
          const n = Math.min(target.length, sizes[i % sizes.length]!, wire.length - at)
          at += wire.copy(target, 0, at, at + n)
          reader.onRead(n, target)
        }
        expect(got.map((m) => m.header.id)).toEqual([1, 2, 3])
        expect(bytes(got[1]!.tables.big!).equals(bytes(big))).toBe(true)
        expect(Array.from(got[2]!.tables.small!.getChild('id')!.toArray() as Int32Array)).toEqual([3, 1, 2])
      }),
      { numRuns: 100 },
    )
  })

  it('reads a frame that arrives in pieces into one buffer that its columns view', () => {
    const got: Message[] = []
    const reader = new MessageReader((m) => got.push(m))
    for (const chunk of cut(encodeMessage({ id: 1 }, { big }), [0.01, 0.3, 0.6, 0.9])) reader.push(chunk)
    const values = got[0]!.tables.big!.getChild('x')!.data[0]!.values as Float32Array
    expect(values.buffer.byteLength).toBeGreaterThan(values.byteLength)
  })
})

// The JSON dialect of the worker protocol (python/nfhm/rpc/wire.py):
// NaN and +-Infinity cross as {"$float": "nan"|"inf"|"-inf"}, integers beyond
// 2^53 as {"$int": "<digits>"} (decoded to BigInt), so nothing is rounded or lost.

const FLOATS: Record<string, number> = { nan: NaN, inf: Infinity, '-inf': -Infinity }

function untag(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  const keys = Object.keys(value)
  if (keys.length !== 1) return value
  const v = (value as Record<string, unknown>)[keys[0]!]
  if (keys[0] === '$float' && typeof v === 'string' && v in FLOATS) return FLOATS[v]
  if (keys[0] === '$int' && typeof v === 'string' && /^-?\d+$/.test(v)) {
    const n = BigInt(v)
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
  }
  return value
}

function tag(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    return { $float: Number.isNaN(value) ? 'nan' : value > 0 ? 'inf' : '-inf' }
  }
  if (typeof value === 'bigint') return { $int: value.toString() }
  return value
}

export function decodeJson(text: string): unknown {
  return JSON.parse(text, untag)
}

export function encodeJson(value: unknown): string {
  return JSON.stringify(value, tag)
}

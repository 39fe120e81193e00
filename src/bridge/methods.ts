// The worker's methods: one zod schema for the params and one for the result
// of each. python/nfhm/worker.py registers the same names.
import { z } from 'zod'
import type { MethodTable } from './worker.js'

/** A number that may be NaN or infinite (z.number() refuses both). */
export const anyFloat = z.custom<number>((v) => typeof v === 'number', 'expected a number')

export const helloResult = z.object({
  pid: z.number().int(),
  versions: z.object({
    nfhm: z.string(),
    python: z.string(),
    torch: z.string(),
    faiss: z.string(),
    pyarrow: z.string(),
    numpy: z.string(),
  }),
  device: z.object({ type: z.enum(['cpu', 'cuda']), name: z.string(), count: z.number().int() }),
  methods: z.array(z.string()),
})

export const workerMethods = {
  hello: { params: z.object({}), result: helloResult },
  echo: { params: z.record(z.string(), z.unknown()), result: z.record(z.string(), z.unknown()) },
} satisfies MethodTable

export type WorkerMethods = typeof workerMethods

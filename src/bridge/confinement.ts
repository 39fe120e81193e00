// The values a remote worker confines (python/nfhm/rpc/confinement.py): paths on
// its machine and the plug-ins it imports. Both are marked here, once, and reach
// contract.json as JSON Schema keywords; a worker started with --listen refuses a
// marked path outside its --allow-dir directories, and a plug-in from a module
// other than nfhm's and its --allow-plugin ones, before the method runs.
import { z } from 'zod'

/** A file or folder on the worker's machine that a call reads or writes. */
export const workerPath = z.string().meta({ 'x-worker-path': true })

/** "module:attribute": a Python object the worker imports and calls. */
export const pluginSpec = z
  .string()
  .regex(/^[\w.]+:[\w.]+$/, 'expected "module:attribute"')
  .meta({ 'x-plugin': true })

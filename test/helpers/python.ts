// Runs reference computations in the project's Python venv, so tests can check
// TypeScript results against numpy / scikit-learn / torch implementations.
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { execa } from 'execa'

const repoRoot = fileURLToPath(new URL('../..', import.meta.url))

/** The venv interpreter; NFHM_PYTHON overrides it (e.g. a GPU server's own Python). */
export const pythonBin: string =
  process.env.NFHM_PYTHON ?? path.join(repoRoot, '.venv', 'bin', 'python')

/** A Python script that failed; `stderr` holds its traceback. */
export class PythonError extends Error {
  override name = 'PythonError'
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(`${message}\n--- python stderr ---\n${stderr}`)
  }
}

// JSON.stringify turns typed arrays into {"0": ..} objects; send them as lists.
function typedArraysAsLists(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) && !(value instanceof DataView)
    ? Array.from(value as unknown as ArrayLike<number>)
    : value
}

/**
 * Runs `code` with the venv Python. `input` arrives on stdin as JSON (typed
 * arrays become lists): read it with `json.load(sys.stdin)`. The script must
 * print its result as one line of JSON, last on stdout (earlier lines, e.g.
 * library chatter, are ignored).
 */
export async function runPythonJson<T>(code: string, input?: unknown): Promise<T> {
  const result = await execa(pythonBin, ['-c', code], {
    cwd: repoRoot,
    input: JSON.stringify(input ?? null, typedArraysAsLists),
    reject: false,
    stripFinalNewline: true,
  })
  if (result.exitCode !== 0 || result.failed) {
    throw new PythonError(`python exited with ${result.exitCode ?? result.signal}`, result.stderr)
  }
  const lastLine = result.stdout.split('\n').filter((line) => line.trim() !== '').at(-1)
  if (lastLine === undefined) throw new PythonError('python printed no JSON', result.stderr)
  try {
    return JSON.parse(lastLine) as T
  } catch (error) {
    throw new PythonError(`python printed invalid JSON: ${String(error)}`, result.stderr)
  }
}

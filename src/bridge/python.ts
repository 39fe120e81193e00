// Where the Python side lives: the project's venv and its package folder.
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url))
export const pythonPackageDir = join(repoRoot, 'python')

/** NFHM_PYTHON, else the project's .venv interpreter. */
export function pythonInterpreter(explicit?: string): string {
  const python = explicit ?? process.env.NFHM_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python')
  if (!existsSync(python)) {
    throw new Error(`Python interpreter not found at ${python}: run \`make setup\` (or set NFHM_PYTHON)`)
  }
  return python
}

/** The environment a worker child starts with. */
export function workerEnv(extra: Record<string, string> = {}): Record<string, string> {
  const path = [pythonPackageDir, extra.PYTHONPATH, process.env.PYTHONPATH].filter(Boolean).join(delimiter)
  return { ...(process.env as Record<string, string>), PYTHONUNBUFFERED: '1', ...extra, PYTHONPATH: path }
}

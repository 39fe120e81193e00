import { join } from 'node:path'
import { expect, test } from 'vitest'
import { execa } from 'execa'
import { repoRoot } from '../src/bridge/python.js'

const nfhm = join(repoRoot, 'bin', 'nfhm.js')

test('doctor reports versions, the device and both transports, and exits 0; --json prints the same checks as one document', async () => {
  const [run, json] = await Promise.all([execa('node', [nfhm, 'doctor'], { cwd: repoRoot }), execa('node', [nfhm, 'doctor', '--json'], { cwd: repoRoot })])
  const printed = JSON.parse(json.stdout) as { ok: boolean; lines: Record<string, string>; problems: string[] }
  expect(printed.ok).toBe(true)
  expect(printed.problems).toEqual([])
  // The same checks with the same values, but for the timings.
  const lines = Object.fromEntries(run.stdout.trimEnd().split('\n').map((line) => line.split(/\s{2,}/, 2) as [string, string]))
  const untimed = (checks: Record<string, string>) => Object.fromEntries(Object.entries(checks).map(([k, v]) => [k, k.endsWith('round trip') ? 'timed' : v]))
  expect(untimed(printed.lines)).toEqual(untimed(lines))
  expect(printed.lines['stdio round trip']).toMatch(/^\d+\.\d+ ms/)
  for (const key of ['node', 'python', 'torch', 'faiss', 'pyarrow', 'compute device']) {
    expect(run.stdout).toMatch(new RegExp(`^${key}\\s`, 'm'))
  }
  expect(run.stdout).toMatch(/^compute device\s+cpu \(/m)
  expect(run.stdout).toMatch(/^stdio round trip\s+\d+\.\d+ ms/m)
  expect(run.stdout).toMatch(/^pythonia round trip\s+\d+\.\d+ ms/m)
})

test('doctor exits non-zero with a fix-it message when Python is missing', async () => {
  const run = await execa('node', [nfhm, 'doctor', '--json'], { cwd: repoRoot, reject: false, env: { NFHM_PYTHON: '/nonexistent/python' } })
  expect(run.exitCode).toBe(1)
  expect(run.stderr).toMatch(/Python interpreter not found at \/nonexistent\/python: run `make setup`/)
  expect(JSON.parse(run.stdout)).toEqual({ ok: false, lines: { node: expect.stringMatching(/^v\d+\./) }, problems: [expect.stringMatching(/^Python interpreter not found at \/nonexistent\/python/)] })
})

test('doctor names a missing Python package and how to install it', async () => {
  // A bare venv without nfhm's requirements.
  const bare = join(repoRoot, '.tmp', 'bare-venv')
  await execa('python3', ['-m', 'venv', '--clear', bare])
  const run = await execa('node', [nfhm, 'doctor'], { cwd: repoRoot, reject: false, env: { NFHM_PYTHON: join(bare, 'bin', 'python') } })
  expect(run.exitCode).toBe(1)
  expect(run.stderr).toMatch(/Python packages missing in .*bare-venv\/bin\/python: torch, faiss, pyarrow, numpy, PIL, sklearn: run `make setup`/)
})

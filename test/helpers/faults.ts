// For the fault tests: the CLI as a user runs it, a collection with every
// kind of bad image file, and views of the run directory and process table.
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { execa } from 'execa'
import { tableFromIPC } from 'apache-arrow'
import { repoRoot } from '../../src/bridge/python.js'
import { buildDigits, type DigitsData } from './digits.js'
import { runPythonJson } from './python.js'

export const nfhmBin = join(repoRoot, 'bin', 'nfhm.js')

/** The worker finds the fault plug-ins (test/fixtures/python/nfhm_faults.py) on its path. */
export const faultEnv = {
  PYTHONPATH: join(repoRoot, 'test', 'fixtures', 'python'),
  // One thread per process: the test machines' two cores are shared.
  OMP_NUM_THREADS: '1',
}

/** `node bin/nfhm.js ...args` with the fault plug-ins reachable; never rejects. */
export function nfhm(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}) {
  return execa('node', [nfhmBin, ...args], { cwd: opts.cwd ?? repoRoot, reject: false, env: { ...faultEnv, ...opts.env } })
}

export interface FaultyCollection extends DigitsData {
  /** path,label,split: the digits (4 of every 5 per class to train), then the odd files. */
  csv: string
  /** The same digits without the odd files. */
  goodCsv: string
  /** Unreadable files, relative to imageRoot, with the start of the reason nfhm gives. */
  bad: Record<string, string>
  /** Readable though unusual: CMYK JPEG, 16-bit grey PNG. */
  odd: string[]
  /** Training and test images in csv, and training images in goodCsv. */
  trainImages: number
  testImages: number
  goodTrainImages: number
}

/** The digits plus every kind of image file users bring: `perClass` digits per class. */
export async function buildFaultyCollection(dir: string, perClass = 15): Promise<FaultyCollection> {
  const digits = await buildDigits(join(dir, 'digits'), perClass)
  const made = await runPythonJson<Omit<FaultyCollection, keyof DigitsData | 'odd'> & { odd: string[] }>(
    `
import csv, json, os, sys
import numpy as np
from PIL import Image
cfg = json.load(sys.stdin)
root = cfg["root"]
os.makedirs(os.path.join(root, "odd"), exist_ok=True)
at = lambda name: os.path.join(root, "odd", name)
rng = np.random.default_rng(0)
Image.frombytes("CMYK", (28, 28), rng.integers(0, 256, (28, 28, 4), dtype=np.uint8).tobytes()).save(at("cmyk.jpg"))
Image.frombytes("I;16", (28, 28), rng.integers(0, 65536, (28, 28), dtype=np.uint16).astype("<u2").tobytes()).save(at("sixteen-bit.png"))
open(at("empty.png"), "wb").close()
with open(at("not-an-image.png"), "w") as f:
    f.write("species,count\\nwren,3\\n")
Image.frombytes("L", (64, 64), rng.integers(0, 256, (64, 64), dtype=np.uint8).tobytes()).save(at("whole.png"))
whole = open(at("whole.png"), "rb").read()
os.remove(at("whole.png"))
for name in ("truncated.png", "test-truncated.png"):
    open(at(name), "wb").write(whole[: len(whole) // 2])
Image.new("1", (10000, 10000)).save(at("huge.png"))  # 10^8 pixels: over PIL's guard against decompression bombs

with open(cfg["digits_csv"]) as f:
    rows = list(csv.DictReader(f))
for i, row in enumerate(rows):
    row["split"] = "test" if i % 5 == 4 else "train"
def write(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["path", "label", "split"])
        w.writeheader()
        w.writerows(rows)
write(cfg["good_csv"], rows)
odd = ["odd/cmyk.jpg", "odd/sixteen-bit.png"]
bad = {
    "odd/missing.png": "file not found",
    "odd/empty.png": "empty file (0 bytes)",
    "odd/truncated.png": "truncated or damaged",
    "odd/not-an-image.png": "not an image PIL can read",
    "odd/huge.png": "too large",
    "odd/test-truncated.png": "truncated or damaged",
}
extra = [{"path": p, "label": "digit-0", "split": "test" if "test-" in p else "train"} for p in odd + list(bad)]
write(cfg["csv"], rows + extra)
train = sum(r["split"] == "train" for r in rows + extra)
good_train = sum(r["split"] == "train" for r in rows)
print(json.dumps({"csv": cfg["csv"], "goodCsv": cfg["good_csv"], "bad": bad, "odd": odd, "trainImages": train, "testImages": len(rows + extra) - train, "goodTrainImages": good_train}))
`,
    { root: digits.imageRoot, digits_csv: digits.csv, csv: join(dir, 'faulty.csv'), good_csv: join(dir, 'good.csv') },
  )
  return { ...digits, ...made }
}

/** A config over `csv` for runs that take seconds: ViT-T on 28 px images, tiny training. */
export function faultConfig(name: string, runsDir: string, data: { csv: string; imageRoot: string }): string {
  return `name: ${name}
runs_dir: ${runsDir}
data:
  table: ${data.csv}
  image_root: ${data.imageRoot}
  split: {by: column}
model: {name: ViT-T/4@28px}
embed: {loader_workers: 0, batch_size: 16, shard_size: 16}
cluster: {k: 10, min_points_per_centroid: 1}
train:
  epochs: 2
  batch_size: 16
  lr: 1.0e-3
  precision: fp32
  loader_workers: 0
  chunk_steps: 2
  checkpoint_every: 4
  augment: {crop_scale: [0.6, 1], randaug_ops: 0, erasing_prob: 0}
eval: {baselines: [], bootstrap: 20, recall_at: [1], knn_k: [5]}
`
}

/** Every file under `dir` (relative path -> size, content hash, mtime to the ms), for "nothing changed" checks. */
export function snapshot(dir: string): Record<string, string> {
  if (!existsSync(dir)) return {}
  const files: Record<string, string> = {}
  for (const name of readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()) {
    const path = join(dir, name)
    const stat = statSync(path)
    if (!stat.isFile()) continue
    const sha = createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16)
    files[name] = `${stat.size} bytes, sha256 ${sha}, modified ${Math.round(stat.mtimeMs)}`
  }
  return files
}

/** Files under `dir` whose names match `pattern`. */
export function filesUnder(dir: string, pattern: RegExp): string[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => pattern.test(name))
    .sort()
    .map((name) => join(dir, name))
}

/**
 * Reads every complete-looking file under `dirs` the way nfhm would: each
 * *.json and *.arrow must parse. Returns the files checked.
 */
export function assertFinalFilesParse(...dirs: string[]): string[] {
  const files = dirs.flatMap((dir) => filesUnder(dir, /\.(json|arrow)$/))
  for (const file of files) {
    try {
      if (file.endsWith('.json')) JSON.parse(readFileSync(file, 'utf8'))
      else tableFromIPC(readFileSync(file))
    } catch (e) {
      throw new Error(`${file} is under its final name but does not parse: ${(e as Error).message}`)
    }
  }
  return files
}

/** Whether `pid` is a running process: unlike isAlive (helpers/workers.ts), a zombie, dead but not yet reaped, is not. */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

/** The process ids whose parent is `pid`. */
export function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid
      } catch {
        return false
      }
    })
    .map(Number)
}


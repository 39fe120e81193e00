// A small real image collection for end-to-end tests: scikit-learn's
// handwritten digits (shipped with scikit-learn, no download) written as PNG
// files with a CSV table, the way users bring their images.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { runPythonJson } from './python.js'

export interface DigitsData {
  csv: string
  imageRoot: string
  images: number
}

/** `perClass` images of each digit under `dir` (idempotent). */
export async function buildDigits(dir: string, perClass = 40): Promise<DigitsData> {
  const csv = join(dir, 'digits.csv')
  const imageRoot = join(dir, 'images')
  if (existsSync(csv)) return { csv, imageRoot, images: perClass * 10 }
  await runPythonJson(
    `
import csv, json, os, sys
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits
cfg = json.load(sys.stdin)
digits = load_digits()
os.makedirs(cfg["root"], exist_ok=True)
rows = []
for label in range(10):
    for n, i in enumerate(np.flatnonzero(digits.target == label)[: cfg["per_class"]]):
        name = f"{label}/{n:03d}.png"
        os.makedirs(os.path.join(cfg["root"], str(label)), exist_ok=True)
        pixels = (digits.images[i] * (255 / 16)).round().astype(np.uint8)
        Image.fromarray(pixels, "L").save(os.path.join(cfg["root"], name))
        rows.append((name, f"digit-{label}"))
tmp = cfg["csv"] + ".tmp"
with open(tmp, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "label"])
    w.writerows(rows)
os.replace(tmp, cfg["csv"])
print(json.dumps(len(rows)))
`,
    { root: imageRoot, csv, per_class: perClass },
  )
  return { csv, imageRoot, images: perClass * 10 }
}

// A config that trains ViT-T for one short epoch on 600 of scikit-learn's
// digits (400 to train, 200 to test): small enough for a sweep of several
// (K, seed) runs within a test.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildDigits } from './digits.js'

export interface TinyRun {
  config: string
  runsDir: string
}

export async function tinyDigitsRun(prefix: string): Promise<TinyRun> {
  const root = mkdtempSync(join(tmpdir(), prefix))
  const digits = await buildDigits(join(root, 'digits'), 60)
  const runsDir = join(root, 'runs')
  const config = join(root, 'digits.yaml')
  writeFileSync(
    config,
    [
      'name: digits',
      `runs_dir: ${runsDir}`,
      `data: {table: ${digits.csv}, image_root: ${digits.imageRoot}, split: {by: image, test_fraction: 0.3333, seed: 0}}`,
      'model: {name: ViT-T/4@28px}',
      'embed: {loader_workers: 0}',
      'cluster: {niter: 10}',
      'train: {epochs: 1, batch_size: 64, lr: 1.0e-3, loader_workers: 0, augment: {crop_scale: [0.5, 1], randaug_ops: 0, erasing_prob: 0}}',
      'eval: {baselines: [initial, pixels], bootstrap: 200}',
      '',
    ].join('\n'),
  )
  return { config, runsDir }
}

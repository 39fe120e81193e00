// What the run directory's records hold: a line of metrics.jsonl, train.json,
// cluster.json and an entry of eval.json. The recipe's stages write them; the
// reports and the experiments read them.
import { existsSync, readFileSync } from 'node:fs'
import type { ModelSpec } from '../bridge/methods.js'
import type { ConfidenceInterval } from '../eval/bootstrap.js'
import type { ClusterAgreement, ClusterSizeStats } from '../eval/clustering.js'

/** One training step: a line of metrics.jsonl. */
export interface StepRecord {
  round: number
  step: number
  epoch: number
  loss: number
  lr: [number, number]
  beta1: number
  grad_norm: number
  grad_scale: number | null
}

/** metrics.jsonl's steps, in order (none when it does not exist). */
export function readMetrics(path: string): StepRecord[] {
  if (!existsSync(path)) return []
  const records: StepRecord[] = []
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue
    try {
      records.push(JSON.parse(line) as StepRecord)
    } catch {
      // a line cut short by a kill; the rewrite on resume drops it
    }
  }
  return records
}

/** round-<r>/train/train.json: a finished training round. */
export interface TrainSummary {
  key: string
  round: number
  steps: number
  steps_per_epoch: number
  epochs: number
  seconds: number
  images_per_s: number
  epoch_loss: number[]
  warnings: string[]
  /** trained_model.pt and final_centroids.npy, on the worker's machine. */
  model: string
  centroids: string
  /** Beside trained_model.pt (train.export; null where not written or failed): its safetensors copy, its ONNX export and the model card. */
  safetensors: string | null
  onnx: string | null
  card: string
  /** ONNX Runtime's embedding against torch's on one seeded batch (null without an ONNX file). */
  onnx_parity: OnnxParity | null
}

/** train.json's ONNX check: the largest difference, and the largest |value| that gives it its scale. */
export interface OnnxParity {
  opset: number
  batch: number
  max_abs_diff: number
  max_abs_output: number
  seconds: number
}

/** round-<r>/cluster/cluster.json: the pseudo-labels' k-means. */
export interface ClusterSummary {
  key: string
  k: number
  n: number
  objective: number
  seconds: number
  gpu: boolean
  trained_on: number
  warnings: string[]
  sizes: Omit<ClusterSizeStats, 'histogram'> & { histogram: { sizes: number[]; counts: number[] } }
  agreement: ClusterAgreement | null
}

/** What evaluation scores: images held out, or (data.split none) the very images trained on, labels unused. */
export type EvaluatedImages = 'test split' | 'whole collection'

/** How a run was evaluated (eval.protocol over the evaluated images); each eval.json entry holds it. */
export interface EvalProtocol {
  images: EvaluatedImages
  by: 'all' | 'column'
  /** With `by: column`: the column and the values that pick queries and gallery images. */
  column?: string
  query?: string[]
  gallery?: string[]
  query_images: number
  /** null: the queries are the gallery, each query's own image left out. */
  gallery_images: number | null
  /** Evaluated images without a label: never queried, not in the gallery, not clustered. */
  unlabelled: number
}

export type Interval = Pick<ConfidenceInterval, 'estimate' | 'lower' | 'upper'>

/** One model's entry in eval.json. */
export interface EvalRecord {
  name: string
  model: ModelSpec
  protocol: EvalProtocol
  /** The queries' embeddings (all evaluated images' when they are the gallery). */
  embeddings: string
  /** Only with a separate gallery: its embeddings. */
  gallery_embeddings?: string
  queries: number
  excluded_queries: number
  metrics: Record<string, Interval>
  /** NMI bias-corrected, with its half-sampling interval; `plugin` is the uncorrected value (scikit-learn's). */
  clustering: { k: number; nmi: Interval & { plugin: number; bias: number }; ami: number; ari: number; purity: number }
  /** Only for a model that is not a baseline: its paired differences (this model - baseline) per baseline name and metric. */
  versus?: Record<string, Record<string, Interval>>
}

// The run configuration: every field, its default and what it may be.
// Defaults are the group's recipe (README.md, "Your own images"): K = 3,000 for 30,000 images, s=32 m1=1 m2=0.3 m3=0, AdamW lr 1e-4
// with the head at 5x, OneCycle with 10% warm-up, 10 epochs, batch 128.
import { z } from 'zod'
import { pluginSpec, workerPath } from '../bridge/confinement.js'

const positiveInt = z.number().int().positive()
const fraction = z.number().gt(0).lt(1)
// One cluster is no pseudo-class to tell apart: training on it has loss 0 and learns nothing.
const clusterCount = z.number().int().min(2, 'K must be at least 2')

/** Column names of known collections. */
export const PRESETS = {
  vlm4bio: { path_column: 'fileNameAsDelivered', label_column: 'scientificName' },
} as const

/** A column value, or several: the rows holding any of them. */
const columnValues = z.union([z.string(), z.array(z.string()).nonempty()])
type ColumnValues = z.infer<typeof columnValues>

/** The values of a `columnValues` field as a list. */
export function valueList(values: ColumnValues): string[] {
  return typeof values === 'string' ? [values] : values
}

/** 'name': each distinct text is a class; 'number': labels are numbers, so "+1", "1" and "1.0" are one class. */
export const labelType = z.enum(['name', 'number'])

export const dataSchema = z
  .strictObject({
    table: z.string().nullable().default(null).describe('CSV or Parquet file with one row per image'),
    folder: z.string().nullable().default(null).describe('image-folder tree: one sub-folder per class'),
    image_root: z.string().nullable().default(null).describe('folder that relative image paths start from'),
    preset: z.enum(Object.keys(PRESETS) as [keyof typeof PRESETS]).nullable().default(null),
    path_column: z.string().default('path'),
    label_column: z.string().nullable().default('label'),
    label_type: labelType.default('name').describe("'name': '+1', '1' and '1.0' are three classes; 'number': one"),
    split: z
      .discriminatedUnion('by', [
        z.strictObject({ by: z.literal('image'), test_fraction: fraction.default(0.2), seed: z.number().int().default(0) }),
        z.strictObject({ by: z.literal('class'), test_fraction: fraction.default(0.5), seed: z.number().int().default(0) }),
        z.strictObject({
          by: z.literal('column'),
          column: z.string().default('split'),
          train: columnValues.default('train'),
          test: columnValues.default('test'),
        }),
        // Unsupervised adaptation judged where it adapted: labels are unused in training, so
        // evaluating on the trained-on images is the question, not a leak.
        z.strictObject({ by: z.literal('none') }).describe('the whole collection: train on every image, evaluate on every labelled one'),
      ])
      .default({ by: 'image', test_fraction: 0.2, seed: 0 }),
  })
  .refine((d) => (d.table === null) !== (d.folder === null), { message: 'set exactly one of data.table and data.folder' })

export const modelSchema = z.strictObject({
  name: z.string().default('ViT-L/14@336px'),
  weights: z
    .union([z.literal('imagenet'), workerPath])
    .nullable()
    .default(null)
    .describe("UNICOM release file or nfhm trained_model.pt; 'imagenet' for EfficientNet-Lite's own; null = random init"),
  loader: pluginSpec.default('nfhm.core.model:load'),
  image_size: positiveInt.nullable().default(null),
  embedding_size: positiveInt
    .nullable()
    .default(null)
    .describe("the embedding head's output size; null = the model's own (a named ViT's, 256 for EfficientNet-Lite)"),
})

const precision = z.enum(['fp32', 'bf16', 'fp16', 'auto']).default('auto')

export const embedSchema = z.strictObject({
  batch_size: positiveInt.default(256),
  loader_workers: z.number().int().nonnegative().default(2),
  // Each shard is one worker call with its own DataLoader, whose start (fork, first batch)
  // cost ~0.2 s: at 4096 that was 10% of embedding 10,000 small images (bench/embed.ts).
  shard_size: positiveInt.default(16384).describe('images per embedding shard: the unit of caching, resuming and progress'),
  precision,
  skip_bad: z.boolean().default(false).describe('go on without unreadable images (recorded in the manifest)'),
})

export const clusterSchema = z
  .strictObject({
    k: clusterCount.nullable().default(3000),
    ratio: z.number().positive().nullable().default(null).describe('K as a fraction of the number of images; overrides k'),
    spherical: z.boolean().default(true),
    niter: positiveInt.default(20),
    nredo: positiveInt.default(1),
    seed: z.number().int().default(1234),
    max_points_per_centroid: positiveInt.default(256),
    min_points_per_centroid: z.number().int().nonnegative().default(39),
    gpu: z.boolean().nullable().default(null),
  })
  .refine((c) => c.k !== null || c.ratio !== null, { message: 'set cluster.k or cluster.ratio' })

export const augmentSchema = z.strictObject({
  crop_scale: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).default([0.08, 1]),
  hflip_prob: z.number().min(0).max(1).default(0.5),
  randaug_ops: z.number().int().nonnegative().default(2),
  randaug_magnitude: z.number().min(0).max(10).default(9).describe('0..10, as in RandAugment'),
  erasing_prob: z.number().min(0).max(1).default(0.25),
})

export const marginSchema = z.strictObject({
  plugin: pluginSpec.default('nfhm.core.losses:CombinedMarginLoss'),
  s: z.number().positive().default(32),
  m1: z.number().positive().default(1),
  m2: z.number().min(0).default(0.3),
  m3: z.number().min(0).default(0),
  interclass_filtering_threshold: z.number().min(0).max(1).default(0),
})

export const headSchema = z.strictObject({
  plugin: pluginSpec.default('nfhm.core.partial_fc:PartialFC_V2'),
  sample_rate: z.number().gt(0).max(1).default(1),
  sample_num_feat: positiveInt.nullable().default(null),
})

/** Which files train.export writes beside trained_model.pt (and the model card, always). */
export const exportSchema = z.strictObject({
  safetensors: z.boolean().default(true).describe('trained_model.safetensors: the same state dict, for loaders without pickle'),
  onnx: z.boolean().default(true).describe('trained_model.onnx: the encoder, checked against torch with ONNX Runtime'),
})

export const trainSchema = z.strictObject({
  epochs: positiveInt.default(10),
  batch_size: positiveInt.default(128),
  lr: z.number().positive().default(1e-4),
  head_lr_scale: z.number().positive().default(5),
  weight_decay: z.number().nonnegative().default(0),
  pct_start: fraction.default(0.1),
  precision,
  seed: z.number().int().default(0),
  loader_workers: z.number().int().nonnegative().default(2),
  freeze: z
    .number()
    .int()
    .nonnegative()
    .default(0)
    .describe('how many leading blocks stay frozen (with the stem or patch embedding); 0 = fine-tune everything'),
  embedding_lr_scale: z.number().positive().default(1).describe("the embedding head's lr as a multiple of train.lr"),
  augment: augmentSchema.default(augmentSchema.parse({})),
  margin: marginSchema.default(marginSchema.parse({})),
  head: headSchema.default(headSchema.parse({})),
  chunk_steps: positiveInt.default(25).describe('steps per worker call (progress and schedule granularity)'),
  checkpoint_every: positiveInt.default(500).describe('steps between checkpoints (also at every epoch end)'),
  export: exportSchema.default(exportSchema.parse({})),
  health: z
    .strictObject({
      patience_steps: positiveInt.default(300).describe('warn when the loss has not fallen after this many steps'),
      min_grad_scale: z.number().positive().default(1e-4),
    })
    .default({ patience_steps: 300, min_grad_scale: 1e-4 }),
})

/**
 * Who queries whom among the evaluated images (the test split, or the whole
 * collection). `all`: every image is a query against all the others (UNICOM's
 * protocol). `column`: the images whose `column` holds a `query` value search
 * those holding a `gallery` value (e.g. field photos against museum ones, or
 * In-shop's query and gallery images); the two sets must not share a value.
 */
export const protocolSchema = z
  .discriminatedUnion('by', [
    z.strictObject({ by: z.literal('all') }),
    z.strictObject({ by: z.literal('column'), column: z.string(), query: columnValues, gallery: columnValues }),
  ])
  .refine((p) => p.by === 'all' || !valueList(p.query).some((v) => valueList(p.gallery).includes(v)), {
    message: 'a value cannot pick both queries and gallery images: an image would find itself',
    path: ['gallery'],
  })

export const evalSchema = z.strictObject({
  protocol: protocolSchema.default({ by: 'all' }),
  recall_at: z.array(positiveInt).nonempty().default([1, 2, 4, 8]),
  knn_k: z.array(positiveInt).nonempty().default([10, 20, 100]),
  knn_temperature: z.number().positive().default(0.07),
  cluster_k: positiveInt.nullable().default(null).describe('k-means k on test embeddings; null = number of classes'),
  bootstrap: positiveInt.default(1000),
  baselines: z
    .array(z.enum(['initial', 'pixels', 'pixels-centred']))
    .default(['initial'])
    .describe('the starting model; pixels as plain intensities; pixels centred on the training images'),
})

/** Several worker processes under torchrun (one per GPU), driven as one worker (docs/scale-out.md). */
export const distributedSchema = z
  .strictObject({
    nproc: positiveInt.describe('processes on this machine, one per GPU'),
    nnodes: positiveInt.default(1),
    node_rank: z.number().int().nonnegative().default(0).describe('0 on the machine that runs the orchestrator'),
    master_addr: z.string().nullable().default(null).describe("node 0's address as the other nodes reach it"),
    master_port: z.number().int().min(1).max(65535).nullable().default(null).describe('null on one node: torchrun picks a free port'),
  })
  .refine((d) => d.node_rank < d.nnodes, { message: 'node_rank must be below nnodes', path: ['node_rank'] })
  .refine((d) => d.nnodes === 1 || (d.master_addr !== null && d.master_port !== null), {
    message: 'several nodes need master_addr and master_port (node 0, as every node reaches it)',
    path: ['master_addr'],
  })

export const workerSchema = z.strictObject({
  transport: z.enum(['pythonia', 'stdio', 'tcp']).default('pythonia'),
  address: z.string().regex(/^tcp:\/\/[^:]+:\d+$/, 'expected tcp://host:port').nullable().default(null),
  token_file: z.string().nullable().default(null),
  tls_ca: z
    .string()
    .optional()
    .describe("a tcp worker's TLS certificate, or the CA that signed it (PEM): the worker was started with --tls-cert; unset: no TLS"),
  python: z.string().nullable().default(null),
  // Optional (no default) so that worker entries elsewhere (sweep.workers) need not spell them out.
  runs_dir: z.string().optional().describe("runs_dir on the worker's machine (a remote worker); unset: the same path as here"),
  distributed: distributedSchema.optional(),
})

/**
 * `nfhm sweep`: which K to try and how. The list of K (or of K/N ratios) is
 * usually given on the command line; `workers` lists extra workers (same
 * fields as `worker`, plus environment variables for a local one, e.g.
 * CUDA_VISIBLE_DEVICES) so that (K, seed) runs go to whichever is free.
 */
export const sweepSchema = z.strictObject({
  k: z.array(clusterCount).nonempty().nullable().default(null),
  ratio: z.array(z.number().positive()).nonempty().nullable().default(null),
  seeds: positiveInt.default(1).describe('k-means (and training) seeds per K: cluster.seed + s, train.seed + s'),
  train: z.boolean().default(false).describe('train and evaluate a model per (K, seed); else judge K by clustering agreement only'),
  metric: z.string().nullable().default(null).describe('what picks the best K; null = map@r when training, ami otherwise'),
  workers: z.array(workerSchema.extend({ env: z.record(z.string(), z.string()).default({}) })).default([]),
})

export const configSchema = z
  .strictObject({
    name: z.string().regex(/^[\w.-]+$/, 'letters, digits, ".", "_" and "-" only').default('run'),
    runs_dir: z.string().default('runs'),
    rounds: positiveInt.default(1).describe('embed -> cluster -> train repeated, each round from the last'),
    data: dataSchema,
    model: modelSchema.default(modelSchema.parse({})),
    embed: embedSchema.default(embedSchema.parse({})),
    cluster: clusterSchema.default(clusterSchema.parse({})),
    train: trainSchema.default(trainSchema.parse({})),
    eval: evalSchema.default(evalSchema.parse({})),
    worker: workerSchema.default(workerSchema.parse({})),
    sweep: sweepSchema.default(sweepSchema.parse({})),
  })
  .refine((c) => c.eval.protocol.by !== 'column' || c.data.table !== null, {
    message: 'queries and gallery by column need a table (data.table); an image-folder tree has no columns',
    path: ['eval', 'protocol', 'by'],
  })
  .refine((c) => c.worker.transport !== 'tcp' || c.worker.address !== null, {
    message: 'worker.address is required for the tcp transport',
    path: ['worker', 'address'],
  })
  .refine((c) => c.worker.transport !== 'tcp' || c.worker.distributed === undefined, {
    message: 'a tcp worker runs its own processes: start it under torchrun on its machine (docs/scale-out.md)',
    path: ['worker', 'distributed'],
  })

export type Config = z.infer<typeof configSchema>

// The worker's methods: one zod schema for the params and one for the result
// of each, and the layouts of the Arrow tables each takes and gives (tables.ts).
// This is the only declaration of the contract: contract.ts turns it into the
// JSON Schema that the Python side validates every call against. Paths in
// params are paths on the worker's machine, marked `workerPath` (a remote
// worker confines them: confinement.ts); bulk data (image lists,
// assignments, neighbour lists) crosses as Arrow tables, never inside the JSON.
import { z } from 'zod'
import { augmentSchema, exportSchema, headSchema, labelType, marginSchema, modelSchema } from '../config/schema.js'
import { workerPath } from './confinement.js'
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
  /** Built-in methods, compared with this side's by checkHello (contract.ts). */
  methods: z.array(z.string()),
  /** Methods registered by modules named in NFHM_WORKER_EXTENSIONS. */
  extensions: z.array(z.string()),
  /** sha256 of the contract.json the worker validates calls against. */
  contract_sha256: z.string(),
  /** Processes behind this worker: 1, or the number of torchrun ranks. */
  world_size: z.number().int().positive(),
})

/** Which backbone, from which weights, through which loader plug-in (the config's `model`). */
export const modelSpec = modelSchema
export type ModelSpec = z.infer<typeof modelSpec>

const badImage = z.object({ id: z.number().int(), path: z.string(), reason: z.string() })
export type BadImage = z.infer<typeof badImage>

/** Rows of cells under `headers`, each row one group of cells per header; a cell is an image by id, its caption and frame. */
const contactSheet = z.object({
  headers: z.array(z.string()).min(1),
  rows: z
    .array(
      z.object({
        caption: z.string(),
        groups: z.array(z.array(z.object({ id: z.number().int(), caption: z.string(), mark: z.enum(['query', 'right', 'wrong', 'neighbour']) }))),
      }),
    )
    .min(1)
    .max(64),
})
export type ContactSheet = z.infer<typeof contactSheet>

export const workerMethods = {
  hello: { params: z.object({}), result: helloResult },
  echo: { params: z.record(z.string(), z.unknown()), result: z.record(z.string(), z.unknown()) },

  /** Reads a CSV/Parquet table or an image-folder tree. */
  'data.scan': {
    tables: { out: { images: 'scanned_images' } },
    params: z.object({
      table: workerPath.nullable(),
      folder: workerPath.nullable(),
      image_root: workerPath.nullable(),
      path_column: z.string(),
      label_column: z.string().nullable(),
      split_column: z.string().nullable(),
      /** eval.protocol's column: which images are queries and which gallery. */
      group_column: z.string().nullable(),
      label_type: labelType,
    }),
    result: z.object({
      rows: z.number().int(),
      source: z.string(),
      sha256: z.string(),
      /** Folders of a tree not entered: links back into the tree (loops), second paths to one folder. */
      skipped_folders: z.array(z.object({ path: z.string(), reason: z.string() })),
    }),
  },

  /** Decodes every image, lists those that cannot be read. */
  'data.check': {
    tables: { in: { images: 'image_list' } },
    params: z.object({ loader_workers: z.number().int().nonnegative() }),
    result: z.object({ checked: z.number().int(), bad: z.array(badImage) }),
  },

  /** sha256 of every image file's size and modification time: it changes when a file is changed in place. */
  'data.stat': {
    tables: { in: { images: 'image_list' } },
    params: z.object({}),
    result: z.object({ files: z.number().int(), sha256: z.string() }),
  },

  /**
   * A model source made into a spec: a trained_model.pt, run directory or
   * UNICOM release file by `path` (confined on a remote worker), or a model
   * by `name` (never looked up as a file).
   */
  'model.resolve': {
    params: z.object({ source: z.union([z.strictObject({ path: workerPath }), z.strictObject({ name: z.string() })]) }),
    result: z.object({
      kind: z.enum(['run', 'trained', 'unicom', 'name']),
      spec: modelSpec,
      /** What was loaded, from where (python/nfhm/core/sources.py): source, weights and their sha256, sizes. */
      identity: z.record(z.string(), z.unknown()),
    }),
  },

  /** What a model spec resolves to, and a hash of its weights (for cache keys). */
  'model.describe': {
    params: z.object({ model: modelSpec }),
    result: z.object({
      embedding_size: z.number().int(),
      image_size: z.number().int(),
      transform: z.string(),
      weights_sha256: z.string().nullable(),
      parameters: z.number().int(),
      /** Blocks `train.freeze` may count (null: the model cannot be partly frozen). */
      blocks: z.number().int().nullable(),
      /** The smallest `train.batch_size` it trains on: 16 with BatchNorm layers, else 1. */
      min_train_batch: z.number().int().positive(),
    }),
  },

  /** Embeds one shard of `images`; writes `out`, an `embedding_shard` file. */
  'embed.shard': {
    tables: { in: { images: 'image_list' } },
    params: z.object({
      model: modelSpec,
      out: workerPath,
      batch_size: z.number().int().positive(),
      loader_workers: z.number().int().nonnegative(),
      precision: z.enum(['fp32', 'bf16', 'fp16']),
    }),
    result: z.object({
      rows: z.number().int(),
      dim: z.number().int(),
      bad: z.array(badImage),
      seconds: z.number(),
    }),
  },

  /** The mean embedding over `shards`, written to `out` as a float32 .npy (the centred pixel baseline subtracts it). */
  'embed.mean': {
    params: z.object({ shards: z.array(workerPath).min(1), out: workerPath }),
    result: z.object({ rows: z.number().int(), dim: z.number().int() }),
  },

  /** faiss k-means over embedding shards; with `out_dir`, also pseudo_labels.arrow (`pseudo_labels`) and the centroids. */
  'cluster.kmeans': {
    tables: { out: { assignments: 'pseudo_labels' } },
    params: z.object({
      shards: z.array(workerPath),
      k: z.number().int().positive(),
      spherical: z.boolean(),
      niter: z.number().int().positive(),
      nredo: z.number().int().positive(),
      seed: z.number().int(),
      max_points_per_centroid: z.number().int().positive(),
      min_points_per_centroid: z.number().int().nonnegative(),
      gpu: z.boolean().nullable(), // null: use a GPU when faiss has one
      out_dir: workerPath.nullable(), // pseudo_labels.arrow, centroids.npy, centroids.arrow
    }),
    result: z.object({
      n: z.number().int(),
      dim: z.number().int(),
      k: z.number().int(),
      objective: anyFloat,
      seconds: z.number(),
      gpu: z.boolean(),
      trained_on: z.number().int(),
      warnings: z.array(z.string()),
    }),
  },

  /** Exact cosine k-NN over L2-normalised embeddings, nearest first. */
  'search.knn': {
    tables: { out: { neighbors: 'neighbors' } },
    params: z.object({
      query_shards: z.array(workerPath),
      gallery_shards: z.array(workerPath).nullable(), // null: the queries are the gallery
      k: z.number().int().positive(),
      exclude_self: z.boolean(),
    }),
    result: z.object({ queries: z.number().int(), gallery: z.number().int(), k: z.number().int(), seconds: z.number() }),
  },

  /**
   * Draws rows of framed, captioned thumbnails of `images` (the report's
   * nearest-neighbour grid), each row a group of cells under each header.
   * The picture comes back as a base64 PNG in the result: one picture of a
   * few dozen thumbnails, not bulk data, so the report gets it from a
   * remote worker too.
   */
  'pictures.sheet': {
    tables: { in: { images: 'image_list' } },
    params: contactSheet.extend({ size: z.number().int().min(8).max(256) }),
    result: z.object({
      png: z.string(),
      width: z.number().int(),
      height: z.number().int(),
      /** Images drawn as grey squares: gone or damaged since they were embedded. */
      unreadable: z.number().int(),
    }),
  },

  /** A t-SNE map of at most `points` of the embeddings in `shards` (a seeded sample): one row per point. */
  'pictures.map': {
    tables: { out: { points: 'map_points' } },
    params: z.object({ shards: z.array(workerPath).min(1), points: z.number().int().min(2), seed: z.number().int() }),
    result: z.object({ points: z.number().int(), of: z.number().int(), seconds: z.number() }),
  },

  /**
   * Opens a training session (model, head, margin loss, AdamW, data loader)
   * over `train`, whose labels are pseudo-labels in [0, num_classes).
   * With `resume`, restores everything from that checkpoint and reports its step.
   */
  'train.start': {
    tables: { in: { train: 'training_images' } },
    params: z.object({
      model: modelSpec,
      head: headSchema,
      margin: marginSchema,
      num_classes: z.number().int().positive(),
      batch_size: z.number().int().positive(),
      weight_decay: z.number(),
      head_lr_scale: z.number(),
      freeze: z.number().int().nonnegative(),
      embedding_lr_scale: z.number().positive(),
      precision: z.enum(['fp32', 'bf16', 'fp16']),
      augment: augmentSchema,
      seed: z.number().int(),
      loader_workers: z.number().int().nonnegative(),
      resume: workerPath.nullable(),
    }),
    result: z.object({
      steps_per_epoch: z.number().int().positive(),
      start_step: z.number().int().nonnegative(),
      embedding_size: z.number().int(),
      parameters: z.object({ backbone: z.number().int(), head: z.number().int() }),
      device: z.string(),
    }),
  },

  /**
   * Runs len(lr) optimisation steps; step i uses lr[i] = [backbone, head] and
   * beta1[i] (AdamW's first beta, which OneCycle cycles). Stops early, without
   * applying that update, at a non-finite loss.
   */
  'train.steps': {
    params: z.object({
      lr: z.array(z.tuple([z.number(), z.number()])).min(1),
      beta1: z.array(z.tuple([z.number(), z.number()])).min(1),
    }),
    result: z.object({
      first_step: z.number().int(),
      loss: z.array(anyFloat),
      grad_norm: z.array(anyFloat), // backbone gradient L2 norm (unscaled)
      grad_scale: z.number().nullable(), // fp16 GradScaler scale after the chunk
      nonfinite_step: z.number().int().nullable(),
      seconds: z.number(),
      images: z.number().int(),
    }),
  },

  /** Writes the whole session (model, head, optimiser, scaler, RNG, data position) to `path`, atomically. */
  'train.checkpoint': {
    params: z.object({ path: workerPath }),
    result: z.object({ step: z.number().int(), bytes: z.number().int() }),
  },

  /**
   * Writes trained_model.pt (UNICOM key layout) and final_centroids.npy (C x E), then beside the
   * .pt the `formats` asked for and the model card trained_model.json (`model`: the spec trained
   * under), each atomically; ends the session. An ONNX export that fails or misses parity is a
   * warning, not an error.
   */
  'train.export': {
    params: z.object({
      model_path: workerPath,
      centroids_path: workerPath,
      model: modelSpec,
      round: z.number().int().positive(),
      formats: exportSchema,
    }),
    result: z.object({
      step: z.number().int(),
      classes: z.number().int(),
      embedding_size: z.number().int(),
      /** On the worker's machine; null where not written. */
      files: z.object({ safetensors: z.string().nullable(), onnx: z.string().nullable(), card: z.string() }),
      /** ONNX Runtime's embedding against torch's on one seeded batch. */
      onnx_parity: z
        .object({ opset: z.number().int(), batch: z.number().int(), max_abs_diff: anyFloat, max_abs_output: anyFloat, seconds: z.number() })
        .nullable(),
      warnings: z.array(z.string()),
    }),
  },

  /**
   * Embedding shards of `images` as an embeddings file `out` (Parquet or
   * Arrow IPC by extension; docs/use.md): path, label when `images` has one,
   * embedding; `metadata` (plus normalized, images, embedding_size) as the
   * schema's `nfhm` JSON.
   */
  'embeddings.write': {
    tables: { in: { images: 'labelled_images' } },
    params: z.object({
      shards: z.array(workerPath).min(1),
      out: workerPath,
      normalize: z.boolean(),
      metadata: z.record(z.string(), z.unknown()),
    }),
    result: z.object({ rows: z.number().int(), dim: z.number().int(), bytes: z.number().int(), seconds: z.number() }),
  },

  /** A faiss index of an embeddings file, for cosine similarity: exact, or HNSW with its recall@10 against exact; its sidecar `<out>.rows.arrow`. */
  'index.build': {
    params: z.object({
      embeddings: workerPath,
      out: workerPath,
      hnsw: z.object({ m: z.number().int().positive(), ef_construction: z.number().int().positive(), ef_search: z.number().int().positive() }).nullable(),
      recall_sample: z.number().int().positive(),
      seed: z.number().int(),
    }),
    result: z.object({
      rows: z.number().int(),
      dim: z.number().int(),
      kind: z.enum(['flat', 'hnsw']),
      recall_at_10: z.number().nullable(),
      recall_queries: z.number().int(),
      sidecar: z.string(),
      seconds: z.number(),
    }),
  },

  /** What an index's sidecar records: what it was built from. */
  'index.describe': {
    params: z.object({ index: workerPath }),
    result: z.object({
      kind: z.enum(['flat', 'hnsw']),
      hnsw: z.object({ m: z.number().int(), ef_construction: z.number().int(), ef_search: z.number().int() }).nullable(),
      rows: z.number().int(),
      embedding_size: z.number().int(),
      /** The embeddings file's `model` record (src/use/model-source.ts): how to embed queries alike. */
      model: z.record(z.string(), z.unknown()).nullable(),
      source: z.string(),
      source_sha256: z.string(),
      recall_at_10: z.number().nullable(),
    }),
  },

  /** The k nearest indexed images of each query embedded in `query_shards`, written to `out` (.parquet or .csv) and returned. */
  'index.search': {
    tables: { in: { queries: 'image_list' }, out: { neighbours: 'search_results' } },
    params: z.object({ index: workerPath, query_shards: z.array(workerPath).min(1), k: z.number().int().positive(), out: workerPath }),
    result: z.object({ queries: z.number().int(), k: z.number().int(), seconds: z.number() }),
  },

  /** Which of these files exist on the worker's machine, and their sizes. */
  'files.stat': {
    params: z.object({ paths: z.array(workerPath) }),
    result: z.object({
      files: z.array(z.object({ path: z.string(), exists: z.boolean(), bytes: z.number().int().nullable() })),
    }),
  },

  /** Reads an Arrow IPC file on the worker's machine; its rows come back as table `table`. */
  'files.read_table': {
    params: z.object({ path: workerPath }),
    result: z.object({ rows: z.number().int() }),
  },
} satisfies MethodTable

export type WorkerMethods = typeof workerMethods

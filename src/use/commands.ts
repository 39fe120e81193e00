// The commands that put an encoder to use: `nfhm embed`, `nfhm index` and
// `nfhm search` (docs/use.md), as cli.ts registers them.
import { Command, Option } from 'commander'
import { wholeNumber } from '../run/arguments.js'
import { printJson } from '../run/json-output.js'
import { embedCommand } from './embed-command.js'
import { indexCommand } from './index-command.js'
import { searchCommand } from './search-command.js'
import { DEFAULT_CACHE_DIR, type SessionOptions } from './session.js'

interface ImageFlags extends SessionOptions {
  pathColumn: string
  labelColumn?: string
  imageRoot?: string
  overwrite?: boolean
}

/** The options of commands that embed images: where they are listed, how they are embedded. */
function embedding(command: Command): Command {
  return command
    .option('--path-column <name>', "a table's column of image paths", 'path')
    .option('--label-column <name>', "a table's column of labels (default: none; a folder's labels are its class folders)")
    .option('--image-root <dir>', "the folder a table's relative paths start from (default: the table's own)")
    .option('--skip-bad', 'go on without unreadable images (listed on stderr and in the output) instead of refusing them')
    .option('--cache-dir <dir>', 'the embedding cache shared with runs: an interrupted embed resumes from its finished shards', DEFAULT_CACHE_DIR)
    .option('--batch-size <n>', 'images per forward pass (default: embed.batch_size)', wholeNumber(1))
    .option('--loader-workers <n>', 'image-decoding processes (default: embed.loader_workers)', wholeNumber(0))
    .option('--overwrite', 'replace output files that exist (refused otherwise)')
    .addOption(new Option('--transport <kind>', 'how to start the local worker').choices(['pythonia', 'stdio']))
}

const columns = (flags: ImageFlags) => ({ pathColumn: flags.pathColumn, labelColumn: flags.labelColumn ?? null, imageRoot: flags.imageRoot ?? null })

export function useCommands(): Command[] {
  const embed = embedding(
    new Command('embed')
      .description('embed every image of a table or class-folder tree with any model into one Parquet or Arrow file (path, label, embedding)')
      .argument('<images>', 'a CSV/TSV/Parquet table of image paths, or a folder with one sub-folder per class')
      .requiredOption('--model <source>', 'a trained_model.pt, a run directory (its last trained round), a UNICOM release file, or a model name')
      .requiredOption('--out <file>', 'the embeddings file: .parquet or .arrow (Arrow IPC)')
      .option('--normalize', 'L2-normalise each embedding'),
  ).action(async (images: string, flags: ImageFlags & { model: string; out: string; normalize?: boolean }) => {
    await embedCommand(images, { ...flags, ...columns(flags), normalize: Boolean(flags.normalize), overwrite: Boolean(flags.overwrite) })
  })

  const index = new Command('index')
    .description('a faiss index for cosine similarity over an embeddings file (exact, or HNSW with its recall@10 against exact)')
    .argument('<embeddings>', 'an embeddings file written by nfhm embed')
    .requiredOption('--out <file>', 'the index: .faiss or .index; its rows (path, label) go beside it as <file>.rows.arrow')
    .addOption(new Option('--approximate <kind>', 'build an approximate index instead of the exact one').choices(['hnsw']))
    .option('--hnsw-m <n>', 'HNSW: links per node', wholeNumber(2), 32)
    .option('--ef-construction <n>', 'HNSW: candidates kept while building', wholeNumber(1), 200)
    .option('--ef-search <n>', 'HNSW: candidates kept while searching (recorded in the index)', wholeNumber(1), 128)
    .option('--recall-sample <n>', 'rows whose exact 10 nearest the approximate index is checked against', wholeNumber(1), 1000)
    .option('--seed <n>', 'seed of that sample', wholeNumber(0), 0)
    .option('--overwrite', 'replace an index that exists (refused otherwise)')
    .addOption(new Option('--transport <kind>', 'how to start the local worker').choices(['pythonia', 'stdio']))
    .action(async (embeddings: string, flags: SessionOptions & { out: string; approximate?: 'hnsw'; hnswM: number; efConstruction: number; efSearch: number; recallSample: number; seed: number; overwrite?: boolean }) => {
      const hnsw = flags.approximate === 'hnsw' ? { m: flags.hnswM, efConstruction: flags.efConstruction, efSearch: flags.efSearch } : null
      await indexCommand(embeddings, { ...flags, hnsw, overwrite: Boolean(flags.overwrite) })
    })

  const search = embedding(
    new Command('search')
      .description("the k nearest indexed images of each query, embedded by the model the index records: a table, and optionally a thumbnail page")
      .argument('<queries...>', 'image files, or one table or class-folder tree')
      .requiredOption('--index <file>', 'an index built by nfhm index')
      .option('--k <n>', 'neighbours per query', wholeNumber(1), 10)
      .requiredOption('--out <file>', 'the neighbours, one row per (query, rank): .parquet or .csv')
      .option('--page <file>', 'a page of thumbnails: .html or .md, its images linked relative to it; or .png, one picture of the grid')
      .option('--json', 'print one JSON document on stdout: {index, k, files, skipped, queries: [{query, neighbours: [{rank, path, label, score}]}]}; progress goes to stderr'),
  ).action(async (queries: string[], flags: ImageFlags & { index: string; k: number; out: string; page?: string; json?: boolean }) => {
    const summary = await searchCommand(queries, { ...flags, ...columns(flags), page: flags.page ?? null, overwrite: Boolean(flags.overwrite) })
    if (flags.json) printJson(summary)
    else for (const q of summary.queries) process.stdout.write(`${q.query}\n${q.neighbours.map((n) => `  ${n.rank}\t${n.score.toFixed(4)}\t${n.path}`).join('\n')}\n`)
  })
  return [embed, index, search]
}

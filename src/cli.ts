// The nfhm command line.
import { readFileSync } from 'node:fs'
import { Command, Option, type CommanderError } from 'commander'
import { loadConfig } from './config/load.js'
import type { Config } from './config/schema.js'
import { doctor } from './doctor.js'
import { WorkerDiedError, WorkerError } from './bridge/errors.js'
import { pythonInterpreter, repoRoot } from './bridge/python.js'
import { runFollowerNode } from './bridge/torchrun.js'
import { compareCommand } from './experiments/compare-command.js'
import { sweepCommand } from './experiments/sweep-command.js'
import { useCommands } from './use/commands.js'
import { wholeNumber } from './run/arguments.js'
import { evalRecord } from './recipe/evaluate.js'
import { runPipeline, type PipelineOptions } from './recipe/pipeline.js'
import { printSummary } from './report/summary.js'
import { EXIT, exitCodeOf } from './run/exit-codes.js'
import { humanOutput, printJson } from './run/json-output.js'
import { closeSession, openSession } from './run/run-session.js'

const { version } = JSON.parse(readFileSync(`${repoRoot}/package.json`, 'utf8')) as { version: string }

interface RunFlags {
  /** `nfhm run --until <stage>`: stop after that stage. */
  until?: PipelineOptions['until']
  set: string[]
  runDir?: string
  resume?: boolean
  restart?: boolean
  skipBad?: boolean
  k?: string
  worker?: string
  tokenFile?: string
  tlsCa?: string
  workerDir?: string
  transport?: Config['worker']['transport']
  nproc?: string
  nnodes?: string
  nodeRank?: string
  masterAddr?: string
  masterPort?: string
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

function overrides(flags: RunFlags): string[] {
  const sets = [...flags.set]
  if (flags.skipBad) sets.push('embed.skip_bad=true')
  if (flags.k) sets.push(`cluster.k=${flags.k}`, 'cluster.ratio=null')
  if (flags.transport) sets.push(`worker.transport=${flags.transport}`)
  if (flags.worker) sets.push('worker.transport=tcp', `worker.address=${flags.worker}`)
  if (flags.tokenFile) sets.push(`worker.token_file=${flags.tokenFile}`)
  if (flags.tlsCa) sets.push(`worker.tls_ca=${flags.tlsCa}`)
  if (flags.workerDir) sets.push(`worker.runs_dir=${flags.workerDir}`)
  if (flags.nproc) sets.push(`worker.distributed.nproc=${flags.nproc}`)
  if (flags.nnodes) sets.push(`worker.distributed.nnodes=${flags.nnodes}`)
  if (flags.nodeRank) sets.push(`worker.distributed.node_rank=${flags.nodeRank}`)
  if (flags.masterAddr) sets.push(`worker.distributed.master_addr=${flags.masterAddr}`)
  if (flags.masterPort) sets.push(`worker.distributed.master_port=${flags.masterPort}`)
  return sets
}

/** A lost worker: what to do about it. */
function withAdvice(e: unknown, config: Config): unknown {
  if (!(e instanceof WorkerDiedError)) return e
  if (config.worker.transport !== 'tcp') {
    // Nobody sends a local worker SIGKILL but the kernel, when memory runs out.
    const memory = e.signal === 'SIGKILL' ? 'if nobody killed it, the machine ran out of memory: lower batch_size or loader_workers; ' : ''
    return new Error(`${e.message}\n${memory}rerun this command: finished stages are kept and training continues from its last checkpoint`, { cause: e })
  }
  return new Error(
    `${e.message}\nstart the worker at ${config.worker.address} again (python -m nfhm.rpc.serve --listen ...), ` +
      'then rerun this command with --resume: finished stages are kept and training continues from its last checkpoint',
    { cause: e },
  )
}

function stageCommand(name: string, until: PipelineOptions['until'], description: string): Command {
  return new Command(name)
    .description(description)
    .argument('[config]', 'YAML config file (see configs/)')
    .option('--set <key=value>', 'override a config field, e.g. --set train.lr=1e-5 (repeatable)', collect, [])
    .option('--run-dir <dir>', 'run directory (default: runs_dir/name)')
    .option('--resume', 'continue an existing run (an error if there is none)')
    .option('--restart', "start this run's training over instead of continuing its checkpoint")
    .option('--skip-bad', 'go on without unreadable images (they are listed in the manifest)')
    .option('--worker <tcp://host:port>', 'use a running `python -m nfhm.rpc.serve` worker')
    .option('--token-file <file>', "the worker's shared token")
    .option('--tls-ca <file>', "the worker's TLS certificate or its CA (PEM), for a worker started with --tls-cert")
    .option('--worker-dir <dir>', "runs_dir on the worker's machine (sets worker.runs_dir; default: the same path as here)")
    .addOption(new Option('--transport <kind>', 'how to start a local worker').choices(['pythonia', 'stdio']))
    .option('--nproc <n>', 'run the worker as n processes under torchrun, one per GPU (sets worker.distributed.nproc)')
    .option('--nnodes <n>', 'machines taking part, each running this command with its own --node-rank')
    .option('--node-rank <r>', "this machine's rank; 0 runs the pipeline, the others lend their processes")
    .option('--master-addr <host>', "node 0's address as every node reaches it")
    .option('--master-port <port>', 'a free port on node 0 for torchrun')
    .action(async (configFile: string | undefined, flags: RunFlags & { json?: boolean }) => {
      const config = loadConfig(configFile ?? null, overrides(flags))
      const launch = config.worker.distributed
      if (launch && launch.node_rank > 0) {
        process.stderr.write(`node ${launch.node_rank} of ${launch.nnodes}: worker processes: ${launch.nproc}, following node 0 at ${launch.master_addr}:${launch.master_port}\n`)
        return runFollowerNode(pythonInterpreter(config.worker.python ?? undefined), launch)
      }
      const ctx = await openSession(config, { runDir: flags.runDir, resume: flags.resume })
      try {
        const result = await runPipeline(ctx, { until: flags.until ?? until, restart: Boolean(flags.restart) })
        if ((flags.until ?? until) === 'eval') {
          const report = await printSummary(ctx, result, humanOutput(Boolean(flags.json)))
          if (flags.json) printJson({ run_dir: ctx.run.root, report, eval: result.evaluation.map(evalRecord) })
        }
      } catch (e) {
        throw withAdvice(e, config)
      } finally {
        await closeSession(ctx)
      }
    })
}

const program = new Command()
  .name('nfhm')
  .description("Adapt a pretrained image encoder to your own images with UNICOM's cluster-discrimination recipe")
  .version(version)
  .showHelpAfterError()

/** --json's help: what the one JSON document on stdout holds. */
const jsonHelp = (document: string) => `print one JSON document on stdout: ${document}; tables and progress go to stderr`
const evalJson = jsonHelp('{run_dir, report, eval: the content of eval.json}')

program.addCommand(
  stageCommand('run', 'eval', 'embed, cluster, train and evaluate: the whole recipe')
    .addOption(new Option('--until <stage>', 'stop after this stage (embed: the training images with the starting model)').choices(['embed', 'cluster', 'train', 'eval']))
    .option('--json', evalJson),
)
for (const command of useCommands()) program.addCommand(command)
program.addCommand(
  stageCommand('cluster', 'cluster', 'k-means the embeddings into pseudo-labels').option('--k <K>', 'number of clusters (sets cluster.k)'),
)
program.addCommand(stageCommand('train', 'train', 'train the backbone and PartialFC_V2 head on the pseudo-labels'))
program.addCommand(
  stageCommand('eval', 'eval', 'evaluate the starting and trained models under eval.protocol (the test split, or the whole collection)').option('--json', evalJson),
)

interface SweepFlags extends RunFlags {
  ratio?: string
  seeds?: string
  train?: boolean
  metric?: string
  workers?: number
  json?: boolean
}

/** "300,1000" -> "[300,1000]" for a --set of a list. */
const list = (values: string) => `[${values}]`

function sweepOverrides(flags: SweepFlags): string[] {
  const sets = overrides({ ...flags, k: undefined })
  if (flags.k) sets.push(`sweep.k=${list(flags.k)}`, 'sweep.ratio=null')
  if (flags.ratio) sets.push(`sweep.ratio=${list(flags.ratio)}`, 'sweep.k=null')
  if (flags.seeds) sets.push(`sweep.seeds=${flags.seeds}`)
  if (flags.train) sets.push('sweep.train=true')
  if (flags.metric) sets.push(`sweep.metric=${flags.metric}`)
  return sets
}

program
  .command('sweep')
  .description('how many clusters? k-means (and optionally train and evaluate) at several K, with seeds; report and sweep.json')
  .argument('[config]', 'YAML config file (see configs/)')
  .option('--k <list>', 'K values, e.g. 300,1000,3000,10000 (sets sweep.k)')
  .option('--ratio <list>', 'K as fractions of the number of training images, e.g. 0.01,0.03,0.1 (sets sweep.ratio)')
  .option('--seeds <n>', 'k-means (and training) seeds per K (sets sweep.seeds)')
  .option('--train', 'train and evaluate a model per (K, seed) (sets sweep.train); else judge K by NMI/AMI/ARI only')
  .option('--metric <name>', 'what picks the best K: map@r (default with --train), recall@1, r_precision, knn@20, ..., or ami (default without), nmi, ari')
  .option('--workers <n>', 'run (K, seed) jobs on n workers: the configured one plus n-1 local stdio workers (default: sweep.workers)', wholeNumber(1))
  .option('--set <key=value>', 'override a config field (repeatable)', collect, [])
  .option('--run-dir <dir>', 'sweep directory (default: runs_dir/<name>-sweep)')
  .option('--resume', 'continue an existing sweep (an error if there is none)')
  .option('--skip-bad', 'go on without unreadable images (they are listed in the manifest)')
  .option('--worker <tcp://host:port>', 'use a running `python -m nfhm.rpc.serve` worker')
  .option('--token-file <file>', "the worker's shared token")
  .option('--tls-ca <file>', "the worker's TLS certificate or its CA (PEM), for a worker started with --tls-cert")
  .addOption(new Option('--transport <kind>', 'how to start the local worker').choices(['pythonia', 'stdio']))
  .option('--json', jsonHelp('the content of sweep.json'))
  .action(async (configFile: string | undefined, flags: SweepFlags) => {
    const config = loadConfig(configFile ?? null, sweepOverrides(flags))
    await sweepCommand(config, { runDir: flags.runDir, resume: flags.resume, workers: flags.workers, json: Boolean(flags.json) })
  })

program
  .command('compare')
  .description('evaluate run directories and checkpoints (and the baselines) under one protocol: one table with 95% intervals')
  .argument('<models...>', 'run directories (their last trained round) and/or checkpoint files (loaded as the config\'s model)')
  .requiredOption('--config <file>', 'YAML config: the data and test split, the evaluation protocol, the baselines')
  .option('--set <key=value>', 'override a config field, e.g. --set eval.baselines=[] (repeatable)', collect, [])
  .option('--run-dir <dir>', 'where compare.json and compare.md go (default: runs_dir/<name>-compare)')
  .option('--worker <tcp://host:port>', 'use a running `python -m nfhm.rpc.serve` worker')
  .option('--token-file <file>', "the worker's shared token")
  .option('--tls-ca <file>', "the worker's TLS certificate or its CA (PEM), for a worker started with --tls-cert")
  .addOption(new Option('--transport <kind>', 'how to start a local worker').choices(['pythonia', 'stdio']))
  .option('--json', jsonHelp('the content of compare.json'))
  .action(async (models: string[], flags: RunFlags & { config: string; json?: boolean }) => {
    const config = loadConfig(flags.config, overrides(flags))
    await compareCommand(config, models, { runDir: flags.runDir, json: Boolean(flags.json) })
  })

program
  .command('doctor')
  .description('check Node, Python, torch, faiss, pyarrow, the compute device and both worker transports')
  .option('--json', jsonHelp('{ok, lines: {check: value}, problems: [...]}'))
  .action(async (flags: { json?: boolean }) => {
    const report = await doctor()
    if (flags.json) printJson({ ok: report.ok, lines: Object.fromEntries(report.lines), problems: report.problems })
    else {
      const width = Math.max(...report.lines.map(([k]) => k.length))
      for (const [key, value] of report.lines) process.stdout.write(`${key.padEnd(width)}  ${value}\n`)
    }
    for (const problem of report.problems) process.stderr.write(`problem: ${problem}\n`)
    process.exitCode = report.ok ? EXIT.ok : EXIT.failure
  })

const exitCodesHelp = `
Exit codes:
  ${EXIT.ok}    done
  ${EXIT.usage}    usage: an unknown option, a missing or malformed argument
  ${EXIT.badInput}    bad input: a config field, table, image, checkpoint or run directory to fix (named); nothing was changed
  ${EXIT.worker}    the Python worker raised, died, timed out or broke the protocol
  ${EXIT.interrupted}  interrupted (SIGINT; 143 for SIGTERM)
  ${EXIT.failure}    anything else (a full disk, a loss that became non-finite, a bug)`

/** Commander's own exits: help and --version end with 0, anything else is a usage error. */
const usageExit = (e: CommanderError) => process.exit(e.exitCode === 0 ? EXIT.ok : EXIT.usage)
for (const command of [program, ...program.commands]) command.exitOverride(usageExit).addHelpText('after', exitCodesHelp)

try {
  await program.parseAsync()
} catch (e) {
  // Expected failures (bad config, bad images, a dead worker) print their own
  // message; a stack trace only helps with NFHM_DEBUG=1.
  const message =
    e instanceof WorkerError && !process.env.NFHM_DEBUG
      ? `worker method "${e.method}" raised ${e.pythonType}: ${e.pythonMessage} (NFHM_DEBUG=1 shows the Python traceback)`
      : process.env.NFHM_DEBUG
        ? (e as Error).stack
        : (e as Error).message
  process.stderr.write(`nfhm: ${message}\n`)
  // Exit now rather than when the event loop drains: a failed command must
  // not linger on a handle (a dead worker's pipe that a process it started
  // still holds open). Tracked worker processes are killed on the way out.
  process.exit(exitCodeOf(e))
}

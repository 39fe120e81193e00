// Launching the worker under torchrun: N processes per node that the
// orchestrator drives as one worker. Rank 0 answers on torchrun's stdio (its
// children inherit it); the other ranks follow rank 0 (python/nfhm/rpc/torchrun.py)
// and send their own stdout to stderr, so nothing else reaches the protocol.
import { execa } from 'execa'
import { trackChild } from './children.js'
import { workerEnv } from './python.js'

export interface TorchrunLaunch {
  nproc: number
  nnodes: number
  node_rank: number
  master_addr: string | null
  master_port: number | null
}

/**
 * The interpreter's arguments: torchrun (as `python -m torch.distributed.run`,
 * so the worker's own Python runs it), then `nfhm.rpc.serve` with `serveArgs`.
 * One node without a port is `--standalone` (a free port of torchrun's
 * choosing, so runs side by side do not collide); otherwise the static
 * rendezvous at master_addr:master_port, which makes node 0 hold rank 0.
 */
export function torchrunArgs(launch: TorchrunLaunch, serveArgs: string[]): string[] {
  const where =
    launch.nnodes === 1 && launch.master_port === null
      ? ['--standalone']
      : [
          `--nnodes=${launch.nnodes}`,
          `--node-rank=${launch.node_rank}`,
          `--master-addr=${launch.master_addr ?? '127.0.0.1'}`,
          `--master-port=${launch.master_port}`,
        ]
  return ['-m', 'torch.distributed.run', `--nproc-per-node=${launch.nproc}`, ...where, '-m', 'nfhm.rpc.serve', ...serveArgs, '--distributed']
}

/**
 * A node other than node 0 only lends its processes: they follow rank 0 on
 * node 0 and end when its orchestrator closes the worker. Their output goes
 * to this terminal.
 */
export async function runFollowerNode(python: string, launch: TorchrunLaunch): Promise<void> {
  const child = execa(python, torchrunArgs(launch, ['--stdio']), {
    env: workerEnv(),
    extendEnv: false,
    stdin: 'ignore',
    stdout: 'inherit',
    stderr: 'inherit',
    reject: false,
  })
  const untrack = child.pid ? trackChild(child.pid) : () => {}
  const result = await child
  untrack()
  if (result.exitCode !== 0) {
    throw new Error(`node ${launch.node_rank}'s worker processes ended with ${result.exitCode ?? result.signal} (see their output above)`)
  }
}

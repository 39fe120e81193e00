// The nfhm command line.
import { readFileSync } from 'node:fs'
import { Command } from 'commander'
import { doctor } from './doctor.js'
import { repoRoot } from './bridge/python.js'

const { version } = JSON.parse(readFileSync(`${repoRoot}/package.json`, 'utf8')) as { version: string }

const program = new Command()
  .name('nfhm')
  .description("Adapt a pretrained image encoder to your own images with UNICOM's cluster-discrimination recipe")
  .version(version)

program
  .command('doctor')
  .description('check Node, Python, torch, faiss, pyarrow, the compute device and both worker transports')
  .action(async () => {
    const report = await doctor()
    const width = Math.max(...report.lines.map(([k]) => k.length))
    for (const [key, value] of report.lines) process.stdout.write(`${key.padEnd(width)}  ${value}\n`)
    for (const problem of report.problems) process.stderr.write(`problem: ${problem}\n`)
    process.exitCode = report.ok ? 0 : 1
  })

await program.parseAsync()

// Jobs over several workers (src/experiments/worker-pool.ts): every job runs once, on
// whichever worker is free; after a failure nothing new starts, the running
// jobs finish, and the first error is thrown.
import { describe, expect, it } from 'vitest'
import { runJobs, type PoolWorker } from '../src/experiments/worker-pool.js'

const pool = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `worker ${i + 1}` }) as PoolWorker)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('runJobs', () => {
  it('runs each job once, results in job order, on every worker at once', async () => {
    const ran: Array<[string, number]> = []
    let running = 0
    let most = 0
    const results = await runJobs(pool(2), [100, 5, 5, 5], async (w, ms) => {
      running++
      most = Math.max(most, running)
      await sleep(ms)
      ran.push([w.name, ms])
      running--
      return ms * 2
    })
    expect(results).toEqual([200, 10, 10, 10])
    expect(most).toBe(2)
    // The long first job keeps worker 1 busy; worker 2 takes the short ones meanwhile.
    expect(ran.filter(([w]) => w === 'worker 2').map(([, ms]) => ms)).toEqual([5, 5, 5])
  })

  it('is strictly sequential on one worker', async () => {
    const order: string[] = []
    await runJobs(pool(1), ['a', 'b', 'c'], async (_, job) => {
      order.push(`start ${job}`)
      await sleep(2)
      order.push(`end ${job}`)
    })
    expect(order).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c'])
  })

  it('starts nothing new after a failure, lets running jobs finish, then throws the first error', async () => {
    const finished: number[] = []
    const started: number[] = []
    const run = runJobs(pool(2), [0, 1, 2, 3, 4], async (_, job) => {
      started.push(job)
      if (job === 1) throw new Error('job 1 failed')
      await sleep(job === 0 ? 20 : 1)
      finished.push(job)
    })
    await expect(run).rejects.toThrow('job 1 failed')
    expect(started).toEqual([0, 1])
    expect(finished).toEqual([0])
  })
})

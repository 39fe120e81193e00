// Worker processes never outlive the orchestrator: on exit, SIGINT or SIGTERM
// every child still registered here is killed. (The worker also watches its
// parent, which covers a SIGKILL of this process.)

const live = new Set<number>()
let installed = false

function killAll(): void {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  live.clear()
}

function install(): void {
  if (installed) return
  installed = true
  process.on('exit', killAll)
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.on(signal, () => {
      killAll()
      process.exit(code)
    })
  }
}

export function trackChild(pid: number): () => void {
  install()
  live.add(pid)
  return () => live.delete(pid)
}

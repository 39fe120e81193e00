// What can go wrong with a worker call, each with the facts a user needs.

/**
 * The Python method raised; `pythonTraceback` is the full Python traceback.
 * `badInput`: the worker tagged the exception as the user's to fix (their
 * table, checkpoint or setting, named in the message).
 */
export class WorkerError extends Error {
  override name = 'WorkerError'
  constructor(
    readonly method: string,
    readonly pythonType: string,
    readonly pythonMessage: string,
    readonly pythonTraceback: string,
    readonly badInput = false,
  ) {
    super(`worker method "${method}" raised ${pythonType}: ${pythonMessage}\n${pythonTraceback}`)
  }
}

/** The worker process (or the connection to it) is gone. */
export class WorkerDiedError extends Error {
  override name = 'WorkerDiedError'
  constructor(
    readonly how: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly stderrTail: string,
  ) {
    const tail = stderrTail.trim() ? `\nlast lines of the worker's stderr:\n${stderrTail.trimEnd()}` : ''
    super(`the Python worker ${how}${tail}`)
  }
}

export class WorkerTimeoutError extends Error {
  override name = 'WorkerTimeoutError'
  constructor(
    readonly method: string,
    readonly timeoutMs: number,
  ) {
    super(`worker method "${method}" did not answer within ${timeoutMs} ms; the worker was stopped`)
  }
}

/** A message that breaks the protocol or its method's schema. */
export class ProtocolError extends Error {
  override name = 'ProtocolError'
}

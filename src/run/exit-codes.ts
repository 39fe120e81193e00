// What `nfhm` exits with, so that a script can tell a typo from a lost worker
// (README, "Exit codes"). src/cli.ts maps every error to one of these
// (exitCodeOf); commander's usage errors it maps itself.
import { ProtocolError, WorkerDiedError, WorkerError, WorkerTimeoutError } from '../bridge/errors.js'

export const EXIT = {
  ok: 0,
  /** Anything not named below: a bug, or a failure with no better class. */
  failure: 1,
  /** The command line itself: an unknown option, a missing argument. */
  usage: 2,
  /** A file, field or argument the user can fix (config, images, model file, output path); nothing was changed. */
  badInput: 3,
  /** The Python worker raised, died, timed out or broke the protocol. */
  worker: 4,
  /** SIGINT or SIGTERM: 128 + the signal number, as shells report it. */
  interrupted: 130,
} as const

/** Input the user can fix, named in the message; thrown before anything is written. */
export class BadInputError extends Error {
  override name = 'BadInputError'
}

/**
 * The exit code for an error that ended a command. An error wrapped with
 * advice (`new Error(..., { cause })`) keeps the code of its cause. A Python
 * exception is bad input only when the worker tagged it as the user's to fix
 * (python/nfhm/core/user_input.py); any other is a worker failure.
 */
export function exitCodeOf(e: unknown): number {
  if (e instanceof BadInputError) return EXIT.badInput
  if (e instanceof WorkerError) return e.badInput ? EXIT.badInput : EXIT.worker
  if (e instanceof WorkerDiedError || e instanceof WorkerTimeoutError || e instanceof ProtocolError) return EXIT.worker
  if (e instanceof Error && e.cause !== undefined) return exitCodeOf(e.cause)
  return EXIT.failure
}

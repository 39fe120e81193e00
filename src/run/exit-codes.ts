// What `nfhm` exits with, so that a script can tell a typo from a lost worker
// (README, "Exit codes"). src/cli.ts maps every error to one of these.
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

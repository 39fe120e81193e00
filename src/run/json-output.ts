// `--json`: a command prints one JSON document on stdout, so that a script can
// pipe it to a parser; everything meant for a person goes to stderr instead.

/** Where a command's human output (tables, "report: ..." lines) goes: stdout, or stderr under --json. */
export function humanOutput(json: boolean): NodeJS.WritableStream {
  return json ? process.stderr : process.stdout
}

/** The command's one JSON document on stdout, serialised as its file on disk is (writeJsonAtomic). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}

// The manifest's time of each stage: when it started and finished, and its
// seconds, under names such as "embed.round-1" and "eval".
import { saveManifest, type Context } from './context.js'

/**
 * Runs `stage` and records its time as manifest stage `name`. A stage whose
 * output is kept under a key (`keyOf` its result) and was reused, its key the
 * recorded one, keeps the record of the session that made it: a rerun that
 * finds training done must not report that training took a second.
 */
export async function timeStage<T>(ctx: Context, name: string, stage: () => Promise<T>, keyOf?: (result: T) => string): Promise<T> {
  const started = new Date()
  const result = await stage()
  const finished = new Date()
  const key = keyOf?.(result)
  if (key === undefined || ctx.manifest.stages[name]?.key !== key) {
    ctx.manifest.stages[name] = {
      ...(key === undefined ? {} : { key }),
      started: started.toISOString(),
      finished: finished.toISOString(),
      seconds: (finished.getTime() - started.getTime()) / 1000,
    }
    saveManifest(ctx)
  }
  return result
}

// YAML config files and `--set key.path=value` overrides, validated by the
// schema; every error names the file, the field, the value and what is allowed.
import { readFileSync } from 'node:fs'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import type { z } from 'zod'
import { configSchema, PRESETS, type Config } from './schema.js'
import { BadInputError } from '../run/exit-codes.js'

export class ConfigError extends BadInputError {
  override name = 'ConfigError'
}

type Raw = Record<string, unknown>

// Unknown tags and directives leave plain strings, which the schema then
// judges; YAML's own warnings would only add noise on stderr.
const YAML_OPTIONS = { logLevel: 'error' } as const

function isObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Applies `a.b.c=value` (value parsed as YAML: numbers, booleans, null, lists). */
export function applyOverride(raw: Raw, assignment: string): void {
  const eq = assignment.indexOf('=')
  if (eq <= 0) throw new ConfigError(`--set ${assignment}: expected key.path=value`)
  const path = assignment.slice(0, eq).split('.')
  let value: unknown
  try {
    value = parseYaml(assignment.slice(eq + 1), YAML_OPTIONS)
  } catch (e) {
    throw new ConfigError(`--set ${assignment}: the value is not valid YAML: ${(e as Error).message}`)
  }
  let node = raw
  for (const key of path.slice(0, -1)) {
    if (!Object.hasOwn(node, key) || !isObject(node[key])) setOwn(node, key, {})
    node = node[key] as Raw
  }
  setOwn(node, path.at(-1)!, value)
}

/** node[key] = value as an own field, even for "__proto__": a --set never reaches Object.prototype. */
function setOwn(node: Raw, key: string, value: unknown): void {
  Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true })
}

/** A value as an error shows it: JSON, shortened; YAML aliases can make a value contain itself. */
function show(value: unknown): string {
  let text: string
  try {
    text = JSON.stringify(value) ?? String(value)
  } catch {
    text = '(a value JSON cannot show, e.g. one that contains itself)'
  }
  return text.length > 200 ? `${text.slice(0, 200)}...` : text
}

function applyPreset(raw: Raw): void {
  const data = raw.data
  if (!isObject(data) || typeof data.preset !== 'string' || !(data.preset in PRESETS)) return
  const preset = PRESETS[data.preset as keyof typeof PRESETS]
  data.path_column ??= preset.path_column
  data.label_column ??= preset.label_column
}

function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let node = raw
  for (const key of path) node = isObject(node) || Array.isArray(node) ? (node as Raw)[key as string] : undefined
  return node
}

function closest(word: string, options: string[]): string | undefined {
  const distance = (a: string, b: string) => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i)
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]!
      row[0] = i
      for (let j = 1; j <= b.length; j++) {
        const next = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
        prev = row[j]!
        row[j] = next
      }
    }
    return row[b.length]!
  }
  const best = options.map((o) => [o, distance(word, o)] as const).sort((x, y) => x[1] - y[1])[0]
  return best && best[1] <= Math.max(2, word.length / 3) ? best[0] : undefined
}

/** Strips default/nullable/optional wrappers to reach the object schema. */
function unwrap(schema: z.ZodType): z.ZodType {
  const inner = (schema as unknown as { def: { innerType?: z.ZodType } }).def.innerType
  return inner ? unwrap(inner) : schema
}

function shapeOf(schema: z.ZodType): Record<string, z.ZodType> {
  return (unwrap(schema) as unknown as { shape?: Record<string, z.ZodType> }).shape ?? {}
}

/** The field names allowed at `path` of the config. */
function allowedKeys(path: PropertyKey[]): string[] {
  let schema: z.ZodType | undefined = configSchema
  for (const key of path) schema = schema && shapeOf(schema)[key as string]
  return schema ? Object.keys(shapeOf(schema)) : []
}

export function describeConfigIssues(error: z.ZodError, raw: unknown, source: string): string {
  const lines = error.issues.map((issue) => {
    const field = issue.path.join('.') || '(top level)'
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeys(issue.path)
      return issue.keys
        .map((key) => {
          const guess = closest(key, allowed)
          const name = [...issue.path, key].join('.')
          return `${name}: unknown field${guess ? ` (did you mean "${guess}"?)` : ''}; allowed: ${allowed.join(', ')}`
        })
        .join('\n  ')
    }
    const value = valueAt(raw, issue.path)
    const shown = value === undefined ? '(missing)' : show(value)
    const allowed = 'values' in issue && Array.isArray(issue.values) ? `; allowed: ${issue.values.join(', ')}` : ''
    return `${field} = ${shown}: ${issue.message}${allowed}`
  })
  return `invalid config in ${source}:\n  ${lines.join('\n  ')}`
}

/** Reads, overrides and validates a config; `file` null means defaults plus overrides. */
export function loadConfig(file: string | null, overrides: string[] = []): Config {
  let raw: unknown = {}
  if (file !== null) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (e) {
      throw new ConfigError(`cannot read config ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
    try {
      raw = parseYaml(text, YAML_OPTIONS) ?? {}
    } catch (e) {
      const where = e instanceof YAMLParseError && e.linePos ? ` (line ${e.linePos[0].line})` : ''
      throw new ConfigError(`config ${file} is not valid YAML${where}: ${(e as Error).message.split('\n')[0]}`)
    }
    if (!isObject(raw)) throw new ConfigError(`config ${file} must be a mapping of fields, not ${JSON.stringify(raw)}`)
  }
  const tree = raw as Raw
  for (const assignment of overrides) applyOverride(tree, assignment)
  applyPreset(tree)
  const parsed = configSchema.safeParse(tree)
  if (!parsed.success) {
    const source = [file ?? '(no file)', ...overrides.map((o) => `--set ${o}`)].join(' ')
    throw new ConfigError(describeConfigIssues(parsed.error, tree, source))
  }
  return parsed.data
}

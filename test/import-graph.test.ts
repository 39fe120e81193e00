// The direction of imports among src/'s folders, read from the sources:
// cli -> experiments, use -> recipe -> run / bridge / eval / report / schedule /
// config. A module imports from its own layer or a lower one, never a higher
// one; and no module reaches itself through its imports. Type-only imports
// count: a type from a higher layer ties the folders together all the same.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, posix, relative, resolve, sep } from 'node:path'
import { describe, expect, test } from 'vitest'
import { repoRoot } from '../src/bridge/python.js'

const SRC = join(repoRoot, 'src')

/** Each folder of src/ by layer (higher imports lower); '' is src/ itself (cli.ts, doctor.ts). */
const LAYERS: Record<string, number> = {
  '': 3,
  experiments: 2,
  use: 2,
  recipe: 1,
  run: 0,
  bridge: 0,
  eval: 0,
  report: 0,
  schedule: 0,
  config: 0,
}

const KEYWORDS_BEFORE_REGEX = new Set(['return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'void', 'throw', 'new', 'delete', 'yield', 'await'])

/**
 * `code` with its comments blanked out, each quoted string replaced by its
 * index in `strings` ('0', '1', ...) and each template literal and regular
 * expression emptied, so that nothing in them reads as code or a comment.
 */
function mask(code: string): { text: string; strings: string[] } {
  const strings: string[] = []
  let out = ''
  let i = 0
  // The last character before `i` that is not white space or a comment: whether a '/' starts a regex.
  let before = ''
  let word = ''
  const skipQuoted = (from: number, quote: string): number => {
    let j = from + 1
    while (j < code.length && code[j] !== quote && code[j] !== '\n') j += code[j] === '\\' ? 2 : 1
    return j + 1
  }
  const skipTemplate = (from: number): number => {
    let j = from + 1
    while (j < code.length && code[j] !== '`') {
      if (code[j] === '\\') j += 2
      else if (code[j] === '$' && code[j + 1] === '{') j = skipExpression(j + 2)
      else j += 1
    }
    return j + 1
  }
  // Up to the '}' that closes a template's `${`: strings and templates inside it are passed over.
  const skipExpression = (from: number): number => {
    let depth = 1
    let j = from
    while (j < code.length && depth > 0) {
      const c = code[j]!
      if (c === "'" || c === '"') j = skipQuoted(j, c)
      else if (c === '`') j = skipTemplate(j)
      else {
        if (c === '{') depth++
        if (c === '}') depth--
        j++
      }
    }
    return j
  }
  const skipRegex = (from: number): number => {
    let j = from + 1
    let inClass = false
    while (j < code.length && code[j] !== '\n') {
      const c = code[j]!
      if (c === '\\') j += 2
      else if (c === '[') (inClass = true), j++
      else if (c === ']') (inClass = false), j++
      else if (c === '/' && !inClass) return j + 1
      else j++
    }
    return j
  }
  while (i < code.length) {
    const c = code[i]!
    const next = code[i + 1]
    if (c === '/' && next === '/') {
      const end = code.indexOf('\n', i)
      i = end < 0 ? code.length : end
    } else if (c === '/' && next === '*') {
      const end = code.indexOf('*/', i + 2)
      const stop = end < 0 ? code.length : end + 2
      out += code.slice(i, stop).replace(/[^\n]/g, ' ')
      i = stop
    } else if (c === "'" || c === '"') {
      const end = skipQuoted(i, c)
      out += `${c}${strings.length}${c}`
      strings.push(code.slice(i + 1, end - 1))
      i = end
      before = c
    } else if (c === '`') {
      i = skipTemplate(i)
      out += '``'
      before = c
    } else if (c === '/' && (before === '' || '(,=:[!&|?{};+-*%<>~^'.includes(before) || KEYWORDS_BEFORE_REGEX.has(word))) {
      i = skipRegex(i)
      out += '/(?:)/'
      before = '/'
    } else {
      out += c
      i++
      if (/\s/.test(c)) continue
      word = /[\w$]/.test(c) ? (/[\w$]/.test(before) ? word + c : c) : ''
      before = c
    }
  }
  return { text: out, strings }
}

/** What a module imports: the specifiers of its import and export-from statements, and of import('...'). */
function importSpecifiers(code: string): string[] {
  const { text, strings } = mask(code)
  const found: string[] = []
  // import x from '…', import { a, type B } from '…', import type …, import '…', export { a } from '…', export * as n from '…'
  for (const m of text.matchAll(/(?<![\w$.])(?:import|export)\s+(?:type\s+)?(?:[\w$*{}\s,]+?\s*from\s*)?(['"])(\d+)\1/g)) found.push(strings[Number(m[2])]!)
  for (const m of text.matchAll(/(?<![\w$.])import\s*\(\s*(['"])(\d+)\1\s*\)/g)) found.push(strings[Number(m[2])]!)
  const computed = /(?<![\w$.])import\s*\(\s*(?!['"]\d+['"]\s*\))/.exec(text)
  if (computed) throw new Error(`an import() whose path is not a plain string cannot be checked: ${text.slice(computed.index, computed.index + 60)}`)
  return found
}

/** The module a relative specifier names (NodeNext: './x.js' is ./x.ts), or undefined for a package or a node: module. */
function resolveSpecifier(from: string, specifier: string, exists: (path: string) => boolean): string {
  const base = resolve(dirname(from), specifier)
  const candidates = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, join(base, 'index.ts')]
  const hit = candidates.find(exists)
  if (!hit) throw new Error(`${from}: cannot resolve ${specifier}`)
  return hit
}

/** Module (path relative to the source root, '/'-separated) -> the modules under that root it imports. */
type ImportGraph = Map<string, string[]>

function importGraph(root: string, files: Map<string, string>): ImportGraph {
  const graph: ImportGraph = new Map()
  const key = (path: string) => relative(root, path).split(sep).join(posix.sep)
  for (const [path, code] of files) {
    const targets = importSpecifiers(code)
      .filter((s) => s.startsWith('.'))
      .map((s) => resolveSpecifier(path, s, (p) => files.has(p)))
    graph.set(key(path), [...new Set(targets.map(key))])
  }
  return graph
}

const folderOf = (module: string) => (module.includes('/') ? module.slice(0, module.indexOf('/')) : '')

/** Every import from a lower layer to a higher one, as "from -> to". */
function layerViolations(graph: ImportGraph, layers: Record<string, number> = LAYERS): string[] {
  const layer = (module: string) => {
    const l = layers[folderOf(module)]
    if (l === undefined) throw new Error(`src/${folderOf(module)}/ has no layer: add it to LAYERS in test/import-graph.test.ts`)
    return l
  }
  const bad: string[] = []
  for (const [from, targets] of graph) {
    const own = layer(from)
    for (const to of targets) if (layer(to) > own) bad.push(`${from} -> ${to}`)
  }
  return bad
}

/** Each import cycle once, as the modules along it (the first repeated at the end). */
function importCycles(graph: ImportGraph): string[][] {
  const cycles: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (module: string) => {
    state.set(module, 'open')
    path.push(module)
    for (const next of graph.get(module) ?? []) {
      if (state.get(next) === 'open') cycles.push([...path.slice(path.indexOf(next)), next])
      else if (!state.has(next)) visit(next)
    }
    path.pop()
    state.set(module, 'done')
  }
  for (const module of [...graph.keys()].sort()) if (!state.has(module)) visit(module)
  return cycles
}

function sourceFiles(root: string): Map<string, string> {
  const names = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.ts'))
  return new Map(names.map((name) => [join(root, name), readFileSync(join(root, name), 'utf8')]))
}

describe('import graph of src/', () => {
  const graph = importGraph(SRC, sourceFiles(SRC))

  test('reads every module and what it imports', () => {
    expect(graph.size).toBeGreaterThan(40)
    expect(graph.get('cli.ts')).toEqual(expect.arrayContaining(['recipe/pipeline.ts', 'run/run-session.ts', 'experiments/sweep-command.ts']))
    for (const targets of graph.values()) for (const to of targets) expect(existsSync(join(SRC, to))).toBe(true)
  })

  test('imports point one way: cli -> experiments -> recipe -> run / bridge / eval / report / schedule / config', () => {
    expect(layerViolations(graph)).toEqual([])
  })

  test('no module imports itself through others', () => {
    expect(importCycles(graph)).toEqual([])
  })
})

describe('the checks themselves', () => {
  const fake = (files: Record<string, string>) =>
    importGraph('/src', new Map(Object.entries(files).map(([name, code]) => [`/src/${name}`, code])))

  test('finds static, type-only, export-from, multi-line and dynamic imports, and none in comments or strings', () => {
    const code = [
      "import { a } from './a.js'",
      "import type { B } from '../b.js'",
      'import {',
      '  c,',
      '  type D,',
      "} from './c.js'",
      "export { e } from './e.js'",
      "export * from './f.js'",
      "import './side-effect.js'",
      "const g = await import('./g.js')",
      "type H = typeof import('./h.js')",
      "import { readFileSync } from 'node:fs'",
      "// import { x } from './commented.js'",
      "/* import('./block.js') */",
      "const s = \"import { y } from './string.js'\"",
      "const t = `${'x'} import('./template.js')`",
      "const r = /'/.test(s) // a quote in a regex",
      "import { z } from './after-regex.js'",
    ].join('\n')
    expect(importSpecifiers(code)).toEqual([
      './a.js',
      '../b.js',
      './c.js',
      './e.js',
      './f.js',
      './side-effect.js',
      'node:fs',
      './after-regex.js',
      './g.js',
      './h.js',
    ])
  })

  test('an import from a higher layer is reported, whether a value or a type', () => {
    const graph = fake({
      'run/context.ts': "import type { Clustering } from '../recipe/cluster.js'",
      'recipe/cluster.ts': "import { runSweep } from '../experiments/sweep.js'",
      'report/table.ts': "const m = await import('../recipe/cluster.js')",
      'bridge/worker.ts': "export { x } from '../experiments/sweep.js'",
      'experiments/sweep.ts': "import { c } from '../recipe/cluster.js'\nimport { w } from '../bridge/worker.js'",
    })
    expect(layerViolations(graph).sort()).toEqual([
      'bridge/worker.ts -> experiments/sweep.ts',
      'recipe/cluster.ts -> experiments/sweep.ts',
      'report/table.ts -> recipe/cluster.ts',
      'run/context.ts -> recipe/cluster.ts',
    ])
  })

  test('a folder without a layer, an unresolved import and a cycle are reported', () => {
    expect(() => layerViolations(fake({ 'stages/x.ts': '' }))).toThrow(/src\/stages\/ has no layer/)
    expect(() => fake({ 'run/a.ts': "import { b } from './missing.js'" })).toThrow(/cannot resolve \.\/missing\.js/)
    const cyclic = fake({
      'run/a.ts': "import { b } from './b.js'",
      'run/b.ts': "import type { C } from './c.js'",
      'run/c.ts': "import { a } from './a.js'",
      'run/d.ts': "import { a } from './a.js'",
    })
    expect(importCycles(cyclic)).toEqual([['run/a.ts', 'run/b.ts', 'run/c.ts', 'run/a.ts']])
  })
})

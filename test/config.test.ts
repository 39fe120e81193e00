import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { stringify } from 'yaml'
import { describe, expect, test } from 'vitest'
import { ConfigError, loadConfig } from '../src/config/load.js'

const dir = mkdtempSync(join(tmpdir(), 'nfhm-config-'))
function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

describe('config', () => {
  test("defaults are the group's recipe", () => {
    const c = loadConfig(null, ['data.table=images.csv'])
    expect(c.cluster.k).toBe(3000)
    expect(c.train.margin).toMatchObject({ s: 32, m1: 1, m2: 0.3, m3: 0 })
    expect(c.train).toMatchObject({ lr: 1e-4, head_lr_scale: 5, pct_start: 0.1, epochs: 10, batch_size: 128, weight_decay: 0 })
    expect(c.train.head.plugin).toBe('nfhm.core.partial_fc:PartialFC_V2')
    expect(c.model.name).toBe('ViT-L/14@336px')
  })

  test.each(readdirSync('configs'))('the shipped configs/%s is valid', (name) => {
    expect(() => loadConfig(join('configs', name))).not.toThrow()
  })

  test('--set overrides parse YAML values at any depth', () => {
    const c = loadConfig(file('a.yaml', 'data: {table: a.csv}\ntrain: {lr: 0.001}\n'), [
      'train.lr=2e-5',
      'eval.recall_at=[1, 5]',
      'cluster.gpu=null',
      'train.margin.m2=0.5',
    ])
    expect(c.train.lr).toBe(2e-5)
    expect(c.eval.recall_at).toEqual([1, 5])
    expect(c.cluster.gpu).toBeNull()
    expect(c.train.margin.m2).toBe(0.5)
  })

  test('the vlm4bio preset names its columns unless they are set', () => {
    expect(loadConfig(null, ['data.table=m.csv', 'data.preset=vlm4bio']).data).toMatchObject({
      path_column: 'fileNameAsDelivered',
      label_column: 'scientificName',
    })
    expect(loadConfig(null, ['data.table=m.csv', 'data.preset=vlm4bio', 'data.path_column=file']).data.path_column).toBe('file')
  })

  test.each([
    ['an unknown key, with a suggestion and the allowed keys', 'data: {table: a.csv}\ntrain: {epocs: 3}\n', /train\.epocs: unknown field \(did you mean "epochs"\?\); allowed: epochs, batch_size/],
    ['a wrong type, with the value', 'data: {table: a.csv}\ntrain: {lr: fast}\n', /train\.lr = "fast": .*expected number/],
    ['an out-of-range value', 'data: {table: a.csv}\ncluster: {k: 0}\n', /cluster\.k = 0: K must be at least 2/],
    ['an enum, with what is allowed', 'data: {table: a.csv}\nworker: {transport: grpc}\n', /worker\.transport = "grpc": .*allowed: pythonia, stdio, tcp/],
    ['no input', 'name: x\n', /data = \(missing\)/],
    ['both a table and a folder', 'data: {table: a.csv, folder: imgs}\n', /set exactly one of data\.table and data\.folder/],
    ['a bad plug-in spec', 'data: {table: a.csv}\nmodel: {loader: unicom.load}\n', /model\.loader = "unicom\.load": expected "module:attribute"/],
  ])('an error names the file and the field: %s', (_, text, pattern) => {
    const path = file('bad.yaml', text)
    expect(() => loadConfig(path)).toThrow(pattern)
    expect(() => loadConfig(path)).toThrow(new RegExp(`invalid config in ${path.replace(/[.]/g, '\\.')}`))
  })

  test('YAML syntax errors and missing files name the file', () => {
    expect(() => loadConfig(file('syntax.yaml', 'data: [unclosed\n'))).toThrow(/syntax\.yaml is not valid YAML/)
    expect(() => loadConfig(join(dir, 'nope.yaml'))).toThrow(/cannot read config .*nope\.yaml: ENOENT/)
    expect(() => loadConfig(null, ['train.lr'])).toThrow(/--set train\.lr: expected key\.path=value/)
  })
})

describe('config loader on arbitrary input', () => {
  test('a --set never reaches Object.prototype', () => {
    for (const set of ['__proto__.polluted=1', 'constructor.prototype.polluted=1', 'data.__proto__.polluted=1', '__proto__=1']) {
      expect(() => loadConfig(null, ['data.table=a.csv', set]), set).toThrow(/unknown field/)
      expect(({} as Record<string, unknown>).polluted, set).toBeUndefined()
    }
  })

  test('a YAML alias that makes a value contain itself is a config error, not a crash', () => {
    expect(() => loadConfig(file('cycle.yaml', 'data: {table: a.csv}\neval: {recall_at: &x [*x]}\n'))).toThrow(
      /eval\.recall_at\.0 = \(a value JSON cannot show, e\.g\. one that contains itself\)/,
    )
  })

  // Field names of the schema, so generated configs get past the first level.
  const fields = ['name', 'runs_dir', 'rounds', 'data', 'model', 'embed', 'cluster', 'train', 'eval', 'worker', 'table', 'folder', 'split', 'by', 'k', 'ratio', 'lr', 'epochs', 'margin', 'augment', 'crop_scale', 'recall_at', 'transport', 'address']
  const key = fc.oneof(fc.constantFrom(...fields, '__proto__', 'constructor', 'prototype', ''), fc.string({ maxLength: 8 }))
  const value = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 1 }), fc.dictionary(key, tie('node'), { maxKeys: 4 }), fc.array(tie('node'), { maxLength: 3 })),
  })).node
  const snippets = fc.constantFrom('a: &x [*x]', 'b: &y {c: *y}', '<<: *nowhere', 'x: !!binary aGk=', 'y: !custom 3', '%YAML 1.1\n---', 'k: [unclosed', '? [a, b]\n: c', 'data: {table: a.csv}')
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.dictionary(key, value, { maxKeys: 6 }).map((tree) => stringify(tree)),
    fc.array(fc.oneof(snippets, fc.string({ maxLength: 20 })), { maxLength: 5 }).map((parts) => parts.join('\n')),
  )
  const assignment = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.tuple(fc.array(key, { minLength: 1, maxLength: 3 }), fc.oneof(fc.string({ maxLength: 12 }), snippets)).map(([path, v]) => `${path.join('.')}=${v}`),
  )

  test('any file text and --set strings give a Config or a ConfigError: no other error, no hang', () => {
    const path = join(dir, 'fuzz.yaml')
    fc.assert(
      fc.property(text, fc.array(assignment, { maxLength: 3 }), (yaml, sets) => {
        writeFileSync(path, yaml)
        try {
          expect(loadConfig(path, sets).data).toBeDefined()
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e
        }
        // Cleaned up before failing, so that shrinking finds the input that did it.
        const polluted = Object.keys(Object.prototype)
        for (const name of polluted) delete (Object.prototype as Record<string, unknown>)[name]
        expect(polluted).toEqual([])
      }),
      { numRuns: 1500, interruptAfterTimeLimit: 8000 },
    )
  })
})

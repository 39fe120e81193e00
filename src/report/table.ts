// Tables of results: aligned plain text for the terminal and GitHub-flavoured
// Markdown for report.md, from the same column definitions.

export type Align = 'left' | 'right'

/** A column showing `row[key]`; `format` gets that value with the key's own type. */
export type Column<R extends object> = {
  [K in keyof R & string]: {
    key: K
    title: string
    /** Default: right when every value in the column is a number, left otherwise. */
    align?: Align
    /** Default: '' for null and undefined, String(value) otherwise. */
    format?: (value: R[K], row: R) => string
  }
}[keyof R & string]

interface Cells {
  titles: string[]
  body: string[][]
  aligns: Align[]
  widths: number[]
}

/** Length in code points, so that '±' or '—' count as one column. */
const width = (text: string): number => [...text].length

function pad(text: string, to: number, align: Align): string {
  const fill = ' '.repeat(Math.max(0, to - width(text)))
  return align === 'right' ? fill + text : text + fill
}

function cells<R extends object>(columns: readonly Column<R>[], rows: readonly R[], clean: (text: string) => string): Cells {
  if (columns.length === 0) throw new Error('a table needs at least one column')
  const titles = columns.map((c) => clean(c.title))
  const body = rows.map((row) =>
    columns.map((c) => {
      const value = row[c.key]
      // The mapped Column type ties `format` to its key's value type; TypeScript cannot follow that through the union.
      const format = c.format as ((value: unknown, row: R) => string) | undefined
      return clean(format ? format(value, row) : value == null ? '' : String(value))
    }),
  )
  const aligns = columns.map(
    (c): Align => c.align ?? (rows.length > 0 && rows.every((row) => typeof row[c.key] === 'number') ? 'right' : 'left'),
  )
  const widths = columns.map((_, j) => Math.max(width(titles[j]!), ...body.map((line) => width(line[j]!))))
  return { titles, body, aligns, widths }
}

/** Columns two spaces apart under a rule of dashes; no trailing spaces or final newline. */
export function textTable<R extends object>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const { titles, body, aligns, widths } = cells(columns, rows, (text) => text.replace(/\s*\n\s*/g, ' '))
  const line = (texts: readonly string[]): string =>
    texts.map((text, j) => pad(text, widths[j]!, aligns[j]!)).join('  ').trimEnd()
  return [line(titles), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n')
}

/** A GFM table, padded so the source reads as a table too; `|` in cells is escaped and newlines become <br>. */
export function markdownTable<R extends object>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const { titles, body, aligns, widths } = cells(columns, rows, (text) =>
    text.replaceAll('|', '\\|').replace(/\r?\n/g, '<br>'),
  )
  // A delimiter cell needs a dash beside its colon.
  const ruleWidths = widths.map((w) => Math.max(w, 3))
  const line = (texts: readonly string[]): string =>
    `| ${texts.map((text, j) => pad(text, ruleWidths[j]!, aligns[j]!)).join(' | ')} |`
  const rule = ruleWidths.map((w, j) => (aligns[j] === 'right' ? `${'-'.repeat(w - 1)}:` : `:${'-'.repeat(w - 1)}`))
  return [line(titles), line(rule), ...body.map(line)].join('\n')
}

/** `x` to `digits` decimals, without the sign of a value that rounds to zero ("-0.000"). */
function fixed(x: number, digits: number): string {
  const text = x.toFixed(digits)
  return Number(text) === 0 ? text.replace('-', '') : text
}

/** "0.812 [0.801, 0.823]"; just the estimate when the interval has a non-finite bound. */
export function formatInterval(estimate: number, lower: number, upper: number, digits = 3): string {
  const point = fixed(estimate, digits)
  return Number.isFinite(lower) && Number.isFinite(upper) ? `${point} [${fixed(lower, digits)}, ${fixed(upper, digits)}]` : point
}

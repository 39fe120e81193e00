// `nfhm search --page`: the neighbours as a grid of thumbnails a person opens
// in a browser (HTML) or a Markdown viewer, each image linked by its path
// relative to the page.
import { dirname, relative, sep } from 'node:path'

/** One query's neighbours, nearest first. */
export interface QueryNeighbours {
  query: string
  neighbours: Array<{ rank: number; path: string; label: string | null; score: number }>
}

const THUMB = 128

function link(page: string, image: string): string {
  return encodeURI(relative(dirname(page), image).split(sep).join('/'))
}

const escapeHtml = (text: string) => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!)
const escapeMd = (text: string) => text.replace(/[|\\[\]*_`<>]/g, (c) => `\\${c}`)
/** A path's file name. */
export const base = (path: string) => path.split(/[\\/]/).pop()!

/** A neighbour's caption: rank, label (or file name) and score. */
export function caption(n: QueryNeighbours['neighbours'][number]): string {
  return `${n.rank}. ${n.label ?? base(n.path)} ${n.score.toFixed(3)}`
}

export function searchPage(page: string, index: string, results: QueryNeighbours[]): string {
  const k = Math.max(0, ...results.map((r) => r.neighbours.length))
  const title = `Nearest neighbours in ${base(index)}`
  if (page.toLowerCase().endsWith('.md')) {
    const cell = (path: string, text: string) => `![${escapeMd(base(path))}](${link(page, path)})<br>${escapeMd(text)}`
    return [
      `# ${escapeMd(title)}`,
      '',
      `| query | ${Array.from({ length: k }, (_, i) => i + 1).join(' | ')} |`,
      `|---|${'---|'.repeat(k)}`,
      ...results.map((r) => `| ${[cell(r.query, base(r.query)), ...r.neighbours.map((n) => cell(n.path, caption(n)))].join(' | ')} |`),
      '',
    ].join('\n')
  }
  const cell = (path: string, text: string) =>
    `<td><img src="${escapeHtml(link(page, path))}" width="${THUMB}" height="${THUMB}" alt="${escapeHtml(base(path))}"><br>${escapeHtml(text)}</td>`
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8">',
    `<title>${escapeHtml(title)}</title>`,
    '<style>body{font-family:sans-serif} td{text-align:center;vertical-align:top;font-size:12px} td:first-child{border-right:3px solid #0072b2} img{object-fit:contain;background:#eee}</style>',
    '</head><body>',
    `<h1>${escapeHtml(title)}</h1>`,
    '<table>',
    `<tr><th>query</th>${Array.from({ length: k }, (_, i) => `<th>${i + 1}</th>`).join('')}</tr>`,
    ...results.map((r) => `<tr>${cell(r.query, base(r.query))}${r.neighbours.map((n) => cell(n.path, caption(n))).join('')}</tr>`),
    '</table>',
    '</body></html>',
    '',
  ].join('\n')
}

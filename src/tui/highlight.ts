/**
 * SQL coloured for reading: keywords, strings, numbers and comments get colours so a reviewer's eye
 * lands on the verbs. The pieces are PostgreSQL's own tokens (libpg_query's scanner), not a pattern
 * of ours: a highlighter that disagrees with the server about where a string or a comment ends
 * (`E'\''`, dollar quotes, nested comments, `--` inside a string) paints a statement that runs as
 * a string or a comment, and the reviewer's eye skips it. A text the scanner cannot read, or a
 * process where it is not loaded, gets no colour at all rather than a guess.
 */
import {Chalk, type ChalkInstance} from 'chalk'
import {parserReady, scanTokens, type ScanToken} from '../sql/parser.js'

/** Keywords that change or remove things, in a louder colour than the rest. */
const DANGER = new Set(['delete', 'drop', 'truncate', 'alter', 'grant', 'revoke', 'update', 'insert', 'create', 'copy', 'execute', 'do', 'merge', 'call'])

const COMMENTS = new Set(['SQL_COMMENT', 'C_COMMENT'])
const STRINGS = new Set(['SCONST', 'USCONST', 'BCONST', 'XCONST'])
const NUMBERS = new Set(['ICONST', 'FCONST'])

export type PieceKind = 'comment' | 'string' | 'number' | 'keyword' | 'danger' | 'plain'

/** A run of text of one kind, already made printable by the caller's `show`. */
export interface SqlPiece {
  text: string
  kind: PieceKind
}

function kindOf(t: ScanToken): PieceKind {
  if (COMMENTS.has(t.tokenName)) return 'comment'
  if (STRINGS.has(t.tokenName)) return 'string'
  if (NUMBERS.has(t.tokenName)) return 'number'
  if (t.keyword) return DANGER.has(t.text.toLowerCase()) ? 'danger' : 'keyword'
  return 'plain'
}

/** The server's tokens, or undefined when the scanner is not loaded or refuses the text. */
function tokensOf(sql: string): ScanToken[] | undefined {
  if (!parserReady()) return undefined
  try {
    return scanTokens(sql)
  } catch {
    return undefined
  }
}

/**
 * `sql` cut into pieces at PostgreSQL's token boundaries, each kept whole and passed through `show`
 * (which makes it printable); what lies between tokens (blanks) is plain.
 */
export function sqlPieces(sql: string, show: (s: string) => string = (s) => s): SqlPiece[] {
  const tokens = tokensOf(sql)
  if (!tokens) return [{text: show(sql), kind: 'plain'}]
  // The scanner's offsets count UTF-8 bytes.
  const bytes = Buffer.from(sql, 'utf8')
  const out: SqlPiece[] = []
  const push = (from: number, to: number, kind: PieceKind) => {
    if (to > from) out.push({text: show(bytes.subarray(from, to).toString('utf8')), kind})
  }
  let at = 0
  for (const t of tokens) {
    if (t.start < at || t.end < t.start || t.end > bytes.length) return [{text: show(sql), kind: 'plain'}]
    push(at, t.start, 'plain')
    push(t.start, t.end, kindOf(t))
    at = t.end
  }
  push(at, bytes.length, 'plain')
  return out
}

export function paintPiece(p: SqlPiece, chalk: ChalkInstance): string {
  switch (p.kind) {
    case 'comment':
      return chalk.gray(p.text)
    case 'string':
      return chalk.green(p.text)
    case 'number':
      return chalk.cyan(p.text)
    case 'danger':
      return chalk.red.bold(p.text)
    case 'keyword':
      return chalk.blue.bold(p.text)
    default:
      return p.text
  }
}

export function highlightSql(sql: string, chalk: ChalkInstance = new Chalk()): string {
  return sqlPieces(sql)
    .map((p) => paintPiece(p, chalk))
    .join('')
}

/**
 * Columns a character may take on a terminal, counted high: anything from U+1100 on as two (wide
 * scripts, emoji), a tab as eight. Lines cut by this are never wider than the terminal, so the
 * number of rows they take is known.
 */
function columns(ch: string): number {
  if (ch === '\t') return 8
  return ch.codePointAt(0)! >= 0x1100 ? 2 : 1
}

/**
 * The pieces as rows of at most `width` columns: cut at each newline, and where a row is full, after
 * its last blank (a word longer than the row is cut where the row ends).
 */
export function wrapPieces<K extends string = PieceKind>(pieces: readonly {text: string; kind: K}[], width: number): {text: string; kind: K}[][] {
  type Cell = {ch: string; kind: K; w: number}
  const rows: Cell[][] = [[]]
  let used = 0
  for (const p of pieces) {
    for (const ch of p.text) {
      if (ch === '\n') {
        rows.push([])
        used = 0
        continue
      }
      const w = columns(ch)
      const row = rows.at(-1)!
      if (used + w > width && row.length > 0) {
        const blank = row.findLastIndex((c) => c.ch === ' ')
        const carried = blank > 0 && blank < row.length - 1 ? row.splice(blank + 1) : []
        rows.push(carried)
        used = carried.reduce((n, c) => n + c.w, 0)
      }
      rows.at(-1)!.push({ch, kind: p.kind, w})
      used += w
    }
  }
  return rows.map((row) => {
    const out: {text: string; kind: K}[] = []
    for (const c of row) {
      const last = out.at(-1)
      if (last && last.kind === c.kind) last.text += c.ch
      else out.push({text: c.ch, kind: c.kind})
    }
    return out
  })
}

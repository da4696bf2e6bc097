/**
 * The form of a statement that `sessions search` also matches its text against: what PostgreSQL
 * reads, not how the client spelled it. The server skips comments and runs of blanks and line
 * breaks, and reads `U&"n\006ftes"` and `E'/etc/p\x61sswd'` as the names and string
 * they decode to; matched against the recorded text alone, `drop/**\/table`, `drop\n\ttable` or an
 * escaped name hid a statement from the search that should have found it.
 *
 * Pure: tokens come from PostgreSQL's own scanner (src/sql/parser.ts), and every character of the
 * form keeps the range of the recorded text it came from, so a match highlights the original.
 */
import {scanTokens, type ScanToken} from '../sql/parser.js'

export interface ReadForm {
  /** Tokens as the server reads them, comments left out, one space where the text had any gap. */
  text: string
  /** For each character of `text`, the [start, end) of the recorded text it stands for. */
  from: number[]
  to: number[]
}

const COMMENTS = new Set(['SQL_COMMENT', 'C_COMMENT'])

/** Undefined when the scanner cannot read the text (an unterminated quote or comment): search the recorded text only. */
export function readForm(sql: string): ReadForm | undefined {
  let tokens: ScanToken[]
  try {
    tokens = scanTokens(sql)
  } catch {
    return undefined
  }
  const form: ReadForm = {text: '', from: [], to: []}
  const put = (s: string, start: number, end: number) => {
    for (const ch of s) {
      form.text += ch
      // A character outside the BMP is two code units of `text`: both map to the token.
      for (let k = 0; k < ch.length; k++) {
        form.from.push(start)
        form.to.push(end)
      }
    }
  }
  let at = 0
  let lastText: string | undefined
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    if (COMMENTS.has(t.tokenName)) continue
    // A gap (blanks, line breaks, a comment) reads as one space; none around a qualifying dot.
    if (lastText !== undefined && t.start > at && t.text !== '.' && lastText !== '.') put(' ', at, t.start)
    let escape = '\\'
    const next = tokens[i + 1]
    const after = tokens[i + 2]
    if (/^u&["']/i.test(t.text) && next?.text.toUpperCase() === 'UESCAPE' && after?.tokenName === 'SCONST') {
      escape = decodeToken(after.text, '\\') ?? '\\'
      i += 2
    }
    // Composed (NFC), as a search text typed on a keyboard is: é written as e and a combining accent reads as é.
    put(shownToken(t.text, escape).normalize('NFC'), t.start, tokens[i]!.end)
    at = tokens[i]!.end
    lastText = t.text
  }
  return form
}

/**
 * A token as the server reads it: a quoted name or a string decoded, and still in its quotes, so
 * `select "drop" "table"` (a column and its alias) or `'drop' 'table'` never reads as the words
 * `drop table`; any other token as written.
 */
function shownToken(text: string, uescape: string): string {
  const decoded = decodeToken(text, uescape)
  if (decoded === undefined) return text
  return /^(u&)?"/i.test(text) ? `"${decoded}"` : `'${decoded}'`
}

/** The name or string a quoted token stands for; undefined for any other token (kept as written). */
export function decodeToken(text: string, uescape = '\\'): string | undefined {
  if (text.startsWith('"')) return text.slice(1, -1).replace(/""/g, '"')
  const unicode = /^u&(["'])/i.exec(text)
  if (unicode) {
    const body = unicode[1] === '"' ? text.slice(3, -1).replace(/""/g, '"') : stringBody(text.slice(2), false)
    return body === undefined ? undefined : unicodeEscapes(body, uescape)
  }
  if (text.startsWith("'")) return stringBody(text, false)
  if (/^[eE]'/.test(text)) return stringBody(text.slice(1), true)
  if (/^[nN]'/.test(text)) return stringBody(text.slice(1), false)
  return undefined
}

/** The content of `'…'` segments (continued across line breaks, as the scanner joins them), with `''` and, for E'…', backslash escapes read. */
function stringBody(text: string, backslashes: boolean): string | undefined {
  let out = ''
  let i = 0
  while (i < text.length) {
    if (text[i] !== "'") {
      // Between continued segments only blanks and line breaks.
      if (/\s/.test(text[i]!)) {
        i++
        continue
      }
      return undefined
    }
    i++
    for (;;) {
      if (i >= text.length) return undefined
      const c = text[i]!
      if (c === "'") {
        if (text[i + 1] === "'") {
          out += "'"
          i += 2
          continue
        }
        i++
        break
      }
      if (backslashes && c === '\\') {
        const [s, n] = backslashEscape(text, i)
        out += s
        i += n
        continue
      }
      out += c
      i++
    }
  }
  return out
}

/** One backslash escape of an E'…' string at `i`: what it reads as, and how many characters it takes. */
function backslashEscape(text: string, i: number): [string, number] {
  const rest = text.slice(i + 1)
  const simple: Record<string, string> = {b: '\b', f: '\f', n: '\n', r: '\r', t: '\t'}
  const c = rest[0] ?? ''
  if (c in simple) return [simple[c]!, 2]
  let m = /^[0-7]{1,3}/.exec(rest)
  if (m) return [String.fromCharCode(parseInt(m[0], 8) & 0xff), 1 + m[0].length]
  m = /^x([0-9a-fA-F]{1,2})/.exec(rest)
  if (m) return [String.fromCharCode(parseInt(m[1]!, 16)), 1 + m[0].length]
  m = /^u([0-9a-fA-F]{4})/.exec(rest) ?? /^U([0-9a-fA-F]{8})/.exec(rest)
  if (m) return [codePoint(parseInt(m[1]!, 16)), 1 + m[0].length]
  return [c, 2]
}

/** `\hhhh`, `\+hhhhhh` (hex digits) and a doubled escape character of U&"…" and U&'…'. */
function unicodeEscapes(body: string, esc: string): string {
  let out = ''
  for (let i = 0; i < body.length; ) {
    if (body[i] !== esc) {
      out += body[i]
      i++
      continue
    }
    if (body[i + 1] === esc) {
      out += esc
      i += 2
      continue
    }
    const m = /^\+([0-9a-fA-F]{6})/.exec(body.slice(i + 1)) ?? /^([0-9a-fA-F]{4})/.exec(body.slice(i + 1))
    if (!m) {
      out += body[i]
      i++
      continue
    }
    out += codePoint(parseInt(m[1]!, 16))
    i += 1 + m[0].length
  }
  return out
}

function codePoint(n: number): string {
  return n <= 0x10ffff ? String.fromCodePoint(n) : '\ufffd'
}

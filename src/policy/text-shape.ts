/**
 * A statement text's shape: the text with its literal constants taken out, so that texts which
 * differ only in constants (every `-M simple` pgbench statement, every ORM that inlines values)
 * can share one analysis. The scan is deliberately narrow: it reads plain ASCII text the way the
 * server's lexer does with `standard_conforming_strings = on`, and gives up (returns undefined)
 * on anything else (dollar quotes, E'' / B'' / X'' / N'' / U&'' strings, U&"" identifiers,
 * comments, exponents, hex or underscored numbers, non-ASCII, NUL), leaving such texts to the
 * full parse. Whether an analysis may be shared is decided elsewhere (`parser.ts`,
 * `watchLiterals`): the shape only says which tokens are literals.
 */

/** How the server reads a session's text, from what it acknowledged (ParameterStatus). */
export interface TextReading {
  readonly standardConformingStrings: true
  readonly clientEncoding: 'UTF8'
}

const READING: TextReading = Object.freeze({standardConformingStrings: true, clientEncoding: 'UTF8'})

/**
 * The reading under which shapes are valid, or undefined when the session's acknowledged settings
 * are anything else (or unknown): then every text takes the full parse.
 */
export function readingOf(parameters: ReadonlyMap<string, string> | undefined): TextReading | undefined {
  if (!parameters) return undefined
  if (parameters.get('standard_conforming_strings') !== 'on') return undefined
  const enc = parameters.get('client_encoding')
  // The server reports `UTF8` itself; the spelled-out forms are normalized only when it is not that.
  if (enc === undefined || (enc !== 'UTF8' && enc.toUpperCase().replace(/[-_]/g, '') !== 'UTF8')) return undefined
  return READING
}

export interface TextShape {
  /** The text with every literal replaced by NUL and a class letter (NUL never occurs in a shaped text). */
  readonly key: string
  /** Start and end (exclusive) offsets of each literal, in pairs. The text is ASCII: characters are bytes. */
  readonly literals: readonly number[]
}

const INT4_MAX = '2147483647'
const INT8_MAX = '9223372036854775807'

/**
 * The class a numeric token's constant takes in the parse tree: an int4 `Integer`, or a `Float`
 * that the server then types int8 or numeric. Texts share a shape only when their numbers do.
 */
function numberClass(text: string, start: number, end: number): string {
  for (let i = start; i < end; i++) if (text.charCodeAt(i) === 0x2e) return 'n'
  let s = start
  while (s < end - 1 && text.charCodeAt(s) === 0x30) s++
  // Fewer digits than INT4_MAX always fit: no copy of them (most constants).
  if (end - s < INT4_MAX.length) return 'i'
  const digits = text.slice(s, end)
  const fits = (max: string): boolean => digits.length < max.length || (digits.length === max.length && digits <= max)
  return fits(INT4_MAX) ? 'i' : fits(INT8_MAX) ? 'l' : 'n'
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39
const isIdentStart = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f
const isIdentChar = (c: number): boolean => isIdentStart(c) || isDigit(c) || c === 0x24

let lastText: string | undefined
let lastShape: TextShape | undefined

/**
 * The shape of `text`, or undefined when the text holds anything the scan does not read exactly as
 * the server. The last answer is kept: the guardrails, masking and the recording each ask for the
 * shape of the same statement text in turn. (Shapes are never modified, so one may be handed out twice.)
 */
export function scanShape(text: string): TextShape | undefined {
  if (text !== lastText) {
    lastShape = scan(text)
    lastText = text
  }
  return lastShape
}

function scan(text: string): TextShape | undefined {
  const n = text.length
  const literals: number[] = []
  let key = ''
  let copied = 0
  let i = 0
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 0 || c >= 0x80) return undefined
    if (isIdentStart(c)) {
      const start = i
      while (i < n && isIdentChar(text.charCodeAt(i))) i++
      const next = text.charCodeAt(i)
      // E'…', B'…', X'…', N'…' and typed literals written without a space: other lexer rules.
      if (next === 0x27) return undefined
      // U&'…' and U&"…": Unicode escapes.
      if (next === 0x26 && i - start === 1 && (c === 0x55 || c === 0x75)) {
        const after = text.charCodeAt(i + 1)
        if (after === 0x27 || after === 0x22) return undefined
      }
      continue
    }
    if (c === 0x22) {
      // A quoted identifier: copied as it is, `""` inside.
      const end = afterQuoted(text, i, 0x22)
      if (end === undefined) return undefined
      i = end
      continue
    }
    if (c === 0x27) {
      // A standard string: `''` is the only escape (backslashes are plain characters under standard_conforming_strings).
      const start = i
      const end = afterQuoted(text, i, 0x27)
      if (end === undefined) return undefined
      i = end
      key += text.slice(copied, start) + '\0s'
      copied = i
      literals.push(start, i)
      continue
    }
    if (isDigit(c) || (c === 0x2e && isDigit(text.charCodeAt(i + 1)))) {
      const start = i
      while (i < n && isDigit(text.charCodeAt(i))) i++
      if (text.charCodeAt(i) === 0x2e && c !== 0x2e) i++
      else if (c === 0x2e) i++
      while (i < n && isDigit(text.charCodeAt(i))) i++
      // Exponents, 0x/0o/0b, 1_000, trailing junk, `1..2`: left to the parser.
      const next = text.charCodeAt(i)
      if (isIdentChar(next) || next === 0x2e) return undefined
      key += text.slice(copied, start) + '\0' + numberClass(text, start, i)
      copied = i
      literals.push(start, i)
      continue
    }
    if (c === 0x24) {
      // `$n` parameters are part of the shape; anything else with `$` is a dollar quote.
      i++
      if (!isDigit(text.charCodeAt(i))) return undefined
      while (i < n && isDigit(text.charCodeAt(i))) i++
      if (isIdentChar(text.charCodeAt(i))) return undefined
      continue
    }
    // Comments (which nest, and may hold quotes) are left to the parser.
    if ((c === 0x2d && text.charCodeAt(i + 1) === 0x2d) || (c === 0x2f && text.charCodeAt(i + 1) === 0x2a)) return undefined
    i++
  }
  if (literals.length === 0) return {key: text, literals}
  return {key: key + text.slice(copied), literals}
}

/**
 * Maps an offset in the text a shape was taken from (`from`) to the same place in another text of
 * the same shape (`to`). Offsets never fall inside a literal.
 */
export function mapOffset(from: readonly number[], to: readonly number[], pos: number): number {
  let delta = 0
  for (let k = 1; k < from.length; k += 2) {
    if (from[k]! > pos) break
    delta = to[k]! - from[k]!
  }
  return pos + delta
}

/**
 * Where the quoted text opening at `open` ends (just past its closing quote), a doubled quote
 * standing for one; undefined when it does not end, or holds a NUL or non-ASCII (the full parse
 * then reads it).
 */
function afterQuoted(text: string, open: number, quote: number): number | undefined {
  const n = text.length
  let i = open + 1
  for (;;) {
    if (i >= n) return undefined
    const q = text.charCodeAt(i)
    if (q === 0 || q >= 0x80) return undefined
    i++
    if (q === quote) {
      if (text.charCodeAt(i) === quote) i++
      else return i
    }
  }
}

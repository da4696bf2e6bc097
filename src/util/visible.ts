/**
 * Text a client chose (SQL, parameters, error messages, column names, application_name, names and
 * groups from the IdP) is shown to auditors and reviewers on terminals and in reports. Some
 * characters are not text to them but instructions: ESC and CSI start terminal sequences (move the
 * cursor, erase a line, OSC 8 links, OSC 52 clipboard writes), `\r` goes back over what was
 * printed, bidi controls reorder what follows, and zero-width or filler characters hide letters.
 * A reviewer must see what will run, so each such character is written as a visible escape
 * (`\x1b`, `\u202e`) instead.
 *
 * What is kept is named (an allow-list by Unicode category): every character except controls
 * (Cc), format characters (Cf: bidi, zero-width, soft hyphen, tags), line and paragraph
 * separators, lone surrogates, and the few letters and marks that draw nothing.
 */
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\u034F\u115F\u1160\u17B4\u17B5\u180B-\u180F\u3164\uFE00-\uFE0F\uFFA0\u{E0100}-\u{E01EF}]/gu

/** Same pattern with newlines and tabs left alone, for text shown over several lines (SQL in a timeline): neither goes back over text. */
const HIDDEN_BUT_LINES = /(?![\n\t])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\u034F\u115F\u1160\u17B4\u17B5\u180B-\u180F\u3164\uFE00-\uFE0F\uFFA0\u{E0100}-\u{E01EF}]/gu

function escapeOne(ch: string): string {
  const cp = ch.codePointAt(0)!
  if (cp <= 0xff) return `\\x${cp.toString(16).padStart(2, '0')}`
  if (cp <= 0xffff) return `\\u${cp.toString(16).padStart(4, '0')}`
  return `\\u{${cp.toString(16)}}`
}

/**
 * `s` with every character a terminal or a renderer would act on, or that draws nothing, written
 * as a visible escape. With `lines`, `\n` and tabs stay (the caller splits and indents the
 * lines); `\r` and the rest are still escaped.
 */
export function visible(s: string, opts: {lines?: boolean} = {}): string {
  return s.replace(opts.lines ? HIDDEN_BUT_LINES : HIDDEN, escapeOne)
}

/** `visible` applied to every string inside a JSON-like value (arrays and plain objects), keys included. */
export function visibleDeep<T>(value: T): T {
  if (typeof value === 'string') return visible(value) as T
  if (Array.isArray(value)) return value.map((v) => visibleDeep(v)) as T
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[visible(k)] = visibleDeep(v)
    return out as T
  }
  return value
}

/**
 * `JSON.stringify(value, undefined, 2)` with the characters `visible` escapes written as `\u` and four hex digits
 * escapes: the same document to a parser, and nothing a terminal acts on or hides when a person
 * reads `--json` output (JSON.stringify leaves C1 controls, bidi and zero-width characters raw).
 */
export function jsonText(value: unknown): string {
  const text = JSON.stringify(value, undefined, 2) ?? 'null'
  // Outside strings JSON holds only ASCII punctuation, digits, letters and blanks: every match is inside a string.
  return text.replace(HIDDEN_BUT_LINES, (ch) => [...Array(ch.length).keys()].map((i) => `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`).join(''))
}

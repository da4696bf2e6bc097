/**
 * The value scanner: finds sensitive values inside any text, whatever column it came from. It is
 * the backstop for what lineage cannot see, so it runs on every text value and must be cheap for
 * the common case of text that holds nothing: one pass over the characters (`textNeeds`, or
 * `bufferNeeds` on the raw bytes) tells which detectors could match at all, and only those run.
 */
import type {MaskingCategory} from './categories.js'

export interface Finding {
  category: MaskingCategory
  /** Which detector fired, for audit records. */
  detector: string
  start: number
  end: number
}

export function luhnValid(digits: string): boolean {
  if (!/^\d{12,19}$/.test(digits)) return false
  let sum = 0
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48
    if (i % 2 === 1) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
  }
  return sum % 10 === 0
}

/** ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97 = 1. */
export function ibanValid(candidate: string): boolean {
  const s = candidate.replace(/[\s-]/g, '').toUpperCase()
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(s)) return false
  const rearranged = s.slice(4) + s.slice(0, 4)
  let rem = 0
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0)
    const value = code >= 65 ? String(code - 55) : ch
    for (const digit of value) rem = (rem * 10 + (digit.charCodeAt(0) - 48)) % 97
  }
  return rem === 1
}

function base64UrlJson(part: string): boolean {
  try {
    const text = Buffer.from(part, 'base64url').toString('utf8')
    return text.startsWith('{') && typeof JSON.parse(text) === 'object'
  } catch {
    return false
  }
}

/** A JWS compact serialisation whose header and payload decode to JSON objects. */
export function isJwt(candidate: string): boolean {
  const parts = candidate.split('.')
  return parts.length === 3 && parts[0]!.startsWith('eyJ') && base64UrlJson(parts[0]!) && base64UrlJson(parts[1]!)
}

/**
 * What a text must contain for a detector to have any chance, as bits: each detector names the
 * one it needs, and `needsOf` finds which a text has in one pass, so a detector whose need is
 * missing is never run. Each need is implied by the detector's pattern (a literal it contains, or
 * a shape every match has), so skipping it never changes what the scanner finds.
 */
const NEED = {
  /** `@`: every e-mail. */
  at: 1,
  /**
   * A run of nine digits, consecutive ones at most one space or `-` apart, with at least two `-`
   * in it: every SSN (`\d{3}-\d{2}-\d{4}`).
   */
  ssnRun: 2,
  /**
   * A run of twelve such digits counted from one that no letter, digit or `_` precedes: every card
   * number (`\b\d(?:[ -]?\d){11,18}`).
   */
  cardRun: 4,
  /** Two capital letters and two digits (`[A-Z]{2}\d{2}`): every IBAN. */
  ibanHead: 8,
  /** A detector's literal prefix: keys and tokens. */
  prefix: 16,
  /**
   * A run of ten digits, consecutive ones at most two characters of ` .-()/` apart, or of eight
   * such digits right after a `+`, counted from a place no letter precedes: every phone number
   * (`PHONE` below; each of its shapes needs a non-word character before it).
   */
  phoneRun: 32,
} as const

interface Detector {
  name: string
  category: MaskingCategory
  pattern: RegExp
  /** The `NEED` bit a text must have for this pattern to match. */
  needs: number
  /** For `NEED.prefix`: the literals one of which every match contains. */
  prefixes?: string[]
  /** A check the pattern alone cannot express (checksums); receives the matched text. */
  valid?: (match: string) => boolean
}

const AWS_PREFIXES = ['AKIA', 'ASIA', 'AGPA', 'AIDA', 'AROA', 'ANPA', 'ANVA', 'AIPA']

/**
 * Phone numbers in free text, in the three shapes that ordinary numbers, dates, times, amounts,
 * versions, IP addresses and identifiers do not take:
 * - international: `+`, then 8 to 15 digits in groups (`+1-555-052-3041`, `+44 20 7946 0958`);
 * - North American: 3-3-4 digits with separators (`555-123-4567`, `(555) 123-4567`, `555.123.4567`);
 * - national with a trunk 0: `0` and 9 or 10 more digits in two or three groups (`020 7946 0958`,
 *   `030/1234 5678`, `06-12345678`).
 * Not a digit run without separators (an order number), not 4-2-2 (a date), nor anything inside a
 * longer run of digits, dots or dashes.
 */
const PHONE = new RegExp(
  [
    String.raw`(?<![\w+])\+\d(?:[ .()/-]{0,2}\d){7,14}(?![\d])`,
    String.raw`(?<![\w.+/-])(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w/-]|\.\d)`,
    String.raw`(?<![\w.+/-])0\d{1,4}[ /-]\d{2,8}(?:[ -]\d{2,8})?(?![\w/-]|\.\d)`,
  ].join('|'),
  'g',
)

function phoneValid(match: string): boolean {
  const digits = match.replace(/\D/g, '').length
  if (match.startsWith('+')) return digits >= 8 && digits <= 15
  if (match.startsWith('0')) return digits >= 10 && digits <= 11
  return digits === 10
}

const DETECTORS: Detector[] = [
  {name: 'private-key', category: 'secret', needs: NEED.prefix, prefixes: ['BEGIN'], pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)/g},
  {name: 'jwt', category: 'token', needs: NEED.prefix, prefixes: ['eyJ'], pattern: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g, valid: isJwt},
  {name: 'aws-access-key', category: 'secret', needs: NEED.prefix, prefixes: AWS_PREFIXES, pattern: new RegExp(`\\b(?:${AWS_PREFIXES.join('|')})[A-Z0-9]{16}\\b`, 'g')},
  {name: 'github-token', category: 'secret', needs: NEED.prefix, prefixes: ['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_', 'github_pat_'], pattern: /\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b/g},
  {name: 'slack-token', category: 'secret', needs: NEED.prefix, prefixes: ['xox'], pattern: /\bxox[abposr]-[A-Za-z0-9-]{10,}/g},
  {name: 'stripe-key', category: 'secret', needs: NEED.prefix, prefixes: ['_live_', '_test_'], pattern: /\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b/g},
  {name: 'google-api-key', category: 'secret', needs: NEED.prefix, prefixes: ['AIza'], pattern: /\bAIza[0-9A-Za-z_-]{35}\b/g},
  {name: 'email', category: 'email', needs: NEED.at, pattern: /[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g},
  {name: 'iban', category: 'bank_account', needs: NEED.ibanHead, pattern: /\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?\b/g, valid: ibanValid},
  {name: 'card-luhn', category: 'card', needs: NEED.cardRun, pattern: /\b\d(?:[ -]?\d){11,18}\b/g, valid: (m) => luhnValid(m.replace(/[ -]/g, ''))},
  {name: 'ssn', category: 'national_id', needs: NEED.ssnRun, pattern: /\b\d{3}-\d{2}-\d{4}\b/g, valid: (m) => !m.startsWith('000') && !m.startsWith('666') && m.slice(4, 6) !== '00' && m.slice(7) !== '0000'},
  {name: 'phone', category: 'phone', needs: NEED.phoneRun, pattern: PHONE, valid: phoneValid},
]

/** The prefixes by their first character, as character codes; `PREFIX_START` rejects most positions with one lookup. */
const PREFIXES_BY_START: number[][][] = Array.from({length: 128}, () => [])
const PREFIX_START = new Uint8Array(256)
for (const p of DETECTORS.flatMap((d) => d.prefixes ?? [])) {
  PREFIXES_BY_START[p.charCodeAt(0)]!.push([...p].map((ch) => ch.charCodeAt(0)))
  PREFIX_START[p.charCodeAt(0)] = 1
}

/** Below this length no text is scanned (the shortest value the detectors are meant for is longer). */
const MIN_LENGTH = 9

const isDigit = (c: number) => c >= 48 && c <= 57
/** What may stand between the digits of a phone number: space . - ( ) / */
const PHONE_SEPARATOR = new Uint8Array(256)
for (const ch of ' .-()/') PHONE_SEPARATOR[ch.charCodeAt(0)] = 1
const isUpper = (c: number) => c >= 65 && c <= 90
const isLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95

/**
 * Bytes that only end whatever run is open: not a digit, a phone separator, `+`, nor `@` (1), and
 * of those the first bytes of prefixes (2), which also start a prefix check. Most bytes of most
 * values are such: letters, other punctuation, every byte of a non-ASCII character.
 */
const PLAIN = new Uint8Array(256).fill(1)
for (let c = 48; c <= 57; c++) PLAIN[c] = 0
for (const ch of ' .-()/+@') PLAIN[ch.charCodeAt(0)] = 0
for (let c = 0; c < 256; c++) if (PREFIX_START[c] === 1) PLAIN[c] = 2

/**
 * Inside a word that starts with a lower-case letter or `_`: digits and lower-case letters (1),
 * and those of them that start a prefix (2); 0 ends the word (an upper-case letter too, which may
 * start an IBAN). A word starts at a byte of class 1 or 2 that is not a digit.
 */
const WORD = new Uint8Array(256)
for (let c = 48; c <= 57; c++) WORD[c] = 1
for (let c = 97; c <= 122; c++) WORD[c] = PREFIX_START[c] === 1 ? 2 : 1
WORD[95] = PREFIX_START[95] === 1 ? 2 : 1
/** Two bytes at once (the first in the low byte): 1 when both are of `WORD`'s class 1. */
const WORD_PAIR = new Uint8Array(65536)
for (let x = 0; x < 65536; x++) WORD_PAIR[x] = WORD[x & 255] === 1 && WORD[x >> 8] === 1 ? 1 : 0

/**
 * The `NEED` bits of a text, from its UTF-8 bytes. Every need is made of ASCII characters, and
 * any other character breaks a digit run, so the bytes tell the same as the text would.
 */
function needsOf(b: Uint8Array, start: number, end: number): number {
  let needs = 0
  let run = 0
  let dashes = 0
  let gap = false
  // The card run: digits of the run counted from the earliest one a `\b` may precede (the
  // pattern starts with one): the run's first digit unless a letter precedes it, else the first
  // digit after a separator inside the run.
  let card = 0
  let cardCounting = false
  // The phone run: digits and the separators between them. Its digits are counted from the
  // earliest place a phone number may start: the run's start unless a letter precedes it, else its
  // first space or parenthesis (every pattern needs a non-word character before its first digit).
  let phone = 0
  let phoneSep = 0
  let inRun = false
  let counting = false
  let plus = false
  for (let i = start; i < end; i++) {
    const c = b[i]!
    if (WORD[c]! !== 0 && !isDigit(c)) {
      // A word from a lower-case letter on (a hex digest, an identifier): each of its digit
      // stretches follows a letter, so no phone or card number can start in it (both need a
      // non-word character before them), no SSN (no dash) nor IBAN (no capitals); all it leaves
      // is its prefixes and, if it ends in digits, a run of them that a separator may continue.
      let j = i
      for (; j < end; j++) {
        // Bytes of class 1 change nothing here: skipped two at a time.
        while (j + 1 < end && WORD_PAIR[b[j]! | (b[j + 1]! << 8)] === 1) j += 2
        if (j === end) break
        const w = WORD[b[j]!]!
        if (w === 1) continue
        if (w === 0) break
        if ((needs & NEED.prefix) === 0 && prefixAt(PREFIXES_BY_START[b[j]!]!, b, j, end)) needs |= NEED.prefix
      }
      // The digits it ends in (its first byte is a letter).
      let k = 0
      while (isDigit(b[j - 1 - k]!)) k++
      // The state the general steps below would have left: every run ended at the last letter,
      // and the digits after it a run not counted as a phone or card number.
      plus = false
      dashes = 0
      gap = false
      run = k
      inRun = k > 0
      if (k > 0) {
        counting = false
        phone = 0
        phoneSep = 0
        cardCounting = false
        card = 0
      }
      i = j - 1
      continue
    }
    const plain = PLAIN[c]!
    if (plain !== 0) {
      // What the general step below does with such a byte: every run ends.
      inRun = false
      plus = false
      run = 0
      dashes = 0
      gap = false
      if (plain === 2 && (needs & NEED.prefix) === 0 && prefixAt(PREFIXES_BY_START[c]!, b, i, end)) needs |= NEED.prefix
      continue
    }
    if (isDigit(c)) {
      // A stretch of digits at once: every count below only grows along it, so testing each
      // threshold once at its end finds what testing after every digit would.
      const prev1 = i > start ? b[i - 1]! : 0
      let k = 1
      while (i + k < end && isDigit(b[i + k]!)) k++
      if (!inRun) {
        inRun = true
        counting = !isLetter(prev1)
        phone = 0
      }
      phoneSep = 0
      if (counting) {
        phone += k
        if (phone >= 8 && (phone >= 10 || plus)) needs |= NEED.phoneRun
      }
      // A run never starts right after a digit: what precedes its first digit is a word character only if a letter.
      if (run === 0) {
        cardCounting = !isLetter(prev1)
        card = 0
      }
      run += k
      gap = false
      if (cardCounting) {
        card += k
        if (card >= 12) needs |= NEED.cardRun
      }
      if (run >= 9 && dashes >= 2) needs |= NEED.ssnRun
      // Two capitals and two digits: only the stretch's second digit can have capitals two and three places before it.
      if (k >= 2 && i - 2 >= start && isUpper(b[i - 1]!) && isUpper(b[i - 2]!)) needs |= NEED.ibanHead
      i += k - 1
    } else {
      if (inRun || plus) {
        if (PHONE_SEPARATOR[c] === 1) {
          if (++phoneSep > 2) {
            inRun = false
            plus = false
          } else if (!counting && (c === 32 || c === 40 || c === 41)) {
            counting = true
            phone = 0
          }
        } else {
          inRun = false
          phoneSep = 0
          plus = c === 43
        }
      } else if (c === 43) {
        plus = true
        phoneSep = 0
      }
      if ((c === 32 || c === 45) && run > 0 && !gap) {
        // One separator may sit between two digits of a run; a second one ends it. The digit after it may start a card number.
        gap = true
        if (c === 45) dashes++
        if (!cardCounting) {
          cardCounting = true
          card = 0
        }
      } else {
        run = 0
        dashes = 0
        gap = false
        if (c === 64) needs |= NEED.at
        else if (PREFIX_START[c] === 1 && (needs & NEED.prefix) === 0 && prefixAt(PREFIXES_BY_START[c]!, b, i, end)) needs |= NEED.prefix
      }
    }
  }
  return needs
}

function prefixAt(candidates: number[][], b: Uint8Array, i: number, end: number): boolean {
  for (const p of candidates) {
    if (i + p.length > end) continue
    let k = 1
    while (k < p.length && b[i + k] === p[k]) k++
    if (k === p.length) return true
  }
  return false
}

/** Which detectors could match `text` (as `NEED` bits; 0 when none could). */
export function textNeeds(text: string): number {
  if (text.length < MIN_LENGTH) return 0
  const b = Buffer.from(text, 'utf8')
  return needsOf(b, 0, b.length)
}

/** `textNeeds` on raw UTF-8 bytes (`buf[start, end)`), so that clean values are never decoded to strings. */
export function bufferNeeds(buf: Buffer, start = 0, end = buf.length): number {
  if (end - start < MIN_LENGTH) return 0
  return needsOf(buf, start, end)
}

/** Cheap pre-check: true when `text` could hold something a detector finds. */
export function mightContainSensitive(text: string): boolean {
  return textNeeds(text) !== 0
}

/** `mightContainSensitive` on raw UTF-8 bytes. */
export function bufferMightContainSensitive(buf: Buffer): boolean {
  return bufferNeeds(buf) !== 0
}

/**
 * Every sensitive value in `text`, earlier detectors winning where matches overlap. `needs` is
 * `textNeeds(text)` when the caller already has it (from the value's bytes).
 */
export function scanText(text: string, needs = textNeeds(text)): Finding[] {
  if (needs === 0 || text.length < MIN_LENGTH) return []
  const found: Finding[] = []
  const overlaps = (s: number, e: number) => found.some((f) => s < f.end && e > f.start)
  for (const d of DETECTORS) {
    if ((needs & d.needs) === 0) continue
    if (d.prefixes && !d.prefixes.some((p) => text.includes(p))) continue
    // `exec` on the shared pattern, not `matchAll`, which copies the pattern on every call. No
    // pattern matches the empty string, so the loop always advances.
    d.pattern.lastIndex = 0
    for (let m = d.pattern.exec(text); m !== null; m = d.pattern.exec(text)) {
      const start = m.index
      const end = start + m[0].length
      if (overlaps(start, end)) continue
      if (d.valid && !d.valid(m[0])) continue
      found.push({category: d.category, detector: d.name, start, end})
    }
  }
  return found.sort((a, b) => a.start - b.start)
}

/** Replaces each finding with what `replace` makes of it; returns undefined when nothing was found. */
export function maskFindings(text: string, replace: (value: string, f: Finding) => string, needs?: number): {text: string; findings: Finding[]} | undefined {
  const findings = scanText(text, needs)
  if (findings.length === 0) return undefined
  let out = ''
  let at = 0
  for (const f of findings) {
    out += text.slice(at, f.start) + replace(text.slice(f.start, f.end), f)
    at = f.end
  }
  return {text: out + text.slice(at), findings}
}

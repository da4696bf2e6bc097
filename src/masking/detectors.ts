/**
 * The value scanner: finds sensitive values inside any text, whatever column it came from. It is
 * the backstop for what lineage cannot see, so it runs on every text value and must be cheap for
 * the common case of text that holds nothing: `mightContainSensitive` rejects most values with a
 * few byte comparisons before any regular expression runs.
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

interface Detector {
  name: string
  category: MaskingCategory
  pattern: RegExp
  /** A check the pattern alone cannot express (checksums); receives the matched text. */
  valid?: (match: string) => boolean
}

const DETECTORS: Detector[] = [
  {name: 'private-key', category: 'secret', pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)/g},
  {name: 'jwt', category: 'token', pattern: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/g, valid: isJwt},
  {name: 'aws-access-key', category: 'secret', pattern: /\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b/g},
  {name: 'github-token', category: 'secret', pattern: /\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b/g},
  {name: 'slack-token', category: 'secret', pattern: /\bxox[abposr]-[A-Za-z0-9-]{10,}/g},
  {name: 'stripe-key', category: 'secret', pattern: /\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b/g},
  {name: 'google-api-key', category: 'secret', pattern: /\bAIza[0-9A-Za-z_-]{35}\b/g},
  {name: 'email', category: 'email', pattern: /[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g},
  {name: 'iban', category: 'bank_account', pattern: /\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?\b/g, valid: ibanValid},
  {name: 'card-luhn', category: 'card', pattern: /\b\d(?:[ -]?\d){11,18}\b/g, valid: (m) => luhnValid(m.replace(/[ -]/g, ''))},
  {name: 'ssn', category: 'national_id', pattern: /\b\d{3}-\d{2}-\d{4}\b/g, valid: (m) => !m.startsWith('000') && !m.startsWith('666') && m.slice(4, 6) !== '00' && m.slice(7) !== '0000'},
]

const PREFIXES = ['eyJ', 'AKIA', 'ASIA', 'AGPA', 'AIDA', 'AROA', 'ANPA', 'ANVA', 'AIPA', 'ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_', 'github_pat_', 'xox', '_live_', '_test_', 'AIza', 'BEGIN']

/**
 * Cheap pre-check: true when `text` could hold something a detector finds. An e-mail needs `@`;
 * cards, SSNs and IBANs need at least nine digits; keys and tokens have fixed prefixes.
 */
export function mightContainSensitive(text: string): boolean {
  if (text.length < 9) return false
  let digits = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 64 /* @ */) return true
    if (c >= 48 && c <= 57 && ++digits >= 9) return true
  }
  for (const p of PREFIXES) if (text.includes(p)) return true
  return false
}

/** Every sensitive value in `text`, earlier detectors winning where matches overlap. */
export function scanText(text: string): Finding[] {
  if (!mightContainSensitive(text)) return []
  const found: Finding[] = []
  const overlaps = (s: number, e: number) => found.some((f) => s < f.end && e > f.start)
  for (const d of DETECTORS) {
    d.pattern.lastIndex = 0
    for (const m of text.matchAll(d.pattern)) {
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
export function maskFindings(text: string, replace: (value: string, f: Finding) => string): {text: string; findings: Finding[]} | undefined {
  const findings = scanText(text)
  if (findings.length === 0) return undefined
  let out = ''
  let at = 0
  for (const f of findings) {
    out += text.slice(at, f.start) + replace(text.slice(f.start, f.end), f)
    at = f.end
  }
  return {text: out + text.slice(at), findings}
}

const PREFIX_BYTES = PREFIXES.map((p) => Buffer.from(p, 'latin1'))
/** First bytes of the prefixes, so most positions are rejected with one table lookup. */
const PREFIX_START = new Uint8Array(256)
for (const p of PREFIX_BYTES) PREFIX_START[p[0]!] = 1

function prefixAt(buf: Buffer, i: number): boolean {
  for (const p of PREFIX_BYTES) {
    if (p[0] !== buf[i] || i + p.length > buf.length) continue
    let k = 1
    while (k < p.length && buf[i + k] === p[k]) k++
    if (k === p.length) return true
  }
  return false
}

/** `mightContainSensitive` on raw UTF-8 bytes in one pass, so clean values are never decoded to strings. */
export function bufferMightContainSensitive(buf: Buffer): boolean {
  if (buf.length < 9) return false
  let digits = 0
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!
    if (c === 64) return true
    if (c >= 48 && c <= 57) {
      if (++digits >= 9) return true
    } else if (PREFIX_START[c] === 1 && prefixAt(buf, i)) {
      return true
    }
  }
  return false
}

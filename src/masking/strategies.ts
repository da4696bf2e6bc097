/**
 * How a sensitive value is replaced. Every replacement stays a valid value of the column's type,
 * so clients and ORMs keep parsing results: e-mails stay e-mail-shaped, dates stay dates, numbers
 * stay numbers. `hash` is a keyed HMAC, so equal inputs give equal outputs within one key and
 * joins or GROUP BY on a masked column still line up, while the key keeps dictionary attacks out.
 */
import {createHmac} from 'node:crypto'
import type {MaskingCategory, MaskingStrategy} from './categories.js'

export interface Masker {
  /** Masks a text value; returns null for SQL NULL. */
  text(value: string, category: MaskingCategory, strategy: MaskingStrategy): string | null
  /** Hex HMAC of a value, truncated, for building type-valid hashed values. */
  digest(value: string, length?: number): string
}

export function createMasker(hashKey: Buffer | string): Masker {
  const digest = (value: string, length = 12) => createHmac('sha256', hashKey).update(value).digest('hex').slice(0, length)
  return {
    digest,
    text(value, category, strategy) {
      if (strategy === 'null') return null
      if (strategy === 'hash') return hashed(value, category, digest)
      if (strategy === 'partial') return partial(value, category)
      return redacted(category)
    },
  }
}

const FIXED: Record<MaskingCategory, string> = {
  email: 'redacted@masked.invalid',
  phone: '+0-000-000-0000',
  person_name: '[redacted]',
  address: '[redacted]',
  birth_date: '1900-01-01',
  national_id: '***-**-****',
  card: '**** **** **** ****',
  bank_account: 'XX00 **** **** ****',
  password: '********',
  secret: '[redacted secret]',
  token: '[redacted token]',
  ip_address: '0.0.0.0',
  untraceable: '[masked]',
}

export function redacted(category: MaskingCategory): string {
  return FIXED[category]
}

/** The last `keep` digits stay; every other digit becomes `*`, separators kept. */
function keepLastDigits(value: string, keep: number): string {
  let remaining = value.replace(/\D/g, '').length - keep
  return value.replace(/\d/g, (d) => (remaining-- > 0 ? '*' : d))
}

/** The code units `\s` matches: ECMAScript's WhiteSpace and LineTerminator. */
const WHITESPACE = new Set([9, 10, 11, 12, 13, 32, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199, 8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288, 65279])

/**
 * Each word's first character, upper-cased, with a dot: `A. L.` for `Ada Lovelace`, `''` for
 * blank text. The same as splitting on `/\s+/`, in one pass without the regular expression and
 * arrays, since a name column is masked on every row.
 */
export function initials(v: string): string {
  let out = ''
  let inWord = false
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i)
    if (WHITESPACE.has(c)) inWord = false
    else if (!inWord) {
      inWord = true
      out += `${out === '' ? '' : ' '}${v[i]!.toUpperCase()}.`
    }
  }
  return out
}

function partial(value: string, category: MaskingCategory): string {
  const v = value.trim()
  switch (category) {
    case 'email': {
      const at = v.lastIndexOf('@')
      if (at < 1) return FIXED.email
      return `${v[0]}***${v.slice(at)}`
    }
    case 'phone':
      return v.replace(/\D/g, '').length > 4 ? keepLastDigits(v, 2) : FIXED.phone
    case 'card': {
      const digits = v.replace(/\D/g, '')
      return digits.length >= 12 ? `**** **** **** ${digits.slice(-4)}` : FIXED.card
    }
    case 'national_id':
      return v.replace(/\D/g, '').length >= 6 ? keepLastDigits(v, 4) : FIXED.national_id
    case 'bank_account': {
      const compact = v.replace(/[\s-]/g, '')
      if (compact.length < 10) return FIXED.bank_account
      return `${compact.slice(0, 2)}** **** ${compact.slice(-4)}`
    }
    case 'person_name':
      return initials(v) || FIXED.person_name
    case 'birth_date': {
      const year = /^(\d{4})-\d{2}-\d{2}/.exec(v)
      return year ? `${year[1]}-01-01${v.slice(10).replace(/\d/g, '0')}` : FIXED.birth_date
    }
    case 'ip_address': {
      const v4 = /^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}(\/\d+)?$/.exec(v)
      if (v4) return `${v4[1]}.0${v4[2] ?? ''}`
      return FIXED.ip_address
    }
    case 'secret':
    case 'token':
      // A recognisable prefix (`ghp_`, `sk_live_`) helps people tell keys apart without exposing them.
      return v.length >= 16 ? `${v.slice(0, 4)}…[redacted]` : FIXED[category]
    default:
      return FIXED[category]
  }
}

function hashed(value: string, category: MaskingCategory, digest: (v: string, n?: number) => string): string {
  const h = digest(value)
  const digits = (n: number) => BigInt(`0x${digest(value, 16)}`).toString().padStart(n, '0').slice(-n)
  switch (category) {
    case 'email':
      return `h_${h}@masked.invalid`
    case 'phone':
      return `+0-${digits(10)}`
    case 'birth_date': {
      const days = parseInt(h.slice(0, 6), 16) % 36500
      return new Date(Date.UTC(1900, 0, 1) + days * 86_400_000).toISOString().slice(0, 10)
    }
    case 'ip_address':
      return `10.${parseInt(h.slice(0, 2), 16)}.${parseInt(h.slice(2, 4), 16)}.${parseInt(h.slice(4, 6), 16)}`
    case 'card':
      // Not a card number on purpose: a hash must never pass for a real (Luhn-valid) card.
      return `tok_${h}`
    default:
      return `h_${h}`
  }
}

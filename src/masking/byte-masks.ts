/**
 * Whole-value masks applied to a value's bytes without decoding it, for the strategies whose
 * output is a constant or a cut of the input: `null`, `redact`, and the partial e-mail mask on
 * printable ASCII. Each gives exactly the bytes the text path (`Masker.text` on the decoded value,
 * encoded back to UTF-8) gives; whatever they do not cover goes through the text path.
 */
import type {MaskingCategory, MaskingStrategy} from './categories.js'
import type {Masker} from './strategies.js'

export type ByteMask =
  | {kind: 'null'}
  /** The same bytes whatever the value (`redact`). */
  | {kind: 'constant'; bytes: Buffer}
  /** `Masker.text(v, 'email', 'partial')`: first character, `***`, then from the last `@` on; `fallback` without a usable `@`. */
  | {kind: 'email'; fallback: Buffer}

const NULL: ByteMask = {kind: 'null'}

/** The byte-level form of masking a whole value as `category` with `strategy`, where there is one. */
export function byteMaskOf(category: MaskingCategory, strategy: MaskingStrategy, masker: Masker): ByteMask | undefined {
  if (strategy === 'null') return NULL
  // Taken from the masker itself, so the bytes cannot drift from what the text path writes.
  if (strategy === 'redact') return {kind: 'constant', bytes: Buffer.from(masker.text('', category, 'redact') ?? '', 'utf8')}
  if (strategy === 'partial' && category === 'email') return {kind: 'email', fallback: Buffer.from(masker.text('', 'email', 'partial') ?? '', 'utf8')}
  return undefined
}

/**
 * Where the partial e-mail mask cuts `b[start, end)`, into `cuts` from `k` on (first kept
 * character, the last `@`, the end of the trimmed value); returns the masked value's length, 0
 * when the value has no `@` after its first character (the fallback), or -1 when a byte is not
 * printable ASCII: only there is a byte a character, and spaces the only whitespace `trim` removes.
 */
export function emailCut(b: Buffer, start: number, end: number, cuts: Int32Array, k: number): number {
  let at = -1
  for (let i = start; i < end; i++) {
    const c = b[i]!
    if (c < 0x20 || c > 0x7e) return -1
    if (c === 0x40) at = i
  }
  let s = start
  let e = end
  while (s < e && b[s] === 0x20) s++
  while (e > s && b[e - 1] === 0x20) e--
  // The last `@` lies inside the trimmed value whenever there is one: trimming removes only spaces.
  if (at < s + 1) return 0
  cuts[k] = s
  cuts[k + 1] = at
  cuts[k + 2] = e
  return 4 + (e - at)
}

/** Writes the masked value `emailCut` measured into `cuts` at `k`; returns the offset after it. */
export function writeEmail(b: Buffer, cuts: Int32Array, k: number, dst: Buffer, at: number): number {
  dst[at++] = b[cuts[k]!]!
  dst[at++] = 0x2a
  dst[at++] = 0x2a
  dst[at++] = 0x2a
  for (let i = cuts[k + 1]!, e = cuts[k + 2]!; i < e; i++) dst[at++] = b[i]!
  return at
}

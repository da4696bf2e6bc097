/** Durations and sizes as people write them in YAML. */
import {formatDuration, parseDuration as parseDurationText} from '../util/duration.js'
import {formatSize} from '../util/size.js'

const SIZE_UNITS = {B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3} as const

/** Durations as YAML takes them: the one grammar (src/util/duration.ts), plus a whole number of seconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number' && !(Number.isSafeInteger(value) && value >= 0)) return undefined
  return parseDurationText(value, {bareSeconds: true})
}

/** `512B`, `64KiB`, `1MiB`, `1GiB`, or a whole number of bytes; bytes, or undefined if malformed. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined
  const m = /^(\d+)\s*(B|KiB|MiB|GiB)?$/.exec(value.trim())
  if (!m) return undefined
  return Number(m[1]) * SIZE_UNITS[(m[2] ?? 'B') as keyof typeof SIZE_UNITS]
}

/**
 * The binary-unit spelling of a decimal-looking size (`1GB` → `1GiB`), because dbgate's limits are
 * powers of two and silently reading "GB" as 10^9 would surprise someone.
 */
export function suggestSize(value: string): string | undefined {
  const m = /^(\d+)\s*([kmg])i?b?$/i.exec(value.trim())
  if (!m) return undefined
  return `${m[1]}${m[2]!.toUpperCase()}iB`
}

export {formatDuration}

export {formatSize}

/** Durations and sizes as people write them in YAML. */

const DURATION_UNITS_MS = {s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000} as const
const SIZE_UNITS = {B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3} as const

/** `30s`, `15m`, `2h`, `1d`, or a whole number of seconds; milliseconds, or undefined if malformed. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value * 1000 : undefined
  const m = /^(\d+)\s*(s|m|h|d)$/.exec(value.trim())
  if (!m) return /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : undefined
  return Number(m[1]) * DURATION_UNITS_MS[m[2] as keyof typeof DURATION_UNITS_MS]
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

export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  }
  return `${ms / 1000}s`
}

export function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return `${bytes} bytes`
}

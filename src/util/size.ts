/**
 * A byte count for people, in binary units (dbgate's limits are powers of two).
 * - `exact` spells it as dbgate.yaml takes it (`16MiB`; `1000 bytes` when no unit divides it), so
 *   a message can name a value to write back into the configuration.
 * - `approximate` rounds to the largest unit for status lines (`1.5 KiB`, `512 B`).
 */
export function formatSize(bytes: number, style: 'exact' | 'approximate' = 'exact'): string {
  if (style === 'exact') {
    for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
      if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
    }
    return `${bytes} bytes`
  }
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes
  let i = -1
  do {
    v /= 1024
    i++
  } while (v >= 1024 && i < units.length - 1)
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`
}

/**
 * The one grammar for durations, wherever people write one: YAML (`approvals.expiry: 15m`),
 * `--window 1h30m`, `--since 1w`. A duration is one or more amounts with a unit, largest unit
 * first: `30s`, `15m`, `2h`, `1h30m`, `1d`, `2w`, `1y` (365 days). At most 10 years: beyond that
 * a value is a typo, and dates that far away break what is computed from them.
 */

const UNITS = [
  ['y', 365 * 86_400_000],
  ['w', 7 * 86_400_000],
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
] as const

export const MAX_DURATION_MS = 10 * 365 * 86_400_000
export const DURATION_EXAMPLES = '30s, 15m, 2h, 1h30m, 1d, 2w or 1y'

const GRAMMAR = new RegExp(`^${UNITS.map(([u]) => `(?:(\\d+)${u})?`).join('')}$`)

export type DurationResult = {ok: true; ms: number} | {ok: false; problem: string}

/**
 * Reads a duration. `bareSeconds` also takes a whole number of seconds (YAML, where `60` has always
 * meant a minute); on the command line a number without a unit is refused as ambiguous.
 */
export function readDuration(text: string | number, opts: {bareSeconds?: boolean} = {}): DurationResult {
  const value = typeof text === 'number' ? String(text) : text.trim().replace(/\s+/g, '')
  let ms: number | undefined
  if (/^\d+$/.test(value)) {
    if (!opts.bareSeconds) return {ok: false, problem: `${JSON.stringify(String(text))} has no unit; write e.g. ${value}s, ${value}m or ${value}d`}
    ms = Number(value) * 1000
  } else {
    const m = value ? GRAMMAR.exec(value) : null
    if (!m) return {ok: false, problem: `${JSON.stringify(String(text))} is not a duration; write e.g. ${DURATION_EXAMPLES}`}
    ms = UNITS.reduce((sum, [, size], i) => sum + Number(m[i + 1] ?? 0) * size, 0)
  }
  if (!Number.isSafeInteger(ms) || ms > MAX_DURATION_MS) return {ok: false, problem: `${JSON.stringify(String(text))} is longer than the 10 years (3650d) dbgate accepts`}
  return {ok: true, ms}
}

/** Milliseconds, or undefined when `text` is not a duration (see readDuration for why). */
export function parseDuration(text: string | number, opts: {bareSeconds?: boolean} = {}): number | undefined {
  const r = readDuration(text, opts)
  return r.ok ? r.ms : undefined
}

/** The shortest exact spelling: `1h30m`, `15m`, `2w`. */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s'
  let rest = ms
  let out = ''
  for (const [unit, size] of UNITS) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`
      rest %= size
    }
  }
  return rest ? `${out}${rest / 1000}s` : out
}

/**
 * A point in time as people give it on the command line: a duration before `now` (`7d`, `1h30m`)
 * or an ISO date or date-time. With `endOfDay`, a bare date means the last millisecond of that
 * day (for `--until 2026-09-30`).
 */
export function parseWhen(text: string, now = new Date(), opts: {endOfDay?: boolean} = {}): Date {
  const value = text.trim()
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    // A date is a UTC day; a time of day must say its zone. JavaScript reads `2026-10-01T00:00:00`
    // (or `2026-10-01 00:00`) in the machine's zone, so on an auditor's laptop in UTC-7 a period
    // given so began seven hours late, under a report that says its periods are in UTC.
    if (!/^\d{4}-\d{2}-\d{2}$/.test(value) && !/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2})$/i.test(value)) {
      throw new Error(`${JSON.stringify(text)} is not a date (2026-01-31, a UTC day) or a date and time with its zone; write e.g. 2026-01-31T08:00:00Z (UTC) or 2026-01-31T08:00:00+02:00`)
    }
    const d = new Date(value)
    if (Number.isNaN(d.getTime())) throw new Error(`${JSON.stringify(text)} is not a valid date; write e.g. 2026-01-31 or 2026-01-31T08:00:00Z`)
    if (Math.abs(now.getTime() - d.getTime()) > MAX_DURATION_MS) throw new Error(`${JSON.stringify(text)} is more than 10 years from now`)
    return opts.endOfDay && /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(d.getTime() + 86_400_000 - 1) : d
  }
  const r = readDuration(value)
  if (!r.ok) throw new Error(`${r.problem.replace(/; write e\.g\. .*$/, '')}; write a duration before now (${DURATION_EXAMPLES}) or a date like 2026-01-31`)
  return new Date(now.getTime() - r.ms)
}

/**
 * Log lines that anyone who can reach one of the gateway's listeners can cause, once per connection
 * or request (a refused sign-in, a failed TLS handshake, a cancel request with a wrong key), kept to
 * a bounded number of lines however fast they come and from however many addresses. Otherwise a
 * stranger could fill the disk, run up the log shipper's bill and bury the lines that matter.
 *
 * Each line has a kind (chosen by the code, never by a client) and a source (an address, a person):
 *  - the first line of a kind from a source is written at once, so a refusal from elsewhere is never
 *    held back by someone's flood;
 *  - its repeats are counted and summarised in one line per interval, with their count and the last
 *    of them; a source quiet for a whole interval is forgotten, and its next line is written at once;
 *  - at most `maxSources` (kind, source) pairs are tracked, and at most `maxNewPerInterval` first
 *    lines are written per interval; past either, lines are counted per kind and summarised as
 *    coming from other sources. So memory is bounded, and so are the lines per interval:
 *    `maxNewPerInterval` + `maxSources` + one per kind.
 * The metrics count every refusal whatever the log shows.
 */
import {formatDuration} from '../util/duration.js'

export type RepeatLevel = 'info' | 'warn' | 'error'

export interface RepeatLimits {
  /** How long repeats are counted before their summary line. */
  intervalMs: number
  /** (kind, source) pairs tracked at once. */
  maxSources: number
  /** First lines written at once per interval, over all sources. */
  maxNewPerInterval: number
}

export const DEFAULT_REPEAT_LIMITS: RepeatLimits = {intervalMs: 10_000, maxSources: 100, maxNewPerInterval: 20}

export interface RepeatLogOptions extends Partial<RepeatLimits> {
  /** The clock, in milliseconds; tests move it. */
  now?: () => number
  /** Runs `fn` once after `ms` and returns what cancels it; default an unref'd timer. */
  schedule?: (fn: () => void, ms: number) => () => void
}

interface Tracked {
  level: RepeatLevel
  source: string
  repeats: number
  last: string
}

/** The overflow's kinds are the code's, so few; this only caps them should a caller slip. */
const OTHER_KINDS = 'other lines'

export class RepeatLimitedLog {
  private readonly limits: RepeatLimits
  private readonly now: () => number
  private readonly schedule: NonNullable<RepeatLogOptions['schedule']>
  private readonly tracked = new Map<string, Tracked>()
  private readonly overflow = new Map<string, {level: RepeatLevel; count: number}>()
  private windowStart = -Infinity
  private newThisWindow = 0
  private cancelTimer: (() => void) | undefined

  constructor(
    private readonly log: (level: RepeatLevel, message: string) => void,
    options: RepeatLogOptions = {},
  ) {
    const {now, schedule, ...limits} = options
    this.limits = {...DEFAULT_REPEAT_LIMITS, ...limits}
    this.now = now ?? Date.now
    this.schedule =
      schedule ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms)
        t.unref()
        return () => clearTimeout(t)
      })
  }

  /** `message`, written at once or counted, as one of `kind` from `source`. */
  write(level: RepeatLevel, kind: string, source: string, message: string): void {
    const now = this.now()
    if (now - this.windowStart >= this.limits.intervalMs) this.flush()
    const key = `${kind}\u0000${source}`
    const seen = this.tracked.get(key)
    if (seen) {
      seen.repeats++
      seen.last = message
      this.arm(now)
      return
    }
    if (this.tracked.size >= this.limits.maxSources || this.newThisWindow >= this.limits.maxNewPerInterval) {
      const k = this.overflow.has(kind) || this.overflow.size < this.limits.maxSources ? kind : OTHER_KINDS
      const o = this.overflow.get(k) ?? {level, count: 0}
      o.count++
      this.overflow.set(k, o)
      this.arm(now)
      return
    }
    this.tracked.set(key, {level, source, repeats: 0, last: message})
    this.newThisWindow++
    this.log(level, message)
  }

  /**
   * Writes the summary of what was counted, and starts a new interval. The timer calls it; so does
   * the gateway as it stops, so that no count is lost.
   */
  flush(): void {
    this.cancelTimer?.()
    this.cancelTimer = undefined
    const now = this.now()
    const span = `in the last ${formatDuration(Math.max(1000, Math.ceil((now - Math.max(this.windowStart, 0)) / 1000) * 1000))}`
    for (const [key, t] of this.tracked) {
      if (t.repeats === 0) {
        // Quiet for a whole interval: its next line is news again.
        this.tracked.delete(key)
        continue
      }
      this.log(t.level, `${t.repeats} more like this${t.source ? ` from ${t.source}` : ''} ${span} (not logged one by one); the last: ${t.last}`)
      t.repeats = 0
    }
    for (const [kind, o] of this.overflow) {
      this.log(
        o.level,
        `${o.count} more ${kind} from other sources ${span} (not logged one by one: the log names at most ${this.limits.maxNewPerInterval} new sources per ${formatDuration(this.limits.intervalMs)} and tracks ${this.limits.maxSources} at once)`,
      )
    }
    this.overflow.clear()
    this.newThisWindow = 0
    this.windowStart = now
  }

  /** Summarises what is pending and stops the timer. */
  close(): void {
    this.flush()
  }

  private arm(now: number): void {
    if (this.cancelTimer) return
    this.cancelTimer = this.schedule(
      () => {
        this.cancelTimer = undefined
        this.flush()
      },
      Math.max(0, this.windowStart + this.limits.intervalMs - now),
    )
  }
}

/** The source address of `host:port` (IPv6 included), the unit repeats are counted by. */
export function addressOf(clientAddress: string): string {
  const colon = clientAddress.lastIndexOf(':')
  return colon > 0 && /^\d+$/.test(clientAddress.slice(colon + 1)) ? clientAddress.slice(0, colon) : clientAddress
}

/** Characters that could end a log line or disguise one in a terminal: controls, separators, bidi and other format characters, lone surrogates. */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}"\\]/gu

/**
 * Text a client chose (a user or database name), quoted for a log line: cut to `max` characters
 * and with every character that could forge or disguise a line escaped, so it reads as one value.
 */
export function quoteUntrusted(text: string, max = 64): string {
  const chars = [...text]
  const kept = chars.length > max ? chars.slice(0, max).join('') : text
  const escaped = kept.replace(UNSAFE, (c) => {
    if (c === '"' || c === '\\') return `\\${c}`
    const code = c.codePointAt(0)!
    return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, '0')}`
  })
  return `"${escaped}"${chars.length > max ? `… (cut from ${chars.length} characters)` : ''}`
}

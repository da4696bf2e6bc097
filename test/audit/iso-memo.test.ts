/**
 * A statement's `startedAt` and every event's `ts` are written from a memo that builds another
 * millisecond of the same second from that second's ISO date: what it writes is hashed and signed,
 * so it must be `toISOString()` for every time asked, in any order, across seconds, days, years and
 * the edges of the four-digit years.
 */
import {describe, expect, it} from 'vitest'
import {isoString} from '../../src/audit/chain.js'

describe("the ISO date memo (statements' startedAt)", () => {
  it('answers toISOString for milliseconds of one second asked in turn, and across seconds, days and years', () => {
    const starts = [Date.UTC(2026, 11, 5, 16, 13, 1), Date.UTC(2026, 11, 31, 23, 59, 59), Date.UTC(2028, 1, 29, 0, 0, 0), 0, Date.UTC(1999, 11, 31, 23, 59, 59)]
    for (const start of starts) {
      for (let i = 0; i < 5000; i++) {
        // Interleaved: a few milliseconds apart, going back and forth, crossing second boundaries.
        const t = start + ((i * 7919) % 2600) - 300
        expect(isoString(new Date(t))).toBe(new Date(t).toISOString())
      }
    }
  })

  it('answers toISOString for years outside 0…9999 and at their edges', () => {
    const edges = [253402300799999, 253402300800000, 253402300800001, 253402300799000, -1, -999, -1000, -1001, -62198755200000, -62198755200001, 8.64e15, -8.64e15]
    for (const t of [...edges, ...edges.reverse()]) {
      expect(isoString(new Date(t))).toBe(new Date(t).toISOString())
      const next = t + 1 <= 8.64e15 ? t + 1 : t - 1
      expect(isoString(new Date(next))).toBe(new Date(next).toISOString())
    }
  })

  it('throws for an invalid date as toISOString does', () => {
    isoString(new Date(1000))
    expect(() => isoString(new Date(NaN))).toThrow(RangeError)
  })
})

/**
 * A statement's `durationMs` is written by `jsonMillis`, not by `JSON.stringify`: what it writes is
 * hashed, signed and read back, so it must be the very characters `JSON.stringify` writes for every
 * duration the recorder can hold (a duration rounded to the microsecond) and for any other number.
 */
import {describe, expect, it} from 'vitest'
import {jsonMillis, statementData} from '../../src/audit/events.js'
import {stmt} from './helpers.js'

describe('jsonMillis', () => {
  it('writes every thousandth up to 20 s, and thousandths spread up to 10^12 ms, as JSON.stringify does', () => {
    for (let k = 0; k <= 20_000_000; k++) {
      const d = k / 1000
      if (jsonMillis(d) !== JSON.stringify(d)) expect(jsonMillis(d)).toBe(JSON.stringify(d))
    }
    // Spread over every magnitude, fractions of every length included.
    for (let k = 1; k < 1e13; k = Math.floor(k * 1.0007) + 1) {
      for (const x of [k, k + 1, k + 7, k * 10 + 5]) {
        const d = x / 1000
        if (jsonMillis(d) !== JSON.stringify(d)) expect(jsonMillis(d)).toBe(JSON.stringify(d))
      }
    }
  })

  it('writes numbers that are not whole thousandths as JSON.stringify does', () => {
    for (const d of [0.0613, 0.1 + 0.2, 1e-7, 5e-324, 123.4567, 1.0005, -0, -1, -0.5, -1234.567, 1e12, 1e12 + 0.5, 2 ** 53, 1e21, 1.5e300, NaN, Infinity, -Infinity, Number.MAX_VALUE]) {
      expect(jsonMillis(d)).toBe(JSON.stringify(d))
    }
  })

  it("is what a statement's line holds: JSON.stringify of the event's rounded duration", () => {
    for (const ms of [0, 0.0004, 0.0005, 0.061349, 0.9996, 1, 12.3456789, 999.9995, 86_400_000.123]) {
      const data = statementData(stmt('s', 'select 1', {durationMs: ms}), {}, 0)
      expect(jsonMillis(data.durationMs)).toBe(JSON.stringify(data.durationMs))
    }
  })
})

/**
 * `scanShape` keeps the answers of the last few texts, so that a statement's shape asked again by
 * the recording after other sessions' texts were scanned is not scanned again. A kept answer must
 * be the answer for that very text, whatever came between: texts of one length that differ in one
 * character, texts with no shape, texts too long to be kept.
 */
import {describe, expect, it} from 'vitest'
import {scanShape} from '../../src/policy/text-shape.js'

const texts = [
  'SELECT abalance FROM pgbench_accounts WHERE aid = 12345;',
  'SELECT abalance FROM pgbench_accounts WHERE aid = 12346;',
  "SELECT abalance FROM pgbench_accounts WHERE aid = '1234';",
  'SELECT abalance FROM pgbench_accounts WHERE aid = 1.234;',
  'SELECT abalance FROM pgbench_accounts WHERE aid = 99999999999;',
  'SELECT abalance FROM pgbench_accounts WHERE bid = 12345;',
  "SELECT $$x$$ FROM pgbench_accounts WHERE aid = 12345;", // dollar quote: no shape
  "SELECT E'x' FROM pgbench_accounts WHERE aid = 12345;", // E'' string: no shape
  'select 1 /* c */ from t where a = 12345;', // comment: no shape
  `SELECT ${'x, '.repeat(1200)}1 FROM t WHERE a = 12345;`, // longer than the answers kept
  `SELECT ${'y, '.repeat(1200)}1 FROM t WHERE a = 12345;`,
]

/** What a text's shape is, as plain data (fresh copies of the strings, so no answer is found by identity). */
const answer = (t: string) => {
  const s = scanShape(t.split('').join(''))
  return s === undefined ? undefined : {key: s.key, literals: [...s.literals]}
}

describe('scanShape with interleaved texts', () => {
  it("answers each text with its own shape, whatever was asked between", () => {
    const first = texts.map((t) => answer(t))
    expect(first[6]).toBeUndefined()
    expect(first[7]).toBeUndefined()
    expect(first[0]).not.toEqual(first[2])
    expect(first[0]!.key).toBe(first[1]!.key)
    expect(first[0]!.literals).toEqual(first[1]!.literals)
    // Asked again in many orders, each text between others (kept, evicted and never kept).
    for (let round = 1; round < 60; round++) {
      for (let i = 0; i < texts.length; i++) {
        const j = (i * round + round) % texts.length
        expect(answer(texts[j]!)).toEqual(first[j])
      }
    }
  })
})

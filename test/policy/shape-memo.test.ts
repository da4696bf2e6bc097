/**
 * `scanShape` keeps its last answer (the guardrails, masking and the recording ask for the same
 * text's shape in turn). A shape handed to the wrong text would let that text share another's
 * analysis: every answer must be the shape of exactly the text asked, whatever was scanned before.
 */
import {describe, expect, it} from 'vitest'
import {scanShape} from '../../src/policy/text-shape.js'
import {corpus} from './corpus.js'

/** The shape of `sql` as a first scan makes it (another text scanned just before, so nothing is kept for this one). */
function fresh(sql: string): ReturnType<typeof scanShape> {
  scanShape(`${sql} /* not this text */`)
  const shape = scanShape(sql)
  return shape && {key: shape.key, literals: [...shape.literals]}
}

/** Texts one character away from `sql`, same length: a literal turned identifier, a quote moved, a digit changed. */
function neighbours(sql: string): string[] {
  const out: string[] = []
  const swaps: Record<string, string> = {'1': 'a', a: '1', "'": '"', '"': "'", '0': '9', '9': '0', ' ': '-', '-': ' ', e: 'E', $: 'x'}
  for (let i = 0; i < sql.length; i++) {
    const to = swaps[sql[i]!]
    if (to) out.push(sql.slice(0, i) + to + sql.slice(i + 1))
  }
  return out
}

describe('the kept shape', () => {
  const texts = [
    'SELECT abalance FROM pgbench_accounts WHERE aid = 12345;',
    "SELECT 'a1' FROM t WHERE x = 1",
    'SELECT a1 FROM t WHERE x = $1',
    "UPDATE t SET a = 'x''y' WHERE id = 10",
    ...corpus.map((c) => c.sql).filter((sql) => sql.length < 400),
  ]

  it('is always the shape of the text asked, after a text of the same length that differs in one character', () => {
    for (const sql of texts) {
      const expected = fresh(sql)
      for (const before of neighbours(sql)) {
        const theirs = fresh(before)
        scanShape(before)
        const got = scanShape(sql)
        expect(got && {key: got.key, literals: [...got.literals]}, `${sql} after ${before}`).toEqual(expected)
        // And the other way round: the neighbour gets its own shape, not the one just kept.
        const back = scanShape(before)
        expect(back && {key: back.key, literals: [...back.literals]}, `${before} after ${sql}`).toEqual(theirs)
      }
    }
  })

  it('is the same for an equal text built anew, and undefined stays undefined', () => {
    const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = 777;'
    const expected = fresh(sql)
    scanShape(sql)
    expect(scanShape(['SELECT abalance FROM pgbench_accounts', 'WHERE aid = 777;'].join(' '))).toEqual(expected)
    const unreadable = "SELECT E'\\x41'"
    expect(scanShape(unreadable)).toBeUndefined()
    expect(scanShape(unreadable)).toBeUndefined()
    expect(scanShape("SELECT  '\\x41'")).toBeDefined()
  })
})

/**
 * Statement filters start with one row scratch shared by all of them (offsets and outcomes of the
 * row being masked), because a filter is made for every statement and most see one row. Filters
 * whose rows interleave (several sessions, a portal suspended between Executes) must each give
 * exactly the bytes they give alone, whichever of them grew its own scratch.
 */
import {beforeAll, describe, expect, it} from 'vitest'
import type {MaskingConfig} from '../../src/config/types.js'
import {createMaskingFilterFactory, type MaskingFilter} from '../../src/masking/filter.js'
import {loadParser} from '../../src/sql/parser.js'
import {decodeDataRow, encodeDataRow} from '../../src/wire/backend.js'
import {ctx, oneTable, type Column} from './one-table.js'

const NARROW: Column[] = [
  ['id', 23, 'int4'],
  ['email', 25, 'text'],
  ['note', 25, 'text'],
]
/** Wider than the shared scratch (16 values, 16 work items): its filter grows its own. */
const WIDE: Column[] = Array.from({length: 40}, (_, i): Column => (i % 2 === 0 ? [`email_${i}`, 25, 'text'] : [`note_${i}`, 25, 'text']))

beforeAll(async () => {
  await loadParser()
})

function setup(columns: Column[]) {
  const t = oneTable(columns)
  const masking: MaskingConfig = {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'}
  const factory = createMaskingFilterFactory({catalog: t.catalog, masking, identity: {groups: [], kind: 'human'}, hashKey: 'k'})
  const make = () => {
    const f = factory(t.sql, ctx, {action: 'allow'}) as MaskingFilter
    f.rowDescription!(t.fields(0))
    return f
  }
  return {make, fields: t.fields(0), width: columns.length}
}

const value = (row: number, col: number): Buffer | null =>
  (row + col) % 7 === 0 ? null : Buffer.from([`ada${row}@example.com`, `call 912-34-${String(1000 + row).slice(-4)} now`, `${row * 31 + col}`, `x${'y'.repeat(col)}`][(row * 3 + col) % 4]!)

describe('the row scratch shared by statement filters', () => {
  it('gives each of several interleaved filters the bytes it gives alone', () => {
    const narrow = setup(NARROW)
    const wide = setup(WIDE)
    const kinds = [narrow, wide, narrow, wide, narrow]
    const interleaved = kinds.map((k) => k.make())
    const alone = kinds.map((k) => k.make())
    const rows = (k: (typeof kinds)[number], i: number) => Array.from({length: 50}, (_, r) => encodeDataRow(Array.from({length: k.width}, (_, c) => value(r + i * 100, c))).subarray(5))
    const expected = kinds.map((k, i) => rows(k, i).map((body) => alone[i]!.dataRowMessage!(body, k.fields)?.toString('hex') ?? null))
    const got: (string | null)[][] = kinds.map(() => [])
    for (let r = 0; r < 50; r++) {
      for (const [i, k] of kinds.entries()) got[i]!.push(interleaved[i]!.dataRowMessage!(rows(k, i)[r]!, k.fields)?.toString('hex') ?? null)
    }
    expect(got).toEqual(expected)
    // And something was masked in every filter, or the comparison proves nothing.
    for (const [i, f] of interleaved.entries()) {
      expect(f.maskedValues).toBe(alone[i]!.maskedValues)
      expect(f.maskedValues).toBeGreaterThan(0)
    }
    const first = decodeDataRow(Buffer.from(got[0]![1]!, 'hex').subarray(5))
    expect(first.some((v) => v?.toString().includes('ada1@example.com'))).toBe(false)
  })
})

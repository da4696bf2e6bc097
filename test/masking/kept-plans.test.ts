/**
 * A masking plan is kept per statement lineage across the filters of one factory, so that the
 * executions of a prepared statement (each its own filter, its result described anew) do not plan
 * again. Every execution must still mask exactly as a filter planning from scratch would: a result
 * described with other columns (reordered, retyped, renamed, binary, fewer or more, no origin, no
 * description at all), a catalog that changed in between, or another mode for untraceable values
 * must each get their own plan.
 */
import {beforeAll, describe, expect, it} from 'vitest'
import type {MaskingConfig} from '../../src/config/types.js'
import type {Catalog} from '../../src/masking/catalog.js'
import {createMaskingFilterFactory, type MaskingFilter} from '../../src/masking/filter.js'
import {formatMaskedColumn} from '../../src/masking/plan.js'
import {loadParser} from '../../src/sql/parser.js'
import {encodeDataRow} from '../../src/wire/backend.js'
import type {FieldDescription} from '../../src/wire/fields.js'
import {ctx, oneTable, TABLE, type Column} from './one-table.js'

const COLUMNS: Column[] = [
  ['id', 23, 'int4'],
  ['email', 25, 'text'],
  ['note', 25, 'text'],
]

beforeAll(async () => {
  await loadParser()
})

const masking = (onUntraceable: 'mask' | 'deny'): MaskingConfig => ({unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable})
const factoryOf = (catalog: Catalog, onUntraceable: 'mask' | 'deny' = 'mask') => createMaskingFilterFactory({catalog, masking: masking(onUntraceable), identity: {groups: [], kind: 'human'}, hashKey: 'k'})
type Factory = ReturnType<typeof factoryOf>

const VALUES = ['7', 'ada@example.com', 'call 912-34-5678 now', 'x']
const rows = (width: number) => [0, 1].map((r) => encodeDataRow(Array.from({length: width}, (_, c) => (r === 1 && c === 0 ? null : Buffer.from(VALUES[(c + r) % VALUES.length]!)))).subarray(5))

/** What one execution gives the client and the recording: rows as sent, masked columns, count. */
function execute(factory: Factory, sql: string, fields: FieldDescription[] | undefined, width: number) {
  const f = factory(sql, ctx, {action: 'allow'}) as MaskingFilter
  if (fields) f.rowDescription!(fields)
  const out = rows(width).map((body) => (f.dataRowMessage!(body, fields) ?? body).toString('hex'))
  return {out, masked: f.maskedColumns!.map(formatMaskedColumn), values: f.maskedValues}
}

const field = (name: string, attr: number, typeOid: number, over: Partial<FieldDescription> = {}): FieldDescription => ({name, tableOid: TABLE, columnAttr: attr, typeOid, typeSize: -1, typeModifier: -1, format: 0, ...over})
const AS_ANALYSED = [field('id', 1, 23), field('email', 2, 25), field('note', 3, 25)]

/** Descriptions the server could give for the same statement text, after DDL or another plan. */
const DESCRIPTIONS: [string, FieldDescription[] | undefined, number][] = [
  ['as analysed', AS_ANALYSED, 3],
  ['email and note swapped', [field('id', 1, 23), field('note', 3, 25), field('email', 2, 25)], 3],
  ['email renamed', [field('id', 1, 23), field('contact', 2, 25), field('note', 3, 25)], 3],
  ['email retyped as int4', [field('id', 1, 23), field('email', 2, 23), field('note', 3, 25)], 3],
  ['email in binary format', [field('id', 1, 23), field('email', 2, 25, {format: 1}), field('note', 3, 25)], 3],
  ['no origin for email', [field('id', 1, 23), field('email', 0, 25, {tableOid: 0}), field('note', 3, 25)], 3],
  ['id pointing at email', [field('id', 2, 23), field('email', 2, 25), field('note', 3, 25)], 3],
  ['a column fewer', [field('id', 1, 23), field('email', 2, 25)], 2],
  ['a column more', [...AS_ANALYSED, field('extra', 4, 25)], 4],
  ['no description', undefined, 3],
]

describe('masking plans kept across executions', () => {
  it('mask every execution as a fresh filter would, whatever description came before', () => {
    const t = oneTable(COLUMNS)
    const kept = factoryOf(t.catalog)
    for (const [before, fieldsBefore, widthBefore] of DESCRIPTIONS) {
      for (const [now, fields, width] of DESCRIPTIONS) {
        execute(kept, t.sql, fieldsBefore, widthBefore)
        execute(kept, t.sql, fieldsBefore, widthBefore)
        const fresh = execute(factoryOf(t.catalog), t.sql, fields, width)
        expect(execute(kept, t.sql, fields, width), `${now} after ${before}`).toEqual(fresh)
        // Described anew each time with equal members: the same answer again.
        expect(execute(kept, t.sql, fields && fields.map((f) => ({...f})), width), `${now} again`).toEqual(fresh)
      }
    }
    // Something was masked, or the comparison proves nothing.
    expect(execute(kept, t.sql, AS_ANALYSED, 3).out.join()).not.toContain(Buffer.from('ada@example.com').toString('hex'))
  })

  it('follow the catalog: a column marked sensitive between two executions is masked in the second', () => {
    const t = oneTable(COLUMNS)
    const kept = factoryOf(t.catalog)
    const before = execute(kept, t.sql, AS_ANALYSED, 3)
    expect(before.masked.some((m) => m.startsWith('note'))).toBe(false)
    // What a CREATE TABLE … AS tells the catalog: `note` now holds e-mail addresses.
    t.catalog.markDerived({schema: 'public', name: 'people', columns: new Map([['note', {category: 'email', reason: 'filled from a test', source: 'lineage'}]])})
    const after = execute(kept, t.sql, AS_ANALYSED, 3)
    expect(after).toEqual(execute(factoryOf(t.catalog), t.sql, AS_ANALYSED, 3))
    expect(after.masked.some((m) => m.startsWith('note'))).toBe(true)
    expect(after.out).not.toEqual(before.out)
  })

  it('are not shared between factories of another mode for untraceable values', () => {
    const t = oneTable(COLUMNS)
    const masked = factoryOf(t.catalog, 'mask')
    const refused = factoryOf(t.catalog, 'deny')
    const untraced = [field('id', 1, 23), field('email', 0, 25, {tableOid: 0}), field('other', 0, 25, {tableOid: 0})]
    for (let i = 0; i < 2; i++) {
      expect(execute(masked, 'SELECT id, email, note FROM people', untraced, 3)).toEqual(execute(factoryOf(t.catalog, 'mask'), 'SELECT id, email, note FROM people', untraced, 3))
      expect(execute(refused, 'SELECT id, email, note FROM people', untraced, 3)).toEqual(execute(factoryOf(t.catalog, 'deny'), 'SELECT id, email, note FROM people', untraced, 3))
    }
  })
})

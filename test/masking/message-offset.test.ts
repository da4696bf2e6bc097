/**
 * The proxy hands the masking filter whole DataRow and CopyData messages with the body's offset
 * (5) and its end, as their place in the chunk they arrived in: no view at all for a row the
 * filter rewrites. The 5-byte header (type byte and length)
 * must then never be read as part of the row: a length whose bytes are a delimiter, a newline or
 * a backslash, or a row that is truncated, must give exactly what the body alone gives.
 */
import {beforeAll, describe, expect, it} from 'vitest'
import type {MaskingConfig} from '../../src/config/types.js'
import {createMaskingFilterFactory, type MaskingFilter} from '../../src/masking/filter.js'
import {loadParser} from '../../src/sql/parser.js'
import {ctx, oneTable, type Column} from './one-table.js'
import {encodeCopyData, encodeDataRow} from '../../src/wire/backend.js'

const COLUMNS: Column[] = [
  ['id', 23, 'int4'],
  ['email', 25, 'text'],
  ['full_name', 25, 'text'],
  ['note', 25, 'text'],
]
const table = oneTable(COLUMNS)
const {catalog} = table
const fields = table.fields()

function filters(sql: string): [MaskingFilter, MaskingFilter] {
  const masking: MaskingConfig = {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'}
  const factory = createMaskingFilterFactory({catalog, masking, identity: {groups: [], kind: 'human'}, hashKey: 'k'})
  return [factory(sql, ctx, {action: 'allow'}) as MaskingFilter, factory(sql, ctx, {action: 'allow'}) as MaskingFilter]
}

const hex = (b: Buffer | undefined) => b && Buffer.from(b).toString('hex')

/** Values padded so the message's length word holds each byte a parser could trip on. */
const VALUES = ['ada@example.com', 'Ada Lovelace', 'call 555-123-4567', 'c4ca4238a0b923820dcc509a6f75849b-00000001', 'x', '', 'a\\b', 'tab\tnl\n']
const TRIP_BYTES = [0x09, 0x0a, 0x0d, 0x2c, 0x40, 0x5c, 0x7c, 0x00, 0xff]

beforeAll(async () => {
  await loadParser()
})

describe('masking a whole message from its body offset', () => {
  it('gives the bytes and counts of the body alone for DataRows within a chunk, truncated ones included', () => {
    const [whole, body] = filters('SELECT id, email, full_name, note FROM people')
    whole.rowDescription!(fields)
    body.rowDescription!(fields)
    let rows = 0
    for (const a of VALUES) {
      for (const b of VALUES) {
        for (let pad = 0; pad < 300; pad += 7) {
          const values = [Buffer.from(String(pad)), Buffer.from(a), Buffer.from(b), pad % 2 ? null : Buffer.from('n'.repeat(pad))]
          const raw = encodeDataRow(values)
          for (const cut of [0, 3]) {
            const message = raw.subarray(0, raw.length - cut)
            let out: string | undefined | Error
            let reference: string | undefined | Error
            // Within its chunk, between other rows: nothing past the message's end may be read.
            const chunk = Buffer.concat([raw, message, raw])
            try {
              out = hex(whole.dataRowMessage!(chunk, fields, raw.length + 5, raw.length + message.length))
            } catch (error) {
              out = error as Error
            }
            try {
              reference = hex(body.dataRowMessage!(Buffer.from(message.subarray(5)), fields))
            } catch (error) {
              reference = error as Error
            }
            expect(out, `${JSON.stringify([a, b, pad, cut])}`).toEqual(reference)
            rows++
          }
        }
      }
    }
    expect(rows).toBeGreaterThan(5000)
    expect(whole.maskedValues).toBeGreaterThan(1000)
    expect(whole.maskedValues).toBe(body.maskedValues)
    expect(whole.maskedColumns).toEqual(body.maskedColumns)
    expect(whole.scannerHits).toEqual(body.scannerHits)
  })

  for (const sql of ['COPY people TO STDOUT', "COPY people TO STDOUT (DELIMITER '|')", "COPY people TO STDOUT (DELIMITER '@')", 'COPY people TO STDOUT (FORMAT csv, HEADER)']) {
    it(`gives the bytes and counts of the body alone for CopyData (${sql}), whatever the length word holds`, () => {
      const [whole, body] = filters(sql)
      const delimiter = sql.includes("'|'") ? '|' : sql.includes("'@'") ? '@' : sql.includes('csv') ? ',' : '\t'
      let lines = 0
      let tripped = 0
      for (const a of VALUES) {
        for (let pad = 0; pad < 300; pad++) {
          const line = `${pad}${delimiter}${a.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n')}${delimiter}Ada King${delimiter}${'n'.repeat(pad % 97)}${pad % 5 === 0 ? '\r\n' : '\n'}`
          const message = encodeCopyData(Buffer.from(line, 'utf8'))
          if (TRIP_BYTES.some((t) => message.subarray(1, 5).includes(t))) tripped++
          // Within its chunk, before a line with backslashes and delimiters: nothing past its end may be read.
          const after = encodeCopyData(Buffer.from(`a\\b${delimiter}\\N${delimiter}ada@example.com\n`, 'utf8'))
          const out = hex(whole.copyDataMessage!(Buffer.concat([after, message, after]), after.length + 5, after.length + message.length))
          const reference = hex(body.copyDataMessage!(Buffer.from(message.subarray(5))))
          expect(out, JSON.stringify(line)).toEqual(reference)
          lines++
        }
      }
      expect(tripped).toBeGreaterThan(lines / 10)
      expect(whole.maskedValues).toBeGreaterThan(lines / 2)
      expect(whole.maskedValues).toBe(body.maskedValues)
      expect(whole.maskedColumns).toEqual(body.maskedColumns)
    })
  }
})

/**
 * Result rows through the masking filter as the tunnel hands them over: the value scanner looks
 * only at what could hold something, and a row it leaves alone is forwarded byte for byte.
 */
import {beforeAll, describe, expect, it} from 'vitest'
import type {MaskingConfig} from '../../src/config/types.js'
import {Catalog, classifySnapshot} from '../../src/masking/catalog.js'
import {createMaskingFilterFactory} from '../../src/masking/filter.js'
import {loadParser} from '../../src/sql/parser.js'
import type {StatementContext} from '../../src/proxy/seam.js'
import type {FieldDescription} from '../../src/wire/fields.js'

const TABLE = 16400
const catalog = new Catalog(
  classifySnapshot(
    {
      relations: [
        {
          oid: TABLE,
          schema: 'public',
          name: 'stream',
          kind: 'table',
          rowTypeOid: TABLE + 2,
          columns: [
            {name: 'id', attnum: 1, typeOid: 23, typeName: 'int4'},
            {name: 'email', attnum: 2, typeOid: 25, typeName: 'text'},
            {name: 'note', attnum: 3, typeOid: 25, typeName: 'text'},
            {name: 'ssn', attnum: 4, typeOid: 23, typeName: 'int4'},
          ],
        },
      ],
      types: [],
      functions: [],
    },
    {mask: [], unmaskColumns: []},
  ),
)
const config: MaskingConfig = {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'}
const ctx = {sessionId: 's', connectionId: 1, protocol: 'simple', transactionStatus: 'I', database: 'db', user: 'u'} as StatementContext
const fields: FieldDescription[] = ['id', 'email', 'note', 'ssn'].map((name, i) => ({name, tableOid: TABLE, columnAttr: i + 1, typeOid: i === 0 || i === 3 ? 23 : 25, typeSize: -1, typeModifier: -1, format: 0}))

function maskRow(values: (string | null)[]): (string | null)[] | undefined {
  const factory = createMaskingFilterFactory({catalog, masking: config, identity: {groups: [], kind: 'human'}, hashKey: 'k'})
  const filter = factory('SELECT id, email, note, ssn FROM stream', ctx, {action: 'allow'})!
  filter.rowDescription!(fields)
  return filter.dataRow!(values.map((v) => (v === null ? null : Buffer.from(v))), fields)?.map((v) => (v === null ? null : v.toString()))
}

beforeAll(async () => {
  await loadParser()
})

describe('result rows', () => {
  it('masks sensitive columns by name whatever their type (an int `ssn` becomes 0), and what the scanner finds in free text', () => {
    expect(maskRow(['1', 'ada@example.com', 'call 912-34-5678 or ada.l@example.org', '7'])).toEqual(['1', 'a***@example.com', 'call ***-**-5678 or a***@example.org', '0'])
  })

  it('leaves a free-text value with digits but no sensitive shape alone', () => {
    const out = maskRow(['2', null, 'c4ca4238a0b923820dcc509a6f75849b-00000001', null])
    // Nothing changed: the filter says so, and the tunnel forwards the original DataRow.
    expect(out).toBeUndefined()
  })

  it('still finds a card number among the digits', () => {
    expect(maskRow(['3', null, 'a87ff679a2f3e71d9181a67b7542122c-4242424242424242', null])?.[2]).toBe('a87ff679a2f3e71d9181a67b7542122c-**** **** **** 4242')
  })
})

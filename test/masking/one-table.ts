/**
 * One table in a masking catalog, for tests that drive the masking filter directly: the catalog,
 * the RowDescription of `SELECT <every column> FROM people`, and a statement context.
 */
import {Catalog, classifySnapshot} from '../../src/masking/catalog.js'
import type {StatementContext} from '../../src/proxy/seam.js'
import type {FieldDescription} from '../../src/wire/fields.js'

/** A column as [name, type oid, type name]. */
export type Column = [string, number, string]

export const TABLE = 16400

export function oneTable(columns: Column[]) {
  const catalog = new Catalog(
    classifySnapshot(
      {
        relations: [{oid: TABLE, schema: 'public', name: 'people', kind: 'table', rowTypeOid: TABLE + 2, columns: columns.map(([name, typeOid, typeName], i) => ({name, attnum: i + 1, typeOid, typeName}))}],
        types: [],
        functions: [],
      },
      {mask: [], unmaskColumns: []},
    ),
  )
  return {
    catalog,
    sql: `SELECT ${columns.map((c) => c[0]).join(', ')} FROM people`,
    fields: (format = 0): FieldDescription[] => columns.map(([name, typeOid], i) => ({name, tableOid: TABLE, columnAttr: i + 1, typeOid, typeSize: -1, typeModifier: -1, format})),
  }
}

export const ctx = {sessionId: 's', connectionId: 1, protocol: 'simple', transactionStatus: 'I', database: 'db', user: 'u'} as StatementContext

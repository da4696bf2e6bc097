/**
 * Where a text's bind parameters go (`paramPlaces`), against a catalog: the proof the recording
 * needs to keep a parameter in clear. These routes are also covered through the tunnel
 * (recorded-params.test.ts), where code that ran also distrusts the connection; here each proof is
 * checked on its own, as it holds for a session that never distrusts names (an unmasked identity
 * gets no result filter, and so no record of what its connection ran).
 */
import {beforeAll, describe, expect, it} from 'vitest'
import {Catalog, classifySnapshot, type CatalogRelation} from '../../src/masking/catalog.js'
import {paramPlaces, type ParamPlace} from '../../src/masking/lineage.js'
import {loadParser} from '../../src/sql/parser.js'

function table(oid: number, name: string, cols: [string, string][], extra: Partial<CatalogRelation> = {}): CatalogRelation {
  return {oid, schema: 'public', name, kind: 'table', rowTypeOid: oid + 1, columns: cols.map(([n, t], i) => ({name: n, attnum: i + 1, typeOid: t === 'int4' ? 23 : 25, typeName: t})), ...extra}
}

const catalog = new Catalog(
  classifySnapshot(
    {
      relations: [
        table(100, 'people', [['id', 'int4'], ['full_name', 'text'], ['status', 'text'], ['label', 'checked_text']]),
        table(200, 'with_trigger', [['id', 'int4'], ['status', 'text']], {runsCode: true}),
        table(300, 'with_rls', [['id', 'int4'], ['status', 'text']], {rowSecurity: true}),
        table(400, 'parted', [['id', 'int4'], ['status', 'text']], {children: [401]}),
        table(401, 'parted_1', [['id', 'int4'], ['status', 'text']], {runsCode: true}),
      ],
      types: [],
      functions: ['steal'],
      operators: ['===', 'public.==='],
      codeTypes: ['checked_text', 'public.checked_text'],
    },
    {mask: [], unmaskColumns: []},
  ),
)

const places = (sql: string): Record<number, ParamPlace> => Object.fromEntries(paramPlaces(sql, catalog)!)
const NAME = {category: 'person_name'}

beforeAll(async () => {
  await loadParser()
})

describe('where bind parameters go', () => {
  it('proves comparisons with, assignments to and insertions into clean columns, and counts', () => {
    expect(places('select id from people where id = $1 and status in ($2, $3) and id = any($4) limit $5 offset $6')).toEqual({1: 'clean', 2: 'clean', 3: 'clean', 4: 'clean', 5: 'count', 6: 'count'})
    expect(places('update people set status = $1 where id = $2')).toEqual({1: 'clean', 2: 'clean'})
    expect(places('insert into people values ($1, $2, $3)')).toEqual({1: 'clean', 2: NAME, 3: 'clean'})
    expect(places('with p as (select id, full_name as status from people) select id from p where status = $1')).toEqual({1: NAME})
  })

  it('masks writes into relations that run code, and values of types that run code', () => {
    for (const rel of ['with_trigger', 'with_rls', 'parted']) {
      expect(places(`insert into ${rel} (id, status) values ($1, $2)`), rel).toEqual({1: 'masked', 2: 'masked'})
      expect(places(`update ${rel} set status = $1 where id = $2`), rel).toEqual({1: 'masked', 2: 'clean'})
    }
    expect(places('insert into people (id, label) values ($1, $2)')).toEqual({1: 'clean', 2: 'masked'})
    expect(places('select id from people where label = $1 or status = $2::checked_text')).toEqual({1: 'masked', 2: 'masked'})
  })

  it('masks every other place, and a parameter used in several places unless every one is clean', () => {
    expect(places('select $1::text, steal($2) from people where status = $3 || $4 and status === $5')).toEqual({1: 'masked', 2: 'masked', 3: 'masked', 4: 'masked', 5: 'masked'})
    expect(places('select id from people where status = $1 or full_name = $1')).toEqual({1: NAME})
    expect(places('select id from people where status = $1 or upper(status) = $1')).toEqual({1: 'masked'})
    expect(places('select id from nowhere where status = $1')).toEqual({1: 'masked'})
  })

  it('proves no unqualified comparison while names are distrusted', () => {
    expect(Object.fromEntries(paramPlaces('select id from people where id = $1 and id operator(pg_catalog.=) $2 limit $3', catalog, true)!)).toEqual({1: 'masked', 2: 'clean', 3: 'count'})
  })
})

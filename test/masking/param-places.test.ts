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
        // One name in two schemas, a trigger on the one outside public.
        table(500, 'notes', [['id', 'int4'], ['body', 'text']]),
        table(510, 'notes', [['id', 'int4'], ['body', 'text']], {schema: 's9', runsCode: true}),
        // `g text generated always as (a || '') stored`: the server computes it for the proposed row too.
        {...table(600, 'gen', [['id', 'int4'], ['a', 'text'], ['g', 'text'], ['full_name', 'text']]), columns: table(600, 'gen', [['id', 'int4'], ['a', 'text'], ['g', 'text'], ['full_name', 'text']]).columns.map((c) => (c.name === 'g' ? {...c, generated: "(a || ''::text)"} : c))},
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

  it('follows a value on where the same statement writes it: excluded, a writing CTE returning it', () => {
    expect(places('insert into people (id, status) values ($1, $2) on conflict (id) do update set full_name = excluded.status')).toEqual({1: 'clean', 2: NAME})
    expect(places('insert into people (id, status) values ($1, $2), ($3, $4) on conflict (id) do update set status = excluded.status, full_name = excluded.status')).toEqual({1: 'clean', 2: NAME, 3: 'clean', 4: NAME})
    for (const set of ["full_name = excluded.status || ''", 'full_name = excluded::text', 'status = (excluded).status', "(full_name, status) = (excluded.status, 'x')", "status = 'x' where excluded.status <> ''"]) {
      expect(places(`insert into people (id, status) values ($1, $2::text) on conflict (id) do update set ${set}`), set).toEqual({1: expect.anything(), 2: 'masked'})
    }
    expect(places('insert into people (id, status) values ($1, $2) on conflict (id) do update set status = excluded.status')).toEqual({1: 'clean', 2: 'clean'})
    // A generated column of the proposed row holds the proposed values it is computed from.
    expect(places('insert into gen (id, a) values ($1, $2) on conflict (id) do update set full_name = excluded.g')).toEqual({1: 'clean', 2: NAME})
    expect(places("insert into gen (id, a) values ($1, $2) on conflict (id) do update set full_name = excluded.g || ''")).toEqual({1: 'clean', 2: 'masked'})
    expect(places('insert into gen (id, a) values ($1, $2) on conflict (id) do update set a = excluded.g')).toEqual({1: 'clean', 2: 'clean'})
    expect(places('with i as (insert into people (id, status) values ($1, $2) returning status) update people set full_name = i.status from i')).toEqual({1: 'masked', 2: 'masked'})
    expect(places('with u as (update people set status = $1 where id = $2 returning id) select 1')).toEqual({1: 'masked', 2: 'clean'})
    expect(places('with u as (update people set status = $1 where id = $2) select 1')).toEqual({1: 'clean', 2: 'clean'})
    expect(places('insert into people (id, status) values ($1, $2) returning status')).toEqual({1: 'clean', 2: 'clean'})
    expect(places('prepare p(int, text) as insert into people (id, status) values ($1, $2) returning status')).toEqual({1: 'clean', 2: 'clean'})
  })

  it('reads a written name as the table, never as a CTE of the same name', () => {
    expect(places("with people as (select 1 as id, 'x'::text as full_name) insert into people (id, full_name) values ($1, $2)")).toEqual({1: 'clean', 2: NAME})
    expect(places("with people as (select 1 as id, 'x'::text as full_name) update people set full_name = $1 where id = $2")).toEqual({1: NAME, 2: 'clean'})
    // Its FROM reads the CTE, as PostgreSQL does.
    expect(places("with people as (select 1 as id, 'x'::text as full_name) select id from people where full_name = $1")).toEqual({1: 'clean'})
  })

  it('masks a value EXPLAIN prints in its plan', () => {
    expect(places('explain select id from people where status = $1 limit $2')).toEqual({1: 'masked', 2: 'masked'})
    expect(places('explain analyze update people set status = $1 where id = $2')).toEqual({1: 'masked', 2: 'masked'})
  })

  it('masks a write to a name any of whose schemas runs code', () => {
    expect(places('insert into notes (id, body) values ($1, $2)')).toEqual({1: 'masked', 2: 'masked'})
    expect(places('update notes set body = $1 where id = $2')).toEqual({1: 'masked', 2: 'clean'})
    expect(places('insert into public.notes (id, body) values ($1, $2)')).toEqual({1: 'clean', 2: 'clean'})
  })

  it('proves no unqualified comparison while names are distrusted', () => {
    expect(Object.fromEntries(paramPlaces('select id from people where id = $1 and id operator(pg_catalog.=) $2 limit $3', catalog, true)!)).toEqual({1: 'masked', 2: 'clean', 3: 'count'})
  })
})

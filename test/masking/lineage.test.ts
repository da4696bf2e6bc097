import {beforeAll, describe, expect, it} from 'vitest'
import {Catalog, classifySnapshot, type CatalogRelation} from '../../src/masking/catalog.js'
import {analyzeText, flatten, type StatementLineage} from '../../src/masking/lineage.js'
import {loadSqlParser} from '../../src/masking/sql.js'

function table(oid: number, name: string, cols: [string, string][], viewDefinition?: string): CatalogRelation {
  return {
    oid,
    schema: 'public',
    name,
    kind: viewDefinition ? 'view' : 'table',
    rowTypeOid: oid + 1,
    viewDefinition,
    columns: cols.map(([n, t], i) => ({name: n, attnum: i + 1, typeOid: t === 'int4' ? 23 : 25, typeName: t})),
  }
}

const catalog = new Catalog(
  classifySnapshot(
    {
      relations: [
        table(100, 'users', [['id', 'int4'], ['email', 'text'], ['ssn', 'text'], ['nickname', 'text']]),
        table(200, 'orders', [['id', 'int4'], ['user_id', 'int4'], ['total', 'int4']]),
        table(300, 'contacts', [['id', 'int4'], ['reach', 'text']], ' SELECT users.id, users.email AS reach FROM users;'),
      ],
      types: [],
      functions: ['lookup_email', 'public.lookup_email'],
    },
    {mask: ['public.users.nickname'], unmaskColumns: []},
  ),
)

function only(sql: string): StatementLineage {
  const r = analyzeText(sql, catalog)
  if (!r.ok) throw new Error(r.error)
  expect(r.statements).toHaveLength(1)
  return r.statements[0]!
}

/** Output column → the sensitive columns flowing into it, as `table.column`. */
function sources(sql: string): (string[] | 'unknown')[] {
  const s = only(sql)
  if (!s.columns) throw new Error(`no shape for ${sql}`)
  return s.columns.map((c) => (c.unknown ? 'unknown' : flatten(c).map((x) => `${x.relation.split('.')[1]}.${x.column}`)))
}

beforeAll(async () => {
  await loadSqlParser()
})

describe('lineage', () => {
  it.each([
    ['select email as e, id from users u', [['users.email'], []]],
    ['select u.email from users u', [['users.email']]],
    ["select lower(email) || '' from users", [['users.email']]],
    ['select md5(ssn)::text from users', [['users.ssn']]],
    ["select string_agg(email, ',') from users", [['users.email']]],
    ['select count(email), count(*) from users', [[], []]],
    ['select email is null from users', [[]]],
    ['select case when ssn like \'9%\' then 1 else 0 end from users', [['users.ssn']]],
    ['select * from users', [[], ['users.email'], ['users.ssn'], ['users.nickname']]],
    ['select o.*, u.id from orders o join users u on u.id = o.user_id', [[], [], [], []]],
    ['select * from users join orders using (id)', [[], ['users.email'], ['users.ssn'], ['users.nickname'], [], []]],
    ['with t as (select ssn as x from users) select x from t', [['users.ssn']]],
    ['with t(a, b) as (select id, email from users) select b, a from t', [['users.email'], []]],
    ['select y from (select email as y from users) s', [['users.email']]],
    ['select (select email from users limit 1), exists (select ssn from users)', [['users.email'], []]],
    ['select id from orders union select id from users union select length(ssn) from users', [['users.ssn']]],
    ['select id, total from orders', [[], []]],
    ['select reach from contacts', [['users.email']]],
    ['select * from contacts', [[], ['users.email']]],
    ['select x from users, lateral (select email) t(x)', [['users.email']]],
    ['select u.email from orders o, lateral (select email from users where users.id = o.user_id) u', [['users.email']]],
    ["select to_json(u)->>'email', to_json(u)->>'id' from users u", [['users.email'], []]],
    ['select (u).ssn from users u', [['users.ssn']]],
    ['select v from (values (1), (2)) t(v)', [[]]],
    ['select email from (values (1)) t(v), users', [['users.email']]],
    ['update users set email = email returning ssn, id', [['users.ssn'], []]],
    ['update users set email = email returning with (old as o) o.ssn, new.email', [['users.ssn'], ['users.email']]],
    ['delete from users returning *', [[], ['users.email'], ['users.ssn'], ['users.nickname']]],
    ['select lookup_email(1)', ['unknown']],
    ['select email from not_discovered', ['unknown']],
    ['select relname from pg_class', [[]]],
    ['select c.relname, relkind from pg_catalog.pg_class c', [[], []]],
    ['select rolname, rolpassword from pg_authid', [[], ['pg_authid.rolpassword']]],
    ['select a from pg_authid a', ['unknown']],
    ['select pid, query from pg_stat_activity', [[], ['pg_stat_activity.query']]],
    ['select most_common_vals::text from pg_stats', ['unknown']],
  ])('%s', (sql, expected) => {
    expect(sources(sql)).toEqual(expected)
  })

  it('keeps whole rows and documents as fields, so masking can reach inside', () => {
    for (const sql of ['select u from users u', 'select row_to_json(u) from users u', 'select json_agg(u) from users u', 'select u::text from users u', "select json_build_object('k', email) from users"]) {
      const col = only(sql).columns![0]!
      expect(col.fields, sql).toBeDefined()
      expect(flatten(col).length, sql).toBeGreaterThan(0)
    }
    const fields = only("select json_build_object('k', email, 'n', id) from users").columns![0]!.fields!
    expect(fields.map((f) => [f.name, flatten(f).map((s) => s.column)])).toEqual([
      ['k', ['email']],
      ['n', []],
    ])
  })

  it('classifies a column named by a mask: glob with its reason', () => {
    const nick = catalog.lookup('public', 'users')[0]!.columns.find((c) => c.name === 'nickname')!
    expect(nick.sensitive).toMatchObject({source: 'config', reason: 'configured by mask: public.users.nickname'})
  })

  it('describes what statements send', () => {
    expect(only('insert into orders values (1, 1, 1)').rows).toBe('no')
    expect(only('select 1 into t').rows).toBe('no')
    // The plan names no stored value; but EXPLAIN ANALYZE runs the query, whose errors are a reader's.
    const explain = only('explain select email from users')
    expect(explain).toMatchObject({rows: 'yes', touchesSensitive: true})
    expect(explain.columns!.map((c) => flatten(c).length + Number(c.unknown))).toEqual([0])
    const copy = only("copy (select email, id from users) to stdout with (format csv, header, delimiter ';')").copy!
    expect(copy).toMatchObject({format: 'csv', delimiter: ';', header: true})
    expect(copy.columns!.map((c) => flatten(c).length)).toEqual([1, 0])
    expect(only('copy users (ssn) to stdout').copy!.columns!.map((c) => c.name)).toEqual(['ssn'])
    expect(only('copy users from stdin').copy).toBeUndefined()
    expect(only('declare c cursor for select ssn from users').defines).toMatchObject({kind: 'cursor', name: 'c'})
    expect(only('fetch 10 from c').uses).toEqual({kind: 'cursor', name: 'c'})
    expect(only('do $$ begin end $$')).toMatchObject({opaque: true, touchesSensitive: true})
    expect(only("select pg_notify('x', email) from users").sideChannels).toHaveLength(1)
  })

  it('marks results whose shape it cannot know when they read sensitive data', () => {
    expect(only('select * from json_populate_record(null::users, (select row_to_json(u) from users u))').untraceable).toEqual(['the shape of the result could not be determined'])
    expect(only('select * from generate_series(1, 3)').untraceable).toEqual([])
    expect(only('select lookup_email(id) from users').untraceable[0]).toMatch(/lookup_email|cannot follow/)
  })

  it('reports parse errors instead of guessing', () => {
    expect(analyzeText('select from where', catalog)).toMatchObject({ok: false})
  })
})

describe('planning a result', () => {
  const field = (name: string, tableOid: number, columnAttr: number, typeOid = 25) => ({name, tableOid, columnAttr, typeOid, typeSize: -1, typeModifier: -1, format: 0})
  const opts = {catalog, maskUntraceable: true, strategyOf: () => 'partial' as const}

  it('masks by the server-reported column and by lineage, and only scans the rest', async () => {
    const {planResult} = await import('../../src/masking/plan.js')
    const plan = planResult([field('id', 100, 1, 23), field('e', 100, 2), field('x', 0, 0)], 3, only('select id, email as e, lower(ssn) as x from users'), 0, opts)
    expect(plan.work.map((w) => [w.index, w.mask?.kind ?? 'scan'])).toEqual([
      [1, 'value'],
      [2, 'value'],
    ])
    expect(plan.masked.map((m) => [m.name, m.how, m.strategy])).toEqual([
      ['e', 'direct', 'partial'],
      ['x', 'derived', 'redact'],
    ])
  })

  it('distrusts an analysis the server contradicts, masking what it cannot vouch for', async () => {
    const {planResult} = await import('../../src/masking/plan.js')
    // The server says column 1 is users.ssn, column 2 is computed; the analysis thinks otherwise.
    const plan = planResult([field('id', 100, 3), field('total', 0, 0, 23)], 2, only('select id, total from orders'), 0, opts)
    expect(plan.masked.map((m) => [m.name, m.how])).toEqual([
      ['id', 'direct'],
      ['total', 'untraceable'],
    ])
  })
})

/**
 * A fresh catalog (issue 13, family 17): relations and columns created, and views replaced, by
 * migrations that did not go through this tunnel. Ordinary data reads exactly as it does directly
 * (transcripts of node-postgres and psql compared byte for byte), sensitive data is masked by its
 * category rather than as untraceable, and a stale view definition never shows a value in clear.
 */
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {Catalog, classifySnapshot, readCatalog, type CatalogQuery} from '../../src/masking/catalog.js'
import {oneAtATime} from '../../src/masking/catalog-query.js'
import {analyzeText} from '../../src/masking/lineage.js'
import {loadParser} from '../../src/sql/parser.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {pgEnv, run} from '../helpers/run.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'

/** What a client sees of a result: column names and types, and every value as the driver parsed it. */
async function transcript(c: pg.Client, sql: string, extended: boolean): Promise<string> {
  const r = await c.query(extended ? ({text: sql, queryMode: 'extended'} as pg.QueryConfig) : sql)
  return JSON.stringify({fields: r.fields.map((f) => [f.name, f.dataTypeID]), rows: r.rows})
}

const ORDINARY = [
  'select * from shipments order by id',
  'select s.*, length(status) as n, weight * 2 as double, shipped_on + 1 as next_day from shipments s order by id',
  'select status, count(*), sum(weight), max(shipped_on) from shipments group by status order by status',
  'select row_to_json(s) from shipments s order by id',
  "select string_agg(status || ':' || tracking, ',' order by id) from shipments",
  'select s.id, s.tracking, o.status, o.total_cents, o.placed_at from shipments s join orders o on o.id = s.order_id order by s.id limit 3',
]

describe('a catalog that follows the schema, whoever changed it', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel & {env: NodeJS.ProcessEnv}

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) => c.query('create view v_label as select id, country as label from customers'))
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
    // Only now, outside the tunnel, as a migration would: a table of ordinary data, one with
    // sensitive columns, and a column added to a known table.
    await withClient(fx.db.url, (c) =>
      c.query(`create table shipments (id int primary key, order_id int, status text, tracking text, weight numeric(8,2), shipped_on date, tags text[], meta jsonb);
        insert into shipments select i, i, (array['packed','sent','lost'])[1 + i % 3], 'TRK' || lpad(i::text, 10, '0'), i * 1.25, date '2026-10-01' + i, array['a' || i, 'b'], jsonb_build_object('n', i, 'ref', 'R-' || (1000 + i)) from generate_series(1, 12) i;
        create table fresh_people (id int, email text, phone text, nickname text);
        insert into fresh_people select id, email, phone, 'nick' || id from customers;
        alter table orders add column buyer_email text;
        update orders set buyer_email = (select email from customers where customers.id = orders.customer_id);`),
    )
  })

  afterAll(async () => {
    await tunnel?.close()
    await fx?.close()
  })

  it.each([
    ['text', false, false],
    ['text, extended protocol', true, false],
    ['binary, extended protocol', true, true],
  ])('reads a table created outside the tunnel exactly as directly (node-postgres, %s)', async (_name, extended, binary) => {
    const direct = new pg.Client({connectionString: fx.db.url, binary} as pg.ClientConfig)
    await direct.connect()
    const through = await tunnel.client({binary} as Partial<pg.ClientConfig>)
    try {
      for (const sql of ORDINARY) expect(await transcript(through, sql, extended), sql).toBe(await transcript(direct, sql, extended))
    } finally {
      await direct.end()
    }
  })

  it('reads a table created outside the tunnel exactly as directly (psql)', async () => {
    const script = [...ORDINARY.map((q) => `${q};`), '\\x on', 'select * from shipments where id = 3;', '\\x off', '\\copy shipments to stdout', '\\d shipments'].join('\n')
    const u = new URL(fx.db.url)
    const directEnv = {PGHOST: u.hostname, PGPORT: u.port, PGUSER: decodeURIComponent(u.username), PGPASSWORD: decodeURIComponent(u.password), PGDATABASE: fx.db.database}
    const direct = await run('psql', ['-X', '-f', '-'], {env: directEnv, input: script})
    const through = await run('psql', ['-X', '-f', '-'], {env: pgEnv(tunnel.info.port, tunnel.info.password, fx.db.database), input: script})
    expect(direct.stderr).toBe('')
    expect(through.stdout).toBe(direct.stdout)
    expect(through.stderr).toBe(direct.stderr)
  })

  it('masks the sensitive columns of a table created outside the tunnel by their category, not as untraceable', async () => {
    const c = await tunnel.client()
    const r = await c.query('select id, email, phone, nickname from fresh_people order by id limit 1')
    expect(r.rows[0]).toMatchObject({id: 1, nickname: 'nick1'})
    expect(r.rows[0].email).toMatch(/^a\*\*\*@example\.com$/)
    expect(r.rows[0].phone).toMatch(/^\+\*-\*\*\*-\*\*\*-\*\*\d\d$/)
    const added = await c.query('select id, buyer_email from orders order by id limit 1')
    expect(added.rows[0].buyer_email).toMatch(/^\w\*\*\*@example\.com$/)
    expect(leaked(JSON.stringify([r.rows, added.rows]), fx.secrets)).toEqual([])
  })

  it('classifies a table this tunnel created from a query by that query, before and after the catalog is re-read', async () => {
    const c = await tunnel.client()
    await c.query('create temp table copied as select id, email as contact, full_name as label, country from customers')
    await c.query('create temp table copied_too as select id, lower(email) || \'\' as contact, row(c.*)::text as whole from customers c')
    const rows = [...(await c.query('select * from copied order by id')).rows, ...(await c.query('select * from copied_too order by id')).rows]
    expect(rows[0]).toMatchObject({id: 1, contact: 'a***@example.com', label: '[redacted]', country: 'US'})
    // `lower(email) || ''` is derived, not email's own value: redacted, as `partial` would keep part of whatever it holds.
    expect(rows.at(-1)).toMatchObject({contact: 'redacted@masked.invalid', whole: '[masked]'})
    // Values copied into the columns of an existing table, by INSERT … SELECT or UPDATE.
    await c.query('create temp table memos (id int, memo text, note text)')
    await c.query('insert into memos (id, memo) select id, full_name from customers')
    await c.query("update memos set note = (select address from customers where customers.id = memos.id) || ''")
    const memos = (await c.query('select * from memos order by id')).rows
    expect(memos[0]).toEqual({id: 1, memo: '[redacted]', note: '[redacted]'})
    expect(leaked(JSON.stringify([rows, memos]), fx.secrets)).toEqual([])
  })

  it('makes a lasting table from a query only where a read from scratch masks what it copies', async () => {
    const c = await tunnel.client()
    // Columns named and typed as their sources are classified as they are by any later read.
    await c.query('create table kept_copy as select id, email, full_name, country from customers')
    expect((await c.query('select id, email, full_name, country from kept_copy order by id limit 1')).rows[0]).toEqual({id: 1, email: 'a***@example.com', full_name: '[redacted]', country: 'US'})
    // Renamed or derived, they would read as clean in any other session: refused, nothing made.
    for (const sql of ["create table lost_copy as select id, lower(email) || '' as contact from customers", 'create table lost_copy as select id, full_name as label from customers', 'select id, email as contact into lost_copy from customers']) {
      await expect(c.query(sql), sql).rejects.toThrow(/masking refuses creating lost_copy: it copies values from public\.customers\.(email|full_name) into lost_copy\.(contact|label)/)
    }
    expect((await withClient(fx.db.url, (d) => d.query("select count(*)::int as n from pg_class where relname = 'lost_copy'"))).rows[0].n).toBe(0)
  })

  it('never trusts the old definition of a view replaced outside the tunnel', async () => {
    const c = await tunnel.client()
    // Known when the tunnel opened: the label is the country, clean.
    expect((await c.query('select label from v_label where id = 1')).rows[0]).toEqual({label: 'US'})
    await withClient(fx.db.url, (d) => d.query('create or replace view v_label as select id, full_name as label from customers'))
    const seen: string[] = []
    for (const binary of [false, true]) {
      const b = await tunnel.client({binary} as Partial<pg.ClientConfig>)
      seen.push(JSON.stringify((await b.query({text: 'select label from v_label order by id', queryMode: binary ? 'extended' : undefined} as pg.QueryConfig)).rows))
      seen.push(JSON.stringify((await b.query('select upper(label) || \'\' as l from v_label order by id')).rows))
    }
    expect(seen.join('\n')).toMatch(/\[redacted\]|\[masked\]/)
    expect(leaked(seen.join('\n'), fx.secrets)).toEqual([])
  })
})

describe('catalog re-reads for names it does not know', () => {
  let db: UpstreamInfo
  let admin: pg.Client
  let reads = 0
  let failing = false
  const query: CatalogQuery = oneAtATime(async (sql) => {
    if (failing) throw new Error('catalog connection lost')
    if (sql.includes('with rels as')) reads++
    return (await admin.query(sql)).rows
  })
  const config = {mask: [], unmaskColumns: []}

  beforeAll(async () => {
    await loadParser()
    db = await createTestDatabase('fresh')
    admin = new pg.Client({connectionString: db.url})
    await admin.connect()
    await admin.query('create table known (id int, note text)')
  })

  afterAll(async () => {
    await admin?.end()
  })

  async function catalog(minRereadMs: number): Promise<Catalog> {
    const c = new Catalog(classifySnapshot(await readCatalog(query), config), {query, config}, minRereadMs)
    reads = 0
    return c
  }

  it('lets every statement that misses the same relation wait for one shared re-read', async () => {
    const cat = await catalog(60_000)
    await admin.query('create table late (id int, contact_email text)')
    const misses = analyzeText('select * from late', cat)
    expect(misses.ok && misses.statements[0]!.misses).toEqual([{relation: 'late'}])
    await Promise.all(Array.from({length: 5}, () => cat.ensureFresh({misses: [{relation: 'late'}], views: []})))
    expect(reads).toBe(1)
    // Known now, its columns classified by name.
    expect(cat.lookup(undefined, 'late')[0]!.columns.find((x) => x.name === 'contact_email')!.sensitive?.category).toBe('email')
    expect(cat.ensureFresh({misses: [{relation: 'late'}], views: []})).toBeUndefined()
  })

  it('re-reads for a relation that does not exist at most once per interval', async () => {
    const cat = await catalog(60_000)
    await cat.ensureFresh({misses: [{relation: 'nowhere'}], views: []})
    expect(cat.ensureFresh({misses: [{relation: 'nowhere'}], views: []})).toBeUndefined()
    expect(reads).toBe(1)
  })

  it('re-reads for a column added to a known relation', async () => {
    const cat = await catalog(60_000)
    await admin.query('alter table known add column ssn text')
    const l = analyzeText('select id, ssn from known', cat)
    expect(l.ok && l.statements[0]!.misses).toEqual([{schema: 'public', relation: 'known', column: 'ssn'}])
    await cat.ensureFresh({misses: [{schema: 'public', relation: 'known', column: 'ssn'}], views: []})
    expect(reads).toBe(1)
    const again = analyzeText('select id, ssn from known', cat)
    expect(again.ok && again.statements[0]!.columns![1]!.sources.map((s) => s.category)).toEqual(['national_id'])
  })

  it('masks as untraceable when the catalog cannot be read, and distrusts views that changed', async () => {
    await admin.query("create table base (id int, email text, kind text); create view v_kind as select id, kind as k from base")
    const cat = await catalog(0)
    const viewOid = cat.lookup(undefined, 'v_kind')[0]!.oid
    const before = analyzeText('select k from v_kind', cat)
    expect(before.ok && before.statements[0]!.views).toEqual([viewOid])
    expect(before.ok && before.statements[0]!.columns![0]!.unknown).toBe(false)
    await admin.query('create or replace view v_kind as select id, email as k from base')
    failing = true
    try {
      const refused = await cat.ensureFresh({misses: [], views: [viewOid]})!.then(
        () => 'read',
        (e: Error) => e.message,
      )
      expect(refused).toBe('catalog connection lost')
    } finally {
      failing = false
    }
    const after = analyzeText('select k from v_kind', cat)
    expect(after.ok && after.statements[0]!.columns![0]!.unknown).toBe(true)
    // Once it can be read, the new definition is followed.
    await cat.ensureFresh({misses: [], views: [viewOid]})
    const fresh = analyzeText('select k from v_kind', cat)
    expect(fresh.ok && fresh.statements[0]!.columns![0]!.sources.map((s) => s.column)).toEqual(['email'])
  })
})

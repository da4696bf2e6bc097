/**
 * A session whose open transaction holds a lock the catalog's own reads need: pg_get_viewdef locks
 * every relation a view reads, so after `BEGIN; ALTER TABLE customers …` a re-read of the catalog
 * waits on the session, and a session waiting on that re-read waited on itself until the catalog
 * connection's statement_timeout. Through the tunnel `dbgate connect` builds (masking on, policy
 * pack none, so policy's own catalog lookups share the connection), each statement completes,
 * with what the catalog cannot prove masked, and values are in clear again once committed.
 */
import pg from 'pg'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'

/** Well under the catalog connection's 30 s statement_timeout, which a self-deadlock used to wait out. */
const CASE_TIMEOUT_MS = 20_000

describe('masking: a transaction holding locks the catalog read needs', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel & {env: NodeJS.ProcessEnv}

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) =>
      c.query(`create view v_label as select id, country as label from customers;
        create view v_order_totals as select customer_id, sum(total_cents) as total from orders group by customer_id;
        create table people (id int primary key, full_name text, country text);
        insert into people select id, full_name, country from customers;
        create view v_people as select id, country from people;`),
    )
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
  })

  afterAll(async () => {
    await tunnel?.close()
    await fx?.close()
  })

  /** Clients of the current case. */
  const open: pg.Client[] = []
  const client = async (): Promise<pg.Client> => {
    const c = await tunnel.client()
    open.push(c)
    return c
  }

  afterEach(async () => {
    // A failed case must not leave its transaction, and its locks, to the next.
    for (const c of open.splice(0)) await c.end().catch(() => {})
  })

  /** Runs `steps` in one transaction and returns the rows of the last; the transaction is left open. */
  async function inTransaction(c: pg.Client, steps: string[]): Promise<Record<string, unknown>[]> {
    await c.query('begin')
    let rows: Record<string, unknown>[] = []
    for (const sql of steps) rows = (await c.query(sql)).rows
    return rows
  }

  it.each([
    ['ALTER TABLE', ['alter table customers add column nickname text'], 'select id, full_name, country from customers order by id'],
    // Policy looks the function up (and reads its body) through the same catalog connection.
    ['ALTER TABLE, then a call of a function not looked up yet', ['alter table orders add column note text'], 'select id, full_name, country, get_email(id) as contact from customers order by id'],
    ['TRUNCATE of a table a view reads', ['truncate payments, orders'], 'select id, full_name, country from customers order by id'],
    ['DROP and CREATE of a table with sensitive values', ['drop view v_people', 'drop table people', 'create table people (id int primary key, full_name text, country text)', 'insert into people select id, full_name, country from customers'], 'select id, full_name, country from people order by id'],
  ])('returns the rows after %s in the same transaction, masked, and in clear after COMMIT', async (_label, steps, read) => {
    const c = await client()
    const rows = await inTransaction(c, [...steps, read])
    expect(rows.length).toBeGreaterThan(0)
    expect(leaked(JSON.stringify(rows), fx.secrets)).toEqual([])
    await c.query('commit')
    const after = (await c.query(read)).rows
    expect(after.map((r) => r.country)).toEqual(after.map(() => 'US'))
    expect(leaked(JSON.stringify(after), fx.secrets)).toEqual([])
  }, CASE_TIMEOUT_MS)

  it('masks a view replaced in the same transaction as of unknown origin, and reads its new definition after COMMIT', async () => {
    const c = await client()
    const read = 'select * from v_label order by id'
    const rows = await inTransaction(c, ['create or replace view v_label as select id, country as label, full_name as who from customers', read])
    expect(rows.length).toBeGreaterThan(0)
    // The catalog still holds the definition before the change: nothing in the view is trusted.
    expect(rows.map((r) => r.label)).not.toContain('US')
    expect(leaked(JSON.stringify(rows), fx.secrets)).toEqual([])
    await c.query('commit')
    const after = (await c.query(read)).rows
    expect(after.map((r) => r.label)).toEqual(after.map(() => 'US'))
    expect(leaked(JSON.stringify(after), fx.secrets)).toEqual([])
  }, CASE_TIMEOUT_MS)

  it.each([
    ['with the same columns', 'v_where', 'select id, address as place from customers'],
    ['with a column added', 'v_where_more', 'select id, address as place, 1 as n from customers'],
  ])('masks a view replaced in the same transaction to read a sensitive column under a clean name (%s)', async (_label, view, definition) => {
    const c = await client()
    await withClient(fx.db.url, (d) => d.query(`create view ${view} as select id, country as place from customers`))
    // Known to the catalog before the change.
    await c.query(`select * from ${view}`)
    const rows = await inTransaction(c, [`create or replace view ${view} as ${definition}`, `select * from ${view} order by id`])
    expect(rows.length).toBeGreaterThan(0)
    expect(leaked(JSON.stringify(rows), fx.secrets)).toEqual([])
    await c.query('rollback')
  }, CASE_TIMEOUT_MS)

  it('returns the rows of a table the catalog has not read yet after LOCK TABLE … IN ACCESS EXCLUSIVE MODE, masked, and in clear after COMMIT', async () => {
    // A tunnel of its own, its catalog read before the table exists: the shared one may still have
    // a re-read pending from an earlier case, which would read the table before the lock is taken.
    const own = await openPipelineTunnel(fx.db, 'policy: none')
    try {
      const c = await own.client()
      // A read of a known table waits for the catalog's first read to end.
      await c.query('select country from customers limit 1')
      // Created outside the tunnel: the first read of it through the tunnel re-reads the catalog.
      await withClient(fx.db.url, (d) => d.query(`create table made_outside (id int, country text); insert into made_outside values (1, 'NL')`))
      const read = 'select * from made_outside'
      const rows = await inTransaction(c, ['lock table customers in access exclusive mode', read])
      expect(rows).toHaveLength(1)
      expect(rows[0]!.country).not.toBe('NL')
      await c.query('commit')
      expect((await c.query(read)).rows).toEqual([{id: 1, country: 'NL'}])
      await c.end()
    } finally {
      await own.close()
    }
  }, CASE_TIMEOUT_MS)

  it('does not read the catalog again after every statement of a transaction that changed it, only when it commits', async () => {
    // Each such read waits for the transaction's own locks until lock_timeout, and every other
    // session's statements wait for a read under way: a migration's transaction would slow everyone.
    await withClient(fx.db.url, (d) => d.query('create table migrating (id int, full_name text); insert into migrating values (1, null); create view v_migrating as select id from migrating'))
    const warnings: string[] = []
    const t = await openPipelineTunnel(fx.db, 'policy: none', {log: (level, message) => void (level !== 'info' && warnings.push(message))})
    try {
      const c = await t.client()
      const other = await t.client()
      await c.query('begin')
      await c.query('alter table migrating add column nickname text')
      for (let i = 0; i < 3; i++) {
        await c.query('select id from v_migrating')
        expect((await other.query('select 1 as one')).rows).toEqual([{one: 1}])
      }
      await c.query('commit')
      expect((await other.query('select nickname from migrating')).rows).toEqual([{nickname: null}])
      await c.end()
      await other.end()
      expect(warnings.filter((w) => /re-read the catalog/.test(w))).toEqual([])
    } finally {
      await t.close()
      await withClient(fx.db.url, (d) => d.query('drop view v_migrating; drop table migrating'))
    }
  }, CASE_TIMEOUT_MS)
})

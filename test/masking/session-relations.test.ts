/**
 * Relations of the session's own that the catalog has not read, or reads under another name:
 * a temporary table (in pg_temp_<n>, which `pg_temp.` names too) and a table the open transaction
 * created. What is copied into them from sensitive columns must come out masked, whatever they
 * are called and however the copy names them. An unqualified `pg_…` name the catalog does not know
 * was taken for a system relation, clean; a fill written `INSERT INTO pg_temp.t` marked a relation
 * pg_temp.t that the catalog knows as pg_temp_3.t, and with no column list marked nothing. A
 * column rewritten by `ALTER TABLE … ALTER COLUMN … TYPE … USING` (an UPDATE by another name) was
 * not followed at all. information_schema is an ordinary schema a superuser may make relations in,
 * and all of it was taken for the system's; its views of user mappings show their passwords.
 * Copies into lasting tables' clean columns are refused now (a read from scratch would show them);
 * the session's temporary tables take them, masked.
 */
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'

/** Each copies full names and addresses (which only lineage can mask: the scanner does not know them) and reads them back. */
const COPIES: readonly (readonly string[])[] = [
  // pg_ names the catalog does not know
  ['create temp table pg_a (n text, a text)', 'insert into pg_temp.pg_a select full_name, address from customers', 'select * from pg_a'],
  ['create temp table pg_b (n text)', 'insert into pg_temp.pg_b select full_name from customers returning 1', 'select n from pg_b'],
  ['begin', 'create table public.pg_c (n text)', 'insert into pg_c select full_name from customers', 'select * from pg_c', 'rollback'],
  ['begin', 'create table public.pg_d (n text)', 'insert into public.pg_d select address from customers', 'table pg_d', 'rollback'],
  ['create temp table pg_e (n text)', 'insert into pg_temp.pg_e (n) select full_name from customers', 'select upper(n) from pg_e'],
  // fills written with pg_temp
  ['create temp table t_a (n text)', 'insert into pg_temp.t_a select full_name from customers', 'select * from t_a'],
  ['create temp table t_b (n text)', 'insert into pg_temp.t_b select address from customers', 'select * from pg_temp.t_b'],
  ['create temp table t_c (x int, n text)', 'insert into pg_temp.t_c (x, n) select 1, full_name from customers', 'select n from t_c'],
  ['create temp table t_d (n text)', "insert into t_d values ('x')", 'update pg_temp.t_d set n = c.address from customers c', 'select n from t_d'],
  ['create temp table t_e (n text)', 'with s as (select full_name from customers) insert into pg_temp.t_e select * from s', 'table t_e'],
  ['create table pg_temp.t_f as select full_name as n from customers', 'select n from t_f'],
  // MERGE: an INSERT action with no column list fills the columns in order, which the catalog does not know
  ['create temp table m_a (n text)', 'merge into m_a using customers c on false when not matched then insert values (c.full_name)', 'select n from m_a'],
  ['create temp table m_b (x int, n text)', 'merge into pg_temp.m_b t using customers c on t.x = c.id when not matched then insert values (c.id, c.address)', 'table m_b'],
  ['create temp table m_c (n text)', "insert into m_c values ('x')", 'merge into m_c using (select full_name from customers limit 1) c on true when matched then update set n = c.full_name', 'select * from m_c'],
  ['create temp table m_d (n text)', 'merge into m_d using (select address from customers) s on false when not matched then insert (n) values (s.address)', 'select n from m_d'],
  ['begin', 'create table public.m_e (n text)', 'merge into m_e using customers c on false when not matched then insert values (c.full_name)', 'select * from m_e', 'rollback'],
  // ALTER COLUMN … TYPE … USING rewrites the column from the row: an UPDATE by another name
  ['begin', 'alter table customers alter column country type text using full_name', 'select country from customers', 'rollback'],
  ['begin', 'alter table customers alter column country type text using full_name; select country from customers', 'rollback'],
  ['begin', "alter table only public.customers alter column country set data type varchar(200) using address || '', alter column created_at type text using upper(full_name)", 'select country, created_at from customers', 'rollback'],
  ['begin', 'alter table customers alter column country type text using full_name', 'select c.country from orders o join customers c on c.id = o.customer_id', 'rollback'],
]

describe('copies into relations of the session the catalog has not read, and columns rewritten in place', () => {
  let fx: MaskingFixture
  let t: PipelineTunnel
  beforeAll(async () => {
    fx = await maskingFixture()
    t = await openPipelineTunnel(fx.db, 'policy: none')
  }, 120_000)
  afterAll(async () => {
    await t?.close()
    await fx?.close()
  })

  it('come out masked in temporary tables, are refused in lasting ones, and the system relations still read in clear', async () => {
    for (const steps of COPIES) {
      const lasting = steps.some((sql) => /^(create table public\.|alter table (only )?(public\.)?customers)/.test(sql))
      const c = await t.client()
      let shown = ''
      try {
        for (const sql of steps) {
          const r: pg.QueryResult | pg.QueryResult[] | Error = await c.query(sql).catch((e: Error) => e)
          shown += r instanceof Error ? `error: ${r.message}\n` : JSON.stringify((Array.isArray(r) ? r : [r]).map((x) => x.rows))
        }
      } finally {
        await c.end()
      }
      expect(leaked(shown, fx.secrets), steps.join('; ')).toEqual([])
      // The copy happened and was read back: rows came, masked; or it was refused before it ran.
      if (lasting) expect(shown, steps.join('; ')).toMatch(/error: dbgate: masking refuses (writing to|creating) (public\.)?(pg_c|pg_d|m_e|customers): it copies values from public\.customers\.(full_name|address)/m)
      else expect(shown, steps.join('; ')).toMatch(/"[^"]*":"[^"]*(\*|masked|redacted)/)
      if (!lasting) expect(shown, steps.join('; ')).not.toContain('error:')
    }
    const c = await t.client()
    try {
      expect((await c.query("select relname from pg_class where relname = 'customers'")).rows).toEqual([{relname: 'customers'}])
      // A copy made clean stays clean.
      await c.query('create temp table pg_plain (n text)')
      await c.query("insert into pg_temp.pg_plain select 'plain ' || id from customers where id = 1")
      expect((await c.query('select n from pg_plain')).rows).toEqual([{n: 'plain 1'}])
      // A rewrite from clean values leaves the column clean (marks outlive a rollback: not customers.country).
      await c.query('begin')
      await c.query("alter table orders alter column status type text using 'x' || customer_id")
      expect((await c.query('select status from orders where customer_id = 1 limit 1')).rows).toEqual([{status: 'x1'}])
      await c.query('rollback')
    } finally {
      await c.end()
    }
  })

  it('takes only information_schema\'s own relations for the system\'s, and masks the passwords its views show', async () => {
    const PASSWORD = 'PlainMappingPassw0rd'
    const c = await t.client()
    let shown = ''
    const show = async (sql: string) => {
      shown += JSON.stringify((await c.query(sql)).rows)
    }
    try {
      await c.query('create extension if not exists postgres_fdw')
      await c.query("create server elsewhere foreign data wrapper postgres_fdw options (host 'localhost')")
      await c.query(`create user mapping for current_user server elsewhere options (user 'u', password '${PASSWORD}')`)
      for (const sql of ['select * from information_schema.user_mapping_options', 'select option_value from information_schema.user_mapping_options', 'select umoptions from information_schema._pg_user_mappings']) await show(sql)
      // A superuser may make relations of its own in information_schema (the catalog does not read them).
      // A copy into such a table is refused as into any lasting one; a view there is followed as any view is.
      await expect(c.query('create table information_schema.copied as select full_name as a, address as b from customers')).rejects.toThrow(/masking refuses creating information_schema\.copied/)
      await c.query('create view information_schema.seen as select full_name as a from customers')
      await c.query('create table information_schema.filled (a text)')
      await expect(c.query('insert into information_schema.filled select address from customers')).rejects.toThrow(/masking refuses writing to information_schema\.filled/)
      for (const sql of ['select a from information_schema.seen', 'table information_schema.filled']) await show(sql)
      expect(shown).toMatch(/"a":"\[(redacted|masked)\]"/)
      expect(leaked(shown, [...fx.secrets, PASSWORD])).toEqual([])
      // The system's own still read in clear.
      expect((await c.query("select table_name from information_schema.tables where table_name = 'customers'")).rows).toEqual([{table_name: 'customers'}])
      expect((await c.query("select option_name from information_schema.user_mapping_options where option_name = 'user'")).rows).toEqual([{option_name: 'user'}])
    } finally {
      await c.end()
    }
  })

  it('refuses a column rewritten from sensitive values, which every later session would read in clear', async () => {
    const c = await t.client()
    try {
      await expect(c.query('alter table customers alter column country type text using address')).rejects.toThrow(/masking refuses writing to (public\.)?customers: it copies values from public\.customers\.address into public\.customers\.country/)
    } finally {
      await c.end()
    }
    const d = await t.client()
    try {
      const shown = JSON.stringify((await d.query('select country from customers')).rows)
      expect(leaked(shown, fx.secrets)).toEqual([])
      expect(shown).toContain('"US"')
    } finally {
      await d.end()
    }
  })
})

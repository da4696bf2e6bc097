import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'

/**
 * A constant behind a cast is not the literal's text when the cast changes it: set_config('search_path',
 * 'pg_tempest'::varchar(7), false) was judged as a path naming a schema pg_tempest (which a rule
 * allowing search_path changes let through), while the server cut it to 'pg_temp' and made the
 * session's temporary schema where new objects go (guard.shadowed-type's case). Only PostgreSQL
 * 18's report of search_path then ended the session; older servers report nothing.
 */
describe('setting values written behind a cast', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel

  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query("create table notes (id int, tag text); insert into notes select g, chr(96 + g) from generate_series(1, 5) g"))
    t = await openPipelineTunnel(db, 'rules:\n  - id: paths\n    match: {class: session, settings: [search_path]}\n    action: allow')
  })
  afterAll(() => t.close())

  it('judges a value whose cast may change it as one dbgate cannot read, and keeps the session', async () => {
    const c = await t.client()
    for (const value of ["'pg_tempest'::varchar(7)", "'pg_tempest, public'::character varying(7)", "'pg_tempest'::char(7)", "'pg_tempest'::bpchar(7)", "'pg_tempest'::name::varchar(7)"]) {
      const sql = `select set_config('search_path', ${value}, false)`
      const e = (await c.query(sql).catch((x: Error) => x)) as Error & {code?: string}
      expect(e, sql).toBeInstanceOf(Error)
      expect(e.code, sql).toBe('42501')
      expect(e.message, sql).toMatch(/rule guard\.shadowed-type/)
      expect((await c.query("select current_setting('search_path') p")).rows, sql).toEqual([{p: '"$user", public'}])
    }
    // Casts to unbounded text leave the value as written, and are judged by it.
    await c.query("select set_config('search_path', 'public'::text, false)")
    await c.query("select set_config('search_path', 'public, pg_catalog'::varchar, false)")
    expect((await c.query("select current_setting('search_path') p")).rows).toEqual([{p: 'public, pg_catalog'}])
    await c.end()
  })

  it('does not read a WHERE constant whose cast rounds or cuts it, so a condition over it does not count as a filter', async () => {
    const c = await t.client()
    for (const sql of [
      // 1.5::int4 is 2: every row is <> 2 or = 2.
      'delete from notes where id <> 1.5::int4 or id = 2',
      'delete from notes where id <> 2.4::numeric(1, 0) or id = 2',
      "delete from notes where tag <> 'ax'::varchar(1) or tag = 'a'",
      "update notes set tag = 'z' where tag <> 'ax'::char or tag = 'a'",
      "delete from notes where tag <> 'a '::bpchar or tag = 'a'",
      // Arithmetic a double rounds: PostgreSQL's numeric 0.1 + 0.2 is 0.3, and its bigint sum 9007199254740994.
      'delete from notes where id <> 0.1 + 0.2 or id = 0.3',
      'update notes set tag = tag where id <> 9007199254740993 + 1 or id = 9007199254740994',
    ]) {
      const e = (await c.query(sql).catch((x: Error) => x)) as Error & {code?: string}
      expect(e, sql).toBeInstanceOf(Error)
      expect(e.message, sql).toMatch(/rule default\.no-unfiltered-(delete|update)/)
    }
    expect((await withClient(db.url, (d) => d.query("select count(*)::int n from notes where tag <> 'z'"))).rows).toEqual([{n: 5}])
    // Constants a cast leaves as written still filter.
    expect((await c.query('delete from notes where id = 5::int4 or id = 4::numeric')).rowCount).toBe(2)
    expect((await c.query("delete from notes where tag = 'c'::varchar")).rowCount).toBe(1)
    await c.end()
  })
})

import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
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
})

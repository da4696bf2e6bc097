import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'

/**
 * A rule that allows one session setting, read from dbgate.yaml, through the real tunnel: it must
 * allow that setting and nothing else, in the simple and the extended protocol, alone or beside
 * the allowed one. Before the config schema kept `match.settings`, this rule allowed every setting.
 */
describe('a rule allowing one setting, through the tunnel', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const refused = async (c: pg.Client, sql: string, values?: unknown[]) => {
    const e = (await c.query(sql, values).catch((x: Error) => x)) as Error & {code?: string; hint?: string}
    expect(e, sql).toBeInstanceOf(Error)
    expect(e.code, sql).toBe('42501')
    expect(e.message, sql).not.toMatch(/app-schema/)
    return e
  }

  beforeAll(async () => {
    db = await createTestDatabase()
    t = await openPipelineTunnel(db, 'rules:\n  - id: app-schema\n    match: {class: session, settings: [search_path]}\n    action: allow')
  })
  afterAll(() => t.close())

  it('allows search_path, simple and extended', async () => {
    const c = await t.client()
    await c.query('SET search_path = public')
    await c.query("SELECT set_config('search_path', 'public, pg_catalog', false)")
    expect((await c.query('SHOW search_path')).rows[0].search_path).toBe('public, pg_catalog')
    // A value bound later may name pg_temp first (guard.shadowed-type): no rule lifts that.
    const bound = await refused(c, "SELECT set_config('search_path', $1, false)", ['public, pg_catalog'])
    expect(bound.message).toContain('guard.shadowed-type')
    expect(bound.hint).toContain('write the schema names into the statement')
  })

  it('does not let the rule allow any other setting, however it is written', async () => {
    const c = await t.client()
    await refused(c, 'SET session_replication_role = replica')
    await refused(c, 'SET SESSION session_replication_role TO replica')
    await refused(c, 'SET search_path = public; SET session_replication_role = replica')
    await refused(c, "SELECT set_config('session_replication_role', 'replica', false)")
    await refused(c, 'SELECT set_config($1, $2, false)', ['session_replication_role', 'replica'])
    await refused(c, "SELECT set_config('search_path', 'public', false), set_config('session_replication_role', 'replica', false)")
    // The server never took any of them.
    expect((await c.query('SHOW session_replication_role')).rows[0].session_replication_role).toBe('origin')
  })
})

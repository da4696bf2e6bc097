import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {pgEnv, run} from '../helpers/run.js'

/** Guardrails end to end: the real pipeline, real clients, and the database checked afterwards. */
describe('guardrails in the tunnel', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const count = (table: string) => withClient(db.url, async (c) => (await c.query(`select count(*)::int n from ${table}`)).rows[0].n as number)

  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query("create table accounts (id int primary key, owner text, balance int); insert into accounts select g, 'owner' || g, 100 from generate_series(1, 10) g; create table audit_log (id serial, note text)"))
    t = await openPipelineTunnel(db, 'rules:\n  - id: no-audit-writes\n    match: {class: write, tables: ["audit_log"]}\n    action: deny\n    reason: the audit log is append-only for the application, not for people')
  })
  afterAll(() => t.close())

  it('denies destructive statements over the simple protocol; nothing reaches the database', async () => {
    const c = await t.client()
    // Each statement names the rule that must decide it: a check that only matched `default.` would
    // pass whichever rule (right or wrong) refused it.
    const cases: [string, string][] = [
      ['delete from accounts', 'no-unfiltered-delete'],
      ['update accounts set balance = 0 where 1=1', 'no-unfiltered-update'],
      ['truncate accounts', 'no-truncate'],
      ['drop table accounts', 'no-drop'],
      ['select 1; delete from accounts', 'no-unfiltered-delete'],
      ['with d as (delete from accounts returning *) select count(*) from d', 'no-unfiltered-delete'],
      ['explain analyze delete from accounts', 'no-unfiltered-delete'],
    ]
    for (const [sql, rule] of cases) {
      const e = (await c.query(sql).catch((x: Error) => x)) as Error & {code?: string; hint?: string}
      expect(e, sql).toBeInstanceOf(Error)
      expect(e.code, sql).toBe('42501')
      expect(e.message.split('\n')[0], sql).toMatch(new RegExp(`^dbgate: statement denied by rule default\\.${rule}: `))
    }
    expect(await count('accounts')).toBe(10)
    expect((await withClient(db.url, (a) => a.query('select sum(balance)::int s from accounts'))).rows[0].s).toBe(1000)
    expect((await c.query('select count(*)::int n from accounts')).rows[0].n).toBe(10)
  })

  it('denies over the extended protocol and keeps the session usable', async () => {
    const c = await t.client()
    await expect(c.query('delete from accounts where $1::int = $1::int', [1])).rejects.toMatchObject({code: '42501'})
    await expect(c.query({name: 'wipe', text: 'delete from accounts'})).rejects.toMatchObject({code: '42501'})
    const ok = await c.query('update accounts set balance = balance + $1 where id = $2', [5, 1])
    expect(ok.rowCount).toBe(1)
    expect(await count('accounts')).toBe(10)
  })

  it('judges each text by its own constants after an allowed text of the same shape was kept, over both protocols', async () => {
    // Decisions and analyses are shared by texts that differ only in constants (the shape cache, the
    // kept decisions). Each pair: an allowed text first, so a wrongly shared decision would let the
    // second, whose constants make its filter always true, through.
    const pairs: [string, string, string][] = [
      ['delete from accounts where 2 = 1', 'delete from accounts where 1 = 1', 'no-unfiltered-delete'],
      ["delete from accounts where 'b' = 'a'", "delete from accounts where 'a' = 'a'", 'no-unfiltered-delete'],
      ['delete from accounts where 5 > 6', 'delete from accounts where 6 > 5', 'no-unfiltered-delete'],
      ['update accounts set balance = 0 where id = 1 and 2 = 1', 'update accounts set balance = 0 where id > 0 or 1 = 1', 'no-unfiltered-update'],
      ['update accounts set balance = 0 where 3 = 4', 'update accounts set balance = 0 where 4 = 4', 'no-unfiltered-update'],
    ]
    const sum = async () => (await withClient(db.url, (a) => a.query('select sum(balance)::int s from accounts'))).rows[0].s as number
    const before = await sum()
    const c = await t.client()
    let n = 0
    for (const [allowed, trivial, rule] of pairs) {
      for (const extended of [false, true]) {
        const q = (text: string) => (extended ? c.query({name: `kept-${n++}`, text}) : c.query(text))
        const ok = await q(allowed)
        expect(ok.rowCount, allowed).toBe(0)
        const e = (await q(trivial).catch((x: Error) => x)) as Error & {code?: string}
        expect(e, `${trivial} (${extended ? 'extended' : 'simple'})`).toBeInstanceOf(Error)
        expect(e.code, trivial).toBe('42501')
        expect(e.message, trivial).toMatch(new RegExp(`default\\.${rule}`))
      }
    }
    expect(await count('accounts')).toBe(10)
    expect(await sum()).toBe(before)
  })

  it('judges EXECUTE by what was prepared', async () => {
    const c = await t.client()
    await expect(c.query('prepare wipe as delete from accounts')).rejects.toMatchObject({code: '42501'})
    await c.query('prepare one(int) as select * from accounts where id = $1')
    expect((await c.query('execute one(2)')).rows).toHaveLength(1)
    await expect(c.query('execute wipe')).rejects.toMatchObject({code: '42501'})
    expect(await count('accounts')).toBe(10)
  })

  it('leaves a transaction failed after a denial, as a server error would', async () => {
    const c = await t.client()
    await c.query('begin')
    await c.query("insert into accounts values (100, 'tx', 1)")
    await expect(c.query('drop table accounts')).rejects.toMatchObject({code: '42501'})
    await expect(c.query('select 1')).rejects.toMatchObject({code: '25P02'})
    await c.query('rollback')
    expect(await count('accounts')).toBe(10)
  })

  it('applies target rules by table', async () => {
    const c = await t.client()
    await expect(c.query("insert into audit_log (note) values ('x')")).rejects.toMatchObject({message: /rule no-audit-writes: the audit log is append-only/})
    expect(await count('audit_log')).toBe(0)
  })

  it('refuses session settings that change how later statements are read', async () => {
    const c = await t.client()
    await expect(c.query('set standard_conforming_strings = off')).rejects.toMatchObject({code: '42501'})
    await expect(c.query("select set_config('session_replication_role', 'replica', false)")).rejects.toMatchObject({code: '42501'})
    expect((await c.query('show standard_conforming_strings')).rows[0].standard_conforming_strings).toBe('on')
  })

  it('refuses dangerous startup parameters', async () => {
    const env = {...pgEnv(t.info.port, t.info.password, db.database), PGCLIENTENCODING: 'SJIS'}
    const r = await run('psql', ['-X', '-c', 'select 1'], {env})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/FATAL: {2}dbgate: the startup parameter "client_encoding" is not allowed/)
    expect(r.stderr).toMatch(/PGCLIENTENCODING=UTF8/)
  })

  it('judges very large statements off the main thread, with the same answers', async () => {
    const c = await t.client()
    const values = Array.from({length: 6000}, (_, i) => `(${1000 + i}, 'bulk-owner-${i}', ${i})`).join(',\n')
    const insert = `insert into accounts values ${values}`
    expect(insert.length).toBeGreaterThan(100_000)
    const r = await c.query(insert)
    expect(r.rowCount).toBe(6000)
    const wipe = `delete from accounts where 1=1 or id in (${Array.from({length: 20000}, (_, i) => i).join(',')})`
    await expect(c.query(wipe)).rejects.toMatchObject({code: '42501', message: /default\.no-unfiltered-delete/})
    await c.query('delete from accounts where id >= 1000')
    expect(await count('accounts')).toBe(10)
  })

  it('shows psql users why a statement was denied, and psql carries on', async () => {
    const env = pgEnv(t.info.port, t.info.password, db.database)
    const r = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=0'], {env, input: 'delete from accounts;\nselect count(*) from accounts;\n'})
    expect(r.stderr).toMatch(/ERROR: {2}dbgate: statement denied by rule default\.no-unfiltered-delete: /)
    expect(r.stderr).toMatch(/HINT: /)
    expect(r.stdout).toMatch(/\b10\b/)
    expect(await count('accounts')).toBe(10)
  })
})

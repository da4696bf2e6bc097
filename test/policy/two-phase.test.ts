import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import pg from 'pg'
import {startEmbeddedPg, type EmbeddedPg} from '../../src/dev/embedded-pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import type {UpstreamInfo} from '../helpers/pg.js'
import {serialize} from 'pg-protocol'
import {codes, errorOf} from '../helpers/raw-client.js'

/**
 * Prepared transactions are finished by name from any session of the same role: through the
 * tunnel, one client could discard (or force through) the work another session prepared. The
 * suite's shared server has prepared transactions off, so this file runs its own.
 */
describe('two-phase commit through the tunnel', () => {
  let server: EmbeddedPg
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({connectionString: db.url})
    await c.connect()
    try {
      return await fn(c)
    } finally {
      await c.end()
    }
  }
  const prepared = () => direct(async (c) => (await c.query('select gid from pg_prepared_xacts order by gid')).rows.map((r) => r.gid as string))

  beforeAll(async () => {
    server = await startEmbeddedPg({settings: {max_prepared_transactions: '4'}})
    const u = new URL(server.url())
    db = {host: u.hostname, port: Number(u.port), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database: 'postgres', url: server.url()}
    await direct((c) => c.query('create table payments (id int primary key, amount int)'))
    // Another session (the application) prepares its work, to be committed by its coordinator.
    await direct(async (c) => {
      await c.query('begin')
      await c.query('insert into payments values (1, 100)')
      await c.query("prepare transaction 'app-payment-1'")
    })
    t = await openPipelineTunnel(db)
  }, 120_000)
  afterAll(async () => {
    await t?.close()
    await direct((c) => c.query("rollback prepared 'app-payment-1'").catch(() => {})).catch(() => {})
    await server?.stop()
  })

  it("holds COMMIT PREPARED and ROLLBACK PREPARED of another session's transaction for a reviewer", async () => {
    const c = await t.client()
    for (const sql of ["rollback prepared 'app-payment-1'", "commit prepared 'app-payment-1'", "ROLLBACK PREPARED 'app-payment-1'; SELECT 1"]) {
      const e = (await c.query(sql).catch((x: Error) => x)) as Error & {code?: string}
      expect(e, sql).toBeInstanceOf(Error)
      expect(e.code, sql).toBe('42501')
      expect(e.message, sql).toMatch(/default\.two-phase-approval/)
    }
    expect(await prepared()).toEqual(['app-payment-1'])
    expect(await direct(async (d) => (await d.query('select count(*)::int n from payments')).rows[0].n)).toBe(0)
    await c.end()
  })

  it('reads the catalog again for every session when COMMIT PREPARED commits a change another session prepared', async () => {
    // The change is committed by whoever finishes the prepared transaction, not by the session
    // that made it: what a third session looked up meanwhile is the catalog without it.
    const SECRET = 'PREPARED-SECRET'
    await direct((c) =>
      c.query(`
        create schema hr;
        create table hr.salaries (id int, person text);
        insert into hr.salaries values (1, '${SECRET} 1');
        create table public.parent (id int, person text);
        create table public.customers (id int, full_name text);
        insert into public.customers values (1, '${SECRET} Alice');
      `),
    )
    const rules = ['rules:', '  - id: no-hr-reads', '    match: {class: read, tables: ["hr.*"]}', '    action: deny', '  - id: ddl', '    match: {class: ddl}', '    action: allow', '  - id: coordinator', '    match: {command: commit_prepared}', '    action: allow', '  - id: functions', '    match: {command: create_function}', '    action: allow']
    const t2 = await openPipelineTunnel(db, rules.join('\n'))
    try {
      const [a, b, coordinator] = [await t2.client(), await t2.client(), await t2.client()]
      await a.query('begin')
      await a.query('alter table hr.salaries inherit public.parent')
      await a.query("create function public.upper(int) returns text language sql stable as $$ select string_agg(full_name, ',') from public.customers $$")
      await a.query("prepare transaction 'ddl-1'")
      expect((await b.query('select * from public.parent')).rows).toEqual([])
      expect((await b.query("select upper('x') as v")).rows).toEqual([{v: 'X'}])
      await coordinator.query("commit prepared 'ddl-1'")
      const read = await b.query('select * from public.parent').then((r) => JSON.stringify(r.rows), (e: Error & {code?: string}) => e.code)
      expect(read).toBe('42501')
      const shadowed = JSON.stringify((await b.query('select upper(1) as v')).rows)
      expect(await direct(async (d) => JSON.stringify((await d.query('select upper(1) as v')).rows))).toContain(SECRET)
      expect(shadowed).not.toContain(SECRET)
    } finally {
      await t2.close()
    }
  })

  it('holds the calls sent with or right behind COMMIT PREPARED: the catalog read before it does not show what it commits', async () => {
    // The prepared change is not visible to the catalog connection until COMMIT PREPARED runs, so a
    // call judged before that (later in its pipeline, or in a Query sent right behind it) was judged
    // by the bodies before it, and ran the new one.
    const lockBody = (key: number) => `select $1 + 0 * length(pg_advisory_lock(${key})::text)`
    const locked = async (key: number) => direct(async (d) => (await d.query(`select count(*)::int n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and objid = $1`, [key])).rows[0].n as number)
    const CARRIERS = [
      {name: 'tp_text', key: 5401, send: (fn: string) => [serialize.query(`commit prepared 'ddl-${fn}'; select ${fn}(1)`)], readies: 1},
      {name: 'tp_pipe', key: 5402, send: (fn: string) => [`commit prepared 'ddl-${fn}'`, `select ${fn}(1)`].flatMap((text) => [serialize.parse({text}), serialize.bind({}), serialize.execute({})]).concat(serialize.sync()), readies: 1},
      {name: 'tp_syncs', key: 5403, send: (fn: string) => [`commit prepared 'ddl-${fn}'`, `select ${fn}(1)`].flatMap((text) => [serialize.parse({text}), serialize.bind({}), serialize.execute({}), serialize.sync()]), readies: 2},
      {name: 'tp_queries', key: 5404, send: (fn: string) => [serialize.query(`commit prepared 'ddl-${fn}'`), serialize.query(`select ${fn}(1)`)], readies: 2},
    ]
    await direct((c) => c.query(CARRIERS.map(({name}) => `create function public.${name}(int) returns int stable language sql as $$ select $1 $$;`).join('\n')))
    const rules = [
      'rules:',
      '  - id: no-session-functions',
      '    match: {class: session, command: function}',
      '    action: deny',
      '  - id: ddl',
      '    match: {class: ddl}',
      '    action: allow',
      '  - id: coordinator',
      '    match: {command: commit_prepared}',
      '    action: allow',
      '  - id: functions',
      '    match: {command: create_function}',
      '    action: allow',
    ]
    const t2 = await openPipelineTunnel(db, rules.join('\n'))
    try {
      const [a, b] = [await t2.client(), await t2.client()]
      for (const {name, key, send, readies} of CARRIERS) {
        await a.query('begin')
        await a.query(`create or replace function public.${name}(int) returns int stable language sql as $$ ${lockBody(key)} $$`)
        await a.query(`prepare transaction 'ddl-${name}'`)
        // Still prepared: the server runs the old body, and the catalog read now keeps it.
        expect((await b.query(`select ${name}(1) as v`)).rows).toHaveLength(1)
        const raw = await t2.raw()
        raw.send(...send(name))
        const msgs: string[] = []
        for (let i = 0; i < readies; i++) msgs.push(codes(await raw.untilReady()))
        expect(await locked(key), `${name}: ${msgs.join(' | ')}`).toBe(0)
        raw.end()
        await direct((d) => d.query(`rollback prepared 'ddl-${name}'`).catch(() => {}))
      }
      // Committed on its own, the change is read again: the call is judged by the body it now runs.
      await a.query('begin')
      await a.query(`create or replace function public.tp_text(int) returns int stable language sql as $$ ${lockBody(5401)} $$`)
      await a.query("prepare transaction 'ddl-tp_text'")
      expect((await b.query('select tp_text(1) as v')).rows).toHaveLength(1)
      await b.query("commit prepared 'ddl-tp_text'")
      const after = (await b.query('select tp_text(1)').catch((x: Error) => x)) as Error
      expect(after.message).toMatch(/no-session-functions/)
      expect(await locked(5401)).toBe(0)
      await Promise.all([a.end(), b.end()])
    } finally {
      for (const {name} of CARRIERS) await direct((d) => d.query(`rollback prepared 'ddl-${name}'`).catch(() => {}))
      await t2.close()
    }
  })

  it("still lets a session prepare its own transaction", async () => {
    const c = await t.client()
    await c.query('begin')
    await c.query('insert into payments values (2, 5)')
    await c.query("prepare transaction 'own-2'")
    expect(await prepared()).toEqual(['app-payment-1', 'own-2'])
    await direct((d) => d.query("rollback prepared 'own-2'"))
    await c.end()
  })
})

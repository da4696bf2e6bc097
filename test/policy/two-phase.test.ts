import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import pg from 'pg'
import {startEmbeddedPg, type EmbeddedPg} from '../../src/dev/embedded-pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import type {UpstreamInfo} from '../helpers/pg.js'

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

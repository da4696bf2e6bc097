/**
 * Before a held statement is filed, the tunnel reads the session's settings with queries of its own
 * in the client's server session (src/proxy/own-query.ts). Such a query can wait: for a lock
 * another session holds on a catalog it reads (VACUUM FULL, a DBA's LOCK of pg_db_role_setting).
 * A CancelRequest then only withdrew the verdict the tunnel was deciding, which waited for the
 * query, which waited for the lock: Ctrl-C did nothing, and the client hung for as long as the lock
 * was held. The cancel now reaches the server too; outside a transaction the client is told its
 * statement was cancelled and the session goes on; in one (the cancel fails the transaction on the
 * server, where the client's statement had not even run) the connection ends, saying why. Real
 * tunnel, real IdP, real PostgreSQL, node-postgres and a raw CancelRequest.
 *
 * pg_db_role_setting is shared by every database of a server, and every login reads it: locked on
 * the suite's server, it stalled the logins of the files running beside this one. So this file
 * has a server of its own.
 */
import net from 'node:net'
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startEmbeddedPg, type EmbeddedPg} from '../../src/dev/embedded-pg.js'
import {encodeCancelRequest} from '../../src/wire/frontend.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {approvalSetting, type ApprovalSetting} from './helpers.js'
import pgLib from 'pg'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')

describe('cancelling a held statement while the tunnel reads its session', () => {
  let server: EmbeddedPg
  let s: ApprovalSetting
  beforeAll(async () => {
    server = await startEmbeddedPg()
    s = await approvalSetting({database: 'own_query_cancel', target: TARGET, requester: 'alice', others: ['bob'], server: server.url()})
    await withClient(s.db.url, (c) => c.query('create table orders (id int)'))
  }, 120_000)
  afterAll(async () => {
    await s?.close()
    await server?.stop()
  })

  async function cancel(c: pg.Client): Promise<void> {
    const sock = net.connect({host: '127.0.0.1', port: s.t.info.port})
    await new Promise((r) => sock.once('connect', r))
    const {processID, secretKey} = c as unknown as {processID: number; secretKey: number}
    sock.end(encodeCancelRequest(processID, secretKey))
  }

  async function admin(): Promise<pg.Client> {
    const c = new pgLib.Client({connectionString: s.db.url})
    await c.connect()
    return c
  }

  /** A session of another holding `lock` on `catalog`, and a watcher (connected before, as logins read pg_db_role_setting). */
  async function locked(catalog: string, lock: string, run: (waiting: () => Promise<void>) => Promise<void>): Promise<void> {
    const holder = await admin()
    const watcher = await admin()
    try {
      await holder.query('begin')
      await holder.query(`lock table pg_catalog.${catalog} in ${lock} mode`)
      const waiting = async (): Promise<void> => {
        await waitFor(async () => {
          const r = await watcher.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and pid <> pg_backend_pid() and backend_type = 'client backend' and query like 'SELECT n, CASE%'")
          return r.rows[0].n > 0
        }, "the tunnel's own query waits for the lock")
      }
      await run(waiting)
      // Whatever the client was told, it was told while the lock was still held.
      expect((await holder.query("select count(*)::int as n from pg_locks where pid = pg_backend_pid() and granted and relation = $1::regclass", [`pg_catalog.${catalog}`])).rows[0].n).toBe(1)
    } finally {
      await holder.end().catch(() => {})
      await watcher.end().catch(() => {})
    }
  }

  const indexes = () => withClient(s.db.url, async (c) => (await c.query("select count(*)::int as n from pg_indexes where tablename = 'orders'")).rows[0].n as number)

  const statements = ['create index orders_a on orders (id)', 'alter table orders add column note text', 'create index orders_b on orders (id) where id > 0']
  for (const [i, sql] of statements.entries()) {
    it(`tells the client its statement was cancelled, and goes on serving it (${sql})`, async () => {
      const c = await s.t.client()
      await c.query('select 1')
      await locked('pg_db_role_setting', 'access exclusive', async (waiting) => {
        const held = c.query(sql).catch((e: Error & {code?: string}) => e)
        await waiting()
        await cancel(c)
        const e = (await held) as Error & {code?: string}
        expect(e).toBeInstanceOf(Error)
        expect(e.code, `case ${i}`).toBe('57014')
        expect(e.message).toMatch(/was cancelled before it was filed for a reviewer: cancelled by the client/)
      })
      expect((await c.query('select 41 + 1 as n')).rows[0].n).toBe(42)
      // Nothing of the tunnel's query is left in the session.
      expect((await c.query('select name from pg_prepared_statements')).rows).toEqual([])
      expect(await indexes()).toBe(0)
    })
  }

  it('ends the connection, saying why, when the cancel fails the transaction the statement was held in', async () => {
    const c = await s.t.client()
    const errors: Error[] = []
    c.on('error', (e) => errors.push(e))
    await c.query('begin')
    await c.query('select 1')
    await locked('pg_db_role_setting', 'access exclusive', async (waiting) => {
      const held = c.query('create index orders_t on orders (id)').catch((e: Error) => e)
      await waiting()
      await cancel(c)
      const e = (await held) as Error & {code?: string}
      expect(e).toBeInstanceOf(Error)
      expect(e.code).toBe('57014')
      expect(e.message).toMatch(/failed inside your transaction \(canceling statement due to user request\), and the server aborted the transaction; the connection was closed/)
    })
    await expect(c.query('select 1')).rejects.toThrow()
  })

  it('ends the connection, saying why, when the cancel fails the batch of a statement held at its Bind (Parse, Bind, Execute, Sync in one write)', async () => {
    const c = await s.t.client()
    c.on('error', () => {})
    await locked('pg_db_role_setting', 'access exclusive', async (waiting) => {
      // node-postgres sends a query with values as Parse, Bind, Describe, Execute, Sync at once.
      const held = c.query({text: 'create table orders_bound as select * from orders where id::text = $1', values: ['1']}).catch((e: Error) => e)
      await waiting()
      await cancel(c)
      const e = (await held) as Error & {code?: string}
      expect(e).toBeInstanceOf(Error)
      expect(e.code).toBe('57014')
      expect(e.message).toMatch(/failed in the middle of your batch of extended-protocol messages \(canceling statement due to user request\)/)
    })
    await expect(c.query('select 1')).rejects.toThrow()
    expect(await withClient(s.db.url, async (a) => (await a.query("select count(*)::int as n from pg_tables where tablename = 'orders_bound'")).rows[0].n)).toBe(0)
  })

  it("ends the connection, saying why, when the session's lock_timeout fails the tunnel's query inside the client's transaction", async () => {
    const c = await s.t.client()
    c.on('error', () => {})
    await c.query('begin')
    await c.query("set local lock_timeout = '200ms'")
    await locked('pg_db_role_setting', 'access exclusive', async () => {
      const e = (await c.query('create index orders_l on orders (id)').catch((err: Error) => err)) as Error & {code?: string}
      expect(e).toBeInstanceOf(Error)
      expect(e.code).toBe('55P03')
      expect(e.message).toMatch(/failed inside your transaction \(canceling statement due to lock timeout\)/)
    })
    await expect(c.query('select 1')).rejects.toThrow()
    expect(await indexes()).toBe(0)
    // The tunnel goes on serving everyone else.
    const other = await s.t.client()
    expect((await other.query('select 1 as n')).rows[0].n).toBe(1)
    expect(await indexes()).toBe(0)
  })
})

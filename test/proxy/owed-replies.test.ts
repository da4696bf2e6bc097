/**
 * How many replies the server may owe one connection. The tunnel keeps an entry for each (about 70
 * bytes), for as little as a 5-byte Sync, and read on from a client that pipelined without reading
 * its replies for as long as the socket buffers between it and the server took its messages: 4 MiB
 * of Syncs made 780,000 entries and 50 MiB of heap for one connection, a hundred connections a tunnel's
 * or a gateway worker's memory. Here the server is held on a lock behind the client's first
 * statement, so that it answers nothing while the client pipelines; the tunnel must stop reading
 * at its cap, and every reply must still arrive, in order, once the lock goes.
 */
import {serialize} from 'pg-protocol'
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {ClientConnection} from '../../src/proxy/connection.js'
import {MAX_OWED_REPLIES} from '../../src/proxy/client-messages.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'

const {query, parse, bind, execute, describe: describeMsg, close, sync} = serialize

describe('replies the server owes one connection', () => {
  let db: UpstreamInfo
  let t: TestTunnel
  beforeAll(async () => {
    db = await createTestDatabase('owed')
    await withClient(db.url, (c) => c.query('create table held (id int) with (autovacuum_enabled = false)'))
    t = await startTunnel(db)
  }, 120_000)
  afterAll(async () => {
    await t?.close()
  })

  const n = 60_000
  /** Each: what the client pipelines after its first statement, the replies it must then get (by message code), and what it prepares before. */
  const CASES: [string, Buffer[], Record<string, number>, Buffer[]?][] = [
    ['Syncs', Array.from({length: n}, () => sync()), {Z: n}],
    ['empty simple queries', Array.from({length: n}, () => query('')), {I: n, Z: n}],
    ['Closes of a statement that does not exist, then a Sync', [...Array.from({length: n}, () => close({type: 'S', name: 'nothing'})), sync()], {'3': n, Z: 1}],
    [
      'Describes of a prepared statement, then a Sync',
      [...Array.from({length: n / 2}, () => describeMsg({type: 'S', name: 'd'})), sync()],
      {t: n / 2, T: n / 2, Z: 1},
      [parse({name: 'd', text: 'select 1 as one', types: []}), sync()],
    ],
    [
      'Binds, Executes and Syncs of a prepared statement',
      Array.from({length: n / 3}, () => [bind({statement: 'e', portal: ''}), execute({portal: ''}), sync()]).flat(),
      {'2': n / 3, D: n / 3, C: n / 3, Z: n / 3},
      [parse({name: 'e', text: 'select 2 as two', types: []}), sync()],
    ],
  ]

  for (const [what, pipelined, expected, before] of CASES) {
    it(`stops reading a client that pipelines ${what} while the server answers nothing, and answers every one once it can`, async () => {
      const locker: pg.Client = await t.client()
      await locker.query('begin')
      await locker.query('lock table held in access exclusive mode')
      const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
      try {
      if (before) {
        raw.send(...before)
        await raw.untilReady()
      }
      const conns = (t.tunnel as unknown as {registry: {connections: Set<ClientConnection>}}).registry.connections
      const conn = [...conns].at(-1)!
      // The first statement waits for the lock: the server reads and answers nothing behind it.
      raw.send(query('select count(*) from held'), ...pipelined)
      const all = pipelined.length + 1
      let most = 0
      await waitFor(
        () => {
          most = Math.max(most, conn.state.pendingCount)
          return conn.state.pendingCount >= all
        },
        'every message is owed a reply',
        {timeoutMs: 3000},
      ).catch(() => undefined)
      most = Math.max(most, conn.state.pendingCount)
      // What one read of the client (64 KiB, 5-byte messages) may add past the cap.
      expect(most, what).toBeLessThanOrEqual(MAX_OWED_REPLIES + 65_536 / 5)
      expect(most, what).toBeGreaterThanOrEqual(MAX_OWED_REPLIES)

      await locker.query('commit')
      const got: Record<string, number> = {}
      let rows = ''
      let ready = 0
      const want = expected.Z! + 1
      while (ready < want) {
        const m = await raw.next(30_000)
        got[m.code] = (got[m.code] ?? 0) + 1
        if (m.code === 'Z') ready++
        if (m.code === 'D' && rows === '') rows = m.body.subarray(6).toString()
        if (m.code === 'E') throw new Error(`${what}: an error: ${m.body.toString()}`)
      }
      // The first statement's own reply (T, D, C, Z), then everything pipelined.
      expect(rows, what).toBe('0')
      const minusFirst: Record<string, number> = {...got, T: (got.T ?? 0) - 1, D: (got.D ?? 0) - 1, C: (got.C ?? 0) - 1, Z: (got.Z ?? 0) - 1}
      for (const [code, count] of Object.entries(expected)) expect(minusFirst[code], `${what}: ${code}`).toBe(count)
      expect(conn.state.pendingCount, what).toBe(0)
      raw.send(query('select 3 as three'))
      expect((await raw.untilReady()).map((m) => m.code).join('')).toBe('TDCZ')
      } finally {
        // A failed assertion leaves the lock to the next case otherwise.
        raw.end()
        await locker.end()
      }
    })
  }
})

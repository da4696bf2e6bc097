import {stat} from 'node:fs/promises'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {freePort} from '../../src/dev/embedded-pg.js'
import {Tunnel, TunnelConfigError} from '../../src/proxy/tunnel.js'
import {createTestDatabase, waitUntilLockHeld, waitUntilSleeping, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'
import {decodeNotice} from '../../src/wire/backend.js'
import {encodeStartup} from '../../src/wire/frontend.js'

describe('the tunnel under bad input and failures', () => {
  let db: UpstreamInfo
  let t: TestTunnel
  beforeAll(async () => {
    db = await createTestDatabase()
    t = await startTunnel(db, {}, {maxMessageSize: 1024 * 1024})
  })
  afterAll(() => t.close())

  async function firstError(raw: RawClient) {
    for (;;) {
      const m = await raw.next()
      if (m.code === 'E') return decodeNotice(m.body)
    }
  }

  it('refuses a wrong tunnel secret with a clear error', async () => {
    const c = new pg.Client({connectionString: t.url.replace(encodeURIComponent(t.secret), 'not-the-secret')})
    await expect(c.connect()).rejects.toMatchObject({code: '28P01', message: /tunnel's secret/})
  })

  it('refuses the startup parameters replication and options', async () => {
    for (const params of [{replication: 'database'}, {options: '-c statement_timeout=0'}] as Record<string, string>[]) {
      const raw = await RawClient.open(t.port)
      raw.send(encodeStartup({user: 'x', database: db.database, ...params}))
      const e = await firstError(raw)
      expect(e.severity).toBe('FATAL')
      expect(e.message).toMatch(Object.keys(params)[0] === 'replication' ? /replication connections/ : /"options"/)
      await raw.waitClosed()
    }
  })

  it('refuses a database other than the target\'s', async () => {
    const c = new pg.Client({connectionString: t.url.replace(`/${db.database}`, '/postgres')})
    await expect(c.connect()).rejects.toMatchObject({code: '3D000', message: new RegExp(`serves database "${db.database}"`)})
  })

  it('ends only the connection that sends garbage, with a protocol error', async () => {
    const healthy = await t.client()
    const raw = await RawClient.open(t.port)
    raw.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    const e = await firstError(raw)
    expect(e).toMatchObject({severity: 'FATAL', code: '08P01'})
    await raw.waitClosed()

    const authed = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    authed.send(Buffer.from([0x01, 0, 0, 0, 8, 1, 2, 3, 4]))
    expect(await firstError(authed)).toMatchObject({severity: 'FATAL', code: '08P01', message: /unknown frontend message type 0x01/})
    await authed.waitClosed()

    const bad = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    bad.send(Buffer.from([0x51, 0, 0, 0, 2]))
    expect(await firstError(bad)).toMatchObject({code: '08P01', message: /invalid message length 2/})
    expect((await healthy.query('select 1 as still_fine')).rows).toEqual([{still_fine: 1}])
  })

  it('refuses an oversized length prefix without waiting for (or allocating) the body', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    const header = Buffer.from([0x51, 0, 0, 0, 0])
    header.writeInt32BE(0x7ffffff0, 1)
    raw.send(header)
    const e = await firstError(raw)
    expect(e).toMatchObject({severity: 'FATAL', code: '54000'})
    expect(e.message).toMatch(/over the limit of 1048576 bytes/)
    await raw.waitClosed()
  })

  it('accepts messages up to the limit', async () => {
    const c = await t.client()
    const big = 'x'.repeat(900 * 1024)
    const r = await c.query('select length($1::text) as n', [big])
    expect(r.rows[0].n).toBe(big.length)
  })

  it('reports an upstream that is down, and keeps listening', async () => {
    const port = await freePort()
    const dead = await startTunnel({...db, port})
    const c = new pg.Client({connectionString: dead.url})
    await expect(c.connect()).rejects.toMatchObject({code: '08001', message: /cannot reach the upstream 127\.0\.0\.1:\d+: ECONNREFUSED/})
    const again = new pg.Client({connectionString: dead.url})
    await expect(again.connect()).rejects.toMatchObject({code: '08001'})
    await dead.close()
  })

  it('reports wrong upstream credentials without revealing them', async () => {
    const wrong = await startTunnel({...db, password: 'definitely-wrong-password'})
    const c = new pg.Client({connectionString: wrong.url})
    const e = (await c.connect().catch((x: Error) => x)) as Error & {code?: string}
    expect(e.code).toBe('28P01')
    expect(e.message).toMatch(/upstream/)
    expect(e.message).not.toContain('definitely-wrong-password')
    await wrong.close()
  })

  it('refuses to listen beyond loopback unless forced', async () => {
    const tunnel = new Tunnel({
      target: {host: db.host, port: db.port, database: db.database, user: db.user, password: db.password, tls: 'disable'},
      listen: {kind: 'tcp', host: '0.0.0.0', port: 0},
    })
    await expect(tunnel.listen()).rejects.toBeInstanceOf(TunnelConfigError)
  })

  it('listens on a unix socket only its owner can open', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-sock-'))
    const tunnel = new Tunnel({
      target: {host: db.host, port: db.port, database: db.database, user: db.user, password: db.password, tls: 'disable'},
      listen: {kind: 'unix', path: dir, port: 6543},
    })
    const addr = await tunnel.listen()
    expect(addr.socketPath).toBe(path.join(dir, '.s.PGSQL.6543'))
    expect((await stat(addr.socketPath!)).mode & 0o777).toBe(0o600)
    const c = new pg.Client({host: dir, port: 6543, user: 'me', password: tunnel.secret, database: db.database})
    await c.connect()
    expect((await c.query('select 1 as via_socket')).rows).toEqual([{via_socket: 1}])
    await c.end()
    await tunnel.close()
  })

  it('shuts down gracefully: idle sessions end at once, a running statement finishes first', async () => {
    const own = await startTunnel(db)
    const idle = await own.client()
    const busy = await own.client()
    const idleEnded = new Promise<Error>((resolve) => idle.once('error', resolve))
    const busyPid = (await busy.query('select pg_backend_pid() as pid')).rows[0].pid as number
    const running = busy.query('select pg_sleep(1) as done')
    await waitUntilSleeping(db.url, {pid: busyPid})
    await own.tunnel.close(5000)
    expect((await running).rows).toHaveLength(1)
    expect((await idleEnded).message).toMatch(/shutting down/)
  })

  it('cancels statements still running when the grace period ends', async () => {
    const own = await startTunnel(db)
    const busy = await own.client()
    const busyPid = (await busy.query('select pg_backend_pid() as pid')).rows[0].pid as number
    const running = busy.query('select pg_sleep(30)').catch((e: {code?: string}) => e.code)
    await waitUntilSleeping(db.url, {pid: busyPid})
    await own.tunnel.close(200)
    expect(await running).toBe('57014')
  })

  it('ends the upstream session of a client that vanishes mid-transaction, releasing its locks', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database, params: {application_name: 'vanisher'}})
    const setup = await t.client()
    await setup.query('create table locked (id int)')
    raw.send(serialize.query('begin; lock table locked; select pg_sleep(0.3)'))
    // Vanish only once the server shows the lock taken: otherwise the lock below proves nothing.
    await waitUntilLockHeld(db.url, {applicationName: 'dbgate/vanisher'}, 'locked')
    raw.end()
    const c = await t.client()
    await c.query("set lock_timeout = '5s'")
    await c.query('begin; lock table locked; commit')
    await waitFor(
      async () => (await c.query("select count(*)::int n from pg_stat_activity where application_name = 'dbgate/vanisher'")).rows[0].n === 0,
      'the vanished client has no upstream session left',
    )
  })
})

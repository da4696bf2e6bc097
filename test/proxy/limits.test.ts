/**
 * Limits before authentication (issue 13, families 14-16), through the real tunnel: what an
 * unauthenticated client can make the tunnel hold, for how long, and how many sessions a crowd of
 * clients can open on the server. Every assertion waits on a fact (an error received, a socket
 * closed, a client queued), never on elapsed time.
 */
import net from 'node:net'
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeAuth, decodeNotice} from '../../src/wire/backend.js'
import {encodeStartup} from '../../src/wire/frontend.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'

async function firstError(raw: RawClient) {
  for (;;) {
    const m = await raw.next()
    if (m.code === 'E') return decodeNotice(m.body)
  }
}


describe('limits before authentication', () => {
  let db: UpstreamInfo
  let t: TestTunnel
  beforeAll(async () => {
    db = await createTestDatabase()
    // The default 1 GiB message cap: what an authenticated client may send is not what an anonymous one may.
    t = await startTunnel(db)
  })
  afterAll(() => t.close())

  it('refuses a huge message declared right after the StartupMessage from its header, without waiting for the body', async () => {
    const raw = await RawClient.open(t.port)
    raw.send(encodeStartup({user: 'x', database: db.database}))
    const m = await raw.next()
    expect(m.code).toBe('R')
    expect(decodeAuth(m.body).kind).toBe('sasl')
    // A SASLInitialResponse that claims to be ~900 MB; only its 5-byte header is ever sent.
    const header = Buffer.from([0x70, 0, 0, 0, 0])
    header.writeInt32BE(900_000_000, 1)
    raw.send(header)
    const e = await firstError(raw)
    expect(e).toMatchObject({severity: 'FATAL', code: '54000'})
    expect(e.message).toMatch(/899999996 bytes, over the limit of 65535 bytes \(the limit for messages before authentication\)/)
    await raw.waitClosed()
  })

  it('refuses a startup packet over 10,000 bytes, as PostgreSQL does', async () => {
    const raw = await RawClient.open(t.port)
    const header = Buffer.alloc(4)
    header.writeInt32BE(10_001)
    raw.send(header)
    expect(await firstError(raw)).toMatchObject({severity: 'FATAL', code: '08P01', message: expect.stringMatching(/invalid startup packet length 10001/)})
    await raw.waitClosed()
  })

  describe('with a short authentication timeout', () => {
    let quick: TestTunnel
    let silentUpstream: net.Server
    let stalled: TestTunnel
    const held: net.Socket[] = []
    beforeAll(async () => {
      quick = await startTunnel(db, {}, {limits: {authTimeoutMs: 300}})
      // An upstream that accepts connections and never says a word.
      silentUpstream = net.createServer((s) => held.push(s))
      await new Promise<void>((r) => silentUpstream.listen(0, '127.0.0.1', r))
      stalled = await startTunnel({...db, port: (silentUpstream.address() as net.AddressInfo).port}, {}, {limits: {authTimeoutMs: 300}})
    })
    afterAll(async () => {
      await quick.close()
      await stalled.close()
      for (const s of held) s.destroy()
      await new Promise((r) => silentUpstream.close(r))
    })

    it('closes sockets that never send anything', async () => {
      const silent = await Promise.all(Array.from({length: 20}, () => RawClient.open(quick.port)))
      for (const raw of silent) {
        expect(await firstError(raw)).toMatchObject({severity: 'FATAL', message: expect.stringMatching(/authentication timed out.*tunnel\.authTimeout/)})
        await raw.waitClosed()
      }
      await waitFor(() => quick.tunnel.connectionCount === 0, 'the tunnel holds no connection')
    })

    it('closes a client that stops in the middle of authenticating', async () => {
      const raw = await RawClient.open(quick.port)
      raw.send(encodeStartup({user: 'x', database: db.database}))
      expect((await raw.next()).code).toBe('R')
      expect(await firstError(raw)).toMatchObject({message: expect.stringMatching(/authentication timed out/)})
      await raw.waitClosed()
    })

    it('counts the upstream login in the same deadline', async () => {
      const c = new pg.Client({connectionString: stalled.url})
      await expect(c.connect()).rejects.toMatchObject({message: expect.stringMatching(/authentication timed out: startup, login and the upstream connection/)})
      await waitFor(() => stalled.tunnel.upstreamSessions.inUse === 0, 'the upstream slot is given back')
    })
  })

  it('refuses the client past tunnel.maxClientConnections with a clear error, and takes one again when a slot frees', async () => {
    const capped = await startTunnel(db, {}, {limits: {maxClientConnections: 2}})
    try {
      const a = await capped.client()
      const b = await capped.client()
      const third = new pg.Client({connectionString: capped.url})
      third.on('error', () => {})
      await expect(third.connect()).rejects.toMatchObject({code: '53300', message: "dbgate: too many client connections: this tunnel's cap of 2 (tunnel.maxClientConnections) is reached"})
      await a.end()
      await waitFor(() => capped.tunnel.connectionCount === 1, 'the first client is gone')
      // Unauthenticated sockets count too: they are clients the tunnel has to hold.
      const lurker = await RawClient.open(capped.port)
      await waitFor(() => capped.tunnel.connectionCount === 2, 'the lurker is accepted')
      const fourth = new pg.Client({connectionString: capped.url})
      fourth.on('error', () => {})
      await expect(fourth.connect()).rejects.toMatchObject({code: '53300'})
      lurker.end()
      await waitFor(() => capped.tunnel.connectionCount === 1, 'the lurker is gone')
      const fifth = await capped.client()
      expect((await fifth.query('select 1 as ok')).rows).toEqual([{ok: 1}])
      expect((await b.query('select 2 as still')).rows).toEqual([{still: 2}])
    } finally {
      await capped.close()
    }
  })

  it('counts a session whose client hung up while the server runs its statement, until the server ends it', async () => {
    // The server runs what it was sent to its end before it reads the Terminate behind it: that
    // session is open on the target as long, so hanging up again and again must not open more.
    const capped = await startTunnel(db, {}, {limits: {maxUpstreamSessions: 1, upstreamQueueTimeoutMs: 60_000}})
    const holder = new pg.Client({connectionString: db.url})
    await holder.connect()
    try {
      await holder.query('select pg_advisory_lock(13001)')
      const WAYS: Record<string, (raw: RawClient) => void> = {
        'the socket closes': (raw) => raw.end(),
        'the client sends Terminate': (raw) => raw.send(serialize.end()),
      }
      for (const [way, leave] of Object.entries(WAYS)) {
        const raw = await RawClient.connect(capped.port, {password: capped.secret, database: db.database})
        raw.send(serialize.query('select pg_advisory_lock(13001)'))
        await waitFor(async () => (await holder.query("select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and not granted")).rows[0].n === 1, 'the statement waits on the lock')
        leave(raw)
        await raw.waitClosed()
        const next = capped.client()
        await waitFor(() => capped.tunnel.upstreamSessions.queued === 1, `${way}: the next client waits for the slot`)
        expect(capped.tunnel.upstreamSessions.inUse, way).toBe(1)
        // The server ends the session once the statement is over (it got the lock: let it go).
        await holder.query('select pg_advisory_unlock(13001)')
        const served = await next
        expect((await served.query('select 1 as served')).rows, way).toEqual([{served: 1}])
        await served.end()
        await waitFor(() => capped.tunnel.upstreamSessions.inUse === 0, `${way}: the slot is free again`)
        await holder.query('select pg_advisory_lock(13001)')
      }
    } finally {
      await holder.end()
      await capped.close()
    }
  })

  it('ends the server session a closed connection left running once its linger is over, so that nothing it pipelined runs on and its slot is given back', async () => {
    // A statement that runs on after its client left (a long sleep, a lock wait) would otherwise
    // keep its server session after the tunnel stopped counting it, again and again; and a cancel
    // alone would let the server go on to what the client pipelined behind it, one statement each.
    await withClient(db.url, (d) => d.query('create table if not exists after_leaving (way text)'))
    const running = () => withClient(db.url, async (d) => (await d.query("select count(*)::int as n from pg_stat_activity where query like 'select pg_sleep(600)%'")).rows[0].n as number)
    const pipelines: Record<string, Buffer[]> = {
      'simple queries': [serialize.query('select pg_sleep(600)'), serialize.query("insert into after_leaving values ('simple')"), serialize.query('select pg_sleep(600)')],
      'one simple query of several statements': [serialize.query("select pg_sleep(600); insert into after_leaving values ('one text')")],
      'the extended protocol': [
        serialize.parse({text: 'select pg_sleep(600)'}),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
        serialize.parse({text: "insert into after_leaving values ('extended')"}),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
      ],
    }
    for (const [way, messages] of Object.entries(pipelines)) {
      const capped = await startTunnel(db, {}, {limits: {maxUpstreamSessions: 1, upstreamQueueTimeoutMs: 60_000}, busyUpstreamLingerMs: 300})
      try {
        const raw = await RawClient.connect(capped.port, {password: capped.secret, database: db.database})
        raw.send(Buffer.concat(messages))
        await waitFor(async () => (await running()) === 1, `${way}: the statement runs`)
        raw.end()
        await raw.waitClosed()
        await waitFor(() => capped.tunnel.upstreamSessions.inUse === 0, `${way}: the slot is given back after the linger`)
        expect(await running(), way).toBe(0)
        await waitFor(() => capped.logs.some((l) => /still runs what this connection sent before its client left; ending its server session/.test(l)), `${way}: the end is logged`)
        // What the client pipelined behind the sleep never ran, here or after the linger.
        await new Promise((r) => setTimeout(r, 300))
        expect((await withClient(db.url, (d) => d.query('select way from after_leaving'))).rows, way).toEqual([])
        expect(await running(), way).toBe(0)
      } finally {
        await capped.close()
      }
    }
  })

  it('queues clients past tunnel.maxUpstreamSessions in order, and refuses one that waits too long', async () => {
    const capped = await startTunnel(db, {}, {limits: {maxUpstreamSessions: 1, upstreamQueueTimeoutMs: 60_000}})
    const impatient = await startTunnel(db, {}, {limits: {maxUpstreamSessions: 1, upstreamQueueTimeoutMs: 200}})
    try {
      const first = await capped.client()
      const waiting = capped.client()
      await waitFor(() => capped.tunnel.upstreamSessions.queued === 1, 'the second client is queued')
      expect(capped.tunnel.upstreamSessions.inUse).toBe(1)
      await first.end()
      const second = await waiting
      expect((await second.query('select 1 as served')).rows).toEqual([{served: 1}])

      const holder = await impatient.client()
      const late = new pg.Client({connectionString: impatient.url})
      late.on('error', () => {})
      await expect(late.connect()).rejects.toMatchObject({
        code: '53300',
        message: expect.stringMatching(/too many upstream sessions: the tunnel's cap of 1 \(tunnel\.maxUpstreamSessions\) was reached and no session came free within 0\.2s \(tunnel\.upstreamQueueTimeout\)/),
      })
      expect((await holder.query('select 1 as unaffected')).rows).toEqual([{unaffected: 1}])
      expect(impatient.tunnel.upstreamSessions).toEqual({inUse: 1, queued: 0})
    } finally {
      await capped.close()
      await impatient.close()
    }
  })
})

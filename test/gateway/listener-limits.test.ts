import {readFileSync} from 'node:fs'
import net from 'node:net'
import pg from 'pg'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {decodeNotice} from '../../src/wire/backend.js'
import {Framer} from '../../src/wire/framer.js'
import {encodeSslRequest, encodeStartup} from '../../src/wire/frontend.js'
import {mint} from '../identity/helpers.js'
import {waitFor} from '../helpers/wait.js'
import {addressShare, PendingSignIns} from '../../src/gateway/session-caps.js'
import {readUntilClosed, sslRequestTls} from './helpers.js'
import {startAppGateway, type AppGateway} from './app-gateway.js'

const token = (app: AppGateway, sub: string, extra: Record<string, unknown> = {}) =>
  mint(app.f.signingKey, {iss: app.f.dev.issuer, aud: app.f.dev.cliClientId, sub, email: `${sub}@example.com`, groups: ['engineering'], ...extra})

/** A pg client of the gateway's target `app`, connecting from `from` (a loopback address). */
function client(app: AppGateway, user: string, password: string, from = '127.0.0.1'): pg.Client {
  const c = new pg.Client({
    host: '127.0.0.1',
    port: app.gw.address.port,
    database: 'app',
    user,
    password,
    ssl: {ca: readFileSync(app.pki.ca, 'utf8'), servername: 'localhost'},
    // Another source address on the loopback network, as a second machine would have.
    stream: () => {
      const s = new net.Socket()
      const connect = s.connect.bind(s) as (options: net.TcpSocketConnectOpts) => net.Socket
      s.connect = ((port: number, host: string) => connect({port, host, localAddress: from})) as typeof s.connect
      return s
    },
  })
  c.on('error', () => {})
  return c
}

/** Connects; the error the gateway answered with, or undefined once signed in. */
async function connectError(c: pg.Client): Promise<pg.DatabaseError | undefined> {
  try {
    await c.connect()
    return undefined
  } catch (error) {
    return error as pg.DatabaseError
  }
}

/** A socket the gateway has accepted (it answered the SSLRequest) that goes no further: it has not signed in. */
async function idleSocket(port: number, from: string): Promise<net.Socket> {
  const s = net.connect({host: '127.0.0.1', port, localAddress: from})
  s.on('error', () => {})
  await new Promise((resolve) => s.once('connect', resolve))
  s.write(encodeSslRequest())
  const answer = await new Promise<Buffer | undefined>((resolve) => {
    s.once('data', resolve)
    s.once('close', () => resolve(undefined))
  })
  if (answer?.toString() !== 'S') throw new Error(`the gateway did not accept the connection from ${from}`)
  return s
}

/**
 * One person (or one stolen token) must not take every upstream session of a target: the gateway
 * counts each verified identity's sessions on its PostgreSQL listener against
 * server.maxSessionsPerPerson, however the client names itself.
 */
describe('dbgate gateway: sessions per person', () => {
  let app: AppGateway
  const open: pg.Client[] = []

  beforeAll(async () => {
    app = await startAppGateway('gwperperson', {server: ['maxSessionsPerPerson: 2']})
  })
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.end().catch(() => {})))
  })
  afterAll(() => app?.close())

  async function signedIn(user: string, password: string): Promise<pg.Client> {
    const c = client(app, user, password)
    open.push(c)
    expect(await connectError(c)).toBeUndefined()
    return c
  }

  it('refuses a person their session past the cap with 53300, while their open sessions and other people go on', async () => {
    const alice = await token(app, 'alice')
    const first = await signedIn('alice@example.com', alice)
    // Another token of the same person, and the subject instead of the e-mail as user name: still alice.
    const second = await signedIn('alice', await token(app, 'alice', {jti: 'another-token'}))

    const third = client(app, 'alice@example.com', alice)
    open.push(third)
    const e = await connectError(third)
    expect(e).toMatchObject({code: '53300', message: expect.stringMatching(/alice@example\.com already has 2 session\(s\) open on this gateway, its cap per person \(server\.maxSessionsPerPerson\)/)})

    expect((await first.query<{n: number}>('select 1 as n')).rows).toEqual([{n: 1}])
    expect((await second.query<{n: number}>('select 2 as n')).rows).toEqual([{n: 2}])
    const bob = await signedIn('bob@example.com', await token(app, 'bob'))
    expect((await bob.query<{n: number}>('select 3 as n')).rows).toEqual([{n: 3}])

    // A session that ends gives its place back.
    await first.end()
    await waitFor(async () => {
      const again = client(app, 'alice@example.com', alice)
      open.push(again)
      return (await connectError(again)) === undefined
    }, 'alice may open a session again')
  })

  it('counts a session whose client hung up while the server runs its statement, until the server ends it', async () => {
    // The server runs the statement to its end before it reads the Terminate behind it: hanging up
    // again and again must not hold more server sessions than the cap.
    const holder = new pg.Client({connectionString: app.db.url})
    await holder.connect()
    try {
      await holder.query('select pg_advisory_lock(13002)')
      const carol = await token(app, 'carol')
      const first = await signedIn('carol@example.com', carol)
      const second = await signedIn('carol@example.com', carol)
      void first.query('select pg_advisory_lock(13002)').catch(() => {})
      await waitFor(async () => (await holder.query("select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database()) and not granted")).rows[0].n === 1, 'the statement waits on the lock')
      // The client goes away without waiting for the reply.
      ;(first as unknown as {connection: {stream: net.Socket}}).connection.stream.destroy()
      // (Time for the gateway to see the client go: a slot it gave back then would take the next sign-in.)
      await new Promise((resolve) => setTimeout(resolve, 200))
      const third = client(app, 'carol@example.com', carol)
      open.push(third)
      expect(await connectError(third)).toMatchObject({code: '53300'})
      expect((await second.query<{n: number}>('select 2 as n')).rows).toEqual([{n: 2}])
      // Once the server has ended that session, its place is free.
      await holder.query('select pg_advisory_unlock(13002)')
      await waitFor(async () => {
        const again = client(app, 'carol@example.com', carol)
        open.push(again)
        return (await connectError(again)) === undefined
      }, 'carol may open a session again')
    } finally {
      await holder.end()
    }
  })
})

/**
 * Anyone who can reach the port can open connections without a token: those not signed in yet are
 * capped in all and per source address, refused before any TLS handshake, and a person signing in
 * from elsewhere still gets in.
 */
describe('dbgate gateway: connections not signed in yet', () => {
  let app: AppGateway
  const sockets: net.Socket[] = []
  const clients: pg.Client[] = []

  beforeAll(async () => {
    app = await startAppGateway('gwpending', {server: ['maxPendingSignIns: 4', 'maxPendingSignInsPerAddress: 2', 'signInTimeout: 10m']})
  })
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy()
    await Promise.all(clients.splice(0).map((c) => c.end().catch(() => {})))
  })
  afterAll(() => app?.close())

  const idle = async (from: string) => {
    const s = await idleSocket(app.gw.address.port, from)
    sockets.push(s)
    return s
  }
  const pgClient = async (from: string) => {
    const c = client(app, 'alice@example.com', await token(app, 'alice'), from)
    clients.push(c)
    return c
  }

  it('closes a connection past the per-address cap at once, and signs in a person from another address', async () => {
    await idle('127.0.0.1')
    await idle('127.0.0.1')
    const over = net.connect({host: '127.0.0.1', port: app.gw.address.port, localAddress: '127.0.0.1'})
    sockets.push(over)
    over.write(encodeSslRequest())
    expect((await readUntilClosed(over)).length).toBe(0)
    expect(await connectError(await pgClient('127.0.0.1'))).toBeInstanceOf(Error)

    // Signed-in sessions do not count: more of them than the per-address cap, from one address.
    const mine = [await pgClient('127.0.0.2'), await pgClient('127.0.0.2'), await pgClient('127.0.0.2')]
    for (const c of mine) expect(await connectError(c)).toBeUndefined()
    for (const c of mine) expect((await c.query<{n: number}>('select 1 as n')).rows).toEqual([{n: 1}])
  })

  it('refuses every address once the listener holds its cap of connections not signed in, and takes them again when those go', async () => {
    const held = [await idle('127.0.0.1'), await idle('127.0.0.1'), await idle('127.0.0.3'), await idle('127.0.0.3')]
    expect(await connectError(await pgClient('127.0.0.4'))).toBeInstanceOf(Error)
    for (const s of held) s.destroy()
    await waitFor(async () => (await connectError(await pgClient('127.0.0.4'))) === undefined, 'a person signs in once the idle connections are gone')
  })
})

/** The TLS handshake, startup packet and token have a deadline of their own, shorter than the upstream login's. */
describe('dbgate gateway: sign-in deadline', () => {
  let app: AppGateway

  beforeAll(async () => {
    app = await startAppGateway('gwsignindeadline', {server: ['signInTimeout: 1s']})
  })
  afterAll(() => app?.close())

  it('ends a connection that sends no token by server.signInTimeout, naming it', async () => {
    const socket = await sslRequestTls(app.gw.address.port, readFileSync(app.pki.ca, 'utf8'))
    socket.write(encodeStartup({user: 'alice@example.com', database: 'app'}))
    const bytes = await readUntilClosed(socket)
    const errors: string[] = []
    new Framer({maxMessageSize: 1 << 20}).push(bytes, (f) => {
      if (String.fromCharCode(f.code) === 'E') errors.push(String(decodeNotice(f.body).message))
    })
    expect(errors).toEqual([expect.stringMatching(/sign-in timed out: the TLS handshake, startup packet and token must arrive within 1s of connecting \(server\.signInTimeout\)/)])
  })
})

describe('per-address share of connections not signed in', () => {
  it('counts the IPv6 addresses of one /64 as one source, an IPv4-mapped address as its IPv4 one, and other prefixes apart', () => {
    const slots = new PendingSignIns({max: 100, maxPerAddress: 2})
    const hold = (a: string) => slots.take(a)
    expect(hold('2001:db8:1:2::10').ok).toBe(true)
    expect(hold('2001:db8:1:2:ffff:1:2:3').ok).toBe(true)
    // A third address chosen in the same /64 (every spelling of it) is the same host's share.
    for (const a of ['2001:0db8:0001:0002::abcd', '2001:db8:1:2:0:0:1.2.3.4', '2001:DB8:1:2::9%eth0']) expect(hold(a), a).toMatchObject({ok: false, cap: 'server.maxPendingSignInsPerAddress'})
    expect(hold('2001:db8:1:3::10').ok).toBe(true)
    expect(hold('::ffff:192.0.2.7').ok).toBe(true)
    expect(hold('192.0.2.7').ok).toBe(true)
    expect(hold('192.0.2.7')).toMatchObject({ok: false})
    expect(addressShare('::1')).toBe('0:0:0:0::/64')
  })
})

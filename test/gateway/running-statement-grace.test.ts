import {readFileSync} from 'node:fs'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {mint} from '../identity/helpers.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {startAppGateway, type AppGateway} from './app-gateway.js'

/**
 * `server.runningStatementGrace`: a session that ends (here at maxSessionDuration; the token's expiry
 * and a withdrawn signing key end it the same way) does not stay open for as long as its running
 * statement likes. Past the grace the client is closed and its server session ended (statements it pipelined
 * behind the running one with it: test/gateway/queued-past-end.test.ts), and a client that keeps the session
 * open by reading its rows slowly is disconnected.
 */
describe('dbgate gateway: the statement running when a session ends', () => {
  let app: AppGateway
  const logs: string[] = []

  beforeAll(async () => {
    app = await startAppGateway('gwgrace', {server: ['maxSessionDuration: 2s', 'runningStatementGrace: 1s'], log: (level, m) => logs.push(`${level}: ${m}`)})
  })
  afterAll(() => app?.close())

  async function connect(name: string): Promise<pg.Client> {
    const token = await mint(app.f.signingKey, {iss: app.f.dev.issuer, aud: app.f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 600})
    const c = new pg.Client({host: '127.0.0.1', port: app.gw.address.port, database: 'app', user: 'alice@example.com', password: token, application_name: name, ssl: {ca: readFileSync(app.pki.ca, 'utf8'), servername: 'localhost'}})
    c.on('error', () => {})
    await c.connect()
    return c
  }
  const backends = (name: string) =>
    withClient(app.db.url, async (q) => (await q.query('select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name like $1', [`% ${name}`])).rows[0].n as number)

  it('ends a statement that runs on past the end of its session, and the session on the server', async () => {
    const c = await connect('grace_sleep')
    const ended = new Promise<void>((resolve) => c.once('end', resolve))
    const e = await c.query('select pg_sleep(600)').then(
      () => undefined,
      (err: Error & {code?: string}) => err,
    )
    expect(e).toMatchObject({code: '57P01', message: expect.stringMatching(/maximum session duration/)})
    await ended
    await waitFor(async () => (await backends('grace_sleep')) === 0, 'the database session has ended')
    expect(logs.some((l) => /its session ended 1s ago and its statement still runs: closing it and ending its server session \(server\.runningStatementGrace\)/.test(l))).toBe(true)
  })

  it('disconnects a client that holds its session open by not reading the rows of its statement', async () => {
    const c = await connect('grace_reader')
    const ended = new Promise<void>((resolve) => c.once('end', resolve))
    const big = c.query("select g, repeat('z', 2000) from generate_series(1, 200000) g").catch(() => undefined)
    // The client stops reading: the server fills what lies between it and the client, then waits.
    const stream = (c as unknown as {connection: {stream: {pause(): void; resume(): void}}}).connection.stream
    stream.pause()
    // The gateway closes it without the client having read a byte more, and the database session ends.
    await waitFor(async () => app.gw.sessionCount === 0 && (await backends('grace_reader')) === 0, 'the gateway has closed the session', {timeoutMs: 30_000})
    expect(logs.filter((l) => /statement still runs: closing it and ending its server session/.test(l))).toHaveLength(2)
    stream.resume()
    await ended
    await big
  })
})

import {readFileSync} from 'node:fs'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {RunningGateway} from '../../src/gateway/gateway.js'
import {encodeQuery} from '../../src/wire/frontend.js'
import {mint, type Fixture} from '../identity/helpers.js'
import {withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import type {TestPki} from './helpers.js'
import {SignedIn} from './signed-in.js'
import {startAppGateway, type AppGateway} from './app-gateway.js'

/**
 * A session must end when its token expires or it reaches `server.maxSessionDuration`: the gateway
 * waits for the statement in flight, then closes. A client that never lets the session be idle —
 * always one more statement pipelined behind the running one, by either protocol, with or without
 * Sync — must not keep it going: nothing it sends past the end reaches the database.
 */
describe('dbgate gateway: a session cannot be kept open past its end by pipelining', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: RunningGateway
  let ca: string
  const email = 'alice@example.com'

  let app: AppGateway

  beforeAll(async () => {
    app = await startAppGateway('gwend', {prepare: (d) => withClient(d.url, (c) => c.query('create table ticks (at timestamptz not null default clock_timestamp(), who text not null)'))})
    ;({f, pki, db, dir, gw} = app)
    ca = readFileSync(pki.ca, 'utf8')
  })
  afterAll(() => app?.close())

  /** Each way of keeping a statement queued behind the running one: what to send for the n-th step. */
  const pipelines: [string, (who: string, n: number) => Buffer][] = [
    ['simple queries', (who, n) => encodeQuery(`insert into ticks(who) values ('${who}'); select pg_sleep(0.1), ${n}`)],
    [
      'extended-protocol batches with Sync',
      (who) => Buffer.concat([serialize.parse({text: `insert into ticks(who) values ('${who}')`}), serialize.bind({}), serialize.execute({}), serialize.parse({text: 'select pg_sleep(0.1)'}), serialize.bind({}), serialize.execute({}), serialize.sync()]),
    ],
    // Without Sync nothing commits, and no ReadyForQuery ever marks the end of a statement: the
    // replies the client gets are what it reads past the end.
    ['extended-protocol messages without Sync', () => Buffer.concat([serialize.parse({text: 'select pg_sleep(0.1)'}), serialize.bind({}), serialize.execute({}), serialize.flush()])],
  ]

  it.each(pipelines)('ends the session at the token\'s expiry although the client keeps %s queued', async (label, step) => {
    const who = label.replace(/\W+/g, '-')
    const exp = Math.floor(Date.now() / 1000) + 2
    const token = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email, groups: ['engineering'], exp})
    const c = await SignedIn.open(gw.address.port, ca, email, token)
    // Two steps in flight, and one more each time one completes: the session is never idle.
    const done = label.includes('without Sync') ? 'C' : 'Z'
    let n = 0
    c.socket.write(step(who, ++n))
    c.socket.write(step(who, ++n))
    let seen = c.count(done)
    const stopAt = exp * 1000 + 6000
    while (!c.closed && Date.now() < stopAt) {
      await new Promise((r) => setTimeout(r, 10))
      for (const now = c.count(done); seen < now; seen++) c.socket.write(step(who, ++n))
    }
    c.socket.destroy()
    // The end comes at expiry; what was in flight then (a step of 0.1 s, two queued) may finish.
    const end = exp * 1000 + 1500
    expect(c.closed, 'the gateway closed the session').toBe(true)
    expect(c.errors().at(-1)).toMatchObject({code: '57P01', message: expect.stringMatching(/your sign-in token expired/)})
    expect(c.messages.filter((m) => m.code !== 'E' && m.at > end).map((m) => m.code)).toEqual([])
    const late = await withClient(db.url, (k) => k.query<{n: number}>('select count(*)::int as n from ticks where who = $1 and at > to_timestamp($2)', [who, end / 1000]))
    expect(late.rows[0]!.n).toBe(0)
  }, 30_000)

  // COPY FROM STDIN is one statement that runs for as long as the client keeps feeding it.
  it.each([['a simple query', (sql: string) => encodeQuery(sql)], ['an Execute', (sql: string) => Buffer.concat([serialize.parse({text: sql}), serialize.bind({}), serialize.execute({}), serialize.sync()])]])(
    'fails a COPY FROM STDIN (started by %s) that the client keeps feeding past the token\'s expiry, and ends the session',
    async (label, start) => {
      const who = `copy-${label.replace(/\W+/g, '-')}`
      const exp = Math.floor(Date.now() / 1000) + 2
      const token = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email, groups: ['engineering'], exp})
      const c = await SignedIn.open(gw.address.port, ca, email, token)
      c.socket.write(start('copy ticks(who) from stdin'))
      await waitFor(() => c.count('G') > 0 || c.closed, 'the COPY has started')
      const stopAt = exp * 1000 + 4000
      while (!c.closed && Date.now() < stopAt) {
        c.socket.write(serialize.copyData(Buffer.from(`${who}\n`)))
        await new Promise((r) => setTimeout(r, 50))
      }
      if (!c.closed) c.socket.write(serialize.copyDone())
      await waitFor(() => c.closed, 'the session has ended', {timeoutMs: 5000}).catch(() => {})
      c.socket.destroy()
      expect(c.closed, 'the gateway closed the session').toBe(true)
      expect(c.messages.filter((m) => m.code !== 'E' && m.at > exp * 1000 + 1500).map((m) => m.code)).toEqual([])
      expect(c.errors().at(-1)).toMatchObject({code: '57P01', message: expect.stringMatching(/your sign-in token expired/)})
      const rows = await withClient(db.url, (k) => k.query<{n: number}>('select count(*)::int as n from ticks where who = $1', [who]))
      expect(rows.rows[0]!.n).toBe(0)
    },
    30_000,
  )
})

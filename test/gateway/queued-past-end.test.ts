import {readFileSync} from 'node:fs'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {encodeQuery} from '../../src/wire/frontend.js'
import {mint} from '../identity/helpers.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {SignedIn} from './signed-in.js'
import {startAppGateway, type AppGateway} from './app-gateway.js'

const email = 'alice@example.com'

const sessionsNamed = (app: AppGateway, name: string) =>
  withClient(app.db.url, async (q) => (await q.query<{n: number}>('select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name like $1', [`% ${name}`])).rows[0]!.n)

/** Each way of queueing, before the end, a write and a long statement eight times over. */
const queues: [string, (who: string, n: number) => Buffer][] = [
  ['simple queries', (who, n) => Buffer.concat([encodeQuery(`insert into ticks(who) values ('${who}-${n}')`), encodeQuery('select pg_sleep(3)')])],
  ['one simple query of several statements each', (who, n) => encodeQuery(`insert into ticks(who) values ('${who}-${n}'); commit; select pg_sleep(3)`)],
  [
    'extended-protocol batches with Sync',
    (who, n) =>
      Buffer.concat([serialize.parse({text: `insert into ticks(who) values ('${who}-${n}')`}), serialize.bind({}), serialize.execute({}), serialize.sync(), serialize.parse({text: 'select pg_sleep(3)'}), serialize.bind({}), serialize.execute({}), serialize.sync()]),
  ],
  ['a long statement, then the rest', (who, n) => (n === 0 ? encodeQuery('select pg_sleep(600)') : Buffer.concat([encodeQuery(`insert into ticks(who) values ('${who}-${n}')`), encodeQuery('select pg_sleep(3)')]))],
]

/**
 * `server.runningStatementGrace` cuts a statement that runs on past its session's end. A client that
 * pipelined long statements before the end must not have the server go on to them once the one
 * running is cut: a CancelRequest stops only that one, and each statement queued behind it would
 * run in turn (an insert, then minutes of pg_sleep), for an identity whose access has ended.
 */
describe('dbgate gateway: statements pipelined before a session ends do not run after its grace', () => {
  let app: AppGateway
  let ca: string

  beforeAll(async () => {
    app = await startAppGateway('gwqueued', {
      server: ['runningStatementGrace: 1s'],
      prepare: (d) => withClient(d.url, (c) => c.query('create table ticks (at timestamptz not null default clock_timestamp(), who text not null)')),
    })
    ca = readFileSync(app.pki.ca, 'utf8')
  })
  afterAll(() => app?.close())

  const backends = (name: string) => sessionsNamed(app, name)

  it.each(queues)('ends the server session at the grace although the client queued %s', async (label, step) => {
    const who = label.replace(/\W+/g, '-')
    const name = `q_${who}`.slice(0, 30)
    const exp = Math.floor(Date.now() / 1000) + 2
    const token = await mint(app.f.signingKey, {iss: app.f.dev.issuer, aud: app.f.dev.cliClientId, sub: 'alice', email, groups: ['engineering'], exp})
    const c = await SignedIn.open(app.gw.address.port, ca, email, token, name)
    c.socket.write(Buffer.concat(Array.from({length: 8}, (_, n) => step(who, n))))
    await waitFor(async () => (await backends(name)) === 1, 'the database session has started')
    await waitFor(() => c.closed, 'the gateway has closed the session', {timeoutMs: 15_000})
    // The server session ends with it: before, it went on through all eight (24 s and more).
    await waitFor(async () => (await backends(name)) === 0, 'the database session has ended', {timeoutMs: 8000})
    expect(c.errors().at(-1)).toMatchObject({code: '57P01', message: expect.stringMatching(/your sign-in token expired/)})
    const rows = await withClient(app.db.url, (k) => k.query<{n: number}>('select count(*)::int as n from ticks where who like $1', [`${who}-%`]))
    // The first steps ran before the end and during the grace; none of the queued rest did.
    expect(rows.rows[0]!.n).toBeLessThanOrEqual(2)
  }, 40_000)
})

/** The same at a drain (SIGTERM): past its deadline and grace, what the client queued does not run. */
describe('dbgate gateway: statements pipelined before a drain do not run after it', () => {
  it.each(queues.slice(0, 3))('ends the server session when the drain ends the session, although the client queued %s', async (label, step) => {
    const app = await startAppGateway('gwqdrain', {prepare: (d) => withClient(d.url, (c) => c.query('create table ticks (at timestamptz not null default clock_timestamp(), who text not null)'))})
    try {
      const ca = readFileSync(app.pki.ca, 'utf8')
      const who = label.replace(/\W+/g, '-')
      const name = `d_${who}`.slice(0, 30)
      const token = await mint(app.f.signingKey, {iss: app.f.dev.issuer, aud: app.f.dev.cliClientId, sub: 'alice', email, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 600})
      const c = await SignedIn.open(app.gw.address.port, ca, email, token, name)
      c.socket.write(Buffer.concat(Array.from({length: 8}, (_, n) => step(who, n))))
      await waitFor(async () => (await sessionsNamed(app, name)) === 1, 'the database session has started')
      await app.gw.drain(500)
      await waitFor(() => c.closed, 'the gateway has closed the session', {timeoutMs: 15_000})
      await waitFor(async () => (await sessionsNamed(app, name)) === 0, 'the database session has ended', {timeoutMs: 8000})
      expect(c.errors().at(-1)).toMatchObject({code: '57P01'})
      const rows = await withClient(app.db.url, (k) => k.query<{n: number}>('select count(*)::int as n from ticks where who like $1', [`${who}-%`]))
      expect(rows.rows[0]!.n).toBeLessThanOrEqual(2)
    } finally {
      await app.close()
    }
  }, 40_000)
})

import {readFileSync} from 'node:fs'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {mint} from '../identity/helpers.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {startAppGateway, type AppGateway} from '../gateway/app-gateway.js'
import {recordingsUnder} from '../gateway/helpers.js'

/** One frontend message: its type byte, then its length and body. */
function msg(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts)
  const head = Buffer.alloc(5)
  head.write(type, 0, 'latin1')
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}
const cstr = (s: string) => Buffer.from(`${s}\0`, 'utf8')
const int16 = (n: number) => Buffer.from([n >> 8, n & 0xff])
const query = (sql: string) => msg('Q', cstr(sql))
/** Parse, Bind, Execute and Sync of one unnamed statement without parameters: a segment of its own. */
const segment = (sql: string) =>
  Buffer.concat([msg('P', cstr(''), cstr(sql), int16(0)), msg('B', cstr(''), cstr(''), int16(0), int16(0), int16(0)), msg('E', cstr(''), Buffer.alloc(4)), msg('S')])

/**
 * `server.runningStatementGrace` promises that a session's access ends within the grace of its end.
 * Statements a client sent before its session ended are in flight: the first was cancelled at the
 * grace, and the server went straight on to the next one, which ran on past the grace (up to the
 * busy linger, ten minutes), wrote and committed, while the recording called it `unanswered`. The
 * gateway now ends the server session itself (pg_terminate_backend), so nothing of the session
 * writes after the grace, and the recording holds every statement the client sent, unanswered: the
 * one running was stopped, those behind it never ran (docs/recording.md, `outcome`).
 */
describe('dbgate gateway: statements pipelined behind the one running when the session ends', () => {
  let app: AppGateway
  beforeAll(async () => {
    app = await startAppGateway('gwgracepipe', {
      server: ['maxSessionDuration: 2s', 'runningStatementGrace: 1s'],
      prepare: (db) => withClient(db.url, (c) => c.query('create table marks (tag text) with (autovacuum_enabled = false)')),
    })
  })
  afterAll(() => app?.close())

  const backends = (name: string) =>
    withClient(app.db.url, async (q) => (await q.query('select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name like $1', [`dbgate/% ${name}`])).rows[0].n as number)

  it.each([
    ['two Queries in one write', (tag: string) => Buffer.concat([query(`select pg_sleep(600) /* ${tag} */`), query(`insert into marks select '${tag}' from pg_sleep(3)`)])],
    ['three Queries, the write last', (tag: string) => Buffer.concat([query(`select pg_sleep(600) /* ${tag} */`), query('select pg_sleep(600)'), query(`insert into marks select '${tag}' from pg_sleep(3)`)])],
    ['two extended-protocol segments', (tag: string) => Buffer.concat([segment(`select pg_sleep(600) /* ${tag} */`), segment(`insert into marks select '${tag}' from pg_sleep(3)`)])],
    ['a Query and then a segment', (tag: string) => Buffer.concat([query(`select pg_sleep(600) /* ${tag} */`), segment(`with w as (insert into marks select '${tag}' from pg_sleep(3) returning 1) select count(*) from w`)])],
  ])('ends the server session under %s, and none writes', async (_what, bytes) => {
    const tag = `t${Math.random().toString(36).slice(2, 8)}`
    const token = await mint(app.f.signingKey, {iss: app.f.dev.issuer, aud: app.f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 600})
    const c = new pg.Client({host: '127.0.0.1', port: app.gw.address.port, database: 'app', user: 'alice@example.com', password: token, application_name: tag, ssl: {ca: readFileSync(app.pki.ca, 'utf8'), servername: 'localhost'}})
    c.on('error', () => {})
    await c.connect()
    const ended = new Promise<void>((resolve) => c.once('end', resolve))
    ;(c as unknown as {connection: {stream: {write(b: Buffer): void}}}).connection.stream.write(bytes(tag))
    await ended
    await waitFor(async () => (await backends(tag)) === 0, 'the database session has ended')
    const marks = await withClient(app.db.url, (q) => q.query('select count(*)::int as n from marks where tag = $1', [tag]))
    expect(marks.rows[0].n, 'rows written after the grace').toBe(0)
    const session = await waitFor(() => recordingsUnder(app.dir).find((r) => r.includes(tag) && r.includes('"session.end"')), 'the session is recorded to its end')
    const statements = session
      .split('\n')
      .filter((l) => l.includes('"type":"statement"'))
      .map((l) => JSON.parse(l).data as {sql: string; outcome: string; error?: {sqlstate: string}})
    const writes = statements.filter((s) => s.sql.includes('insert into marks'))
    expect(writes).toHaveLength(1)
    expect(writes[0]!.outcome).toBe('unanswered')
    // Every statement the client sent is there, none recorded as if it had completed.
    expect(statements.filter((s) => s.sql.includes('pg_sleep(600)')).length).toBeGreaterThan(0)
    for (const s of statements) expect(s.outcome, s.sql).not.toBe('ok')
  }, 60_000)
})

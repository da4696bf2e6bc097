import {readFileSync} from 'node:fs'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {decodeJwt} from 'jose'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide, type Reviewer} from '../../src/approvals/review.js'
import {readOutcome} from '../../src/approvals/store.js'
import {openBucket, type Bucket} from '../../src/bucket/index.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {verifyToken} from '../../src/identity/verify.js'
import {watchNotices} from '../approvals/helpers.js'
import {fixture, mint, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfig, makePki, type TestPki, closeGatewayTest} from './helpers.js'

/**
 * A statement held for approval is not "in flight": nothing of it has reached the database. When
 * the session must end while it waits (its token expired, server.maxSessionDuration), it is
 * withdrawn, and a reviewer who approves it afterwards runs nothing: the identity that asked for it
 * no longer holds a session.
 */
describe('dbgate gateway: a statement held for approval when the session must end', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: RunningGateway
  let loaded: LoadedConfig
  let bucket: Bucket
  const email = 'alice@example.com'

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwheld')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwheld-'))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    loaded = gatewayConfig({
      pki,
      dir,
      issuer: f.dev.issuer,
      clientId: f.dev.cliClientId,
      env,
      server: ['maxSessionDuration: 5s'],
      targets: targetConfigText('app', db, ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')),
    })
    bucket = openBucket(loaded.config.bucket)
    gw = await startGateway({loaded, env})
    await gw.whenReady()
  })
  afterAll(() => closeGatewayTest(gw, f, [dir, pki?.dir]))

  /** Bob of dba, deciding with a token issued now, as `dbgate approve` would. */
  const bob: Reviewer = {
    identity: {subject: 'bob', email: 'bob@example.com', groups: ['dba'], issuer: '', kind: 'human', tokenHash: '', expiresAt: new Date(Date.now() + 3_600_000)},
    async freshToken() {
      const token = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'bob', email: 'bob@example.com', groups: ['dba'], exp: Math.floor(Date.now() / 1000) + 600})
      const {identity} = await verifyToken(f.config, token, {use: 'any'})
      return {identity, token}
    },
  }
  const connect = async (ttlSeconds: number) => {
    const token = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + ttlSeconds})
    const c = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: email, password: token, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
    c.on('error', () => {})
    await c.connect()
    return {c, exp: decodeJwt(token).exp! * 1000}
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)))
  const tableExists = (name: string) => withClient(db.url, async (k) => (await k.query<{ok: boolean}>('select to_regclass($1) is not null as ok', [name])).rows[0]!.ok)

  // Each way a statement comes to wait: a simple query, and an extended-protocol Parse.
  const sends: [string, (c: pg.Client, table: string) => Promise<unknown>][] = [
    ['a simple query', (c, table) => c.query(`create table ${table} (id int)`)],
    ['an extended-protocol Parse', (c, table) => c.query({text: `create table ${table} (id int)`, values: []})],
  ]

  it.each(sends)('withdraws %s held when the token expires, and an approval given afterwards runs nothing', async (label, send) => {
    const table = `held_token_${label.replace(/\W+/g, '_')}`
    const {c, exp} = await connect(4)
    const w = watchNotices(c)
    const held = send(c, table).then(
      () => undefined,
      (e: Error) => e,
    )
    const id = await w.approvalId()
    // The reviewer comes after the session's end: by then nothing may be waiting for them.
    await sleep(exp + 1500 - Date.now())
    await decide({bucket, config: loaded.config, reviewer: bob}, {id, action: 'approve'}).catch(() => undefined)
    const error = await Promise.race([held, sleep(8000).then(() => new Error('still waiting for its verdict'))])
    expect(await tableExists(table)).toBe(false)
    expect(error?.message).toMatch(/withdrawn: the session is ending: your sign-in token expired/)
    expect((await readOutcome(bucket, id))?.state).toBe('withdrawn')
    await c.end().catch(() => {})
  }, 30_000)

  it('withdraws a statement held when server.maxSessionDuration is reached', async () => {
    const table = 'held_duration'
    const opened = Date.now()
    const {c} = await connect(600)
    const w = watchNotices(c)
    const held = c.query(`create table ${table} (id int)`).then(
      () => undefined,
      (e: Error) => e,
    )
    const id = await w.approvalId()
    await sleep(opened + 5000 + 1500 - Date.now())
    await decide({bucket, config: loaded.config, reviewer: bob}, {id, action: 'approve'}).catch(() => undefined)
    const error = await Promise.race([held, sleep(8000).then(() => new Error('still waiting for its verdict'))])
    expect(await tableExists(table)).toBe(false)
    expect(error?.message).toMatch(/withdrawn: the session is ending: this session reached the gateway's maximum session duration/)
    expect((await readOutcome(bucket, id))?.state).toBe('withdrawn')
    await c.end().catch(() => {})
  }, 30_000)
})

import {readFileSync} from 'node:fs'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {RunningGateway} from '../../src/gateway/gateway.js'
import {mint, type Fixture} from '../identity/helpers.js'
import type {UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import type {TestPki} from './helpers.js'
import {startAppGateway, type AppGateway} from './app-gateway.js'

/**
 * `server.sessionOutlivesToken: true`, as docs/gateway.md describes it: a session signed in with a
 * token that then expires goes on (statements, masking and guardrails included) until
 * `maxSessionDuration`, which still ends it.
 */
describe('dbgate gateway: sessionOutlivesToken: true', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: RunningGateway

  let app: AppGateway

  beforeAll(async () => {
    app = await startAppGateway('gwoutlive', {server: ['sessionOutlivesToken: true', 'maxSessionDuration: 8s']})
    ;({f, pki, db, dir, gw} = app)
  })
  afterAll(() => app?.close())

  it('keeps a session going after its token expired, guarded as before, and ends it at maxSessionDuration', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2
    const token = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering'], exp})
    const c = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: 'alice@example.com', password: token, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
    const ended = new Promise<Error>((resolve) => c.on('error', resolve))
    await c.connect()
    expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
    await waitFor(() => Date.now() > exp * 1000 + 1500, 'the token has expired', {timeoutMs: 10_000, intervalMs: 100})
    // Past the token's expiry: still served, still under policy.
    expect((await c.query('select 2 as two')).rows).toEqual([{two: 2}])
    await expect(c.query('drop table if exists nothing_here')).rejects.toThrow(/denied by rule/)
    expect((await c.query('select 3 as three')).rows).toEqual([{three: 3}])
    expect((await ended).message).toMatch(/maximum session duration of 8s \(server\.maxSessionDuration\)/)
    await c.end().catch(() => {})
  })
})

import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {RunningGateway} from '../../src/gateway/gateway.js'
import {mint, type Fixture} from '../identity/helpers.js'
import type {UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {recordingsUnder, type TestPki} from './helpers.js'
import {startAppGateway, type AppGateway} from './app-gateway.js'

/**
 * Tokens the IdP really signed, with dbgate's audience and a subject, that still must not sign
 * anyone in: JWTs of other kinds (logout tokens, security events, introspection responses), and
 * an e-mail address the IdP says it has not verified, which must not become the person's name.
 */
describe('dbgate gateway: IdP-signed JWTs that are not sign-in tokens', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: RunningGateway

  let app: AppGateway

  beforeAll(async () => {
    // Tokens of dbgate's own client and of one CI client are accepted (identity.allowedClients).
    app = await startAppGateway('gwtok', {identity: ['allowedClients: [ci-runner]']})
    ;({f, pki, db, dir, gw} = app)
  })
  afterAll(() => app?.close())

  const claims = (extra: Record<string, unknown> = {}) => ({iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'mallory', email: 'mallory@example.com', groups: ['engineering'], ...extra})

  /** Signs in as `user`; the application_name the database sees (as masking shows it: `dbgate/b***@example.com`), or the error. */
  async function signIn(token: string, user: string, sql?: string): Promise<{applicationName: string} | pg.DatabaseError> {
    const c = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user, password: token, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
    c.on('error', () => {})
    try {
      await c.connect()
      if (sql) await c.query(sql)
      const r = await c.query<{name: string}>("select current_setting('application_name') as name")
      return {applicationName: r.rows[0]!.name}
    } catch (error) {
      return error as pg.DatabaseError
    } finally {
      await c.end().catch(() => {})
    }
  }

  it.each([['logout+jwt'], ['application/logout+jwt'], ['secevent+jwt'], ['token-introspection+jwt'], ['oauth-authz-req+jwt'], ['dpop+jwt'], ['JWT+x']])('refuses a token typed "%s"', async (typ) => {
    const e = await signIn(await mint(f.signingKey, claims(), {typ}), 'mallory@example.com')
    expect(e).toBeInstanceOf(Error)
    expect(e).toMatchObject({code: '28P01', message: expect.stringMatching(/not a usable sign-in token .*its type .* is not a sign-in token's/)})
  })

  it('refuses a security event token without a type (a logout token has an "events" claim)', async () => {
    const events = {'http://schemas.openid.net/event/backchannel-logout': {}}
    const e = await signIn(await mint(f.signingKey, claims({events, jti: 'logout-1'})), 'mallory@example.com')
    expect(e).toMatchObject({code: '28P01', message: expect.stringMatching(/security event token/)})
  })

  it.each([[undefined], ['JWT'], ['jwt'], ['application/jwt'], ['at+jwt'], ['application/at+jwt']])('still signs in with a sign-in token typed %s', async (typ) => {
    const r = await signIn(await mint(f.signingKey, claims(), typ === undefined ? {} : {typ}), 'mallory@example.com')
    expect(r).toEqual({applicationName: 'dbgate/m***@example.com'})
  })

  it.each([[false], ['false'], ['False'], ['FALSE'], [' false'], [0], ['0'], ['no'], [null], [{}], [[]], ['']])('does not take an e-mail address with email_verified %j as the person: the subject names them', async (flag) => {
    const token = await mint(f.signingKey, claims({email: 'bob@example.com', email_verified: flag}))
    const e = await signIn(token, 'bob@example.com')
    expect(e).toMatchObject({code: '28000', message: expect.stringMatching(/"bob@example\.com" is not the identity the token proves \(mallory\)/)})
    expect(await signIn(token, 'mallory')).toEqual({applicationName: 'dbgate/mallory'})
    // A verified address (or an IdP that sends no flag) still names the person.
    expect(await signIn(await mint(f.signingKey, claims({email: 'bob@example.com', email_verified: true})), 'bob@example.com')).toEqual({applicationName: 'dbgate/b***@example.com'})
    expect(await signIn(await mint(f.signingKey, claims({email: 'bob@example.com', email_verified: 'true'})), 'bob@example.com')).toEqual({applicationName: 'dbgate/b***@example.com'})
  })

  it('refuses a token that says it was issued in the future, beyond the clock skew', async () => {
    const now = Math.floor(Date.now() / 1000)
    const e = await signIn(await mint(f.signingKey, claims({iat: now + 3600, exp: now + 7200})), 'mallory@example.com')
    expect(e).toMatchObject({code: '28P01', message: expect.stringMatching(/sign-in refused: the token is not valid yet: it says it was issued \(iat\) in the future, beyond the clock skew allowed/)})
    // Within the skew (identity.clockSkew, 60 s by default) a token still signs in.
    expect(await signIn(await mint(f.signingKey, claims({iat: now + 20})), 'mallory@example.com')).toEqual({applicationName: 'dbgate/m***@example.com'})
  })

  // azp (OIDC), client_id (RFC 9068), cid (Okta's access tokens), appid (Entra ID v1 access tokens).
  it.each([['azp'], ['client_id'], ['cid'], ['appid']])('refuses a token whose %s names a client the gateway does not accept, and takes those it does', async (claim) => {
    const e = await signIn(await mint(f.signingKey, claims({[claim]: 'some-other-app'})), 'mallory@example.com')
    expect(e).toMatchObject({code: '28P01', message: expect.stringMatching(/the token was issued to another client \("some-other-app"\); this gateway accepts tokens of .*ci-runner \(identity\.allowedClients\)/)})
    for (const client of [f.dev.cliClientId, 'ci-runner']) {
      expect(await signIn(await mint(f.signingKey, claims({[claim]: client})), 'mallory@example.com'), client).toEqual({applicationName: 'dbgate/m***@example.com'})
    }
  })

  it('verifies and records a token sent with a trailing newline as the token itself', async () => {
    // A person no other test signs in as: the pipeline, and so the recorded identity, is this token's (src/gateway/pipelines.ts).
    const token = await mint(f.signingKey, claims({sub: 'nelly', email: 'nelly@example.com'}))
    const marker = `select 'trailing-newline-${Date.now()}'`
    expect(await signIn(`${token}\n`, 'nelly@example.com', marker)).toEqual({applicationName: 'dbgate/n***@example.com'})
    const recording = await waitFor(() => recordingsUnder(dir).find((r) => r.includes(marker)), 'the session is recorded')
    expect(recording).toContain(createHash('sha256').update(token).digest('hex'))
    expect(recording).not.toContain(createHash('sha256').update(`${token}\n`).digest('hex'))
  })

  it('refuses a token with whitespace inside it', async () => {
    const token = await mint(f.signingKey, claims())
    const e = await signIn(`${token.slice(0, -10)}\n${token.slice(-10)}`, 'mallory@example.com')
    expect(e).toMatchObject({code: '28P01', message: expect.stringMatching(/not a usable sign-in token \(malformed: it contains whitespace inside it/)})
  })
})

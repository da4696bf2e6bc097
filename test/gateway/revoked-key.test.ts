import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {exportJWK, generateKeyPair, type JWK} from 'jose'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'
import {freePort} from '../../src/dev/embedded-pg.js'
import {startDevOidcProvider, type DevProvider} from '../../src/dev/oidc-dev-provider.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {mint} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {gatewayConfig, makePki, type TestPki} from './helpers.js'

async function rsaKey(kid: string): Promise<JWK> {
  const {privateKey} = await generateKeyPair('RS256', {extractable: true})
  return {...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid}
}

/**
 * An IdP withdraws a signing key (compromised, revoked): a token it signed is refused at the next
 * sign-in, and a session that signed in with one must not go on for the rest of the token's life
 * (or, with sessionOutlivesToken, up to maxSessionDuration). An IdP that does not answer says
 * nothing about its keys: sessions go on through an outage.
 */
describe('dbgate gateway: a session signed in with a key the IdP no longer publishes', () => {
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: RunningGateway
  let idp: DevProvider | undefined
  let idpPort: number
  let key1: JWK
  let key2: JWK
  const email = 'alice@example.com'
  const issuer = () => `http://127.0.0.1:${idpPort}`

  beforeAll(async () => {
    ;[pki, db, idpPort, key1, key2] = await Promise.all([makePki(), createTestDatabase('gwrevoked'), freePort(), rsaKey('revoked-key-1'), rsaKey('revoked-key-2')])
    idp = await startDevOidcProvider({port: idpPort, signingKey: key1})
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwrevoked-'))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = gatewayConfig({pki, dir, issuer: issuer(), clientId: 'dbgate-cli', env, server: ['sessionOutlivesToken: true'], targets: targetConfigText('app', db, 'allow: [engineering]')})
    gw = await startGateway({loaded, env, keyCheckMs: 300})
    await gw.whenReady()
  })
  afterAll(async () => {
    vi.useRealTimers()
    await gw?.close(500)
    await idp?.stop()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  const token = (key: JWK) => mint(key, {iss: issuer(), aud: 'dbgate-cli', sub: 'alice', email, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 3600})
  async function open(key: JWK): Promise<{c: pg.Client; ended: () => Error | undefined}> {
    const c = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: email, password: await token(key), ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
    let error: Error | undefined
    c.on('error', (e) => (error ??= e))
    await c.connect()
    return {c, ended: () => error}
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

  it('goes on through an IdP outage, and ends once the IdP answers without its key, while a session of a published key goes on', async () => {
    const first = await open(key1)
    // An outage: nothing is known of the keys, and nothing ends.
    await idp!.stop()
    idp = undefined
    await sleep(1500)
    expect(first.ended()).toBeUndefined()
    expect((await first.c.query('select 1 as one')).rows).toEqual([{one: 1}])

    // The IdP is back, publishing key 2 only: key 1 was withdrawn.
    idp = await startDevOidcProvider({port: idpPort, signingKey: key2})
    // Past jose's cool-down after the gateway's first fetch, so that key 2 is fetched on its kid.
    vi.useFakeTimers({toFake: ['Date']})
    vi.setSystemTime(Date.now() + 60_000)
    const second = await open(key2)
    await waitFor(() => first.ended() !== undefined, 'the session signed with the withdrawn key has ended', {timeoutMs: 10_000}).catch(() => {})
    expect(first.ended()?.message).toMatch(/no longer publishes the key your sign-in token was signed with/)
    await expect(first.c.query('select 2')).rejects.toThrow()
    // The session of a key still published is left alone.
    await sleep(1000)
    expect(second.ended()).toBeUndefined()
    expect((await second.c.query('select 3 as three')).rows).toEqual([{three: 3}])
    await Promise.all([first.c.end().catch(() => {}), second.c.end()])
  }, 30_000)
})

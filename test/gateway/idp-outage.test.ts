import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, type JWK} from 'jose'
import pg from 'pg'
import {freePort} from '../../src/dev/embedded-pg.js'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'
import {startDevOidcProvider, type DevProvider} from '../../src/dev/oidc-dev-provider.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {mint} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfig, makePki, type TestPki} from './helpers.js'

async function rsaKey(kid: string): Promise<JWK> {
  const {privateKey} = await generateKeyPair('RS256', {extractable: true})
  return {...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid}
}

const ELEVEN_MINUTES = 11 * 60_000

/**
 * The IdP goes away while the gateway runs: the keys it had keep verifying sign-ins for longer than
 * jose's ten-minute cache, and once the IdP is back a rotated key is fetched on its unknown kid.
 */
describe('dbgate gateway: IdP unreachable during operation', () => {
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
    ;[pki, db, idpPort, key1, key2] = await Promise.all([makePki(), createTestDatabase('gwidp'), freePort(), rsaKey('idp-key-1'), rsaKey('idp-key-2')])
    idp = await startDevOidcProvider({port: idpPort, signingKey: key1})
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwidp-'))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = gatewayConfig({pki, dir, issuer: issuer(), clientId: 'dbgate-cli', env, targets: targetConfigText('app', db, 'allow: [engineering]')})
    gw = await startGateway({loaded, env})
    await gw.whenReady()
  })
  afterAll(async () => {
    vi.useRealTimers()
    await gw?.close(500)
    await idp?.stop()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  const token = (key: JWK) => mint(key, {iss: issuer(), aud: 'dbgate-cli', sub: 'alice', email, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 3600})
  /** Signs in with `password` and runs one statement; resolves with the error, if any. */
  async function signIn(password: string): Promise<pg.DatabaseError | undefined> {
    const c = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: email, password, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
    c.on('error', () => {})
    try {
      await c.connect()
      expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
      return undefined
    } catch (error) {
      return error as pg.DatabaseError
    } finally {
      await c.end().catch(() => {})
    }
  }

  it('keeps verifying sign-ins with the keys it had, past jose\'s ten-minute cache, while the IdP is down', async () => {
    expect(await signIn(await token(key1))).toBeUndefined()
    // jose's remote key set, used as it comes, loaded while the IdP is up…
    const bare = createRemoteJWKSet(new URL(`${issuer()}/jwks`))
    const before = await token(key1)
    await jwtVerify(before, bare)
    await idp!.stop()
    idp = undefined
    vi.useFakeTimers({toFake: ['Date']})
    vi.setSystemTime(Date.now() + ELEVEN_MINUTES)
    const later = await token(key1)
    // …refuses the same, valid token once its keys are ten minutes old and the IdP does not answer.
    await expect(jwtVerify(later, bare)).rejects.toThrow(/fetch failed/)
    // The gateway keeps its last good keys and lets the person in.
    expect(await signIn(later)).toBeUndefined()
    // Again, within the retry pause (no fetch attempted) and after it.
    expect(await signIn(later)).toBeUndefined()
    vi.setSystemTime(Date.now() + ELEVEN_MINUTES)
    expect(await signIn(await token(key1))).toBeUndefined()
  })

  // The clock only moves forward from here (the fake Date of the first test stays on).
  it('cannot check a key it never saw while the IdP is down, and says the IdP is unreachable (57P03)', async () => {
    vi.setSystemTime(Date.now() + 60_000)
    const e = await signIn(await token(key2))
    expect(e?.code).toBe('57P03')
    expect(e?.message).toMatch(/identity provider .* is unreachable/)
  })

  it('fetches a rotated key on its unknown kid once the IdP answers again, and refuses the removed one', async () => {
    idp = await startDevOidcProvider({port: idpPort, signingKey: key2})
    vi.setSystemTime(Date.now() + 60_000)
    expect(await signIn(await token(key2))).toBeUndefined()
    // Key 1 left the IdP's set: with the IdP reachable, the fresh set decides, not the old one.
    const e = await signIn(await token(key1))
    expect(e?.code).toBe('28P01')
    expect(e?.message).toMatch(/signature does not verify/)
  })
})

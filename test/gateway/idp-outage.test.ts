import {createRemoteJWKSet, jwtVerify, type JWK} from 'jose'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'
import {rotatingIdpGateway, type RotatingIdpGateway} from './helpers.js'

const ELEVEN_MINUTES = 11 * 60_000

/**
 * The IdP goes away while the gateway runs: the keys it had keep verifying sign-ins for longer than
 * jose's ten-minute cache, and once the IdP is back a rotated key is fetched on its unknown kid.
 */
describe('dbgate gateway: IdP unreachable during operation', () => {
  let f: RotatingIdpGateway

  beforeAll(async () => {
    f = await rotatingIdpGateway('gwidp')
  })
  afterAll(async () => {
    vi.useRealTimers()
    await f?.close()
  })

  const token = (key: JWK) => f.token(key)
  const key1 = () => f.keys[0]
  const key2 = () => f.keys[1]
  /** Signs in with `password` and runs one statement; resolves with the error, if any. */
  async function signIn(password: string): Promise<pg.DatabaseError | undefined> {
    const c = new pg.Client({host: '127.0.0.1', port: f.gw.address.port, database: 'app', user: f.email, password, ssl: f.ssl()})
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
    expect(await signIn(await token(key1()))).toBeUndefined()
    // jose's remote key set, used as it comes, loaded while the IdP is up…
    const bare = createRemoteJWKSet(new URL(`${f.issuer}/jwks`))
    const before = await token(key1())
    await jwtVerify(before, bare)
    await f.idpStop()
    vi.useFakeTimers({toFake: ['Date']})
    vi.setSystemTime(Date.now() + ELEVEN_MINUTES)
    const later = await token(key1())
    // …refuses the same, valid token once its keys are ten minutes old and the IdP does not answer.
    await expect(jwtVerify(later, bare)).rejects.toThrow(/fetch failed/)
    // The gateway keeps its last good keys and lets the person in.
    expect(await signIn(later)).toBeUndefined()
    // Again, within the retry pause (no fetch attempted) and after it.
    expect(await signIn(later)).toBeUndefined()
    vi.setSystemTime(Date.now() + ELEVEN_MINUTES)
    expect(await signIn(await token(key1()))).toBeUndefined()
  })

  // The clock only moves forward from here (the fake Date of the first test stays on).
  it('cannot check a key it never saw while the IdP is down, and says the IdP is unreachable (57P03)', async () => {
    vi.setSystemTime(Date.now() + 60_000)
    const e = await signIn(await token(key2()))
    expect(e?.code).toBe('57P03')
    expect(e?.message).toMatch(/identity provider .* is unreachable/)
  })

  it('fetches a rotated key on its unknown kid once the IdP answers again, and refuses the removed one', async () => {
    await f.idpStart(key2())
    vi.setSystemTime(Date.now() + 60_000)
    expect(await signIn(await token(key2()))).toBeUndefined()
    // Key 1 left the IdP's set: with the IdP reachable, the fresh set decides, not the old one.
    const e = await signIn(await token(key1()))
    expect(e?.code).toBe('28P01')
    expect(e?.message).toMatch(/signature does not verify/)
  })
})

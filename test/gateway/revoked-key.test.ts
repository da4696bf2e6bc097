import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'
import type {JWK} from 'jose'
import {waitFor} from '../helpers/wait.js'
import {rotatingIdpGateway, type RotatingIdpGateway} from './helpers.js'

/**
 * An IdP withdraws a signing key (compromised, revoked): a token it signed is refused at the next
 * sign-in, and a session that signed in with one must not go on for the rest of the token's life
 * (or, with sessionOutlivesToken, up to maxSessionDuration). An IdP that does not answer says
 * nothing about its keys: sessions go on through an outage.
 */
describe('dbgate gateway: a session signed in with a key the IdP no longer publishes', () => {
  let f: RotatingIdpGateway

  beforeAll(async () => {
    f = await rotatingIdpGateway('gwrevoked', {server: ['sessionOutlivesToken: true'], keyCheckMs: 300})
  })
  afterAll(async () => {
    vi.useRealTimers()
    await f?.close()
  })

  async function open(key: JWK): Promise<{c: pg.Client; ended: () => Error | undefined}> {
    const c = new pg.Client({host: '127.0.0.1', port: f.gw.address.port, database: 'app', user: f.email, password: await f.token(key), ssl: f.ssl()})
    let error: Error | undefined
    c.on('error', (e) => (error ??= e))
    await c.connect()
    return {c, ended: () => error}
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

  it('goes on through an IdP outage, and ends once the IdP answers without its key, while a session of a published key goes on', async () => {
    const [key1, key2] = f.keys
    const first = await open(key1)
    // An outage: nothing is known of the keys, and nothing ends.
    await f.idpStop()
    await sleep(1500)
    expect(first.ended()).toBeUndefined()
    expect((await first.c.query('select 1 as one')).rows).toEqual([{one: 1}])

    // The IdP is back, publishing key 2 only: key 1 was withdrawn.
    await f.idpStart(key2)
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

import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {Agent, fetch as undiciFetch} from 'undici'
import type {JWK} from 'jose'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {mint, rsaSigningKey} from '../identity/helpers.js'
import {gatewayConfig, makePki, type TestPki} from './helpers.js'

/** An identity provider whose published key set the test changes at will, and which counts the fetches of it. */
async function keyPublishingIdp(keys: JWK[]): Promise<{issuer: string; publish(keys: JWK[]): void; fetches(): number; close(): Promise<void>}> {
  let published = keys
  let fetches = 0
  const server = http.createServer((req, res) => {
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const json = (value: unknown) => {
      res.writeHead(200, {'content-type': 'application/json'})
      res.end(JSON.stringify(value))
    }
    if (req.url === '/.well-known/openid-configuration') {
      return json({issuer, jwks_uri: `${issuer}/jwks`, token_endpoint: `${issuer}/token`, response_types_supported: ['code'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256']})
    }
    if (req.url === '/jwks') {
      fetches++
      return json({keys: published.map(({d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub}) => pub)})
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    issuer: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    publish: (next) => void (published = next),
    fetches: () => fetches,
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}

/**
 * The IdP withdraws a signing key (revoked after a leak, or rotated out): whoever holds a token it
 * signed, or the key itself, must not sign in once the gateway has seen the IdP's keys without it.
 * The verifier's own copy of the keys is kept for up to ten minutes (jose's cache), and a token of
 * a key still in it was let in, on the PostgreSQL listener and remote MCP alike, although the
 * gateway had already fetched the keys, seen the withdrawal and ended the sessions it signed.
 */
describe('dbgate gateway: signing in with a key the IdP has withdrawn', () => {
  let pki: TestPki
  let db: UpstreamInfo
  let idp: Awaited<ReturnType<typeof keyPublishingIdp>>
  let gw: RunningGateway
  let dir: string
  let dispatcher: Agent
  let key1: JWK
  let key2: JWK
  const open: pg.Client[] = []

  beforeAll(async () => {
    ;[pki, db, key1, key2] = await Promise.all([makePki(), createTestDatabase('gwwithdrawn'), rsaSigningKey('withdrawn-key-1'), rsaSigningKey('withdrawn-key-2')])
    idp = await keyPublishingIdp([key1, key2])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwwithdrawn-'))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = gatewayConfig({pki, dir, issuer: idp.issuer, clientId: 'dbgate-cli', env, server: ['mcp: {publicUrl: https://gw.test:8443}'], targets: targetConfigText('app', db, 'allow: [engineering]')})
    gw = await startGateway({loaded, env, keyCheckMs: 200})
    await gw.whenReady()
    dispatcher = new Agent({connect: {ca: readFileSync(pki.ca, 'utf8')}})
  })
  afterAll(async () => {
    await Promise.all(open.map((c) => c.end().catch(() => {})))
    await gw?.close(500)
    await dispatcher?.close()
    await idp?.close()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  const token = (key: JWK, sub = 'alice') => mint(key, {iss: idp.issuer, aud: 'dbgate-cli', sub, email: `${sub}@example.com`, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 3600})
  const signIn = async (password: string, sub = 'alice'): Promise<pg.Client> => {
    const c = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: `${sub}@example.com`, password, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
    c.on('error', () => {})
    await c.connect()
    open.push(c)
    return c
  }
  /** The sign-in's outcome as the client sees it: the rows of a query, or the error. */
  const attempt = async (password: string, sub = 'alice'): Promise<string> => {
    try {
      const c = await signIn(password, sub)
      const {rows} = await c.query<{who: string}>('select current_user as who')
      await c.end()
      return `signed in, ran a query as ${rows[0]!.who}`
    } catch (error) {
      return `refused: ${(error as pg.DatabaseError).code} ${(error as Error).message}`
    }
  }
  const mcpStatus = async (bearer: string): Promise<number> => {
    const res = await undiciFetch(`https://localhost:${gw.api!.port}/mcp/app`, {
      method: 'POST',
      dispatcher,
      headers: {authorization: `Bearer ${bearer}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
      body: JSON.stringify({jsonrpc: '2.0', id: 1, method: 'initialize', params: {protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'withdrawn', version: '1'}}}),
    })
    await res.text()
    return res.status
  }
  /**
   * Waits for `n` more fetches of the key set, by which time the gateway has acted on what it read;
   * a gateway that does not fetch them gets a few seconds, and the sign-ins after show what it did.
   */
  const keyFetches = async (n: number) => {
    const from = idp.fetches()
    await waitFor(() => idp.fetches() >= from + n, `${n} more fetches of the IdP's keys`, {timeoutMs: 3000}).catch(() => {})
  }

  it('refuses a token of the withdrawn key (the one a session used, a fresh one, on remote MCP) once its sessions have ended, and lets the other key in', async () => {
    const leaked = await token(key1)
    const first = await signIn(leaked)
    const ended = new Promise<Error>((resolve) => first.on('error', resolve))
    expect(await mcpStatus(leaked)).toBe(200)

    idp.publish([key2])
    expect((await ended).message).toMatch(/no longer publishes the key your sign-in token was signed with/)

    const refused = /^refused: 28P01 .*signed with a key the identity provider no longer publishes/
    expect(await attempt(leaked)).toMatch(refused)
    expect(await attempt(await token(key1))).toMatch(refused)
    expect(await attempt(await token(key1, 'bob'), 'bob')).toMatch(refused)
    expect(await mcpStatus(leaked)).toBe(401)
    // The key still published goes on working.
    expect(await attempt(await token(key2))).toBe(`signed in, ran a query as ${db.user}`)
    expect(await mcpStatus(await token(key2))).toBe(200)
  }, 30_000)

  it('refuses it though no session was open when the IdP withdrew it, and lets it in again once the IdP publishes it again', async () => {
    await Promise.all(open.splice(0).map((c) => c.end().catch(() => {})))
    await waitFor(() => gw.sessionCount === 0, 'no session open on the gateway')
    idp.publish([key1])
    await keyFetches(3)
    expect(await attempt(await token(key2))).toMatch(/^refused: 28P01 .*signed with a key the identity provider no longer publishes/)
    expect(await mcpStatus(await token(key2))).toBe(401)

    // Published again (a withdrawal undone): its tokens are let in as before.
    idp.publish([key1, key2])
    await keyFetches(3)
    expect(await attempt(await token(key2))).toBe(`signed in, ran a query as ${db.user}`)
    expect(await attempt(await token(key1))).toBe(`signed in, ran a query as ${db.user}`)
  }, 30_000)
})

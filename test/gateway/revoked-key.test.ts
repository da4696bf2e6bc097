import {readFileSync} from 'node:fs'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import pg from 'pg'
import {Agent} from 'undici'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'
import type {JWK} from 'jose'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {textOf} from '../mcp/helpers.js'
import {remoteAgent, type RotatingIdpGateway, rotatingIdpGateway, throughDispatcher} from './helpers.js'

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

/**
 * A remote MCP session holds the agent's database sessions (and any statement waiting for a
 * reviewer) between requests, carried by the latest token it was used with. When the IdP withdraws
 * the key that signed that token, the session ends as a PostgreSQL session does: its database
 * sessions close, and a fresh token of another key cannot take it over.
 */
describe('remote MCP: a session whose sign-in was signed with a key the IdP no longer publishes', () => {
  let f: RotatingIdpGateway
  let dispatcher: Agent
  const clients: Client[] = []

  beforeAll(async () => {
    f = await rotatingIdpGateway('gwrevokedmcp', {server: ['sessionOutlivesToken: true', 'mcp: {publicUrl: https://gw.test:8443}'], keyCheckMs: 300})
    dispatcher = new Agent({connect: {ca: readFileSync(f.pki.ca, 'utf8')}})
  })
  afterAll(async () => {
    vi.useRealTimers()
    await Promise.all(clients.map((c) => c.close().catch(() => {})))
    await dispatcher?.close()
    await f?.close()
  })

  const fetchWithCa = throughDispatcher(() => dispatcher)
  const endpoint = () => `https://localhost:${f.gw.api!.port}/mcp/app`
  const backends = () => withClient(f.db.url, async (c) => Number((await c.query<{n: string}>("select count(*) as n from pg_stat_activity where datname = current_database() and application_name like 'dbgate/alice@example.com%'")).rows[0]!.n))
  const callOn = async (sessionId: string, bearer: string): Promise<{status: number; body: string}> => {
    const res = await fetchWithCa(endpoint(), {
      method: 'POST',
      headers: {authorization: `Bearer ${bearer}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
      body: JSON.stringify({jsonrpc: '2.0', id: 9, method: 'tools/call', params: {name: 'query', arguments: {sql: 'select 42 as answer'}}}),
    })
    return {status: res.status, body: await res.text()}
  }

  it('ends the session, closes its database sessions, and refuses it to a token of a key still published', async () => {
    const [key1, key2] = f.keys
    const {client, transport} = await remoteAgent(endpoint(), await f.token(key1), {fetch: fetchWithCa, name: 'revoked-agent', version: '1'})
    clients.push(client)
    const sessionId = transport.sessionId!
    const answer = (await client.callTool({name: 'query', arguments: {sql: 'select 41 as answer'}})) as CallToolResult
    expect(textOf(answer)).toContain('41')
    expect(await backends()).toBeGreaterThan(0)

    // The IdP now publishes key 2 only: key 1 was withdrawn.
    await f.idpStop()
    await f.idpStart(key2)
    vi.useFakeTimers({toFake: ['Date']})
    vi.setSystemTime(Date.now() + 60_000)
    await waitFor(async () => (await backends()) === 0, "the MCP session's database sessions have closed", {timeoutMs: 15_000})
    const next = await callOn(sessionId, await f.token(key2))
    expect(next.status).toBe(404)
    expect(next.body).toMatch(/no longer publishes the key your sign-in token was signed with/)
  }, 40_000)
})

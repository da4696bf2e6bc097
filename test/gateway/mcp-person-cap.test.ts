import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import pg from 'pg'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {Agent} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {getIdentity} from '../../src/identity/session.js'
import {openTokenStore} from '../../src/identity/token-store.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {people, type People} from '../approvals/helpers.js'
import {textOf} from '../mcp/helpers.js'
import {gatewayConfig, makePki, remoteAgent, type TestPki, throughDispatcher} from './helpers.js'

/**
 * server.maxSessionsPerPerson keeps one person (or one stolen token) from taking every database
 * session of a target. Remote MCP reaches the database too: each MCP session keeps up to four
 * database sessions of its own (parallel calls, a statement waiting for a reviewer), and a person
 * may open server.mcp.maxSessionsPerPerson of them. Those database sessions count against the
 * person's cap with their PostgreSQL ones, or an agent's parallel calls in a few MCP sessions
 * would take the target's whole budget (tunnel.maxUpstreamSessions) from everyone else.
 */
describe('remote MCP: a person\'s database sessions, over every MCP session, are under server.maxSessionsPerPerson', () => {
  let p: People
  let pki: TestPki
  let db: UpstreamInfo
  let gw: RunningGateway
  let dir: string
  let dispatcher: Agent
  const tokens: Record<string, string> = {}
  const clients: Client[] = []
  const fetchWithCa = throughDispatcher(() => dispatcher)

  beforeAll(async () => {
    ;[p, pki, db] = await Promise.all([people(), makePki(), createTestDatabase('mcpcap')])
    dispatcher = new Agent({connect: {ca: readFileSync(pki.ca, 'utf8')}})
    for (const u of ['alice', 'dave']) {
      await p.login(u)
      tokens[u] = (await getIdentity(p.f.config, {env: p.env(u), store: openTokenStore({env: p.env(u)})})).token
    }
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gw-mcpcap-'))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = gatewayConfig({
      pki,
      dir,
      issuer: p.f.dev.issuer,
      clientId: p.f.dev.cliClientId,
      env,
      server: ['maxSessionsPerPerson: 2', 'mcp: {publicUrl: "https://gw.test:8443", maxSessionsPerPerson: 3}'],
      targets: targetConfigText('app', db, 'allow: [engineering]\ntunnel: {maxUpstreamSessions: 4, upstreamQueueTimeout: 0s}'),
    })
    gw = await startGateway({loaded, env})
  })

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})))
    await gw?.close(500)
    await dispatcher?.close()
    await p?.close()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  const agent = async (token: string) => {
    const {client} = await remoteAgent(`https://localhost:${gw.api!.port}/mcp/app`, token, {fetch: fetchWithCa, name: 'hosted-agent', version: '2.0'})
    clients.push(client)
    return async (sql: string) => (await client.callTool({name: 'query', arguments: {sql}})) as CallToolResult
  }

  const sessionsOf = (who: string) =>
    withClient(db.url, async (c) => (await c.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name like $1`, [`dbgate/${who}@%`])).rows[0].n as number)

  it('refuses an agent\'s database session past the person\'s cap, however many MCP sessions and parallel calls it spreads them over, and leaves the rest of the budget to others', async () => {
    // Three MCP sessions of alice's, each with parallel calls: each call that finds no idle
    // database session of its MCP session opens another.
    const calls = await Promise.all([agent(tokens.alice!), agent(tokens.alice!), agent(tokens.alice!)])
    const results = await Promise.all(calls.flatMap((call) => [call('select pg_sleep(0.5) as slept'), call('select pg_sleep(0.5) as slept')]))
    const refused = results.filter((r) => r.isError)
    expect(results.length - refused.length).toBeGreaterThanOrEqual(1)
    expect(refused.length).toBeGreaterThan(0)
    for (const r of refused) expect(textOf(r)).toMatch(/server\.maxSessionsPerPerson/)
    // The sessions a call opened stay for the agent's next calls: still at most two.
    expect(await sessionsOf('alice')).toBeLessThanOrEqual(2)
    // dave is not starved of the target's budget of four.
    const dave = await agent(tokens.dave!)
    const r = await dave('select 1 as one')
    expect(r.isError, textOf(r)).toBeFalsy()
    // The share is one for every way in: alice's own psql finds it taken by her agent's sessions.
    const psql = new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: 'alice@example.com', password: tokens.alice!, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
    psql.on('error', () => {})
    await expect(psql.connect()).rejects.toThrow(/server\.maxSessionsPerPerson/)
    // An agent still gets on within its cap: a call now finds an idle session of its own, or is told why not.
    const again = await calls[0]!('select 2 as two')
    if (again.isError) expect(textOf(again)).toMatch(/server\.maxSessionsPerPerson/)
  })
})

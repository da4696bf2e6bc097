import {readFileSync} from 'node:fs'
import path from 'node:path'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {Agent} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {listRequests} from '../../src/approvals/store.js'
import {openBucket} from '../../src/bucket/index.js'
import {mint, type Fixture} from '../identity/helpers.js'
import {withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {textOf} from '../mcp/helpers.js'
import {startAppGateway, type AppGateway} from './app-gateway.js'
import {remoteAgent, throughDispatcher} from './helpers.js'

const MAX_SESSION_S = 12

/**
 * A remote MCP session is the agent's session on the gateway: its database sessions, and a
 * statement it left waiting for a reviewer, live in it between requests. Like a PostgreSQL session
 * on the gateway, it must end when the sign-in behind it expires (server.sessionOutlivesToken:
 * false, the default) and at server.maxSessionDuration, whatever the agent does: a statement held
 * for approval is withdrawn then, not run later for a person who is no longer signed in.
 */
describe('remote MCP: a session ends with its sign-in and at server.maxSessionDuration', () => {
  let f: Fixture
  let db: UpstreamInfo
  let dir: string
  let app: AppGateway
  let dispatcher: Agent
  const clients: Client[] = []

  const fetchWithCa = throughDispatcher(() => dispatcher)
  const endpoint = () => `https://localhost:${app.gw.api!.port}/mcp/app`

  beforeAll(async () => {
    app = await startAppGateway('gwmcplife', {
      server: ['mcp: {publicUrl: https://gw.test:8443}', `maxSessionDuration: ${MAX_SESSION_S}s`],
      target: 'allow: [engineering]\nreviewers: [dba]\nmcp: {mode: read-write, approvalWait: 0s}',
    })
    ;({f, db, dir} = app)
    dispatcher = new Agent({connect: {ca: readFileSync(app.pki.ca, 'utf8')}})
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})))
    await dispatcher?.close()
    await app?.close()
  })

  /** A token the IdP signed for alice, valid for `seconds` more, with `groups`. */
  const token = (seconds: number, groups = ['engineering']) => mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups, exp: Math.floor(Date.now() / 1000) + seconds})

  const agent = async (bearer: string) => {
    const {client, transport} = await remoteAgent(endpoint(), bearer, {fetch: fetchWithCa, name: 'lifetime-agent', version: '1'})
    clients.push(client)
    return {sessionId: transport.sessionId!, close: async () => {
        await transport.terminateSession()
        await client.close()
      },
      call: async (name: string, args: Record<string, unknown> = {}) => (await client.callTool({name, arguments: args})) as CallToolResult}
  }

  /** One tools/call on an existing MCP session with `bearer`: its status and body. */
  const callOn = async (sessionId: string, bearer: string): Promise<{status: number; body: string}> => {
    const res = await fetchWithCa(endpoint(), {
      method: 'POST',
      headers: {authorization: `Bearer ${bearer}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
      body: JSON.stringify({jsonrpc: '2.0', id: 9, method: 'tools/call', params: {name: 'query', arguments: {sql: 'select 42 as answer'}}}),
    })
    return {status: res.status, body: await res.text()}
  }

  /** The database sessions the gateway holds for alice, as the database itself lists them. */
  const aliceBackends = () => withClient(db.url, async (c) => Number((await c.query<{n: string}>("select count(*) as n from pg_stat_activity where datname = current_database() and application_name like 'dbgate/alice@example.com%'")).rows[0]!.n))

  const approvalState = async (id: string) => (await listRequests(openBucket(`file://${path.join(dir, 'bucket')}`))).find((v) => v.request.id === id)?.state

  it('ends when the sign-in that opened it expires: its database sessions close and a held statement is withdrawn, not run later', async () => {
    const a = await agent(await token(4))
    expect(textOf(await a.call('query', {sql: 'select 1 as one'}))).toContain('"one":"1"')
    const held = await a.call('query', {sql: 'create table made_after_expiry (id int)'})
    const approvalId = (held.structuredContent as {approvalId?: string}).approvalId
    expect(approvalId, textOf(held)).toMatch(/^apr-/)
    expect(await approvalState(approvalId!)).toBe('pending')
    expect(await aliceBackends()).toBeGreaterThan(0)

    await waitFor(async () => (await aliceBackends()) === 0, "alice's database sessions are closed once her token expired", {timeoutMs: 15_000, intervalMs: 250})
    expect(await approvalState(approvalId!)).toBe('withdrawn')
    // A fresh token of the same person does not bring the ended session back; a new one is built.
    const fresh = await token(300)
    const again = await callOn(a.sessionId, fresh)
    expect(again.status, again.body).toBe(404)
    expect(again.body).toMatch(/sign-in.*expired.*server\.sessionOutlivesToken/)
    const next = await agent(fresh)
    expect(textOf(await next.call('query', {sql: 'select 2 as two'}))).toContain('"two":"2"')
    await next.close()
    await waitFor(async () => (await aliceBackends()) === 0, "the new session's database sessions are closed with it", {timeoutMs: 15_000, intervalMs: 250})
  })

  it("ends when its owner's newer token no longer lets them use the target, withdrawing what it held", async () => {
    const a = await agent(await token(300))
    const held = await a.call('query', {sql: 'create table made_after_removal (id int)'})
    const approvalId = (held.structuredContent as {approvalId?: string}).approvalId
    expect(approvalId, textOf(held)).toMatch(/^apr-/)
    // Alice was taken out of engineering at the IdP; her agent's next request carries the new token.
    const refused = await callOn(a.sessionId, await token(300, ['marketing']))
    expect(refused.status, refused.body).toBe(403)
    await waitFor(async () => (await approvalState(approvalId!)) === 'withdrawn', 'the held statement is withdrawn', {timeoutMs: 15_000, intervalMs: 250})
    await waitFor(async () => (await aliceBackends()) === 0, "alice's database sessions are closed", {timeoutMs: 15_000, intervalMs: 250})
    // Her old token, still unexpired, does not get the session back.
    const old = await callOn(a.sessionId, await token(300))
    expect(old.status, old.body).toBe(404)
    expect((JSON.parse(old.body) as {error: {message: string}}).error.message).toMatch(/alice@example\.com may no longer use target "app"/)
  })

  it('goes on while the agent keeps presenting fresh tokens of the same person, and still ends at maxSessionDuration', async () => {
    const opened = Date.now()
    const a = await agent(await token(3))
    // Each request's token is verified; one that arrives before the last one expired carries the session on.
    const renewals: number[] = []
    while (Date.now() - opened < 6_000) {
      renewals.push((await callOn(a.sessionId, await token(3))).status)
      await new Promise((resolve) => setTimeout(resolve, 1_000))
    }
    expect(renewals.every((s) => s === 200), renewals.join(',')).toBe(true)
    // However fresh the token, the session ends at server.maxSessionDuration.
    const ended = await waitFor(
      async () => {
        const r = await callOn(a.sessionId, await token(300))
        return r.status === 404 ? r : undefined
      },
      'the session ends at maxSessionDuration',
      {timeoutMs: (MAX_SESSION_S + 10) * 1000, intervalMs: 1_000},
    )
    expect(ended.body).toMatch(/maximum session duration of 12s \(server\.maxSessionDuration\)/)
  })
})

import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import {StreamableHTTPClientTransport} from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {Identity} from '../../src/identity/types.js'
import {createMcpHttp, type McpHttp} from '../../src/mcp/http.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'

const person = (groups: string[], over: Partial<Identity> = {}): Identity => ({
  subject: 'sub-alice',
  email: 'alice@example.com',
  groups,
  issuer: 'https://idp.test',
  kind: 'human',
  tokenHash: 'x',
  expiresAt: new Date(Date.now() + 3600_000),
  ...over,
})

/** The remote MCP handler on a loopback HTTP server; its origin. */
async function serve(mcp: McpHttp): Promise<{server: http.Server; origin: string}> {
  const server = http.createServer((req, res) => void mcp.handle(req, res))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`}
}

/** An agent's MCP session on target `app`, opened with `token` as its bearer. */
async function openSession(origin: string, token: string, name: string): Promise<{client: Client; transport: StreamableHTTPClientTransport}> {
  const transport = new StreamableHTTPClientTransport(new URL(`${origin}/mcp/app`), {requestInit: {headers: {authorization: `Bearer ${token}`}}})
  const client = new Client({name, version: '1'})
  await client.connect(transport)
  return {client, transport}
}

/**
 * A remote MCP session's pipeline (rules, who sees values in clear, recording) is built once, for
 * the identity of the token that opened it. Every later request's token is checked again; one of
 * the same person whose groups, e-mail or kind differ (a group removed at the IdP, an unmask group
 * dropped) must not keep using the pipeline built for the old grants. The tokens here stand for
 * verified ones: the checks of the token itself are http.test.ts's.
 */
describe('remote MCP: a session keeps the grants it was opened with, or ends', () => {
  let db: UpstreamInfo
  let server: http.Server
  let mcp: McpHttp
  let origin: string
  const opened: Identity[] = []
  const tokens: Record<string, Identity> = {
    'tok-pii': person(['engineering', 'pii-readers']),
    'tok-pii-again': person(['pii-readers', 'engineering']),
    'tok-plain': person(['engineering']),
    'tok-other-mail': person(['engineering', 'pii-readers'], {email: 'alice.old@example.com'}),
    'tok-service': person(['engineering', 'pii-readers'], {kind: 'service'}),
  }

  beforeAll(async () => {
    db = await createTestDatabase('mcpid')
    const loaded = loadedConfig(db, 'allow: [engineering]\nmasking:\n  unmask: [pii-readers]', '', {...isolatedEnv(), TEST_APP_PASSWORD: db.password})
    mcp = createMcpHttp({
      publicOrigin: 'http://127.0.0.1:0',
      authorizationServers: ['https://idp.test'],
      version: 'test',
      target: (name) => loaded.config.targets[name],
      authenticate: async (token) => {
        const identity = tokens[token]
        return identity ? {ok: true, identity} : {ok: false, status: 401, description: 'unknown token'}
      },
      openEndpoint: async ({identity}) => {
        opened.push(identity)
        return {clientConfig: () => ({connectionString: db.url}), identity: () => identity, closed: new Promise<void>(() => {}), close: async () => {}}
      },
    })
    ;({server, origin} = await serve(mcp))
  })

  afterAll(async () => {
    await mcp?.close()
    server?.close()
  })

  const open = async (token: string) => {
    const {client, transport} = await openSession(origin, token, 'id-test')
    return {client, sessionId: transport.sessionId!}
  }

  /** One tools/call in an existing session, with whatever token. */
  const callWith = (token: string, sessionId: string) =>
    fetch(`${origin}/mcp/app`, {
      method: 'POST',
      headers: {authorization: `Bearer ${token}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
      body: JSON.stringify({jsonrpc: '2.0', id: 7, method: 'tools/call', params: {name: 'list_tables', arguments: {}}}),
    })

  it('goes on with a fresh token that grants the same', async () => {
    const {client, sessionId} = await open('tok-pii')
    const res = await callWith('tok-pii-again', sessionId)
    expect(res.status).toBe(200)
    expect(await res.text()).toContain('pii-readers')
    await client.close()
  })

  it.each(['tok-plain', 'tok-other-mail', 'tok-service'])('ends the session rather than serve %s with the grants of the token that opened it', async (token) => {
    const {sessionId} = await open('tok-pii')
    const before = mcp.sessionCount
    const res = await callWith(token, sessionId)
    const body = await res.text()
    expect(res.status, body).toBe(404)
    expect(body).not.toContain('pii-readers')
    expect(body).toMatch(/changed since it started; start a new one/)
    expect(mcp.sessionCount).toBe(before - 1)
    // Nor does the old token get the session back, and a new session is built for the new grants.
    expect((await callWith('tok-pii', sessionId)).status).toBe(404)
    const again = await open(token)
    expect(opened.at(-1)).toEqual(tokens[token])
    await again.client.close()
  })
})

/** One person's agents cannot take every remote MCP session the server allows. */
describe('remote MCP: sessions per person', () => {
  let server: http.Server
  let mcp: McpHttp
  let origin: string

  beforeAll(async () => {
    const db = await createTestDatabase('mcppp')
    const loaded = loadedConfig(db, 'allow: [engineering]', '', {...isolatedEnv(), TEST_APP_PASSWORD: db.password})
    mcp = createMcpHttp({
      publicOrigin: 'http://127.0.0.1:0',
      authorizationServers: ['https://idp.test'],
      version: 'test',
      maxSessions: 4,
      maxSessionsPerPerson: 2,
      target: (name) => loaded.config.targets[name],
      authenticate: async (token) => ({ok: true, identity: person(['engineering'], {subject: `sub-${token}`, email: `${token}@example.com`})}),
      openEndpoint: async ({identity}) => ({clientConfig: () => ({connectionString: db.url}), identity: () => identity, closed: new Promise<void>(() => {}), close: async () => {}}),
    })
    ;({server, origin} = await serve(mcp))
  })

  afterAll(async () => {
    await mcp?.close()
    server?.close()
  })

  const open = (who: string) => openSession(origin, who, 'many')

  it('ends a person\'s least recently used session past their share, leaving room for others', async () => {
    const mallory = []
    for (let i = 0; i < 6; i++) mallory.push(await open('mallory'))
    expect(mcp.sessionCount).toBe(2)
    // The newest two still work; the oldest were ended.
    expect((await mallory[5]!.client.listTools()).tools.length).toBeGreaterThan(0)
    await expect(mallory[0]!.client.listTools()).rejects.toThrow()
    const alice = await open('alice')
    const bob = await open('bob')
    expect((await alice.client.listTools()).tools.length).toBeGreaterThan(0)
    expect((await bob.client.listTools()).tools.length).toBeGreaterThan(0)
    expect(mcp.sessionCount).toBe(4)
  })
})

/**
 * A remote MCP session's pipeline is built for the target as it was served when the session
 * started. A reload that tightens it (a rule denying what agents may run, `mcp.mode: read-only`)
 * must reach the agents already connected: a session lasts hours and its calls are stateless, so it
 * ends at its next request, and the agent's next session is built for the target as it is now.
 */
describe('remote MCP: a session ends when its target is served otherwise', () => {
  let db: UpstreamInfo
  let server: http.Server
  let mcp: McpHttp
  let origin: string
  let current: ReturnType<typeof loadedConfig>
  const builtFor: string[] = []
  const alice = person(['engineering'])

  beforeAll(async () => {
    db = await createTestDatabase('mcpserved')
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const before = loadedConfig(db, 'allow: [engineering]\nmcp:\n  mode: read-write', '', env)
    current = before
    mcp = createMcpHttp({
      publicOrigin: 'http://127.0.0.1:0',
      authorizationServers: ['https://idp.test'],
      version: 'test',
      target: (name) => current.config.targets[name],
      servedAs: (name) => JSON.stringify(current.config.targets[name]),
      authenticate: async (token) => (token === 'tok-alice' ? {ok: true, identity: alice} : {ok: false, status: 401, description: 'unknown token'}),
      openEndpoint: async ({target}) => {
        builtFor.push(target.mcp?.mode ?? 'read-only')
        return {clientConfig: () => ({connectionString: db.url}), identity: () => alice, closed: new Promise<void>(() => {}), close: async () => {}}
      },
    })
    ;({server, origin} = await serve(mcp))
  })

  afterAll(async () => {
    await mcp?.close()
    server?.close()
  })

  // Each call an id of its own: a status is known before its answer, so the previous call may still be in flight.
  let nextId = 9
  const call = (sessionId: string) =>
    fetch(`${origin}/mcp/app`, {
      method: 'POST',
      headers: {authorization: 'Bearer tok-alice', 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
      body: JSON.stringify({jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: {name: 'query', arguments: {sql: 'select 1 as one'}}}),
    })

  it('ends at the next request after a reload changes the target, and the next session gets the new one', async () => {
    const {client, transport} = await openSession(origin, 'tok-alice', 'served-test')
    const sessionId = transport.sessionId!
    expect((await call(sessionId)).status).toBe(200)
    // The same settings read again: nothing changed, the session goes on.
    current = loadedConfig(db, 'allow: [engineering]\nmcp:\n  mode: read-write', '', {...isolatedEnv(), TEST_APP_PASSWORD: db.password})
    expect((await call(sessionId)).status).toBe(200)
    const before = mcp.sessionCount
    current = loadedConfig(db, 'allow: [engineering]\nmcp:\n  mode: read-only', '', {...isolatedEnv(), TEST_APP_PASSWORD: db.password})
    const res = await call(sessionId)
    const body = await res.text()
    expect(res.status, body).toBe(404)
    expect((JSON.parse(body) as {error: {message: string}}).error.message).toMatch(/settings or policy of target "app" changed \(a gateway reload\) since it started; start a new one/)
    expect(mcp.sessionCount).toBe(before - 1)
    expect((await call(sessionId)).status).toBe(404)
    const again = await openSession(origin, 'tok-alice', 'served-test')
    const r = await again.client.callTool({name: 'query', arguments: {sql: 'select 1 as one'}})
    expect(r.isError).toBeFalsy()
    expect(builtFor).toEqual(['read-write', 'read-only'])
    await again.client.close()
    await client.close().catch(() => {})
  })
})

import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {Agent} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseConfigText} from '../../src/config/parse.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {getIdentity} from '../../src/identity/session.js'
import {openTokenStore} from '../../src/identity/token-store.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {people, type People} from '../approvals/helpers.js'
import {leaked, maskingFixture, type MaskingFixture} from '../masking/fixture.js'
import {textOf} from '../mcp/helpers.js'
import {gatewayConfig, makePki, recordingsUnder, remoteAgent, type TestPki, throughDispatcher} from './helpers.js'
import {waitFor} from '../helpers/wait.js'

const PUBLIC_URL = 'https://gw.test:8443'

/**
 * Remote MCP on the gateway, as an agent platform uses it: the official MCP client over Streamable
 * HTTP to the gateway's HTTPS API, with a bearer token from the real IdP and nothing else — no
 * local process, no database credentials. The gateway is the OAuth resource server.
 */
describe('remote MCP on the gateway', () => {
  let p: People
  let pki: TestPki
  let fx: MaskingFixture
  let gw: RunningGateway
  let dir: string
  let dispatcher: Agent
  const tokens: Record<string, string> = {}
  const clients: Client[] = []
  let configured: (rwExtra?: string) => ReturnType<typeof gatewayConfig>
  let reloaded: ReturnType<typeof gatewayConfig>

  const fetchWithCa = throughDispatcher(() => dispatcher)
  const base = () => `https://localhost:${gw.api!.port}`

  beforeAll(async () => {
    ;[p, pki, fx] = await Promise.all([people(), makePki(), maskingFixture()])
    dispatcher = new Agent({connect: {ca: readFileSync(pki.ca, 'utf8')}})
    for (const u of ['alice', 'carol', 'dave']) {
      await p.login(u)
      tokens[u] = (await getIdentity(p.f.config, {env: p.env(u), store: openTokenStore({env: p.env(u)})})).token
    }
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gw-mcp-'))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: fx.db.password}
    configured = (rwExtra = '') =>
      gatewayConfig({
        pki,
        dir,
        issuer: p.f.dev.issuer,
        clientId: p.f.dev.cliClientId,
        env,
        server: [`mcp: {publicUrl: ${PUBLIC_URL}}`],
        targets: [...targetConfigText('app', fx.db, 'allow: [engineering]'), ...targetConfigText('rw', fx.db, `allow: [engineering]\nmcp: {mode: read-write}${rwExtra}`), ...targetConfigText('tight', fx.db, 'allow: [engineering]\ntunnel: {maxUpstreamSessions: 1, upstreamQueueTimeout: 0s}')],
      })
    const loaded = configured()
    reloaded = loaded
    // A reload reads `reloaded`: what gateway.yaml would say by then.
    gw = await startGateway({loaded, env, reloadConfig: async () => reloaded})
  })

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})))
    await gw?.close(500)
    await dispatcher?.close()
    await fx?.close()
    await p?.close()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  const agent = async (token: string, target = 'app') => {
    const {client, transport} = await remoteAgent(`${base()}/mcp/${target}`, token, {fetch: fetchWithCa, name: 'hosted-agent', version: '2.0'})
    clients.push(client)
    return {client, transport, call: async (name: string, args: Record<string, unknown> = {}) => (await client.callTool({name, arguments: args})) as CallToolResult}
  }

  /** Every recording the gateway has written so far, spooled or shipped. */
  const recorded = () => recordingsUnder(dir)

  const post = (target: string, headers: Record<string, string>, body: unknown = {jsonrpc: '2.0', id: 1, method: 'initialize', params: {protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'x', version: '1'}}}) =>
    fetchWithCa(`${base()}/mcp/${target}`, {method: 'POST', headers: {'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers}, body: JSON.stringify(body)})

  it('publishes RFC 9728 metadata and challenges a request without a token to fetch it', async () => {
    const res = await post('app', {})
    expect(res.status).toBe(401)
    const metaUrl = /resource_metadata="([^"]+)"/.exec(res.headers.get('www-authenticate') ?? '')?.[1]
    expect(metaUrl).toBe(`${PUBLIC_URL}/.well-known/oauth-protected-resource/mcp/app`)
    const meta = (await (await fetchWithCa(`${base()}${new URL(metaUrl!).pathname}`)).json()) as Record<string, unknown>
    expect(meta).toMatchObject({resource: `${PUBLIC_URL}/mcp/app`, authorization_servers: [p.f.dev.issuer], bearer_methods_supported: ['header']})
  })

  it('knows only the configured targets, not the names every object inherits', async () => {
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const res = await post(name, {authorization: `Bearer ${tokens.alice}`})
      expect(res.status, name).toBe(404)
      // A name no target can have (`__proto__`) is refused by its shape, the others once the token is verified.
      expect(await res.text(), name).toMatch(/is not a target this gateway serves|no MCP endpoint here named/)
    }
  })

  it('answers a client that has not signed in the same for a target that exists and one that does not', async () => {
    // Before, an unknown name was answered 404 before any token, a known one 401: anyone who
    // reached the API could list the targets by probing names.
    const seen = async (name: string, headers: Record<string, string>) => {
      const meta = await fetchWithCa(`${base()}/.well-known/oauth-protected-resource/mcp/${name}`)
      const res = await post(name, headers)
      const body = (await res.text()).replaceAll(name, '<name>')
      const challenge = (res.headers.get('www-authenticate') ?? '').replaceAll(name, '<name>')
      return {meta: meta.status, metaBody: JSON.stringify(await meta.json()).replaceAll(name, '<name>'), status: res.status, body, challenge}
    }
    const attempts: Record<string, string>[] = [{}, {authorization: 'Bearer not-a-token'}, {authorization: `Bearer ${tokens.alice}x`}]
    for (const headers of attempts) {
      const known = await seen('app', headers)
      expect(known.status).toBe(401)
      for (const name of ['prod', 'constructor', 'app2', 'billing-db']) expect(await seen(name, headers), `${name} ${JSON.stringify(headers)}`).toEqual(known)
    }
  })

  it('draws an agent\'s database sessions from the target\'s budget (tunnel.maxUpstreamSessions), shared with every session on the gateway', async () => {
    // Each MCP session has a tunnel of its own; its database sessions must still count against the
    // target's budget, or an agent opening sessions (up to server.mcp.maxSessions) takes them all.
    const a = await agent(tokens.alice!, 'tight')
    const first = await a.call('query', {sql: 'select 1 as one'})
    if (first.isError) throw new Error(textOf(first))
    // a keeps its database session between calls: the budget of one is spent.
    for (const who of ['alice', 'dave']) {
      const other = await agent(tokens[who]!, 'tight')
      const refused = await other.call('query', {sql: 'select 2 as two'})
      expect(refused.isError, who).toBe(true)
      expect(textOf(refused), who).toMatch(/maxUpstreamSessions/)
    }
    await a.client.close()
  })

  it('refuses bad tokens and people outside the target with the OAuth error the spec names', async () => {
    const [h, b] = tokens.alice!.split('.')
    const unsigned = `${Buffer.from(JSON.stringify({alg: 'none', typ: 'JWT'})).toString('base64url')}.${b}.`
    for (const bad of [`${h}.${b}.${'A'.repeat(40)}`, unsigned, 'not-a-token']) {
      const res = await post('app', {authorization: `Bearer ${bad}`})
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"')
    }
    const outside = await post('app', {authorization: `Bearer ${tokens.carol}`, 'user-agent': 'agent-platform/3'})
    expect(outside.status).toBe(403)
    expect(outside.headers.get('www-authenticate')).toContain('error="insufficient_scope"')
    expect(await outside.text()).toContain('engineering')
    // carol's token verified: her refusal is recorded as a session of hers that ran nothing (refused-sign-ins.ts); the bad tokens' are not.
    await waitFor(() => recorded().some((t) => t.includes('"refused":{"reason":"not-allowed"') && t.includes('carol@example.com')), "carol's refused sign-in in the recordings")
    const refusals = recorded().filter((t) => t.includes('"refused":{') && t.includes('carol@example.com'))
    expect(refusals).toHaveLength(1)
    // alice's asks for names no target has (an earlier case) were hers, with her verified token.
    expect(recorded().filter((t) => t.includes('"refused":{"reason":"unknown-target"')).every((t) => t.includes('alice@example.com'))).toBe(true)
    expect(refusals[0]).toContain('agent-platform/3')
    expect(refusals[0]).toMatch(/"target":"app"/)
  })

  it('runs the tools through the gateway pipeline for the token\'s owner: masked, guarded, read-only, recorded as the agent', async () => {
    const a = await agent(tokens.alice!)
    const rows = await a.call('query', {sql: 'select c.*, n.body from customers c, notes n'})
    if (rows.isError) throw new Error(textOf(rows))
    expect((rows.structuredContent as {rows: unknown[]}).rows.length).toBeGreaterThan(3)
    expect(leaked(textOf(rows), fx.secrets)).toEqual([])

    const drop = await a.call('query', {sql: 'drop table customers'})
    expect(drop.isError).toBe(true)
    const write = await a.call('query', {sql: "update notes set body = 'x' where id = 4"})
    expect(write.isError).toBe(true)
    expect(textOf(write)).toMatch(/read-only|only read/i)
    const body = await withClient(fx.db.url, async (c) => (await c.query('select body from notes where id = 4')).rows[0].body as string)
    expect(body).toBe('nothing to see here')

    // The database saw the person and the agent, never the token.
    const apps = await withClient(fx.db.url, async (c) => (await c.query("select application_name from pg_stat_activity where datname = current_database() and application_name like 'dbgate/%'")).rows.map((r) => r.application_name as string))
    expect(apps.some((n) => n.startsWith('dbgate/alice@example.com') && n.includes('hosted-agent'))).toBe(true)
    const seen = await withClient(fx.db.url, async (c) => (await c.query("select usename, application_name, query from pg_stat_activity where datname = current_database() and application_name like 'dbgate/%'")).rows as {usename: string}[])
    expect(seen.every((r) => r.usename === fx.db.user)).toBe(true)
    for (const part of tokens.alice!.split('.')) expect(JSON.stringify(seen)).not.toContain(part)

    // The session is recorded as alice's, run by the agent, in the gateway's own spool or bucket.
    await waitFor(() => recorded().some((t) => t.includes('"session.start"') && t.includes('alice@example.com') && /"agent":\{"client":"mcp","name":"hosted-agent"/.test(t)), 'the gateway recorded the agent session as alice\'s')
  })

  it('records where the agent connected from, not the private socket of the gateway\'s own connection', async () => {
    // The session's database connection runs on an in-process tunnel's unix socket; its recording
    // said the client came from 'unix socket', so no remote MCP session said where the agent was.
    const {client} = await remoteAgent(`${base()}/mcp/app`, tokens.alice!, {fetch: fetchWithCa, name: 'located-agent', version: '1.0'})
    clients.push(client)
    const one = (await client.callTool({name: 'query', arguments: {sql: 'select 1 as one'}})) as CallToolResult
    expect(one.isError, textOf(one)).toBeFalsy()
    const startOf = () =>
      recorded()
        .flatMap((t) => t.split('\n'))
        .filter((l) => l.includes('"session.start"') && l.includes('"name":"located-agent"'))
        .map((l) => (JSON.parse(l) as {data: {client: {address: string}}}).data)
    await waitFor(() => startOf().length > 0, 'the agent session is recorded')
    for (const d of startOf()) {
      expect(d.client.address).not.toBe('unix socket')
      expect(d.client.address).toMatch(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1):\d+ \(MCP over HTTPS\)$/)
    }
  })

  it('refuses a row larger than any result could hold before the gateway reads it', async () => {
    // Read whole, a 300 MB value held some 2 GB of the gateway's memory, everyone's.
    const a = await agent(tokens.alice!)
    const big = await a.call('query', {sql: "select repeat('x', 300000000) as big"})
    expect(big.isError).toBe(true)
    expect(textOf(big)).toMatch(/over the limit of 16777216 bytes/)
    const next = await a.call('query', {sql: 'select 1 as one'})
    expect(next.isError, textOf(next)).toBeFalsy()
  })

  it('lets an agent write where the target allows it', async () => {
    const a = await agent(tokens.alice!, 'rw')
    const write = await a.call('query', {sql: "update notes set body = 'seen' where id = 4"})
    if (write.isError) throw new Error(textOf(write))
    const body = await withClient(fx.db.url, async (c) => (await c.query('select body from notes where id = 4')).rows[0].body as string)
    expect(body).toBe('seen')
  })

  it("ends an open MCP session once a reload tightens its target, so agents already connected get the new rules", async () => {
    const a = await agent(tokens.alice!, 'rw')
    const before = await a.call('query', {sql: "update notes set body = 'before reload' where id = 4"})
    expect(before.isError, textOf(before)).toBeFalsy()
    reloaded = configured('\nrules:\n  - {id: no-agent-writes, match: {class: write, client: mcp}, action: deny, reason: agents stopped writing}')
    await gw.reload()
    // The old session's pipeline still allows the write: it must not serve it.
    const after = await a.call('query', {sql: "update notes set body = 'after reload' where id = 4"}).catch((e: Error) => e)
    expect(after instanceof Error ? after.message : textOf(after)).toMatch(/settings or policy of target .*rw.* changed \(a gateway reload\)/)
    const fresh = await agent(tokens.alice!, 'rw')
    const refused = await fresh.call('query', {sql: "update notes set body = 'after reload' where id = 4"})
    expect(refused.isError).toBe(true)
    expect(textOf(refused)).toMatch(/no-agent-writes/)
    expect(await withClient(fx.db.url, async (c) => (await c.query('select body from notes where id = 4')).rows[0].body as string)).toBe('before reload')
  })

  it('binds an MCP session to the person who opened it', async () => {
    const a = await agent(tokens.alice!)
    const sessionId = a.transport.sessionId!
    const hijack = await post('app', {authorization: `Bearer ${tokens.dave}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18'}, {jsonrpc: '2.0', id: 2, method: 'tools/list'})
    expect(hijack.status).toBe(403)
    expect(await hijack.text()).toContain('belongs to someone else')
  })
})

describe('server.mcp configuration', () => {
  const parse = (serverLines: string[]) =>
    parseConfigText(['server:', '  tls: {cert: /etc/dbgate/tls.crt, key: /etc/dbgate/tls.key}', ...serverLines.map((l) => `  ${l}`), 'targets:', '  app: {host: db, database: app, user: app, allow: [x]}', ''].join('\n'), '/etc/dbgate/gateway.yaml')

  it('names the missing API listener and the bad public URL, with file and line', () => {
    const issue = (lines: string[]) => {
      try {
        parse(lines)
      } catch (e) {
        return (e as {issues: {line: number; keyPath: string; message: string}[]}).issues[0]
      }
      throw new Error('no error')
    }
    expect(issue(['mcp: {publicUrl: https://gw.example.com:8443}'])).toMatchObject({line: 3, keyPath: 'server.mcp', message: expect.stringContaining('server.api is not set')})
    expect(issue(['api: 0.0.0.0:8443', 'mcp: {publicUrl: http://gw.example.com/mcp}'])).toMatchObject({line: 4, keyPath: 'server.mcp.publicUrl', message: expect.stringContaining('https:// origin')})
    const ok = parse(['api: 0.0.0.0:8443', 'mcp: {publicUrl: https://gw.example.com:8443}']).config.server!
    expect(ok.mcp).toEqual({publicUrl: 'https://gw.example.com:8443', allowedOrigins: [], maxSessions: 200, maxSessionsPerPerson: 16})
  })
})

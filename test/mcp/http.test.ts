import {mkdtempSync, readFileSync} from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import {StreamableHTTPClientTransport} from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseConfigText} from '../../src/config/parse.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {openTunnel} from '../../src/connect/open.js'
import {getIdentity, authorizeTarget} from '../../src/identity/session.js'
import {openTokenStore} from '../../src/identity/token-store.js'
import {verifyToken} from '../../src/identity/verify.js'
import {createMcpHttp, protectedResourceMetadataUrl, type McpHttp} from '../../src/mcp/http.js'
import {RepeatLimitedLog} from '../../src/gateway/log-limits.js'
import {people, tempBucketUrl, type People} from '../approvals/helpers.js'
import {leaked, maskingFixture, type MaskingFixture} from '../masking/fixture.js'
import {openBucket} from '../../src/bucket/index.js'
import {SessionReader} from '../../src/audit/read.js'
import {waitFor} from '../helpers/wait.js'
import {agentHome, textOf, writeConfig} from './helpers.js'

/**
 * Remote MCP over Streamable HTTP, driven by the official MCP client's HTTP transport: the server
 * is an OAuth resource server (401 + RFC 9728 metadata without a token, every token verified), and
 * the tools run through the governed pipeline as the token's owner.
 */
describe('remote MCP over Streamable HTTP', () => {
  let p: People
  let fx: MaskingFixture
  let loaded: LoadedConfig
  let server: http.Server
  let mcp: McpHttp
  let origin: string
  let bucketUrl: string
  const tokens: Record<string, string> = {}
  const clients: Client[] = []
  const lines: string[] = []
  // As the gateway passes it: repeats summarised when the test ends the interval.
  let endOfInterval: (() => void) | undefined
  const repeats = new RepeatLimitedLog((level, message) => lines.push(`${level} ${message}`), {intervalMs: 24 * 3600_000, schedule: (fn) => ((endOfInterval = fn), () => {})})

  const tokenOf = async (user: string) => (await getIdentity(p.f.config, {env: p.env(user), store: openTokenStore({env: p.env(user)})})).token

  beforeAll(async () => {
    p = await people()
    await Promise.all(['alice', 'carol', 'dave'].map((u) => p.login(u)))
    for (const u of ['alice', 'carol', 'dave']) tokens[u] = await tokenOf(u)
    fx = await maskingFixture()
    const dir = mkdtempSync(path.join(tmpdir(), 'dbgate-mcp-http-'))
    bucketUrl = tempBucketUrl()
    const file = writeConfig(dir, fx.db, {issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId}, bucketUrl, {app: 'allow: [engineering]'})
    const parsed = parseConfigText(readFileSync(file, 'utf8'), file)
    loaded = {path: file, config: parsed.config, warnings: []}
    const home = {...agentHome(), TEST_APP_PASSWORD: fx.db.password}
    mcp = createMcpHttp({
      publicOrigin: 'http://127.0.0.1:0',
      authorizationServers: [p.f.dev.issuer],
      version: 'test',
      log: (level, message) => lines.push(`${level} ${message}`),
      logRepeated: repeats.write.bind(repeats),
      target: (name) => loaded.config.targets[name],
      authenticate: async (token, name) => {
        try {
          const {identity} = await verifyToken(p.f.config, token, {use: 'any'})
          const target = Object.hasOwn(loaded.config.targets, name) ? loaded.config.targets[name] : undefined
          if (!target) return {ok: false, status: 404, description: `no target named ${name}`}
          const allowed = authorizeTarget(identity, target.allow ?? [])
          return allowed.ok ? {ok: true, identity} : {ok: false, status: 403, description: `${allowed.error.message} ${allowed.error.nextStep ?? ''}`.trim()}
        } catch (e) {
          return {ok: false, status: 401, description: (e as Error).message}
        }
      },
      // This test's endpoint is an in-process tunnel signed in with the agent's own token.
      openEndpoint: async ({identity, target, agent}) => {
        const user = identity.email!.split('@')[0]!
        const opened = await openTunnel({loaded, targetName: target.name, env: {...home, DBGATE_TOKEN: tokens[user]}, agent})
        return {
          clientConfig: () => ({host: opened.info.host, port: opened.info.port, user: opened.info.user, password: opened.info.password, database: opened.info.database, ssl: false}),
          identity: () => opened.identity?.current(),
          // As the gateway's endpoint records: the tools' own refusals go into the session's log.
          record: (key, type, payload) => opened.tunnel.recordFor(key, type, payload),
          closed: opened.closed,
          close: () => opened.close(500),
        }
      },
    })
    server = http.createServer((req, res) => {
      void mcp.handle(req, res).then((handled) => {
        if (!handled) res.writeHead(404).end()
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})))
    await mcp?.close()
    server?.close()
    await fx?.close()
    await p?.close()
  })

  const connect = async (token: string, target = 'app') => {
    const client = new Client({name: 'remote-agent', version: '1.0'})
    const transport = new StreamableHTTPClientTransport(new URL(`${origin}/mcp/${target}`), {requestInit: {headers: {authorization: `Bearer ${token}`}}})
    await client.connect(transport)
    clients.push(client)
    return {client, transport}
  }

  it('answers a request without a token with 401 and the metadata that names the identity provider', async () => {
    const res = await fetch(`${origin}/mcp/app`, {method: 'POST', headers: {'content-type': 'application/json', accept: 'application/json, text/event-stream'}, body: JSON.stringify({jsonrpc: '2.0', id: 1, method: 'initialize', params: {protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'x', version: '1'}}})})
    expect(res.status).toBe(401)
    const challenge = res.headers.get('www-authenticate') ?? ''
    const metaUrl = /resource_metadata="([^"]+)"/.exec(challenge)?.[1]
    expect(metaUrl).toBe(protectedResourceMetadataUrl('http://127.0.0.1:0', 'app'))
    const meta = (await (await fetch(`${origin}${new URL(metaUrl!).pathname}`)).json()) as {resource: string; authorization_servers: string[]}
    expect(meta.resource).toBe('http://127.0.0.1:0/mcp/app')
    expect(meta.authorization_servers).toEqual([p.f.dev.issuer])
  })

  it('refuses a tampered token and a token from outside the target\'s allow list, saying which', async () => {
    const [h, body, sig] = tokens.alice!.split('.')
    const tampered = `${h}.${body}.${sig!.slice(0, -4)}AAAA`
    await expect(connect(tampered)).rejects.toThrow()
    const bad = await fetch(`${origin}/mcp/app`, {method: 'POST', headers: {authorization: `Bearer ${tampered}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream'}, body: '{}'})
    expect(bad.status).toBe(401)
    expect(bad.headers.get('www-authenticate')).toContain('error="invalid_token"')

    // carol is in no group that `app` allows.
    const outside = await fetch(`${origin}/mcp/app`, {method: 'POST', headers: {authorization: `Bearer ${tokens.carol}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream'}, body: '{}'})
    expect(outside.status).toBe(403)
    expect(outside.headers.get('www-authenticate')).toContain('error="insufficient_scope"')
    expect(await outside.text()).toContain('engineering')

    // Each refusal is logged once from its address, never with the token; repeats are counted, then summarised.
    const refusedLines = () => lines.filter((l) => l.includes('MCP: sign-in refused'))
    expect(refusedLines()).toEqual(['warn MCP: sign-in refused (invalid_token) from 127.0.0.1 for target app', 'warn MCP: sign-in refused (insufficient_scope) from 127.0.0.1 for target app'])
    for (let i = 0; i < 5; i++) {
      const again = await fetch(`${origin}/mcp/app`, {method: 'POST', headers: {authorization: `Bearer ${tampered}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream'}, body: '{}'})
      expect(again.status).toBe(401)
    }
    expect(refusedLines()).toHaveLength(2)
    endOfInterval?.()
    // The SDK's attempt, the first request and the five: all but the first logged are counted.
    const summary = lines.map((l) => /^warn (\d+) more like this from 127\.0\.0\.1 .*MCP: sign-in refused \(invalid_token\)/.exec(l)).find((m) => m !== null)
    expect(Number(summary?.[1])).toBeGreaterThanOrEqual(6)
    expect(lines.join('\n')).not.toContain(sig!.slice(0, 20))
  })

  it('runs the tools through the pipeline as the token\'s owner: masked, guarded', async () => {
    const {client} = await connect(tokens.alice!)
    const tools = (await client.listTools()).tools.map((t) => t.name)
    expect(tools).toContain('query')
    const rows = (await client.callTool({name: 'query', arguments: {sql: 'select c.*, n.body from customers c, notes n'}})) as CallToolResult
    if (rows.isError) throw new Error(textOf(rows))
    expect((rows.structuredContent as {rows: unknown[]}).rows.length).toBeGreaterThan(3)
    expect(leaked(textOf(rows), fx.secrets)).toEqual([])
    const drop = (await client.callTool({name: 'query', arguments: {sql: 'drop table customers'}})) as CallToolResult
    expect(drop.isError).toBe(true)
    expect(textOf(drop)).toMatch(/refused|denied|not allowed/i)
    expect(mcp.sessionCount).toBeGreaterThan(0)
  })

  it('refuses to continue one person\'s MCP session with another person\'s token', async () => {
    const {transport} = await connect(tokens.alice!)
    const sessionId = transport.sessionId!
    expect(sessionId).toBeTruthy()
    // dave may use `app` himself, but not through alice's session, however often he tries.
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${origin}/mcp/app`, {
        method: 'POST',
        headers: {authorization: `Bearer ${tokens.dave}`, 'mcp-session-id': sessionId, 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
        body: JSON.stringify({jsonrpc: '2.0', id: 7, method: 'tools/list'}),
      })
      expect(res.status).toBe(403)
      expect(await res.text()).toContain('belongs to someone else')
    }
    const hijacks = () => lines.filter((l) => l.includes("another person's token"))
    expect(hijacks()).toEqual([expect.stringMatching(/^warn refused a request for MCP session \S+ with another person's token \(dave/)])
    endOfInterval?.()
    expect(hijacks()[1]).toMatch(/^warn 19 more like this from dave\S* in the last \S+ \(not logged one by one\)/)
    const own = await fetch(`${origin}/mcp/app`, {
      method: 'POST',
      headers: {authorization: `Bearer ${tokens.alice}`, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
      body: JSON.stringify({jsonrpc: '2.0', id: 7, method: 'tools/list'}),
    })
    expect(own.status).toBe(200)
    expect(await own.text()).toContain('describe_table')
    const browser = await fetch(`${origin}/mcp/app`, {method: 'POST', headers: {origin: 'https://evil.example', authorization: `Bearer ${tokens.alice}`, 'mcp-session-id': sessionId, 'content-type': 'application/json', accept: 'application/json, text/event-stream'}, body: JSON.stringify({jsonrpc: '2.0', id: 8, method: 'tools/list'})})
    expect(browser.status).toBe(403)
    expect(await browser.text()).toContain('https://evil.example')
  })

  it('answers a body that is no JSON-RPC message, saying what is wrong, and records the tool calls in it', async () => {
    const {client, transport} = await connect(tokens.alice!)
    const post = (body: unknown) =>
      fetch(`${origin}/mcp/app`, {
        method: 'POST',
        headers: {authorization: `Bearer ${tokens.alice}`, 'mcp-session-id': transport.sessionId!, 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
        body: JSON.stringify(body),
      })
    const call = (id: number, sql: string) => ({jsonrpc: '2.0', id, method: 'tools/call', params: {name: 'query', arguments: {sql}}})
    const bodies: {body: unknown; says: RegExp}[] = [
      {body: {jsonrpc: '2.0', id: 21, method: 'tools/call', params: 'drop table customers /* http params a string */'}, says: /params must be an object/},
      {body: [call(22, 'drop table customers /* http beside a bad one */'), {jsonrpc: '2.0', id: 23, method: 'tools/call', params: ['truncate customers /* http params an array */']}], says: /a batch holding a message that is not one JSON-RPC 2\.0 message MCP takes \(params must be an object\), as its message 2/},
      {body: {...call(24, 'delete from customers /* http version 1.0 */'), jsonrpc: '1.0'}, says: /jsonrpc must be "2\.0"/},
      {body: {...call(25, 'drop table customers /* http id an object */'), id: {n: 25}}, says: /id must be a string or an integer/},
    ]
    for (const b of bodies) {
      const res = await post(b.body)
      expect(res.status, JSON.stringify(b.body)).toBe(400)
      const text = (JSON.parse(await res.text()) as {error: {message: string}}).error.message
      expect(text).toMatch(b.says)
      expect(text).toMatch(/nothing of it ran\. Send one JSON-RPC 2\.0 message/)
    }
    // The session goes on.
    const ok = (await client.callTool({name: 'query', arguments: {sql: 'select 1 as one'}})) as CallToolResult
    expect(ok.isError).toBeFalsy()
    await transport.terminateSession()

    const reader = new SessionReader(openBucket(bucketUrl), mkdtempSync(path.join(tmpdir(), 'dbgate-cache-')))
    const recorded = async () => {
      const out: [string, string | undefined][] = []
      for (const s of await reader.list()) {
        for (const e of (await reader.loadSummary(s)).events) {
          if (e.type !== 'mcp.tool_refused') continue
          const d = e.data as {tool: string; reason: string; arguments: {sql?: string; given?: string}}
          if (d.reason === 'malformed-call') out.push([d.tool, d.arguments.sql ?? d.arguments.given])
        }
      }
      return out.length >= 5 ? out : undefined
    }
    const seen = await waitFor(recorded, 'the refusals were recorded and shipped', {timeoutMs: 30_000})
    expect(seen.sort()).toEqual(
      [
        ['(no tool name: string)', 'string'],
        ['query', 'drop table customers /* http beside a bad one */'],
        ['(no tool name: array)', 'array'],
        ['query', 'delete from customers /* http version 1.0 */'],
        ['query', 'drop table customers /* http id an object */'],
      ].sort(),
    )
  })
})

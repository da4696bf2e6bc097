import {readFileSync} from 'node:fs'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type {Client} from '@modelcontextprotocol/sdk/client/index.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {Agent} from 'undici'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {decide, type Reviewer} from '../../src/approvals/review.js'
import {readOutcome} from '../../src/approvals/store.js'
import {openBucket, type Bucket} from '../../src/bucket/index.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {verifyToken} from '../../src/identity/verify.js'
import {fixture, mint, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {closeGatewayTest, gatewayConfig, makePki, remoteAgent, type TestPki, throughDispatcher} from './helpers.js'

/**
 * A remote MCP session holds a statement for a reviewer between the agent's requests. A reload that
 * changed its target's policy or settings ended such a session only at the agent's next request: an
 * agent that sent nothing more kept its held statement on the pipeline built from the replaced
 * policy, and a reviewer's approval afterwards ran it there (a write after writes were frozen, a
 * write after the target was made read-only for agents). The session now ends at the reload, as a
 * PostgreSQL session does: its held statement is withdrawn, its database sessions close, and the
 * agent's next request is told why. A reload that changes nothing of its target keeps it.
 */
describe('dbgate gateway: a reload that changes a target ends its remote MCP sessions and withdraws what they hold', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let env: NodeJS.ProcessEnv
  let gw: RunningGateway
  let bucket: Bucket
  let next: LoadedConfig
  let dispatcher: Agent
  const agents: Client[] = []

  const reviewed = ['rules:', '  - id: review-writes', '    match: {class: write}', '    action: require_approval', '    reason: writes are reviewed']
  const configWith = (app: {mcp?: string; rules?: string[]; extra?: string[]} = {}, ops: string[] = []) =>
    gatewayConfig({
      pki,
      dir,
      issuer: f.dev.issuer,
      clientId: f.dev.cliClientId,
      env,
      server: ['mcp: {publicUrl: https://gw.test:8443}'],
      targets: [
        ...targetConfigText('app', db, ['allow: [engineering, dba]', 'reviewers: [dba]', app.mcp ?? 'mcp: {mode: read-write, approvalWait: 0s}', ...(app.rules ?? reviewed), ...(app.extra ?? [])].join('\n')),
        ...targetConfigText('ops', db, ['allow: [engineering, dba]', 'reviewers: [dba]', ...ops].join('\n')),
      ],
    })

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwmcpreload')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwmcpreload-'))
    env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    next = configWith()
    bucket = openBucket(next.config.bucket)
    gw = await startGateway({loaded: next, env, reloadConfig: async () => next})
    await gw.whenReady()
    dispatcher = new Agent({connect: {ca: readFileSync(pki.ca, 'utf8')}})
  })
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((c) => c.close().catch(() => {})))
    next = configWith()
    await gw.reload()
  })
  afterAll(async () => {
    await dispatcher?.close()
    await closeGatewayTest(gw, f, [dir, pki?.dir])
  })

  const fetchWithCa = throughDispatcher(() => dispatcher)
  const token = () => mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 600})
  const bob: Reviewer = {
    identity: {subject: 'bob', email: 'bob@example.com', groups: ['dba'], issuer: '', kind: 'human', tokenHash: '', expiresAt: new Date(Date.now() + 3_600_000)},
    async freshToken() {
      const t = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'bob', email: 'bob@example.com', groups: ['dba'], exp: Math.floor(Date.now() / 1000) + 600})
      const {identity} = await verifyToken(f.config, t, {use: 'any'})
      return {identity, token: t}
    },
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  const rows = (table: string) => withClient(db.url, async (k) => (await k.query(`select count(*)::int as n from ${table}`)).rows[0].n as number)
  const backends = () => withClient(db.url, async (c) => Number((await c.query<{n: string}>("select count(*) as n from pg_stat_activity where datname = current_database() and application_name like 'dbgate/alice@example.com%'")).rows[0]!.n))

  /** Alice's agent sends a write the policy holds for a reviewer, and then nothing more. */
  async function holdWrite(table: string): Promise<{bearer: string; session: string; approvalId: string}> {
    await withClient(db.url, (k) => k.query(`create table if not exists ${table} (id int) with (autovacuum_enabled = false)`))
    const bearer = await token()
    const {client, transport} = await remoteAgent('https://localhost:' + gw.api!.port + '/mcp/app', bearer, {fetch: fetchWithCa, name: 'reload-agent', version: '1'})
    agents.push(client)
    const held = (await client.callTool({name: 'query', arguments: {sql: `insert into ${table} values (1)`}})) as CallToolResult
    const approvalId = (held.structuredContent as {approvalId?: string} | undefined)?.approvalId
    expect(approvalId, JSON.stringify(held)).toMatch(/^apr-/)
    return {bearer, session: transport.sessionId!, approvalId: approvalId!}
  }
  const nextRequest = (bearer: string, session: string) =>
    fetchWithCa(`https://localhost:${gw.api!.port}/mcp/app`, {
      method: 'POST',
      headers: {authorization: `Bearer ${bearer}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
      body: JSON.stringify({jsonrpc: '2.0', id: 9, method: 'tools/call', params: {name: 'query', arguments: {sql: 'select 42 as answer'}}}),
    })

  const changes: [string, () => LoadedConfig][] = [
    ['writes frozen by a new rule', () => configWith({rules: ['rules:', '  - id: freeze', '    match: {class: write}', '    action: deny', '    reason: incident']})],
    ['the target made read-only for agents', () => configWith({mcp: 'mcp: {mode: read-only, approvalWait: 0s}'})],
    ['a rule added beside the reviewed one', () => configWith({rules: [...reviewed, '  - id: no-truncate', '    match: {class: ddl, command: [truncate]}', '    action: deny']})],
    ['the target\'s connection settings changed', () => configWith({extra: ['tunnel: {maxUpstreamSessions: 7}']})],
  ]

  it.each(changes)('withdraws the write its agent holds when a reload brings %s, and an approval afterwards runs nothing', async (label, changed) => {
    const table = `mcp_held_${label.replace(/\W+/g, '_')}`
    const {bearer, session, approvalId} = await holdWrite(table)
    expect(await backends()).toBeGreaterThan(0)

    next = changed()
    await gw.reload()
    // The agent sends nothing meanwhile: the reload alone ends what its session held.
    await waitFor(async () => (await readOutcome(bucket, approvalId))?.state === 'withdrawn', 'the held write is withdrawn', {timeoutMs: 10_000}).catch(() => {})
    expect((await readOutcome(bucket, approvalId))?.state).toBe('withdrawn')
    await waitFor(async () => (await backends()) === 0, "the MCP session's database sessions have closed", {timeoutMs: 10_000}).catch(() => {})
    expect(await backends()).toBe(0)

    await decide({bucket, config: next.config, reviewer: bob}, {id: approvalId, action: 'approve'}).catch(() => undefined)
    await sleep(3000)
    expect(await rows(table)).toBe(0)

    const res = await nextRequest(bearer, session)
    expect(res.status).toBe(404)
    const body = (await res.json()) as {error: {message: string}}
    expect(body.error.message).toMatch(/this MCP session has ended: the settings or policy of target "app" changed \(a gateway reload\)/)
  }, 40_000)

  it('keeps the session and its held write through a reload that changes nothing of its target (the same file, another target\'s rules); the approval runs it', async () => {
    const {bearer, session, approvalId} = await holdWrite('mcp_held_kept')
    next = configWith()
    await gw.reload()
    next = configWith({}, ['rules:', '  - id: freeze', '    match: {class: write}', '    action: deny'])
    await gw.reload()
    await sleep(500)
    expect((await readOutcome(bucket, approvalId))?.state ?? 'pending').toBe('pending')
    await decide({bucket, config: next.config, reviewer: bob}, {id: approvalId, action: 'approve'})
    await waitFor(async () => (await rows('mcp_held_kept')) === 1, 'the approved write ran', {timeoutMs: 15_000})
    const res = await nextRequest(bearer, session)
    expect(res.status).toBe(200)
    expect(await res.text()).toContain('42')
  }, 40_000)
})

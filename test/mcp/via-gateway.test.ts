import {spawn} from 'node:child_process'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {people, type People} from '../approvals/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {leaked, maskingFixture, type MaskingFixture} from '../masking/fixture.js'
import {gatewayConfig, makePki, recordingsUnder, type TestPki} from '../gateway/helpers.js'
import {agentHome, BIN, startAgent, textOf, trustAgentConfig, type Agent} from './helpers.js'

/**
 * `dbgate mcp <target>` of a person whose dbgate.yaml names a gateway and no targets: the agent
 * launches it over stdio as always (the official MCP client here), and the tools run on the
 * gateway, under the gateway's policy, masking and recording, with no database credentials on the
 * person's side.
 */
describe('dbgate mcp through a gateway', () => {
  let p: People
  let pki: TestPki
  let fx: MaskingFixture
  let gw: RunningGateway
  let dir: string
  let clientConfig: string
  let env: NodeJS.ProcessEnv
  const agents: Agent[] = []

  const agent = async (target = 'app', extra: NodeJS.ProcessEnv = {}) => {
    const a = await startAgent(target, {...env, ...extra})
    agents.push(a)
    return a
  }
  /** Every recording the gateway has written so far, spooled or shipped. */
  const recorded = () => recordingsUnder(dir)

  beforeAll(async () => {
    ;[p, pki, fx] = await Promise.all([people(), makePki(), maskingFixture()])
    await p.login('alice')
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-mcp-gw-'))
    // The gateway's side: the only place the database password exists.
    const gwEnv = {...isolatedEnv(), TEST_APP_PASSWORD: fx.db.password}
    gw = await startGateway({
      loaded: gatewayConfig({
        pki,
        dir,
        issuer: p.f.dev.issuer,
        clientId: p.f.dev.cliClientId,
        env: gwEnv,
        server: ['mcp: {publicUrl: https://gw.test:8443}'],
        targets: [...targetConfigText('app', fx.db, 'allow: [engineering]'), ...targetConfigText('ops', fx.db, 'allow: [dba]'), ...targetConfigText('svc', fx.db, 'allow: [ci]')],
      }),
      env: gwEnv,
    })
    // The person's side: identity and the gateway, no targets, no credentials.
    clientConfig = path.join(dir, 'dbgate.yaml')
    await writeFile(
      clientConfig,
      ['identity:', `  issuer: ${p.f.dev.issuer}`, `  clientId: ${p.f.dev.cliClientId}`, 'gateway:', `  address: 127.0.0.1:${gw.address.port}`, `  ca: ${pki.ca}`, `  api: 127.0.0.1:${gw.api!.port}`, ''].join('\n'),
    )
    env = {...agentHome(), ...p.env('alice'), DBGATE_CONFIG: clientConfig}
  })
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.close().catch(() => {})))
    await gw?.close(500)
    await fx?.close()
    await p?.close()
    if (dir) await rm(dir, {recursive: true, force: true})
    if (pki) await rm(pki.dir, {recursive: true, force: true})
  })

  it('has no database credentials anywhere on the client side', async () => {
    expect(await readFile(clientConfig, 'utf8')).not.toMatch(/password|targets/)
    expect(Object.values(env).join('\n')).not.toContain(fx.db.password)
  })

  it('serves the tools from the gateway: masked rows, the read-only guardrails, recorded there as this agent for alice', async () => {
    const a = await agent()
    expect((await a.client.listTools()).tools.map((t) => t.name).sort()).toEqual(['approval_status', 'describe_table', 'explain', 'list_schemas', 'list_tables', 'query'])

    const rows = await a.call('query', {sql: 'select email, phone, ssn from customers order by id limit 5'})
    expect(rows.isError, textOf(rows)).toBeFalsy()
    expect((rows.structuredContent as {rows: unknown[]}).rows).toHaveLength(5)
    expect(leaked(JSON.stringify(rows), fx.secrets)).toEqual([])
    expect(textOf(rows)).toMatch(/<untrusted-data id="[0-9a-f]{32}">/)

    const tables = await a.call('list_tables', {schema: 'public'})
    const customers = (tables.structuredContent as {tables: {name: string; maskedColumns: {column: string}[]}[]}).tables.find((t) => t.name === 'customers')
    expect(customers?.maskedColumns.map((c) => c.column)).toEqual(expect.arrayContaining(['email', 'phone']))

    const before = await withClient(fx.db.url, async (c) => (await c.query('select count(*)::int as n from customers')).rows[0].n)
    for (const sql of ['drop table customers', 'delete from customers', "update customers set email = 'x' where id = 1"]) {
      const r = await a.call('query', {sql})
      expect(r.isError, sql).toBe(true)
      expect(textOf(r), sql).toMatch(/denied by rule agent\.read-only/)
    }
    expect(await withClient(fx.db.url, async (c) => (await c.query('select count(*)::int as n from customers')).rows[0].n)).toBe(before)

    // The gateway recorded it as an agent session of alice's, naming the agent the MCP client said it was.
    const text = await waitFor(() => recorded().find((t) => t.includes('drop table customers')), 'the gateway has recorded the agent session', {timeoutMs: 20_000, intervalMs: 200})
    expect(text).toContain('"email":"alice@example.com"')
    expect(text).toMatch(/"agent":\{"client":"mcp","name":"test-agent","version":"9\.9\.9"\}/)
  })

  it("records the tools' own refusals in the gateway's recording of the agent's session, signed with its statements", async () => {
    const a = await agent()
    const refusals: [string, Record<string, unknown>][] = [
      ['query', {sql: 'select 1; drop table orders /* gw-several */'}],
      ['explain', {sql: '(analyze) delete from orders /* gw-explain */'}],
      ['query', {sql: 'select 1 /* gw-cap */', maxRows: 10_000_000, params: ['gw-secret-param']}],
      ['no_such_tool', {sql: 'truncate orders /* gw-unknown */'}],
    ]
    for (const [tool, args] of refusals) expect((await a.call(tool, args)).isError, `${tool} ${JSON.stringify(args)}`).toBe(true)
    const text = await waitFor(() => recorded().find((t) => t.includes('gw-unknown')), 'the gateway has recorded the refusals', {timeoutMs: 20_000, intervalMs: 200})
    const events = text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as {type: string; data: {reason?: string; arguments?: {sql?: string}}})
    expect(events.filter((e) => e.type === 'mcp.tool_refused').map((e) => [e.data.reason, e.data.arguments?.sql])).toEqual([
      ['several-statements', 'select 1; drop table orders /* gw-several */'],
      ['explain-options', '(analyze) delete from orders /* gw-explain */'],
      ['invalid-arguments', 'select 1 /* gw-cap */'],
      ['unknown-tool', 'truncate orders /* gw-unknown */'],
    ])
    expect(text).not.toContain('gw-secret-param')
    expect(events[0]).toMatchObject({type: 'session.start', data: {agent: {client: 'mcp', name: 'test-agent'}}})
  })

  it('runs as a service identity from DBGATE_CLIENT_ID and DBGATE_CLIENT_SECRET, through the gateway', async () => {
    const nobody = {XDG_CONFIG_HOME: await mkdtemp(path.join(tmpdir(), 'dbgate-svc-'))}
    const a = await agent('svc', {...nobody, DBGATE_CLIENT_ID: p.f.dev.serviceClientId, DBGATE_CLIENT_SECRET: p.f.dev.serviceClientSecret})
    for (let i = 0; i < 3; i++) {
      const r = await a.call('query', {sql: 'select count(*) as n from orders'})
      expect(r.isError, textOf(r)).toBeFalsy()
      expect(r.structuredContent).toMatchObject({status: 'done', rows: [{n: expect.any(String)}]})
    }
  })

  it('tells the agent the gateway refused a target the person may not use, naming the groups', async () => {
    const a = await startAgent('ops', env).catch((e: Error) => e)
    const message = a instanceof Error ? a.message : textOf(await a.call('list_schemas'))
    if (!(a instanceof Error)) agents.push(a)
    expect(message).toMatch(/The gateway https:\/\/127\.0\.0\.1:\d+ refused: alice@example\.com may not use target "ops".*dba\. Ask your IdP administrator[^.]*\.$/)
  })

  it('says when the gateway serves no MCP endpoint for the target, and what to check', async () => {
    // The same gateway without server.mcp: its API answers only /v1/targets.
    const gwEnv = {...isolatedEnv(), TEST_APP_PASSWORD: fx.db.password}
    const plain = await startGateway({loaded: gatewayConfig({pki, dir: path.join(dir, 'plain'), issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: gwEnv, targets: targetConfigText('app', fx.db, 'allow: [engineering]')}), env: gwEnv})
    try {
      const config = path.join(dir, 'plain.yaml')
      await writeFile(config, (await readFile(clientConfig, 'utf8')).replace(/address: .*/, `address: 127.0.0.1:${plain.address.port}`).replace(/api: .*/, `api: 127.0.0.1:${plain.api!.port}`))
      for (const target of ['app', 'nope']) {
        const a = await startAgent(target, {...env, DBGATE_CONFIG: config}).catch((e: Error) => e)
        if (!(a instanceof Error)) agents.push(a)
        const message = a instanceof Error ? a.message : textOf(await a.call('list_schemas'))
        expect(message).toMatch(/has no MCP endpoint for this target \(no such endpoint \/mcp\/\w+.*\)\. Check the name with `dbgate targets`; .*server\.mcp/)
        expect(message).not.toMatch(/Streamable HTTP error|\{"/)
      }
    } finally {
      await plain.close(500)
    }
  })

  it('exits when the agent closes its stdin, as agents end a stdio server', async () => {
    await trustAgentConfig(env)
    const child = spawn(process.execPath, [BIN, 'mcp', 'app'], {env: {...process.env, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', ...env}, stdio: ['pipe', 'pipe', 'pipe']})
    try {
      let out = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
      const initialize = {jsonrpc: '2.0', id: 1, method: 'initialize', params: {protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'raw-agent', version: '1'}}}
      child.stdin.write(`${JSON.stringify(initialize)}\n`)
      await waitFor(() => out.includes('"id":1'), 'the gateway answered initialize through dbgate mcp', {timeoutMs: 20_000})
      expect(JSON.parse(out.split('\n')[0]!)).toMatchObject({id: 1, result: {serverInfo: {name: 'dbgate'}}})
      child.stdin.end()
      await waitFor(() => child.exitCode !== null, 'dbgate mcp has exited', {timeoutMs: 20_000})
      expect(child.exitCode).toBe(0)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  })

  it('tells the agent to have the user sign in when there is no sign-in', async () => {
    const nobody = {XDG_CONFIG_HOME: await mkdtemp(path.join(tmpdir(), 'dbgate-nobody-'))}
    const a = await startAgent('app', {...env, ...nobody}).catch((e: Error) => e)
    const message = a instanceof Error ? a.message : textOf(await a.call('list_schemas'))
    if (!(a instanceof Error)) agents.push(a)
    expect(message).toMatch(/Not signed in to dbgate \(LOGIN_REQUIRED\).*`dbgate login`/)
    expect(message).not.toMatch(/\n\s+at /)
  })
})

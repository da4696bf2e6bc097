import {spawn, type ChildProcessWithoutNullStreams} from 'node:child_process'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {people, type People} from '../approvals/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {gatewayConfig, makePki, recordingsUnder, type TestPki} from '../gateway/helpers.js'
import {agentHome, BIN, stdioAnswers, trustAgentConfig} from './helpers.js'

/**
 * `dbgate mcp` in front of a gateway refuses, on the agent's machine, the stdio lines it cannot carry
 * (a tools/call whose params is a string or an array, jsonrpc 1.0, an id that is an object, a batch
 * past 100 messages, a second request with the id of one still in flight). Run locally, dbgate mcp
 * records each such tools/call as refused; in front of a gateway it answered the agent and nothing
 * reached the gateway, which is the only place that records: the DROP the agent tried left no trace
 * in the central bucket. Each is now recorded in the gateway's log of the agent's session, and still
 * nothing of it runs.
 */
describe('dbgate mcp through a gateway: tool calls refused on the agent machine', () => {
  let p: People
  let pki: TestPki
  let db: UpstreamInfo
  let gw: RunningGateway
  let dir: string
  let child: ChildProcessWithoutNullStreams
  let out = ''

  const answers = () => stdioAnswers(out)
  const answerTo = (id: unknown) => answers().find((a) => a.id === id)
  const send = (line: string) => child.stdin.write(`${line}\n`)
  const call = (id: unknown, sql: string) => ({jsonrpc: '2.0', id, method: 'tools/call', params: {name: 'query', arguments: {sql}}})
  const secrets = () => withClient(db.url, async (c) => (await c.query('select count(*)::int as n from secrets')).rows[0].n as number)

  beforeAll(async () => {
    ;[p, pki, db] = await Promise.all([people(), makePki(), createTestDatabase('mcpgwbad')])
    await withClient(db.url, (c) => c.query("create table secrets (id int primary key, v text) with (autovacuum_enabled = false); insert into secrets values (1, 'keep')"))
    await p.login('alice')
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-mcp-gwbad-'))
    const gwEnv = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    gw = await startGateway({
      loaded: gatewayConfig({pki, dir, issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: gwEnv, server: ['mcp: {publicUrl: https://gw.test:8443}'], targets: targetConfigText('app', db, 'allow: [engineering]')}),
      env: gwEnv,
    })
    const clientConfig = path.join(dir, 'dbgate.yaml')
    await writeFile(clientConfig, ['identity:', `  issuer: ${p.f.dev.issuer}`, `  clientId: ${p.f.dev.cliClientId}`, 'gateway:', `  address: 127.0.0.1:${gw.address.port}`, `  ca: ${pki.ca}`, `  api: 127.0.0.1:${gw.api!.port}`, ''].join('\n'))
    const env = {...agentHome(), ...p.env('alice'), DBGATE_CONFIG: clientConfig}
    await trustAgentConfig(env)
    child = spawn(process.execPath, [BIN, 'mcp', 'app'], {env: {...process.env, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', ...env}, stdio: ['pipe', 'pipe', 'pipe']})
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    send(JSON.stringify({jsonrpc: '2.0', id: 'init', method: 'initialize', params: {protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'raw-agent', version: '1'}}}))
    await waitFor(() => answerTo('init') !== undefined, 'the gateway answered initialize', {timeoutMs: 30_000})
    send(JSON.stringify({jsonrpc: '2.0', method: 'notifications/initialized'}))
  }, 60_000)

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL')
    await gw?.close(500)
    await p?.close()
    if (dir) await rm(dir, {recursive: true, force: true})
    if (pki) await rm(pki.dir, {recursive: true, force: true})
  })

  it("records each in the gateway's log of the agent's session, and runs none of them", async () => {
    // A first call opens the agent's database session at the gateway, as any agent's first call does.
    send(JSON.stringify(call(1, 'select v from secrets')))
    await waitFor(() => answerTo(1) !== undefined, 'the first call is answered', {timeoutMs: 30_000})
    expect(answerTo(1)?.result?.content?.[0]?.text).toMatch(/keep/)

    const big = `drop table secrets /* gw-big */ -- ${'x'.repeat(2 * 1024 * 1024)}`
    const lines = [
      JSON.stringify({jsonrpc: '2.0', id: 2, method: 'tools/call', params: 'drop table secrets /* gw-params-string */'}),
      JSON.stringify({jsonrpc: '2.0', id: 3, method: 'tools/call', params: ['drop table secrets /* gw-params-array */']}),
      JSON.stringify({...call(4, 'drop table secrets /* gw-version */'), jsonrpc: '1.0'}),
      JSON.stringify(call({n: 5}, 'drop table secrets /* gw-id-object */')),
      JSON.stringify([call(6, 'select 1 /* gw-batch-ok */'), {...call(7, 'truncate secrets /* gw-in-batch */'), jsonrpc: '1.0'}]),
      JSON.stringify([...Array.from({length: 100}, (_, i) => ({jsonrpc: '2.0', id: `ping-${i}`, method: 'ping'})), call(8, 'delete from secrets /* gw-oversize-batch */')]),
      JSON.stringify({...call(9, big), jsonrpc: '1.0'}),
    ]
    for (const line of lines) send(line)
    await waitFor(() => [2, 3, 4, 6, 7, 8, 9].every((id) => answerTo(id) !== undefined), 'every refused request is answered', {timeoutMs: 30_000})
    for (const id of [2, 3, 4, 7, 8, 9]) expect(answerTo(id)?.error?.code, String(id)).toBe(-32600)

    // A second request with the id of one still running at the gateway.
    const running = () => withClient(db.url, async (c) => (await c.query(`select count(*)::int as n from pg_stat_activity where state = 'active' and query like '%gw-dup-a%' and pid <> pg_backend_pid()`)).rows[0].n as number)
    send(JSON.stringify(call(30, 'select pg_sleep(30) /* gw-dup-a */')))
    await waitFor(async () => (await running()) === 1, 'the first request of id 30 runs on the server', {timeoutMs: 30_000})
    send(JSON.stringify(call(30, 'drop table secrets /* gw-dup-b */')))
    await waitFor(() => answerTo(30) !== undefined, 'the second request of id 30 is answered', {timeoutMs: 30_000})
    expect(answerTo(30)?.error?.message).toMatch(/a request with the id 30, which a request still in flight has/)
    // The cancellation and a request reusing the id it frees, on one write: the gateway, which
    // refuses an id in flight, gets the cancellation first.
    send(`${JSON.stringify({jsonrpc: '2.0', method: 'notifications/cancelled', params: {requestId: 30, reason: 'done'}})}\n${JSON.stringify(call(30, 'select 30 as again /* gw-dup-c */'))}`)
    await waitFor(async () => (await running()) === 0, 'the first request of id 30 stopped on the server')
    await waitFor(() => answers().filter((a) => a.id === 30).length >= 2, 'the request reusing id 30 is answered', {timeoutMs: 30_000})
    const reused = answers().filter((a) => a.id === 30)[1]
    expect(reused?.error).toBeUndefined()
    expect(reused?.result?.content?.[0]?.text).toMatch(/"again":"30"/)

    // An ordinary call after them all is answered as ever.
    send(JSON.stringify(call(40, 'select count(*) as n from secrets')))
    await waitFor(() => answerTo(40) !== undefined, 'the last call is answered', {timeoutMs: 30_000})
    expect(answerTo(40)?.result?.content?.[0]?.text).toMatch(/"n":"1"/)
    expect(await secrets()).toBe(1)

    type Refusal = {tool: string; reason: string; message: string; arguments: {sql?: string; given?: string}}
    const refusals = async (): Promise<Refusal[]> =>
      recordingsUnder(dir)
        .flatMap((t) => t.split('\n').filter(Boolean))
        .map((l) => JSON.parse(l) as {type: string; data: Refusal})
        .filter((e) => e.type === 'mcp.tool_refused' && e.data.reason === 'malformed-call')
        .map((e) => e.data)
    const markers = ['gw-params-string', 'gw-params-array', 'gw-version', 'gw-id-object', 'gw-in-batch', 'gw-oversize-batch', 'gw-big', 'gw-dup-b']
    const seen = await waitFor(
      async () => {
        const r = await refusals()
        return r.filter((x) => x.tool === 'query').length >= 6 && r.length >= 8 ? r : undefined
      },
      "the gateway's recording holds the refusals",
      {timeoutMs: 30_000, intervalMs: 200},
    )
    // A params that is no object is recorded by its kind (it holds no tool name or SQL to keep).
    expect(seen.filter((r) => r.tool.startsWith('(no tool name')).map((r) => [r.tool, r.arguments.given]).sort()).toEqual([
      ['(no tool name: array)', 'array'],
      ['(no tool name: string)', 'string'],
    ])
    const sqls = seen.filter((r) => r.tool === 'query').map((r) => r.arguments.sql ?? '')
    for (const m of markers.slice(2)) expect(sqls.filter((s) => s.includes(m)), m).toHaveLength(1)
    // Cut as every refused SQL is, saying how long it was.
    expect(sqls.find((s) => s.includes('gw-big'))).toMatch(new RegExp(`…\\[cut, ${Buffer.byteLength(big)} bytes in all\\]$`))
    for (const r of seen) expect(r.message).toMatch(/refused by dbgate mcp on the agent's machine/)
    expect(seen.find((r) => r.arguments.sql?.includes('gw-dup-b'))?.message).toMatch(/a request with the id 30, which a request still in flight has/)
    expect(seen.find((r) => r.arguments.sql?.includes('gw-oversize-batch'))?.message).toMatch(/a batch of 101 messages/)
    // None of it ran: no statement of the log carries a refused call's SQL, and the table is whole.
    const statements = recordingsUnder(dir)
      .flatMap((t) => t.split('\n').filter(Boolean))
      .map((l) => JSON.parse(l) as {type: string; data: {sql?: string}})
      .filter((e) => e.type === 'statement')
      .map((e) => e.data.sql ?? '')
    for (const m of markers) expect(statements.filter((s) => s.includes(m)), m).toEqual([])
    expect(statements).toEqual(expect.arrayContaining(['select 1 /* gw-batch-ok */', 'select count(*) as n from secrets']))
  }, 120_000)
})

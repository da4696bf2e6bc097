import {mkdtempSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import {InMemoryTransport} from '@modelcontextprotocol/sdk/inMemory.js'
import {ErrorCode, McpError, type CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {z} from 'zod'
import {openBucket} from '../../src/bucket/index.js'
import {SessionReader} from '../../src/audit/read.js'
import type {AuditEvent} from '../../src/audit/events.js'
import {openLocalEndpoint} from '../../src/mcp/local-endpoint.js'
import {createDbgateMcp, type DbgateMcp} from '../../src/mcp/server.js'
import {auditorEnv, localBucketUrl} from '../audit/helpers.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {BIN, textOf} from './helpers.js'

const SECRET = 'hunter2-s3cret-value'

/**
 * What the MCP tools refuse themselves never reaches the tunnel, so the session log held nothing of
 * it: an agent that tried `select 1; drop table secrets`, an EXPLAIN that smuggles ANALYZE in front
 * of a DELETE, arguments past the caps, a tool that does not exist, another agent's approval id,
 * left no trace for an auditor. Each is now an `mcp.tool_refused` event in the agent's own session
 * log, signed and chained with its statements, shown by show/replay/search and counted by the report,
 * with its SQL but never its bind parameters or arguments no tool takes.
 */
describe('MCP: the tools\' own refusals are recorded', () => {
  let db: UpstreamInfo
  let loaded: ReturnType<typeof loadedConfig>
  let env: NodeJS.ProcessEnv
  let bucketUrl: string
  let mcp: DbgateMcp
  let call: (name: string, args: Record<string, unknown>) => Promise<CallToolResult>
  let rawCall: (params: unknown) => Promise<unknown>

  beforeAll(async () => {
    auditorEnv()
    db = await createTestDatabase('mcprefusals')
    await withClient(db.url, (c) => c.query("create table secrets (id int primary key, v text) with (autovacuum_enabled = false); insert into secrets values (1, 'keep')"))
    env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    bucketUrl = localBucketUrl('mcprefusals')
    loaded = loadedConfig(db, 'mcp:\n  mode: read-write\n  maxRows: 500', `bucket: ${bucketUrl}`, env)
    mcp = createDbgateMcp({
      target: loaded.config.targets.app!,
      version: 'test',
      openEndpoint: (agent) => openLocalEndpoint({loaded, targetName: 'app', agent, env}),
    })
    const [serverSide, clientSide] = InMemoryTransport.createLinkedPair()
    await mcp.server.connect(serverSide)
    const client = new Client({name: 'sneaky-agent', version: '1.0'})
    await client.connect(clientSide)
    call = async (name, args) => (await client.callTool({name, arguments: args}, undefined, {timeout: 60_000})) as CallToolResult
    // As a hostile agent sends it: the SDK's client checks nothing of what it sends.
    rawCall = (params) => client.request({method: 'tools/call', params: params as {name: string}}, z.unknown(), {timeout: 60_000})
  })

  afterAll(async () => {
    await mcp?.close()
  })

  const refused: {tool: string; args: Record<string, unknown>; reason: string; sql?: string}[] = [
    {tool: 'query', args: {sql: 'select 1; drop table secrets'}, reason: 'several-statements', sql: 'select 1; drop table secrets'},
    {tool: 'query', args: {sql: 'select $1::text; delete from secrets', params: [SECRET]}, reason: 'several-statements', sql: 'select $1::text; delete from secrets'},
    {tool: 'explain', args: {sql: '(analyze) delete from secrets'}, reason: 'explain-options', sql: '(analyze) delete from secrets'},
    {tool: 'explain', args: {sql: 'delete from secrets where id = 1', analyze: true}, reason: 'analyze-not-read', sql: 'delete from secrets where id = 1'},
    {tool: 'explain', args: {sql: 'select 1; truncate secrets'}, reason: 'several-statements', sql: 'select 1; truncate secrets'},
    {tool: 'query', args: {sql: 'select * from secrets /* past the cap */', maxRows: 1_000_000, params: [SECRET]}, reason: 'invalid-arguments', sql: 'select * from secrets /* past the cap */'},
    {tool: 'query', args: {sql: 'select v from secrets /* bad timeout */', timeoutMs: 'forever'}, reason: 'invalid-arguments', sql: 'select v from secrets /* bad timeout */'},
    {tool: 'drop_everything', args: {sql: 'drop table secrets /* no such tool */', password: SECRET}, reason: 'unknown-tool', sql: 'drop table secrets /* no such tool */'},
    {tool: 'approval_status', args: {approvalId: 'apr-notmine123'}, reason: 'unknown-approval'},
    {tool: 'query', args: {sql: 'select 1\u0000; drop table secrets /* nul */'}, reason: 'nul-character', sql: 'select 1\u0000; drop table secrets /* nul */'},
    {tool: 'explain', args: {sql: "select '\u0000'; delete from secrets /* nul */"}, reason: 'nul-character', sql: "select '\u0000'; delete from secrets /* nul */"},
  ]

  /**
   * tools/call requests that are no call at all: the SDK refused them while parsing the request,
   * before any handler of dbgate's ran, so an agent that put its SQL there left no trace (and was
   * told only of an internal error).
   */
  const malformed: {params: unknown; tool: string; sql?: string; given?: string}[] = [
    {params: {name: 'query', arguments: 'select 1; drop table secrets /* args a string */'}, tool: 'query', given: 'string'},
    {params: {name: 'query', arguments: ['drop table secrets /* args an array */']}, tool: 'query', given: 'array'},
    {params: {name: {tool: 'query'}, arguments: {sql: 'drop table secrets /* name an object */'}}, tool: '(no tool name: object)', sql: 'drop table secrets /* name an object */'},
    {params: {arguments: {sql: 'truncate secrets /* no name */', params: [SECRET]}}, tool: '(no tool name: undefined)', sql: 'truncate secrets /* no name */'},
    {params: {name: 42, arguments: {sql: 'delete from secrets /* name a number */'}}, tool: '(no tool name: number)', sql: 'delete from secrets /* name a number */'},
  ]

  it('refuses each call, and nothing of it reaches the database', async () => {
    for (const r of refused) {
      const result = await call(r.tool, r.args)
      expect(result.isError, `${r.tool} ${JSON.stringify(r.args)}: ${textOf(result)}`).toBe(true)
    }
    for (const m of malformed) {
      const e = await rawCall(m.params).then(
        (r) => r,
        (err: unknown) => err,
      )
      expect(e, JSON.stringify(m.params)).toBeInstanceOf(McpError)
      expect((e as McpError).code).toBe(ErrorCode.InvalidParams)
      expect((e as McpError).message).toMatch(/is not a tool call \(params\.(name|arguments): .*\)\. Send params\.name, the tool's name as a string, and params\.arguments/)
    }
    // An ordinary call goes on as before.
    const ok = await call('query', {sql: 'select count(*) as n from secrets'})
    expect(ok.isError, textOf(ok)).toBeFalsy()
    expect((ok.structuredContent as {rows: {n: string}[]}).rows[0]!.n).toBe('1')
    const left = await withClient(db.url, (c) => c.query('select v from secrets'))
    expect(left.rows).toEqual([{v: 'keep'}])
  })

  it('records every refusal in the agent\'s signed session log, with its SQL and never its secrets', async () => {
    await mcp.close()
    const reader = new SessionReader(openBucket(bucketUrl), mkdtempSync(path.join(tmpdir(), 'dbgate-cache-')))
    const sessions = await reader.list()
    const events: AuditEvent[] = []
    let logs = ''
    for (const s of sessions) {
      const loadedSession = await reader.loadSummary(s)
      events.push(...loadedSession.events)
      logs += loadedSession.text
    }
    const refusals = events.filter((e) => e.type === 'mcp.tool_refused').map((e) => e.data as {tool: string; reason: string; message: string; arguments: {sql?: string; params?: number; given?: string}})
    expect(refusals.map((r) => [r.tool, r.reason, r.arguments.sql])).toEqual([...refused.map((r) => [r.tool, r.reason, r.sql]), ...malformed.map((m) => [m.tool, 'malformed-call', m.sql])])
    expect(refusals.slice(refused.length).map((r) => r.arguments.given)).toEqual(malformed.map((m) => m.given))
    expect(refusals.every((r) => r.message.length > 0)).toBe(true)
    expect(refusals[1]!.arguments.params).toBe(1)
    // The session they are in is the agent's, and nothing of the refused texts ran as a statement.
    const start = events.find((e) => e.type === 'session.start')!.data as {agent?: {name: string}}
    expect(start.agent?.name).toBe('sneaky-agent')
    const statements = events.filter((e) => e.type === 'statement').map((e) => (e.data as {sql: string}).sql)
    expect(statements.some((s) => /drop table|delete from|truncate/i.test(s))).toBe(false)
    expect(logs).not.toContain(SECRET)

    const auditor = {...isolatedEnv(), DBGATE_CONFIG: ''}
    const verify = await run('node', [BIN, 'sessions', 'verify', '--all', '--bucket', bucketUrl], {env: auditor})
    expect(verify.code, verify.stdout + verify.stderr).toBe(0)

    const search = await run('node', [BIN, 'sessions', 'search', 'drop table secrets', '--json', '--bucket', bucketUrl], {env: auditor})
    const matches = (JSON.parse(search.stdout) as {matches: {decision: string; sql: string; refused?: {tool: string; reason: string}}[]}).matches
    expect(matches.map((m) => [m.decision, m.refused?.tool, m.refused?.reason])).toEqual(
      expect.arrayContaining([
        ['tool_refused', 'query', 'several-statements'],
        ['tool_refused', 'drop_everything', 'unknown-tool'],
      ]),
    )
    const denied = await run('node', [BIN, 'sessions', 'search', '--decision', 'tool_refused', '--json', '--bucket', bucketUrl], {env: auditor})
    expect((JSON.parse(denied.stdout) as {matches: unknown[]}).matches).toHaveLength(refused.length + malformed.length)

    const withRefusals = sessions.find((s) => events.some((e) => e.session === s.sessionId && e.type === 'mcp.tool_refused'))!
    const show = await run('node', [BIN, 'sessions', 'show', withRefusals.sessionId, '--bucket', bucketUrl], {env: auditor})
    expect(show.stdout).toMatch(/REFUSED BY MCP TOOL "query" \(several-statements\)/)
    expect(show.stdout).toMatch(/select 1; drop table secrets/)
    expect(show.stdout).toMatch(/params: 1 value\(s\), not recorded/)
    expect(show.stdout).toMatch(/REFUSED BY MCP TOOL "\(no tool name: object\)" \(malformed-call\)/)
    expect(show.stdout).toMatch(/REFUSED BY MCP TOOL "query" \(malformed-call\): nothing reached the database\n.*given="string"/)
    const replay = await run('node', [BIN, 'sessions', 'replay', withRefusals.sessionId, '--no-wait', '--bucket', bucketUrl], {env: auditor})
    expect(replay.stdout).toMatch(/REFUSED BY MCP TOOL "explain" \(explain-options\)/)
    const list = await run('node', [BIN, 'sessions', 'list', '--agent', '--bucket', bucketUrl], {env: auditor})
    expect(list.stdout).toMatch(/\+\d+ by MCP tools/)

    const out = mkdtempSync(path.join(tmpdir(), 'dbgate-refusals-report-'))
    const report = await run('node', [BIN, 'report', '--bucket', bucketUrl, '--since', '1d', '--out', out], {env: auditor})
    expect(report.code, report.stderr).toBe(0)
    const json = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as {agentActivity: {agents: {toolRefusals: number}}}
    expect(json.agentActivity.agents.toolRefusals).toBe(refused.length + malformed.length)
    // What the tools refused is among the report's destructive attempts, refused and not run, as
    // what policy refuses is; the read-only caps past the cap and a DELETE with a WHERE are not.
    const attempts = (json as unknown as {attempts: {what: string; sql: string; decision: string; outcome: string}[]}).attempts
    expect(attempts.map((a) => [a.what, a.sql, a.decision, a.outcome])).toEqual([
      ['DROP TABLE (refused by the MCP tool "query": several-statements)', 'select $1; drop table secrets', 'tool_refused', 'rejected'],
      ['DELETE without WHERE (refused by the MCP tool "query": several-statements)', 'select $1::text; delete from secrets', 'tool_refused', 'rejected'],
      ['DELETE without WHERE (refused by the MCP tool "explain": explain-options)', 'EXPLAIN (analyze) delete from secrets', 'tool_refused', 'rejected'],
      ['TRUNCATE (refused by the MCP tool "explain": several-statements)', 'EXPLAIN select $1; truncate secrets', 'tool_refused', 'rejected'],
      ['DROP TABLE (refused by the MCP tool "drop_everything": unknown-tool)', 'drop table secrets', 'tool_refused', 'rejected'],
      ['DROP TABLE (refused by the MCP tool "query": nul-character)', 'select $1 ; drop table secrets', 'tool_refused', 'rejected'],
      ['DELETE without WHERE (refused by the MCP tool "explain": nul-character)', 'EXPLAIN select $1; delete from secrets', 'tool_refused', 'rejected'],
      ['DROP TABLE (refused by the MCP tool "(no tool name: object)": malformed-call)', 'drop table secrets', 'tool_refused', 'rejected'],
      ['TRUNCATE (refused by the MCP tool "(no tool name: undefined)": malformed-call)', 'truncate secrets', 'tool_refused', 'rejected'],
      ['DELETE without WHERE (refused by the MCP tool "(no tool name: number)": malformed-call)', 'delete from secrets', 'tool_refused', 'rejected'],
    ])
    expect((json as unknown as {summary: {destructiveAttempts: number}}).summary.destructiveAttempts).toBe(attempts.length)
    expect(await readFile(path.join(out, 'report.md'), 'utf8')).toMatch(/DROP TABLE \(refused by the MCP tool "drop\\_everything": unknown-tool\) \| `drop table secrets` \| tool\\_refused \| NOT RUN \(rejected\)/)
    expect(await readFile(path.join(out, 'report.md'), 'utf8')).toMatch(/refused by MCP tools/)
  })
})

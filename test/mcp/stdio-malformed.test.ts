import {spawn, type ChildProcessWithoutNullStreams} from 'node:child_process'
import {mkdtempSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openBucket} from '../../src/bucket/index.js'
import {SessionReader} from '../../src/audit/read.js'
import {auditorEnv, localBucketUrl} from '../audit/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {BIN, stdioAnswers, trustAgentConfig} from './helpers.js'

/**
 * Over stdio, the MCP SDK's transport dropped every line that was not one message its schema takes,
 * silently: a batch of calls, a tools/call whose params is a string or an array, an id that is an
 * object, a version other than 2.0, a line that is not JSON. The agent waited for an answer that
 * never came, and nothing was recorded of the `drop table secrets` such a call carried (the remote
 * endpoint answers them, and a tools/call that is no call at all over the same stdio is recorded).
 * Now each gets an answer saying what is wrong, each tools/call among them is recorded as refused,
 * and a batch's messages are taken one by one, as the remote endpoint takes them.
 */
describe('dbgate mcp over stdio: lines that are not one JSON-RPC message', () => {
  let db: UpstreamInfo
  let bucketUrl: string
  let child: ChildProcessWithoutNullStreams
  let out = ''

  const answers = () => stdioAnswers(out)
  const answerTo = (id: unknown) => answers().find((a) => a.id === id)
  const send = (line: string) => child.stdin.write(`${line}\n`)

  beforeAll(async () => {
    auditorEnv()
    db = await createTestDatabase('mcpstdio')
    await withClient(db.url, (c) => c.query("create table secrets (id int primary key, v text) with (autovacuum_enabled = false); insert into secrets values (1, 'keep')"))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    bucketUrl = localBucketUrl('mcpstdio')
    const dir = mkdtempSync(path.join(tmpdir(), 'dbgate-mcpstdio-'))
    const file = path.join(dir, 'dbgate.yaml')
    writeFileSync(file, [`bucket: ${bucketUrl}`, 'targets:', ...targetConfigText('app', db), ''].join('\n'))
    const agentEnv = {...env, DBGATE_CONFIG: file}
    await trustAgentConfig(agentEnv)
    child = spawn(process.execPath, [BIN, 'mcp', 'app'], {env: {...process.env, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', ...agentEnv}, stdio: ['pipe', 'pipe', 'pipe']})
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    send(JSON.stringify({jsonrpc: '2.0', id: 'init', method: 'initialize', params: {protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'raw-agent', version: '1'}}}))
    await waitFor(() => answerTo('init') !== undefined, 'dbgate mcp answered initialize', {timeoutMs: 30_000})
    send(JSON.stringify({jsonrpc: '2.0', method: 'notifications/initialized'}))
  }, 60_000)

  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL')
  })

  const call = (id: unknown, sql: string) => ({jsonrpc: '2.0', id, method: 'tools/call', params: {name: 'query', arguments: {sql}}})

  it('answers each, records each tool call among them, and runs what a batch holds one by one', async () => {
    const refused: {id: unknown; line: string; says: RegExp}[] = [
      {id: 2, line: JSON.stringify({jsonrpc: '2.0', id: 2, method: 'tools/call', params: 'drop table secrets /* params a string */'}), says: /not one JSON-RPC 2\.0 message MCP takes \(params must be an object\)/},
      {id: 3, line: JSON.stringify({jsonrpc: '2.0', id: 3, method: 'tools/call', params: ['drop table secrets /* params an array */']}), says: /params must be an object/},
      {id: 4, line: JSON.stringify({...call(4, 'drop table secrets /* version 1.0 */'), jsonrpc: '1.0'}), says: /jsonrpc must be "2\.0"/},
      {id: undefined, line: JSON.stringify(call({n: 5}, 'drop table secrets /* id an object */')), says: /id must be a string or an integer/},
      {id: 6, line: JSON.stringify({jsonrpc: '2.0', id: 6, method: 42, params: {name: 'query', arguments: {sql: 'drop table secrets /* method a number */'}}}), says: /method must be a string/},
    ]
    for (const r of refused) send(r.line)
    // Not JSON at all, and a batch: the batch's well-formed calls run as calls, its malformed one is refused.
    send('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"query","arguments":{"sql":"drop table secrets /* cut */"}}')
    send(JSON.stringify([call(8, 'select v from secrets'), call(9, 'drop table secrets /* in a batch */'), {jsonrpc: '2.0', id: 10, method: 'tools/call', params: 'truncate secrets /* batch, params a string */'}]))
    send(JSON.stringify([]))
    // An ordinary call after all of them is answered as ever.
    send(JSON.stringify(call(11, 'select count(*) as n from secrets')))

    await waitFor(() => answerTo(11) !== undefined && answerTo(10) !== undefined && answerTo(9) !== undefined && answerTo(8) !== undefined, 'the answers', {timeoutMs: 30_000})
    await waitFor(() => answers().filter((a) => a.id === undefined).length >= 3, 'the answers without an id', {timeoutMs: 30_000})
    for (const r of refused.filter((r) => r.id !== undefined)) {
      const a = answerTo(r.id)
      expect(a?.error?.code, r.line).toBe(-32600)
      expect(a?.error?.message, r.line).toMatch(r.says)
      expect(a?.error?.message).toMatch(/Send one JSON-RPC message per line, such as \{"jsonrpc": "2\.0", "id": 1, "method": "tools\/call"/)
    }
    const idless = answers().filter((a) => a.id === undefined && a.error)
    expect(idless.map((a) => a.error!.message)).toEqual(
      expect.arrayContaining([expect.stringMatching(/id must be a string or an integer/), expect.stringMatching(/a line that is not JSON/), expect.stringMatching(/an empty batch|not one JSON-RPC/)]),
    )
    expect(idless.find((a) => /not JSON/.test(a.error!.message))?.error?.code).toBe(-32700)
    // The batch: its calls ran as calls (the read answered, the DROP refused by the read-only rule).
    expect(answerTo(8)?.result?.content?.[0]?.text).toMatch(/keep/)
    expect(answerTo(9)?.result?.isError).toBe(true)
    expect(answerTo(9)?.result?.content?.[0]?.text).toMatch(/agent\.read-only/)
    expect(answerTo(10)?.error?.message).toMatch(/params must be an object/)
    expect(answerTo(11)?.result?.content?.[0]?.text).toMatch(/"n":"1"/)

    // A second request with the id of one still running: refused, so the agent's cancellation of
    // that id still reaches the first (the SDK's handler had handed the id over to the second).
    const running = () => withClient(db.url, async (c) => (await c.query(`select count(*)::int as n from pg_stat_activity where state = 'active' and query like '%dup-a%' and pid <> pg_backend_pid()`)).rows[0].n as number)
    send(JSON.stringify(call(30, 'select pg_sleep(40) /* dup-a */')))
    await waitFor(async () => (await running()) === 1, 'the first request of id 30 runs on the server')
    send(JSON.stringify(call(30, 'select 2 /* dup-b */')))
    await waitFor(() => answerTo(30) !== undefined, 'the second request of id 30 is answered')
    expect(answerTo(30)?.error?.message).toMatch(/a request with the id 30, which a request still in flight has \(give each request an id of its own\)/)
    send(JSON.stringify({jsonrpc: '2.0', method: 'notifications/cancelled', params: {requestId: 30, reason: 'the user interrupted'}}))
    await waitFor(async () => (await running()) === 0, 'the first request of id 30 stopped on the server once the agent cancelled id 30')
    // Once cancelled, the id is free again.
    send(JSON.stringify(call(30, 'select 3 as three /* dup-c */')))
    await waitFor(() => answers().some((a) => a.id === 30 && a.result), 'a later request of id 30 is answered')
    expect(answers().find((a) => a.id === 30 && a.result)?.result?.content?.[0]?.text).toMatch(/"three":"3"/)

    child.stdin.end()
    await waitFor(() => child.exitCode !== null, 'dbgate mcp has exited', {timeoutMs: 30_000})
    const reader = new SessionReader(openBucket(bucketUrl), mkdtempSync(path.join(tmpdir(), 'dbgate-cache-')))
    await waitFor(async () => (await reader.list()).length > 0, 'the recording has shipped', {timeoutMs: 30_000})
    const refusals: {tool: string; reason: string; message: string; arguments: {sql?: string; given?: string}}[] = []
    const statements: string[] = []
    for (const s of await reader.list()) {
      for (const e of (await reader.loadSummary(s)).events) {
        if (e.type === 'mcp.tool_refused') refusals.push(e.data as (typeof refusals)[number])
        if (e.type === 'statement') statements.push((e.data as {sql: string}).sql)
      }
    }
    const malformed = refusals.filter((r) => r.reason === 'malformed-call').map((r) => [r.tool, r.arguments.sql ?? r.arguments.given])
    expect(malformed.sort()).toEqual(
      [
        ['(no tool name: string)', 'string'],
        ['(no tool name: array)', 'array'],
        ['query', 'drop table secrets /* version 1.0 */'],
        ['query', 'drop table secrets /* id an object */'],
        ['(no tool name: string)', 'string'],
        ['query', 'select 2 /* dup-b */'],
      ].sort(),
    )
    expect(refusals.filter((r) => r.reason === 'malformed-call' && !/dup-b/.test(r.arguments.sql ?? '')).every((r) => /This server received a message that is not one JSON-RPC 2\.0 message MCP takes/.test(r.message))).toBe(true)
    // The batch's DROP went through the pipeline as any call does, and is recorded as the statement it refused.
    expect(statements.some((st) => st.includes('dup-b'))).toBe(false)
    expect(statements).toEqual(expect.arrayContaining(['select v from secrets', 'drop table secrets /* in a batch */', 'select count(*) as n from secrets']))
  }, 120_000)
})

describe('the agent stdio transport', () => {
  it('reads messages split across chunks and CRLF lines, and answers a line past the limit, then goes on', async () => {
    const {PassThrough} = await import('node:stream')
    const {AgentStdioTransport, MAX_LINE_BYTES} = await import('../../src/mcp/stdio.js')
    const input = new PassThrough()
    const output = new PassThrough()
    let written = ''
    output.setEncoding('utf8').on('data', (d: string) => (written += d))
    const t = new AgentStdioTransport(input, output)
    const got: unknown[] = []
    const refused: string[] = []
    t.onmessage = (m) => got.push(m)
    t.onrefused = (_v, what) => void refused.push(what)
    await t.start()
    const ping = JSON.stringify({jsonrpc: '2.0', id: 1, method: 'ping'})
    input.write(ping.slice(0, 10))
    input.write(`${ping.slice(10)}\r\n`)
    // One line past the limit, in pieces; the line after it is read as ever.
    const big = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"query","arguments":{"sql":"select '${'x'.repeat(MAX_LINE_BYTES)}'"}}}`
    for (let i = 0; i < big.length; i += 1024 * 1024) input.write(big.slice(i, i + 1024 * 1024))
    input.write(`\n${JSON.stringify({jsonrpc: '2.0', id: 3, method: 'ping'})}\n`)
    await waitFor(() => got.length === 2 && written.length > 0, 'both pings and the refusal')
    expect(got).toEqual([{jsonrpc: '2.0', id: 1, method: 'ping'}, {jsonrpc: '2.0', id: 3, method: 'ping'}])
    expect(refused).toEqual([`a line over ${MAX_LINE_BYTES} bytes, the most one may hold (nothing of it was read)`])
    expect(JSON.parse(written.trim())).toMatchObject({jsonrpc: '2.0', error: {code: -32600, message: expect.stringMatching(/a line over \d+ bytes/)}})
    await t.close()
  })
})

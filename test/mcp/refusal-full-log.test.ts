import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import {InMemoryTransport} from '@modelcontextprotocol/sdk/inMemory.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {z} from 'zod'
import {openBucket} from '../../src/bucket/index.js'
import {SessionReader} from '../../src/audit/read.js'
import {openLocalEndpoint} from '../../src/mcp/local-endpoint.js'
import {createDbgateMcp, type DbgateMcp} from '../../src/mcp/server.js'
import {auditorEnv, localBucketUrl} from '../audit/helpers.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

/**
 * A session's log takes at most 128 MiB; the refusal that fills it ends that session. The MCP server
 * recorded every later refusal in the same session (it was still among its idle ones until the
 * socket's close was read), where the tunnel refused it: an agent that first padded one log, here
 * with refusals of 64 KiB of SQL each, then tried `select 1; drop table secrets`, an unknown tool or
 * a malformed call, left no trace of them. Each refusal now goes to another session, a fresh one if
 * need be, and every one of them is in some log of the agent.
 */
describe('MCP: refusals once a session log is full', () => {
  let db: UpstreamInfo
  let bucketUrl: string
  let mcp: DbgateMcp
  let client: Client
  let open: () => Promise<{mcp: DbgateMcp; client: Client}>

  beforeAll(async () => {
    auditorEnv()
    db = await createTestDatabase('mcpfulllog')
    await withClient(db.url, (c) => c.query("create table secrets (id int primary key, v text) with (autovacuum_enabled = false); insert into secrets values (1, 'keep')"))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    bucketUrl = localBucketUrl('mcpfulllog')
    const loaded = loadedConfig(db, '', `bucket: ${bucketUrl}`, env)
    open = async () => {
      const server = createDbgateMcp({target: loaded.config.targets.app!, version: 'test', openEndpoint: (agent) => openLocalEndpoint({loaded, targetName: 'app', agent, env})})
      const [serverSide, clientSide] = InMemoryTransport.createLinkedPair()
      await server.server.connect(serverSide)
      const agent = new Client({name: 'padding-agent', version: '1.0'})
      await agent.connect(clientSide)
      return {mcp: server, client: agent}
    }
    ;({mcp, client} = await open())
  }, 60_000)

  afterAll(async () => {
    await mcp?.close()
  })

  /** Each kind of refusal, its SQL tagged so that the recording shows which call it was. */
  const attempts = (tag: string): {params: unknown; reason: string}[] => [
    {params: {name: 'query', arguments: {sql: `select 1; drop table secrets /* ${tag} */`}}, reason: 'several-statements'},
    {params: {name: 'explain', arguments: {sql: `(analyze) delete from secrets /* ${tag} */`}}, reason: 'explain-options'},
    {params: {name: 'drop_everything', arguments: {sql: `drop table secrets /* ${tag} */`}}, reason: 'unknown-tool'},
    {params: {name: 'query', arguments: {sql: `select * from secrets /* ${tag} */`, maxRows: 10_000_000}}, reason: 'invalid-arguments'},
    {params: {name: 'query', arguments: {sql: `select 1\u0000; truncate secrets /* ${tag} */`}}, reason: 'nul-character'},
    {params: {name: 42, arguments: {sql: `delete from secrets /* ${tag} */`}}, reason: 'malformed-call'},
  ]
  const padding = `select 1; drop table secrets -- ${'x'.repeat(70 * 1024)}`

  const sender = (c: Client) => (params: unknown) => c.request({method: 'tools/call', params: params as {name: string}}, z.unknown(), {timeout: 60_000}).catch((e: unknown) => e)

  /** The tagged refusals in the agent's session logs, the untagged ones counted, and why each session ended. */
  const readLogs = async () => {
    const reader = new SessionReader(openBucket(bucketUrl), mkdtempSync(path.join(tmpdir(), 'dbgate-cache-')))
    const recorded: {tag: string; reason: string}[] = []
    let padded = 0
    const ended: string[] = []
    for (const s of await reader.list()) {
      const session = await reader.loadSummary(s)
      for (const e of session.events) {
        if (e.type === 'session.end') ended.push((e.data as {reason: string}).reason)
        if (e.type !== 'mcp.tool_refused') continue
        const data = e.data as {reason: string; arguments: {sql?: string}}
        const tag = /\/\* ((?:round|burst) \d+) \*\//.exec(data.arguments.sql ?? '')?.[1]
        if (tag) recorded.push({tag, reason: data.reason})
        else padded++
      }
    }
    return {recorded, padded, ended}
  }
  const key = (r: {tag: string; reason: string}) => `${r.tag} ${r.reason}`

  it('records every refusal of a burst sent before any database session opened', async () => {
    // The agent's first calls, all at once: none finds a session to be recorded in.
    const first = await open()
    const send = sender(first.client)
    const sent: {tag: string; reason: string}[] = []
    const calls: Promise<unknown>[] = []
    for (let burst = 0; burst < 3; burst++) {
      for (const a of attempts(`burst ${burst}`)) {
        sent.push({tag: `burst ${burst}`, reason: a.reason})
        calls.push(send(a.params))
      }
    }
    await Promise.all(calls)
    await first.mcp.close()
    const {recorded} = await readLogs()
    expect(recorded.map(key).sort()).toEqual(sent.map(key).sort())
  }, 120_000)

  it('answers each refusal as such when the database cannot be reached, and says it went unrecorded', async () => {
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = loadedConfig(db, 'port: 1', `bucket: ${bucketUrl}`, env)
    const warnings: string[] = []
    const down = createDbgateMcp({target: loaded.config.targets.app!, version: 'test', log: (level, m) => level === 'warn' && warnings.push(m), openEndpoint: (agent) => openLocalEndpoint({loaded, targetName: 'app', agent, env})})
    const [serverSide, clientSide] = InMemoryTransport.createLinkedPair()
    await down.server.connect(serverSide)
    const agent = new Client({name: 'padding-agent', version: '1.0'})
    await agent.connect(clientSide)
    try {
      const answers = await Promise.all(attempts('down 0').map((a) => sender(agent)(a.params)))
      const texts = answers.map((a) => (a instanceof Error ? a.message : JSON.stringify(a)))
      // What the agent is told is the refusal itself, not the unreachable database.
      expect(texts[0]).toMatch(/query takes one statement per call; this text holds 2/)
      expect(texts[1]).toMatch(/would make EXPLAIN run the statement/)
      expect(texts[2]).toMatch(/Tool drop_everything not found/)
      expect(texts[3]).toMatch(/maxRows/)
      expect(texts[4]).toMatch(/NUL character \(U\+0000\) at character 9/)
      expect(texts[5]).toMatch(/is not a tool call/)
      for (const t of texts) expect(t).not.toMatch(/cannot be reached/)
      // Nowhere to record them: the server says so, for each, with why.
      for (const reason of attempts('').map((a) => a.reason)) expect(warnings.some((w) => w.includes(`(${reason}) was not recorded`) && /cannot be reached|ECONNREFUSED|connect/.test(w)), `${reason}: ${warnings.join('\n')}`).toBe(true)
      const r = (await agent.callTool({name: 'query', arguments: {sql: 'select 1'}})) as {isError?: boolean; content: {text: string}[]}
      expect(r.isError).toBe(true)
      expect(r.content[0]!.text).toMatch(/cannot be reached/)
    } finally {
      await down.close()
    }
  }, 120_000)

  it('records every refusal, the ones after the log filled up included', async () => {
    const send = sender(client)
    const sent: {tag: string; reason: string}[] = []
    // 2,200 refusals of 64 KiB kept are past the 128 MiB a log takes; each round sent at once, as an
    // agent's parallel calls, with every kind of refusal among the padding.
    for (let round = 0; round < 80; round++) {
      const calls: Promise<unknown>[] = []
      for (let i = 0; i < 28; i++) calls.push(send({name: 'query', arguments: {sql: padding}}))
      for (const a of attempts(`round ${round}`)) {
        sent.push({tag: `round ${round}`, reason: a.reason})
        calls.push(send(a.params))
      }
      await Promise.all(calls)
    }
    // Ordinary work goes on.
    const ok = (await client.callTool({name: 'query', arguments: {sql: 'select v from secrets'}})) as {isError?: boolean; structuredContent?: {rows: {v: string}[]}}
    expect(ok.isError).toBeFalsy()
    expect(ok.structuredContent?.rows).toEqual([{v: 'keep'}])
    await mcp.close()

    const {recorded, padded, ended} = await readLogs()
    // The padding did fill a log, which ended its session as the tunnel ends a full one.
    expect(ended.some((r) => /audit log has reached the most dbgate records of one session/.test(r))).toBe(true)
    expect(padded).toBe(80 * 28)
    expect(recorded.filter((r) => r.tag.startsWith('round')).map(key).sort()).toEqual(sent.map(key).sort())
  }, 600_000)
})

import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import {InMemoryTransport} from '@modelcontextprotocol/sdk/inMemory.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {openLocalEndpoint} from '../../src/mcp/local-endpoint.js'
import {tempBucketUrl} from '../approvals/helpers.js'
import {recordedStatements} from '../audit/helpers.js'
import {createDbgateMcp, type DbgateMcp} from '../../src/mcp/server.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {textOf, tunnelEndpoint} from './helpers.js'

/**
 * A statement the agent gave up on stops on the server. The tools ignored the MCP cancellation
 * (`notifications/cancelled`, what a client sends when its user interrupts the agent), so the
 * statement ran on to the target's timeout (here a minute), holding its locks and a database
 * session; and closing the server (an HTTP session ended, its sign-in expired) only ended the
 * agent's sessions, which PostgreSQL notices only when it next writes to the client, so the
 * statements ran on after the session that ran them had ended. Each is now cancelled on the server.
 */
describe('MCP: a cancelled call, or a closed server, leaves no statement running', () => {
  let db: UpstreamInfo
  let loaded: ReturnType<typeof loadedConfig>
  let env: NodeJS.ProcessEnv
  let bucketUrl: string
  const servers: DbgateMcp[] = []

  /** The MCP server on a tunnel over loopback TCP, or on the private unix socket `dbgate mcp` uses. */
  const open = async (via: 'tcp' | 'unix' = 'tcp') => {
    const openEndpoint = via === 'tcp' ? tunnelEndpoint(loaded, env) : (agent: Parameters<typeof openLocalEndpoint>[0]['agent']) => openLocalEndpoint({loaded, targetName: 'app', agent, env})
    const mcp = createDbgateMcp({target: loaded.config.targets.app!, version: 'test', openEndpoint})
    servers.push(mcp)
    const [serverSide, clientSide] = InMemoryTransport.createLinkedPair()
    await mcp.server.connect(serverSide)
    const client = new Client({name: 'cancel-test', version: '1'})
    await client.connect(clientSide)
    const call = (name: string, args: Record<string, unknown>, signal?: AbortSignal) => client.callTool({name, arguments: args}, undefined, {signal, timeout: 120_000}) as Promise<CallToolResult>
    return {mcp, call}
  }

  /** The agent's statements the server is running (the tag keeps the probe from counting itself). */
  const running = (tag: string) =>
    withClient(db.url, async (c) => (await c.query(`select count(*)::int as n from pg_stat_activity where state = 'active' and query like $1 and pid <> pg_backend_pid()`, [`%${tag}%`])).rows[0].n as number)

  beforeAll(async () => {
    db = await createTestDatabase('mcpcancel')
    await withClient(db.url, (c) => c.query("create table jobs (id int primary key, state text) with (autovacuum_enabled = false); insert into jobs values (1, 'new'), (2, 'new')"))
    env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    bucketUrl = tempBucketUrl()
    loaded = loadedConfig(db, 'mcp:\n  mode: read-write\n  timeout: 60s', `bucket: ${bucketUrl}`, env)
  })

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()))
  })


  it.each([
    ['a sleep', 'query', {sql: 'select pg_sleep(45) /* tag-sleep */'}, 'tag-sleep'],
    ['a long read', 'query', {sql: 'select count(*) /* tag-read */ from generate_series(1, 100000) a, generate_series(1, 100000) b'}, 'tag-read'],
    ['a plan with analyze', 'explain', {sql: 'select count(*) /* tag-plan */ from generate_series(1, 100000) a, generate_series(1, 100000) b', analyze: true}, 'tag-plan'],
    ['a write holding a row lock', 'query', {sql: "update jobs set state = 'taken' /* tag-lock */ where id = 1 and pg_sleep(45) is not null"}, 'tag-lock'],
  ])('stops %s the agent cancelled, and the next call runs', async (_what, tool, args, tag) => {
    const {call} = await open()
    expect((await call('query', {sql: 'select 1'})).isError).toBeFalsy()
    const abort = new AbortController()
    const cancelled = call(tool, args, abort.signal).then(
      () => 'answered',
      (e: Error) => e.message,
    )
    await waitFor(async () => (await running(tag)) === 1, `${tag} runs on the server`)
    abort.abort()
    expect(await cancelled).toMatch(/abort/i)
    await waitFor(async () => (await running(tag)) === 0, `${tag} stopped on the server after the agent cancelled it`)
    // Nothing holds the row: another session updates it at once.
    await withClient(db.url, async (c) => {
      await c.query("set lock_timeout = '2s'")
      await c.query("update jobs set state = 'new' where id = 1")
    })
    const next = await call('query', {sql: 'select count(*) from jobs'})
    expect(next.isError, textOf(next)).toBeFalsy()
  })

  // The catalog tools read through the same sessions: a read waiting on a catalog another session
  // locked (a migration's DDL) waited on after the agent gave up, holding a database session.
  it.each([
    ['describe_table', {table: 'jobs'}, 'pg_catalog.pg_am am', 'pg_am'],
    ['list_tables', {}, 'pg_catalog.pg_attribute a on a.attrelid', 'pg_attribute'],
  ])('stops the catalog read of %s the agent cancelled, while the catalog stays locked', async (tool, args, tag, catalog) => {
    const {call} = await open()
    expect((await call(tool, args)).isError).toBeFalsy()
    // Connections made while the catalog is locked could not sign in: both are made before.
    const probe = new pg.Client({connectionString: db.url})
    const holder = new pg.Client({connectionString: db.url})
    await Promise.all([probe.connect(), holder.connect()])
    const waiting = async () => (await probe.query(`select count(*)::int as n from pg_stat_activity where state = 'active' and query like $1 and pid <> pg_backend_pid()`, [`%${tag}%`])).rows[0].n as number
    try {
      expect(await waiting()).toBe(0)
      await holder.query('begin')
      await holder.query(`lock table pg_catalog.${catalog} in access exclusive mode`)
      const abort = new AbortController()
      const cancelled = call(tool, args, abort.signal).then(
        () => 'answered',
        (e: Error) => e.message,
      )
      await waitFor(async () => (await waiting()) === 1, `the catalog read of ${tool} waits on the server`)
      abort.abort()
      expect(await cancelled).toMatch(/abort/i)
      await waitFor(async () => (await waiting()) === 0, `the catalog read of ${tool} stopped on the server after the agent cancelled it`)
      await holder.query('rollback')
    } finally {
      await Promise.all([probe.end(), holder.end()])
    }
    expect((await call(tool, args)).isError).toBeFalsy()
  })

  it('stops a statement the agent cancelled on the unix socket of dbgate mcp, and when that server closes', async () => {
    const {mcp, call} = await open('unix')
    const abort = new AbortController()
    const cancelled = call('query', {sql: 'select pg_sleep(45) /* tag-unix-a */'}, abort.signal).catch((e: Error) => e.message)
    await waitFor(async () => (await running('tag-unix-a')) === 1, 'the statement runs on the server')
    abort.abort()
    expect(await cancelled).toMatch(/abort/i)
    await waitFor(async () => (await running('tag-unix-a')) === 0, 'the cancelled statement stopped on the server')
    const pending = call('query', {sql: 'select pg_sleep(45) /* tag-unix-b */'}).catch((e: Error) => e.message)
    await waitFor(async () => (await running('tag-unix-b')) === 1, 'the next statement runs on the server')
    await mcp.close()
    await waitFor(async () => (await running('tag-unix-b')) === 0, 'the statement stopped on the server after the MCP server closed')
    void pending
  })

  it.each([
    ['a sleep', 'query', {sql: 'select pg_sleep(45) /* tag-close-sleep */'}, 'tag-close-sleep'],
    ['a write holding a row lock', 'query', {sql: "update jobs set state = 'held' /* tag-close-lock */ where id = 2 and pg_sleep(45) is not null"}, 'tag-close-lock'],
    ['a plan with analyze', 'explain', {sql: 'select count(*) /* tag-close-plan */ from generate_series(1, 100000) a, generate_series(1, 100000) b', analyze: true}, 'tag-close-plan'],
  ])('stops %s when the server closes under it', async (_what, tool, args, tag) => {
    const {mcp, call} = await open()
    const pending = call(tool, args).catch((e: Error) => e.message)
    await waitFor(async () => (await running(tag)) === 1, `${tag} runs on the server`)
    await mcp.close()
    await waitFor(async () => (await running(tag)) === 0, `${tag} stopped on the server after the MCP server closed`)
    void pending
    const state = await withClient(db.url, (c) => c.query('select state from jobs where id = 2'))
    expect(state.rows[0].state).toBe('new')
  })

  it('records the statements it stopped as cancelled on the server', async () => {
    await Promise.all(servers.map((s) => s.close()))
    const recorded: StatementData[] = await recordedStatements(bucketUrl)
    for (const tag of ['tag-sleep', 'tag-lock', 'tag-close-sleep', 'tag-unix-a', 'tag-unix-b']) {
      const st = recorded.find((r) => r.sql.includes(tag))
      expect(st, tag).toBeDefined()
      expect(st!.outcome, tag).not.toBe('ok')
      expect(JSON.stringify(st), tag).toMatch(/57014|cancel/)
    }
  })
})

import {Client} from '@modelcontextprotocol/sdk/client/index.js'
import {InMemoryTransport} from '@modelcontextprotocol/sdk/inMemory.js'
import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openTunnel, type OpenedTunnel} from '../../src/connect/open.js'
import {createDbgateMcp, type DbgateMcp} from '../../src/mcp/server.js'
import {tempBucketUrl} from '../approvals/helpers.js'
import {recordedStatements} from '../audit/helpers.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {textOf} from './helpers.js'

/**
 * A call the agent cancelled while its database session was still being opened ran its statement
 * anyway. The runner listened for the cancellation only once it had a session, and opening one
 * waits for a slot when the target's `tunnel.maxUpstreamSessions` are all in use: the agent's user
 * interrupted an UPDATE, and seconds later, when a slot freed, the UPDATE ran on the database with
 * no one waiting for its answer. It is now never sent.
 */
describe('MCP: a call cancelled while it waits for a database session never runs', () => {
  let db: UpstreamInfo
  let loaded: ReturnType<typeof loadedConfig>
  let env: NodeJS.ProcessEnv
  let bucketUrl: string
  const servers: DbgateMcp[] = []

  /** An MCP server on its own tunnel, whose target allows one upstream session at a time. */
  const open = async () => {
    let tunnel: OpenedTunnel | undefined
    const mcp = createDbgateMcp({
      target: loaded.config.targets.app!,
      version: 'test',
      openEndpoint: async (agent) => {
        const opened = await openTunnel({loaded, targetName: 'app', env, agent})
        tunnel = opened
        const {info} = opened
        return {
          clientConfig: () => ({host: info.host, port: info.port, user: info.user, password: info.password, database: info.database, ssl: false}),
          identity: () => undefined,
          closed: opened.closed,
          close: () => opened.close(500),
        }
      },
    })
    servers.push(mcp)
    const [serverSide, clientSide] = InMemoryTransport.createLinkedPair()
    await mcp.server.connect(serverSide)
    const client = new Client({name: 'cancel-queued', version: '1'})
    await client.connect(clientSide)
    const call = (name: string, args: Record<string, unknown>, signal?: AbortSignal) => client.callTool({name, arguments: args}, undefined, {signal, timeout: 120_000}) as Promise<CallToolResult>
    await waitFor(async () => tunnel !== undefined, 'the tunnel opened after the handshake')
    return {call, tunnel: tunnel!}
  }

  const jobs = () => withClient(db.url, async (c) => (await c.query('select id, state from jobs order by id')).rows as {id: number; state: string}[])

  beforeAll(async () => {
    db = await createTestDatabase('mcpcancelq')
    await withClient(db.url, (c) => c.query("create table jobs (id int primary key, state text) with (autovacuum_enabled = false); insert into jobs values (1, 'new'), (2, 'new'), (3, 'new')"))
    env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    bucketUrl = tempBucketUrl()
    loaded = loadedConfig(db, 'mcp:\n  mode: read-write\n  timeout: 60s\ntunnel:\n  maxUpstreamSessions: 1\n  upstreamQueueTimeout: 3s', `bucket: ${bucketUrl}`, env)
  })

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()))
  })

  it.each([
    ['an update', "update jobs set state = 'ran after cancel' where id = 1"],
    ['an insert', "insert into jobs values (4, 'ran after cancel')"],
    ['a delete', 'delete from jobs where id = 2 /* ran after cancel */'],
    ['an explain analyze of a read', "explain analyze select * from jobs /* ran after cancel */"],
  ])('does not send %s cancelled while every upstream slot was taken, once one frees', async (_what, sql) => {
    await withClient(db.url, (c) => c.query("delete from jobs; insert into jobs values (1, 'new'), (2, 'new'), (3, 'new')"))
    const {call, tunnel} = await open()
    // The one slot, taken by another client of the same tunnel (another task, psql beside the agent).
    const other = new pg.Client({host: tunnel.info.host, port: tunnel.info.port, user: tunnel.info.user, password: tunnel.info.password, database: tunnel.info.database})
    await other.connect()
    const abort = new AbortController()
    const cancelled = call('query', {sql}, abort.signal).then(
      () => 'answered',
      (e: Error) => e.message,
    )
    await waitFor(async () => tunnel.tunnel.upstreamSessions.queued >= 1, 'the call waits for an upstream slot')
    abort.abort()
    expect(await cancelled).toMatch(/abort/i)
    // The slot frees: the agent's session opens, and what it was opened for must not run. The next
    // call runs on that session once the runner has it back (before that, it asks for another, which
    // waits for the one slot and is refused after upstreamQueueTimeout: then it is sent again).
    await other.end()
    let next: CallToolResult | undefined
    for (let attempt = 0; attempt < 20 && !(next && !next.isError); attempt++) next = await call('query', {sql: 'select count(*) as n from jobs'})
    expect(next!.isError, textOf(next!)).toBeFalsy()
    expect(await jobs()).toEqual([
      {id: 1, state: 'new'},
      {id: 2, state: 'new'},
      {id: 3, state: 'new'},
    ])
  })

  it('records none of them as run', async () => {
    await Promise.all(servers.map((s) => s.close()))
    const recorded = await recordedStatements(bucketUrl)
    expect(recorded.filter((r) => r.sql.includes('ran after cancel'))).toEqual([])
  })
})

import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import pg from 'pg'
import {afterAll, beforeAll} from 'vitest'
import type {DbgateMcp} from '../../src/mcp/server.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {inProcessAgent, tunnelEndpoint} from './helpers.js'

export interface ExplainAgent {
  /** Calls the explain tool as an agent does. */
  explain(sql: string, analyze?: boolean): Promise<CallToolResult>
  /** The rows of `notes` and the last value of `notes_id_seq`, read around the tunnel. */
  state(): Promise<{rows: unknown[]; seq: number}>
  /** What a session listening on channel `jobs` has heard, once a round trip has let any notification arrive. */
  heard(): Promise<string[]>
  /** Runs `fn` on a connection straight to the database. */
  direct<T>(fn: (c: pg.Client) => Promise<T>): Promise<T>
}

/**
 * An in-process MCP server in read-write mode (where policy itself lets the agent write, so only
 * the explain tool's promise stands between a text and its run) in front of a fresh database that
 * `schema` sets up, which must include `notes (id serial, body text)`.
 */
export function explainAgent(name: string, schema: string): ExplainAgent {
  let db: UpstreamInfo | undefined
  let mcp: DbgateMcp | undefined
  let listener: pg.Client | undefined
  let call: ((tool: string, args: Record<string, unknown>) => Promise<CallToolResult>) | undefined
  const heard: string[] = []
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db!.url, fn)

  beforeAll(async () => {
    db = await createTestDatabase(name)
    await direct((c) => c.query(schema))
    listener = new pg.Client({connectionString: db.url})
    await listener.connect()
    listener.on('notification', (n) => heard.push(n.payload ?? ''))
    await listener.query('listen jobs')
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = loadedConfig(db, 'mcp:\n  mode: read-write', '', env)
    const agent = await inProcessAgent(loaded.config.targets.app!, tunnelEndpoint(loaded, env), `${name}-test`)
    mcp = agent.mcp
    call = agent.call
  })

  afterAll(async () => {
    await mcp?.close()
    await listener?.end()
  })

  return {
    explain: (sql, analyze) => call!('explain', {sql, ...(analyze === undefined ? {} : {analyze})}),
    state: () =>
      direct(async (c) => ({
        rows: (await c.query('select id, body from notes order by id')).rows,
        seq: (await c.query('select last_value::int as v from notes_id_seq')).rows[0].v as number,
      })),
    async heard() {
      await listener!.query('select 1')
      return [...heard]
    },
    direct,
  }
}

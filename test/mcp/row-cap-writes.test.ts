import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {readsIncrementally} from '../../src/mcp/runner.js'
import {loadParser} from '../../src/sql/parser.js'
import {tempBucketUrl} from '../approvals/helpers.js'
import {recordedStatements} from '../audit/helpers.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {inProcessAgent, textOf, tunnelEndpoint} from './helpers.js'

/**
 * The row cap (`maxRows`) ends a result at the server by closing its portal early. PostgreSQL runs a
 * write with RETURNING, a SELECT with a data-modifying WITH, or an EXECUTE of either whole at the
 * first Execute, whatever the row limit: closed early, its rows are all changed, but the command tag
 * that counts them is never sent. The agent was told `command: null, rowCount: 1` and the recording
 * said the DELETE touched 2 rows while it deleted hundreds.
 */
describe('MCP row cap on statements that run whole', () => {
  let db: UpstreamInfo
  let bucketUrl: string
  let recorded: StatementData[] = []
  const results = new Map<string, CallToolResult>()
  const count = (sql: string) => withClient(db.url, async (c) => Number((await c.query(sql)).rows[0].n))

  const WRITES: {sql: string; maxRows: number; command: string; changed: number}[] = [
    {sql: 'delete from jobs where id > 400 returning id', maxRows: 1, command: 'DELETE', changed: 100},
    {sql: 'update jobs set done = true where id <= 150 returning id, done', maxRows: 2, command: 'UPDATE', changed: 150},
    {sql: 'insert into jobs (id) select g from generate_series(1001, 1120) g returning id', maxRows: 1, command: 'INSERT', changed: 120},
    {sql: 'with gone as (delete from jobs where id between 300 and 379 returning id) select id from gone', maxRows: 1, command: 'SELECT', changed: 80},
    {sql: 'execute tidy', maxRows: 1, command: 'UPDATE', changed: 50},
  ]

  beforeAll(async () => {
    await loadParser()
    db = await createTestDatabase('mcpcap')
    await withClient(db.url, (c) => c.query('create table jobs (id int primary key, done bool not null default false); insert into jobs (id) select g from generate_series(1, 500) g'))
    bucketUrl = tempBucketUrl()
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = loadedConfig(db, 'mcp:\n  mode: read-write', `bucket: ${bucketUrl}`, env)
    const agent = await inProcessAgent(loaded.config.targets.app!, tunnelEndpoint(loaded, env), 'row-cap-test')
    const prepared = await agent.call('query', {sql: 'prepare tidy as update jobs set done = true where id between 151 and 200 returning id'})
    expect(prepared.isError, textOf(prepared)).toBeFalsy()
    for (const w of WRITES) results.set(w.sql, await agent.call('query', {sql: w.sql, maxRows: w.maxRows}))
    results.set('select id from jobs', await agent.call('query', {sql: 'select id from jobs', maxRows: 1}))
    await agent.mcp.close()
    recorded = await recordedStatements(bucketUrl)
  }, 120_000)

  afterAll(async () => {})

  it('changed what the statements say (the premise)', async () => {
    expect(await count('select count(*) as n from jobs where id > 400 and id <= 1000')).toBe(0)
    expect(await count('select count(*) as n from jobs where done')).toBe(200)
    expect(await count('select count(*) as n from jobs where id > 1000')).toBe(120)
    expect(await count('select count(*) as n from jobs where id between 300 and 379')).toBe(0)
  })

  it.each(WRITES)('tells the agent and the recording how many rows $sql changed', ({sql, maxRows, command, changed}) => {
    const r = results.get(sql)!
    expect(r.isError, textOf(r)).toBeFalsy()
    expect(r.structuredContent).toMatchObject({command, rowCount: changed, truncated: true, truncatedBy: 'maxRows'})
    expect((r.structuredContent as {rows: unknown[]}).rows).toHaveLength(maxRows)
    const rec = recorded.filter((s) => s.sql === sql)
    expect(rec).toHaveLength(1)
    expect(rec[0]).toMatchObject({rows: changed, commandTags: [expect.stringMatching(new RegExp(`^${command} .*${changed}$`))], outcome: 'ok'})
  })

  it('still ends a plain read at the cap, at the server', () => {
    const r = results.get('select id from jobs')!
    expect(r.structuredContent).toMatchObject({command: null, truncated: true})
    const rec = recorded.filter((s) => s.sql === 'select id from jobs')
    expect(rec).toHaveLength(1)
    expect(rec[0]!.rows).toBeLessThanOrEqual(2)
    expect(rec[0]!.commandTags).toEqual([])
  })

  it('reads only a lone SELECT that writes nothing as one the server computes as it is fetched', () => {
    for (const sql of ['select 1', 'values (1), (2)', 'table jobs', 'select * from jobs union all select * from jobs for update', 'with x as (select 1) select * from x']) expect(readsIncrementally(sql), sql).toBe(true)
    for (const sql of [...WRITES.map((w) => w.sql), 'select * into t2 from jobs', 'explain analyze select 1', 'show all', 'fetch all from c', 'with a as (insert into jobs (id) values (9999) returning id) select * from a', 'select 1; select 2', 'select from where']) expect(readsIncrementally(sql), sql).toBe(false)
  })
})

import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {DbgateMcp} from '../../src/mcp/server.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {inProcessAgent, textOf, tunnelEndpoint} from './helpers.js'

/**
 * A read-only agent's SELECT may call nothing whose effect reaches past its own result: built-ins
 * that notify other sessions' listeners, take advisory locks other sessions wait on (and that the
 * agent's kept sessions would hold between calls), or advance a sequence. PostgreSQL's own
 * read-only transaction allows the first two, so the guardrails are what must stop them.
 */
describe('read-only agents: built-ins with effects beyond reading', () => {
  let db: UpstreamInfo
  let mcp: DbgateMcp
  let call: (sql: string) => Promise<CallToolResult>
  let listener: pg.Client
  const heard: string[] = []

  beforeAll(async () => {
    db = await createTestDatabase('mcpro')
    await withClient(db.url, (c) =>
      c.query(`create table notes (id serial primary key, body text); insert into notes (body) values ('a'), ('b');
        create view jobs_kick as select 1 as kicked from (select pg_notify('jobs', 'from-a-view')) s;
        create view held as select 1 as held from (select pg_advisory_lock(8)) s;`),
    )
    listener = new pg.Client({connectionString: db.url})
    await listener.connect()
    listener.on('notification', (n) => heard.push(`${n.channel}:${n.payload}`))
    await listener.query('listen jobs')
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = loadedConfig(db, '', '', env)
    const agent = await inProcessAgent(loaded.config.targets.app!, tunnelEndpoint(loaded, env), 'ro-test')
    mcp = agent.mcp
    call = (sql) => agent.call('query', {sql})
  })

  afterAll(async () => {
    await mcp?.close()
    await listener?.end()
  })

  const ATTEMPTS = [
    "select pg_notify('jobs', 'run-the-purge')",
    "select id, pg_notify('jobs', body) from notes",
    "select * from (select pg_notify('jobs', 'nested')) s",
    'select pg_advisory_lock(7)',
    'select pg_advisory_lock_shared(7)',
    'select pg_try_advisory_lock(7)',
    'select id from notes where pg_try_advisory_lock(id::bigint)',
    'select pg_advisory_lock(1, 2)',
    "select nextval('notes_id_seq')",
    // Through a view: only the target's catalog shows what it calls.
    'select * from jobs_kick',
    'select n.*, k.kicked from notes n, jobs_kick k',
    "select set_config('statement_timeout', '5000', false), * from jobs_kick",
    'select * from held',
  ]

  it.each(ATTEMPTS)('refuses %s by agent.read-only, and nothing reaches other sessions', async (sql) => {
    const r = await call(sql)
    expect(r.isError, textOf(r)).toBe(true)
    expect(textOf(r)).toMatch(/denied by rule agent\.read-only/)
    // Nothing was delivered to the listener, and no other session holds an advisory lock.
    await listener.query('select 1')
    expect(heard).toEqual([])
    const held = await withClient(db.url, (c) => c.query(`select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`))
    expect(held.rows[0].n).toBe(0)
    const seq = await withClient(db.url, (c) => c.query(`select last_value::int as v from notes_id_seq`))
    expect(seq.rows[0].v).toBe(2)
  })

  it.each([
    ['begin', 'select * from notes'],
    ['begin isolation level serializable', 'select count(*) from notes'],
    ['start transaction read only', 'select * from notes where id = 1'],
    ['begin', 'select 1/0'],
  ])('leaves no transaction open between calls (%s, then %s): nothing holds locks or a snapshot while the agent idles', async (first, second) => {
    const opened = await call(first)
    expect(opened.isError, textOf(opened)).toBeFalsy()
    expect(opened.structuredContent).toMatchObject({transactionRolledBack: true})
    expect(textOf(opened)).toMatch(/rolled back: each call runs on its own/)
    await call(second)
    const idle = await withClient(db.url, (c) => c.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'`))
    expect(idle.rows[0].n).toBe(0)
    // A migration's ALTER TABLE is not left waiting behind the agent.
    await withClient(db.url, async (c) => {
      await c.query(`set lock_timeout = '1s'`)
      await c.query('alter table notes add column if not exists extra int')
      await c.query('alter table notes drop column extra')
    })
  })

  // A cursor declared WITH HOLD outlives its transaction, so it would outlive the call: the server
  // keeps its whole result (in temporary files past work_mem) for the session's life, whatever the
  // caps let the agent read, and the next call finds it. It is closed when the call ends, as an
  // open transaction is rolled back.
  it.each([
    ['declare c cursor with hold for select * from notes', 'fetch all from c'],
    ['DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT id FROM notes ORDER BY id', 'fetch last from c'],
    ['declare c binary no scroll cursor with hold for values (1), (2)', 'fetch next from c'],
    ['/* page */ declare "C" insensitive cursor with hold for table notes', 'move forward all in "C"'],
    ["declare c cursor with hold for select g, repeat('x', 200) from generate_series(1, 200000) g", 'fetch 1 from c'],
  ])('closes the cursor %s declares when the call ends (then %s finds none), and the server keeps nothing of it', async (declare, fetch) => {
    const declared = await call(declare)
    expect(declared.isError, textOf(declared)).toBeFalsy()
    expect(declared.structuredContent).toMatchObject({cursorClosed: true})
    expect(textOf(declared)).toMatch(/cursor it declared was closed/)
    const later = await call(fetch)
    expect(later.isError, textOf(later)).toBe(true)
    expect(textOf(later)).toMatch(/34000|does not exist/)
    // Temporary files are the server's, named by the backend's pid: only this database's sessions
    // count, since the test file beside this one may spill to disk at the same moment.
    const held = await withClient(db.url, (c) => c.query(`select count(*)::int as n from pg_ls_tmpdir() t
      where split_part(split_part(t.name, 'pgsql_tmp', 2), '.', 1) in (select pid::text from pg_stat_activity where datname = current_database())`))
    expect(held.rows[0].n).toBe(0)
    const plain = await call('select count(*) from notes')
    expect(plain.isError, textOf(plain)).toBeFalsy()
  })

  it('still runs plain reads and the harmless volatile built-ins', async () => {
    for (const sql of ['select count(*) from notes', "select set_config('statement_timeout', '5000', false)", 'select random() < 2 as ok, clock_timestamp() is not null as now']) {
      const r = await call(sql)
      expect(r.isError, `${sql}: ${textOf(r)}`).toBeFalsy()
    }
  })
})

import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {leavesSettings} from '../../src/mcp/runner.js'
import type {DbgateMcp} from '../../src/mcp/server.js'
import {loadParser} from '../../src/sql/parser.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {inProcessAgent, textOf, tunnelEndpoint, type ToolCall} from './helpers.js'

/**
 * Each call runs under the session's statement_timeout, which the runner sets from `timeoutMs`
 * (at most the target's `mcp.timeout`) and sets again after a statement that may have changed it.
 * A read-only agent may SET statement_timeout itself (a harmless setting), so "may have changed it"
 * must be read as the server reads the text: a word match took `U&"s\0065t_config"(…)` for a call
 * that sets nothing, and the agent's later calls ran with no timeout at all.
 */
describe('MCP: an agent cannot lift the statement timeout for its later calls', () => {
  let db: UpstreamInfo
  let mcp: DbgateMcp
  let call: ToolCall

  beforeAll(async () => {
    await loadParser()
    db = await createTestDatabase('mcpto')
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = loadedConfig(db, 'mcp:\n  timeout: 1s', '', env)
    ;({mcp, call} = await inProcessAgent(loaded.config.targets.app!, tunnelEndpoint(loaded, env), 'timeout-test'))
  })
  afterAll(async () => {
    await mcp?.close()
  })

  const LIFTS = [
    `select U&"s\\0065t_config"(U&'statement\\005ftimeout', '0', false)`,
    `select pg_catalog.U&"set\\005Fconfig"('statement_timeout', '0', false)`,
    `select x.v from (select U&"s\\0065t_config"('statement_timeout', '0', false) as v) x`,
    `select "set_config"('statement_timeout', '0', false)`,
    'set statement_timeout = 0',
    'reset statement_timeout',
  ]

  it.each(LIFTS)('%s', async (sql) => {
    const lifted = await call('query', {sql})
    // The premise: the read-only allow-list lets a timeout be changed. (A function of the
    // database's own whose body calls set_config is refused by policy: default.no-hidden-setting.)
    expect(lifted.isError, textOf(lifted)).toBeFalsy()
    const slow = await call('query', {sql: 'select pg_sleep(2)'})
    expect(slow.isError, textOf(slow)).toBe(true)
    expect(textOf(slow)).toMatch(/longer than its timeout of 1000 ms/)
  })

  it('knows only a lone SELECT calling built-ins other than set_config to leave settings alone', () => {
    for (const sql of ['select 1', "select lower(name), count(*) from t where id > 2 group by 1", 'select pg_catalog.now()']) expect(leavesSettings(sql), sql).toBe(true)
    for (const sql of [...LIFTS, 'select public.lower(name) from t', 'select 1 ### 2', 'select lift()', 'show statement_timeout; select 1', 'select from where']) expect(leavesSettings(sql), sql).toBe(false)
  })
})

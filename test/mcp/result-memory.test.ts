import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {DbgateMcp} from '../../src/mcp/server.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase} from '../helpers/pg.js'
import {inProcessAgent, textOf, tunnelEndpoint} from './helpers.js'

/**
 * A row larger than `mcp.maxBytes` never reaches the agent, but the client library the tools use
 * reads each protocol message whole, and the tools turn its values into text and JSON: one 300 MB
 * value held some 2 GB in the process serving the agent (the gateway's, for remote MCP), so a few
 * such calls of a read-only agent ended the process for everyone. The agent's tunnel refuses a
 * message past its limit from the header, before reading it: the call fails, the process keeps its
 * memory, and the next call gets a fresh session.
 */
describe('MCP: a row too large for any result is refused before it is read', () => {
  let mcp: DbgateMcp
  let call: (tool: string, args: Record<string, unknown>) => Promise<CallToolResult>

  beforeAll(async () => {
    const db = await createTestDatabase('mcpmem')
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = loadedConfig(db, '', '', env)
    const agent = await inProcessAgent(loaded.config.targets.app!, tunnelEndpoint(loaded, env), 'mem-test')
    mcp = agent.mcp
    call = agent.call
  })

  afterAll(async () => {
    await mcp?.close()
  })

  it.each([
    ["one huge value", "select repeat('x', 300000000) as big"],
    ['a huge row of many columns', `select ${Array.from({length: 30}, (_, i) => `repeat('y', 10000000) as c${i}`).join(', ')}`],
    ['a huge bytea, as hex text', "select decode(repeat('ab', 100000000), 'hex') as b"],
    ['a huge aggregate', "select string_agg(repeat('z', 1000), '') from generate_series(1, 200000)"],
    ['a huge json value', "select to_jsonb(repeat('q', 150000000)) as j"],
  ])('refuses %s without holding it, and goes on', async (_what, sql) => {
    await call('query', {sql: 'select 1'})
    let peak = 0
    const before = process.memoryUsage().rss
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10)
    const r = await call('query', {sql})
    clearInterval(sampler)
    expect(r.isError, textOf(r)).toBe(true)
    expect(textOf(r)).toMatch(/over the limit of \d+ bytes/)
    // Without the limit each of these held more than a gigabyte.
    expect(peak - before).toBeLessThan(400 * 1024 ** 2)
    const next = await call('query', {sql: "select repeat('x', 1000) as fine"})
    expect(next.isError, textOf(next)).toBeFalsy()
  })
})

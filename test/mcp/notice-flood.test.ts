import type {CallToolResult} from '@modelcontextprotocol/sdk/types.js'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {DbgateMcp} from '../../src/mcp/server.js'
import {MAX_NOTICES} from '../../src/mcp/runner.js'
import {isolatedEnv, loadedConfig} from '../helpers/open.js'
import {createTestDatabase, withClient} from '../helpers/pg.js'
import {inProcessAgent, textOf, tunnelEndpoint} from './helpers.js'

/**
 * A result's notices are capped like its rows. A statement may raise a notice for every row it
 * computes (a built-in such as `to_tsquery` of a stop word does, and so does any function of the
 * database that RAISEs), and each one was kept and returned: one read-only call of 2.5 million
 * notices came back as 220 MB of text for a 256 KiB `maxBytes`, and grew the process serving the
 * agent (the gateway's, for remote MCP) by a gigabyte. A result now keeps the first `MAX_NOTICES`
 * within `maxBytes` and says how many it dropped.
 */
describe('MCP: notices are capped like rows', () => {
  let mcp: DbgateMcp
  let call: (tool: string, args: Record<string, unknown>) => Promise<CallToolResult>
  const MAX_BYTES = 64 * 1024

  beforeAll(async () => {
    const db = await createTestDatabase('mcpnotice')
    // A function the database already has, as many do: it says what it was given. Immutable, so
    // policy lets a read-only agent call it; its notice goes to whoever runs it.
    await withClient(db.url, (c) =>
      c.query(`create function shout(t text) returns int language plpgsql immutable as $$ begin raise notice '%', t; return 1; end $$;
        create function warn_all(t text) returns int language plpgsql immutable as $$ begin raise warning 'about %', t; return 1; end $$;`),
    )
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = loadedConfig(db, `mcp:\n  maxBytes: ${MAX_BYTES}`, '', env)
    const agent = await inProcessAgent(loaded.config.targets.app!, tunnelEndpoint(loaded, env), 'notice-test')
    mcp = agent.mcp
    call = agent.call
  })

  afterAll(async () => {
    await mcp?.close()
  })

  it.each([
    ['a built-in, once per row of an aggregate', "select count(to_tsquery('english', 'the' || left(g::text, 0))) from generate_series(1, 100000) g", 100000],
    ['a built-in, in a lateral subquery', "select count(t.q) from generate_series(1, 30000) g, lateral (select to_tsquery('english', 'a' || left(g::text, 0)) q) t", 30000],
    ['a function of the database, with large notices', "select sum(shout(repeat('x', 100000) || g)) from generate_series(1, 1000) g", 1000],
    ['warnings, in a subquery', "select count(w) from (select warn_all(repeat('w', 20000) || g) as w from generate_series(1, 3000) g) s", 3000],
  ])('keeps the first notices of %s within the caps, and counts the rest', async (_what, sql, raised) => {
    const r = await call('query', {sql})
    expect(r.isError, textOf(r).slice(0, 500)).toBeFalsy()
    const out = r.structuredContent as {notices: string[]; noticesDropped?: number}
    expect(out.notices.length).toBeGreaterThan(0)
    expect(out.notices.length).toBeLessThanOrEqual(MAX_NOTICES)
    expect(out.notices.length + (out.noticesDropped ?? 0)).toBe(raised)
    expect(out.notices.reduce((n, m) => n + Buffer.byteLength(JSON.stringify(m)), 0)).toBeLessThanOrEqual(MAX_BYTES)
    // The whole answer, rows and notices, stays within a few times maxBytes.
    expect(textOf(r).length).toBeLessThan(3 * MAX_BYTES + 10_000)
    expect(textOf(r)).toMatch(new RegExp(`${out.noticesDropped} more notice\\(s\\) were dropped`))
  })

  it('drops notices of a plan too, and still returns a few notices whole', async () => {
    const r = await call('explain', {sql: "select count(to_tsquery('english', 'the' || left(g::text, 0))) from generate_series(1, 100000) g", analyze: true})
    expect(r.isError, textOf(r).slice(0, 500)).toBeFalsy()
    expect(textOf(r).length).toBeLessThan(3 * MAX_BYTES)
    const few = await call('query', {sql: "select to_tsquery('english', 'the' || left(g::text, 0)) from generate_series(1, 3) g"})
    expect((few.structuredContent as {notices: string[]; noticesDropped?: number}).notices).toEqual(Array(3).fill(expect.stringMatching(/only stop words/)))
    expect((few.structuredContent as {noticesDropped?: number}).noticesDropped).toBeUndefined()
    expect(textOf(few)).not.toMatch(/dropped/)
  })
})

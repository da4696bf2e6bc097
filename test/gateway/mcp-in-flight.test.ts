import {readFileSync} from 'node:fs'
import {Agent, fetch as undiciFetch} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startAppGateway, type AppGateway} from './app-gateway.js'
import {mint} from '../identity/helpers.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'

/**
 * Requests one remote MCP session has in flight at once are capped. The hole: a tool may keep its
 * request open for a minute without any database session (`approval_status` with `waitSeconds: 60`
 * on a statement held for a reviewer), and nothing bounded how many such requests one session sent
 * at once: each on a connection of its own, a signed-in agent (or a stolen token) held as many
 * sockets as it opened, up to the process's file limit, which the PostgreSQL listener shares. Past
 * the cap a request is answered 429 at once, and the session goes on.
 *
 * A real gateway (in this process), a real IdP's keys, a statement really held for a reviewer.
 */
describe('remote MCP: requests in flight per session', () => {
  let app: AppGateway
  let dispatcher: Agent
  let bearer: string
  const target = ['allow: [engineering]', 'reviewers: [dba]', 'mcp: {mode: read-write, approvalWait: 0s}', 'rules:', '  - id: review-writes', '    match: {class: write}', '    action: require_approval', '    reason: writes are reviewed'].join('\n')

  beforeAll(async () => {
    app = await startAppGateway('gwmcpflight', {server: ['mcp: {publicUrl: https://gw.test:8443}'], target, prepare: (db) => import('../helpers/pg.js').then(({withClient}) => withClient(db.url, (c) => c.query('create table items (id int)')))})
    dispatcher = new Agent({connect: {ca: readFileSync(app.pki.ca, 'utf8')}, connections: 64, pipelining: 0})
    bearer = await mint(app.f.signingKey, {iss: app.f.dev.issuer, aud: app.f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering']})
  })
  afterAll(async () => {
    await dispatcher?.close()
    await app?.close()
  })

  let session = ''
  const post = (body: unknown) =>
    undiciFetch(`https://localhost:${app.gw.api!.port}/mcp/app`, {
      method: 'POST',
      dispatcher,
      headers: {authorization: `Bearer ${bearer}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18', ...(session ? {'mcp-session-id': session} : {})},
      body: JSON.stringify(body),
    })

  it('answers 429 past the cap while the held requests wait, and serves the session again once they end', async () => {
    const init = await post({jsonrpc: '2.0', id: 1, method: 'initialize', params: {protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'flight', version: '1'}}})
    session = init.headers.get('mcp-session-id')!
    await init.text()
    await (await post({jsonrpc: '2.0', method: 'notifications/initialized'})).text()
    const held = await (await post({jsonrpc: '2.0', id: 2, method: 'tools/call', params: {name: 'query', arguments: {sql: 'insert into items values (1)'}}})).text()
    const approvalId = /"approvalId":"(apr-[a-z0-9]+)"/.exec(held)?.[1]
    expect(approvalId, held).toBeDefined()

    const wait = (id: number) => post({jsonrpc: '2.0', id, method: 'tools/call', params: {name: 'approval_status', arguments: {approvalId, waitSeconds: 8}}})
    const responses = await Promise.all(Array.from({length: 40}, (_, i) => wait(100 + i)))
    const statuses = responses.map((r) => r.status)
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(40 - 16)
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(16)
    // The held ones end (still waiting), and the session is served as before.
    const bodies = await Promise.all(responses.map((r) => r.text()))
    expect(bodies[statuses.indexOf(429)]).toMatch(/requests in flight/)
    expect(bodies[statuses.indexOf(200)]).toMatch(/waiting/)
    const again = await post({jsonrpc: '2.0', id: 3, method: 'tools/call', params: {name: 'approval_status', arguments: {approvalId}}})
    expect(again.status).toBe(200)
    expect(await again.text()).toContain(approvalId!)
  }, 30_000)

  /**
   * The cap counted every POST, and DELETE: with 16 requests in flight (an agent's parallel reads and
   * its waits for a reviewer), the user's interrupt (notifications/cancelled, a POST that holds
   * nothing open) and the agent's DELETE of the session were answered 429 too, so the statements
   * it meant to stop ran on the server to their end. A body that holds no request open, and DELETE,
   * are no longer capped; a request past the cap still is.
   */
  it('takes a cancellation and a DELETE past the cap, which stop the statements in flight', async () => {
    session = ''
    const init = await post({jsonrpc: '2.0', id: 1, method: 'initialize', params: {protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'flight-full', version: '1'}}})
    session = init.headers.get('mcp-session-id')!
    await init.text()
    await (await post({jsonrpc: '2.0', method: 'notifications/initialized'})).text()
    const held = await (await post({jsonrpc: '2.0', id: 2, method: 'tools/call', params: {name: 'query', arguments: {sql: 'insert into items values (2)'}}})).text()
    const approvalId = /"approvalId":"(apr-[a-z0-9]+)"/.exec(held)?.[1]
    expect(approvalId, held).toBeDefined()
    const running = () =>
      withClient(app.db.url, async (c) => (await c.query(`select count(*)::int as n from pg_stat_activity where state = 'active' and query like '%full-cap%' and pid <> pg_backend_pid()`)).rows[0].n as number)

    // Sixteen in flight: three reads on the database sessions the held insert leaves, thirteen waits for its reviewer.
    const open: Promise<unknown>[] = []
    for (let i = 0; i < 3; i++) open.push(post({jsonrpc: '2.0', id: 10 + i, method: 'tools/call', params: {name: 'query', arguments: {sql: `select pg_sleep(60) /* full-cap ${i} */`}}}))
    await waitFor(async () => (await running()) === 3, 'three reads run on the server')
    for (let i = 0; i < 13; i++) open.push(post({jsonrpc: '2.0', id: 20 + i, method: 'tools/call', params: {name: 'approval_status', arguments: {approvalId, waitSeconds: 60}}}))
    expect((await Promise.all(open)).map((r) => (r as Response).status)).toEqual(Array(16).fill(200))
    const past = await post({jsonrpc: '2.0', id: 40, method: 'tools/call', params: {name: 'query', arguments: {sql: 'select 1'}}})
    expect(past.status).toBe(429)
    await past.text()

    // The user interrupts one read: the cancellation is taken, and the read stops on the server.
    const cancelled = await post({jsonrpc: '2.0', method: 'notifications/cancelled', params: {requestId: 10, reason: 'the user interrupted'}})
    expect(cancelled.status, await cancelled.text()).toBe(202)
    await waitFor(async () => (await running()) === 2, 'the cancelled read stopped on the server')
    // The agent ends the session: the other reads stop with it.
    const ended = await undiciFetch(`https://localhost:${app.gw.api!.port}/mcp/app`, {method: 'DELETE', dispatcher, headers: {authorization: `Bearer ${bearer}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18'}})
    expect(ended.status, await ended.text()).toBe(200)
    await waitFor(async () => (await running()) === 0, 'the reads stopped on the server once the agent ended the session')
    const after = await post({jsonrpc: '2.0', id: 41, method: 'tools/call', params: {name: 'query', arguments: {sql: 'select 1'}}})
    expect(after.status).toBe(404)
    await after.text()
  }, 60_000)
})

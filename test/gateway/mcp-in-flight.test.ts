import {readFileSync} from 'node:fs'
import {Agent, fetch as undiciFetch} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startAppGateway, type AppGateway} from './app-gateway.js'
import {mint} from '../identity/helpers.js'

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
})

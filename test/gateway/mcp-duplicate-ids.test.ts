import {readFileSync} from 'node:fs'
import {Agent, fetch as undiciFetch} from 'undici'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {mint} from '../identity/helpers.js'
import {startAppGateway, type AppGateway} from './app-gateway.js'
import {recordingsUnder} from './helpers.js'

/**
 * Two requests of one remote MCP session with the same id at once. The SDK's Streamable HTTP
 * transport keeps one response stream per id and its server one cancellation per id: the second
 * request took the id over. The agent's notifications/cancelled then reached only the second (and
 * once that was answered, nothing), so the first statement ran on the server to its end however
 * the agent or its user cancelled it; the first request's answer went out on the second's response
 * (or nowhere), and the first's response stayed open. Over stdio, dbgate mcp refuses such a
 * request; the remote endpoint now does too: the body is answered 400 saying which id, none of it
 * runs, each tools/call in it is recorded as refused, and the id's cancellation still stops the
 * statement that has it. Two requests of one id inside one batch are refused the same way.
 *
 * A real gateway (in this process), a real IdP's keys, raw HTTP (the SDK never reuses an id).
 */
describe('remote MCP: a request with the id of one in flight', () => {
  let app: AppGateway
  let dispatcher: Agent
  let bearer: string
  let session = ''
  const target = ['allow: [engineering]', 'mcp: {mode: read-write}'].join('\n')
  const aborts: AbortController[] = []

  beforeAll(async () => {
    app = await startAppGateway('gwmcpdup', {
      server: ['mcp: {publicUrl: https://gw.test:8443}'],
      target,
      prepare: (db) => withClient(db.url, (c) => c.query('create table marks (tag text) with (autovacuum_enabled = false)')),
    })
    dispatcher = new Agent({connect: {ca: readFileSync(app.pki.ca, 'utf8')}, connections: 32, pipelining: 0})
    bearer = await mint(app.f.signingKey, {iss: app.f.dev.issuer, aud: app.f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering']})
    const init = await post({jsonrpc: '2.0', id: 1, method: 'initialize', params: {protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'dup-ids', version: '1'}}})
    session = init.headers.get('mcp-session-id')!
    await init.text()
    await (await post({jsonrpc: '2.0', method: 'notifications/initialized'})).text()
  }, 60_000)

  afterAll(async () => {
    for (const a of aborts) a.abort()
    await dispatcher?.close()
    await app?.close()
  })

  function post(body: unknown, signal?: AbortSignal) {
    return undiciFetch(`https://localhost:${app.gw.api!.port}/mcp/app`, {
      method: 'POST',
      dispatcher,
      signal,
      headers: {authorization: `Bearer ${bearer}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18', ...(session ? {'mcp-session-id': session} : {})},
      body: JSON.stringify(body),
    })
  }
  const call = (id: unknown, sql: string) => ({jsonrpc: '2.0', id, method: 'tools/call', params: {name: 'query', arguments: {sql}}})
  const cancel = (requestId: unknown) => post({jsonrpc: '2.0', method: 'notifications/cancelled', params: {requestId, reason: 'the user interrupted'}}).then((r) => r.text())
  /** Starts a call whose answer is not awaited; its response is dropped when the file ends. */
  const start = (body: unknown) => {
    const a = new AbortController()
    aborts.push(a)
    void post(body, a.signal).then((r) => r.text()).catch(() => {})
  }
  const running = (marker: string) =>
    withClient(app.db.url, async (c) => (await c.query(`select count(*)::int as n from pg_stat_activity where state = 'active' and query like $1 and pid <> pg_backend_pid()`, [`%${marker}%`])).rows[0].n as number)
  const marks = () => withClient(app.db.url, async (c) => (await c.query('select tag from marks order by tag')).rows.map((r) => r.tag as string))
  const events = () =>
    recordingsUnder(app.dir)
      .flatMap((t) => t.split('\n').filter(Boolean))
      .map((l) => JSON.parse(l) as {type: string; data: {sql?: string; reason?: string; message?: string; arguments?: {sql?: string}}})

  /** Sends `body` while `first` (a call of id `id`) runs, and checks what the agent, the server and the recording show. */
  async function attack(what: string, id: string | number, first: string, body: unknown, refusedMarkers: string[], says: RegExp) {
    start(call(id, `select pg_sleep(60) /* ${first} */`))
    await waitFor(async () => (await running(first)) === 1, `${what}: the first request of id ${JSON.stringify(id)} runs on the server`)
    const res = await post(body)
    const text = await res.text()
    expect(res.status, `${what}: ${text}`).toBe(400)
    const told = (JSON.parse(text) as {error: {message: string}}).error.message
    expect(told, what).toMatch(says)
    expect(told, what).toMatch(/nothing of it ran\. Give each request of a session an id of its own/)
    // The agent's cancellation of the id still reaches the statement that has it.
    await cancel(id)
    await waitFor(async () => (await running(first)) === 0, `${what}: the first request stopped on the server once the agent cancelled id ${JSON.stringify(id)}`)
    const refusals = await waitFor(
      () => {
        const seen = events().filter((e) => e.type === 'mcp.tool_refused' && e.data.reason === 'malformed-call')
        const found = refusedMarkers.map((m) => seen.find((e) => e.data.arguments?.sql?.includes(m)))
        return found.every(Boolean) ? found : undefined
      },
      `${what}: the refused calls are recorded`,
      {timeoutMs: 20_000, intervalMs: 200},
    )
    for (const r of refusals) expect(r!.data.message, what).toMatch(says)
  }

  it('refuses a second POST of the id, a batch that reuses it, and a batch holding one id twice; cancelling the id stops its statement', async () => {
    await attack('a second POST', 7, 'dup-a', call(7, "insert into marks values ('dup-b')"), ['dup-b'], /a request with the id 7, which a request of this session still in flight has/)
    await attack(
      'a batch reusing the id',
      'job-1',
      'dup-c',
      [call('job-2', "insert into marks values ('dup-d')"), call('job-1', "insert into marks values ('dup-e')")],
      ['dup-d', 'dup-e'],
      /a request with the id "job-1", which a request of this session still in flight has/,
    )
    // Two of one id inside one batch: neither runs (the slow one could not have been cancelled).
    const twice = await post([call(9, 'select pg_sleep(60) /* dup-f */'), call(9, "insert into marks values ('dup-g')")])
    const twiceText = await twice.text()
    expect(twice.status, twiceText).toBe(400)
    expect(twiceText).toMatch(/two requests with the id 9/)
    expect(await running('dup-f')).toBe(0)

    // Nothing refused reached the database: no row, no statement in the recording.
    expect(await marks()).toEqual([])
    const statements = events()
      .filter((e) => e.type === 'statement')
      .map((e) => e.data.sql ?? '')
    for (const m of ['dup-b', 'dup-d', 'dup-e', 'dup-f', 'dup-g']) expect(statements.filter((s) => s.includes(m)), m).toEqual([])

    // Ordinary work: an id once cancelled is free again, 7 and "7" are two ids, and a batch of distinct ids runs.
    const again = await post(call(7, "insert into marks values ('ok-1')"))
    expect(again.status).toBe(200)
    expect(await again.text()).toMatch(/INSERT/)
    start(call(11, 'select pg_sleep(60) /* dup-h */'))
    await waitFor(async () => (await running('dup-h')) === 1, 'the request of id 11 runs')
    const other = await post(call('11', "insert into marks values ('ok-2')"))
    expect(other.status).toBe(200)
    expect(await other.text()).toMatch(/INSERT/)
    await cancel(11)
    await waitFor(async () => (await running('dup-h')) === 0, 'the request of id 11 stopped once cancelled')
    const batch = await post([call(12, "insert into marks values ('ok-3')"), call(13, "insert into marks values ('ok-4')")])
    expect(batch.status).toBe(200)
    await batch.text()
    expect(await marks()).toEqual(['ok-1', 'ok-2', 'ok-3', 'ok-4'])
  }, 120_000)
})

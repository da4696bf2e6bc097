import tls from 'node:tls'
import {Agent, fetch as undiciFetch} from 'undici'
import {readFileSync} from 'node:fs'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startAppGateway, type AppGateway} from './app-gateway.js'
import {waitFor} from '../helpers/wait.js'
import {mint} from '../identity/helpers.js'

/**
 * A request on the HTTPS API listener must arrive, headers and body, within server.signInTimeout,
 * whoever sends it. The hole: the caps on connections that have sent no request (api-limits.test.ts)
 * let go of a connection at its first request, and a connection whose token verified is kept alive;
 * from then on Node's own timeouts held: a remote MCP POST whose body came a byte at a time kept its
 * socket for five minutes (Node's requestTimeout), the next request's headers sent slowly on a
 * kept-alive connection for one (headersTimeout). One person (or one stolen token), opening such
 * connections without end, took sockets up to the process's file limit, which the PostgreSQL
 * listener shares. Now each is answered 408 and closed at server.signInTimeout, while a request that
 * did arrive in time is served however long its answer takes (a statement that runs for seconds).
 */
describe('gateway API listener: a request slower than server.signInTimeout', () => {
  let app: AppGateway
  let ca: string
  let bearer: string
  beforeAll(async () => {
    app = await startAppGateway('gwapislow', {server: ['signInTimeout: 1s', 'mcp: {publicUrl: https://gw.test:8443}']})
    ca = readFileSync(app.pki.ca, 'utf8')
    bearer = await mint(app.f.signingKey, {iss: app.f.dev.issuer, aud: app.f.dev.cliClientId, sub: 'alice', email: 'alice@example.com', groups: ['engineering']})
  })
  afterAll(async () => app?.close())

  /** A TLS connection to the API: what it received, and whether the server has closed it. */
  const open = async () => {
    const s = tls.connect({host: '127.0.0.1', port: app.gw.api!.port, ca, servername: 'localhost'})
    s.on('error', () => {})
    const state = {answer: '', closed: false}
    s.on('data', (d: Buffer) => (state.answer += d.toString()))
    s.on('close', () => (state.closed = true))
    await new Promise<void>((resolve) => s.once('secureConnect', () => resolve()))
    return {s, state}
  }

  /** Writes a space every 100 ms until the server closes the connection, for at most 6 s; true when it closed it. */
  const dripUntilClosed = async (s: tls.TLSSocket, state: {closed: boolean}, byte = ' ') => {
    const drip = setInterval(() => s.write(byte), 100)
    try {
      await waitFor(() => state.closed, 'the server closed the slow request', {timeoutMs: 6000})
      return true
    } catch {
      return false
    } finally {
      clearInterval(drip)
      s.destroy()
    }
  }

  const initialize = JSON.stringify({jsonrpc: '2.0', id: 1, method: 'initialize', params: {protocolVersion: '2025-06-18', capabilities: {}, clientInfo: {name: 'slow', version: '1'}}})
  const post = (auth: string, length: number) =>
    `POST /mcp/app HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${auth}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${length}\r\n\r\n`

  it('ends a remote MCP request with a verified token whose body comes a byte at a time', async () => {
    const {s, state} = await open()
    s.write(post(bearer, 100_000) + initialize.slice(0, 20))
    expect(await dripUntilClosed(s, state)).toBe(true)
    expect(state.answer).toMatch(/^HTTP\/1\.1 408/)
  })

  it.each([
    ['GET /v1/targets', `GET /v1/targets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n\r\n`],
    ['an MCP initialize', undefined],
  ])('ends a kept-alive connection after %s whose next request\'s headers come a byte at a time', async (_what, first) => {
    const {s, state} = await open()
    s.write(first ? first.replace('%s', bearer) : post(bearer, Buffer.byteLength(initialize)) + initialize)
    await waitFor(() => /^HTTP\/1\.1 200/.test(state.answer) && (first !== undefined || state.answer.includes('"serverInfo"')), 'the verified request is answered')
    expect(state.closed).toBe(false)
    s.write('GET /v1/targets HTTP/1.1\r\nHost: localhost\r\nX-Slow: ')
    expect(await dripUntilClosed(s, state, 'a')).toBe(true)
  })

  it('serves a request that arrived in time, however long its answer takes', async () => {
    const {s, state} = await open()
    s.write(post(bearer, Buffer.byteLength(initialize)) + initialize)
    await waitFor(() => state.answer.includes('"serverInfo"'), 'initialized')
    const session = /mcp-session-id: (\S+)/i.exec(state.answer)![1]!
    s.destroy()
    const dispatcher = new Agent({connect: {ca}})
    const call = (body: unknown) =>
      undiciFetch(`https://localhost:${app.gw.api!.port}/mcp/app`, {
        method: 'POST',
        headers: {authorization: `Bearer ${bearer}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream'},
        body: JSON.stringify(body),
        dispatcher,
      })
    await (await call({jsonrpc: '2.0', method: 'notifications/initialized'})).text()
    const slow = await call({jsonrpc: '2.0', id: 2, method: 'tools/call', params: {name: 'query', arguments: {sql: 'select pg_sleep(2.5) is null as slept'}}})
    const text = await slow.text()
    expect(slow.status).toBe(200)
    expect(text).toContain('slept')
    expect(text).not.toMatch(/"isError":true/)
    await dispatcher.close()
  })
})

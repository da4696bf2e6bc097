import net from 'node:net'
import tls from 'node:tls'
import {Agent, fetch as undiciFetch} from 'undici'
import {readFileSync} from 'node:fs'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startAppGateway, type AppGateway} from './app-gateway.js'
import {waitFor} from '../helpers/wait.js'
import {mint} from '../identity/helpers.js'

/**
 * The HTTPS API listener (GET /v1/targets, remote MCP) shares the gateway process, and so its file
 * limit, with the PostgreSQL listener. A connection that has sent no request yet is anyone's: as on
 * the PostgreSQL listener, they are capped in all and by address (refused before TLS) and closed
 * after server.signInTimeout, and a request answered before its body arrived (refused for its
 * token, say) ends its connection instead of waiting for the body. Otherwise a flood of idle or
 * slow connections holds sockets for Node's own timeouts (two minutes for a TLS handshake, five for
 * a request), up to the process's limit, and the PostgreSQL listener stops accepting too. Nor
 * does a connection stay open after a request whose token did not verify: it would no longer be
 * waiting for its first request, and could be held, uncapped, by sending the next one slowly.
 */
const token = (app: AppGateway, sub: string) =>
  mint(app.f.signingKey, {iss: app.f.dev.issuer, aud: app.f.dev.cliClientId, sub, email: `${sub}@example.com`, groups: ['engineering']})

describe('gateway API listener: connections that have sent no request', () => {
  let app: AppGateway
  let ca: string
  beforeAll(async () => {
    app = await startAppGateway('gwapilim', {server: ['maxPendingSignInsPerAddress: 8', 'signInTimeout: 1s']})
    ca = readFileSync(app.pki.ca, 'utf8')
  })
  afterAll(async () => app?.close())

  const port = () => app.gw.api!.port

  /** `n` connections that send nothing (no TLS handshake) or, with `hello`, a handshake and nothing after. */
  const flood = (n: number, handshake: boolean) => {
    let closed = 0
    const socks = Array.from({length: n}, () => {
      const s = handshake ? tls.connect({host: '127.0.0.1', port: port(), ca, servername: 'localhost'}) : net.connect(port(), '127.0.0.1')
      s.on('error', () => {})
      s.on('close', () => closed++)
      return s
    })
    return {closed: () => closed, destroy: () => socks.forEach((s) => s.destroy())}
  }

  const targets = async () => {
    const dispatcher = new Agent({connect: {ca}})
    try {
      return (await undiciFetch(`https://localhost:${port()}/v1/targets`, {dispatcher})).status
    } finally {
      await dispatcher.close()
    }
  }

  it.each([
    ['TCP connections that never start TLS', false],
    ['TLS connections that never send a request', true],
  ])('refuses %s past the per-address cap at once, closes the rest after server.signInTimeout, and serves requests again', async (_what, handshake) => {
    const f = flood(100, handshake)
    // Past the cap of 8 from this address, refused before TLS.
    await waitFor(() => f.closed() >= 92, 'the connections past the per-address cap were refused')
    // The 8 within it close at the sign-in timeout.
    await waitFor(() => f.closed() === 100, 'the connections that sent no request were closed after server.signInTimeout', {timeoutMs: 5000})
    f.destroy()
    expect(await targets()).toBe(401)
  })

  it('ends a connection whose request was answered before its body arrived, instead of waiting for the body', async () => {
    const s = tls.connect({host: '127.0.0.1', port: port(), ca, servername: 'localhost'})
    s.on('error', () => {})
    let answer = ''
    s.on('data', (d: Buffer) => (answer += d.toString()))
    const closed = new Promise<void>((resolve) => s.on('close', () => resolve()))
    await new Promise<void>((resolve) => s.once('secureConnect', () => resolve()))
    // A request refused for its token (and its method), with a body it will never finish.
    s.write('POST /mcp/app HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"jsonrpc"')
    const started = Date.now()
    const drip = setInterval(() => s.write(' '), 200)
    await closed
    clearInterval(drip)
    expect(answer).toMatch(/^HTTP\/1\.1 (401|404)/)
    expect(Date.now() - started).toBeLessThan(3000)
  })

  /** Sends `requests` one after the other on one TLS connection; what came back, and whether the server closed it. */
  const exchange = async (requests: string[]) => {
    const s = tls.connect({host: '127.0.0.1', port: port(), ca, servername: 'localhost'})
    s.on('error', () => {})
    let answer = ''
    let closed = false
    s.on('data', (d: Buffer) => (answer += d.toString()))
    s.on('close', () => (closed = true))
    await new Promise<void>((resolve) => s.once('secureConnect', () => resolve()))
    for (const r of requests) {
      const seen = (answer.match(/^HTTP\/1\.1 /gm) ?? []).length
      s.write(r)
      await waitFor(() => (answer.match(/^HTTP\/1\.1 /gm) ?? []).length > seen || closed, 'an answer')
    }
    await new Promise((resolve) => setTimeout(resolve, 300))
    s.destroy()
    return {answer, closed}
  }

  it.each([
    ['no token', ''],
    ['a bad token', 'Authorization: Bearer not-a-token\r\n'],
  ])('closes the connection after a request with %s, so it cannot be held for the next one', async (_what, auth) => {
    const r = await exchange([`GET /v1/targets HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n`, 'GET /v1/targets HTTP/1.1\r\nHost: loc'])
    expect(r.answer).toMatch(/^HTTP\/1\.1 401/)
    expect(r.answer).toMatch(/connection: close/i)
    expect(r.closed).toBe(true)
  })

  it('keeps the connection of a verified request open for the next one', async () => {
    const t = await token(app, 'alice')
    const get = `GET /v1/targets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${t}\r\n\r\n`
    const r = await exchange([get, get])
    expect((r.answer.match(/^HTTP\/1\.1 200/gm) ?? []).length).toBe(2)
    expect(r.closed).toBe(false)
  })

  it('serves a client that sends several requests, each on a new connection where it must', async () => {
    const dispatcher = new Agent({connect: {ca}})
    try {
      for (let i = 0; i < 4; i++) {
        const r = await undiciFetch(`https://localhost:${port()}/v1/targets`, {dispatcher})
        expect(r.status).toBe(401)
        await r.text()
        await new Promise((resolve) => setTimeout(resolve, 400))
      }
    } finally {
      await dispatcher.close()
    }
  })
})

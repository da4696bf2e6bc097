import {readFileSync} from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {GatewayObserver, SignInFailure} from '../../src/gateway/observer.js'
import {encodeCancelRequest, encodeStartup} from '../../src/wire/frontend.js'
import {startAppGateway, type AppGateway} from './app-gateway.js'
import {readUntilClosed, sslRequestTls} from './helpers.js'

/**
 * Anyone who can reach the gateway's ports can make it log a line per attempt. A flood of attempts
 * from one address must cost a bounded number of lines that still say how many there were, must
 * not hold back a refusal from elsewhere, must not be lost from the metrics, and what a stranger
 * chose (a user name) must not be able to forge a line.
 */
describe('dbgate gateway: log lines a stranger can cause', () => {
  let app: AppGateway
  const lines: string[] = []
  const failures: SignInFailure[] = []
  const observer: GatewayObserver = {
    signInFailed: (reason) => failures.push(reason),
    sessionOpened: () => {},
    sessionClosed: () => {},
    statement: () => {},
    valuesMasked: () => {},
  }
  // The end of the interval over which repeats are counted comes when the test says so.
  let endOfInterval: (() => void) | undefined
  const intervalEnds = () => {
    const fn = endOfInterval
    endOfInterval = undefined
    fn?.()
  }

  beforeAll(async () => {
    app = await startAppGateway('gwlogflood', {
      // A refused connection gives its place back when the gateway sees it close, which may be a
      // moment after the client has moved on: room for every attempt, so each one reaches sign-in.
      server: ['maxPendingSignIns: 1000', 'maxPendingSignInsPerAddress: 1000'],
      log: (level, message) => lines.push(`${level} ${message}`),
      observer,
      logRepeats: {
        intervalMs: 24 * 3600_000,
        schedule: (fn) => {
          endOfInterval = fn
          return () => {
            if (endOfInterval === fn) endOfInterval = undefined
          }
        },
      },
    })
  })
  afterAll(() => app?.close())

  const about = (address: string) => lines.filter((l) => l.includes(address))
  const countOf = (reason: SignInFailure) => failures.filter((r) => r === reason).length

  /** Signs in as `user` to `database` with `password`, from `from`; the error it gets. */
  async function refusedSignIn(from: string, password: string, user = 'alice@example.com', database = 'app'): Promise<pg.DatabaseError> {
    let socket: net.Socket | undefined
    const c = new pg.Client({
      host: '127.0.0.1',
      port: app.gw.address.port,
      database,
      user,
      password,
      ssl: {ca: readFileSync(app.pki.ca, 'utf8'), servername: 'localhost'},
      stream: () => {
        const s = (socket = new net.Socket())
        const connect = s.connect.bind(s) as (options: net.TcpSocketConnectOpts) => net.Socket
        s.connect = ((port: number, host: string) => connect({port, host, localAddress: from})) as typeof s.connect
        return s
      },
    })
    c.on('error', () => {})
    const error = await c.connect().then(
      () => undefined,
      (e: pg.DatabaseError) => e,
    )
    await c.end().catch(() => {})
    socket?.destroy()
    if (!error) throw new Error('the gateway let the client in')
    return error
  }

  /** A raw connection from `from` that sends `bytes` and reads until the gateway closes it. */
  async function raw(from: string, bytes: Buffer): Promise<void> {
    const s = net.connect({host: '127.0.0.1', port: app.gw.address.port, localAddress: from})
    s.on('error', () => {})
    await new Promise((resolve) => s.once('connect', resolve))
    s.write(bytes)
    await readUntilClosed(s)
  }

  it('logs 200 refused sign-ins from one address as one line and one count, and a refusal from elsewhere right after at once', async () => {
    for (let i = 0; i < 200; i++) expect(await refusedSignIn('127.0.0.2', `not-a-token-${i}`)).toMatchObject({code: '28P01'})
    expect(about('127.0.0.2')).toEqual([expect.stringMatching(/^warn sign-in refused \(token-malformed\) for user "alice@example\.com" to "app" from 127\.0\.0\.2:\d+$/)])
    expect(countOf('token-malformed')).toBe(200)

    await refusedSignIn('127.0.0.3', 'not-a-token')
    expect(about('127.0.0.3')).toEqual([expect.stringMatching(/^warn sign-in refused \(token-malformed\) for user "alice@example\.com" to "app" from 127\.0\.0\.3:\d+$/)])

    intervalEnds()
    expect(about('127.0.0.2')).toEqual([
      expect.stringMatching(/^warn sign-in refused \(token-malformed\)/),
      expect.stringMatching(/^warn 199 more like this from 127\.0\.0\.2 in the last \S+ \(not logged one by one\); the last: sign-in refused \(token-malformed\) for user "alice@example\.com" to "app" from 127\.0\.0\.2:\d+$/),
    ])
    expect(about('127.0.0.3')).toHaveLength(1)
    expect(countOf('token-malformed')).toBe(201)
  })

  it('escapes and cuts the user and database names a stranger sends, so they cannot forge a log line', async () => {
    const forged = 'info alice signed in'
    await refusedSignIn('127.0.0.4', 'not-a-token', `mallory\n${forged}\r\u2028`, `app\u202e${'d'.repeat(500)}`)
    const mine = about('127.0.0.4')
    expect(mine).toHaveLength(1)
    expect(mine[0]).toBe(`warn sign-in refused (token-malformed) for user "mallory\\u000a${forged}\\u000d\\u2028" to "app\\u202e${'d'.repeat(60)}"… (cut from 504 characters) from ${mine[0]!.split(' from ').at(-1)}`)
    expect(lines.filter((l) => /[\r\n\u2028\u202e]/.test(l))).toEqual([])
  })

  it('logs a flood of plaintext connections and of cancel requests with unknown keys from one address once each, with their count', async () => {
    for (let i = 0; i < 30; i++) await raw('127.0.0.5', encodeStartup({user: 'alice@example.com', database: 'app'}))
    for (let i = 0; i < 30; i++) await raw('127.0.0.5', encodeCancelRequest(1000 + i, 424242))
    expect(about('127.0.0.5')).toEqual([
      expect.stringMatching(/^warn refused a connection from 127\.0\.0\.5:\d+ before TLS: a plaintext startup packet$/),
      expect.stringMatching(/^warn ignored a cancel request with an unknown key from 127\.0\.0\.5:\d+$/),
    ])
    expect(countOf('no-tls')).toBe(30)

    intervalEnds()
    expect(about('127.0.0.5').slice(2).sort()).toEqual([
      expect.stringMatching(/^warn 29 more like this from 127\.0\.0\.5 .*; the last: ignored a cancel request with an unknown key from 127\.0\.0\.5:\d+$/),
      expect.stringMatching(/^warn 29 more like this from 127\.0\.0\.5 .*; the last: refused a connection from 127\.0\.0\.5:\d+ before TLS: a plaintext startup packet$/),
    ])
  })

  it('logs a flood of connections that break the protocol after TLS, before signing in, once, with their count', async () => {
    // A startup packet of protocol 2.0, over TLS: the connection is refused before any sign-in.
    const v2 = Buffer.alloc(8)
    v2.writeInt32BE(8, 0)
    v2.writeInt32BE(2 << 16, 4)
    for (let i = 0; i < 30; i++) {
      const secure = await sslRequestTls(app.gw.address.port, readFileSync(app.pki.ca, 'utf8'), '127.0.0.7')
      secure.write(v2)
      await readUntilClosed(secure)
    }
    const protocolErrors = lines.filter((l) => l.includes('unsupported frontend protocol 2.0'))
    expect(protocolErrors).toEqual([expect.stringMatching(/^warn connection \d+: protocol error: unsupported frontend protocol 2\.0.* \(from 127\.0\.0\.7:\d+\)$/)])
    intervalEnds()
    expect(lines.at(-1)).toMatch(/^warn 29 more like this from 127\.0\.0\.7 .*; the last: connection \d+: protocol error: unsupported frontend protocol 2\.0/)
  })

  it('counts refused sign-ins on the HTTPS API in the metrics, and logs a flood of them from one address once, with their count', async () => {
    const before = countOf('token-malformed')
    const get = () =>
      new Promise<number>((resolve, reject) => {
        const req = https.request(
          {host: '127.0.0.1', port: app.gw.api!.port, localAddress: '127.0.0.6', path: '/v1/targets', servername: 'localhost', ca: [readFileSync(app.pki.ca, 'utf8')], headers: {authorization: 'Bearer not-a-token'}, agent: false},
          (res) => {
            res.resume()
            res.on('end', () => resolve(res.statusCode ?? 0))
          },
        )
        req.on('error', reject)
        req.end()
      })
    for (let i = 0; i < 20; i++) expect(await get()).toBe(401)
    expect(countOf('token-malformed') - before).toBe(20)
    expect(about('127.0.0.6')).toEqual([expect.stringMatching(/^warn API: sign-in refused \(token-malformed\) from 127\.0\.0\.6:\d+$/)])
    intervalEnds()
    expect(about('127.0.0.6')[1]).toMatch(/^warn 19 more like this from 127\.0\.0\.6 .*; the last: API: sign-in refused \(token-malformed\) from 127\.0\.0\.6:\d+$/)
  })
})

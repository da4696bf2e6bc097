import {readFileSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import tls from 'node:tls'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {fixture, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {directTls, gatewayConfigText, makePki, readUntilClosed, sslRequestTls, type TestPki} from './helpers.js'
import {aliceToken, gatewayClient, GatewayProcess} from './process-helpers.js'

function request(code: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeInt32BE(8, 0)
  b.writeInt32BE(code, 4)
  return b
}
const GSSENC_REQUEST = request(80877104)
const SSL_REQUEST = request(80877103)

/**
 * Before TLS, the gateway answers a GSSENCRequest 'N' and reads on. libpq sends at most one (then
 * SSLRequest, or a direct TLS handshake), and so does every client that speaks the protocol;
 * PostgreSQL refuses a second. Anyone who reaches the port can send many, in one packet or several,
 * before any sign-in: that must cost them their connection, never the gateway its worker and every
 * session on it.
 */
describe('dbgate gateway: GSSENCRequests before TLS, encryption requests inside it', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: GatewayProcess

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwgssenc')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwgssenc-'))
    const file = path.join(dir, 'gateway.yaml')
    await writeFile(file, gatewayConfigText({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, server: ['ops: off'], targets: targetConfigText('app', db, 'allow: [engineering]')}))
    gw = new GatewayProcess(file, {...isolatedEnv(), TEST_APP_PASSWORD: db.password})
    await gw.started()
  })
  afterAll(async () => {
    gw?.signal('SIGTERM')
    await gw?.exited
    await f?.close()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  /** Sends `writes` (each a number of GSSENCRequests in one write) on one connection; what the gateway answered before closing it. */
  async function send(writes: number[]): Promise<string> {
    const s = net.connect(gw.port, '127.0.0.1')
    s.on('error', () => {})
    await new Promise((resolve) => s.once('connect', resolve))
    const answered = readUntilClosed(s, 15_000).catch(() => Buffer.from('(never closed)'))
    for (const n of writes) {
      s.write(Buffer.concat(Array.from({length: n}, () => GSSENC_REQUEST)))
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    return (await answered).toString('latin1')
  }

  it('goes on to TLS after one GSSENCRequest, as libpq with gssencmode=prefer asks (in one packet with the SSLRequest, or after the answer)', async () => {
    const ssl = Buffer.alloc(8)
    ssl.writeInt32BE(8, 0)
    ssl.writeInt32BE(80877103, 4)
    for (const together of [false, true]) {
      const s = net.connect(gw.port, '127.0.0.1')
      s.on('error', () => {})
      await new Promise((resolve) => s.once('connect', resolve))
      const first = new Promise<Buffer>((resolve) => s.once('data', resolve))
      s.write(together ? Buffer.concat([GSSENC_REQUEST, ssl]) : GSSENC_REQUEST)
      let got = await first
      if (!together) {
        const next = new Promise<Buffer>((resolve) => s.once('data', resolve))
        s.write(ssl)
        got = Buffer.concat([got, await next])
      } else if (got.length < 2) got = Buffer.concat([got, await new Promise<Buffer>((resolve) => s.once('data', resolve))])
      expect(got.toString('latin1'), `together: ${together}`).toBe('NS')
      const secure = tls.connect({socket: s, ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'})
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', resolve)
        secure.once('error', reject)
      })
      secure.destroy()
    }
  })

  it('refuses a second GSSENCRequest, however many come and however they are split, and the sessions on the gateway go on', async () => {
    const c = gatewayClient(gw.port, pki.ca, await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId))
    const lost: Error[] = []
    c.on('error', (e) => lost.push(e))
    await c.connect()
    expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])

    const answers: Record<string, string> = {}
    for (const writes of [[2], [1, 1], [1000], [1, 20_000]]) answers[writes.join('+')] = await send(writes)

    const died = gw.lines.filter((l) => /exited/.test(l.msg)).map((l) => l.msg)
    expect(died).toEqual([])
    expect(lost.map((e) => e.message)).toEqual([])
    expect((await c.query('select 2 as two')).rows).toEqual([{two: 2}])
    for (const [writes, answer] of Object.entries(answers)) {
      // One 'N' for the first, then a FATAL that says what was wrong, and the connection closed.
      expect(answer.startsWith('NE'), `${writes}: ${JSON.stringify(answer.slice(0, 40))}`).toBe(true)
      expect(answer, writes).toMatch(/more than one GSSENCRequest/)
    }
    await c.end()
  })

  // Inside TLS the connection's encryption is settled: PostgreSQL refuses either request there. The
  // gateway answered each 'N', any number of them, before any token: a client that sent them without
  // reading made the worker queue one write (and one TLS record) per 8 bytes, until it ran out of memory.
  it('refuses an SSLRequest or GSSENCRequest inside TLS, however many come, and the sessions on the gateway go on', async () => {
    const c = gatewayClient(gw.port, pki.ca, await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId))
    const lost: Error[] = []
    c.on('error', (e) => lost.push(e))
    await c.connect()
    const ca = readFileSync(pki.ca, 'utf8')
    const CASES: [string, () => Promise<tls.TLSSocket>, Buffer[]][] = [
      ['SSLRequest after SSLRequest and TLS', () => sslRequestTls(gw.port, ca), [SSL_REQUEST]],
      ['GSSENCRequest after SSLRequest and TLS', () => sslRequestTls(gw.port, ca), [GSSENC_REQUEST]],
      ['20,000 SSLRequests after SSLRequest and TLS, none of the answers read', () => sslRequestTls(gw.port, ca), Array.from({length: 20_000}, () => SSL_REQUEST)],
      ['20,000 alternating requests after SSLRequest and TLS', () => sslRequestTls(gw.port, ca), Array.from({length: 20_000}, (_, i) => (i % 2 ? GSSENC_REQUEST : SSL_REQUEST))],
      ['SSLRequest in direct TLS', () => directTls(gw.port, ca, ['postgresql']), [SSL_REQUEST]],
      ['two GSSENCRequests in direct TLS', () => directTls(gw.port, ca, ['postgresql']), [GSSENC_REQUEST, GSSENC_REQUEST]],
    ]
    const answers: Record<string, string> = {}
    for (const [what, open, requests] of CASES) {
      const s = await open()
      const answered = readUntilClosed(s, 5_000).catch(() => Buffer.from('(never closed)'))
      s.write(Buffer.concat(requests))
      answers[what] = (await answered).toString('latin1')
    }
    expect(gw.lines.filter((l) => /exited/.test(l.msg)).map((l) => l.msg)).toEqual([])
    expect(lost.map((e) => e.message)).toEqual([])
    expect((await c.query('select 3 as three')).rows).toEqual([{three: 3}])
    for (const [what, answer] of Object.entries(answers)) {
      // No 'N': a FATAL that says what was wrong, and the connection closed.
      expect(answer.startsWith('E'), `${what}: ${JSON.stringify(answer.slice(0, 40))}`).toBe(true)
      expect(answer, what).toMatch(/08P01/)
      expect(answer, what).toMatch(/(SSLRequest|GSSENCRequest) inside TLS/)
    }
    await c.end()
  })
})

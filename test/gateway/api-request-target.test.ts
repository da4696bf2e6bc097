import {readFileSync} from 'node:fs'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {fixture, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfigText, makePki, type TestPki} from './helpers.js'
import {aliceToken, gatewayClient, GatewayProcess} from './process-helpers.js'
import {startAppGateway, type AppGateway} from './app-gateway.js'

/**
 * Request targets that Node's HTTP parser accepts but that are no URL (`//[`, a port out of range,
 * an absolute form with a broken host) or whose path does not decode (`%E0`). Anyone who can reach
 * the HTTPS API listener can send them, before any token is checked.
 */
const MALFORMED = ['//[', '//x:99999/v1/targets', 'http://[/v1/targets', '//%/mcp/app', '/mcp/%E0', '/mcp/%', '/.well-known/oauth-protected-resource/mcp/%E0%80']

/** One raw HTTP/1.1 request over TLS with `target` as its request target; the status line answered, or undefined when the connection ended without one. */
function rawRequest(port: number, ca: string, method: string, target: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = tls.connect({host: '127.0.0.1', port, ca, servername: 'localhost'}, () => s.write(`${method} ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`))
    let got = ''
    // Bounds a failure only: a listener whose process died may accept and never answer.
    const timer = setTimeout(() => s.destroy(), 10_000)
    s.on('data', (d: Buffer) => (got += d.toString('latin1')))
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      resolve(got ? got.split('\r\n')[0] : undefined)
    })
  })
}

describe('gateway HTTPS API: a request target that is no URL', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: GatewayProcess
  let apiPort: number

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwapitarget')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwapitarget-'))
    const file = path.join(dir, 'gateway.yaml')
    await writeFile(file, gatewayConfigText({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, server: ['ops: off'], targets: targetConfigText('app', db, 'allow: [engineering]')}))
    gw = new GatewayProcess(file, {...isolatedEnv(), TEST_APP_PASSWORD: db.password})
    await gw.started()
    const listening = gw.lines.find((l) => /API on https:\/\//.test(l.msg))
    apiPort = Number(/API on https:\/\/[^\s,]+:(\d+)/.exec(listening!.msg)![1])
  })
  afterAll(async () => {
    gw?.signal('SIGTERM')
    await gw?.exited
    await f?.close()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  it('answers 400 to each, and the gateway and the sessions on it go on', async () => {
    const c = gatewayClient(gw.port, pki.ca, await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId))
    const lost: Error[] = []
    c.on('error', (e) => lost.push(e))
    await c.connect()
    expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
    const ca = readFileSync(pki.ca, 'utf8')
    const answers: string[] = []
    for (const target of MALFORMED) {
      for (const method of ['GET', 'POST']) answers.push(`${method} ${target}: ${await rawRequest(apiPort, ca, method, target)}`)
    }
    const died = gw.lines.filter((l) => /exited/.test(l.msg)).map((l) => l.msg)
    expect(died).toEqual([])
    // The signed-in session was not cut, and the listener still serves.
    expect(lost.map((e) => e.message)).toEqual([])
    expect(await c.query('select 2 as two').then((r) => r.rows, (e: Error) => e.message)).toEqual([{two: 2}])
    expect(answers).toEqual(MALFORMED.flatMap((t) => [`GET ${t}: HTTP/1.1 400 Bad Request`, `POST ${t}: HTTP/1.1 400 Bad Request`]))
    expect(await rawRequest(apiPort, ca, 'GET', '/v1/targets')).toBe('HTTP/1.1 401 Unauthorized')
    await c.end()
  })
})

describe('gateway HTTPS API with remote MCP: a request target that is no URL', () => {
  let app: AppGateway
  const lines: string[] = []
  beforeAll(async () => {
    app = await startAppGateway('gwapitargetmcp', {server: ['mcp: {publicUrl: https://gw.test:8443}'], log: (level, message) => lines.push(`${level} ${message}`)})
  })
  afterAll(() => app?.close())

  it('answers 400 to each, with no error line a stranger can write at will', async () => {
    const ca = readFileSync(app.pki.ca, 'utf8')
    for (const target of MALFORMED) {
      for (const method of ['GET', 'POST']) expect(await rawRequest(app.gw.api!.port, ca, method, target), `${method} ${target}`).toBe('HTTP/1.1 400 Bad Request')
    }
    expect(lines.filter((l) => l.startsWith('error'))).toEqual([])
  })
})

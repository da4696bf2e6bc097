import {readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type {JWK} from 'jose'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startDevOidcProvider, type DevProvider} from '../../src/dev/oidc-dev-provider.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {mint, rsaSigningKey} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfig, makePki, type TestPki} from './helpers.js'
import {waitFor} from '../helpers/wait.js'
import {freePort} from '../../src/dev/embedded-pg.js'

/** A gateway's life around its sessions: readiness without the IdP, session limits, pipelines disposed. */
describe('dbgate gateway: readiness and session limits', () => {
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: RunningGateway
  let idp: DevProvider | undefined
  let idpPort: number
  let signingKey: JWK
  const logs: string[] = []
  const email = 'alice@example.com'

  beforeAll(async () => {
    ;[pki, db, idpPort] = await Promise.all([makePki(), createTestDatabase('gwl'), freePort()])
    signingKey = await rsaSigningKey('lifecycle-key')
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwl-'))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = gatewayConfig({
      pki,
      dir,
      // The IdP is not up yet: nothing listens on this port until a test starts it.
      issuer: `http://127.0.0.1:${idpPort}`,
      clientId: 'dbgate-cli',
      env,
      server: ['maxSessionDuration: 4s', 'pipelineIdle: 0s'],
      targets: targetConfigText('app', db, 'allow: [engineering]'),
    })
    gw = await startGateway({loaded, env, idpRetryMs: 200, log: (level, m) => logs.push(`${level}: ${m}`)})
  })
  afterAll(async () => {
    await gw?.close(500)
    await idp?.stop()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  const connect = (password: string) =>
    new pg.Client({host: '127.0.0.1', port: gw.address.port, database: 'app', user: email, password, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
  const token = (ttlSeconds: number) => {
    const now = Math.floor(Date.now() / 1000)
    return mint(signingKey, {iss: `http://127.0.0.1:${idpPort}`, aud: 'dbgate-cli', sub: 'alice', email, groups: ['engineering'], exp: now + ttlSeconds})
  }
  /** Resolves with the error that ends the session (the FATAL the gateway sends). */
  const ended = (c: pg.Client) => new Promise<Error>((resolve) => c.on('error', resolve))

  it('is not ready while the IdP is unreachable, says why, and refuses sign-ins with 57P03', async () => {
    expect(gw.ready).toBe(false)
    const [check] = gw.readiness()
    expect(check).toMatchObject({name: 'idp-keys', ok: false})
    expect(check!.detail).toMatch(new RegExp(`cannot load the signing keys of http://127\\.0\\.0\\.1:${idpPort}`))
    expect(logs.join('\n')).toMatch(/cannot load the signing keys/)
    const c = connect(await token(60))
    c.on('error', () => {})
    const e = (await c.connect().then(() => undefined, (err: pg.DatabaseError) => err))!
    expect(e.code).toBe('57P03')
    expect(e.message).toMatch(/not ready: it has not loaded the identity provider's signing keys/)
  })

  it('becomes ready once the IdP answers', async () => {
    idp = await startDevOidcProvider({port: idpPort, signingKey})
    await gw.whenReady()
    expect(gw.readiness()[0]).toMatchObject({ok: true})
  })

  it('ends a session when its token expires (sessionOutlivesToken defaults to false), telling the user to reconnect', async () => {
    const c = connect(await token(2))
    const end = ended(c)
    await c.connect()
    expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
    const e = await end
    expect(e.message).toMatch(/your sign-in token expired.*sessionOutlivesToken: false.*reconnect with a fresh token/)
    await c.end().catch(() => {})
  })

  it('ends a session at server.maxSessionDuration, naming the setting', async () => {
    const c = connect(await token(600))
    const end = ended(c)
    await c.connect()
    const e = await end
    expect(e.message).toMatch(/maximum session duration of 4s \(server\.maxSessionDuration\)/)
    await c.end().catch(() => {})
  })

  it('disposes a pipeline once its last session has ended', async () => {
    await waitFor(() => gw.sessionCount === 0 && gw.pipelineCount === 0, 'the gateway holds no session and no pipeline')
    const c = connect(await token(600))
    c.on('error', () => {})
    await c.connect()
    expect(gw.pipelineCount).toBe(1)
    await c.end()
    await waitFor(() => gw.pipelineCount === 0, 'the gateway holds no pipeline')
  })

  it('keeps the pipeline of a session whose client hung up until the server has ended what it sent', async () => {
    // Its commit gate holds the person's other sessions while what was sent may still commit: a
    // pipeline built afresh for their next session would know nothing of it.
    await waitFor(() => gw.sessionCount === 0 && gw.pipelineCount === 0, 'the gateway holds no session and no pipeline')
    const c = connect(await token(600))
    c.on('error', () => {})
    await c.connect()
    void c.query('select pg_sleep(1.5)').catch(() => {})
    await new Promise((r) => setTimeout(r, 200))
    ;(c as unknown as {connection: {stream: {destroy(): void}}}).connection.stream.destroy()
    await new Promise((r) => setTimeout(r, 500))
    expect(gw.pipelineCount).toBe(1)
    await waitFor(() => gw.pipelineCount === 0, 'the gateway holds no pipeline once the server has ended the session')
  })
})

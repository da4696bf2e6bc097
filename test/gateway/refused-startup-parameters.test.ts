import {readFileSync} from 'node:fs'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {SessionReader} from '../../src/audit/read.js'
import {openBucket} from '../../src/bucket/index.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {decodeNotice} from '../../src/wire/backend.js'
import {Framer} from '../../src/wire/framer.js'
import {encodeStartup} from '../../src/wire/frontend.js'
import {fixture, mint, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {gatewayConfig, makePki, type TestPki, closeGatewayTest, sslRequestTls} from './helpers.js'

/** Signs in over TLS with `params` in the startup packet; resolves with the errors the gateway sent and whether a session began. */
async function signInWith(port: number, ca: string, params: Record<string, string>, token: string): Promise<{errors: {code: string; message: string}[]; ready: boolean}> {
  const socket = await sslRequestTls(port, ca)
  const got: {code: string; body: Buffer}[] = []
  let closed = false
  const framer = new Framer({maxMessageSize: 1 << 20})
  socket.on('data', (chunk: Buffer) => framer.push(chunk, (f) => got.push({code: String.fromCharCode(f.code), body: Buffer.from(f.body)})))
  socket.on('close', () => (closed = true))
  socket.on('error', () => {})
  socket.write(encodeStartup(params))
  await waitFor(() => got.some((m) => m.code === 'R') || closed, 'the gateway asks for the token')
  const body = Buffer.concat([Buffer.from(token), Buffer.from([0])])
  const head = Buffer.alloc(5)
  head.write('p', 0)
  head.writeInt32BE(body.length + 4, 1)
  socket.write(Buffer.concat([head, body]))
  await waitFor(() => got.some((m) => m.code === 'Z') || closed, 'the session is ready or refused')
  socket.destroy()
  return {errors: got.filter((m) => m.code === 'E').map((m) => decodeNotice(m.body)).map((n) => ({code: String(n.code), message: String(n.message)})), ready: got.some((m) => m.code === 'Z')}
}

/**
 * A person whose token verified and whom the target's policy refused at sign-in, for a setting in
 * their startup packet (role, session_replication_role, default_transaction_read_only, …): that is
 * a denied access attempt as much as a target outside their `allow`, and an auditor looking for
 * them in the bucket must find it, by person and target.
 */
describe('dbgate gateway: a sign-in refused for its startup parameters is recorded', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let gw: RunningGateway | undefined
  let dir: string
  let bucketConfig: LoadedConfig['config']['bucket']
  const email = 'alice@example.com'

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwstartup')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwstartup-'))
    const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = gatewayConfig({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, env, targets: targetConfigText('app', db, 'allow: [engineering]')})
    bucketConfig = loaded.config.bucket
    gw = await startGateway({loaded, env})
    await gw.whenReady()
  })
  afterAll(() => closeGatewayTest(gw, f, [dir, pki?.dir]))

  const refusedParams: Record<string, string>[] = [{role: 'postgres'}, {session_replication_role: 'replica'}, {log_statement: 'none'}, {Session_Authorization: 'postgres'}]

  it('records each as a refused session of that person, with the parameter named, and still lets a clean one in', async () => {
    const token = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'alice', email, groups: ['engineering'], exp: Math.floor(Date.now() / 1000) + 600})
    const ca = readFileSync(pki.ca, 'utf8')
    for (const extra of refusedParams) {
      const r = await signInWith(gw!.address.port, ca, {user: email, database: 'app', application_name: 'startup-probe', ...extra}, token)
      expect(r.ready, JSON.stringify(extra)).toBe(false)
      expect(r.errors.at(-1), JSON.stringify(extra)).toMatchObject({code: '42501', message: expect.stringMatching(new RegExp(`the startup parameter "${Object.keys(extra)[0]}" is not allowed`))})
    }
    const clean = await signInWith(gw!.address.port, ca, {user: email, database: 'app', application_name: 'startup-probe'}, token)
    expect(clean.ready).toBe(true)
    // Draining ships the spool, as a gateway stopping does.
    await gw!.drain(2000)
    gw = undefined
    const sessions = await new SessionReader(openBucket(bucketConfig)).list()
    const refused = sessions.filter((s) => s.refused)
    expect(refused.map((s) => ({user: s.user, target: s.target, reason: s.refused!.reason, statements: s.totals.statements, application: s.client?.application}))).toEqual(
      refusedParams.map(() => ({user: email, target: 'app', reason: 'startup-parameter', statements: 0, application: 'startup-probe'})),
    )
    expect(sessions.filter((s) => !s.refused)).toHaveLength(1)
  }, 60_000)
})

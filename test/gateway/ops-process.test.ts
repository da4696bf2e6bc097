import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {fixture, mint, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfigText, makePki, type TestPki} from './helpers.js'
import {aliceToken, gatewayClient, GatewayProcess, httpGet, until} from './process-helpers.js'

function deadPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

/** The binary's logs, /readyz and /metrics while people sign in with good and bad tokens. */
describe('dbgate gateway: logs and the ops endpoint of the running binary', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: GatewayProcess
  let port: number
  let ops: number
  const tokens: string[] = []

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwops')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwops-'))
    await withClient(db.url, (c) => c.query("create table customers (id int primary key, email text); insert into customers values (1, 'first.buyer@example.org'), (2, 'second.buyer@example.org')"))
    const targets = [...targetConfigText('app', db, 'allow: [engineering]'), ...targetConfigText('down', db, `allow: [engineering]\nport: ${await deadPort()}`)]
    const file = path.join(dir, 'gateway.yaml')
    await writeFile(file, gatewayConfigText({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, server: ['ops: 127.0.0.1:0', 'log: {level: debug}'], targets}))
    gw = new GatewayProcess(file, {...isolatedEnv(), TEST_APP_PASSWORD: db.password}, ['--workers', '1'])
    ;({port, ops} = await gw.started())
  })
  afterAll(async () => {
    gw?.signal('SIGTERM')
    await gw?.exited
    await f?.close()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  const signIn = async (token: string, database = 'app') => {
    tokens.push(token)
    const c = gatewayClient(port, pki.ca, token, database)
    c.on('error', () => {})
    const e = await c.connect().then(() => undefined, (err: Error & {code?: string}) => err)
    if (!e) await c.query('select 1')
    await c.end().catch(() => {})
    return e
  }

  it('is degraded, not out of service, while one of its targets is unreachable', async () => {
    const r = await until(async () => {
      const res = await httpGet(ops, '/readyz')
      return res.status === 200 ? res : undefined
    })
    const body = JSON.parse(r.body) as {status: string; checks: {name: string; degradesOnly: boolean; detail: string}[]}
    expect(body.status).toBe('degraded')
    expect(body.checks).toEqual([expect.objectContaining({name: 'upstream:down', degradesOnly: true})])
  })

  it('never writes a token or the database password to its log, whatever the sign-in', async () => {
    const good = await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId)
    expect(await signIn(good)).toBeUndefined()
    const expired = await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId, -120)
    expect((await signIn(expired))?.code).toBe('28P01')
    expect((await signIn(await aliceToken(f.signingKey, f.dev.issuer, 'someone-else')))?.code).toBe('28P01')
    const [h, p, s] = good.split('.')
    const tampered = `${h}.${Buffer.from(JSON.stringify({...JSON.parse(Buffer.from(p!, 'base64url').toString()), groups: ['dba']})).toString('base64url')}.${s}`
    expect((await signIn(tampered))?.code).toBe('28P01')
    const unsigned = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`
    expect((await signIn(unsigned))?.code).toBe('28P01')
    // A password that is no token at all, and a good token for a database that is down.
    expect((await signIn('hunter2-not-a-token-Zq9'))?.code).toBe('28P01')
    expect((await signIn(good, 'down'))?.code).toBe('08006')
    const other = await mint(f.signingKey, {iss: f.dev.issuer, aud: f.dev.cliClientId, sub: 'mallory', email: 'mallory@example.com', groups: ['sales'], exp: Math.floor(Date.now() / 1000) + 600})
    expect((await signIn(other))?.code).toBe('28000')

    await gw.line((l) => /sign-in refused/.test(l.msg) && /token/.test(JSON.stringify(l)))
    // The log is all JSON lines with a level, and says what happened.
    expect(gw.lines.filter((l) => l.level === 'not-json')).toEqual([])
    expect(gw.stdout).toMatch(/alice@example\.com signed in to target app/)
    expect(gw.stdout).toMatch(/sign-in refused \(token-expired\)/)
    const secrets = new Set<string>([db.password, 'hunter2-not-a-token-Zq9'])
    for (const t of tokens) for (const seg of t.split('.')) if (seg.length >= 8) secrets.add(seg)
    for (const secret of secrets) expect(gw.stdout.includes(secret), `the log contains ${secret.slice(0, 12)}…`).toBe(false)
  })

  it('counts sign-in failures by reason, statements by decision, values masked and open sessions in /metrics', async () => {
    const c = gatewayClient(port, pki.ca, await aliceToken(f.signingKey, f.dev.issuer, f.dev.cliClientId))
    await c.connect()
    const rows = (await c.query('select email from customers order by id')).rows as {email: string}[]
    expect(rows.map((x) => x.email).join()).not.toMatch(/first\.buyer|second\.buyer/)
    const open = await httpGet(ops, '/metrics')
    expect(open.body).toMatch(/^dbgate_gateway_sessions_open\{target="app"\} 1$/m)
    expect(open.body).toMatch(/^dbgate_gateway_values_masked_total\{target="app"\} 2$/m)
    await c.end()
    const r = await until(async () => {
      const m = await httpGet(ops, '/metrics')
      // The upstream slot is given back once the server has ended the session, a moment after the client's close.
      return /^dbgate_gateway_sessions_open\{target="app"\} 0$/m.test(m.body) && /^dbgate_gateway_upstream_sessions_in_use 0$/m.test(m.body) ? m : undefined
    })
    expect(r.status).toBe(200)
    expect(r.body).toMatch(/^dbgate_gateway_sign_in_failures_total\{reason="token-expired"\} 1$/m)
    expect(r.body).toMatch(/^dbgate_gateway_sign_in_failures_total\{reason="not-allowed"\} 1$/m)
    expect(r.body).toMatch(/^dbgate_gateway_statements_total\{target="app",decision="allow"\} [1-9]/m)
    expect(r.body).toMatch(/^dbgate_gateway_upstream_sessions_in_use 0$/m)
    expect(r.body).toMatch(/^dbgate_gateway_shipping_backlog_bytes \d+$/m)
    expect(r.body).toMatch(/^dbgate_gateway_approvals_pending 0$/m)
  })
})

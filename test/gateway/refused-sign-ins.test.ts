import {readFileSync} from 'node:fs'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {getIdentity} from '../../src/identity/session.js'
import {fixture, loginAs, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {gatewayConfig, makePki, type TestPki, closeGatewayTest} from './helpers.js'

const BIN = path.resolve('bin/run.js')

/**
 * Sign-ins the gateway refuses to someone whose token it verified are evidence an auditor asks
 * for ("show the denied access attempts"). Before, they were only log lines (summarised when they
 * repeat) and a counter: nothing in the bucket said that alice tried dba_only. Now each is a signed
 * session with no statement, which `sessions list`, `sessions verify` and `report` show.
 */
describe('dbgate gateway: refused sign-ins in the recordings', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let gw: RunningGateway | undefined
  let dir: string
  let token: string
  let env: NodeJS.ProcessEnv
  let bucket: string
  const email = 'alice@example.com'

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwrefused')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gw-refused-'))
    env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    const loaded = gatewayConfig({
      pki,
      dir,
      issuer: f.dev.issuer,
      clientId: f.dev.cliClientId,
      env,
      targets: [...targetConfigText('app', db, 'allow: [engineering]'), ...targetConfigText('dba_only', db, 'allow: [dba]')],
    })
    bucket = `file://${path.join(dir, 'bucket')}`
    gw = await startGateway({loaded, env})
    await loginAs(f, {user: 'alice'})
    token = (await getIdentity(f.config, {env: f.env, store: f.store})).token
  })
  afterAll(() => closeGatewayTest(gw, f, [dir, pki?.dir]))

  const dbgate = (args: string[]) => run(process.execPath, [BIN, ...args], {env: {...env, NO_COLOR: '1'}, timeoutMs: 60_000})

  async function signIn(extra: Partial<pg.ClientConfig>): Promise<pg.DatabaseError | undefined> {
    const c = new pg.Client({host: '127.0.0.1', port: gw!.address.port, database: 'app', user: email, password: token, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}, application_name: 'psql-ish', ...extra})
    c.on('error', () => {})
    const error = await c.connect().then(
      async () => {
        await c.query('select 1')
        return undefined
      },
      (e: pg.DatabaseError) => e,
    )
    await c.end().catch(() => {})
    return error
  }

  it('records each refusal of a verified person as a signed session with no statement, and not a stranger\'s', async () => {
    expect((await signIn({database: 'dba_only'}))?.code).toBe('28000')
    expect((await signIn({database: 'billing'}))?.code).toBe('3D000')
    expect((await signIn({user: 'bob@example.com'}))?.code).toBe('28000')
    // A token that does not verify names nobody: counted and logged, not recorded as anyone's.
    expect((await signIn({password: `${token.slice(0, -4)}AAAA`}))?.code).toBe('28P01')
    expect(await signIn({})).toBeUndefined()
    // Draining ships the spool, as a gateway stopping does.
    await gw!.drain(2000)
    gw = undefined

    const list = await dbgate(['sessions', 'list', '--bucket', bucket, '--json'])
    expect(list.code, list.stdout + list.stderr).toBe(0)
    const sessions = (JSON.parse(list.stdout) as {sessions: {sessionId: string; user?: string; target: string; database?: string; refused?: {reason: string}; totals: {statements: number}; client?: {application?: string}}[]}).sessions
    const refused = sessions.filter((s) => s.refused).map((s) => ({user: s.user, target: s.target, database: s.database, reason: s.refused!.reason, statements: s.totals.statements, application: s.client?.application}))
    expect(refused.sort((a, b) => a.database!.localeCompare(b.database!) || a.reason.localeCompare(b.reason))).toEqual([
      {user: email, target: 'app', database: 'app', reason: 'not-allowed', statements: 0, application: 'psql-ish'},
      {user: email, target: '_unknown', database: 'billing', reason: 'unknown-target', statements: 0, application: 'psql-ish'},
      {user: email, target: 'dba_only', database: 'dba_only', reason: 'not-allowed', statements: 0, application: 'psql-ish'},
    ])
    // The session that signed in is there too, and nothing for the bad token.
    expect(sessions.filter((s) => !s.refused)).toHaveLength(1)
    expect(sessions).toHaveLength(4)

    const table = await dbgate(['sessions', 'list', '--bucket', bucket, '--denied'])
    expect(table.stdout).toMatch(/dba_only\s.*refused \(not-allowed\)/)
    expect(table.stdout).toMatch(/_unknown\s.*refused \(unknown-target\)/)

    const verify = await dbgate(['sessions', 'verify', '--bucket', bucket, '--signer', 'gw-test'])
    expect(verify.code, verify.stdout + verify.stderr).toBe(0)
    expect(verify.stdout.split('\n').filter((l) => l.startsWith('OK'))).toHaveLength(4)

    const out = path.join(dir, 'report')
    const report = await dbgate(['report', '--bucket', bucket, '--since', '1d', '--out', out, '--json', '--signer', 'gw-test'])
    expect(report.code, report.stderr).toBe(0)
    const made = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as {summary: {sessions: number; refusedSignIns: number}; refusedSignIns: {identity: string; target: string; database?: string; reason: string; message: string}[]}
    expect(made.summary.refusedSignIns).toBe(3)
    expect(made.refusedSignIns.map((r) => `${r.identity} ${r.target} ${r.database} ${r.reason}`).sort()).toEqual([
      `${email} _unknown billing unknown-target`,
      `${email} app app not-allowed`,
      `${email} dba_only dba_only not-allowed`,
    ])
    expect(made.refusedSignIns.find((r) => r.target === 'dba_only')!.message).toMatch(/may not use target "dba_only"/)
    expect(readFileSync(path.join(out, 'report.md'), 'utf8')).toMatch(/## Sign-ins refused[\s\S]*dba\\?_only[\s\S]*not-allowed/)
    expect(readFileSync(path.join(out, 'report.html'), 'utf8')).toMatch(/id="refused-sign-ins"[\s\S]*billing \(no such target\)/)
  })
})

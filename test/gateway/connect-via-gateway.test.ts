import {mkdtemp, readFile, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {fixture, loginAs, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {gatewayConfig, makePki, type TestPki, closeGatewayTest} from './helpers.js'

const BIN = path.resolve('bin/run.js')

/** `dbgate connect` and `dbgate targets` of a person whose configuration names a gateway and no targets. */
describe('dbgate connect through a gateway', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let gw: RunningGateway
  let dir: string
  let clientConfig: string
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwc')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwc-'))
    await withClient(db.url, (c) => c.query("create table customers (id int primary key, email text); insert into customers values (1, 'first.buyer@example.org')"))
    // The gateway's side: the only place the database password exists.
    const gwEnv = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    gw = await startGateway({
      loaded: gatewayConfig({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, env: gwEnv, targets: [...targetConfigText('app', db, 'allow: [engineering]'), ...targetConfigText('ops', db, 'allow: [dba]')]}),
      env: gwEnv,
    })
    // The person's side: identity and the gateway, no targets, no credentials.
    clientConfig = path.join(f.dir, 'dbgate.yaml')
    await writeFile(
      clientConfig,
      [
        'identity:',
        `  issuer: ${f.dev.issuer}`,
        `  clientId: ${f.dev.cliClientId}`,
        'gateway:',
        `  address: 127.0.0.1:${gw.address.port}`,
        `  ca: ${pki.ca}`,
        `  api: 127.0.0.1:${gw.api!.port}`,
        '',
      ].join('\n'),
    )
    const home = isolatedEnv()
    env = {...home, XDG_CONFIG_HOME: f.env.XDG_CONFIG_HOME, DBGATE_KEYRING: 'off', DBGATE_CONFIG: clientConfig, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: ''}
    await loginAs(f, {user: 'alice'})
  })
  afterAll(() => closeGatewayTest(gw, f, [dir, pki?.dir]))

  it('has no database credentials anywhere on the client side', async () => {
    const text = await readFile(clientConfig, 'utf8')
    expect(text).not.toMatch(/password|targets/)
    expect(Object.values(env).join('\n')).not.toContain(db.password)
  })

  it('runs psql through the local tunnel and the gateway, which enforces and masks', async () => {
    const script = 'select id, email from customers;\ndelete from customers;\nselect count(*) from customers;\n'
    const r = await run('node', [BIN, 'connect', 'app', '--', 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=0'], {env, input: script})
    expect(r.stdout).toMatch(/^1\|f\*+@example\.org$/m)
    expect(r.stdout).not.toMatch(/first\.buyer/)
    expect(r.stderr).toMatch(/denied by rule default\./)
    expect(r.stdout).toMatch(/^1$/m)
    expect(r.code).toBe(0)
  })

  it('says plainly when the gateway refuses the person, naming the groups that would let them in', async () => {
    const r = await run('node', [BIN, 'connect', 'ops', '--', 'psql', '-X', '-At', '-c', 'select 1'], {env})
    expect(r.code).toBe(4)
    expect(r.stderr).toMatch(/the gateway 127\.0\.0\.1:\d+ refused ops: alice@example\.com may not use target "ops"/)
    expect(r.stderr).toMatch(/would let you in: dba/)
  })

  it('lists the targets the gateway lets this identity use', async () => {
    const r = await run('node', [BIN, 'targets', '--json'], {env})
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toEqual([{name: 'app', gateway: `127.0.0.1:${gw.address.port}`}])
  })

  it('refuses a configuration that names a gateway and also targets', async () => {
    const both = path.join(dir, 'both.yaml')
    await writeFile(both, (await readFile(clientConfig, 'utf8')) + ['targets:', ...targetConfigText('app', db)].join('\n') + '\n')
    const r = await run('node', [BIN, 'targets'], {env: {...env, DBGATE_CONFIG: both}})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/names a gateway has no targets of its own/)
  })
})

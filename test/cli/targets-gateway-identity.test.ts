import {mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {gatewayConfig, makePki, type TestPki, closeGatewayTest} from '../gateway/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {fixture, loginAs, type Fixture} from '../identity/helpers.js'

const BIN = path.resolve('bin/run.js')

/**
 * `dbgate targets` of a gateway's client says whom the gateway let use nothing, in the gateway's
 * words: the label it answers with is the token's e-mail (or subject), text the IdP or its user chose.
 * Printed raw, an OSC 52 clipboard write, an erased line, a carriage return or a bidi override in it
 * reached the person's terminal.
 */
describe('dbgate targets names the identity the gateway answered for', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let gw: RunningGateway
  let dir: string
  let env: NodeJS.ProcessEnv
  const hostileEmail = 'mallory\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2K\r\u009b1A\u202e\u200b@example.com'

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture({users: [{id: 'mallory', password: 'mallory', email: hostileEmail, name: 'Mallory', groups: ['contractors']}]}), makePki(), createTestDatabase('gwt')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwt-'))
    const gwEnv = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
    gw = await startGateway({loaded: gatewayConfig({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, env: gwEnv, targets: targetConfigText('app', db, 'allow: [engineering]')}), env: gwEnv})
    const clientConfig = path.join(f.dir, 'dbgate.yaml')
    await writeFile(
      clientConfig,
      ['identity:', `  issuer: ${f.dev.issuer}`, `  clientId: ${f.dev.cliClientId}`, 'gateway:', `  address: 127.0.0.1:${gw.address.port}`, `  ca: ${pki.ca}`, `  api: 127.0.0.1:${gw.api!.port}`, ''].join('\n'),
    )
    env = {...isolatedEnv(), XDG_CONFIG_HOME: f.env.XDG_CONFIG_HOME, DBGATE_KEYRING: 'off', DBGATE_CONFIG: clientConfig, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: ''}
    await loginAs(f, {user: 'mallory'})
  })
  afterAll(() => closeGatewayTest(gw, f, [dir, pki?.dir]))

  it('with every control, bidi and invisible character as a visible escape', async () => {
    const r = await run('node', [BIN, 'targets'], {env})
    expect(r.code).toBe(0)
    expect(r.stderr).toContain('The gateway lets mallory\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2K\\x0d\\x9b1A\\u202e\\u200b@example.com use no targets.')
    for (const raw of ['\x1b', '\x07', '\r', '\u009b', '\u202e', '\u200b']) expect(r.stdout + r.stderr, `${JSON.stringify(raw)} reached the terminal`).not.toContain(raw)
  })
})

import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseConfigText} from '../../src/config/parse.js'
import {bindIdentity} from '../../src/connect/identity.js'
import {storeKey} from '../../src/identity/token-store.js'
import {targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {fixture, loginAs, type Fixture} from './helpers.js'
import {waitFor} from '../helpers/wait.js'

const BIN = path.resolve('bin/run.js')

/** Identity-bound tunnels: the real CLI, a real OIDC provider, a real database. */
describe('dbgate connect with an identity', () => {
  let f: Fixture
  let db: UpstreamInfo
  let configPath: string
  let env: NodeJS.ProcessEnv

  function configText(allow: string) {
    return [
      'identity:',
      `  issuer: ${f.dev.issuer}`,
      `  clientId: ${f.dev.cliClientId}`,
      'targets:',
      ...targetConfigText('app', db, `allow: [${allow}]`, 'APP_DB_PASSWORD'),
      '',
    ].join('\n')
  }

  beforeAll(async () => {
    f = await fixture()
    db = await createTestDatabase()
    configPath = path.join(f.dir, 'dbgate.yaml')
    await writeFile(configPath, configText('engineering, ci'))
    env = {...f.env, APP_DB_PASSWORD: db.password, DBGATE_CONFIG: configPath, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: ''}
  })
  afterAll(() => f.close())

  // The value comes back through masking, whose scanner would mask the e-mail in it: compare in SQL.
  const appNameIs = (expected: string) => ['--', 'psql', '-X', '-At', '-c', `select current_setting('application_name') = '${expected}'`]
  const appName = appNameIs('')

  it('refuses to open the tunnel before anyone has logged in', async () => {
    const r = await run('node', [BIN, 'connect', 'app', ...appName], {env})
    expect(r.code).toBe(4)
    expect(r.stderr).toMatch(/dbgate login/)
  })

  it('opens for a logged-in user in an allowed group, and names them to the database', async () => {
    await loginAs(f, {user: 'alice'})
    const r = await run('node', [BIN, 'connect', 'app', ...appNameIs('dbgate/alice@example.com psql')], {env})
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('t')
    expect(r.code).toBe(0)
  })

  it('refuses a user outside the allow list and says which groups would let them in', async () => {
    await loginAs(f, {user: 'bob'})
    const r = await run('node', [BIN, 'connect', 'app', ...appName], {env})
    expect(r.code).toBe(4)
    expect(r.stderr).toMatch(/bob@example\.com is not in any group allowed here \(member of: dba\)/)
    // oclif wraps long suggestions at the terminal width.
    expect(r.stderr).toMatch(/would let you in: engineering, ci\./)
  })

  it('refuses a tampered token given in DBGATE_TOKEN, without printing it', async () => {
    await loginAs(f, {user: 'alice'})
    const stored = (await f.store.load(storeKey(f.config)))!
    const [h, p, s] = stored.idToken!.split('.')
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString())
    claims.groups = ['dba', 'engineering']
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`
    const r = await run('node', [BIN, 'connect', 'app', ...appName], {env: {...env, DBGATE_TOKEN: forged}})
    expect(r.code).toBe(4)
    expect(r.stderr).toMatch(/signature/i)
    expect(r.stderr).not.toContain(forged)
  })

  it('opens for a service identity using client credentials', async () => {
    const r = await run('node', [BIN, 'connect', 'app', ...appNameIs(`dbgate/${f.dev.serviceClientId} psql`)], {
      env: {...env, XDG_CONFIG_HOME: path.join(f.dir, 'empty'), DBGATE_CLIENT_ID: f.dev.serviceClientId, DBGATE_CLIENT_SECRET: f.dev.serviceClientSecret},
    })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe('t')
  })

  it('renews the identity in place before the token expires', async () => {
    f.dev.ttl.idToken = 3
    f.dev.ttl.accessToken = 3
    try {
      await loginAs(f, {user: 'alice'})
      const loaded = {path: configPath, ...parseConfigText(configText('engineering'), configPath, {env})}
      const lost: Error[] = []
      const bound = (await bindIdentity(loaded, loaded.config.targets.app!, {env, marginMs: 2000, onLost: (e) => lost.push(e)}))!
      const first = bound.current()
      const renewed = await waitFor(() => bound.current().tokenHash !== first.tokenHash && bound.current(), 'the identity is renewed', {timeoutMs: 6000, intervalMs: 100})
      bound.stop()
      expect(lost).toEqual([])
      expect(renewed.tokenHash).not.toBe(first.tokenHash)
      expect(renewed.email).toBe('alice@example.com')
      expect(renewed.expiresAt.getTime()).toBeGreaterThan(first.expiresAt.getTime())
    } finally {
      f.dev.ttl.idToken = 3600
      f.dev.ttl.accessToken = 3600
    }
  })
})

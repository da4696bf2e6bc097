import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {decodeJwt} from 'jose'
import {afterAll, afterEach, beforeAll, describe, expect, test, vi} from 'vitest'
import Token from '../../src/commands/token.js'
import {storeKey} from '../../src/identity/token-store.js'
import {verifyToken} from '../../src/identity/verify.js'
import {fixture, loginAs, type Fixture} from './helpers.js'

let f: Fixture
let configFile: string
const saved = {...process.env}
let stdout = ''
let stderr = ''

beforeAll(async () => {
  f = await fixture()
  configFile = path.join(f.dir, 'dbgate.yaml')
  await writeFile(configFile, `identity:\n  issuer: ${f.dev.issuer}\n  clientId: ${f.dev.cliClientId}\ntargets:\n  prod:\n    host: 127.0.0.1\n    database: app\n    user: app\n    allow: [engineering]\n`)
})
afterAll(async () => {
  await f.close()
})

/** The process as `dbgate token` sees it, with everything it writes captured. */
function environment(extra: Record<string, string> = {}) {
  for (const k of ['DBGATE_TOKEN', 'DBGATE_CLIENT_ID', 'DBGATE_CLIENT_SECRET', 'DBGATE_CONFIG']) delete process.env[k]
  Object.assign(process.env, f.env, extra)
  stdout = ''
  stderr = ''
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += chunk.toString()
    return true
  })
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += chunk.toString()
    return true
  })
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void (stderr += `${args.join(' ')}\n`))
  vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void (stdout += `${args.join(' ')}\n`))
}

afterEach(async () => {
  vi.restoreAllMocks()
  process.env = {...saved}
  await f.store.remove(storeKey(f.config))
  f.dev.ttl.idToken = 600
})

/** What `$(dbgate token)` gives a shell: stdout without its trailing newline. */
const substituted = () => stdout.replace(/\n$/, '')

describe('dbgate token', () => {
  test('prints the signed-in identity’s token and nothing else on stdout; the token verifies', async () => {
    await loginAs(f, {user: 'alice'})
    environment()
    const out = await Token.run(['--config', configFile])
    const stored = await f.store.load(storeKey(f.config))
    expect(stdout).toBe(`${stored!.idToken}\n`)
    expect(substituted()).toBe(out.token)
    expect(substituted().split('.')).toHaveLength(3)
    const {identity} = await verifyToken(f.config, substituted(), {use: 'any'})
    expect(identity).toMatchObject({subject: 'alice', email: 'alice@example.com', groups: ['engineering']})
  })

  test('renews the sign-in first when the token would expire within --min-valid, through the stored refresh token', async () => {
    f.dev.ttl.idToken = 120
    await loginAs(f, {user: 'alice'})
    const before = (await f.store.load(storeKey(f.config)))!
    f.dev.ttl.idToken = 600

    // 120 s left is more than the default 60 s: the stored token as is, no refresh
    environment()
    await Token.run(['--config', configFile])
    expect(substituted()).toBe(before.idToken)

    // asking for 3 minutes makes it renew
    environment()
    await Token.run(['--config', configFile, '--min-valid', '3m'])
    const printed = substituted()
    expect(printed).not.toBe(before.idToken)
    const after = (await f.store.load(storeKey(f.config)))!
    expect(after.idToken).toBe(printed)
    expect(after.refreshToken).not.toBe(before.refreshToken) // the dev IdP rotates refresh tokens
    const exp = decodeJwt(printed).exp! * 1000
    expect(exp - Date.now()).toBeGreaterThan(3 * 60_000)
    await expect(verifyToken(f.config, printed, {use: 'any'})).resolves.toMatchObject({identity: {subject: 'alice'}})
    expect(stderr).not.toContain('Warning')
  })

  test('warns on stderr (stdout stays the token) when the IdP’s tokens are shorter-lived than --min-valid', async () => {
    f.dev.ttl.idToken = 120
    await loginAs(f, {user: 'alice'})
    environment()
    await Token.run(['--config', configFile, '--min-valid', '10m'])
    expect(substituted().split('.')).toHaveLength(3)
    expect(stdout.trim().split('\n')).toHaveLength(1)
    expect(stderr).toMatch(/tokens valid for less than the 600 s asked for/)
  })

  test('not signed in: exit 4 with the sign-in hint, and nothing on stdout', async () => {
    environment()
    await expect(Token.run(['--config', configFile])).rejects.toMatchObject({code: 'LOGIN_REQUIRED', oclif: {exit: 4}})
    expect(stdout).toBe('')
    expect(stderr).toContain('dbgate login')
  })

  test('service credentials in the environment: a fresh client-credentials access token', async () => {
    environment({DBGATE_CLIENT_ID: f.dev.serviceClientId, DBGATE_CLIENT_SECRET: f.dev.serviceClientSecret})
    const out = await Token.run(['--config', configFile])
    expect(out).toMatchObject({kind: 'service', source: 'client-credentials'})
    const {identity} = await verifyToken(f.config, substituted(), {use: 'access_token'})
    expect(identity).toMatchObject({subject: 'ci-bot', kind: 'service', groups: ['ci']})
  })

  test('DBGATE_TOKEN is verified and printed as is; a forged one is refused with exit 4', async () => {
    await loginAs(f, {user: 'bob'})
    const token = (await f.store.load(storeKey(f.config)))!.idToken!
    await f.store.remove(storeKey(f.config))
    environment({DBGATE_TOKEN: token})
    await expect(Token.run(['--config', configFile])).resolves.toMatchObject({source: 'env-token'})
    expect(substituted()).toBe(token)

    const [h, p] = token.split('.')
    environment({DBGATE_TOKEN: `${h}.${p}.${'A'.repeat(342)}`})
    await expect(Token.run(['--config', configFile])).rejects.toMatchObject({oclif: {exit: 4}})
    expect(stdout).toBe('')
  })

  test('--json gives the token with its expiry and source', async () => {
    await loginAs(f, {user: 'alice'})
    environment()
    const out = await Token.run(['--config', configFile, '--json'])
    expect(JSON.parse(stdout)).toEqual({token: out.token, expiresAt: out.expiresAt, kind: 'human', source: 'stored'})
  })

  test('a --min-valid that is not a duration is a usage error', async () => {
    environment()
    await expect(Token.run(['--config', configFile, '--min-valid', '60'])).rejects.toMatchObject({oclif: {exit: 2}})
    expect(stdout).toBe('')
  })
})

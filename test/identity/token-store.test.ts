import {chmod, mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterEach, beforeEach, describe, expect, test} from 'vitest'
import {openTokenStore, resetFallbackWarnings, type KeyringEntry, type StoredTokens} from '../../src/identity/token-store.js'

const KEY = 'https://login.example.com|dbgate-cli'
const tokens = (n = 1): StoredTokens => ({
  version: 1,
  kind: 'human',
  idToken: `id-token-secret-${n}`,
  accessToken: `access-token-secret-${n}`,
  refreshToken: `refresh-token-secret-${n}`,
  accessTokenExpiresAt: 1_900_000_000_000,
  savedAt: 1_800_000_000_000,
})

/** A keychain that refuses everything, like Secret Service on a headless box. */
const noKeychain = () => ({
  getPassword(): string | null {
    throw new Error('Platform secure storage failure: no secret service provider')
  },
  setPassword(): void {
    throw new Error('Platform secure storage failure: no secret service provider')
  },
  deletePassword(): boolean {
    throw new Error('Platform secure storage failure: no secret service provider')
  },
})

/** An in-memory keychain, recording which entries were used. */
function memoryKeychain() {
  const entries = new Map<string, string>()
  const factory = (service: string, account: string): KeyringEntry => ({
    getPassword: () => entries.get(`${service}/${account}`) ?? null,
    setPassword: (p) => void entries.set(`${service}/${account}`, p),
    deletePassword: () => entries.delete(`${service}/${account}`),
  })
  return {entries, factory}
}

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dbgate-store-'))
  resetFallbackWarnings()
})
afterEach(async () => {
  await rm(dir, {recursive: true, force: true})
})

const tokenFile = (warning: string) => warning.match(/in (\S+\.json)/)?.[1] as string

describe('token store', () => {
  test('without a keychain, falls back to a 0600 file in a 0700 directory and warns once', async () => {
    const warnings: string[] = []
    const store = openTokenStore({env: {}, configDir: dir, keyring: noKeychain, warn: (m) => warnings.push(m)})
    await store.save(KEY, tokens(1))
    await store.save(KEY, tokens(2))
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/No OS keychain is available here .*plain text/)
    expect(warnings[0]).not.toContain('secret-')

    const file = tokenFile(warnings[0])
    expect(path.dirname(file)).toBe(path.join(dir, 'tokens'))
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700)
    expect(await store.load(KEY)).toEqual(tokens(2))
  })

  test('re-asserts 0600 and 0700 on every write', async () => {
    const warnings: string[] = []
    const store = openTokenStore({env: {DBGATE_KEYRING: 'off'}, configDir: dir, warn: (m) => warnings.push(m)})
    await store.save(KEY, tokens(1))
    const file = tokenFile(warnings[0])
    await chmod(file, 0o644)
    await chmod(path.dirname(file), 0o755)
    await store.save(KEY, tokens(2))
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700)
  })

  test('DBGATE_KEYRING=off never touches the keychain', async () => {
    const keychain = memoryKeychain()
    const warnings: string[] = []
    const store = openTokenStore({env: {DBGATE_KEYRING: 'off'}, configDir: dir, keyring: keychain.factory, warn: (m) => warnings.push(m)})
    await store.save(KEY, tokens())
    expect(keychain.entries.size).toBe(0)
    expect(warnings[0]).toContain('DBGATE_KEYRING=off')
    expect(await store.load(KEY)).toEqual(tokens())
  })

  test('with a keychain, uses one entry per issuer+client, writes no file, and removes a stale fallback file', async () => {
    const keychain = memoryKeychain()
    const warnings: string[] = []
    const fallback = openTokenStore({env: {}, configDir: dir, keyring: noKeychain, warn: (m) => warnings.push(m)})
    await fallback.save(KEY, tokens(1))
    const staleFile = tokenFile(warnings[0])

    const store = openTokenStore({env: {}, configDir: dir, keyring: keychain.factory, warn: (m) => warnings.push(m)})
    await store.save(KEY, tokens(2))
    expect([...keychain.entries.keys()]).toEqual([`dbgate/${KEY}`])
    await expect(stat(staleFile)).rejects.toMatchObject({code: 'ENOENT'})
    expect(warnings).toHaveLength(1)
    expect(await store.load(KEY)).toEqual(tokens(2))

    expect(await store.remove(KEY)).toBe(true)
    expect(await store.load(KEY)).toBeUndefined()
    expect(await store.remove(KEY)).toBe(false)
  })

  test('an unreadable token file is reported without quoting its content', async () => {
    const store = openTokenStore({env: {DBGATE_KEYRING: 'off'}, configDir: dir})
    const warnings: string[] = []
    await openTokenStore({env: {DBGATE_KEYRING: 'off'}, configDir: dir, warn: (m) => warnings.push(m)}).save(KEY, tokens())
    const file = tokenFile(warnings[0])
    await writeFile(file, 'refresh-token-secret-9 is not JSON')
    const error = await store.load(KEY).catch((e: unknown) => e)
    expect(error).toMatchObject({code: 'TOKEN_STORE_FAILED'})
    expect(String((error as Error).message)).not.toContain('secret')
    expect((error as Error).cause).toBeUndefined()
    // The way out is to remove it and sign in again, not to turn off a keychain that is already off.
    expect((error as {nextStep: string}).nextStep).toMatch(/dbgate logout.*dbgate login/)
    expect((error as {nextStep: string}).nextStep).not.toMatch(/DBGATE_KEYRING/)
    expect(await store.remove(KEY)).toBe(true)
    expect(await store.load(KEY)).toBeUndefined()
  })

  test('the file lives under $XDG_CONFIG_HOME/dbgate/tokens by default', async () => {
    const warnings: string[] = []
    const store = openTokenStore({env: {DBGATE_KEYRING: 'off', XDG_CONFIG_HOME: dir}, warn: (m) => warnings.push(m)})
    await store.save(KEY, tokens())
    expect(path.dirname(tokenFile(warnings[0]))).toBe(path.join(dir, 'dbgate', 'tokens'))
    expect(JSON.parse(await readFile(tokenFile(warnings[0]), 'utf8')).key).toBe(KEY)
  })
})

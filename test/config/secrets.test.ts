import {randomBytes} from 'node:crypto'
import {chmod, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {Entry} from '@napi-rs/keyring'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {
  SECRET_ENV_UNSET,
  SECRET_FILE_UNREADABLE,
  SECRET_KEYCHAIN_MISSING,
  SECRET_KEYCHAIN_UNAVAILABLE,
  SECRET_SOURCE_INVALID,
  SecretError,
  resolveSecret,
} from '../../src/config/secrets.js'
import {inlineSecret} from '../../src/config/secret-ref.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dbgate-secrets-'))
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

async function rejection(p: Promise<unknown>): Promise<SecretError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(SecretError)
  return err as SecretError
}

describe('resolveSecret', () => {
  it('reads env:VAR', async () => {
    expect(await resolveSecret('env:PROD_DB_PASSWORD', {env: {PROD_DB_PASSWORD: 's3cret'}})).toBe('s3cret')
  })

  it('names the variable and the target when env:VAR is unset', async () => {
    const err = await rejection(resolveSecret('env:PROD_DB_PASSWORD', {env: {}, target: 'prod', keyPath: 'targets.prod.password'}))
    expect(err.code).toBe(SECRET_ENV_UNSET)
    expect(err.message).toBe('environment variable PROD_DB_PASSWORD is not set (needed by target "prod", targets.prod.password)')
    expect(err.fix).toBe('set PROD_DB_PASSWORD in the environment dbgate runs in, or change targets.prod.password to another source')
  })

  it('treats an empty variable as unset', async () => {
    const err = await rejection(resolveSecret({kind: 'env', name: 'EMPTY'}, {env: {EMPTY: ''}}))
    expect(err.message).toBe('environment variable EMPTY is empty')
  })

  it('reads a 0600 file:, trimming the trailing newline only, without warning', async () => {
    const file = join(dir, 'pg-0600')
    await writeFile(file, '  pa ss\n\n', {mode: 0o600})
    await chmod(file, 0o600)
    const warnings: string[] = []
    expect(await resolveSecret(`file:${file}`, {onWarning: (m) => warnings.push(m)})).toBe('  pa ss')
    expect(warnings).toEqual([])
  })

  it('resolves relative file: paths against baseDir', async () => {
    await writeFile(join(dir, 'rel'), 'x\r\n', {mode: 0o600})
    await chmod(join(dir, 'rel'), 0o600)
    expect(await resolveSecret('file:rel', {baseDir: dir, onWarning: () => {}})).toBe('x')
  })

  it.runIf(process.platform !== 'win32')('warns, without the value, when the file is readable by others', async () => {
    const file = join(dir, 'pg-0644')
    await writeFile(file, 'world-readable-value\n')
    await chmod(file, 0o644)
    const warnings: string[] = []
    expect(await resolveSecret({kind: 'file', path: file}, {target: 'prod', onWarning: (m) => warnings.push(m)})).toBe('world-readable-value')
    expect(warnings).toEqual([`secret file ${file} is readable by every user (mode 0644) (needed by target "prod"); run: chmod 600 ${file}`])
  })

  it.runIf(process.platform !== 'win32')('warns when the file is readable by its group', async () => {
    const file = join(dir, 'pg-0640')
    await writeFile(file, 'v')
    await chmod(file, 0o640)
    const warnings: string[] = []
    await resolveSecret({kind: 'file', path: file}, {onWarning: (m) => warnings.push(m)})
    expect(warnings).toEqual([`secret file ${file} is readable by its group (mode 0640); run: chmod 600 ${file}`])
  })

  it('fails clearly for a missing or empty file', async () => {
    const missing = join(dir, 'missing')
    const err = await rejection(resolveSecret(`file:${missing}`, {keyPath: 'targets.prod.password'}))
    expect(err.code).toBe(SECRET_FILE_UNREADABLE)
    expect(err.message).toBe(`cannot read secret file ${missing}: ENOENT (needed by targets.prod.password)`)
    const empty = join(dir, 'empty')
    await writeFile(empty, '\n', {mode: 0o600})
    await chmod(empty, 0o600)
    expect((await rejection(resolveSecret(`file:${empty}`))).message).toBe(`secret file ${empty} is empty`)
  })

  it('returns an inline secret as is', async () => {
    expect(await resolveSecret(inlineSecret('plain'))).toBe('plain')
    expect(await resolveSecret('plain')).toBe('plain')
  })

  it('rejects a malformed source without echoing it', async () => {
    const err = await rejection(resolveSecret('env:NOT-A-NAME'))
    expect(err.code).toBe(SECRET_SOURCE_INVALID)
    expect(err.message).not.toContain('NOT-A-NAME')
  })

  it('reports a keychain that cannot be reached, with the platform reason', async () => {
    const openKeychain = () => ({
      getPassword(): string | null {
        throw new Error('Platform failure: no D-Bus session')
      },
    })
    const err = await rejection(resolveSecret('keychain:prod', {openKeychain}))
    expect(err.code).toBe(SECRET_KEYCHAIN_UNAVAILABLE)
    expect(err.message).toBe('cannot read keychain entry dbgate/prod: Platform failure: no D-Bus session')
  })
})

// The Linux kernel keyring is a real OS store that works without a desktop session or D-Bus.
describe.runIf(process.platform === 'linux')('resolveSecret with a real keyring', () => {
  const open = (service: string, account: string) => new Entry(service, account, {linux: {store: 'keyutils'}})
  let available = false
  beforeAll(() => {
    // Twice: in a process without a session keyring the first write can fail while creating it.
    for (let attempt = 0; attempt < 2 && !available; attempt++) {
      const probe = open('dbgate', `dbgate-test-probe-${randomBytes(4).toString('hex')}`)
      try {
        probe.setPassword('probe')
        probe.deletePassword()
        available = true
      } catch {
        available = false
      }
    }
  })

  it('reads an entry', async (ctx) => {
    if (!available) ctx.skip()
    const name = `dbgate-test-${randomBytes(4).toString('hex')}`
    const entry = open('dbgate', name)
    entry.setPassword('from-keyring')
    try {
      expect(await resolveSecret(`keychain:${name}`, {openKeychain: open})).toBe('from-keyring')
    } finally {
      entry.deletePassword()
    }
  })

  it('says how to store a missing entry', async (ctx) => {
    if (!available) ctx.skip()
    const name = `dbgate-test-missing-${randomBytes(4).toString('hex')}`
    const err = await rejection(resolveSecret(`keychain:${name}`, {target: 'prod', openKeychain: open}))
    expect(err.code).toBe(SECRET_KEYCHAIN_MISSING)
    expect(err.message).toBe(`no keychain entry dbgate/${name} (needed by target "prod")`)
    expect(err.fix).toBe(
      `store it in the OS keychain under service "dbgate", account "${name}" (macOS: security add-generic-password -s dbgate -a ${name} -w), or use an env: or file: source`,
    )
  })
})

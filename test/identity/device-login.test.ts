import {stat} from 'node:fs/promises'
import {afterAll, beforeAll, describe, expect, test} from 'vitest'
import {approveDeviceCode, enterDeviceCode, pageText} from '../../src/dev/oidc-dev-browser.js'
import {defaultBrowserOpener} from '../../src/identity/browser.js'
import {withIdentityDefaults} from '../../src/identity/config.js'
import {deviceLogin} from '../../src/identity/device-login.js'
import {clearDiscoveryCache} from '../../src/identity/oidc.js'
import {getIdentity} from '../../src/identity/session.js'
import {storeKey} from '../../src/identity/token-store.js'
import {fixture, loginAs, type Fixture} from './helpers.js'
import {waitFor} from '../helpers/wait.js'

let f: Fixture
beforeAll(async () => {
  f = await fixture()
})
afterAll(async () => {
  await f.close()
})

describe('device login', () => {
  test('signs in through the device flow, stores the tokens, and getIdentity returns the verified person', async () => {
    const result = await loginAs(f, {user: 'alice'})
    const [prompt] = result.prompts
    expect(prompt.userCode).toMatch(/^[A-Z]{4}-[A-Z]{4}$/)
    expect(prompt.verificationUri).toBe(`${f.dev.issuer}/device`)
    expect(prompt.verificationUriComplete).toContain(encodeURIComponent(prompt.userCode))
    expect(result.identity).toMatchObject({subject: 'alice', email: 'alice@example.com', name: 'Alice Example', groups: ['engineering'], kind: 'human', issuer: f.dev.issuer})

    const stored = await f.store.load(storeKey(f.config))
    expect(stored?.refreshToken).toBeTruthy()
    expect(stored?.idToken).toBeTruthy()

    const session = await getIdentity(f.config, {store: f.store, env: f.env})
    expect(session.source).toBe('stored')
    expect(session.identity.subject).toBe('alice')
    expect(session.identity.tokenHash).toMatch(/^[0-9a-f]{64}$/)
    expect(session.identity.tokenHash).toBe(result.identity.tokenHash)
  })

  test('stores to a 0600 file, and says so once, when the keychain is off', async () => {
    const fresh = await fixture()
    try {
      await loginAs(fresh)
      await loginAs(fresh, {user: 'bob'})
      expect(fresh.warnings).toHaveLength(1)
      expect(fresh.warnings[0]).toContain('plain text')
      const file = fresh.warnings[0].match(/in (\S+\.json)/)?.[1] as string
      expect((await stat(file)).mode & 0o777).toBe(0o600)
    } finally {
      await fresh.close()
    }
  })

  test('keeps polling through authorization_pending and backs off on slow_down', async () => {
    f.dev.polls.length = 0
    const seen = (outcome: string) => () => f.dev.polls.some((p) => p.outcome === outcome)
    const result = await loginAs(f, {
      user: 'bob',
      // pending first, then one slow_down, then approve: the next poll must come ≥ 5 s later.
      beforeApprove: async () => {
        await waitFor(seen('authorization_pending'), 'the IdP has answered authorization_pending')
        f.dev.slowDownNext(1)
        await waitFor(seen('slow_down'), 'the IdP has answered slow_down')
      },
    })
    expect(result.identity.subject).toBe('bob')
    const outcomes = f.dev.polls.map((p) => p.outcome)
    const slow = outcomes.indexOf('slow_down')
    expect(outcomes.slice(0, slow).every((o) => o === 'authorization_pending')).toBe(true)
    expect(outcomes.slice(slow + 1)).toEqual(['tokens'])
    // RFC 8628 §3.5: after slow_down the interval grows by 5 s.
    expect(f.dev.polls[slow + 1].at - f.dev.polls[slow].at).toBeGreaterThanOrEqual(5_000)
  }, 30_000)

  test('a denied request fails with LOGIN_DENIED', async () => {
    await expect(loginAs(f, {deny: true})).rejects.toMatchObject({code: 'LOGIN_DENIED', name: 'LoginDeniedError'})
  })

  test('a code left unused until it expires fails with LOGIN_EXPIRED', async () => {
    f.dev.ttl.deviceCode = 1
    try {
      await expect(loginAs(f, {approve: false})).rejects.toMatchObject({code: 'LOGIN_EXPIRED'})
      expect(f.dev.polls.at(-1)?.outcome).toBe('expired_token')
    } finally {
      f.dev.ttl.deviceCode = 600
    }
  })

  test('a tab closed in the middle of signing in can be opened again with the same code', async () => {
    let reopened = ''
    let done: Promise<unknown> = Promise.resolve()
    const result = await deviceLogin(f.config, {
      store: f.store,
      openBrowser: false,
      ui: {
        showCode(prompt) {
          done = (async () => {
            // Code entered and confirmed, then the tab is closed on the sign-in page.
            await approveDeviceCode({verificationUri: prompt.verificationUri, userCode: prompt.userCode, user: 'alice', password: 'alice', closeBeforeSignIn: true})
            // The person opens the URL again and types the code once more.
            reopened = pageText((await enterDeviceCode(prompt.verificationUri, prompt.userCode)).html)
            if (!/Enter it again to continue/.test(reopened)) throw new Error(`reopening said: ${reopened}`)
            await approveDeviceCode({verificationUri: prompt.verificationUri, userCode: prompt.userCode, user: 'alice', password: 'alice'})
          })()
          done.catch(() => {})
        },
      },
      signal: AbortSignal.timeout(20_000),
    }).catch(async (error: unknown) => {
      await done
      throw error
    })
    await done
    expect(reopened).toContain('entered before, in a window that was closed before the sign-in finished')
    expect(reopened).not.toContain('not valid')
    expect(result.identity.subject).toBe('alice')
  })

  test('aborting the signal (Ctrl-C) fails with LOGIN_ABORTED at once, even between polls', async () => {
    // The IdP asks for an hour between polls: only an abort that interrupts the wait can end the login.
    const slow = await fixture({pollInterval: 3600})
    try {
      const controller = new AbortController()
      const login = deviceLogin(slow.config, {
        store: slow.store,
        openBrowser: false,
        signal: controller.signal,
        ui: {showCode: () => {}, waiting: () => controller.abort()},
      })
      const outcome = await Promise.race([
        login.then(
          () => 'signed in',
          (e: {code?: string}) => e.code,
        ),
        new Promise((r) => setTimeout(r, 15_000, 'still waiting for the next poll')),
      ])
      expect(outcome).toBe('LOGIN_ABORTED')
    } finally {
      await slow.close()
    }
  })

  test('opens the browser at the verification URI without the code, which the person types there', async () => {
    const opened: string[] = []
    const seen: {url: string; opened: boolean}[] = []
    let approval: Promise<unknown> = Promise.resolve()
    let shown = ''
    const result = await deviceLogin(f.config, {
      store: f.store,
      openBrowser: async (url) => {
        opened.push(url)
        // The "browser" lands on the device page; the person enters the code their terminal shows.
        approval = approveDeviceCode({verificationUri: url, userCode: shown, user: 'carol', password: 'carol'})
        return true
      },
      ui: {showCode: (p) => void (shown = p.userCode), browser: (r) => seen.push(r)},
    })
    await approval
    expect(result.identity.subject).toBe('carol')
    expect(opened).toHaveLength(1)
    // Another local user reads an opener's arguments (`ps`): the code is not among them.
    expect(opened[0]).toMatch(/\/device$/)
    expect(opened[0]).not.toContain(shown)
    expect(seen).toEqual([{url: opened[0], opened: true}])
  })

  test('an unreachable IdP fails with IDP_UNREACHABLE and a next step', async () => {
    clearDiscoveryCache()
    const config = withIdentityDefaults({issuer: 'http://127.0.0.1:9', clientId: 'dbgate-cli'})
    const error = await deviceLogin(config, {openBrowser: false, ui: {showCode: () => {}}}).catch((e: unknown) => e)
    expect(error).toMatchObject({code: 'IDP_UNREACHABLE'})
    expect((error as Error & {nextStep: string}).nextStep).toMatch(/network/)
  })
})

describe('defaultBrowserOpener', () => {
  test('opens nothing on Linux without a display (SSH, containers)', () => {
    expect(defaultBrowserOpener({}, 'linux')).toBeUndefined()
    expect(defaultBrowserOpener({DISPLAY: ':0'}, 'linux')).toBeTypeOf('function')
    expect(defaultBrowserOpener({WAYLAND_DISPLAY: 'wayland-0'}, 'freebsd')).toBeTypeOf('function')
    expect(defaultBrowserOpener({}, 'darwin')).toBeTypeOf('function')
  })

  test('reports failure when the opener program does not exist', async () => {
    const open = defaultBrowserOpener({DISPLAY: ':0', PATH: '/nonexistent'}, 'linux')
    const saved = process.env.PATH
    process.env.PATH = '/nonexistent'
    try {
      await expect(open?.('http://127.0.0.1/')).resolves.toBe(false)
    } finally {
      process.env.PATH = saved
    }
  })
})

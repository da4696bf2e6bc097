import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload} from 'jose'
import {approveDeviceCode} from '../../src/dev/oidc-dev-browser.js'
import {startDevOidcProvider, type DevProvider, type DevProviderOptions} from '../../src/dev/oidc-dev-provider.js'
import {withIdentityDefaults, type IdentityConfig} from '../../src/identity/config.js'
import {deviceLogin, type DeviceCodePrompt, type DeviceLoginOptions} from '../../src/identity/device-login.js'
import {openTokenStore, type TokenStore} from '../../src/identity/token-store.js'

export interface Fixture {
  dev: DevProvider
  config: IdentityConfig
  signingKey: JWK
  env: NodeJS.ProcessEnv
  store: TokenStore
  warnings: string[]
  dir: string
  close(): Promise<void>
}

/** A new RS256 signing key as an IdP publishes it (private parts included, for minting tokens). */
export async function rsaSigningKey(kid: string): Promise<JWK> {
  const {privateKey} = await generateKeyPair('RS256', {extractable: true})
  return {...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid}
}

/** A real oidc-provider on loopback, a config pointing at it, and a private file token store. */
export async function fixture(options: DevProviderOptions = {}, config: Partial<IdentityConfig> = {}): Promise<Fixture> {
  const signingKey = await rsaSigningKey('test-key')
  const dev = await startDevOidcProvider({pollInterval: 0.1, signingKey, ...options})
  const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-identity-'))
  const env: NodeJS.ProcessEnv = {DBGATE_KEYRING: 'off', XDG_CONFIG_HOME: dir}
  const warnings: string[] = []
  return {
    dev,
    config: withIdentityDefaults({issuer: dev.issuer, clientId: dev.cliClientId, ...config}),
    signingKey,
    env,
    store: openTokenStore({env, warn: (m) => warnings.push(m)}),
    warnings,
    dir,
    async close() {
      await dev.stop()
      await rm(dir, {recursive: true, force: true})
    },
  }
}

export interface LoginAs {
  user?: string
  deny?: boolean
  /** Runs once the code is shown and before the approval is sent. */
  beforeApprove?: (prompt: DeviceCodePrompt) => Promise<void>
  /** Skip approving altogether (the code is left to expire). */
  approve?: boolean
}

/** A full device login with the "browser" played over HTTP against the dev provider. */
export async function loginAs(f: Fixture, as: LoginAs = {}, extra: Partial<DeviceLoginOptions> = {}) {
  const user = as.user ?? 'alice'
  let approval: Promise<unknown> = Promise.resolve()
  const prompts: DeviceCodePrompt[] = []
  const login = deviceLogin(f.config, {
    store: f.store,
    openBrowser: false,
    env: f.env,
    ...extra,
    ui: {
      showCode(prompt) {
        prompts.push(prompt)
        if (as.approve === false) return
        approval = (async () => {
          await as.beforeApprove?.(prompt)
          await approveDeviceCode({verificationUri: prompt.verificationUri, userCode: prompt.userCode, user, password: user, deny: as.deny})
        })()
      },
    },
  })
  const settled = await Promise.allSettled([login, login.finally(() => approval)])
  if (settled[0].status === 'rejected') throw settled[0].reason
  if (settled[1].status === 'rejected') throw settled[1].reason
  return {...settled[0].value, prompts}
}

/** Signs `claims` with `key` (by default the provider's own key) — for tokens the IdP would never issue. */
export async function mint(key: JWK, claims: JWTPayload, header: {typ?: string; kid?: string} = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({iat: now, exp: now + 300, ...claims})
    .setProtectedHeader({alg: 'RS256', kid: header.kid ?? key.kid, ...(header.typ ? {typ: header.typ} : {})})
    .sign(await importJWK(key, 'RS256'))
}


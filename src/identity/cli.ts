/**
 * What `dbgate login`, `whoami` and `logout` do, apart from oclif: the command files only parse
 * flags and call these, so the same flows can be driven from tests or another front end.
 */
import {resolveSecret} from '../config/secrets.js'
import {visible} from '../util/visible.js'
import {requireTrustedIdentity} from '../config/trust.js'
import type {LoadedConfig} from '../config/types.js'
import type {IdentityConfig} from './config.js'
import {deviceLogin, type DeviceCodePrompt, type DeviceLoginUI, type LoginResult} from './device-login.js'
import {logout, type LogoutResult} from './logout.js'
import {loginClientCredentials, type ServiceCredentials} from './service.js'
import {getIdentity, type SessionSource} from './session.js'
import {openTokenStore, type TokenStore} from './token-store.js'
import {identityLabel, type Identity} from './types.js'

export interface CliIO {
  /** Progress, prompts and warnings: stderr, so stdout stays clean for --json and pipes. */
  err: {write(text: string): unknown}
  /** Whether stderr is a terminal: spinner and the emphasized code notice only then. */
  interactive: boolean
  env: NodeJS.ProcessEnv
}

export class IdentityNotConfiguredError extends Error {
  readonly code = 'IDENTITY_NOT_CONFIGURED'
  readonly nextStep = 'Add an `identity:` section with `issuer` and `clientId` to dbgate.yaml (see docs/identity.md).'
  constructor(configPath: string) {
    super(`${configPath} has no identity section, so dbgate does not know where to sign you in.`)
    this.name = 'IdentityNotConfiguredError'
  }
}

/**
 * The identity section of a loaded config, with its client secret (if any) resolved. Refused before
 * anything is read when an untrusted ./dbgate.yaml would have the person's own secret sent to its issuer.
 */
export async function identityConfigFrom(loaded: LoadedConfig, env: NodeJS.ProcessEnv = process.env): Promise<IdentityConfig> {
  const section = loaded.config.identity
  if (!section) throw new IdentityNotConfiguredError(loaded.path)
  await requireTrustedIdentity(loaded, env)
  const {clientSecret, ...rest} = section
  return {
    ...rest,
    ...(clientSecret ? {clientSecret: await resolveSecret(clientSecret, {keyPath: 'identity.clientSecret', env})} : {}),
  }
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']

/** The terminal side of the device flow, in the style of `gh auth login`. */
export function terminalDeviceUI(io: CliIO): DeviceLoginUI & {stop(): void} {
  let timer: NodeJS.Timeout | undefined
  const stop = () => {
    if (!timer) return
    clearInterval(timer)
    timer = undefined
    io.err.write('\r\x1b[2K')
  }
  return {
    showCode(prompt: DeviceCodePrompt) {
      if (io.interactive) {
        io.err.write(`! First copy your one-time code: ${prompt.userCode}\n`)
        io.err.write(`  Then open ${prompt.verificationUri} in a browser on any device.\n`)
      } else {
        io.err.write(`To sign in, open ${prompt.verificationUri} and enter the code ${prompt.userCode}\n`)
      }
      if (prompt.verificationUriComplete) io.err.write(`  (or open ${prompt.verificationUriComplete} to have the code filled in)\n`)
      io.err.write(`  The code expires at ${prompt.expiresAt.toLocaleTimeString()}.\n`)
    },
    browser({opened}) {
      io.err.write(opened ? '  Opened your browser.\n' : '  Could not open a browser here; open the URL above yourself.\n')
    },
    waiting() {
      if (!io.interactive) return
      let frame = 0
      timer = setInterval(() => {
        io.err.write(`\r${SPINNER[frame++ % SPINNER.length]} Waiting for you to approve the sign-in… (Ctrl-C to cancel)`)
      }, 100)
      timer.unref()
    },
    done: stop,
    stop,
  }
}

export interface LoginCommandOptions {
  io: CliIO
  browser: boolean
  /** Set for `--client-credentials`. */
  service?: ServiceCredentials
  scopes?: string[]
  signal?: AbortSignal
  store?: TokenStore
}

export async function runLogin(config: IdentityConfig, options: LoginCommandOptions): Promise<LoginResult> {
  const {io} = options
  const warn = (message: string) => io.err.write(`Warning: ${message}\n`)
  const store = options.store ?? openTokenStore({warn, env: io.env})
  if (options.service) return loginClientCredentials(config, options.service, {store})
  const ui = terminalDeviceUI(io)
  try {
    return await deviceLogin(config, {
      ui,
      openBrowser: options.browser ? undefined : false,
      signal: options.signal,
      scopes: options.scopes,
      store,
      env: io.env,
    })
  } finally {
    ui.stop()
  }
}

export interface WhoamiOutput {
  subject: string
  email?: string
  name?: string
  groups: string[]
  issuer: string
  kind: Identity['kind']
  clientId?: string
  expiresAt: string
  /** Where the identity came from: `stored` (dbgate login), `env-token` (DBGATE_TOKEN) or `client-credentials`. */
  source: SessionSource
  tokenHash: string
}

export async function runWhoami(config: IdentityConfig, options: {io: CliIO; store?: TokenStore}): Promise<WhoamiOutput> {
  const warn = (message: string) => options.io.err.write(`Warning: ${message}\n`)
  const session = await getIdentity(config, {env: options.io.env, store: options.store ?? openTokenStore({warn, env: options.io.env})})
  const id = session.identity
  return {
    subject: id.subject,
    email: id.email,
    name: id.name,
    groups: id.groups,
    issuer: id.issuer,
    kind: id.kind,
    clientId: id.clientId,
    expiresAt: id.expiresAt.toISOString(),
    source: session.source,
    tokenHash: id.tokenHash,
  }
}

export interface TokenOutput {
  /** The verified token the identity rests on: what a gateway takes as the password. */
  token: string
  expiresAt: string
  kind: Identity['kind']
  source: SessionSource
}

export interface TokenCommandOptions {
  io: CliIO
  /** The token must stay valid at least this long; a stored sign-in is renewed first otherwise. */
  minValidMs: number
  store?: TokenStore
  now?: () => Date
}

/**
 * `dbgate token`: a token that stays valid for at least `minValidMs`, for `PGPASSWORD=$(dbgate token)`.
 * It is the token dbgate itself verifies (the ID token of a person by default, the access token of a
 * service or with `identity.verify: access_token`), renewed through the session's one refresh path.
 */
export async function runToken(config: IdentityConfig, options: TokenCommandOptions): Promise<TokenOutput> {
  const {io} = options
  const now = options.now ?? (() => new Date())
  const warn = (message: string) => io.err.write(`Warning: ${message}\n`)
  const session = await getIdentity(config, {
    env: io.env,
    store: options.store ?? openTokenStore({warn, env: io.env}),
    refreshMarginMs: options.minValidMs,
    now,
    warn,
  })
  const left = session.identity.expiresAt.getTime() - now().getTime()
  if (left <= options.minValidMs) {
    warn(
      session.source === 'env-token'
        ? `DBGATE_TOKEN expires ${relative(left)}, and a token given in the environment cannot be renewed.`
        : `the identity provider issues tokens valid for less than the ${Math.round(options.minValidMs / 1000)} s asked for; this one expires ${relative(left)}.`,
    )
  }
  return {token: session.token, expiresAt: session.identity.expiresAt.toISOString(), kind: session.identity.kind, source: session.source}
}

function relative(ms: number): string {
  const minutes = Math.round(ms / 60_000)
  if (Math.abs(minutes) < 1) return ms >= 0 ? 'in under a minute' : 'just now'
  if (Math.abs(minutes) < 120) return ms >= 0 ? `in ${minutes} min` : `${-minutes} min ago`
  const hours = Math.round(minutes / 60)
  return ms >= 0 ? `in ${hours} h` : `${-hours} h ago`
}

/** Human-readable `whoami`; a tab-separated `key\tvalue` list when not on a terminal. */
export function formatWhoami(w: WhoamiOutput, interactive: boolean, now: Date = new Date()): string {
  const source = {stored: 'dbgate login', 'env-token': 'DBGATE_TOKEN', 'client-credentials': 'DBGATE_CLIENT_ID/SECRET'}[w.source]
  const rows: [string, string][] = [
    ['subject', w.subject],
    ['email', w.email ?? ''],
    ['name', w.name ?? ''],
    ['groups', w.groups.join(', ')],
    ['kind', w.kind],
    ['issuer', w.issuer],
    ['expires', interactive ? `${w.expiresAt} (${relative(Date.parse(w.expiresAt) - now.getTime())})` : w.expiresAt],
    ['source', source],
  ]
  // Names, e-mail and groups are the IdP's claims, which people often set themselves: shown as text.
  if (!interactive) return rows.map(([k, v]) => `${k}\t${visible(v)}`).join('\n')
  const head = `Signed in as ${visible(identityLabel(w))}${w.kind === 'service' ? ' (service identity)' : ''}`
  return [head, ...rows.map(([k, v]) => `  ${k.padEnd(8)} ${visible(v) || '-'}`)].join('\n')
}

export async function runLogout(config: IdentityConfig, options: {io: CliIO; store?: TokenStore}): Promise<LogoutResult> {
  return logout(config, {env: options.io.env, store: options.store ?? openTokenStore({env: options.io.env})})
}

export function formatLogout(config: IdentityConfig, result: LogoutResult): string {
  const lines = [result.removed ? `Signed out of ${config.issuer}; stored tokens removed.` : `No stored sign-in for ${config.issuer}.`]
  if (result.revocation === 'revoked') lines.push('The refresh token was revoked at the identity provider.')
  if (result.revocation === 'unsupported') lines.push('The identity provider offers no revocation endpoint; its tokens stay valid until they expire.')
  // The error quotes the IdP's own `error` and `error_description`: its words, not ours to print raw.
  if (result.revocation === 'failed') lines.push(`Revocation at the identity provider failed (${visible(result.revocationError ?? '')}); tokens stay valid there until they expire.`)
  return lines.join('\n')
}

export function processIO(): CliIO {
  return {err: process.stderr, interactive: Boolean(process.stderr.isTTY), env: process.env}
}

/** Ctrl-C aborts the returned signal instead of killing the process, so cleanup and exit 130 happen. */
export function interruptSignal(): {signal: AbortSignal; dispose(): void} {
  const controller = new AbortController()
  const onSigint = () => controller.abort()
  process.once('SIGINT', onSigint)
  return {signal: controller.signal, dispose: () => process.removeListener('SIGINT', onSigint)}
}

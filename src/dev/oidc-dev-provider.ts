/**
 * DEVELOPMENT-ONLY OpenID Provider for tests and `dbgate demo`. It is a real oidc-provider
 * (device flow, client credentials, refresh tokens, revocation, JWKS), but its users and passwords
 * are fixed in code, consent is automatic, it speaks plain HTTP on loopback, and its keys live in
 * memory. Never point a production dbgate at it.
 */
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {exportJWK, generateKeyPair, type JWK} from 'jose'
import type Provider from 'oidc-provider'
import type {KoaContext} from 'oidc-provider'
import {withoutRuntimeWarning} from '../util/quiet-warnings.js'

// Imported when a provider starts, not when this module loads: oidc-provider warns about Node 20
// as it is imported (see quiet-warnings.ts), and loading the CLI's commands must not import it.
const loadProvider = () =>
  withoutRuntimeWarning(async () => {
    const oidc = await import('oidc-provider')
    const {createMemoryAdapter} = await import('oidc-provider/lib/adapters/memory_adapter.js')
    return {ProviderClass: oidc.default, errors: oidc.errors, createMemoryAdapter}
  })

export interface DevUser {
  id: string
  password: string
  email: string
  name: string
  groups: string[]
}

export const DEV_USERS: readonly DevUser[] = [
  {id: 'alice', password: 'alice', email: 'alice@example.com', name: 'Alice Example', groups: ['engineering']},
  {id: 'bob', password: 'bob', email: 'bob@example.com', name: 'Bob Example', groups: ['dba']},
  {id: 'carol', password: 'carol', email: 'carol@example.com', name: 'Carol Example', groups: ['auditors']},
]

/** Lifetimes in seconds; read on every issue, so tests may change them on a running provider. */
export interface DevTtls {
  accessToken: number
  idToken: number
  refreshToken: number
  deviceCode: number
  clientCredentials: number
}

export interface DevProviderOptions {
  /** 0 (default) picks a free port. */
  port?: number
  host?: string
  users?: readonly DevUser[]
  /** The public device-code client dbgate logs in as. Default `dbgate-cli`. */
  cliClientId?: string
  /** The confidential client-credentials client. Default `ci-bot` / `ci-bot-secret`. */
  serviceClientId?: string
  serviceClientSecret?: string
  /** Groups carried by service tokens (in the `groups` claim). Default `['ci']`. */
  serviceGroups?: string[]
  /** Resource indicator for which JWT access tokens are issued. Default `urn:dbgate`. */
  apiResource?: string
  /** `aud` of those JWT access tokens. Default: the CLI client id, so dbgate's default config accepts them. */
  apiAudience?: string
  ttl?: Partial<DevTtls>
  /** `interval` (seconds, fractions allowed) put into device authorization responses. Default 5. */
  pollInterval?: number
  /** Signing key; default a fresh RS256 key per start. */
  signingKey?: JWK
  /**
   * Every refresh issues a new refresh token and spends the old one (default true). A spent one
   * presented again is taken as stolen: oidc-provider revokes the whole grant, as Okta, Auth0 and
   * Entra ID do with rotation on.
   */
  rotateRefreshTokens?: boolean
}

export interface DevPoll {
  at: number
  /** The OAuth error returned, or `tokens` when the poll succeeded. */
  outcome: string
}

export interface DevProvider {
  issuer: string
  port: number
  cliClientId: string
  serviceClientId: string
  serviceClientSecret: string
  apiResource: string
  apiAudience: string
  users: readonly DevUser[]
  ttl: DevTtls
  /** Device-code polls seen at the token endpoint, in order. */
  polls: DevPoll[]
  /** Answer the next `n` pending device-code polls with `slow_down` (oidc-provider never does by itself). */
  slowDownNext(n: number): void
  /** The signing key's public half, for tests that forge tokens with another key. */
  publicJwk: JWK
  stop(): Promise<void>
}

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'

export async function startDevOidcProvider(options: DevProviderOptions = {}): Promise<DevProvider> {
  const host = options.host ?? '127.0.0.1'
  const users = options.users ?? DEV_USERS
  const cliClientId = options.cliClientId ?? 'dbgate-cli'
  const serviceClientId = options.serviceClientId ?? 'ci-bot'
  const serviceClientSecret = options.serviceClientSecret ?? 'ci-bot-secret'
  const serviceGroups = options.serviceGroups ?? ['ci']
  const apiResource = options.apiResource ?? 'urn:dbgate'
  const apiAudience = options.apiAudience ?? cliClientId
  const ttl: DevTtls = {accessToken: 600, idToken: 600, refreshToken: 86_400, deviceCode: 600, clientCredentials: 600, ...options.ttl}
  const pollInterval = options.pollInterval ?? 5

  let signingKey = options.signingKey
  if (!signingKey) {
    const {privateKey} = await generateKeyPair('RS256', {extractable: true})
    signingKey = {...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: `dev-${Date.now().toString(36)}`}
  }
  const {d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk} = signingKey

  // The issuer must be known before the provider exists, so bind the port first.
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  const issuer = `http://${host}:${port}`

  const {ProviderClass, errors, createMemoryAdapter} = await loadProvider()
  const provider = new ProviderClass(issuer, {
    // Per-instance memory storage: several providers in one process (tests) never see each other's tokens.
    // Entries are kept 60 s past their expiry, as production IdPs do, so a device code polled after it
    // lapsed gets expired_token rather than racing the store's eviction into "not found" (invalid_grant).
    adapter: createMemoryAdapter(60),
    clients: [
      {
        client_id: cliClientId,
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: [DEVICE_GRANT, 'refresh_token'],
        response_types: [],
        redirect_uris: [],
      },
      {
        client_id: serviceClientId,
        client_secret: serviceClientSecret,
        token_endpoint_auth_method: 'client_secret_post',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
    ],
    async findAccount(_ctx: unknown, id: string) {
      const user = users.find((u) => u.id === id)
      if (!user) return undefined
      return {
        accountId: user.id,
        async claims() {
          return {sub: user.id, email: user.email, email_verified: true, name: user.name, preferred_username: user.id, groups: user.groups}
        },
      }
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'groups'],
    },
    // Put the scope's claims into the ID token too: dbgate verifies the ID token, not userinfo.
    conformIdTokenClaims: false,
    interactions: {url: (_ctx: unknown, interaction: {uid: string}) => `/interaction/${interaction.uid}`},
    features: {
      devInteractions: {enabled: false},
      deviceFlow: {
        enabled: true,
        userCodeInputSource: async (ctx: KoaContext, form: string, _out: unknown, err?: {name?: string; userCode?: string}) => {
          const message = !err
            ? 'Enter the code shown by dbgate.'
            : err.name === 'AlreadyUsedError' && err.userCode
              ? await reopened(ctx, err.userCode)
              : err.name === 'ExpiredError'
                ? 'That code has expired. Press Ctrl-C in your terminal and run <code>dbgate login</code> again for a new one.'
                : err.userCode || err.name === 'NoCodeError'
                  ? 'That code is not valid. Check it against your terminal and try again.'
                  : err.name === 'AbortedError'
                    ? 'The sign-in was cancelled.'
                    : 'The request could not be processed.'
          ctx.type = 'html'
          ctx.body = page('Device sign-in', `<p>${message}</p>${form}<button type="submit" form="op.deviceInputForm">Continue</button>`)
        },
        userCodeConfirmSource: async (ctx: KoaContext, form: string, client: {clientId: string}, _info: unknown, userCode: string) => {
          ctx.type = 'html'
          ctx.body = page(
            'Confirm device sign-in',
            `<p>Client <code>${escapeHtml(client.clientId)}</code> asks to sign you in. Code: <code>${escapeHtml(userCode)}</code>. Continue only if it matches your terminal.</p>
${form}<button type="submit" form="op.deviceConfirmForm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`,
          )
        },
        successSource: async (ctx: KoaContext) => {
          ctx.type = 'html'
          ctx.body = page('Signed in', '<p>You are signed in to dbgate. You can close this page and return to your terminal.</p>')
        },
      },
      clientCredentials: {enabled: true},
      // A client may revoke only its own tokens; a stranger's token is silently ignored (RFC 7009 §2.2).
      revocation: {enabled: true, allowedPolicy: async (_ctx: unknown, client: {clientId: string}, token: {clientId: string}) => token.clientId === client.clientId},
      resourceIndicators: {
        enabled: true,
        // Only the service client gets a resource by default: its tokens must be JWTs dbgate can verify.
        defaultResource: async (_ctx: unknown, client: {clientId: string}, oneOf?: string) =>
          oneOf ?? (client.clientId === serviceClientId ? apiResource : undefined),
        getResourceServerInfo: async (_ctx: unknown, resource: string) => {
          if (resource !== apiResource) throw new errors.InvalidTarget()
          return {scope: 'dbgate', audience: apiAudience, accessTokenTTL: ttl.clientCredentials, accessTokenFormat: 'jwt', jwt: {sign: {alg: 'RS256'}}}
        },
        useGrantedResource: async () => true,
      },
    },
    async extraTokenClaims(_ctx: unknown, token: {kind: string; clientId?: string}) {
      return token.kind === 'ClientCredentials' && token.clientId === serviceClientId ? {groups: serviceGroups} : undefined
    },
    rotateRefreshToken: options.rotateRefreshTokens ?? true,
    async issueRefreshToken(_ctx: unknown, client: {grantTypeAllowed(type: string): boolean}, code: {scopes: Set<string>}) {
      return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access')
    },
    ttl: {
      AccessToken: () => ttl.accessToken,
      IdToken: () => ttl.idToken,
      RefreshToken: () => ttl.refreshToken,
      DeviceCode: () => ttl.deviceCode,
      ClientCredentials: () => ttl.clientCredentials,
      // A grant is made when the person approves the code and used when the CLI next polls: it must
      // outlive that poll even when a test makes refresh tokens expire within a second.
      Grant: () => Math.max(ttl.refreshToken, ttl.deviceCode),
      Session: () => ttl.refreshToken,
      Interaction: () => 600,
    },
    jwks: {keys: [signingKey]},
    cookies: {keys: ['dbgate-dev-provider-cookie-key-not-secret']},
    pkce: {required: () => false},
  })

  const polls: DevPoll[] = []
  let slowDowns = 0

  provider.use(async (ctx, next) => {
    if (ctx.path.startsWith('/interaction/')) return interaction(provider, users, ctx)
    await next()
    if (ctx.method === 'POST' && ctx.path === '/device/auth' && ctx.status === 200 && isRecord(ctx.body)) {
      ctx.body = {...ctx.body, interval: pollInterval}
    }
    if (ctx.method === 'POST' && ctx.path === '/token') {
      const body = isRecord(ctx.body) ? ctx.body : {}
      const grantType = (ctx as unknown as {oidc?: {params?: {grant_type?: string}}}).oidc?.params?.grant_type
      if (grantType !== DEVICE_GRANT) return
      if (body.error === 'authorization_pending' && slowDowns > 0) {
        slowDowns -= 1
        ctx.body = {error: 'slow_down', error_description: 'development provider: polling slowed on request'}
      }
      const outcome = isRecord(ctx.body) && typeof ctx.body.error === 'string' ? ctx.body.error : 'tokens'
      polls.push({at: Date.now(), outcome})
    }
  })

  server.on('request', provider.callback())

  return {
    issuer,
    port,
    cliClientId,
    serviceClientId,
    serviceClientSecret,
    apiResource,
    apiAudience,
    users,
    ttl,
    polls,
    slowDownNext(n) {
      slowDowns = n
    },
    publicJwk,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections()
        server.close((error) => (error ? reject(error) : resolve()))
      }),
  }
}

/**
 * A code entered again: usually the person closed the tab in the middle of signing in, and the
 * terminal is still waiting. An unfinished sign-in is reset so the code can be entered again;
 * a finished or refused one is said to be so.
 */
async function reopened(ctx: KoaContext, userCode: string): Promise<string> {
  const {normalize} = await import('oidc-provider/lib/helpers/user_codes.js')
  const provider = (ctx as unknown as {oidc: {provider: {DeviceCode: {findByUserCode(code: string, opts: {ignoreExpiration: boolean}): Promise<DeviceCodeState | undefined>}}}}).oidc.provider
  const code = await provider.DeviceCode.findByUserCode(normalize(userCode), {ignoreExpiration: true})
  if (code?.accountId) return 'This code was already used to sign in. Return to your terminal.'
  if (code?.error) return 'The sign-in with this code was cancelled. Press Ctrl-C in your terminal and run <code>dbgate login</code> again.'
  if (code?.inFlight) {
    code.inFlight = false
    await code.save()
    return 'This code was entered before, in a window that was closed before the sign-in finished. Enter it again to continue.'
  }
  return 'That code is not valid. Check it against your terminal and try again.'
}

interface DeviceCodeState {
  accountId?: string
  error?: string
  inFlight?: boolean
  save(): Promise<unknown>
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

async function readForm(ctx: KoaContext): Promise<URLSearchParams> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length
    if (size > 16_384) throw new Error('form too large')
    chunks.push(chunk as Buffer)
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body>
<p><strong>dbgate development identity provider — not for production use.</strong></p>
<h1>${escapeHtml(title)}</h1>${body}</body></html>`
}

/**
 * Login with a fixed user list and automatic consent: dbgate is the only client and a first-party
 * one, and the device-flow confirmation page has already shown the user which client is asking.
 */
async function interaction(provider: Provider, users: readonly DevUser[], ctx: KoaContext): Promise<void> {
  const details = await provider.interactionDetails(ctx.req, ctx.res)
  const action = `/interaction/${details.uid}`

  if (details.prompt.name === 'login') {
    if (ctx.method === 'GET') {
      ctx.type = 'html'
      ctx.body = page(
        'Sign in',
        `<p>Users: ${users.map((u) => escapeHtml(u.id)).join(', ')} (password: the user name).</p>
<form method="post" action="${action}"><input name="login" placeholder="user" autofocus>
<input name="password" type="password" placeholder="password"><button type="submit">Sign in</button>
<button type="submit" name="cancel" value="yes">Cancel</button></form>`,
      )
      return
    }
    const form = await readForm(ctx)
    let result: Record<string, unknown>
    if (form.get('cancel')) {
      result = {error: 'access_denied', error_description: 'End-User cancelled the sign-in'}
    } else {
      const user = users.find((u) => u.id === form.get('login') && u.password === form.get('password'))
      if (!user) {
        ctx.status = 401
        ctx.type = 'html'
        ctx.body = page('Sign in', `<p>Unknown user or wrong password.</p><p><a href="${action}">Try again</a></p>`)
        return
      }
      result = {login: {accountId: user.id}}
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {mergeWithLastSubmission: false})
    ctx.status = 303
    ctx.redirect(returnTo)
    return
  }

  if (details.prompt.name === 'consent') {
    const accountId = details.session?.accountId
    if (!accountId) throw new Error('consent without a signed-in account')
    const grant = (details.grantId && (await provider.Grant.find(details.grantId))) || new provider.Grant({accountId, clientId: details.params.client_id})
    const missing = details.prompt.details as {missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]>}
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '))
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims)
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '))
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, {consent: {grantId: await grant.save()}}, {mergeWithLastSubmission: true})
    ctx.status = 303
    ctx.redirect(returnTo)
    return
  }

  ctx.status = 501
  ctx.body = `prompt ${details.prompt.name} is not supported by the development provider`
}

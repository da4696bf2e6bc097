import {createHash} from 'node:crypto'
import {decodeJwt} from 'jose'
import * as client from 'openid-client'
import type {IdentityConfig} from './config.js'
import {LoginRequiredError, TargetNotAllowedError, TokenError, TokenExpiredError} from './errors.js'
import {discover, oauthErrorCode, toIdentityError} from './oidc.js'
import {acquireServiceTokens, serviceCredentialsFromEnv, type ServiceCredentials} from './service.js'
import {openTokenStore, storeKey, type StoredTokens, type TokenStore} from './token-store.js'
import {toStoredTokens, verifyStored} from './tokens.js'
import {identityLabel, type Identity} from './types.js'
import {verifyToken} from './verify.js'

export interface SessionOptions {
  store?: TokenStore
  env?: NodeJS.ProcessEnv
  warn?: (message: string) => void
  now?: () => Date
  /** Refresh when less than this much validity remains. Default 60 s. */
  refreshMarginMs?: number
}

/** Where the identity came from: decides how it can be renewed. */
export type SessionSource = 'env-token' | 'stored' | 'client-credentials'

export interface Session {
  identity: Identity
  /** The token that proved the identity. Never print it. */
  token: string
  source: SessionSource
  /**
   * Renews now — refresh_token grant for a person, a new client-credentials grant for a service —
   * and resolves to the new session. A long-running tunnel calls it before `identity.expiresAt`.
   * When another dbgate process of the same person renewed meanwhile, its tokens are used instead,
   * if they were issued no earlier than `notBefore`.
   */
  refresh(opts?: {notBefore?: Date}): Promise<Session>
}

/**
 * The caller's verified identity, in order of precedence:
 * 1. `DBGATE_TOKEN`: verified as is (ID or access token). It cannot be renewed.
 * 2. Stored tokens from `dbgate login`, refreshed silently when expired or about to expire.
 * 3. `DBGATE_CLIENT_ID` + `DBGATE_CLIENT_SECRET`: a client-credentials grant, held in memory only.
 */
export async function getIdentity(config: IdentityConfig, options: SessionOptions = {}): Promise<Session> {
  const env = options.env ?? process.env
  if (env.DBGATE_TOKEN) return envTokenSession(config, env.DBGATE_TOKEN.trim(), options)

  const store = options.store ?? openTokenStore({warn: options.warn, env})
  const key = storeKey(config)
  const stored = await store.load(key)
  if (stored) return storedSession(config, stored, {...options, env, store, key}, false)

  const creds = serviceCredentialsFromEnv(env)
  if (creds) return serviceSession(config, creds)

  throw new LoginRequiredError(`You are not signed in to ${config.issuer}.`)
}

async function envTokenSession(config: IdentityConfig, token: string, options: SessionOptions): Promise<Session> {
  try {
    // No `kind` is forced: the claims decide (see verify.ts kindOf), since the token's origin is unknown.
    const {identity} = await verifyToken(config, token, {use: 'any', now: options.now})
    const session: Session = {identity, token, source: 'env-token', refresh: () => envTokenSession(config, token, options)}
    return session
  } catch (error) {
    if (error instanceof TokenError) {
      error.nextStep = 'Provide a valid token in DBGATE_TOKEN, or unset it to use the identity from `dbgate login`.'
    }
    throw error
  }
}

async function serviceSession(config: IdentityConfig, creds: ServiceCredentials): Promise<Session> {
  const {identity, token} = await acquireServiceTokens(config, creds)
  return {identity, token, source: 'client-credentials', refresh: () => serviceSession(config, creds)}
}

interface StoredContext extends SessionOptions {
  env: NodeJS.ProcessEnv
  store: TokenStore
  key: string
}

async function storedSession(config: IdentityConfig, stored: StoredTokens, ctx: StoredContext, force: boolean, notBefore?: Date): Promise<Session> {
  const now = ctx.now ?? (() => new Date())
  if (!force) {
    const usable = await usableSession(config, stored, ctx)
    if (usable) return sessionFrom(config, usable, stored, ctx)
  }
  const renewed = await renew(config, stored, ctx, notBefore)
  return sessionFrom(config, await verifyStored(config, renewed, now), renewed, ctx)
}

/** The verified identity of `tokens` if it stays valid beyond the refresh margin (and was issued since `notBefore`). */
async function usableSession(config: IdentityConfig, tokens: StoredTokens, ctx: StoredContext, notBefore?: Date): Promise<{identity: Identity; token: string} | undefined> {
  const margin = ctx.refreshMarginMs ?? 60_000
  const now = ctx.now ?? (() => new Date())
  let verified: {identity: Identity; token: string}
  try {
    verified = await verifyStored(config, tokens, now)
  } catch (error) {
    if (error instanceof TokenExpiredError) return undefined
    throw error
  }
  if (verified.identity.expiresAt.getTime() - now().getTime() <= margin) return undefined
  // `iat` has whole seconds; a token issued in notBefore's own second counts as issued after it.
  if (notBefore && (decodeJwt(verified.token).iat ?? 0) < Math.floor(notBefore.getTime() / 1000)) return undefined
  return verified
}

function sessionFrom(config: IdentityConfig, verified: {identity: Identity; token: string}, tokens: StoredTokens, ctx: StoredContext): Session {
  return {
    identity: verified.identity,
    token: verified.token,
    source: 'stored',
    refresh: (opts = {}) => storedSession(config, tokens, ctx, true, opts.notBefore),
  }
}

// Refresh tokens this process has presented to the IdP. One that comes back from the store (a
// save that failed, a store restored from a backup) is never presented again: with rotation, the
// IdP would take it for a stolen token and end the sign-in everywhere.
const spentRefreshTokens = new Set<string>()
const fingerprint = (token: string) => createHash('sha256').update(token).digest('hex')

/**
 * Renews `had` under the store's cross-process lock. Inside it the store is read again: if another
 * process renewed meanwhile, its tokens are used (when good enough); otherwise the refresh token
 * is the one in the store now, never one this process remembers from earlier.
 */
async function renew(config: IdentityConfig, had: StoredTokens, ctx: StoredContext, notBefore?: Date): Promise<StoredTokens> {
  return ctx.store.exclusive(ctx.key, async () => {
    const latest = await ctx.store.load(ctx.key)
    if (!latest) throw new LoginRequiredError(`You were signed out of ${config.issuer} (\`dbgate logout\` ran meanwhile).`)
    if (latest.accessToken !== had.accessToken && (await usableSession(config, latest, ctx, notBefore))) return latest
    if (latest.kind === 'service') {
      const creds = serviceCredentialsFromEnv(ctx.env)
      if (!creds || creds.clientId !== latest.serviceClientId) {
        throw new LoginRequiredError(
          `The service token of "${latest.serviceClientId ?? 'unknown client'}" has expired, and client credentials are not grants that can be refreshed.`,
        )
      }
      const {tokens} = await acquireServiceTokens(config, creds)
      await ctx.store.save(ctx.key, tokens)
      return tokens
    }
    if (!latest.refreshToken) {
      throw new LoginRequiredError('Your sign-in has expired and the identity provider issued no refresh token (is `offline_access` among identity.scopes?).')
    }
    if (spentRefreshTokens.has(fingerprint(latest.refreshToken))) {
      throw new LoginRequiredError(`Your sign-in at ${config.issuer} cannot be renewed: the stored refresh token was already used, and using it again would end your sign-in everywhere.`)
    }
    return refreshWith(config, latest, ctx)
  })
}

async function refreshWith(config: IdentityConfig, stored: StoredTokens, ctx: StoredContext): Promise<StoredTokens> {
  const oidc = await discover(config)
  const refreshToken = stored.refreshToken as string
  let response: client.TokenEndpointResponse
  spentRefreshTokens.add(fingerprint(refreshToken))
  try {
    response = await client.refreshTokenGrant(oidc, refreshToken)
  } catch (error) {
    if (oauthErrorCode(error) === 'invalid_grant') {
      throw new LoginRequiredError(
        `Your session at ${config.issuer} has ended (the refresh token was revoked or has expired).`,
        {cause: error},
      )
    }
    // Nothing reached the IdP's token logic (a network failure): the token is still good.
    if (toIdentityError(error, config.issuer).code === 'IDP_UNREACHABLE') spentRefreshTokens.delete(fingerprint(refreshToken))
    throw toIdentityError(error, config.issuer)
  }
  const tokens = toStoredTokens(response, 'human', stored)
  await ctx.store.save(ctx.key, tokens)
  return tokens
}

export type AuthorizeResult = {ok: true; matched: string[]} | {ok: false; error: TargetNotAllowedError}

/** Whether `identity` may use a target whose `allow` list is `allowGroups` (exact, case-sensitive group names). */
export function authorizeTarget(identity: Identity, allowGroups: readonly string[]): AuthorizeResult {
  const matched = identity.groups.filter((g) => allowGroups.includes(g))
  if (matched.length > 0) return {ok: true, matched}
  return {ok: false, error: new TargetNotAllowedError(identityLabel(identity), identity.groups, [...allowGroups])}
}


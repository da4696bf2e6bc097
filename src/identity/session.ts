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
   */
  refresh(): Promise<Session>
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

async function storedSession(config: IdentityConfig, stored: StoredTokens, ctx: StoredContext, force: boolean): Promise<Session> {
  const margin = ctx.refreshMarginMs ?? 60_000
  const now = ctx.now ?? (() => new Date())
  if (!force) {
    try {
      const verified = await verifyStored(config, stored, now)
      if (verified.identity.expiresAt.getTime() - now().getTime() > margin) {
        return sessionFrom(config, verified, ctx)
      }
    } catch (error) {
      if (!(error instanceof TokenExpiredError)) throw error
    }
  }
  const renewed = await renew(config, stored, ctx)
  return sessionFrom(config, await verifyStored(config, renewed, now), ctx)
}

function sessionFrom(config: IdentityConfig, verified: {identity: Identity; token: string}, ctx: StoredContext): Session {
  return {
    identity: verified.identity,
    token: verified.token,
    source: 'stored',
    async refresh() {
      // Re-read: another dbgate process may have refreshed (and rotated the refresh token) meanwhile.
      const latest = await ctx.store.load(ctx.key)
      if (!latest) throw new LoginRequiredError(`You were signed out of ${config.issuer} (\`dbgate logout\` ran meanwhile).`)
      return storedSession(config, latest, ctx, true)
    },
  }
}

async function renew(config: IdentityConfig, stored: StoredTokens, ctx: StoredContext): Promise<StoredTokens> {
  if (stored.kind === 'service') {
    const creds = serviceCredentialsFromEnv(ctx.env)
    if (!creds || creds.clientId !== stored.serviceClientId) {
      throw new LoginRequiredError(
        `The service token of "${stored.serviceClientId ?? 'unknown client'}" has expired, and client credentials are not grants that can be refreshed.`,
      )
    }
    const {tokens} = await acquireServiceTokens(config, creds)
    await ctx.store.save(ctx.key, tokens)
    return tokens
  }
  if (!stored.refreshToken) {
    throw new LoginRequiredError('Your sign-in has expired and the identity provider issued no refresh token (is `offline_access` among identity.scopes?).')
  }
  try {
    return await refreshWith(config, stored, ctx)
  } catch (error) {
    if (!(error instanceof LoginRequiredError)) throw error
    // A concurrent dbgate process may have used our refresh token first (rotation); if it stored a
    // newer one, that one is good.
    const latest = await ctx.store.load(ctx.key)
    if (latest?.refreshToken && latest.refreshToken !== stored.refreshToken) return refreshWith(config, latest, ctx)
    throw error
  }
}

async function refreshWith(config: IdentityConfig, stored: StoredTokens, ctx: StoredContext): Promise<StoredTokens> {
  const oidc = await discover(config)
  let response: client.TokenEndpointResponse
  try {
    response = await client.refreshTokenGrant(oidc, stored.refreshToken as string)
  } catch (error) {
    if (oauthErrorCode(error) === 'invalid_grant') {
      throw new LoginRequiredError(
        `Your session at ${config.issuer} has ended (the refresh token was revoked or has expired).`,
        {cause: error},
      )
    }
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


import * as client from 'openid-client'
import type {IdentityConfig} from './config.js'
import {IdpError} from './errors.js'
import {discover, oauthErrorCode, toIdentityError} from './oidc.js'
import {openTokenStore, storeKey, type StoredTokens, type TokenStore} from './token-store.js'
import {toStoredTokens, verifyStored} from './tokens.js'
import type {Identity} from './types.js'

export interface ServiceCredentials {
  clientId: string
  clientSecret: string
  /** Space-separated scopes; IdPs differ (Entra wants `api://…/.default`, Okta custom scopes). */
  scope?: string
  /** RFC 8707 resource indicator, for IdPs that choose the token's audience from it (oidc-provider, Keycloak 26+ with the feature on). */
  resource?: string
  /** Auth0's non-standard `audience` parameter: the API identifier the token is for. */
  audience?: string
}

/** DBGATE_CLIENT_SCOPE / _RESOURCE / _AUDIENCE: what some IdPs need to pick the token's audience. */
export function serviceRequestFromEnv(env: NodeJS.ProcessEnv = process.env): Pick<ServiceCredentials, 'scope' | 'resource' | 'audience'> {
  return {
    scope: env.DBGATE_CLIENT_SCOPE || undefined,
    resource: env.DBGATE_CLIENT_RESOURCE || undefined,
    audience: env.DBGATE_CLIENT_AUDIENCE || undefined,
  }
}

/** DBGATE_CLIENT_ID + DBGATE_CLIENT_SECRET (both needed) with the optional request settings above. */
export function serviceCredentialsFromEnv(env: NodeJS.ProcessEnv = process.env): ServiceCredentials | undefined {
  if (!env.DBGATE_CLIENT_ID || !env.DBGATE_CLIENT_SECRET) return undefined
  return {clientId: env.DBGATE_CLIENT_ID, clientSecret: env.DBGATE_CLIENT_SECRET, ...serviceRequestFromEnv(env)}
}

/**
 * Runs the client-credentials grant and verifies the access token it yields. IdPs issue no ID token
 * here, so the access token must be a JWT whose `aud` is `identity.audience` (default: the dbgate
 * client id) — an IdP-side setting described in docs/identity.md.
 */
export async function acquireServiceTokens(
  config: IdentityConfig,
  creds: ServiceCredentials,
): Promise<{tokens: StoredTokens; identity: Identity; token: string}> {
  const oidc = await discover(config, creds)
  const parameters: Record<string, string> = {}
  if (creds.scope) parameters.scope = creds.scope
  if (creds.resource) parameters.resource = creds.resource
  if (creds.audience) parameters.audience = creds.audience
  let response: client.TokenEndpointResponse
  try {
    response = await client.clientCredentialsGrant(oidc, parameters)
  } catch (error) {
    const code = oauthErrorCode(error)
    if (code === 'invalid_client' || code === 'unauthorized_client') {
      throw new IdpError(`The identity provider refused the client credentials of "${creds.clientId}" (${code}).`, {
        oauthError: code,
        cause: error,
        nextStep: 'Check DBGATE_CLIENT_ID / DBGATE_CLIENT_SECRET, and that this client may use the client-credentials grant.',
      })
    }
    throw toIdentityError(error, config.issuer)
  }
  const tokens = {...toStoredTokens(response, 'service'), serviceClientId: creds.clientId}
  const {identity, token} = await verifyStored(config, tokens)
  return {tokens, identity, token}
}

export interface ServiceLoginOptions {
  store?: TokenStore
  warn?: (message: string) => void
  env?: NodeJS.ProcessEnv
}

/**
 * `dbgate login --client-credentials`: stores the service token where a person's login would go
 * (keyed by issuer + dbgate's client id), so later commands find it the same way.
 */
export async function loginClientCredentials(
  config: IdentityConfig,
  creds: ServiceCredentials,
  options: ServiceLoginOptions = {},
): Promise<{identity: Identity; storedIn: string}> {
  const {tokens, identity} = await acquireServiceTokens(config, creds)
  const store = options.store ?? openTokenStore({warn: options.warn, env: options.env})
  const storedIn = await store.save(storeKey(config), tokens)
  return {identity, storedIn}
}

import * as client from 'openid-client'
import type {IdentityConfig} from './config.js'
import {discover, toIdentityError} from './oidc.js'
import {serviceCredentialsFromEnv} from './service.js'
import {openTokenStore, storeKey, type TokenStore} from './token-store.js'

export interface LogoutOptions {
  store?: TokenStore
  env?: NodeJS.ProcessEnv
}

export interface LogoutResult {
  /** Whether any stored tokens existed and were removed. */
  removed: boolean
  /**
   * `revoked`: the IdP accepted the revocation; `unsupported`: it publishes no revocation endpoint;
   * `skipped`: nothing to revoke or no credentials to revoke with; `failed`: see `revocationError`.
   */
  revocation: 'revoked' | 'unsupported' | 'skipped' | 'failed'
  revocationError?: string
}

/**
 * Removes the stored tokens first, so a failing IdP never leaves them behind, then revokes the
 * refresh token (which ends the grant at most IdPs) or, lacking one, the access token.
 */
export async function logout(config: IdentityConfig, options: LogoutOptions = {}): Promise<LogoutResult> {
  const env = options.env ?? process.env
  const store = options.store ?? openTokenStore({env})
  const key = storeKey(config)
  const stored = await store.load(key).catch(() => undefined)
  const removed = await store.remove(key)
  if (!stored) return {removed, revocation: 'skipped'}

  let creds: {clientId: string; clientSecret?: string} | undefined
  if (stored.kind === 'service') {
    // Revoking needs the client that owns the token; a service secret is never stored.
    const envCreds = serviceCredentialsFromEnv(env)
    creds = envCreds && envCreds.clientId === stored.serviceClientId ? envCreds : undefined
    if (!creds) return {removed, revocation: 'skipped'}
  }

  try {
    const oidc = await discover(config, creds)
    if (!oidc.serverMetadata().revocation_endpoint) return {removed, revocation: 'unsupported'}
    const [token, hint] = stored.refreshToken ? [stored.refreshToken, 'refresh_token'] : [stored.accessToken, 'access_token']
    await client.tokenRevocation(oidc, token, {token_type_hint: hint})
    return {removed, revocation: 'revoked'}
  } catch (error) {
    return {removed, revocation: 'failed', revocationError: toIdentityError(error, config.issuer).message}
  }
}

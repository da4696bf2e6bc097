import * as client from 'openid-client'
import type {IdentityConfig} from './config.js'
import {IdpError, IdpUnreachableError, IdentityError} from './errors.js'
import {isLoopbackHttp} from '../util/loopback.js'


export interface ClientCredentials {
  clientId: string
  clientSecret?: string
}

// Discovery is one HTTP round trip per process per client; a tunnel that refreshes every few
// minutes should not repeat it, and a failed discovery is not cached so the next call retries.
const cache = new Map<string, Promise<client.Configuration>>()

/** The openid-client Configuration for `config.issuer`, as `creds` (default: dbgate's own client). */
export function discover(config: IdentityConfig, creds?: ClientCredentials): Promise<client.Configuration> {
  const clientId = creds?.clientId ?? config.clientId
  const secret = creds ? creds.clientSecret : config.clientSecret
  const key = JSON.stringify([config.issuer, clientId, secret ?? null])
  let found = cache.get(key)
  if (!found) {
    const auth = secret === undefined ? client.None() : client.ClientSecretPost(secret)
    found = client
      .discovery(new URL(config.issuer), clientId, undefined, auth, {
        // Plain HTTP is tolerated only for an issuer on this machine (tests, `dbgate demo`).
        execute: isLoopbackHttp(config.issuer) ? [client.allowInsecureRequests] : [],
        timeout: 15,
      })
      .catch((error: unknown) => {
        cache.delete(key)
        throw toIdentityError(error, config.issuer)
      })
    cache.set(key, found)
  }
  return found
}

/** Forgets discovered configurations; for tests that restart a provider on a new port. */
export function clearDiscoveryCache(): void {
  cache.clear()
}

function isNetworkFailure(error: unknown): boolean {
  if (error instanceof TypeError) return true // undici's "fetch failed", cause ECONNREFUSED etc.
  if (error instanceof client.ClientError) return error.code === 'OAUTH_TIMEOUT'
  return false
}

/**
 * The single place openid-client's errors become dbgate's. OAuth error responses that have a
 * specific meaning for a caller (access_denied, expired_token, invalid_grant) are mapped by that
 * caller first; whatever reaches here is reported generically, without any token in the text.
 */
export function toIdentityError(error: unknown, issuer: string): IdentityError {
  if (error instanceof IdentityError) return error
  if (isNetworkFailure(error)) return new IdpUnreachableError(issuer, {cause: error})
  if (error instanceof client.ResponseBodyError) {
    const description = error.error_description ? ` (${error.error_description})` : ''
    return new IdpError(`The identity provider refused the request: ${error.error}${description}.`, {
      oauthError: error.error,
      cause: error,
      nextStep:
        error.error === 'invalid_client' || error.error === 'unauthorized_client'
          ? 'Check the client id (and secret for service identities) and that the client may use this grant at the IdP.'
          : undefined,
    })
  }
  const message = error instanceof Error ? error.message : String(error)
  return new IdpError(`Unexpected response from the identity provider at ${issuer}: ${message}.`, {cause: error})
}

/** The OAuth `error` code of an IdP error response, if that is what `error` is. */
export function oauthErrorCode(error: unknown): string | undefined {
  return error instanceof client.ResponseBodyError ? error.error : undefined
}

import type {TokenEndpointResponse} from 'openid-client'
import type {IdentityConfig} from './config.js'
import {IdpError} from './errors.js'
import type {StoredTokens} from './token-store.js'
import {verifyToken, type VerifiedToken} from './verify.js'

/**
 * Turns a token endpoint response into what is stored. On refresh an IdP may omit the refresh
 * token (no rotation) or the ID token; the previous ones are then kept.
 */
export function toStoredTokens(
  response: TokenEndpointResponse,
  kind: StoredTokens['kind'],
  previous?: StoredTokens,
  now: number = Date.now(),
): StoredTokens {
  return {
    version: 1,
    kind,
    idToken: response.id_token ?? previous?.idToken,
    accessToken: response.access_token,
    refreshToken: response.refresh_token ?? previous?.refreshToken,
    accessTokenExpiresAt: typeof response.expires_in === 'number' ? now + response.expires_in * 1000 : undefined,
    scope: response.scope ?? previous?.scope,
    serviceClientId: previous?.serviceClientId,
    savedAt: now,
  }
}

/** The token that proves who holds `tokens`: the ID token for people (unless configured otherwise), the access token for services. */
export function provingToken(config: IdentityConfig, tokens: StoredTokens): {token: string; use: 'id_token' | 'access_token'} {
  if (tokens.kind === 'human' && config.verify === 'id_token') {
    if (!tokens.idToken) {
      throw new IdpError('The identity provider returned no ID token.', {
        nextStep: 'Make sure the `openid` scope is requested (identity.scopes) and allowed for the dbgate client.',
      })
    }
    return {token: tokens.idToken, use: 'id_token'}
  }
  return {token: tokens.accessToken, use: 'access_token'}
}

export async function verifyStored(config: IdentityConfig, tokens: StoredTokens, now?: () => Date): Promise<VerifiedToken & {token: string}> {
  const {token, use} = provingToken(config, tokens)
  const verified = await verifyToken(config, token, {use, kind: tokens.kind, now})
  return {...verified, token}
}

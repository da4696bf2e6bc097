import {createHash} from 'node:crypto'
import {createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload} from 'jose'
import {accessTokenAudience, type IdentityConfig} from './config.js'
import {
  IdpUnreachableError,
  TokenAudienceError,
  TokenError,
  TokenExpiredError,
  TokenIssuerError,
  TokenMalformedError,
  TokenNotYetValidError,
  TokenSignatureError,
  IdentityError,
} from './errors.js'
import {discover} from './oidc.js'
import type {Identity} from './types.js'

/** Which token the caller believes it holds; decides the audiences accepted and the `typ` check. */
export type TokenUse = 'id_token' | 'access_token' | 'any'

export interface VerifyOptions {
  use: TokenUse
  /** Set when the caller knows how the token was obtained (a client-credentials grant is a service). */
  kind?: Identity['kind']
  /** Current time; tests move it. */
  now?: () => Date
}

export interface VerifiedToken {
  identity: Identity
  claims: JWTPayload
}

type Jwks = ReturnType<typeof createRemoteJWKSet>
// One JWKS per jwks_uri per process: jose caches the keys and refetches on an unknown `kid`, which
// is how a key rotation at the IdP is picked up without a restart.
const jwksCache = new Map<string, Jwks>()

async function jwksFor(config: IdentityConfig): Promise<Jwks> {
  const metadata = (await discover(config)).serverMetadata()
  if (!metadata.jwks_uri) {
    throw new TokenMalformedError('the identity provider publishes no jwks_uri, so no token can be verified')
  }
  let jwks = jwksCache.get(metadata.jwks_uri)
  if (!jwks) {
    jwks = createRemoteJWKSet(new URL(metadata.jwks_uri), {timeoutDuration: 10_000})
    jwksCache.set(metadata.jwks_uri, jwks)
  }
  return jwks
}

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

function audiences(config: IdentityConfig, use: TokenUse): string[] {
  // OIDC Core fixes an ID token's audience to the client id; `audience` is the API audience an
  // access token carries, which IdPs often let admins also put into ID tokens.
  const id = [config.clientId, ...(config.audience ? [config.audience] : [])]
  const access = [accessTokenAudience(config)]
  const list = use === 'id_token' ? id : use === 'access_token' ? access : [...id, ...access]
  return [...new Set(list)]
}

/**
 * Checks signature (against the issuer's JWKS), `iss`, `aud`, `exp` and `nbf` with the configured
 * clock skew, and builds the Identity. Every failure is a TokenError whose message holds no token.
 */
export async function verifyToken(config: IdentityConfig, token: string, options: VerifyOptions): Promise<VerifiedToken> {
  if (typeof token !== 'string' || token.split('.').length !== 3) {
    throw new TokenMalformedError('expected a compact JWS with three dot-separated parts')
  }
  let typ: string | undefined
  try {
    typ = decodeProtectedHeader(token).typ?.toLowerCase()
  } catch (error) {
    throw new TokenMalformedError('its header cannot be decoded', {cause: error})
  }
  // An RFC 9068 access token presented where an ID token is expected is a confused-deputy risk.
  if (options.use === 'id_token' && (typ === 'at+jwt' || typ === 'application/at+jwt')) {
    throw new TokenMalformedError('an access token was presented where an ID token is required')
  }

  const expected = audiences(config, options.use)
  const jwks = await jwksFor(config)
  let payload: JWTPayload
  try {
    ;({payload} = await jwtVerify(token, jwks, {
      issuer: config.issuer,
      audience: expected,
      clockTolerance: Math.round(config.clockSkewMs / 1000),
      requiredClaims: ['exp', 'sub'],
      currentDate: options.now?.(),
    }))
  } catch (error) {
    throw mapJoseError(error, config, expected)
  }

  const identity: Identity = {
    subject: payload.sub as string,
    email: stringClaim(payload, 'email'),
    name: stringClaim(payload, 'name') ?? stringClaim(payload, 'preferred_username'),
    groups: groupsFromClaims(payload, config.groupsClaim),
    issuer: config.issuer,
    kind: options.kind ?? kindOf(payload),
    tokenHash: tokenHash(token),
    tokenId: stringClaim(payload, 'jti'),
    clientId: stringClaim(payload, 'azp') ?? stringClaim(payload, 'client_id'),
    expiresAt: new Date((payload.exp as number) * 1000),
  }
  return {identity, claims: payload}
}

function mapJoseError(error: unknown, config: IdentityConfig, expected: string[]): IdentityError {
  if (error instanceof TokenError) return error
  if (error instanceof errors.JWTExpired) return new TokenExpiredError({cause: error})
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return new TokenMalformedError(`it has no "${error.claim}" claim`, {cause: error})
    switch (error.claim) {
      case 'aud':
        return new TokenAudienceError(expected, {cause: error})
      case 'iss':
        return new TokenIssuerError(config.issuer, {cause: error})
      case 'nbf':
      case 'iat':
        return new TokenNotYetValidError({cause: error})
      default:
        return new TokenMalformedError(`its "${error.claim}" claim is invalid`, {cause: error})
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) {
    return new TokenSignatureError({cause: error})
  }
  if (error instanceof errors.JWKSTimeout || error instanceof TypeError) {
    return new IdpUnreachableError(config.issuer, {cause: error})
  }
  if (error instanceof errors.JOSEError) {
    return new TokenMalformedError(error.code === 'ERR_JOSE_ALG_NOT_ALLOWED' ? 'its algorithm is not allowed' : 'it is not a valid JWS/JWT', {cause: error})
  }
  return new TokenMalformedError('it could not be verified', {cause: error})
}

function stringClaim(payload: JWTPayload, name: string): string | undefined {
  const value = payload[name]
  return typeof value === 'string' && value !== '' ? value : undefined
}

/**
 * Groups from `path` (dotted, e.g. `realm_access.roles`). IdPs disagree on the shape: an array of
 * strings is the norm, but some emit a single space- or comma-separated string.
 */
export function groupsFromClaims(claims: Record<string, unknown>, path: string): string[] {
  let value: unknown = claims
  // A claim whose own name contains dots (e.g. `https://example.com/groups`) is tried whole first.
  if (path in claims) value = claims[path]
  else {
    for (const part of path.split('.')) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return []
      value = (value as Record<string, unknown>)[part]
    }
  }
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/[\s,]+/) : []
  return [...new Set(items.filter((g): g is string => typeof g === 'string').map((g) => g.trim()).filter(Boolean))]
}

/**
 * A token stands for a machine, not a person, when its subject is an OAuth client rather than a
 * user, or when the IdP marks it as app-only. The markers below are the ones the common IdPs use:
 * RFC 9068 / oidc-provider / Okta put the client id in `sub`; Auth0 sets `gty`; Entra ID sets
 * `idtyp: app`; Keycloak names the user `service-account-<client>`; Google service accounts have
 * an `…gserviceaccount.com` e-mail.
 */
export function kindOf(claims: JWTPayload): Identity['kind'] {
  const sub = claims.sub
  const clientIds = [claims.client_id, claims.azp, claims.cid].filter((v) => typeof v === 'string')
  if (sub !== undefined && clientIds.includes(sub)) return 'service'
  if (claims.gty === 'client-credentials' || claims.idtyp === 'app') return 'service'
  if (typeof sub === 'string' && sub.endsWith('@clients')) return 'service'
  const username = claims.preferred_username
  if (typeof username === 'string' && username.startsWith('service-account-')) return 'service'
  if (typeof claims.email === 'string' && claims.email.endsWith('.gserviceaccount.com')) return 'service'
  return 'human'
}

/**
 * Fetches the identity provider's signing keys now, for a server that must not serve before it
 * can verify anyone; resolves to how many keys it published. jose keeps them for verifyToken.
 */
export async function loadSigningKeys(config: IdentityConfig): Promise<number> {
  try {
    const jwks = await jwksFor(config)
    await jwks.reload()
    return jwks.jwks()?.keys.length ?? 0
  } catch (error) {
    if (error instanceof IdentityError) throw error
    throw new IdpUnreachableError(config.issuer, {cause: error})
  }
}

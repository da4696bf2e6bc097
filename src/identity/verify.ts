import {createHash} from 'node:crypto'
import {compactVerify, createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet, type JWK, type JWTPayload, type JWTVerifyGetKey} from 'jose'
import {accessTokenAudience, type IdentityConfig} from './config.js'
import {
  IdpUnreachableError,
  TokenAudienceError,
  TokenClientError,
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
import {problemsOf} from '../util/document.js'
import {z} from 'zod'

/**
 * The claims dbgate builds an identity from, beyond what jose has checked (signature, iss, aud,
 * exp, nbf, and that exp and sub are present). The optional ones are read through type guards.
 */
const IdentityClaimsSchema = z.object({sub: z.string().min(1), exp: z.number()})

/**
 * The `typ` header values a sign-in token may carry (lower case, without `application/`): none at
 * all, plain `JWT` (ID tokens), and RFC 9068's `at+jwt` (access tokens).
 */
const SIGN_IN_TYPES = new Set(['jwt', 'at+jwt'])

/**
 * The claims in which IdPs name the client a token was issued to: `azp` (OIDC Core), `client_id`
 * (RFC 9068), `cid` (Okta's access tokens), `appid` (Entra ID's v1 access tokens). A client named in
 * any of them counts: an allow-list of clients that read only some would let the others' tokens by.
 */
const CLIENT_CLAIMS = ['azp', 'client_id', 'cid', 'appid'] as const

/** The clients a token names, in CLIENT_CLAIMS' order. */
function clientsNamed(payload: JWTPayload): string[] {
  return CLIENT_CLAIMS.map((claim) => payload[claim]).filter((v): v is string => typeof v === 'string' && v !== '')
}

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

/** The IdP's signing keys as the verifier uses them: fetched, cached, and kept through an IdP outage. */
interface KeySet {
  getKey: JWTVerifyGetKey
  /** Fetches the key set now; throws when the IdP does not answer with one. */
  reload(): Promise<void>
  /** How many keys the last good fetch held. */
  count(): number
  /**
   * The key set as fetched just now elsewhere (`publishedKeys`): where it differs from the one held,
   * the held one is fetched again at once, and the ids of keys it no longer has are remembered, so a
   * token of a withdrawn key is refused by name. Resolves to those ids.
   */
  follow(published: JSONWebKeySet): Promise<string[]>
}

/** What tells one published key from another: its id and public parameters. */
function keyIdentity(k: JWK): string {
  return JSON.stringify([k.kid, k.kty, k.crv, k.n, k.e, k.x, k.y])
}

/** The key ids withdrawn keys are remembered by, at most this many (a key set holds a handful). */
const WITHDRAWN_KIDS_MAX = 64

// One key set per jwks_uri per process: jose caches the keys and refetches on an unknown `kid`, which
// is how a key rotation at the IdP is picked up without a restart.
const jwksCache = new Map<string, KeySet>()

/** After a failed fetch, the IdP is not asked again for this long; the last good keys serve meanwhile. */
const RETRY_AFTER_OUTAGE_MS = 30_000

/** A fetch of the key set that failed for want of an answer (network, timeout, a 5xx, a broken body). */
function isUnreachable(error: unknown): boolean {
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error instanceof TypeError) return true
  // jose's other fetch failures (not a 200, not JSON) are generic JOSEErrors, unlike every verification failure.
  return error instanceof errors.JOSEError && error.code === 'ERR_JOSE_GENERIC'
}

/**
 * jose's remote key set refetches once its keys are ten minutes old and throws when that fails, so
 * an IdP outage longer than that would refuse every sign-in although the keys are still good. Here
 * the last key set fetched keeps verifying while the IdP is unreachable; while it answers, jose's own
 * refresh (stale keys, an unknown `kid`) applies, so rotated and revoked keys are still picked up.
 * A gateway also hands it the keys it fetches every minute (`follow`), so that a key the IdP
 * withdrew stops verifying then, not once jose's copy has aged.
 */
function resilientKeySet(url: URL): KeySet {
  const remote = createRemoteJWKSet(url, {timeoutDuration: 10_000})
  let failedAt: number | undefined
  // Built once per outage, so the keys are not imported again for every sign-in.
  let fallbackSet: ReturnType<typeof createLocalJWKSet> | undefined
  const lastGood = () => {
    const keys = fallbackSet ? undefined : remote.jwks()
    if (keys) fallbackSet = createLocalJWKSet(keys)
    return fallbackSet
  }
  const answered = () => {
    failedAt = undefined
    fallbackSet = undefined
  }
  // Ids of keys the IdP published and then withdrew (`follow`), refused until it publishes them again.
  const withdrawn = new Set<string>()
  const getKey: JWTVerifyGetKey = async (header, token) => {
    // Refused before the held keys are consulted: should fetching them again fail, a withdrawn key
    // still among them must not verify anyone meanwhile.
    if (typeof header.kid === 'string' && withdrawn.has(header.kid)) throw new TokenSignatureError({withdrawnKid: header.kid})
    const last = failedAt !== undefined && Date.now() - failedAt < RETRY_AFTER_OUTAGE_MS ? lastGood() : undefined
    if (last) {
      try {
        return await last(header, token)
      } catch (error) {
        // An unknown kid may be a key the IdP rotated in: it is asked, outage or not.
        if (!(error instanceof errors.JWKSNoMatchingKey)) throw error
      }
    }
    try {
      const key = await remote(header, token)
      answered()
      return key
    } catch (error) {
      if (!isUnreachable(error)) throw error
      failedAt = Date.now()
      const fallback = lastGood()
      if (!fallback) throw error
      // A kid the last good set does not hold cannot be checked until the IdP answers again.
      return fallback(header, token).catch(() => {
        throw error
      })
    }
  }
  const reload = async () => {
    await remote.reload()
    answered()
  }
  return {
    getKey,
    reload,
    count: () => remote.jwks()?.keys.length ?? 0,
    async follow(published) {
      const held = remote.jwks()?.keys ?? []
      const now = new Set(published.keys.map(keyIdentity))
      const before = new Set(held.map(keyIdentity))
      const publishedKids = new Set(published.keys.flatMap((k) => (typeof k.kid === 'string' ? [k.kid] : [])))
      for (const kid of publishedKids) withdrawn.delete(kid)
      if (now.size === before.size && [...now].every((k) => before.has(k))) return []
      // jose would keep the keys it holds for up to ten minutes (and a kid it holds is never
      // fetched again): a withdrawn key would go on signing people in that long. (A kid published
      // again with other key material is the new key's, and stays usable.)
      const gone = held.filter((k) => !now.has(keyIdentity(k))).flatMap((k) => (typeof k.kid === 'string' && !publishedKids.has(k.kid) ? [k.kid] : []))
      for (const kid of gone) {
        if (withdrawn.size >= WITHDRAWN_KIDS_MAX) withdrawn.delete(withdrawn.values().next().value!)
        withdrawn.add(kid)
      }
      await reload()
      return gone
    },
  }
}

async function jwksFor(config: IdentityConfig): Promise<KeySet> {
  const metadata = (await discover(config)).serverMetadata()
  if (!metadata.jwks_uri) {
    throw new TokenMalformedError('the identity provider publishes no jwks_uri, so no token can be verified')
  }
  let jwks = jwksCache.get(metadata.jwks_uri)
  if (!jwks) {
    jwks = resilientKeySet(new URL(metadata.jwks_uri))
    jwksCache.set(metadata.jwks_uri, jwks)
  }
  return jwks
}

/**
 * The one form of a token that is verified, hashed and recorded: a compact JWS has no whitespace,
 * so what surrounds it (a newline read from a file or pasted with it) is dropped. Whitespace inside
 * is refused: base64url decoders skip it, so the same token would verify under many spellings.
 */
export function canonicalToken(token: string): string {
  const trimmed = token.trim()
  if (/\s/.test(trimmed)) throw new TokenMalformedError('it contains whitespace inside it (a token has none; copy it again whole)')
  return trimmed
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
export async function verifyToken(config: IdentityConfig, presented: string, options: VerifyOptions): Promise<VerifiedToken> {
  if (typeof presented !== 'string') throw new TokenMalformedError('expected a compact JWS with three dot-separated parts')
  const token = canonicalToken(presented)
  if (token.split('.').length !== 3) {
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
  // The IdP signs other JWTs for a client too (back-channel logout tokens, security events,
  // introspection responses), with its audience and a subject: only a sign-in token's type proves anyone.
  if (typ !== undefined && !SIGN_IN_TYPES.has(typ.replace(/^application\//, ''))) {
    throw new TokenMalformedError(`its type "${typ}" is not a sign-in token's (an ID token or a JWT access token)`)
  }

  const expected = audiences(config, options.use)
  const jwks = await jwksFor(config)
  const clockTolerance = Math.round(config.clockSkewMs / 1000)
  const now = options.now?.() ?? new Date()
  let payload: JWTPayload
  try {
    ;({payload} = await jwtVerify(token, jwks.getKey, {
      issuer: config.issuer,
      audience: expected,
      clockTolerance,
      requiredClaims: ['exp', 'sub'],
      currentDate: now,
    }))
  } catch (error) {
    throw mapJoseError(error, config, expected)
  }
  // jose checks `iat` only against a maximum age; a token issued in the future is refused like one not valid yet.
  if (typeof payload.iat === 'number' && payload.iat > Math.floor(now.getTime() / 1000) + clockTolerance) throw new TokenNotYetValidError({claim: 'iat'})
  checkAuthorizedParty(config, payload, options.use)
  const unusable = problemsOf(IdentityClaimsSchema, payload)
  if (unusable) throw new TokenMalformedError(`its claims are not what an identity needs (${unusable.join('; ')})`)
  // Security event tokens (a logout token among them) need not carry a type, but always carry `events`.
  if (payload.events !== undefined) throw new TokenMalformedError('it is a security event token (it has an "events" claim), not a sign-in token')

  const identity: Identity = {
    subject: payload.sub as string,
    email: emailVerified(payload.email_verified) ? stringClaim(payload, 'email') : undefined,
    name: stringClaim(payload, 'name') ?? stringClaim(payload, 'preferred_username'),
    groups: groupsFromClaims(payload, config.groupsClaim),
    issuer: config.issuer,
    kind: options.kind ?? kindOf(payload),
    tokenHash: tokenHash(token),
    tokenId: stringClaim(payload, 'jti'),
    clientId: clientsNamed(payload)[0],
    expiresAt: new Date((payload.exp as number) * 1000),
  }
  return {identity, claims: payload}
}

/**
 * The client the token was issued to (named in any of CLIENT_CLAIMS) must be one dbgate accepts when
 * `identity.allowedClients` lists them. Without that list, OIDC Core's rule for
 * ID tokens applies: an `azp`, if present, is dbgate's own client id. A token naming no client passes.
 */
function checkAuthorizedParty(config: IdentityConfig, payload: JWTPayload, use: TokenUse): void {
  const named = clientsNamed(payload)
  if (config.allowedClients) {
    const accepted = [config.clientId, ...config.allowedClients]
    const other = named.find((c) => !accepted.includes(c))
    if (other !== undefined) throw new TokenClientError(other, [...new Set(accepted)])
    return
  }
  if (use === 'id_token' && typeof payload.azp === 'string' && payload.azp !== config.clientId) throw new TokenClientError(payload.azp, [config.clientId])
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
        return new TokenNotYetValidError({cause: error, claim: error.claim})
      default:
        return new TokenMalformedError(`its "${error.claim}" claim is invalid`, {cause: error})
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) {
    return new TokenSignatureError({cause: error})
  }
  if (isUnreachable(error)) {
    return new IdpUnreachableError(config.issuer, {cause: error})
  }
  if (error instanceof errors.JOSEError) {
    return new TokenMalformedError(error.code === 'ERR_JOSE_ALG_NOT_ALLOWED' ? 'its algorithm is not allowed' : 'it is not a valid JWS/JWT', {cause: error})
  }
  return new TokenMalformedError('it could not be verified', {cause: error})
}

/**
 * Whether the token's `email` may name the person. An address the IdP says it has not verified is
 * whatever the person typed: it names nobody. Only the flags that say "verified" (true, or the
 * string some IdPs send) and its absence (IdPs that send no flag) keep it; any other value ("False",
 * 0, "no", null) is not read as a yes.
 */
function emailVerified(flag: unknown): boolean {
  return flag === undefined || flag === true || (typeof flag === 'string' && flag.trim().toLowerCase() === 'true')
}

function stringClaim(payload: JWTPayload, name: string): string | undefined {
  const value = payload[name]
  return typeof value === 'string' && value !== '' ? value : undefined
}

/**
 * Groups from `path` (dotted, e.g. `realm_access.roles`). An array of strings is the norm; a single
 * string is one group, as IdPs that serialize a one-valued claim send it (AD FS). It is never
 * split: group names hold spaces and commas ("Data Engineering", an LDAP DN), and a part of one
 * would match an `allow` meant for another group ("Engineering", "OU=Groups").
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
  const items = Array.isArray(value) ? value : typeof value === 'string' ? [value] : []
  // Taken as sent, spaces included: where people may name groups themselves, " dba" is not dba.
  return [...new Set(items.filter((g): g is string => typeof g === 'string' && g !== ''))]
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
  const clientIds = clientsNamed(claims)
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
    return jwks.count()
  } catch (error) {
    if (error instanceof IdentityError) throw error
    throw new IdpUnreachableError(config.issuer, {cause: error})
  }
}

/** The keys the IdP publishes now, for `signedByPublishedKey`. */
export type PublishedKeys = ReturnType<typeof createLocalJWKSet>

/**
 * The IdP's signing keys, fetched now: undefined when it does not answer with them, since an outage
 * says nothing about which keys it still stands behind.
 */
export async function publishedKeys(config: IdentityConfig): Promise<PublishedKeys | undefined> {
  try {
    const uri = (await discover(config)).serverMetadata().jwks_uri
    if (!uri) return undefined
    // A fetch of its own: reloading the verifier's key set would start jose's cool-down, in which a
    // key the IdP has just rotated in is not fetched on its unknown kid, and its tokens are refused.
    const fresh = createRemoteJWKSet(new URL(uri), {timeoutDuration: 10_000})
    await fresh.reload()
    const keys = fresh.jwks()
    return keys ? createLocalJWKSet(keys) : undefined
  } catch {
    return undefined
  }
}

/**
 * Whether `token` (as verified at sign-in) is signed by one of `keys`: only its signature is checked,
 * not its claims or expiry. False once the IdP has withdrawn the key (revoked, or rotated out).
 */
/**
 * Brings the verifier's keys in line with `keys`, fetched just now: a key the IdP has withdrawn
 * verifies no sign-in from this moment, rather than until the verifier's copy ages. Resolves to the
 * ids of the keys withdrawn since the verifier last fetched them.
 */
export async function followPublishedKeys(config: IdentityConfig, keys: PublishedKeys): Promise<string[]> {
  return (await jwksFor(config)).follow(keys.jwks())
}

export async function signedByPublishedKey(keys: PublishedKeys, token: string): Promise<boolean> {
  try {
    await compactVerify(token, keys)
    return true
  } catch {
    return false
  }
}

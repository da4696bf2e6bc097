/**
 * Who may use which target of the gateway: the token presented as the password is verified
 * (signature against the IdP's keys, issuer, audience, expiry), the database name picks the target,
 * and the target's `allow` groups decide. Every refusal says which check failed and what to run;
 * none repeats the token.
 */
import {decodeProtectedHeader} from 'jose'
import type {IdentityConfig} from '../identity/config.js'
import {
  IdpUnreachableError,
  TokenAudienceError,
  TokenClientError,
  TokenExpiredError,
  TokenIssuerError,
  TokenNotYetValidError,
  TokenSignatureError,
} from '../identity/errors.js'
import {authorizeTarget} from '../identity/session.js'
import {identityLabel, type Identity} from '../identity/types.js'
import {verifyToken} from '../identity/verify.js'
import type {PgNoticeFields} from '../wire/fields.js'
import type {TargetConfig} from '../config/types.js'
import type {SignInFailure} from './observer.js'

export interface SignInRefusal {
  reason: SignInFailure
  error: PgNoticeFields
}

const SIGN_IN_AGAIN = 'Sign in again with `dbgate login` and reconnect (CI jobs and agents: `PGPASSWORD=$(dbgate token)`).'

/** The token's failure as the client reads it: 28P01, naming the check that failed. */
export function tokenRefusal(error: unknown, issuer: string): SignInRefusal {
  const refuse = (reason: SignInFailure, what: string, hint = SIGN_IN_AGAIN): SignInRefusal => ({
    reason,
    error: {severity: 'FATAL', code: '28P01', message: `dbgate: sign-in refused: ${what}`, hint},
  })
  if (error instanceof TokenExpiredError) return refuse('token-expired', 'the token has expired')
  if (error instanceof TokenNotYetValidError) return refuse('token-expired', `the token is not valid yet: ${error.message.replace(/^The token is not valid yet \((.*)\)\.$/, '$1')}`, 'Check the clock of the machine that issued or presents the token, then reconnect.')
  if (error instanceof TokenClientError) return refuse('token-client', `the token was issued to another client ("${error.client}"); this gateway accepts tokens of ${error.accepted.join(', ')} (identity.allowedClients)`, `Use a token obtained through dbgate (\`dbgate login\`, or \`dbgate token\` for CI), or ask the gateway administrators to add "${error.client}" to identity.allowedClients.`)
  if (error instanceof TokenAudienceError) return refuse('token-audience', `the token was issued for another application (wrong audience): ${error.message}`, `Use a token issued to dbgate for ${issuer}. ${SIGN_IN_AGAIN}`)
  if (error instanceof TokenIssuerError) return refuse('token-issuer', `the token was issued by another identity provider (wrong issuer; this gateway trusts ${issuer})`, `Sign in to ${issuer}: \`dbgate login\`, or \`dbgate token\` for CI.`)
  if (error instanceof TokenSignatureError && error.withdrawnKid !== undefined) {
    return refuse('token-signature', `the token was signed with a key the identity provider no longer publishes (key id "${error.withdrawnKid}"): ${issuer} has withdrawn it (revoked, or rotated out)`, `Get a fresh token, which it signs with a key it publishes: ${SIGN_IN_AGAIN.charAt(0).toLowerCase()}${SIGN_IN_AGAIN.slice(1)}`)
  }
  if (error instanceof TokenSignatureError) return refuse('token-signature', 'the token\'s signature does not verify against the identity provider\'s keys (altered, or not issued by it)')
  if (error instanceof IdpUnreachableError) {
    return {
      reason: 'idp-unavailable',
      error: {severity: 'FATAL', code: '57P03', message: `dbgate: the gateway cannot verify sign-ins right now: the identity provider ${issuer} is unreachable`, hint: 'Try again shortly; the gateway administrators can see why in its log and /readyz.'},
    }
  }
  const detail = error instanceof Error ? error.message.replace(/^The token is not a usable signed JWT: /, '').replace(/\.$/, '') : 'it could not be read'
  return refuse('token-malformed', `the password is not a usable sign-in token (malformed: ${detail})`, `The password must be your access token. ${SIGN_IN_AGAIN}`)
}

/**
 * Verifies the token. Unsigned tokens (`alg: none`) are refused by name before anything else, so
 * the client is told plainly rather than "malformed".
 */
export async function verifySignIn(config: IdentityConfig, token: string, now?: () => Date): Promise<{ok: true; identity: Identity} | {ok: false; refusal: SignInRefusal}> {
  let alg: unknown
  try {
    alg = decodeProtectedHeader(token.trim()).alg
  } catch {
    alg = undefined
  }
  if (typeof alg === 'string' && alg.toLowerCase() === 'none') {
    return {ok: false, refusal: {reason: 'token-signature', error: {severity: 'FATAL', code: '28P01', message: 'dbgate: sign-in refused: the token is unsigned (alg: none)', hint: SIGN_IN_AGAIN}}}
  }
  try {
    const {identity} = await verifyToken(config, token, {use: 'any', now})
    return {ok: true, identity}
  } catch (error) {
    return {ok: false, refusal: tokenRefusal(error, config.issuer)}
  }
}

/** The startup packet's `user` must name the person the token proves, so logs and recordings agree. */
export function userMismatch(identity: Identity, user: string): SignInRefusal | undefined {
  if (user === identity.email || user === identity.subject) return undefined
  const as = identityLabel(identity)
  return {
    reason: 'not-allowed',
    error: {severity: 'FATAL', code: '28000', message: `dbgate: the user name "${user}" is not the identity the token proves (${as})`, hint: `Connect with user=${as}.`},
  }
}

/** Targets this identity may use: on a gateway a target without `allow` lets nobody in (allow-list, fail closed). */
export function allowedTargets(targets: Record<string, TargetConfig>, identity: Identity): string[] {
  return Object.keys(targets)
    .filter((name) => authorizeTarget(identity, targets[name]!.allow ?? []).ok)
    .sort()
}

/** The target the database name picks, if this identity may use it. */
export function pickTarget(targets: Record<string, TargetConfig>, database: string, identity: Identity): {ok: true; target: TargetConfig} | {ok: false; refusal: SignInRefusal} {
  const target = Object.hasOwn(targets, database) ? targets[database] : undefined
  if (!target) {
    const mine = allowedTargets(targets, identity)
    return {
      ok: false,
      refusal: {
        reason: 'unknown-target',
        error: {
          severity: 'FATAL',
          code: '3D000',
          message: `dbgate: "${database}" is not a target this gateway serves`,
          hint: mine.length ? `The database name picks the target. Targets you may use: ${mine.join(', ')}.` : 'The database name picks the target, and none of this gateway\'s targets allows your groups.',
        },
      },
    }
  }
  const allowed = authorizeTarget(identity, target.allow ?? [])
  if (allowed.ok) return {ok: true, target}
  const groups = target.allow ?? []
  return {
    ok: false,
    refusal: {
      reason: 'not-allowed',
      error: {
        severity: 'FATAL',
        code: '28000',
        message: `dbgate: ${identityLabel(identity)} may not use target "${database}": ${allowed.error.message}`,
        hint: groups.length
          ? `Membership of any of these groups would let you in: ${groups.join(', ')}. Ask your IdP administrator, then sign in again so your token carries it.`
          : `Target "${database}" lists no groups in \`allow\`, so the gateway lets nobody in; ask its administrators.`,
      },
    },
  }
}

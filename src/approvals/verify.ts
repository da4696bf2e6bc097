/**
 * The waiting tunnel's check of a decision found in the bucket. Nothing in the decision's public
 * fields is believed: the sealed box must open with this request's private key, its token must be
 * a valid ID token from the configured IdP, fresh (issued after the request), of someone in the
 * target's reviewer groups who is not the requester, and it must agree with the public fields.
 */
import type {KeyObject} from 'node:crypto'
import {decodeJwt} from 'jose'
import type {IdentityConfig} from '../identity/config.js'
import {IdpUnreachableError} from '../identity/errors.js'
import {samePerson, type Identity} from '../identity/types.js'
import {verifyToken} from '../identity/verify.js'
import {open} from './seal.js'
import {OversizedDecision} from './store.js'
import {problemsOf} from '../util/document.js'
import {ApprovalDecisionSchema, MAX_WINDOW_MS, SealedDecisionSchema, windowRefusal, type ApprovalDecision, type ApprovalRequest, type SealedDecision} from './types.js'

/**
 * How long after its issue a reviewer's token proves a decision: long enough for the tunnel to poll
 * it and ask the IdP for its keys, short against a token's own lifetime (an hour or more at many IdPs).
 */
export const MAX_PROOF_AGE_MS = 5 * 60_000

export interface VerifiedDecision {
  decision: ApprovalDecision
  reviewer: Identity
  /** When the reviewer's token was issued (its `iat`), recorded as the proof's freshness. */
  tokenIssuedAt: Date
}

/** `transient`: the IdP could not be reached, so the decision is neither believed nor refused yet. */
export type DecisionCheck = {ok: true; verified: VerifiedDecision} | {ok: false; problem: string; transient?: boolean}

export interface VerifyDecisionOptions {
  request: ApprovalRequest
  digest: string
  privateKey: KeyObject
  identityConfig: IdentityConfig
  /** The target's reviewer groups, from the tunnel's own configuration (not from the request). */
  reviewers: readonly string[]
  now?: () => Date
}

export async function verifyDecision(raw: unknown, opts: VerifyDecisionOptions): Promise<DecisionCheck> {
  const fail = (problem: string): DecisionCheck => ({ok: false, problem})
  if (raw instanceof OversizedDecision) return fail(raw.problem)
  const malformed = problemsOf(ApprovalDecisionSchema, raw)
  if (malformed) return fail(`it is not a valid decision (${malformed.join('; ')})`)
  const d = raw as ApprovalDecision
  if (d.requestId !== opts.request.id) return fail('it is not a decision for this request')
  if (d.requestDigest !== opts.digest) return fail('it was made on a different version of the request (the request was altered in the bucket)')
  let sealed: SealedDecision
  try {
    sealed = JSON.parse(open(opts.privateKey, d.proof, {requestId: opts.request.id, requestDigest: opts.digest})) as SealedDecision
  } catch {
    return fail('its proof was not sealed to this tunnel (a decision written by hand, or for another request)')
  }
  const unsealed = problemsOf(SealedDecisionSchema, sealed)
  if (unsealed) return fail(`what its proof seals is not a valid sealed decision (${unsealed.join('; ')})`)
  if (sealed.requestId !== d.requestId || sealed.requestDigest !== d.requestDigest || sealed.action !== d.action || sealed.reason !== d.reason || sealed.windowMs !== d.windowMs || sealed.decidedAt !== d.decidedAt) {
    return fail('its public fields do not match what the reviewer sealed')
  }
  let reviewer: Identity
  let iat: number | undefined
  try {
    reviewer = (await verifyToken(opts.identityConfig, sealed.token, {use: opts.identityConfig.verify, now: opts.now})).identity
    iat = decodeJwt(sealed.token).iat
  } catch (e) {
    if (e instanceof IdpUnreachableError) return {ok: false, problem: `the identity provider could not be reached to verify it: ${e.message}`, transient: true}
    // TokenError messages never hold the token; keep only the reason.
    return fail(`the reviewer's sign-in did not verify: ${(e as Error).message}`)
  }
  if (reviewer.kind !== 'human') return fail(`${reviewer.subject} is a service identity; only people review`)
  if (typeof iat !== 'number' || iat * 1000 < Date.parse(opts.request.createdAt) - opts.identityConfig.clockSkewMs) {
    return fail('the reviewer\'s token was issued before the request was made, so it does not prove a decision on it')
  }
  // The groups a token names are the IdP's word when it was issued: one older than this may name a
  // group the reviewer has since been taken out of. `dbgate approve` renews the token for each decision.
  const at = (opts.now ?? (() => new Date()))().getTime()
  if (iat * 1000 < at - MAX_PROOF_AGE_MS - opts.identityConfig.clockSkewMs) {
    return fail(`the reviewer's token was issued ${Math.round((at - iat * 1000) / 60_000)} min before the decision was checked, longer than ${MAX_PROOF_AGE_MS / 60_000} min, so it does not prove they may review now (a group taken away since would still show in it); decide again with dbgate approve, which renews it`)
  }
  if (reviewer.subject !== d.reviewer?.subject) return fail(`it names another reviewer than the one signed in (${reviewer.email ?? reviewer.subject})`)
  // The requester under another subject of theirs (same verified mailbox) is still the requester.
  if (samePerson(reviewer, opts.request.requester)) return fail(`${reviewer.email ?? reviewer.subject} requested it and cannot decide their own request`)
  if (!reviewer.groups.some((g) => opts.reviewers.includes(g))) {
    return fail(`${reviewer.email ?? reviewer.subject} (groups: ${reviewer.groups.join(', ') || 'none'}) is not in a reviewer group of ${opts.request.target} (${opts.reviewers.join(', ') || 'none configured'})`)
  }
  if (d.action === 'window' && (!opts.request.windows || !(typeof d.windowMs === 'number' && d.windowMs > 0))) return fail('windows are not allowed on this target, or the window has no duration')
  const noWindow = d.action === 'window' ? windowRefusal(opts.request.ruleId) : undefined
  if (noWindow) return fail(`a window cannot be granted here: ${noWindow}`)
  if (d.action === 'window' && d.windowMs! > MAX_WINDOW_MS) return fail(`the window is longer than a reviewer may grant (${Math.round(MAX_WINDOW_MS / 3_600_000)} h)`)
  if (d.action === 'deny' && !d.reason?.trim()) return fail('a denial needs a reason')
  return {ok: true, verified: {decision: d, reviewer, tokenIssuedAt: new Date(iat * 1000)}}
}

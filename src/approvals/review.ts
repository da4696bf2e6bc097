/**
 * The reviewer's side: which requests this person may decide, and deciding one. Every check here
 * is also made by the waiting tunnel, which trusts none of them; they are here so a reviewer
 * learns at once why they cannot decide, instead of the tunnel refusing silently later.
 */
import {visibleDeep} from '../util/visible.js'
import type {X509Certificate} from 'node:crypto'
import {decodeJwt} from 'jose'
import type {Bucket} from '../bucket/index.js'
import type {DbgateConfig} from '../config/types.js'
import type {Session} from '../identity/session.js'
import {identityLabel, samePerson, type Identity} from '../identity/types.js'
import {
  APPROVAL_ALREADY_DECIDED,
  APPROVAL_BAD_INPUT,
  APPROVAL_NO_FRESH_TOKEN,
  APPROVAL_NOT_A_REVIEWER,
  APPROVAL_NOT_FOUND,
  APPROVAL_NOT_PENDING,
  APPROVAL_SELF,
  APPROVAL_UNTRUSTED_REQUEST,
  ApprovalError,
} from './errors.js'
import {shortDuration} from './format.js'
import {seal} from './seal.js'
import {checkGatewaySignature} from './gateway-signature.js'
import {isApprovalId, listRequests, readDecision, readOutcome, readRequest, requestDigest, stateOf, writeDecision} from './store.js'
import type {ApprovalDecision, ApprovalRequest, DecisionAction, RequestView, SealedDecision} from './types.js'
import {MAX_WINDOW_MS, requesterLabel, windowRefusal} from './types.js'

/** A signed-in reviewer who can produce a token issued no earlier than a given time. */
export interface Reviewer {
  identity: Identity
  freshToken(notBefore: Date): Promise<{identity: Identity; token: string}>
}

/**
 * Wraps a verified session. Each decision asks the IdP again (a refresh grant), so the token it
 * carries says what the reviewer is now: a reviewer taken out of the reviewer groups since they
 * signed in still held a token that named the group until it expired, and decided with it. The
 * renewed token is also issued after the request, which proves the decision came after it.
 */
export function reviewerFromSession(session: Session): Reviewer {
  let current = session
  return {
    identity: session.identity,
    async freshToken(notBefore) {
      // `iat` has whole seconds; a token issued in the request's own second counts as after it.
      const floor = Math.floor(notBefore.getTime() / 1000)
      const stale = (s: Session) => (decodeJwt(s.token).iat ?? 0) < floor
      // A DBGATE_TOKEN renews to itself: it proves a decision while it is young enough (verify.ts).
      current = await current.refresh({notBefore})
      if (stale(current)) {
        throw new ApprovalError(
          APPROVAL_NO_FRESH_TOKEN,
          'Your sign-in could not be renewed, so it cannot prove a decision made now (a DBGATE_TOKEN cannot be refreshed).',
          'Run `dbgate login` (and unset DBGATE_TOKEN), then decide again.',
        )
      }
      return {identity: current.identity, token: current.token}
    },
  }
}

export interface ReviewContext {
  bucket: Bucket
  config: DbgateConfig
  reviewer: Reviewer
  /**
   * The certificate the configured gateway presents (verify-full): required when the configuration
   * names a gateway, since a token is sealed only to a seal key that certificate's key signed.
   */
  gatewayCertificate?: () => Promise<X509Certificate>
  now?: () => Date
}

/**
 * Refuses, before any token is renewed or sealed, a request that the reviewer's gateway did not
 * file and sign as it reads now (gateway-signature.ts). A configuration with targets of its own
 * (local mode) has no gateway to ask: the requester's tunnel holds the seal key there
 * (docs/approvals.md, "Trust model").
 */
async function trustRequest(ctx: ReviewContext, request: ApprovalRequest): Promise<void> {
  if (!ctx.config.gateway) return
  if (!ctx.gatewayCertificate) throw new ApprovalError(APPROVAL_UNTRUSTED_REQUEST, `Cannot check that your gateway filed ${request.id}, so your sign-in is not sealed to it.`, 'Decide it with `dbgate approve`, which asks the gateway named in dbgate.yaml.')
  const check = checkGatewaySignature(request, await ctx.gatewayCertificate())
  if (check.ok) return
  const shown = visibleDeep(request)
  const gw = `${ctx.config.gateway.address.host}:${ctx.config.gateway.address.port}`
  throw new ApprovalError(
    APPROVAL_UNTRUSTED_REQUEST,
    `${shown.id} was not filed by your gateway ${gw}: ${check.problem}. Deciding it, either way, would seal your sign-in token to a key its writer may hold, so nothing was sent.`,
    check.why === 'other-certificate'
      ? `If the gateway's certificate was replaced since ${shown.createdAt}, ask ${requesterLabel(shown.requester)} to run the statement again; replicas behind one address must present the same certificate. Otherwise report ${shown.id} to your security team as a planted request.`
      : `Do not decide it by other means. Report ${shown.id} to your security team: someone who can write the bucket's approvals/ planted it, and the requester it names (${requesterLabel(shown.requester)}) may not be who wrote it.`,
  )
}

export type ReviewRight = {ok: true} | {ok: false; code: typeof APPROVAL_NOT_A_REVIEWER | typeof APPROVAL_SELF; message: string; nextStep?: string}

/**
 * The reviewer groups of the request's target, by this reviewer's own configuration. A gateway's
 * client has no targets: the gateway holds them, wrote their reviewer groups into the request, and
 * verifies every decision against its own configuration, so the request's groups stand in here.
 */
function targetForReview(config: DbgateConfig, request: ApprovalRequest): {reviewers: readonly string[]} | undefined {
  // The request's target is the bucket's word: only the configuration's own keys count.
  const own = Object.hasOwn(config.targets, request.target) ? config.targets[request.target] : undefined
  return own ?? (config.gateway ? {reviewers: request.reviewers} : undefined)
}

/** Whether `who` may decide `request`, by this reviewer's own configuration of the target. */
export function mayReview(config: DbgateConfig, who: Identity, request: ApprovalRequest): ReviewRight {
  const target = targetForReview(config, request)
  if (!target) return {ok: false, code: APPROVAL_NOT_A_REVIEWER, message: `Target ${request.target} is not in your dbgate.yaml, so you cannot review it.`, nextStep: 'Use the same dbgate.yaml as the requester, with DBGATE_CONFIG or --config.'}
  if (samePerson(who, request.requester)) return {ok: false, code: APPROVAL_SELF, message: `You (${identityLabel(who)}) requested ${request.id}; nobody can decide their own request.`, nextStep: `Ask a member of ${target.reviewers.join(', ') || 'the reviewer groups'}.`}
  if (!who.groups.some((g) => target.reviewers.includes(g))) {
    return {
      ok: false,
      code: APPROVAL_NOT_A_REVIEWER,
      message: `${identityLabel(who)} (groups: ${who.groups.join(', ') || 'none'}) is not a reviewer of ${request.target}; its reviewers are ${target.reviewers.join(', ') || 'not configured'}.`,
    }
  }
  return {ok: true}
}

export interface ListForReviewerOptions {
  /** Include settled requests too (approved, denied, expired, withdrawn). */
  all?: boolean
  /** Told of each record in the bucket that is not valid and so left out. */
  onInvalid?: (message: string) => void
}

/**
 * Requests on targets this reviewer may review, newest first; their own are left out (they cannot
 * decide them), and so, through a gateway, is every request it did not file, each named in a
 * warning (`onInvalid`). Should the gateway not answer, everything is listed with a warning:
 * deciding asks it again and refuses what it did not file.
 */
export async function listForReviewer(ctx: ReviewContext, opts: ListForReviewerOptions = {}): Promise<RequestView[]> {
  const views = await listRequests(ctx.bucket, {now: ctx.now?.(), onInvalid: opts.onInvalid})
  const mine = views.filter((v) => mayReview(ctx.config, ctx.reviewer.identity, v.request).ok && (opts.all || v.state === 'pending'))
  return filedByGateway(ctx, mine, opts)
}

/** Requests this person made (their own are never in their review list), newest first; through a gateway, only those it filed. */
export async function listOwnRequests(ctx: ReviewContext, opts: ListForReviewerOptions = {}): Promise<RequestView[]> {
  const views = await listRequests(ctx.bucket, {now: ctx.now?.(), onInvalid: opts.onInvalid})
  const own = views.filter((v) => samePerson(v.request.requester, ctx.reviewer.identity) && (opts.all || v.state === 'pending'))
  return filedByGateway(ctx, own, opts)
}

/**
 * Through a gateway, the views whose request it signed: a settled request it did not file is
 * history nobody made (its decision and outcome files are as writable as the request), so it is
 * left out of `--all` as a pending one is, and named.
 */
async function filedByGateway(ctx: ReviewContext, views: RequestView[], opts: ListForReviewerOptions): Promise<RequestView[]> {
  if (!ctx.config.gateway || !ctx.gatewayCertificate || views.length === 0) return views
  let cert: X509Certificate
  try {
    cert = await ctx.gatewayCertificate()
  } catch (e) {
    opts.onInvalid?.(`could not ask your gateway which requests it filed (${(e as Error).message}); deciding one checks again`)
    return views
  }
  return views.filter((v) => {
    const check = checkGatewaySignature(v.request, cert)
    if (!check.ok) opts.onInvalid?.(`${visibleDeep(v.request.id)} (requester: ${requesterLabel(visibleDeep(v.request.requester))}) left out: your gateway did not file it (${check.problem}); report it to your security team`)
    return check.ok
  })
}

/**
 * Why someone has nothing to review when they are in no target's reviewer groups: who reviews
 * what, and where their own requests are. Undefined for a reviewer of at least one target.
 */
export async function notAReviewer(ctx: ReviewContext): Promise<{message: string; nextStep: string} | undefined> {
  const who = ctx.reviewer.identity
  // Through a gateway, which requests one may decide shows per request (their reviewer groups).
  if (ctx.config.gateway) return undefined
  const targets = Object.values(ctx.config.targets)
  if (targets.some((t) => who.groups.some((g) => t.reviewers.includes(g)))) return undefined
  const reviewers = targets.map((t) => `${t.name}: ${t.reviewers.join(', ') || 'none configured'}`).join('; ')
  const own = await listOwnRequests(ctx)
  return {
    message: `${identityLabel(who)} (groups: ${who.groups.join(', ') || 'none'}) is not in the reviewer groups of any target (${reviewers}), so there is nothing for you to decide.`,
    nextStep: own.length
      ? `Your own pending request${own.length === 1 ? '' : 's'} (${own.map((v) => `${v.request.id} on ${v.request.target}`).join(', ')}) wait${own.length === 1 ? 's' : ''} for those reviewers; \`dbgate approvals list --mine\` shows them.`
      : 'Requests you make wait for those reviewers; `dbgate approvals list --mine` shows them.',
  }
}

export interface DecideInput {
  id: string
  /**
   * The digest (requestDigest) of the request as the reviewer read it, where a screen showed it:
   * one that changed in the bucket since is refused, rather than decided as it reads now.
   */
  digest?: string
  action: DecisionAction
  reason?: string
  windowMs?: number
}

export interface DecideResult {
  request: ApprovalRequest
  decision: ApprovalDecision
}

/** The first line of a decision someone else already made, for the reviewer who lost the race. */
export function describeWinner(d: ApprovalDecision | undefined): string {
  if (!d) return 'someone else decided it first'
  const verb = d.action === 'deny' ? 'denied' : d.action === 'window' ? 'granted a window on it' : 'approved'
  return `${d.reviewer?.email ?? d.reviewer?.subject ?? 'someone'} ${verb} it at ${d.decidedAt}${d.reason ? ` (${d.reason})` : ''}`
}

// Almost always another reviewer was quicker. The bucket cannot tell a real decision from a
// planted one, but the waiting tunnel can: it sets a bad one aside and the request is pending again.
const ALREADY_DECIDED = 'Nothing more to do. (Should that decision not be genuine, the waiting tunnel rejects it and the request shows up as pending again.)'

export async function decide(ctx: ReviewContext, input: DecideInput): Promise<DecideResult> {
  const now = ctx.now ?? (() => new Date())
  if (!isApprovalId(input.id)) throw new ApprovalError(APPROVAL_BAD_INPUT, `${JSON.stringify(input.id)} is not an approval id (they look like apr-k3x9…).`, 'Run `dbgate approvals list` to see pending requests.')
  const reason = input.reason?.trim() || undefined
  if (input.action === 'deny' && !reason) throw new ApprovalError(APPROVAL_BAD_INPUT, 'A denial needs a reason; the requester sees it.', 'Pass --reason "…".')
  if (input.action === 'window' && !(input.windowMs && input.windowMs > 0)) throw new ApprovalError(APPROVAL_BAD_INPUT, 'A window needs a duration, e.g. 30m.')
  if (input.action === 'window' && input.windowMs! > MAX_WINDOW_MS) {
    throw new ApprovalError(APPROVAL_BAD_INPUT, `A window may last at most ${shortDuration(MAX_WINDOW_MS)}; ${shortDuration(input.windowMs!)} was asked.`, 'Grant a shorter window, or allow the statements in the target\'s rules (dbgate.yaml) if they should run without asking for longer.')
  }

  const request = await readRequest(ctx.bucket, input.id)
  if (!request) throw new ApprovalError(APPROVAL_NOT_FOUND, `No approval request ${input.id} in ${ctx.bucket.url}.`, 'Run `dbgate approvals list` to see pending requests.')
  // The signature covers the id inside the record, not the name it is stored under: a bucket writer
  // can copy another pending request (genuine, signed) over the one the reviewer read, and deciding
  // it would decide that other request. The list leaves such a record out; deciding refuses it.
  const noWindow = input.action === 'window' ? windowRefusal(request.ruleId) : undefined
  if (noWindow) throw new ApprovalError(APPROVAL_BAD_INPUT, `A window cannot be granted on ${input.id}: ${noWindow}.`, 'Approve this one statement instead (a, or dbgate approve without --window).')
  if (request.id !== input.id) {
    throw new ApprovalError(
      APPROVAL_UNTRUSTED_REQUEST,
      `${input.id} holds another request (${visibleDeep(request.id)}), so it was not decided: deciding it would have decided that one, not the request you read.`,
      `Report ${input.id} to your security team: someone who can write the bucket's approvals/ replaced it. Review ${visibleDeep(request.id)} on its own, from \`dbgate approvals list\`.`,
    )
  }
  // The record is read again here, and anyone who writes the bucket can change it in between: a
  // harmless copy shown, the genuine one put back before Enter. The decision is for what was read.
  if (input.digest !== undefined && requestDigest(request) !== input.digest) {
    throw new ApprovalError(
      APPROVAL_UNTRUSTED_REQUEST,
      `${input.id} is not the request you read: its record changed in the bucket since (its SQL, values or requester may not be what you saw), so it was not decided.`,
      `Read it again before deciding. A pending request is written once by the waiting tunnel: report ${input.id} to your security team, since someone who can write the bucket's approvals/ changed it.`,
    )
  }
  const [existing, outcome] = await Promise.all([readDecision(ctx.bucket, input.id), readOutcome(ctx.bucket, input.id)])
  if (existing) throw new ApprovalError(APPROVAL_ALREADY_DECIDED, `${input.id} was already decided: ${describeWinner(existing)}.`, ALREADY_DECIDED)
  const state = stateOf(request, existing, outcome, now())
  if (state !== 'pending') throw new ApprovalError(APPROVAL_NOT_PENDING, `${input.id} is no longer pending: it was ${state}.`)
  if (input.action === 'window' && !request.windows) throw new ApprovalError(APPROVAL_BAD_INPUT, `Target ${request.target} does not allow windows (approvals.windows is off); approve the one statement instead.`)

  const first = mayReview(ctx.config, ctx.reviewer.identity, request)
  if (!first.ok) throw new ApprovalError(first.code, first.message, first.nextStep)
  await trustRequest(ctx, request)
  const {identity, token} = await ctx.reviewer.freshToken(new Date(request.createdAt))
  // Groups come from the token just issued: they may have changed since the last sign-in.
  const right = mayReview(ctx.config, identity, request)
  if (!right.ok) throw new ApprovalError(right.code, right.message, right.nextStep)

  const digest = requestDigest(request)
  const decidedAt = now().toISOString()
  const sealed: SealedDecision = {
    requestId: request.id,
    requestDigest: digest,
    action: input.action,
    ...(reason ? {reason} : {}),
    ...(input.action === 'window' ? {windowMs: input.windowMs} : {}),
    decidedAt,
    token,
  }
  const decision: ApprovalDecision = {
    v: 1,
    requestId: request.id,
    action: input.action,
    ...(reason ? {reason} : {}),
    ...(input.action === 'window' ? {windowMs: input.windowMs} : {}),
    reviewer: {subject: identity.subject, email: identity.email, name: identity.name, groups: [...identity.groups]},
    decidedAt,
    requestDigest: digest,
    proof: seal(request.sealKey, JSON.stringify(sealed), {requestId: request.id, requestDigest: digest}),
  }
  const written = await writeDecision(ctx.bucket, decision)
  if (!written.won) throw new ApprovalError(APPROVAL_ALREADY_DECIDED, `${request.id} was already decided: ${describeWinner(written.winner)}.`, ALREADY_DECIDED)
  return {request, decision}
}

/** One sentence for the reviewer after a decision. */
export function confirmation(result: DecideResult): string {
  // Printed to the reviewer's terminal: the requester's names and the target are not ours to print raw.
  const r = {...result, request: visibleDeep(result.request)}
  const who = requesterLabel(r.request.requester)
  switch (r.decision.action) {
    case 'deny':
      return `Denied ${r.request.id} (${who} on ${r.request.target}); they see your reason.`
    case 'window':
      return `Approved ${r.request.id} with a window: ${r.request.class} statements that rule ${r.request.ruleId} holds, by ${who} on ${r.request.target}, run without asking for ${shortDuration(r.decision.windowMs!)}.`
    default:
      return `Approved ${r.request.id} (${who} on ${r.request.target}); the waiting statement runs within a few seconds.`
  }
}

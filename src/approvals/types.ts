/**
 * The approval records as they live in the bucket. Requests and decisions are plain JSON that any
 * bucket reader may see; nothing here is trusted by the tunnel except what it can verify itself
 * (see verify.ts and docs/approvals.md, "Trust model").
 */
import {z} from 'zod'

export const APPROVALS_VERSION = 1

/** The longest window a reviewer may grant: past a day, what runs without asking is a rule, and belongs in the target's rules. */
export const MAX_WINDOW_MS = 24 * 60 * 60 * 1000

/**
 * Rules that hold a statement because dbgate cannot see the code it runs (a volatile function, a DO
 * block or new function, calls after an uncommitted change to the catalog). A window granted on one
 * would let through any such code, whatever it does, unread: these are approved one at a time.
 */
export const NO_WINDOW_RULES: ReadonlySet<string> = new Set(['default.volatile-function', 'default.opaque-approval', 'default.unsettled-catalog-approval'])

/** Why a window may not be granted on a request held by `ruleId`, or undefined when it may. */
export function windowRefusal(ruleId: string): string | undefined {
  if (!NO_WINDOW_RULES.has(ruleId)) return undefined
  return `rule ${ruleId} holds statements because dbgate cannot see the code they run, so a window on it would let any such code through unread`
}

const version = z.literal(APPROVALS_VERSION)
const timestamp = z.string().refine((v) => !Number.isNaN(Date.parse(v)), 'expected an ISO timestamp')

const RequesterSchema = z.object({
  subject: z.string().min(1),
  email: z.string().optional(),
  name: z.string().optional(),
  groups: z.array(z.string()),
  issuer: z.string(),
  kind: z.enum(['human', 'service']),
})
/** Who asked, as reviewers see them: identity fields only, never a token or its hash. */
export type Requester = z.infer<typeof RequesterSchema>

const RequestedStatementSchema = z.object({
  text: z.string(),
  class: z.string(),
  command: z.string(),
  /** The action policy took on this statement (`require_approval`, `allow`, `warn`). */
  action: z.string(),
  ruleId: z.string(),
})
export type RequestedStatement = z.infer<typeof RequestedStatementSchema>

const RecentStatementSchema = z.object({sql: z.string(), decision: z.string(), outcome: z.string(), at: z.string()})
/** What ran in the session just before, so a reviewer sees the statement in context. */
export type RecentStatement = z.infer<typeof RecentStatementSchema>

/** `approvals/requests/<id>.json`, written once by the waiting tunnel. */
export const ApprovalRequestSchema = z.object({
  v: version,
  id: z.string().regex(/^apr-[a-z0-9]{4,32}$/, 'expected an approval id such as apr-k3x9m2p7qa'),
  target: z.string(),
  database: z.string(),
  requester: RequesterSchema,
  sessionId: z.string(),
  connectionId: z.number(),
  /** The whole text the client sent (a simple Query may hold several statements). */
  sql: z.string(),
  /**
   * For a statement held at its Bind: the values bound to $1, $2, … as text (one sent in binary
   * format as `b64:` and its base64), null for NULL. They are what runs if it is approved.
   */
  params: z.array(z.string().nullable()).optional(),
  /**
   * The parameter types the statement's Parse declared, one for each value (`oid 23`; '' for one
   * left to the server): a value converted to a declared `text` or `int4` picks another overload,
   * operator or domain CHECK than the text alone shows.
   */
  paramTypes: z.array(z.string()).optional(),
  /**
   * The session's settings that change what the text means or as whom it runs (REVIEWED_SETTINGS),
   * as the server last reported them when the statement was held: '01/02/2026' is 2 January under
   * DateStyle MDY and 1 February under DMY, a timestamptz literal moves with TimeZone, and
   * search_path decides which tables unqualified names are.
   */
  settings: z.record(z.string(), z.string()).optional(),
  statements: z.array(RequestedStatementSchema),
  /**
   * Every part of the text that needs a reviewer, with the rule that holds it and what policy found
   * (`a trigger of audited runs public.audit_dyn, which runs SQL built at run time …`): a write's
   * triggers, defaults and checks run code the text does not show, and the rule's reason alone
   * ("calls a volatile function") does not say which.
   */
  held: z.array(z.object({ruleId: z.string(), reason: z.string(), detail: z.string().optional()})).optional(),
  /**
   * What each prepared statement the text executes holds, as the session defined it (`EXECUTE p`
   * carries no SQL of its own; the PREPARE may be far behind what "Earlier in this session" shows).
   */
  prepared: z.array(z.object({name: z.string(), sql: z.string()})).optional(),
  /**
   * The session's temporary relations the text names without a schema: pg_temp is searched first for
   * relations, so `orders` is that table or view (its definition shown), not the one of the same name
   * a reviewer has in mind, and the CREATE TEMP that made it may be far behind the last statements shown.
   */
  temporary: z.array(z.object({name: z.string(), kind: z.string(), definition: z.string().optional()})).optional(),
  /** Class of the statement that needed approval: what a window would grant. */
  class: z.string(),
  ruleId: z.string(),
  reason: z.string(),
  /** Groups whose members may decide. */
  reviewers: z.array(z.string()),
  createdAt: timestamp,
  expiresAt: timestamp,
  /** Whether a reviewer may answer with a time-boxed window (`approvals.windows`). */
  windows: z.boolean(),
  /**
   * X25519 public key (SPKI DER, base64) of a key pair that exists only in the waiting tunnel's
   * memory. Reviewers seal their proof of identity to it, so only that tunnel can read it.
   */
  sealKey: z.string(),
  /** The filing gateway's signature over the rest of the request (gateway-signature.ts); absent from a local tunnel's. */
  gatewaySignature: z.object({alg: z.string(), cert: z.string(), signature: z.string()}).optional(),
  host: z.string(),
  recent: z.array(RecentStatementSchema),
  /** The AI agent that sent the statement for `requester` (`dbgate mcp`), as it named itself. */
  agent: z.object({client: z.literal('mcp'), name: z.string(), version: z.string().optional()}).optional(),
})
export type ApprovalRequest = z.infer<typeof ApprovalRequestSchema>
export type GatewaySignature = NonNullable<ApprovalRequest['gatewaySignature']>

/** How a held statement ended, as the statement's recording names it. */
export type ApprovalOutcomeDecision = 'approved' | 'approval_denied' | 'approval_timeout' | 'approval_withdrawn'

/** The approval that settled a held statement, carried on its verdict (`StatementVerdict.approval`). */
export interface ApprovalSettlement {
  id: string
  decision: ApprovalOutcomeDecision
  reviewer?: string
  /** The statement ran under a window granted for an earlier request. */
  window?: boolean
}

const DecisionActionSchema = z.enum(['approve', 'deny', 'window'])
export type DecisionAction = z.infer<typeof DecisionActionSchema>

const ClaimedReviewerSchema = z.object({
  subject: z.string(),
  email: z.string().optional(),
  name: z.string().optional(),
  groups: z.array(z.string()),
})
/** The reviewer as the decision claims them; the tunnel believes it only after verifying the sealed token. */
export type ClaimedReviewer = z.infer<typeof ClaimedReviewerSchema>

const SealedBoxSchema = z.object({
  alg: z.literal('X25519-HKDF-SHA256-A256GCM'),
  /** The reviewer's ephemeral X25519 public key, SPKI DER base64. */
  epk: z.string(),
  iv: z.string(),
  ct: z.string(),
  tag: z.string(),
})
export type SealedBox = z.infer<typeof SealedBoxSchema>

/** `approvals/decisions/<id>.json`, written create-exclusive: the first decision wins. */
export const ApprovalDecisionSchema = z.object({
  v: version,
  requestId: z.string(),
  action: DecisionActionSchema,
  reason: z.string().optional(),
  /** For `window`: how long statements of the request's class run without asking. */
  windowMs: z.number().optional(),
  reviewer: ClaimedReviewerSchema,
  decidedAt: z.string(),
  /** SHA-256 of the request as the reviewer read it: a request altered in the bucket cannot be approved. */
  requestDigest: z.string(),
  proof: SealedBoxSchema,
})
export type ApprovalDecision = z.infer<typeof ApprovalDecisionSchema>

/** What is inside the sealed box: the public fields again, plus the reviewer's token. */
export const SealedDecisionSchema = z.object({
  requestId: z.string(),
  requestDigest: z.string(),
  action: DecisionActionSchema,
  reason: z.string().optional(),
  windowMs: z.number().optional(),
  decidedAt: z.string(),
  /** The reviewer's proving token (an ID token unless identity.verify says access_token). */
  token: z.string(),
})
export type SealedDecision = z.infer<typeof SealedDecisionSchema>

const OutcomeStateSchema = z.enum(['approved', 'denied', 'window', 'expired', 'withdrawn'])
export type OutcomeState = z.infer<typeof OutcomeStateSchema>

/** `approvals/outcomes/<id>.json`, written by the tunnel when the request is settled. */
export const ApprovalOutcomeSchema = z.object({
  v: version,
  requestId: z.string(),
  state: OutcomeStateSchema,
  at: z.string(),
  /** Who decided, once verified (approved / denied / window). */
  reviewer: z.string().optional(),
  reason: z.string().optional(),
})
export type ApprovalOutcome = z.infer<typeof ApprovalOutcomeSchema>

/** `approvals/windows/<id>.json`: a window the tunnel verified, published so reviewers can see it. */
export const ApprovalWindowSchema = z.object({
  v: version,
  requestId: z.string(),
  target: z.string(),
  class: z.string(),
  requester: z.string(),
  reviewer: z.string(),
  from: z.string(),
  until: z.string(),
})
export type ApprovalWindow = z.infer<typeof ApprovalWindowSchema>

export type RequestState = 'pending' | 'decided' | OutcomeState

/** A request with everything known about it, for lists and the TUI. */
export interface RequestView {
  request: ApprovalRequest
  state: RequestState
  decision?: ApprovalDecision
  outcome?: ApprovalOutcome
}

export function requesterLabel(r: Pick<Requester, 'email' | 'subject'>): string {
  return r.email ?? r.subject
}

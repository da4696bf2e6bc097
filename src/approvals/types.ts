/**
 * The approval records as they live in the bucket. Requests and decisions are plain JSON that any
 * bucket reader may see; nothing here is trusted by the tunnel except what it can verify itself
 * (see verify.ts and docs/approvals.md, "Trust model").
 */
import type {AgentInfo, Identity} from '../identity/types.js'

export const APPROVALS_VERSION = 1

/** Who asked, as reviewers see them: identity fields only, never a token or its hash. */
export type Requester = Pick<Identity, 'subject' | 'email' | 'name' | 'groups' | 'issuer' | 'kind'>

export interface RequestedStatement {
  text: string
  class: string
  command: string
  /** The action policy took on this statement (`require_approval`, `allow`, `warn`). */
  action: string
  ruleId: string
}

/** What ran in the session just before, so a reviewer sees the statement in context. */
export interface RecentStatement {
  sql: string
  decision: string
  outcome: string
  at: string
}

/** `approvals/requests/<id>.json`, written once by the waiting tunnel. */
export interface ApprovalRequest {
  v: typeof APPROVALS_VERSION
  id: string
  target: string
  database: string
  requester: Requester
  sessionId: string
  connectionId: number
  /** The whole text the client sent (a simple Query may hold several statements). */
  sql: string
  statements: RequestedStatement[]
  /** Class of the statement that needed approval: what a window would grant. */
  class: string
  ruleId: string
  reason: string
  /** Groups whose members may decide. */
  reviewers: string[]
  createdAt: string
  expiresAt: string
  /** Whether a reviewer may answer with a time-boxed window (`approvals.windows`). */
  windows: boolean
  /**
   * X25519 public key (SPKI DER, base64) of a key pair that exists only in the waiting tunnel's
   * memory. Reviewers seal their proof of identity to it, so only that tunnel can read it.
   */
  sealKey: string
  host: string
  recent: RecentStatement[]
  /** The AI agent that sent the statement for `requester` (`dbgate mcp`), as it named itself. */
  agent?: AgentInfo
}

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

export type DecisionAction = 'approve' | 'deny' | 'window'

/** The reviewer as the decision claims them; the tunnel believes it only after verifying the sealed token. */
export interface ClaimedReviewer {
  subject: string
  email?: string
  name?: string
  groups: string[]
}

export interface SealedBox {
  alg: 'X25519-HKDF-SHA256-A256GCM'
  /** The reviewer's ephemeral X25519 public key, SPKI DER base64. */
  epk: string
  iv: string
  ct: string
  tag: string
}

/** `approvals/decisions/<id>.json`, written create-exclusive: the first decision wins. */
export interface ApprovalDecision {
  v: typeof APPROVALS_VERSION
  requestId: string
  action: DecisionAction
  reason?: string
  /** For `window`: how long statements of the request's class run without asking. */
  windowMs?: number
  reviewer: ClaimedReviewer
  decidedAt: string
  /** SHA-256 of the request as the reviewer read it: a request altered in the bucket cannot be approved. */
  requestDigest: string
  proof: SealedBox
}

/** What is inside the sealed box: the public fields again, plus the reviewer's token. */
export interface SealedDecision {
  requestId: string
  requestDigest: string
  action: DecisionAction
  reason?: string
  windowMs?: number
  decidedAt: string
  /** The reviewer's proving token (an ID token unless identity.verify says access_token). */
  token: string
}

export type OutcomeState = 'approved' | 'denied' | 'window' | 'expired' | 'withdrawn'

/** `approvals/outcomes/<id>.json`, written by the tunnel when the request is settled. */
export interface ApprovalOutcome {
  v: typeof APPROVALS_VERSION
  requestId: string
  state: OutcomeState
  at: string
  /** Who decided, once verified (approved / denied / window). */
  reviewer?: string
  reason?: string
}

/** `approvals/windows/<id>.json`: a window the tunnel verified, published so reviewers can see it. */
export interface ApprovalWindow {
  v: typeof APPROVALS_VERSION
  requestId: string
  target: string
  class: string
  requester: string
  reviewer: string
  from: string
  until: string
}

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

/**
 * The compliance report as data: `report.json` is exactly this, and the HTML and Markdown are
 * renderings of it, so every figure a reader sees can be checked against the JSON and the JSON
 * against the sessions. Bump `v` for anything a v1 reader would misread.
 */
import {serverAnswer} from '../audit/render.js'
import type {Risk} from './risk.js'

export const FRAMEWORKS = ['soc2', 'iso27001', 'fedramp'] as const
export type Framework = (typeof FRAMEWORKS)[number]

export const FRAMEWORK_NAMES: Record<Framework, string> = {
  soc2: 'SOC 2 (Trust Services Criteria 2017, rev. 2022)',
  iso27001: 'ISO/IEC 27001:2022 Annex A',
  fedramp: 'FedRAMP / NIST SP 800-53 rev. 5',
}

export interface Report {
  v: 1
  generatedAt: string
  generator: string
  period: {since: string; until: string; days: number}
  scope: {target?: string; targets: string[]; frameworks: Framework[]; sqlShown: 'normalized' | 'full'}
  sources: Sources
  summary: Summary
  daily: DailyFigures[]
  byClass: {class: string; statements: number}[]
  topIdentities: {identity: string; kind: string; statements: number; sessions: number; denied: number}[]
  topTables: {table: string; statements: number; denied: number}[]
  identities: IdentityRow[]
  attempts: Attempt[]
  approvals: ApprovalRow[]
  attention: AttentionRow[]
  integrity: IntegrityRow[]
  gaps: Gap[]
  controls: ControlSection[]
  sessions: SessionRow[]
  /** AI agents (`dbgate mcp`) apart from people: absent in reports made before agents were recorded. */
  agentActivity?: AgentActivity
  /** Sign-ins a gateway refused to someone whose token it verified; absent in reports made before they were recorded. */
  refusedSignIns?: RefusedSignInRow[]
}

/**
 * A sign-in the gateway refused though the token verified: the person is known, the target did not
 * let them in. Recorded as a session with no statement (src/gateway/refused-sign-ins.ts).
 */
export interface RefusedSignInRow {
  at?: string
  identity: string
  /** The configured target asked for, or `_unknown` when none has the name in `database`. */
  target: string
  database?: string
  /** The gateway's reason word: not-allowed, unknown-target, too-many-sessions, startup-parameter. */
  reason: string
  /** What the person was told. */
  message: string
  /** More refusals of this person, counted into this one past the gateway's rate of records, since `alsoRefusedSince`. */
  alsoRefused?: number
  alsoRefusedSince?: string
  sessionId: string
}

/** What one group of sessions did, for comparing agents with people. */
export interface ActivityFigures {
  sessions: number
  statements: number
  denied: number
  approvalsRequested: number
  approved: number
  approvalsDenied: number
  maskedValues: number
  statementsWithMaskedOutput: number
  /** Calls an agent's MCP tools refused themselves (`mcp.tool_refused`): nothing of them reached the pipeline. */
  toolRefusals: number
}

export interface AgentActivity {
  /** Sessions not run by an agent: people, CI jobs and services through `dbgate connect`. */
  people: ActivityFigures
  agents: ActivityFigures
  /** One row per agent (name and version as the agent reported them in the MCP handshake) and the identity it acted for. */
  byAgent: (ActivityFigures & {agent: string; actingFor: string})[]
}

export interface Sources {
  bucket: string
  /** Session logs in the bucket that the period and target selected. */
  sessionLogs: number
  /** Published signing keys found in the bucket (`keys/`). */
  keys: string[]
  keyErrors: {key: string; message: string}[]
  /** Objects under `sessions/` that cannot be read as session logs (damaged, or not logs): none of their content is in the figures. */
  unreadableObjects: {key: string; size: number; problem: string}[]
  /** The only signers accepted (`--signer`, `recording.trustedSigners`); absent: every published key. */
  trustedSigners?: string[]
  earliestSession?: string
  latestSession?: string
  /** UTC day of the first session log in the whole bucket: recording began then. */
  recordingSince?: string
}

export interface Summary {
  identities: number
  humanIdentities: number
  serviceIdentities: number
  unverifiedIdentities: number
  sessions: number
  statements: number
  denied: number
  /** Statements that failed in the database, and syntax errors (also in `syntaxErrors`). */
  errors: number
  /** Texts that did not parse: typos answered as the server would, never denials. */
  syntaxErrors: number
  rowsReturnedOrAffected: number
  approvalsRequested: number
  approved: number
  approvalsDenied: number
  approvalsExpired: number
  approvalsWithdrawn: number
  forgedDecisionsRefused: number
  maskedValues: number
  statementsWithMaskedOutput: number
  /** Statements whose recording predates masked-value counting: their values are not in `maskedValues`. */
  statementsWithUncountedMasking: number
  destructiveAttempts: number
  privilegedAttempts: number
  interruptedSessions: number
  inProgressSessions: number
  logsFailingVerification: number
  /** `sources.unreadableObjects.length`. */
  unreadableObjects: number
  /** Sign-ins refused to a verified identity (`refusedSignIns`, with the ones each counts); each record is also one of `sessions`, with no statement. */
  refusedSignIns?: number
}

export interface DailyFigures {
  day: string
  /** The day is before the bucket's first session log: nothing could have been recorded, so it is no gap. */
  beforeRecording?: boolean
  sessions: number
  statements: number
  denied: number
  approved: number
}

export interface IdentityRow {
  identity: string
  subject: string
  name?: string
  issuer: string
  kind: string
  groups: string[]
  sessions: number
  statements: number
  denied: number
  firstSeen: string
  lastSeen: string
}

export interface Attempt {
  sessionId: string
  seq: number
  at: string
  identity: string
  target: string
  risk: Risk
  what: string
  class?: string
  sql: string
  decision: string
  ruleId?: string
  approvalId?: string
  outcome: string
  /** The server's CommandComplete tags for it (a COMMIT in a failed block is answered `ROLLBACK`). */
  commandTags?: string[]
  /**
   * False when no valid signature covers its line: it comes after the log's last signature (a log
   * with no end, or one that fails verification), so anyone who can write to the bucket can have
   * written it.
   */
  signed: boolean
}

/**
 * What the server did with an attempt, in words, for the attempts table: whether it ran (a DROP
 * that failed or was never run is not one that ran), the server's tags where they say something
 * else than the text (`server answered ROLLBACK`), and whether a signature covers its line.
 */
export function attemptResult(a: Pick<Attempt, 'sql' | 'decision' | 'outcome' | 'commandTags' | 'signed'>): string {
  const answer = serverAnswer(a) ?? (a.outcome === 'ok' ? 'completed' : a.outcome === 'rejected' ? 'not run' : a.outcome)
  return a.signed ? answer : `${answer} · NOT SIGNED: after the log's last signature`
}

export interface ApprovalRow {
  approvalId: string
  sessionId: string
  requestedAt: string
  requester: string
  target: string
  class?: string
  ruleId?: string
  reason?: string
  sql?: string
  /** approved, denied, window, expired, withdrawn, or pending when the log ends before an outcome. */
  outcome: string
  reviewer?: string
  decisionReason?: string
  decidedAt?: string
  /** What happened to the statement afterwards, from its own record. */
  statementOutcome?: string
  forgedDecisionsRefused: number
  /** False when a line of it (its request, its decision) is one no valid signature covers, as for `Attempt.signed`. */
  signed: boolean
}

/** An approval's outcome as the tables show it: `NOT SIGNED` when a line of it is one no signature covers. */
export function approvalOutcome(a: Pick<ApprovalRow, 'outcome' | 'signed'>): string {
  return a.signed ? a.outcome : `${a.outcome} · NOT SIGNED: after the log's last signature`
}

export interface AttentionRow {
  sessionId: string
  identity: string
  target: string
  startedAt?: string
  reasons: string[]
}

/** `unfinished`: the chain and signatures check out, but the log has no end yet (live, or cut short). */
export type IntegrityResult = 'verified' | 'unfinished' | 'failed'

export interface IntegrityRow {
  sessionId: string
  key: string
  ok: boolean
  result: IntegrityResult
  status: string
  lines: number
  signedThroughSeq: number
  keyIds: string[]
  problems: {line: number; code: string; message: string}[]
}

export type GapKind = 'no-sessions-on-day' | 'verification-failed' | 'in-progress' | 'interrupted' | 'unverified-identity' | 'key-error' | 'no-sessions-in-period' | 'unreadable-objects'

export interface Gap {
  kind: GapKind
  /** One sentence a reader can act on. */
  message: string
  days?: string[]
  sessions?: string[]
  /** Bucket keys of the objects the gap is about, with what is wrong with each. */
  objects?: {key: string; problem: string}[]
}

export type ControlStatus = 'evidence' | 'exceptions' | 'no-evidence'

export interface ControlSection {
  framework: Framework
  id: string
  title: string
  /** What the control asks, in our own words. */
  asks: string
  /** How dbgate's records answer it. */
  answer: string
  status: ControlStatus
  figures: {label: string; value: number | string}[]
  exceptions: string[]
  sessions: string[]
}

export interface SessionRow {
  sessionId: string
  key: string
  identity: string
  kind: string
  target: string
  database?: string
  startedAt?: string
  endedAt?: string
  status: string
  statements: number
  denied: number
  /** Statements whose output had masked values. */
  maskedStatements: number
  integrity: IntegrityResult
  policy?: string
  /** The gateway refused this sign-in (its reason word): the session never reached the database. */
  refused?: string
}

/** What "no gaps" means for this report, counting from when recording began if that was inside the period. */
export function noGaps(r: Pick<Report, 'daily' | 'sources'>): string {
  const before = r.daily.some((d) => d.beforeRecording)
  return before && r.sources.recordingSince
    ? `No gaps: every day since recording began (${r.sources.recordingSince}, the first session log in the bucket) has session logs, and every log verified.`
    : 'No gaps: every day of the period has session logs, and every log verified.'
}

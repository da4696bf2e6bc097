/**
 * Decisions become protocol messages here. Every refusal is SQLSTATE 42501
 * (insufficient_privilege), which clients and ORMs already treat as "not allowed" rather than as
 * a bug to retry, and its message names the rule so the person can look it up.
 */
import type {StatementVerdict} from '../proxy/seam.js'
import type {PgNoticeFields} from '../wire/fields.js'
import type {Analysis, Decision, RuleDecision, StatementAnalysis} from './types.js'

export const POLICY_SQLSTATE = '42501'
/** SQLSTATE 01000: warning. */
export const WARNING_SQLSTATE = '01000'

export interface VerdictOptions {
  /** Groups whose members review this target, named in approval messages. */
  reviewers?: readonly string[]
  /** Statement texts, by statement index, to quote in the message's detail. */
  statements?: readonly {text: string}[]
  /** The analysis the decision was made from, carried on the verdict (`VerdictBasis.analysis`). */
  analysis?: Analysis
  /** The statements as judged (calls resolved against the catalog), carried on the verdict (`VerdictBasis.judged`). */
  judged?: readonly StatementAnalysis[]
}

const QUOTE_LIMIT = 200

function quote(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim()
  return oneLine.length > QUOTE_LIMIT ? `${oneLine.slice(0, QUOTE_LIMIT)}…` : oneLine
}

function detailFor(d: RuleDecision, opts: VerdictOptions): string | undefined {
  const parts: string[] = []
  const count = opts.statements?.length ?? 0
  const text = opts.statements?.[d.statementIndex]?.text
  if (text !== undefined) parts.push(count > 1 ? `statement ${d.statementIndex + 1} of ${count}: ${quote(text)}` : `statement: ${quote(text)}`)
  if (d.detail) parts.push(d.detail)
  return parts.length > 0 ? parts.join('\n') : undefined
}

function fields(message: string, d: RuleDecision, opts: VerdictOptions, hint: string | undefined): PgNoticeFields {
  const detail = detailFor(d, opts)
  return {severity: 'ERROR', code: POLICY_SQLSTATE, message, ...(detail ? {detail} : {}), ...(hint ? {hint} : {})}
}

/** SQLSTATE 42601: syntax_error. */
export const SYNTAX_ERROR_SQLSTATE = '42601'

/**
 * A statement policy holds for approval: who may approve it and why. It never reaches the proxy:
 * the approvals stage settles it into an allow-once or a rejection, and where no approvals stage
 * runs, the pipeline refuses it with `error` (fail closed).
 */
export interface HoldVerdict {
  readonly action: 'hold'
  readonly decision: Decision
  /** The groups whose members may approve (empty: the target names none). */
  readonly reviewers: readonly string[]
  /** Why: the rule that asks for approval (the decision's decisive one). */
  readonly rule: RuleDecision
  /** What the client is told when nobody can approve it here. */
  readonly error: PgNoticeFields
  readonly analysis?: Analysis
  readonly judged?: readonly StatementAnalysis[]
}

/** A verdict as policy says it: what the proxy can run, or a hold for the approvals stage. */
export type PolicyVerdict = StatementVerdict | HoldVerdict

/** The verdict the tunnel acts on, with the decision it came from for the stages after policy. */
// Every verdict is written out whole, `judged` included even when undefined: a verdict is made per
// statement, and objects of one shape keep the stages that read them on V8's fast paths.
export function decisionToVerdict(decision: Decision, opts: VerdictOptions = {}): PolicyVerdict {
  if (decision.syntaxError) {
    // Exactly what the server would say, so psql draws its caret and drivers report the position.
    const {message, position} = decision.syntaxError
    return {action: 'reject', error: {severity: 'ERROR', code: SYNTAX_ERROR_SQLSTATE, message, position: String(position)}, decision, analysis: opts.analysis, judged: opts.judged}
  }
  const d = decision.decisive
  if (decision.action === 'deny' && d) {
    const message = `dbgate: statement denied by rule ${d.ruleId}: ${d.reason}`
    return {action: 'reject', error: fields(message, d, opts, d.hint ?? 'run `dbgate policy check` to see how dbgate reads it'), decision, analysis: opts.analysis, judged: opts.judged}
  }
  if (decision.action === 'require_approval' && d) {
    const reviewers = opts.reviewers ?? []
    const who = reviewers.length > 0 ? `a member of ${reviewers.join(', ')}` : 'a reviewer'
    const message = `dbgate: statement requires approval by ${who} (rule ${d.ruleId}): ${d.reason}`
    const hint = `ask ${who} to approve it with \`dbgate approve\`, then run it again`
    return {action: 'hold', decision, reviewers, rule: d, error: fields(message, d, opts, hint), analysis: opts.analysis, judged: opts.judged}
  }
  if (decision.warnings.length === 0) return {action: 'allow', decision, analysis: opts.analysis, judged: opts.judged}
  const notices: PgNoticeFields[] = decision.warnings.map((w) => {
    const detail = detailFor(w, opts)
    return {severity: 'WARNING', code: WARNING_SQLSTATE, message: `dbgate: ${w.reason} (rule ${w.ruleId})`, ...(detail ? {detail} : {})}
  })
  return notices.length > 0 ? {action: 'allow', notices, decision, analysis: opts.analysis, judged: opts.judged} : {action: 'allow', decision, analysis: opts.analysis, judged: opts.judged}
}

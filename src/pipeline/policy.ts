import {DEFAULT_MCP, DEFAULT_TUNNEL} from '../config/schema.js'
import {TargetFunctionCatalog} from '../connect/function-catalog.js'
import {checkStartupParameters, createStatementHook, decisionToVerdict, evaluateOperation, READ_ONLY_RULE, readOnlyViolation, sharedAnalysisCache, type PolicyStatementHook, type PolicyVerdict, type RuleDecision, type StatementAnalysis} from '../policy/index.js'
import type {Analysis, Operation} from '../policy/types.js'
import type {PgNoticeFields} from '../wire/fields.js'
import type {ClosableCatalogQuery} from '../masking/index.js'
import type {TunnelHooksContext} from './context.js'
import type {IdentityStage} from './identity.js'
import {readingOf} from '../policy/text-shape.js'
import type {StatementContext, StatementVerdict} from '../proxy/seam.js'
import {ChangeGate, contextNow, declaresHoldCursor, mayCommit, refusedWith, runsCursor, runsNothing} from './change-gate.js'
import type {Admission, Stage} from './stage.js'

/**
 * Guardrails: the startup parameters, and every statement judged by the target's rules (with the
 * read-only allow-list in front for an agent in read-only mode). A statement that needs approval
 * comes out as a `hold` for the approvals stage.
 */
export function policyStage(ctx: TunnelHooksContext, who: IdentityStage, catalogQuery: ClosableCatalogQuery | undefined): Stage {
  const {target} = ctx
  // Without a catalog connection (only in tests that build hooks by hand) only built-ins are known.
  const functions = catalogQuery ? new TargetFunctionCatalog({query: catalogQuery}) : undefined
  /** Changes to the catalog let through so far (judged, perhaps not yet run): part of `verdictGeneration`. */
  let changes = 0
  const policy = createStatementHook({
    rules: target.rules,
    pack: target.policy,
    identityGroups: who.groups,
    maxStatementSize: target.tunnel.maxStatementSize,
    reviewers: target.reviewers,
    ...(functions ? {functions} : {}),
    client: who.client,
    onCatalogChange: () => void changes++,
  })
  const judge = readOnlyFor(ctx, policy)
  const evalOpts = {rules: target.rules, pack: target.policy, groups: who.groups}
  /** Connections whose DDL may not have committed yet (a transaction block, or the rest of its implicit transaction). */
  const ddlOpen = new Set<number>()
  const gate = new ChangeGate({waitMs: target.tunnel.changeWaitMs ?? DEFAULT_TUNNEL.changeWaitMs, setting: `targets.${target.name}.tunnel.changeWait`})
  const maxStatementSize = target.tunnel.maxStatementSize
  const statementsOf = (sql: string, sctx: StatementContext) => sharedAnalysisCache.analyze(sql, {maxStatementSize}, readingOf(sctx.session.parameters)).statements
  /**
   * Judges a text, unless it runs a cursor opened before a commit of a change sent since its
   * transaction began: the cursor's query was judged then, and would run with what the commit made.
   * (A cheap look at the text first: most texts name no cursor.)
   */
  const judgeNow = (sql: string, sctx: StatementContext): PolicyVerdict | StatementVerdict | Promise<PolicyVerdict> =>
    gate.cursorsStale(sctx.connectionId) && MAY_RUN_CURSOR.test(sql) && runsCursor(statementsOf(sql, sctx)) ? refusedWith(gate.staleCursor()) : judge(sql, sctx)
  /** Waits for another connection's commit of a change, then judges (with the session as it is then). */
  const afterCommits = <V extends PolicyVerdict | StatementVerdict>(sctx: StatementContext, then: (now: StatementContext) => V | Promise<V>): Promise<V | StatementVerdict> =>
    gate
      .waitUntil(() => !gate.blocked(sctx.connectionId), sctx, () => gate.waitedForCommit(gate.committerBesides(sctx.connectionId)))
      .then((refusal) => (refusal ? refusedWith(refusal) : then(contextNow(sctx))))
  /**
   * An approval for one execution is bound (a Parse's) later without being judged again: it lapses
   * once a commit of a change is sent after it was let through (the reviewer saw what it called
   * before). Taken after the statement's own commit, if it is one.
   */
  const lapsing = (verdict: StatementVerdict): StatementVerdict => {
    if (verdict.action !== 'allow' || !verdict.approval || !verdict.once) return verdict
    const epoch = gate.epoch
    const lapsed = (): PgNoticeFields | undefined =>
      gate.epoch === epoch
        ? undefined
        : {
            ...gate.waitedForCommit(undefined),
            message: 'dbgate: another of your sessions through dbgate committed a change to the schema after this statement was approved, so the approval no longer covers what it would run; it was not sent',
            hint: 'Send it again (Parse): it is judged, and if need be held, against the schema as changed.',
          }
    return {...verdict, lapsed}
  }
  const admit = (sql: string, sctx: StatementContext, verdict: StatementVerdict, began: number | undefined, again: (now: StatementContext) => StatementVerdict | Promise<StatementVerdict>): StatementVerdict | Promise<StatementVerdict> => {
    if (verdict.action !== 'allow') return verdict
    const id = sctx.connectionId
    gate.seen(id, sctx.session)
    if ((gate.blocked(id) || (began !== undefined && began !== gate.epoch)) && !runsNothing(statementsOf(sql, sctx))) {
      // Another session's commit began (or was sent) while this statement was judged: its verdict may be stale.
      if (verdict.approval) {
        return refusedWith({
          ...gate.waitedForCommit(gate.committerBesides(id)),
          message: 'dbgate: another of your sessions through dbgate committed a change to the schema while this statement waited for its approval, so the approval no longer covers what it would run; it was not sent',
          hint: 'Run it again once that commit ends: it is judged, and if need be held, against the schema as changed.',
        })
      }
      return afterCommits(sctx, again)
    }
    if (policy.changing(id)) {
      const status = sctx.session.txStatus ?? sctx.transactionStatus
      const known = (sctx.session.pendingCount ?? 0) === 0
      if (mayCommit(statementsOf(sql, sctx), known ? status !== 'I' : undefined)) {
        // Statements judged before this commit are judged again at their next Bind or Execute.
        changes++
        const other = gate.inFlightBesides(id)
        if (other === undefined) {
          gate.committing(id, sctx.session)
          return lapsing(verdict)
        }
        gate.admitting(id, sctx.session)
        return gate
          .waitUntil(() => gate.inFlightBesides(id) === undefined, sctx, () => gate.waitedForOthers(gate.inFlightBesides(id)))
          .then((refusal) => {
            if (refusal) {
              gate.withdraw(id)
              return refusedWith(refusal)
            }
            gate.committing(id, sctx.session)
            return lapsing(verdict)
          })
      }
    }
    if (began !== undefined) gate.reserve(id)
    return lapsing(verdict)
  }
  return {
    name: 'policy',
    startup: (params): PgNoticeFields | undefined => {
      // A startup parameter is a setting like any other: what a target rule allows at SET, it allows here.
      const problem = checkStartupParameters(params, (change, verdict) => {
        const op: Operation = {class: verdict.class ?? 'session', command: 'set', tables: [], functions: [], flags: [verdict.flag], setting: change}
        const action = evaluateOperation(op, evalOpts).action
        return action === 'allow' || action === 'warn'
      })[0]
      if (!problem) return undefined
      return {
        severity: 'FATAL',
        code: '42501',
        message: `dbgate: the startup parameter "${problem.parameter}" is not allowed: ${problem.reason}`,
        hint: problem.hint ?? 'Remove it from the connection settings; use SET after connecting where policy allows it.',
      }
    },
    // Policy is the first stage to judge; it never overrules a refusal before it.
    // (The session's own next statement after its change settles reads the catalog again: statement-guard.ts.)
    // A statement waits while another session commits a change (change-gate.ts), and is judged after it.
    statement: (sql, sctx, verdict) => {
      if (verdict.action !== 'allow') return verdict
      if (gate.blocked(sctx.connectionId) && !runsNothing(statementsOf(sql, sctx))) return afterCommits(sctx, (now) => judgeNow(sql, now))
      return judgeNow(sql, sctx)
    },
    admit: {epoch: () => gate.epoch, admit} satisfies Admission,
    // A function replaced since a named statement was judged runs its new body when it is bound;
    // a change this session has only sent (a pipeline) counts at once, before the catalog is read again.
    ...(functions ? {verdictGeneration: () => functions.generation + changes} : {}),
    onStatement: (event) => {
      // (A cursor WITH HOLD is counted from here: the text or Execute that declared it is in flight until its event.)
      gate.ran(event.connectionId, event.commandTags.includes('DECLARE CURSOR') && MAY_HOLD_CURSOR.test(event.sql) && declaresHoldCursor(sharedAnalysisCache.analyze(event.sql, {maxStatementSize}).statements))
      if (!functions) return
      if (event.outcome === 'ok' && event.commandTags.some(isDdlTag)) {
        // DDL may have created, replaced or dropped a function, operator, cast or domain. The
        // catalog connection sees it only once it commits, so it is read again then too, for
        // every session (what they looked up meanwhile was the catalog without it).
        functions.invalidate()
        ddlOpen.add(event.connectionId)
      } else if ((ddlOpen.has(event.connectionId) || policy.changing(event.connectionId)) && event.commandTags.some(isTransactionEndTag)) {
        // A change without a DDL tag (DO, a called function) commits here too; `COMMIT AND
        // CHAIN` commits it without the idle ReadyForQuery that `onIdle` waits for.
        ddlOpen.delete(event.connectionId)
        functions.invalidate()
      }
    },
    // An Execute's event comes before the Sync that commits it: the idle ReadyForQuery is the commit.
    onIdle: (id, session) => {
      if (ddlOpen.delete(id)) functions?.invalidate()
      policy.idle(session)
      gate.idle(id, session)
    },
    onConnectionClosed: (id) => {
      // A connection that ends with a change sent may have committed it (a COMMIT whose reply never came).
      if ((ddlOpen.delete(id) || policy.changing(id)) && functions) functions.invalidate()
      policy.forget(id)
      gate.forget(id)
    },
    // The server has ended what the connection sent: a commit in it has happened by now, and the
    // catalog read meanwhile may predate it.
    onUpstreamClosed: (id) => {
      functions?.invalidate()
      gate.upstreamClosed(id)
    },
  }
}

/** Texts that may FETCH or MOVE, or declare a cursor WITH HOLD, contain the keyword as written (keywords cannot be quoted). */
const MAY_RUN_CURSOR = /fetch|move/i
const MAY_HOLD_CURSOR = /hold/i

const TRANSACTION_END_TAG = /^(COMMIT|ROLLBACK|END)\b/
const isTransactionEndTag = (tag: string): boolean => TRANSACTION_END_TAG.test(tag)

// COMMIT PREPARED commits whatever the prepared transaction holds, DDL included, from any session.
const DDL_TAG = /^(CREATE|ALTER|DROP|IMPORT) |^COMMIT PREPARED$/
/** The last answer, by the string asked about: the tunnel hands on one string for a session's repeated tags. */
let lastTag: string | undefined
let lastTagDdl = false
const isDdlTag = (tag: string): boolean => {
  if (tag !== lastTag) {
    lastTagDdl = DDL_TAG.test(tag)
    lastTag = tag
  }
  return lastTagDdl
}

/**
 * An agent in read-only mode (the default) gets the read-only allow-list in front of the target's
 * rules, so a write is refused before it could be filed for approval or reach the server.
 */
function readOnlyFor(ctx: TunnelHooksContext, policy: PolicyStatementHook): PolicyStatementHook {
  if (!ctx.agent || (ctx.target.mcp ?? DEFAULT_MCP).mode !== 'read-only') return policy
  const maxStatementSize = ctx.target.tunnel.maxStatementSize
  const hint = `an agent on ${ctx.target.name} may only read (targets.${ctx.target.name}.mcp.mode: read-only); ask a person to make the change, or have an admin allow agent writes`
  const deny = (refused: RuleDecision, statements: StatementAnalysis[], analysis: Analysis): PolicyVerdict =>
    decisionToVerdict({action: 'deny', decisive: refused, statements: [refused], warnings: []}, {statements, analysis})
  return (sql, sctx) => {
    const analysis = sharedAnalysisCache.analyze(sql, {maxStatementSize})
    const refused = readOnlyViolation(analysis, {hint})
    if (refused) return deny(refused, analysis.statements, analysis)
    // What only the catalog shows (a volatile user function called from a SELECT) is a write that
    // policy holds for a reviewer: a read-only agent is refused instead, before anything is filed.
    const after = (v: PolicyVerdict): PolicyVerdict => {
      // What the catalog resolved (a view that calls pg_notify, a function that takes an advisory
      // lock) is judged by the same allow-list as what the text shows.
      const judged = v.action !== 'reject' && v.judged ? readOnlyViolation({...analysis, statements: [...v.judged]}, {hint}) : undefined
      if (judged) return deny(judged, analysis.statements, analysis)
      if (v.action !== 'hold' || v.rule.class === 'read') return v
      return deny({...v.rule, action: 'deny', ruleId: READ_ONLY_RULE, reason: `this session is read-only: ${v.rule.reason}`, hint}, analysis.statements, analysis)
    }
    const v = policy(sql, sctx)
    return v instanceof Promise ? v.then(after) : after(v)
  }
}

import {DEFAULT_MCP, DEFAULT_TUNNEL} from '../config/schema.js'
import {TargetFunctionCatalog} from '../connect/function-catalog.js'
import {checkStartupParameters, createStatementHook, decisionToVerdict, evaluateOperation, LIBRARY_SETTINGS_KEY, READ_ONLY_RULE, readOnlyViolation, serverLibrariesOf, sharedAnalysisCache, type PolicyStatementHook, type ServerLibraries, type PolicyVerdict, type RuleDecision, type StatementAnalysis} from '../policy/index.js'
import type {Analysis, Operation} from '../policy/types.js'
import type {PgNoticeFields} from '../wire/fields.js'
import type {ClosableCatalogQuery} from '../masking/index.js'
import type {TunnelHooksContext} from './context.js'
import type {IdentityStage} from './identity.js'
import {readingOf} from '../policy/text-shape.js'
import {catalogChanged, databaseKey, onCatalogChanged} from './catalog-changes.js'
import {ChangeGate, declaresHoldCursor, gatedStatements} from './change-gate.js'
import type {Stage} from './stage.js'

/**
 * Guardrails: the startup parameters, and every statement judged by the target's rules (with the
 * read-only allow-list in front for an agent in read-only mode). A statement that needs approval
 * comes out as a `hold` for the approvals stage.
 */
export async function policyStage(ctx: TunnelHooksContext, who: IdentityStage, catalogQuery: ClosableCatalogQuery | undefined): Promise<Stage> {
  const {target} = ctx
  // Without a catalog connection (only in tests that build hooks by hand) only built-ins are known.
  const functions = catalogQuery ? new TargetFunctionCatalog({query: catalogQuery}) : undefined
  // The startup packet is judged before anything could wait for the catalog: its custom settings
  // are judged by the target's libraries as read now (a failed read is retried by the next need).
  await functions?.load([LIBRARY_SETTINGS_KEY])
  const startupLibraries = functions ? librariesForStartup(functions) : undefined
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
  /** Connections closed with a change pending, until the server has ended their sessions. */
  const closedWithChange = new Set<number>()
  // The other pipelines in front of the database read its catalog again when a session of this one commits a change, and this one when theirs do.
  const database = databaseKey(target)
  const committed = () => catalogChanged(database, ctx)
  const stopListening = functions ? onCatalogChanged(database, ctx, () => functions.invalidate()) : undefined
  const gate = new ChangeGate({waitMs: target.tunnel.changeWaitMs ?? DEFAULT_TUNNEL.changeWaitMs, setting: `targets.${target.name}.tunnel.changeWait`, settled: committed})
  const maxStatementSize = target.tunnel.maxStatementSize
  const gated = gatedStatements(gate, {
    changing: (id) => policy.changing(id),
    statementsOf: (sql, sctx) => sharedAnalysisCache.analyze(sql, {maxStatementSize}, readingOf(sctx.session.parameters)).statements,
    // Statements judged before a commit are judged again at their next Bind or Execute.
    committing: () => void changes++,
  })
  return {
    name: 'policy',
    startup: (params): PgNoticeFields | undefined => {
      // A startup parameter is a setting like any other: what a target rule allows at SET, it allows here.
      const problem = checkStartupParameters(
        params,
        (change, verdict) => {
          const op: Operation = {class: verdict.class ?? 'session', command: 'set', tables: [], functions: [], flags: [verdict.flag], setting: change}
          const action = evaluateOperation(op, evalOpts).action
          return action === 'allow' || action === 'warn'
        },
        startupLibraries?.(params),
      )[0]
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
    statement: (sql, sctx, verdict) => (verdict.action === 'allow' ? gated.judge(sql, sctx, judge) : verdict),
    admit: gated.admission,
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
        committed()
      }
    },
    // An Execute's event comes before the Sync that commits it: the idle ReadyForQuery is the commit.
    onIdle: (id, session) => {
      if (ddlOpen.delete(id)) functions?.invalidate()
      policy.idle(session)
      gate.idle(id, session)
    },
    onConnectionClosed: (id) => {
      // A connection that ends with a change sent may still commit it (the server runs on to the
      // COMMIT it was sent): the catalog is read again once the server has ended it.
      if (ddlOpen.delete(id) || policy.changing(id)) closedWithChange.add(id)
      policy.forget(id)
      gate.forget(id)
    },
    // The server has ended what the connection sent: a commit in it has happened by now, and the
    // catalog read meanwhile may predate it.
    onUpstreamClosed: (id) => {
      // Only a connection that left with a change pending: every other close would have every
      // session look its functions up again.
      if (closedWithChange.delete(id)) {
        functions?.invalidate()
        committed()
      }
      gate.upstreamClosed(id)
    },
    dispose: async () => stopListening?.(),
  }
}

/**
 * The target's libraries for judging the custom settings of a startup packet (`app.tenant_id`, or
 * a library's setting that the list does not know). The startup judgement cannot wait for the
 * catalog, so it uses what was read last, and starts a read when that is stale or forgotten (after
 * DDL); when nothing was ever read, such a setting is refused (application state can still be set
 * with SET after connecting).
 */
function librariesForStartup(functions: TargetFunctionCatalog): (params: Record<string, string>) => ServerLibraries | undefined {
  const read = serverLibrariesOf(functions)
  let last = read && !('unread' in read) ? read : undefined
  return (params) => {
    if (!Object.keys(params).some((k) => k.includes('.') && !k.startsWith('_pq_.'))) return undefined
    if (functions.missing([LIBRARY_SETTINGS_KEY]).length > 0) void functions.load([LIBRARY_SETTINGS_KEY])
    const now = serverLibrariesOf(functions)
    if (now && !('unread' in now)) return (last = now)
    if (last) return last
    return now && {unread: `${now.unread}; connect again in a moment, or set it with SET after connecting`}
  }
}

/** A text that declares a cursor WITH HOLD contains the keyword as written (keywords cannot be quoted). */
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

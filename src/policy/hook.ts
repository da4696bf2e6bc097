/**
 * The policy engine as the tunnel sees it: one `StatementHook`. It analyses (through the shared
 * cache), resolves EXECUTE against the connection's prepared statements, evaluates the rules and
 * answers with a verdict. Prepared-statement bookkeeping is committed only for texts that are let
 * through, since a refused text never reaches the server.
 */
import type {StatementContext, StatementHook, StatementVerdict} from '../proxy/hooks.js'
import {DEFAULT_MAX_STATEMENT_SIZE} from './analyze.js'
import {AnalysisCache, sharedAnalysisCache} from './cache.js'
import {analyzeOffThread, OFFLOAD_THRESHOLD} from './offload.js'
import {loadParser, parserReady} from './parser.js'
import {applyToRegistry, ConnectionRegistries, resolveExecutes, type StagedRegistry} from './prepared.js'
import {evaluate, type EvaluateOptions} from './rules.js'
import type {Analysis, BuiltinRule, ClientKind, Decision, PolicyPackName, PolicyRule, RuleDecision, StatementAnalysis} from './types.js'
import {decisionToVerdict} from './verdict.js'

export interface StatementHookOptions {
  rules: readonly PolicyRule[]
  pack: PolicyPackName | readonly BuiltinRule[]
  /** The connected identity's groups. */
  identityGroups: readonly string[]
  maxStatementSize?: number
  /** Per-connection prepared statements; pass one in to share it with other parts of the proxy. */
  prepared?: ConnectionRegistries
  /** Defaults to the process-wide shared cache. */
  cache?: AnalysisCache
  /** Reviewer groups, named in require_approval messages. */
  reviewers?: readonly string[]
  /** Which client the tunnel's sessions come through, for rules that match `client`. */
  client?: ClientKind
}

export interface PolicyStatementHook extends StatementHook {
  /** Forget a connection's prepared statements when it closes. */
  dropConnection(connectionId: number): void
  /** The protocol Close ('S') of a named statement also frees its name. */
  closeStatement(connectionId: number, name: string): void
  readonly prepared: ConnectionRegistries
}

export interface JudgedText {
  /** The statements as judged: EXECUTEs resolved against what was prepared. */
  statements: StatementAnalysis[]
  decision: Decision
}

/**
 * Resolves and evaluates a text's statements in order against `staged`, so a PREPARE earlier in
 * the same text is known to a later EXECUTE. Shared by the hook and `dbgate policy check`.
 */
export function judgeStatements(statements: readonly StatementAnalysis[], staged: StagedRegistry, opts: EvaluateOptions): JudgedText {
  const resolved: StatementAnalysis[] = []
  for (const stmt of statements) {
    const r = resolveExecutes(stmt, staged)
    resolved.push(r)
    applyToRegistry(r, staged)
  }
  return {statements: resolved, decision: evaluate(resolved, opts)}
}

const MULTI_PARSE: RuleDecision = {
  action: 'deny',
  ruleId: 'protocol.single-statement-parse',
  reason: 'an extended-protocol Parse may hold only one statement',
  hint: 'send one statement per Parse, or use a simple query',
  statementIndex: 0,
  operationIndex: 0,
  command: 'parse',
  class: 'unknown',
}

export function createStatementHook(opts: StatementHookOptions): PolicyStatementHook {
  const prepared = opts.prepared ?? new ConnectionRegistries()
  const cache = opts.cache ?? sharedAnalysisCache
  const maxStatementSize = opts.maxStatementSize ?? DEFAULT_MAX_STATEMENT_SIZE
  const evalOpts: EvaluateOptions = {rules: opts.rules, pack: opts.pack, groups: opts.identityGroups, client: opts.client}

  const judge = (sql: string, ctx: StatementContext): StatementVerdict => decide(cache.analyze(sql, {maxStatementSize}), ctx)

  const decide = (analysis: Analysis, ctx: StatementContext): StatementVerdict => {
    const registry = prepared.for(ctx.connectionId)
    const staged = registry.stage()
    if (ctx.protocol === 'parse' && analysis.statements.length > 1) {
      // The server would refuse it too; refusing here keeps a second statement from ever being judged as the first.
      const decision: Decision = {action: 'deny', decisive: MULTI_PARSE, statements: [MULTI_PARSE], warnings: []}
      return decisionToVerdict(decision, {reviewers: opts.reviewers, statements: analysis.statements})
    }
    const {statements, decision} = judgeStatements(analysis.statements, staged, evalOpts)
    const verdict = decisionToVerdict(decision, {reviewers: opts.reviewers, statements})
    if (verdict.action === 'allow') {
      // A named Parse fills the same namespace SQL EXECUTE reads from.
      if (ctx.protocol === 'parse' && ctx.statementName && statements.length === 1) staged.define(ctx.statementName, statements[0]!.operations)
      staged.commit()
    }
    return verdict
  }

  const hook = ((sql: string, ctx: StatementContext) => {
    if (!parserReady()) return loadParser().then(() => judge(sql, ctx))
    if (sql.length < OFFLOAD_THRESHOLD) return judge(sql, ctx)
    const cached = cache.peek(sql, {maxStatementSize})
    if (cached) return decide(cached, ctx)
    // Over the cap the analysis is an instant `unknown`; only real parses go to the worker.
    if (Buffer.byteLength(sql) > maxStatementSize) return judge(sql, ctx)
    return analyzeOffThread(sql, {maxStatementSize}).then((analysis) => decide(cache.store(sql, {maxStatementSize}, analysis), ctx))
  }) as PolicyStatementHook
  Object.defineProperties(hook, {
    dropConnection: {value: (id: number) => prepared.drop(id)},
    closeStatement: {value: (id: number, name: string) => prepared.get(id)?.delete(name)},
    prepared: {value: prepared},
  })
  return hook
}

import {createApprovalGate, type ApprovalGate} from '../approvals/hook.js'
import {openBucket} from '../bucket/index.js'
import type {DbgateConfig, TargetConfig} from '../config/types.js'
import type {IdentityConfig} from '../identity/config.js'
import {startRecording} from './recording.js'
import type {AgentInfo, Identity} from '../identity/types.js'
import {checkStartupParameters, createStatementHook, decisionToVerdict, evaluateOperation, loadParser, READ_ONLY_RULE, readOnlyViolation, sharedAnalysisCache, type ClientKind, type Decision, type RuleDecision, type StatementAnalysis} from '../policy/index.js'
import type {Operation} from '../policy/types.js'
import {DEFAULT_MCP} from '../config/dbgate-schema.js'
import {TargetFunctionCatalog} from './function-catalog.js'
import type {PgNoticeFields, ProxyHooks, StatementContext, StatementHook, StatementVerdict} from '../proxy/hooks.js'
import type {UpstreamTarget} from '../proxy/upstream.js'
import {catalogQueryFor, startMasking, type ClosableCatalogQuery, type MaskingRuntime} from '../masking/index.js'
import {defaultKeyDir} from '../audit/signing.js'
import {randomBytes} from 'node:crypto'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'

/** Parts of the pipeline that can be switched off, for the benchmark's cost-per-feature figures. */
export interface TunnelFeatures {
  guardrails: boolean
  masking: boolean
  recording: boolean
}

export const ALL_FEATURES: TunnelFeatures = {guardrails: true, masking: true, recording: true}

export interface TunnelHooksContext {
  config: DbgateConfig
  target: TargetConfig
  identity?: Identity
  features?: Partial<TunnelFeatures>
  env?: NodeJS.ProcessEnv
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
  /** The policy in force (published version or local), recorded with every session. */
  policy?: {hash: string; version: string}
  /** How often a held statement looks for a decision (default 1 s); tests shorten it. */
  approvalPollMs?: number
  /** Where held statements are announced (see ApprovalGateOptions.announce). */
  announce?: (message: string) => void
  /** The upstream as the tunnel dials it: masking reads the catalog through its own session. */
  upstream?: UpstreamTarget
  /** Reads the catalog for masking instead of a session to `upstream` (the in-memory benchmark). */
  catalogQuery?: ClosableCatalogQuery
  /**
   * Every session of this tunnel is this AI agent's (`dbgate mcp`): rules with `client: mcp` apply,
   * sessions are recorded as the agent's, and in `mcp.mode: read-only` (the default) only reads run.
   */
  agent?: AgentInfo
}

/**
 * Everything the tunnel runs on each session, assembled in one place: guardrails on the way in
 * (startup parameters and every statement). Returns hooks plus `ready`, which resolves once the
 * SQL parser is loaded, so the tunnel never has to answer its first statement asynchronously.
 */
export async function buildTunnelHooks(ctx: TunnelHooksContext): Promise<ProxyHooks> {
  const {target, identity} = ctx
  const features = {...ALL_FEATURES, ...ctx.features}
  await loadParser()
  const log = ctx.log ?? (() => {})
  // One catalog connection per tunnel: masking reads relations through it, guardrails functions.
  const catalogQuery = ctx.catalogQuery ?? (ctx.upstream ? catalogQueryFor(ctx.upstream) : undefined)
  const masking = features.masking && catalogQuery ? await startMaskingFor(ctx, catalogQuery) : undefined
  const recording = features.recording
    ? await startRecording({config: ctx.config, target, identity, env: ctx.env, log, policy: ctx.policy, maskText: masking?.factory.maskText, agent: ctx.agent})
    : undefined
  const dispose = async () => {
    await recording?.close()
    await masking?.close()
    await catalogQuery?.close()
  }
  const base: ProxyHooks = {
    ...recording?.hooks,
    resultFilter: masking?.hooks.resultFilter,
    onStatement: chain(masking?.hooks.onStatement, recording?.hooks.onStatement),
    onConnectionClosed: masking?.hooks.onConnectionClosed,
    dispose,
    // Previews are only of masked rows; without masking there is nothing safe to keep.
    previewRows: recording && masking ? ctx.config.recording.previewRows : 0,
    // Without guardrails, masking still sees each statement before it runs (catalog freshness, onUntraceable).
    ...(masking ? {statement: maskability(() => ({action: 'allow'}), masking, log)} : {}),
  }
  if (!features.guardrails) return base
  // Without a catalog connection (only in tests that build hooks by hand) only built-ins are known.
  const functions = catalogQuery ? new TargetFunctionCatalog({query: catalogQuery}) : undefined
  const policy = createStatementHook({
    rules: target.rules,
    pack: target.policy,
    identityGroups: identity?.groups ?? [],
    maxStatementSize: target.tunnel.maxStatementSize,
    reviewers: target.reviewers,
    ...(functions ? {functions} : {}),
    client: clientOf(ctx),
  })
  const approvals = approvalGate(ctx, recording)
  const evalOpts = {rules: target.rules, pack: target.policy, groups: identity?.groups ?? []}
  const observed = withApprovalObserver(base, approvals)
  return {
    ...base,
    ...observed,
    onStatement: (event) => {
      // DDL may have created, replaced or dropped a function, operator, cast or domain.
      if (functions && event.outcome === 'ok' && event.commandTags.some((t) => /^(CREATE|ALTER|DROP|IMPORT) /.test(t))) functions.invalidate()
      observed.onStatement(event)
    },
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
    statement: maskability(approvals.wrap(readOnlyFor(ctx, policy)), masking, log),
  }
}

const clientOf = (ctx: TunnelHooksContext): ClientKind => (ctx.agent ? 'mcp' : 'connect')

/**
 * An agent in read-only mode (the default) gets the read-only allow-list in front of the target's
 * rules, so a write is refused before it could be filed for approval or reach the server.
 */
function readOnlyFor(ctx: TunnelHooksContext, policy: StatementHook): StatementHook {
  if (!ctx.agent || (ctx.target.mcp ?? DEFAULT_MCP).mode !== 'read-only') return policy
  const maxStatementSize = ctx.target.tunnel.maxStatementSize
  const hint = `an agent on ${ctx.target.name} may only read (targets.${ctx.target.name}.mcp.mode: read-only); ask a person to make the change, or have an admin allow agent writes`
  const deny = (refused: RuleDecision, statements: StatementAnalysis[]): StatementVerdict =>
    decisionToVerdict({action: 'deny', decisive: refused, statements: [refused], warnings: []}, {statements})
  return (sql, sctx) => {
    const analysis = sharedAnalysisCache.analyze(sql, {maxStatementSize})
    const refused = readOnlyViolation(analysis, {hint})
    if (refused) return deny(refused, analysis.statements)
    // What only the catalog shows (a volatile user function called from a SELECT) is a write that
    // policy holds for a reviewer: a read-only agent is refused instead, before anything is filed.
    const after = (v: StatementVerdict): StatementVerdict => {
      const d = v.tag as Decision | undefined
      if (v.action !== 'reject' || d?.action !== 'require_approval' || !d.decisive || d.decisive.class === 'read') return v
      return deny({...d.decisive, action: 'deny', ruleId: READ_ONLY_RULE, reason: `this session is read-only: ${d.decisive.reason}`, hint}, analysis.statements)
    }
    const v = policy(sql, sctx)
    return v instanceof Promise ? v.then(after) : after(v)
  }
}

function chain<A extends unknown[]>(...fns: (((...args: A) => void) | undefined)[]): ((...args: A) => void) | undefined {
  const present = fns.filter((f): f is (...args: A) => void => f !== undefined)
  if (present.length <= 1) return present[0]
  return (...args: A) => {
    for (const f of present) f(...args)
  }
}

/** Masking reads the catalog once the tunnel knows who connects: unmask groups decide what it does. */
function startMaskingFor(ctx: TunnelHooksContext, catalogSource: ClosableCatalogQuery): Promise<MaskingRuntime> {
  return startMasking({
    target: catalogSource,
    masking: ctx.target.masking,
    identity: {groups: ctx.identity?.groups ?? [], kind: ctx.identity?.kind ?? 'human'},
    hashKey: maskingHashKey(ctx.env ?? process.env),
    log: ctx.log,
  })
}

/**
 * Masking's part of the statement hook, after the guardrails have allowed a statement: a statement
 * that names relations or columns the catalog does not know, or reads views whose definitions
 * changed, waits for the catalog to be re-read, so its rows are masked against the current schema
 * (the common case needs no read and returns at once). Then, where a query's shape keeps masking
 * from following a sensitive column, policy decides (`masking.onUntraceable`).
 */
function maskability(inner: StatementHook, masking: MaskingRuntime | undefined, log: NonNullable<TunnelHooksContext['log']>): StatementHook {
  if (!masking) return inner
  const check = (sql: string, ctx: StatementContext, verdict: StatementVerdict): StatementVerdict => {
    const m = masking.factory.checkMaskable(sql, ctx)
    if (m.ok) return verdict
    return {action: 'reject', tag: verdict.tag, error: {severity: 'ERROR', code: '42501', message: `dbgate: masking cannot follow this query: ${m.reason}`, hint: 'Select the sensitive columns directly (they are masked), or ask for a group that may see them unmasked. The target\'s masking.onUntraceable decides whether untraceable output is masked or refused.'}}
  }
  const afterPolicy = (sql: string, ctx: StatementContext, verdict: StatementVerdict): StatementVerdict | Promise<StatementVerdict> => {
    if (verdict.action !== 'allow') return verdict
    const fresh = masking.factory.ensureFresh(sql, ctx)
    if (!fresh) return check(sql, ctx, verdict)
    return fresh.then(
      () => check(sql, ctx, verdict),
      (e: Error) => {
        log('warn', `masking: could not re-read the catalog (${e.message}); what it does not know is masked as untraceable`)
        return check(sql, ctx, verdict)
      },
    )
  }
  return (sql, ctx) => {
    const v = inner(sql, ctx)
    return v instanceof Promise ? v.then((r) => afterPolicy(sql, ctx, r)) : afterPolicy(sql, ctx, v)
  }
}

/**
 * A per-installation key for the `hash` strategy, so the same value hashes alike in every tunnel
 * on this machine (joins and GROUP BY line up across sessions) without being guessable.
 */
function maskingHashKey(env: NodeJS.ProcessEnv): Buffer {
  const dir = defaultKeyDir(env)
  const file = path.join(dir, 'masking-hash.key')
  try {
    return readFileSync(file)
  } catch {
    mkdirSync(dir, {recursive: true, mode: 0o700})
    const key = randomBytes(32)
    try {
      writeFileSync(file, key, {mode: 0o600, flag: 'wx'})
      return key
    } catch {
      // Another tunnel created it first: use theirs.
      return readFileSync(file)
    }
  }
}

/** Statements that need approval wait in the tunnel for a verified reviewer (src/approvals). */
function approvalGate(ctx: TunnelHooksContext, recording: Awaited<ReturnType<typeof startRecording>> | undefined): ApprovalGate {
  const section = ctx.config.identity
  // Reviewers' tokens are verified without the client secret, which only the token endpoint needs.
  const identityConfig: IdentityConfig | undefined = section ? (({clientSecret: _secret, ...rest}) => rest)(section) : undefined
  return createApprovalGate({
    bucket: openBucket(ctx.config.bucket),
    target: ctx.target,
    identity: ctx.identity,
    identityConfig,
    record: (sessionId, type, payload) => recording?.session(sessionId)?.recordEvent(type, payload),
    log: ctx.log ?? (() => {}),
    announce: ctx.announce,
    pollMs: ctx.approvalPollMs,
    agent: ctx.agent,
  })
}

function withApprovalObserver(base: ProxyHooks, gate: ApprovalGate): Required<Pick<ProxyHooks, 'onStatement' | 'onSessionEnd'>> {
  return {
    onStatement: (event) => {
      gate.observe(event)
      base.onStatement?.(event)
    },
    onSessionEnd: (session, reason) => {
      gate.forgetSession(session.sessionId)
      base.onSessionEnd?.(session, reason)
    },
  }
}

import {createApprovalGate, type ApprovalGate} from '../approvals/hook.js'
import {openBucket} from '../bucket/index.js'
import type {DbgateConfig, TargetConfig} from '../config/types.js'
import type {IdentityConfig} from '../identity/config.js'
import {startRecording} from './recording.js'
import type {AgentInfo, Identity} from '../identity/types.js'
import {checkStartupParameters, createStatementHook, decisionToVerdict, judgeStatements, loadParser, readOnlyViolation, sharedAnalysisCache, type ClientKind, type Decision, type PolicyStatementHook} from '../policy/index.js'
import {DEFAULT_MCP} from '../config/dbgate-schema.js'
import type {PgNoticeFields, ProxyHooks, StatementContext, StatementHook, StatementVerdict} from '../proxy/hooks.js'
import type {UpstreamTarget} from '../proxy/upstream.js'
import {startMasking, type ClosableCatalogQuery, type MaskingRuntime} from '../masking/index.js'
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
  const catalogSource = ctx.catalogQuery ?? ctx.upstream
  const masking = features.masking && catalogSource ? await startMaskingFor(ctx, catalogSource) : undefined
  const recording = features.recording
    ? await startRecording({config: ctx.config, target, identity, env: ctx.env, log, policy: ctx.policy, maskText: masking?.factory.maskText, agent: ctx.agent})
    : undefined
  const dispose = async () => {
    await recording?.close()
    await masking?.close()
  }
  const base: ProxyHooks = {
    ...recording?.hooks,
    resultFilter: masking?.hooks.resultFilter,
    onStatement: chain(masking?.hooks.onStatement, recording?.hooks.onStatement),
    onConnectionClosed: masking?.hooks.onConnectionClosed,
    dispose,
    // Previews are only of masked rows; without masking there is nothing safe to keep.
    previewRows: recording && masking ? ctx.config.recording.previewRows : 0,
  }
  if (!features.guardrails) return base
  const policy = createStatementHook({
    rules: target.rules,
    pack: target.policy,
    identityGroups: identity?.groups ?? [],
    maxStatementSize: target.tunnel.maxStatementSize,
    reviewers: target.reviewers,
    client: clientOf(ctx),
  })
  const approvals = approvalGate(ctx, recording, policy)
  return {
    ...base,
    ...withApprovalObserver(base, approvals),
    startup: (params): PgNoticeFields | undefined => {
      const problem = checkStartupParameters(params)[0]
      if (!problem) return undefined
      return {
        severity: 'FATAL',
        code: '42501',
        message: `dbgate: the startup parameter "${problem.parameter}" is not allowed: ${problem.reason}`,
        hint:
          problem.parameter.toLowerCase() === 'client_encoding'
            ? 'Use UTF8: set PGCLIENTENCODING=UTF8, or run your client in a UTF-8 locale.'
            : 'Remove it from the connection settings; use SET after connecting where policy allows it.',
      }
    },
    statement: maskability(approvals.wrap(readOnlyFor(ctx, policy)), masking),
    onStatementClosed: (connectionId, name) => policy.closeStatement(connectionId, name),
    onConnectionClosed: chain((connectionId) => policy.dropConnection(connectionId), base.onConnectionClosed),
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
  return (sql, sctx) => {
    const analysis = sharedAnalysisCache.analyze(sql, {maxStatementSize})
    const refused = readOnlyViolation(analysis, {hint})
    if (!refused) return policy(sql, sctx)
    const decision: Decision = {action: 'deny', decisive: refused, statements: [refused], warnings: []}
    return decisionToVerdict(decision, {statements: analysis.statements})
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
function startMaskingFor(ctx: TunnelHooksContext, catalogSource: UpstreamTarget | ClosableCatalogQuery): Promise<MaskingRuntime> {
  return startMasking({
    target: catalogSource,
    masking: ctx.target.masking,
    identity: {groups: ctx.identity?.groups ?? [], kind: ctx.identity?.kind ?? 'human'},
    hashKey: maskingHashKey(ctx.env ?? process.env),
    log: ctx.log,
  })
}

/**
 * Where a query's shape keeps masking from following a sensitive column, policy decides
 * (`masking.onUntraceable`); the masking engine says whether it can follow, after the guardrails
 * have allowed the statement.
 */
function maskability(inner: StatementHook, masking: MaskingRuntime | undefined): StatementHook {
  if (!masking) return inner
  const check = (sql: string, ctx: StatementContext, verdict: StatementVerdict): StatementVerdict => {
    if (verdict.action !== 'allow') return verdict
    const m = masking.factory.checkMaskable(sql, ctx)
    if (m.ok) return verdict
    return {action: 'reject', tag: verdict.tag, error: {severity: 'ERROR', code: '42501', message: `dbgate: masking cannot follow this query: ${m.reason}`, hint: 'Select the sensitive columns directly (they are masked), or ask for a group that may see them unmasked.'}}
  }
  return (sql, ctx) => {
    const v = inner(sql, ctx)
    return v instanceof Promise ? v.then((r) => check(sql, ctx, r)) : check(sql, ctx, v)
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
function approvalGate(ctx: TunnelHooksContext, recording: Awaited<ReturnType<typeof startRecording>> | undefined, policy: PolicyStatementHook): ApprovalGate {
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
    pollMs: ctx.approvalPollMs,
    agent: ctx.agent,
    onApproved: (sql, stmt) => {
      // What the policy hook commits for a text it allows outright, for one a reviewer allowed.
      const analysis = sharedAnalysisCache.analyze(sql, {maxStatementSize: ctx.target.tunnel.maxStatementSize})
      const staged = policy.prepared.for(stmt.connectionId).stage()
      judgeStatements(analysis.statements, staged, {rules: ctx.target.rules, pack: ctx.target.policy, groups: ctx.identity?.groups ?? [], client: clientOf(ctx)})
      staged.commit()
    },
  })
}

function withApprovalObserver(base: ProxyHooks, gate: ApprovalGate): Pick<ProxyHooks, 'onStatement' | 'onSessionEnd'> {
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

import type {DbgateConfig, TargetConfig} from '../config/types.js'
import {startRecording} from './recording.js'
import type {Identity} from '../identity/types.js'
import {checkStartupParameters, createStatementHook, loadParser} from '../policy/index.js'
import type {PgNoticeFields, ProxyHooks} from '../proxy/hooks.js'

/** Parts of the pipeline that can be switched off, for the benchmark's cost-per-feature figures. */
export interface TunnelFeatures {
  guardrails: boolean
  recording: boolean
}

export const ALL_FEATURES: TunnelFeatures = {guardrails: true, recording: true}

export interface TunnelHooksContext {
  config: DbgateConfig
  target: TargetConfig
  identity?: Identity
  features?: Partial<TunnelFeatures>
  env?: NodeJS.ProcessEnv
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
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
  const recording = features.recording ? await startRecording({config: ctx.config, target, identity, env: ctx.env, log: ctx.log ?? (() => {})}) : undefined
  const base: ProxyHooks = {...recording?.hooks, dispose: recording?.close}
  if (!features.guardrails) return base
  const policy = createStatementHook({
    rules: target.rules,
    pack: target.policy,
    identityGroups: identity?.groups ?? [],
    maxStatementSize: target.tunnel.maxStatementSize,
    reviewers: target.reviewers,
  })
  return {
    ...base,
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
    statement: policy,
    onStatementClosed: (connectionId, name) => policy.closeStatement(connectionId, name),
    onConnectionClosed: (connectionId) => policy.dropConnection(connectionId),
  }
}

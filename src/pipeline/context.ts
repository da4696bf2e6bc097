import type {GatewaySignature} from '../approvals/types.js'
import type {UnsignedRequest} from '../approvals/gateway-signature.js'
import type {DbgateConfig, TargetConfig} from '../config/types.js'
import type {AgentInfo, Identity} from '../identity/types.js'
import type {ClosableCatalogQuery} from '../masking/index.js'
import type {UpstreamTarget} from '../proxy/upstream.js'

/** Parts of the pipeline that can be switched off, for the benchmark's cost-per-feature figures. */
export interface TunnelFeatures {
  /** The policy stage (guardrails, the read-only agent rule) and with it approvals. */
  guardrails: boolean
  masking: boolean
  recording: boolean
}

export const ALL_FEATURES: TunnelFeatures = {guardrails: true, masking: true, recording: true}

/** What the pipeline is built from: the configuration, the target, and who its sessions run as. */
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
  /** On a gateway: signs each approval request it files with its TLS key (src/approvals/gateway-signature.ts). */
  signApprovalRequest?: (request: UnsignedRequest) => GatewaySignature
}

export type PipelineLog = NonNullable<TunnelHooksContext['log']>

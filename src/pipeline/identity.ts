import type {AgentInfo, Identity} from '../identity/types.js'
import type {ClientKind} from '../policy/index.js'
import type {TunnelHooksContext} from './context.js'
import type {Stage} from './stage.js'

/**
 * Who every session of this pipeline runs as, for the stages after it: policy matches its groups
 * and client, masking its groups and kind, approvals and recording name it. It implements no part
 * of the seam here: `dbgate connect` verifies the identity and checks the target's `allow` groups
 * before the tunnel listens (src/connect/identity.ts), so every session is already signed in.
 */
export interface IdentityStage extends Stage {
  readonly name: 'identity'
  /** Absent when the configuration has no identity section: nobody was verified. */
  readonly identity?: Identity
  readonly groups: readonly string[]
  readonly kind: Identity['kind']
  /** The AI agent behind every session (`dbgate mcp`). */
  readonly agent?: AgentInfo
  /** How sessions reach the tunnel, for rules that match `client`. */
  readonly client: ClientKind
}

export function identityStage(ctx: Pick<TunnelHooksContext, 'identity' | 'agent'>): IdentityStage {
  return {
    name: 'identity',
    identity: ctx.identity,
    groups: ctx.identity?.groups ?? [],
    kind: ctx.identity?.kind ?? 'human',
    agent: ctx.agent,
    client: ctx.agent ? 'mcp' : 'connect',
  }
}

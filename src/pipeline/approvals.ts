import {createApprovalGate} from '../approvals/gate.js'
import {openBucket} from '../bucket/index.js'
import type {RecordingSetup} from '../connect/recording.js'
import type {IdentityConfig} from '../identity/config.js'
import type {ClosableCatalogQuery} from '../masking/index.js'
import type {TunnelHooksContext} from './context.js'
import type {IdentityStage} from './identity.js'
import type {Stage} from './stage.js'
import {databaseKey, onCatalogChanged} from './catalog-changes.js'

/**
 * Settles every hold before the proxy sees it: a statement that needs approval waits in the tunnel
 * for a verified reviewer (src/approvals) and comes out allowed once or rejected. It remembers each
 * session's recent statements, so a request shows what came just before it.
 */
export function approvalsStage(ctx: TunnelHooksContext, who: IdentityStage, recording: RecordingSetup | undefined, catalogQuery?: ClosableCatalogQuery): Stage {
  const section = ctx.config.identity
  // Reviewers' tokens are verified without the client secret, which only the token endpoint needs.
  const identityConfig: IdentityConfig | undefined = section ? (({clientSecret: _secret, ...rest}) => rest)(section) : undefined
  // Commits of schema changes through the other pipelines in front of the database (the policy
  // stage says so for this one's, keyed by the same context): an approval covers the schema it was asked on.
  let moved = 0
  const stopListening = onCatalogChanged(databaseKey(ctx.target), ctx, () => void moved++)
  const gate = createApprovalGate({
    bucket: openBucket(ctx.config.bucket),
    target: ctx.target,
    identity: who.identity,
    identityConfig,
    record: (sessionId, type, payload) => recording?.session(sessionId)?.recordEvent(type, payload),
    log: ctx.log ?? (() => {}),
    announce: ctx.announce,
    pollMs: ctx.approvalPollMs,
    agent: who.agent,
    signRequest: ctx.signApprovalRequest,
    catalogMoved: () => moved,
    ...(catalogQuery ? {catalogQuery} : {}),
  })
  return {
    name: 'approvals',
    statement: gate.settle,
    onStatement: (event) => gate.observe(event),
    onSessionEnd: (session) => gate.forgetSession(session.sessionId),
    dispose: async () => stopListening(),
  }
}

import {startRecording} from '../connect/recording.js'
import type {RecordingSetup} from '../connect/recording.js'
import {sharedAnalysisCache} from '../policy/index.js'
import {MAX_SHAPED_TEXT} from '../policy/shape-cache.js'
import {readingOf} from '../policy/text-shape.js'
import type {TunnelHooksContext} from './context.js'
import type {IdentityStage} from './identity.js'
import type {MaskingStage} from './masking.js'
import type {Stage} from './stage.js'

export interface RecordingStage extends Stage {
  readonly name: 'recording'
  /** The live sessions' recorders, for events other than statements (`approval.*`). */
  readonly setup: RecordingSetup
}

/**
 * Records every session, each statement with the decision and approval on its final verdict, into
 * the signed spool, and ships it to the bucket.
 */
export async function recordingStage(ctx: TunnelHooksContext, who: IdentityStage, masking: MaskingStage | undefined, opts: {guardrails: boolean}): Promise<RecordingStage> {
  const setup = await startRecording({
    config: ctx.config,
    target: ctx.target,
    identity: who.identity,
    env: ctx.env,
    log: ctx.log ?? (() => {}),
    policy: ctx.policy,
    maskText: masking?.maskText,
    maskParams: masking?.maskParams,
    maskParamEchoes: masking?.maskParamEchoes,
    agent: who.agent,
  })
  const maxStatementSize = ctx.target.tunnel.maxStatementSize
  return {
    name: 'recording',
    setup,
    ...setup.hooks,
    recordEvent: (sessionId, type, payload) => {
      const session = setup.session(sessionId)
      if (!session) return false
      session.recordEvent(type, payload)
      // Written now, as a statement's event is before its replies go out: nothing else may follow it soon.
      return setup.hooks.beforeRelease?.(sessionId) === undefined
    },
    // A statement's tables come from the analysis its verdict carries, or the shared analysis
    // cache (describeStatement). The guardrails make one for every text; without them, the text is
    // analysed here, where the session's acknowledged settings say whether it may share the
    // analysis of another text of its shape, rather than parsed in full when it is recorded. (A
    // text answered by its shape is not kept by its text: the verdict carries it.) The verdict's
    // action never changes.
    statement: opts.guardrails
      ? undefined
      : (sql, sctx, verdict) => {
          if (sql.length <= MAX_SHAPED_TEXT && verdict.analysis === undefined) {
            try {
              return {...verdict, analysis: sharedAnalysisCache.analyze(sql, {maxStatementSize}, readingOf(sctx.session.parameters))}
            } catch {
              /* recorded all the same: describeStatement analyses it again */
            }
          }
          return verdict
        },
    // Previews are only of masked rows; without masking there is nothing safe to keep.
    previewRows: masking ? ctx.config.recording.previewRows : 0,
    dispose: () => setup.close(),
  }
}

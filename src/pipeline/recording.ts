import {startRecording} from '../connect/recording.js'
import type {RecordingSetup} from '../connect/recording.js'
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
export async function recordingStage(ctx: TunnelHooksContext, who: IdentityStage, masking: MaskingStage | undefined): Promise<RecordingStage> {
  const setup = await startRecording({
    config: ctx.config,
    target: ctx.target,
    identity: who.identity,
    env: ctx.env,
    log: ctx.log ?? (() => {}),
    policy: ctx.policy,
    maskText: masking?.maskText,
    agent: who.agent,
  })
  return {
    name: 'recording',
    setup,
    ...setup.hooks,
    // Previews are only of masked rows; without masking there is nothing safe to keep.
    previewRows: masking ? ctx.config.recording.previewRows : 0,
    dispose: () => setup.close(),
  }
}

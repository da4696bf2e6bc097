/**
 * The pipeline every session runs: identity, policy, approvals, masking, recording (`STAGE_ORDER`
 * says why in that order), built in one place for `dbgate connect`, `dbgate mcp` and the gateway.
 */
import {catalogQueryFor} from '../masking/index.js'
import {loadParser} from '../sql/parser.js'
import type {ProxyHooks} from '../proxy/seam.js'
import {approvalsStage} from './approvals.js'
import {ALL_FEATURES, type TunnelHooksContext} from './context.js'
import {identityStage} from './identity.js'
import {maskingStage} from './masking.js'
import {policyStage} from './policy.js'
import {recordingStage} from './recording.js'
import {assemble, type Pipeline, type Stage} from './stage.js'

export {ALL_FEATURES, type TunnelFeatures, type TunnelHooksContext} from './context.js'
export {assemble, refuseHold, STAGE_ORDER, type Pipeline, type Stage, type StageName, type StatementStep} from './stage.js'
export type {IdentityStage} from './identity.js'
export type {MaskingStage} from './masking.js'
export type {RecordingStage} from './recording.js'

/**
 * Builds the stages for one tunnel (or gateway target) from its context, with the features the
 * benchmark switched off left out. Resolves once the SQL parser is loaded, so the tunnel never has
 * to answer its first statement asynchronously.
 */
export async function buildPipeline(ctx: TunnelHooksContext): Promise<Pipeline> {
  const features = {...ALL_FEATURES, ...ctx.features}
  await loadParser()
  // One catalog connection per tunnel: masking reads relations through it, guardrails functions.
  const catalogQuery = ctx.catalogQuery ?? (ctx.upstream ? catalogQueryFor(ctx.upstream) : undefined)
  const release = async () => {
    await catalogQuery?.close()
  }
  const built: Stage[] = []
  try {
    const who = identityStage(ctx)
    const masking = features.masking && catalogQuery ? await maskingStage(ctx, who, catalogQuery) : undefined
    if (masking) built.push(masking)
    const recording = features.recording ? await recordingStage(ctx, who, masking, {guardrails: features.guardrails}) : undefined
    if (recording) built.push(recording)
    const policy = features.guardrails ? await policyStage(ctx, who, catalogQuery) : undefined
    // Approvals settle what policy holds: without guardrails nothing is ever held.
    const approvals = features.guardrails ? approvalsStage(ctx, who, recording?.setup, catalogQuery) : undefined
    const stages = [who, policy, approvals, masking, recording].filter((s): s is NonNullable<typeof s> => s !== undefined)
    return {stages, release}
  } catch (error) {
    // What started before the failure is stopped again, newest first.
    for (const s of built.reverse()) await s.dispose?.().catch(() => {})
    await release().catch(() => {})
    throw error
  }
}

/** The hooks the proxy runs on every session: the pipeline of `ctx`, assembled. */
export async function buildTunnelHooks(ctx: TunnelHooksContext): Promise<ProxyHooks> {
  return assemble(await buildPipeline(ctx))
}

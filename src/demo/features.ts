/**
 * What this build of the tunnel can show. The tour reports a missing part as skipped instead of
 * pretending: a newcomer must never be told values are masked when they are not.
 */
import {ALL_FEATURES} from '../pipeline/index.js'

export interface DemoFeatures {
  /** Results are masked on the way out (a `masking` switch in the tunnel's pipeline). */
  masking: boolean
}

export function demoFeatures(): DemoFeatures {
  return {masking: 'masking' in ALL_FEATURES && (ALL_FEATURES as unknown as Record<string, unknown>).masking === true}
}

export const MISSING_MASKING = 'masking not available in this build'

import {DEFAULT_CLOCK_SKEW_MS, DEFAULT_SCOPES} from '../config/schema.js'
import type {IdentityConfig as IdentitySection} from '../config/types.js'

/**
 * dbgate.yaml's `identity` section (src/config/types.ts, defaults applied) with the client
 * secret resolved: a reference (`env:…`, `keychain:…`) in the file, its value here, present only
 * where the token endpoint needs it. `audience` may be left out by callers that build one without
 * a dbgate.yaml: it then defaults to the client id, as in the file.
 */
export type IdentityConfig = Omit<IdentitySection, 'clientSecret' | 'audience'> & {clientSecret?: string; audience?: string}

export type IdentityConfigInput = Pick<IdentityConfig, 'issuer' | 'clientId'> & Partial<IdentityConfig>

/** The section's defaults, for callers that build an identity config without a dbgate.yaml. */
export function withIdentityDefaults(input: IdentityConfigInput): IdentityConfig {
  return {
    ...input,
    scopes: input.scopes ?? DEFAULT_SCOPES,
    groupsClaim: input.groupsClaim ?? 'groups',
    verify: input.verify ?? 'id_token',
    clockSkewMs: input.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS,
  }
}

/** Audience an access token must carry. */
export function accessTokenAudience(config: IdentityConfig): string {
  return config.audience ?? config.clientId
}

import {IDENTITY_DEFAULTS} from '../config/schema.js'
import type {IdentityConfig as IdentitySection} from '../config/types.js'

/**
 * dbgate.yaml's `identity` section (inferred from its schema, src/config/schema.ts, defaults applied) with the client
 * secret resolved: a reference (`env:…`, `keychain:…`) in the file, its value here, present only
 * where the token endpoint needs it. `audience` may be left out by callers that build one without
 * a dbgate.yaml: it then defaults to the client id, as in the file.
 */
export type IdentityConfig = Omit<IdentitySection, 'clientSecret' | 'audience'> & {clientSecret?: string; audience?: string}

export type IdentityConfigInput = Pick<IdentityConfig, 'issuer' | 'clientId'> & Partial<IdentityConfig>

/** The section's defaults (the schema's own), for callers that build an identity config without a dbgate.yaml. */
export function withIdentityDefaults(input: IdentityConfigInput): IdentityConfig {
  return {
    ...input,
    scopes: input.scopes ?? [...IDENTITY_DEFAULTS.scopes],
    groupsClaim: input.groupsClaim ?? IDENTITY_DEFAULTS.groupsClaim,
    verify: input.verify ?? IDENTITY_DEFAULTS.verify,
    clockSkewMs: input.clockSkewMs ?? IDENTITY_DEFAULTS.clockSkewMs,
  }
}

/** Audience an access token must carry. */
export function accessTokenAudience(config: IdentityConfig): string {
  return config.audience ?? config.clientId
}

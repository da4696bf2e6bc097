/** The `identity` section of dbgate.yaml, with defaults applied. */
export interface IdentityConfig {
  /** OIDC issuer URL, exactly as it appears in the tokens' `iss`. */
  issuer: string
  /** The client dbgate is registered as at the IdP (a public/native client using the device-code grant). */
  clientId: string
  /** Only for IdPs that insist on a secret even for native clients (some Entra/Google setups). */
  clientSecret?: string
  scopes: string[]
  /** Claim holding the groups; a dotted path such as `realm_access.roles` reaches into nested objects. */
  groupsClaim: string
  /** Audience required in access tokens; ID tokens carry `clientId` and are accepted with either. */
  audience?: string
  /** Which token proves a human's identity. Service identities always present an access token. */
  verify: 'id_token' | 'access_token'
  clockSkewMs: number
}

export const DEFAULT_SCOPES = ['openid', 'profile', 'email', 'offline_access']

export type IdentityConfigInput = Pick<IdentityConfig, 'issuer' | 'clientId'> & Partial<IdentityConfig>

export function withIdentityDefaults(input: IdentityConfigInput): IdentityConfig {
  return {
    ...input,
    scopes: input.scopes ?? DEFAULT_SCOPES,
    groupsClaim: input.groupsClaim ?? 'groups',
    verify: input.verify ?? 'id_token',
    clockSkewMs: input.clockSkewMs ?? 60_000,
  }
}

/** Audience an access token must carry. */
export function accessTokenAudience(config: IdentityConfig): string {
  return config.audience ?? config.clientId
}

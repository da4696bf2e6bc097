/**
 * AWS RDS IAM database authentication: the upstream password is a token that `@aws-sdk/rds-signer`
 * presigns (SigV4, service `rds-db`, action `connect`) for one host, port and database user. A token
 * is valid for 15 minutes, so one is made for every upstream connection rather than once at start.
 * Credentials come from the standard AWS chain (environment, shared profile, SSO, web identity,
 * container or instance role); dbgate never stores them and its messages never include them.
 */
import type {Signer} from '@aws-sdk/rds-signer'

export interface RdsIamAuth {
  region: string
  /** A profile of the shared AWS configuration; default: the chain's own choice (AWS_PROFILE, default). */
  profile?: string
}

/** How long RDS accepts a token after it was made. */
export const RDS_IAM_TOKEN_LIFETIME_S = 900

export class RdsIamTokenError extends Error {
  override readonly name = 'RdsIamTokenError'
  readonly code = 'RDS_IAM_TOKEN_FAILED'
  readonly nextStep =
    'Give dbgate AWS credentials (environment, shared profile, SSO, web identity, container or instance role) whose policy allows rds-db:connect for this database user.'
}

export class RdsIamNeedsTlsError extends Error {
  override readonly name = 'RdsIamNeedsTlsError'
  readonly code = 'RDS_IAM_NEEDS_TLS'
  readonly nextStep = 'Set "tls: verify-full" with "tlsCa:" the RDS certificate bundle (or at least "tls: require").'
  constructor(target: string, tls: string) {
    super(`targets.${target} uses RDS IAM authentication, which needs TLS to the database (RDS refuses IAM tokens without it), but its tls is ${tls}.`)
  }
}

/** A function that makes a fresh token per call, for `UpstreamTarget.password`. */
export function rdsIamTokenSource(at: {host: string; port: number; user: string}, auth: RdsIamAuth): () => Promise<string> {
  // Loaded on first use: only targets with IAM authentication pay for the AWS SDK's start-up.
  let signer: Promise<Signer> | undefined
  const load = async () => {
    const {Signer} = await import('@aws-sdk/rds-signer')
    return new Signer({hostname: at.host, port: at.port, username: at.user, region: auth.region, ...(auth.profile !== undefined ? {profile: auth.profile} : {})})
  }
  return async () => {
    try {
      signer ??= load()
      return await (await signer).getAuthToken()
    } catch (error) {
      const profile = auth.profile !== undefined ? `, profile ${auth.profile}` : ''
      throw new RdsIamTokenError(`could not make an RDS IAM token for user "${at.user}" at ${at.host}:${at.port} (${auth.region}${profile}): ${(error as Error).message}`, {cause: error})
    }
  }
}

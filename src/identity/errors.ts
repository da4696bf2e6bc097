/**
 * Every failure the identity layer reports. One class per kind, each with a stable `code` that
 * scripts and the CLI's exit-code table can rely on, and a `nextStep` a person can act on.
 * Messages never include a token: callers may print them verbatim.
 */
export type IdentityErrorCode =
  | 'LOGIN_DENIED'
  | 'LOGIN_EXPIRED'
  | 'LOGIN_ABORTED'
  | 'LOGIN_REQUIRED'
  | 'IDP_UNREACHABLE'
  | 'IDP_ERROR'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_NOT_YET_VALID'
  | 'TOKEN_INVALID_SIGNATURE'
  | 'TOKEN_WRONG_AUDIENCE'
  | 'TOKEN_WRONG_CLIENT'
  | 'TOKEN_WRONG_ISSUER'
  | 'TOKEN_MALFORMED'
  | 'TARGET_NOT_ALLOWED'
  | 'TOKEN_STORE_FAILED'

export abstract class IdentityError extends Error {
  abstract readonly code: IdentityErrorCode
  /** Mutable so a caller with more context (e.g. "this came from DBGATE_TOKEN") can sharpen it. */
  nextStep?: string

  constructor(message: string, options: {nextStep?: string; cause?: unknown} = {}) {
    super(message, options.cause === undefined ? undefined : {cause: options.cause})
    this.name = new.target.name
    this.nextStep = options.nextStep
  }
}

const LOGIN_AGAIN = 'Run `dbgate login` to sign in again.'

export class LoginDeniedError extends IdentityError {
  readonly code = 'LOGIN_DENIED'
  constructor(detail?: string, options: {cause?: unknown} = {}) {
    super(`Sign-in was denied at the identity provider${detail ? `: ${detail}` : ''}.`, {
      nextStep: 'Run `dbgate login` again and approve the request, or ask your IdP administrator whether you may use dbgate.',
      ...options,
    })
  }
}

export class LoginExpiredError extends IdentityError {
  readonly code = 'LOGIN_EXPIRED'
  constructor(options: {cause?: unknown} = {}) {
    super('The one-time code expired before sign-in was completed.', {
      nextStep: 'Run `dbgate login` again and enter the new code promptly.',
      ...options,
    })
  }
}

export class LoginAbortedError extends IdentityError {
  readonly code = 'LOGIN_ABORTED'
  constructor(options: {cause?: unknown} = {}) {
    super('Sign-in was cancelled.', {nextStep: 'Run `dbgate login` when you are ready.', ...options})
  }
}

export class LoginRequiredError extends IdentityError {
  readonly code = 'LOGIN_REQUIRED'
  constructor(reason: string, options: {cause?: unknown} = {}) {
    super(reason, {nextStep: 'Run `dbgate login` to sign in.', ...options})
  }
}

export class IdpUnreachableError extends IdentityError {
  readonly code = 'IDP_UNREACHABLE'
  constructor(issuer: string, options: {cause?: unknown} = {}) {
    super(`Could not reach the identity provider at ${issuer}.`, {
      nextStep: 'Check your network connection and the `identity.issuer` setting in dbgate.yaml, then try again.',
      ...options,
    })
  }
}

/** The IdP answered, but with an OAuth error dbgate has no specific handling for (e.g. invalid_client). */
export class IdpError extends IdentityError {
  readonly code = 'IDP_ERROR'
  readonly oauthError?: string
  constructor(message: string, options: {oauthError?: string; nextStep?: string; cause?: unknown} = {}) {
    super(message, {
      nextStep: options.nextStep ?? 'Check the `identity` section of dbgate.yaml against your IdP registration (see docs/identity.md).',
      cause: options.cause,
    })
    this.oauthError = options.oauthError
  }
}

export abstract class TokenError extends IdentityError {}

export class TokenExpiredError extends TokenError {
  readonly code = 'TOKEN_EXPIRED'
  constructor(options: {cause?: unknown} = {}) {
    super('The token has expired.', {nextStep: LOGIN_AGAIN, ...options})
  }
}

export class TokenNotYetValidError extends TokenError {
  readonly code = 'TOKEN_NOT_YET_VALID'
  constructor(options: {cause?: unknown; claim?: 'nbf' | 'iat'} = {}) {
    const {claim, ...rest} = options
    const what = claim === 'iat' ? 'it says it was issued (iat) in the future' : claim === 'nbf' ? 'its nbf lies in the future' : 'its nbf or iat lies in the future'
    super(`The token is not valid yet (${what}, beyond the clock skew allowed).`, {
      nextStep: "Check the clock of this machine and of the identity provider; dbgate allows `identity.clockSkew` of drift.",
      ...rest,
    })
  }
}

export class TokenSignatureError extends TokenError {
  readonly code = 'TOKEN_INVALID_SIGNATURE'
  /** Set when the token names a key the identity provider published and has since withdrawn (revoked, or rotated out). */
  readonly withdrawnKid: string | undefined
  constructor(options: {cause?: unknown; withdrawnKid?: string} = {}) {
    const {withdrawnKid, ...rest} = options
    super(
      withdrawnKid === undefined
        ? "The token's signature does not verify against the identity provider's published keys."
        : `The token was signed with a key the identity provider no longer publishes (key id "${withdrawnKid}"): it has withdrawn that key (revoked, or rotated out).`,
      {
        nextStep: withdrawnKid === undefined ? 'The token was altered or issued by another provider. ' + LOGIN_AGAIN : LOGIN_AGAIN,
        ...rest,
      },
    )
    this.withdrawnKid = withdrawnKid
  }
}

export class TokenAudienceError extends TokenError {
  readonly code = 'TOKEN_WRONG_AUDIENCE'
  constructor(expected: string[], options: {cause?: unknown} = {}) {
    super(`The token was issued for another application (expected audience ${expected.join(' or ')}).`, {
      nextStep: 'Use a token issued to dbgate, or set `identity.audience` to the audience your IdP puts in its tokens.',
      ...options,
    })
  }
}

export class TokenIssuerError extends TokenError {
  readonly code = 'TOKEN_WRONG_ISSUER'
  constructor(expected: string, options: {cause?: unknown} = {}) {
    super(`The token was issued by another identity provider (expected ${expected}).`, {
      nextStep: 'Use a token from the configured issuer, or correct `identity.issuer` in dbgate.yaml.',
      ...options,
    })
  }
}

/** The token names, as its authorized party (`azp`, or `client_id`), a client dbgate does not accept tokens of. */
export class TokenClientError extends TokenError {
  readonly code = 'TOKEN_WRONG_CLIENT'
  constructor(
    readonly client: string,
    readonly accepted: string[],
    options: {cause?: unknown} = {},
  ) {
    super(`The token was issued to another client ("${client}"; accepted: ${accepted.join(', ')}).`, {
      nextStep: 'Use a token obtained through dbgate (`dbgate login`, `dbgate token`), or ask the administrators to add that client to `identity.allowedClients`.',
      ...options,
    })
  }
}

export class TokenMalformedError extends TokenError {
  readonly code = 'TOKEN_MALFORMED'
  constructor(detail: string, options: {cause?: unknown} = {}) {
    super(`The token is not a usable signed JWT: ${detail}.`, {nextStep: LOGIN_AGAIN, ...options})
  }
}

export class TargetNotAllowedError extends IdentityError {
  readonly code = 'TARGET_NOT_ALLOWED'
  readonly allowGroups: string[]
  constructor(who: string, groups: string[], allowGroups: string[]) {
    const have = groups.length ? groups.join(', ') : 'no groups'
    super(
      allowGroups.length
        ? `${who} is not in any group allowed here (member of: ${have}).`
        : `Nobody is allowed here: the target lists no groups in \`allow\`.`,
      {
        nextStep: allowGroups.length
          ? `Membership of any of these groups would let you in: ${allowGroups.join(', ')}. Ask your IdP administrator, then run \`dbgate login\` again so your token carries it.`
          : 'Ask the platform team to add an `allow` list to this target in dbgate.yaml.',
      },
    )
    this.allowGroups = allowGroups
  }
}

export class TokenStoreError extends IdentityError {
  readonly code = 'TOKEN_STORE_FAILED'
  constructor(message: string, options: {cause?: unknown; nextStep?: string} = {}) {
    super(message, {nextStep: 'Check the permissions of the dbgate config directory and the file named above.', ...options})
  }
}

/** Approval failures a reviewer can act on, each with a stable code and the next step. */
export const APPROVAL_NOT_FOUND = 'APPROVAL_NOT_FOUND'
export const APPROVAL_NOT_PENDING = 'APPROVAL_NOT_PENDING'
export const APPROVAL_ALREADY_DECIDED = 'APPROVAL_ALREADY_DECIDED'
export const APPROVAL_NOT_A_REVIEWER = 'APPROVAL_NOT_A_REVIEWER'
export const APPROVAL_SELF = 'APPROVAL_SELF'
export const APPROVAL_BAD_INPUT = 'APPROVAL_BAD_INPUT'
export const APPROVAL_NO_FRESH_TOKEN = 'APPROVAL_NO_FRESH_TOKEN'
export const APPROVAL_UNTRUSTED_REQUEST = 'APPROVAL_UNTRUSTED_REQUEST'

export type ApprovalErrorCode =
  | typeof APPROVAL_NOT_FOUND
  | typeof APPROVAL_NOT_PENDING
  | typeof APPROVAL_ALREADY_DECIDED
  | typeof APPROVAL_NOT_A_REVIEWER
  | typeof APPROVAL_SELF
  | typeof APPROVAL_BAD_INPUT
  | typeof APPROVAL_NO_FRESH_TOKEN
  | typeof APPROVAL_UNTRUSTED_REQUEST

export class ApprovalError extends Error {
  override readonly name = 'ApprovalError'
  constructor(
    readonly code: ApprovalErrorCode,
    message: string,
    readonly nextStep?: string,
  ) {
    super(message)
    Error.captureStackTrace?.(this, ApprovalError)
  }
}

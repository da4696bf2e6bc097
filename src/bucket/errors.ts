export const BUCKET_UNREACHABLE = 'BUCKET_UNREACHABLE'
export const BUCKET_NOT_FOUND = 'BUCKET_NOT_FOUND'
export const BUCKET_ACCESS_DENIED = 'BUCKET_ACCESS_DENIED'
export const BUCKET_BAD_URL = 'BUCKET_BAD_URL'
export const BUCKET_ERROR = 'BUCKET_ERROR'
export const OBJECT_NOT_FOUND = 'OBJECT_NOT_FOUND'
export const OBJECT_EXISTS = 'OBJECT_EXISTS'
export const INVALID_KEY = 'INVALID_KEY'
export const CONDITIONAL_WRITE_UNSUPPORTED = 'CONDITIONAL_WRITE_UNSUPPORTED'

export type BucketErrorCode =
  | typeof BUCKET_UNREACHABLE
  | typeof BUCKET_NOT_FOUND
  | typeof BUCKET_ACCESS_DENIED
  | typeof BUCKET_BAD_URL
  | typeof BUCKET_ERROR
  | typeof OBJECT_NOT_FOUND
  | typeof OBJECT_EXISTS
  | typeof INVALID_KEY
  | typeof CONDITIONAL_WRITE_UNSUPPORTED

/**
 * Every bucket failure. `cause` is a sanitized summary (name, code, HTTP status), never the SDK
 * error itself: those can carry request headers, and messages must never leak credentials.
 */
export class BucketError extends Error {
  override readonly name = 'BucketError'
  readonly code: BucketErrorCode
  readonly key?: string
  /** Worth retrying later (network, throttling, 5xx). */
  readonly retryable: boolean

  constructor(code: BucketErrorCode, message: string, opts: {key?: string; retryable?: boolean; cause?: {name?: string; code?: string; status?: number}} = {}) {
    super(message, opts.cause ? {cause: opts.cause} : undefined)
    this.code = code
    this.key = opts.key
    this.retryable = opts.retryable ?? code === BUCKET_UNREACHABLE
    Error.captureStackTrace?.(this, BucketError)
  }
}

export function isBucketError(err: unknown, code?: BucketErrorCode): err is BucketError {
  return err instanceof BucketError && (code === undefined || err.code === code)
}

/** Keys are relative, `/`-separated, with no empty, `.` or `..` segments, so a file bucket cannot escape its root. */
export function checkKey(key: string): void {
  const bad =
    key.length === 0 ||
    key.length > 1024 ||
    key.startsWith('/') ||
    key.includes('\\') ||
    key.includes('\0') ||
    key.split('/').some((s) => s === '' || s === '.' || s === '..')
  if (bad) throw new BucketError(INVALID_KEY, `invalid object key ${JSON.stringify(key)}`, {key})
}

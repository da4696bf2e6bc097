/**
 * The gateway's structured logs: one JSON object per line (pino), with redaction that does not
 * depend on every caller remembering it.
 *
 * Two nets, both applied to everything that reaches a line (messages, fields at any depth, child
 * bindings, errors and their stacks):
 *  - by key: a field whose name says it holds a secret (password, token, authorization, secret,
 *    cookie, private key …, in any case or spelling with - and _) is replaced whole;
 *  - by shape: a string anywhere that contains a JWT (three base64url segments whose first one
 *    decodes to a JSON object; JWEs have five), a `Bearer`/`Basic` credential, a password in a URL
 *    (`postgres://user:pw@host`) or in a conninfo string (`password=pw`) has that part replaced.
 * An opaque random token under an innocent key cannot be recognised; the key rule is what stops it,
 * so code that logs credentials must use a name that says so.
 */
import {pino, type DestinationStream, type Level, type Logger} from 'pino'

export const REDACTED = '[redacted]'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

/** The shape of the `log` functions the core takes (connect/open.ts, proxy/tunnel.ts …), plus fields. */
export type LogFn = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void

export interface GatewayLoggerOptions {
  /** Lowest level written; default `info`. */
  level?: Level
  /** Where lines go; default standard output. */
  destination?: DestinationStream
  /** Fields on every line besides `pid`, e.g. `{gateway: 'gw-eu-1'}`; redacted like any other field. */
  base?: Record<string, unknown>
}

export function createGatewayLogger(options: GatewayLoggerOptions = {}): Logger {
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: {pid: process.pid, ...(scrubValue(options.base ?? {}) as Record<string, unknown>)},
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({level: label}),
        log: (object) => scrubValue(object) as Record<string, unknown>,
        bindings: (bindings) => scrubValue(bindings) as Record<string, unknown>,
      },
      // errors are turned into plain scrubbed objects by `scrubValue` before pino sees them
      serializers: {err: (value: unknown) => value},
      hooks: {
        logMethod(args: unknown[], method) {
          const scrubbed = args.map((a) => scrubValue(a))
          // pino takes the message from a leading Error; keep that once it is a plain object
          if (args[0] instanceof Error) {
            const err = scrubbed[0] as {message: string}
            scrubbed[0] = {err}
            if (typeof scrubbed[1] !== 'string') scrubbed.splice(1, 0, err.message)
          }
          return method.apply(this, scrubbed as Parameters<typeof method>)
        },
      },
    },
    options.destination ?? pino.destination({dest: 1, sync: false}),
  )
  // pino serialises a child's bindings once, past every formatter (it resets `formatters.bindings`
  // for children), so they are scrubbed on the way in; grandchildren inherit this `child`.
  const protoChild = logger.child as unknown as (this: unknown, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => Logger
  const scrubbedChild = function (this: unknown, bindings: pino.Bindings, childOptions?: pino.ChildLoggerOptions) {
    const {formatters: _formatters, redact: _redact, ...kept} = childOptions ?? {}
    if (kept.msgPrefix !== undefined) kept.msgPrefix = scrubText(kept.msgPrefix)
    return protoChild.call(this, scrubValue(bindings) as pino.Bindings, childOptions === undefined ? undefined : kept)
  }
  logger.child = scrubbedChild as unknown as Logger['child']
  return logger
}

/** A `(level, message, fields?)` function over a logger, for the core's `log` options. */
export function logFunction(logger: Logger): LogFn {
  return (level, message, fields) => {
    if (fields === undefined) logger[level](message)
    else logger[level](fields, message)
  }
}

const SECRET_KEY_EXACT = new Set(['authorization', 'proxyauthorization', 'cookie', 'setcookie', 'credentials', 'credential', 'passphrase', 'tokens', 'secrets', 'devicecode', 'codeverifier', 'assertion', 'clientassertion'])
const SECRET_KEY_SUFFIX = ['password', 'passwd', 'token', 'secret', 'privatekey', 'apikey', 'secretaccesskey']

/** Whether a field of this name holds a secret (`accessToken`, `refresh_token`, `X-Api-Key` …). */
export function isSecretKey(key: string): boolean {
  const k = key.toLowerCase().replace(/[-_\s]/g, '')
  return SECRET_KEY_EXACT.has(k) || SECRET_KEY_SUFFIX.some((s) => k.endsWith(s))
}

/** A protected header is base64url of `{"…`, so it starts with eyJ wherever it is glued on. */
const JWT_BY_PREFIX = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){1,3}/g
/** Any three or five dot-separated base64url segments; kept when the first does not decode to `{`. */
const CANDIDATE_JWT = /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{4,}={0,2}(?:\.[A-Za-z0-9_-]*={0,2}){2,4}/g
/** `Bearer` in any case; `Basic` capitalised only, so prose about "basic settings" is left alone. */
const AUTH_SCHEME = /\b([Bb][Ee][Aa][Rr][Ee][Rr]|Basic)(\s+)[A-Za-z0-9._~+/=-]{8,}/g
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^@\s/]+@/gi
/** `password=…` (conninfo, query strings), `password: …`, and SQL's `PASSWORD '…'`. */
const CONNINFO_PASSWORD = /\b(password|pgpassword|passwd)(\s*[=:]\s*|\s+(?=['"]))('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;&]+)/gi

/** The text with every token-shaped part and inline password replaced by `[redacted]`. */
export function scrubText(text: string): string {
  return text
    .replace(JWT_BY_PREFIX, REDACTED)
    .replace(CANDIDATE_JWT, (m) => (looksLikeJwt(m) ? REDACTED : m))
    .replace(AUTH_SCHEME, (_m, scheme: string, space: string) => `${scheme}${space}${REDACTED}`)
    .replace(URL_PASSWORD, (_m, head: string) => `${head}${REDACTED}@`)
    .replace(CONNINFO_PASSWORD, (_m, key: string, sep: string) => `${key}${sep}${REDACTED}`)
}

/** A JWS (3 parts) or JWE (5 parts) whose protected header decodes to a JSON object. */
function looksLikeJwt(candidate: string): boolean {
  const parts = candidate.split('.')
  if (parts.length !== 3 && parts.length !== 5) return false
  const header = parts[0]!.replace(/=+$/, '')
  if (header.length < 4 || parts[1]!.length === 0) return false
  return /^\s*\{/.test(Buffer.from(header, 'base64url').toString('latin1'))
}

/** A copy of a value with secret keys and token-shaped strings redacted, at any depth. */
export function scrubValue(value: unknown, ancestors: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return scrubText(value)
  if (typeof value !== 'object' || value === null) return value
  if (ancestors.has(value)) return '[circular]'
  ancestors.add(value)
  try {
    return scrubObject(value, ancestors)
  } finally {
    ancestors.delete(value)
  }
}

function scrubObject(value: object, seen: WeakSet<object>): unknown {
  if (value instanceof Error) {
    const out: Record<string, unknown> = {type: value.name, message: scrubText(value.message)}
    if (value.stack !== undefined) out.stack = scrubText(value.stack)
    for (const [k, v] of Object.entries(value)) out[k] = isSecretKey(k) ? REDACTED : scrubValue(v, seen)
    if (value.cause !== undefined) out.cause = scrubValue(value.cause, seen)
    return out
  }
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, seen))
  if (value instanceof Map) return scrubValue(Object.fromEntries(value), seen)
  if (value instanceof Date) return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = isSecretKey(k) ? REDACTED : scrubValue(v, seen)
  return out
}

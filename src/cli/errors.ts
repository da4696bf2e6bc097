/**
 * The one place that decides how a failure ends a command: what is printed, with which next step,
 * and with which exit code. Domain errors carry a stable `code`, a message and (usually) their own
 * next step; this table maps each code to its exit code, and supplies the next step where the
 * error has none. Commands never choose exit codes themselves.
 */
import {visible} from '../util/visible.js'
import {ConfigError} from '../config/errors.js'
import {EXIT_AUTH, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE} from './exit-codes.js'

export interface ErrorOutput {
  /** Quiet under --json, as oclif's Command#logToStderr is. */
  logToStderr(message: string): void
}

interface Kind {
  exit: number
  /** The next step when the error carries none of its own. */
  next?: string
  /** Prefix for the message, where the error alone does not say what was being done. */
  doing?: string
}

const usage: Kind = {exit: EXIT_USAGE}
const auth: Kind = {exit: EXIT_AUTH}
const failure: Kind = {exit: EXIT_FAILURE}

/** Error code (or, for errors without one, class name or Node errno) → how the command ends. */
export const ERROR_KINDS: Readonly<Record<string, Kind>> = {
  // Command line
  USAGE: usage,
  UNKNOWN_COMMAND: usage,
  // Configuration and secrets (src/config)
  DBGATE_CONFIG_NOT_FOUND: usage,
  DBGATE_CONFIG_UNREADABLE: usage,
  DBGATE_CONFIG_INVALID: usage,
  DBGATE_CONFIG_UNTRUSTED: usage,
  DBGATE_SECRET_SOURCE_INVALID: usage,
  DBGATE_SECRET_ENV_UNSET: usage,
  DBGATE_SECRET_FILE_UNREADABLE: usage,
  DBGATE_SECRET_KEYCHAIN_UNAVAILABLE: usage,
  DBGATE_SECRET_KEYCHAIN_MISSING: usage,
  DBGATE_TARGET_NOT_FOUND: usage,
  IDENTITY_NOT_CONFIGURED: usage,
  // Identity (src/identity/errors.ts)
  LOGIN_ABORTED: {exit: EXIT_INTERRUPTED},
  LOGIN_DENIED: auth,
  LOGIN_EXPIRED: auth,
  LOGIN_REQUIRED: auth,
  IDP_ERROR: auth,
  TOKEN_EXPIRED: auth,
  TOKEN_NOT_YET_VALID: auth,
  TOKEN_INVALID_SIGNATURE: auth,
  TOKEN_WRONG_AUDIENCE: auth,
  TOKEN_WRONG_CLIENT: auth,
  TOKEN_WRONG_ISSUER: auth,
  TOKEN_MALFORMED: auth,
  TARGET_NOT_ALLOWED: auth,
  IDP_UNREACHABLE: failure,
  TOKEN_STORE_FAILED: failure,
  // Approvals (src/approvals/errors.ts)
  APPROVAL_BAD_INPUT: usage,
  APPROVAL_NOT_A_REVIEWER: auth,
  APPROVAL_SELF: auth,
  APPROVAL_NO_FRESH_TOKEN: auth,
  APPROVAL_NOT_FOUND: failure,
  APPROVAL_NOT_PENDING: failure,
  APPROVAL_ALREADY_DECIDED: failure,
  APPROVAL_UNTRUSTED_REQUEST: failure,
  // Central policy (src/policy/published.ts)
  POLICY_SIGNATURE_INVALID: {exit: EXIT_FAILURE, doing: 'refusing to open the tunnel', next: 'Ask the policy admins to publish the policy again (dbgate policy publish), or check who can write the bucket.'},
  POLICY_UNKNOWN_KEY: {exit: EXIT_FAILURE, doing: 'refusing to open the tunnel', next: 'Ask the policy admins to publish the policy again (dbgate policy publish), or check who can write the bucket.'},
  POLICY_MALFORMED: {exit: EXIT_FAILURE, doing: 'refusing to open the tunnel', next: 'Ask the policy admins to publish the policy again (dbgate policy publish), or check who can write the bucket.'},
  // Reaching a target's database (src/connect/target-errors.ts)
  TARGET_UNREACHABLE: failure,
  TARGET_AUTH_FAILED: failure,
  TARGET_REFUSED: failure,
  CATALOG_UNREADABLE: failure,
  RDS_IAM_NEEDS_TLS: usage,
  RDS_IAM_TOKEN_FAILED: failure,
  // The local listener (src/proxy/tunnel.ts)
  TunnelConfigError: usage,
  // The gateway (src/gateway/gateway.ts)
  GatewayConfigError: usage,
  GATEWAY_CLIENT_CONFIG: usage,
  GATEWAY_SIGN_IN_REFUSED: auth,
  GATEWAY_UNAVAILABLE: failure,
  EADDRINUSE: {exit: EXIT_USAGE, next: 'The port is taken: choose another with --port, or omit --port for a free one.'},
  // Bucket and spool
  BUCKET_BAD_URL: usage,
  // The idle memory release (src/runtime/idle-memory.ts)
  IDLE_MEMORY_SETTING: usage,
}

/** How a failure is shown and how the command exits. */
export interface Failure {
  code?: string
  message: string
  next?: string
  exit: number
  /** Fields added to the `--json` error object. */
  json?: Record<string, unknown>
  /** Printed as is, with no "Error:" and no code: a Ctrl-C, or configuration errors in compiler format. */
  quiet?: boolean
}

type Coded = Error & {code?: unknown; nextStep?: unknown; fix?: unknown; exitCode?: unknown; parse?: unknown; oclif?: {exit?: number}}

/** Strips oclif's framing from a flag or argument parse error: "Parsing --port \n\tExpected …\nSee more help with --help". */
function parseMessage(message: string): string {
  const flag = /^Parsing (--\S+)\s*\n\t([\s\S]*?)(?:\nSee more help with --help)?$/.exec(message)
  if (flag) return `${flag[1]}: ${flag[2]!.trim()}`
  return message.replace(/\nSee more help with --help$/, '').trim()
}

/** Everything a command needs to end on `err`, decided from its code alone. */
export function describeFailure(err: unknown, commandId?: string): Failure {
  if (!(err instanceof Error)) return {message: String(err), exit: EXIT_FAILURE}
  const e = err as Coded
  const help = commandId ? `Run \`dbgate ${commandId.replaceAll(':', ' ')} --help\` for its arguments and flags.` : 'Run `dbgate --help` for the commands.'
  // oclif's own argument and flag errors: usage errors, always.
  if (e.parse !== undefined || /^Parsing --/.test(e.message)) return {code: 'USAGE', message: parseMessage(e.message), next: help, exit: EXIT_USAGE}
  if (e.name === 'ClientCommandError' && typeof e.exitCode === 'number') return {message: e.message, exit: e.exitCode}
  const code = typeof e.code === 'string' ? e.code : undefined
  const kind = (code && ERROR_KINDS[code]) || ERROR_KINDS[e.name] || failure
  const next = typeof e.nextStep === 'string' ? e.nextStep : typeof e.fix === 'string' ? e.fix : kind.next
  const message = kind.doing ? `${kind.doing}: ${e.message}` : e.message
  if (code === 'LOGIN_ABORTED') return {code, message: 'Sign-in cancelled.', exit: kind.exit, quiet: true}
  if (err instanceof ConfigError) {
    return {code, message: err.format(), exit: kind.exit, quiet: true, json: {message: err.message, issues: err.issues, warnings: err.warnings, searched: err.searched}}
  }
  return {code, message, next, exit: kind.exit}
}

/**
 * The text a person sees on stderr: never wrapped, so commands and paths stay whole for copy and
 * paste. A failure quotes what others wrote (a database server's error, an identity provider's
 * error_description, a file's content), so it is shown with `visible`: an escape sequence in it
 * (a clipboard write, an erased line) is printed as text, not obeyed by the terminal.
 */
export function formatFailure(f: Failure, paint: {red(s: string): string} = {red: (s) => s}): string {
  const shown = (s: string) => visible(s, {lines: true})
  if (f.quiet) return shown(f.message)
  const lines = [`${paint.red('Error:')} ${shown(f.message)}`]
  if (f.code && f.code !== 'USAGE') lines.push(`Code: ${shown(f.code)}`)
  if (f.next) lines.push(`Try this: ${shown(f.next)}`)
  return lines.join('\n')
}

/** The `--json` form: `{"error": {code, message, exitCode, next?, …}}` on stdout. */
export function failureJson(f: Failure): {error: Record<string, unknown>} {
  return {error: {...(f.code ? {code: f.code} : {}), message: f.message, exitCode: f.exit, ...(f.next ? {next: f.next} : {}), ...f.json}}
}

/** A mistake on the command line that the flag parser cannot see (two flags that do not go together, a missing value). */
export class UsageError extends Error {
  override readonly name = 'UsageError'
  readonly code = 'USAGE'
  constructor(
    message: string,
    readonly nextStep?: string,
  ) {
    super(message)
  }
}

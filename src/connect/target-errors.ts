/**
 * A target's database could not be reached or refused dbgate: said in terms of the target, the
 * configuration key to check, and what to try, instead of a bare Node or PostgreSQL error. Works
 * on the tunnel's own upstream errors and on node-postgres's (masking's catalog connection).
 */
import type {TargetConfig} from '../config/types.js'
import {describeSecret} from '../config/secret-ref.js'
import {formatDuration} from '../util/duration.js'
import {isSocketDirectory, socketPath} from '../util/loopback.js'

export type TargetErrorCode = 'TARGET_UNREACHABLE' | 'TARGET_AUTH_FAILED' | 'TARGET_REFUSED'

export class TargetConnectError extends Error {
  override readonly name = 'TargetConnectError'
  constructor(
    readonly code: TargetErrorCode,
    message: string,
    readonly nextStep: string,
    options: {cause?: unknown} = {},
  ) {
    super(message, options)
  }
}

type AnyError = Error & {code?: unknown; errno?: unknown; sqlstate?: unknown; upstream?: {message?: string; code?: string}}

/** The Node errno behind a failure, whichever library reported it. */
function errnoOf(e: AnyError): string | undefined {
  if (typeof e.errno === 'string') return e.errno
  if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) return e.code
  if (/timeout expired|timed out/i.test(e.message)) return 'ETIMEDOUT'
  return undefined
}

/** The SQLSTATE the server answered with, if it answered. */
function sqlstateOf(e: AnyError): string | undefined {
  if (typeof e.sqlstate === 'string' && !e.sqlstate.startsWith('08')) return e.sqlstate
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && !/^E/.test(e.code)) return e.code
  return undefined
}

/** What the server said, without our own "upstream refused the connection:" framing. */
function serverMessage(e: AnyError): string {
  return e.upstream?.message ?? e.message.replace(/^upstream refused the connection: /, '')
}

export function describeTargetFailure(target: TargetConfig, error: unknown, configPath?: string): TargetConnectError {
  if (error instanceof TargetConnectError) return error
  const e = (error instanceof Error ? error : new Error(String(error))) as AnyError
  const key = (k: string) => `targets.${target.name}.${k}`
  const inFile = configPath ? ` in ${configPath}` : ''
  const where = isSocketDirectory(target.host) ? socketPath(target.host, target.port) : `${target.host}:${target.port}`
  const name = `target ${target.name}`
  switch (errnoOf(e)) {
    case 'ECONNREFUSED':
      return new TargetConnectError(
        'TARGET_UNREACHABLE',
        `Cannot reach the database of ${name} at ${where}${target.host.toLowerCase() === 'localhost' ? ' (dialled as 127.0.0.1)' : ''}: nothing accepts connections there (connection refused).`,
        `Check ${key('host')} and ${key('port')}${inFile}, and that the database is running${target.host.toLowerCase() === 'localhost' ? `; a database that listens on ::1 only needs ${key('host')}: "::1"` : ''}.`,
        {cause: error},
      )
    case 'ENOENT':
      return new TargetConnectError(
        'TARGET_UNREACHABLE',
        `Cannot reach the database of ${name}: there is no unix socket ${where}.`,
        `Check ${key('host')} (the socket's directory, as unix_socket_directories names it) and ${key('port')} (it names the socket file)${inFile}, and that the database is running.`,
        {cause: error},
      )
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new TargetConnectError('TARGET_UNREACHABLE', `Cannot reach the database of ${name}: the host name "${target.host}" does not resolve.`, `Check ${key('host')}${inFile} for a typo, and your DNS or VPN if the name is internal.`, {cause: error})
    case 'ETIMEDOUT':
      return new TargetConnectError(
        'TARGET_UNREACHABLE',
        `The database of ${name} at ${where} did not answer within ${formatDuration(target.connectTimeoutMs)}.`,
        `Check ${key('host')} and ${key('port')}${inFile}, and any firewall or VPN on the way; if the database is just slow to answer, raise ${key('connectTimeout')}.`,
        {cause: error},
      )
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new TargetConnectError('TARGET_UNREACHABLE', `Cannot reach the database of ${name} at ${where}: no route to that host.`, `Check ${key('host')}${inFile}, and your network or VPN.`, {cause: error})
  }
  const sqlstate = sqlstateOf(e)
  if (sqlstate === '28P01' || sqlstate === '28000' || /password authentication failed|password/i.test(serverMessage(e))) {
    const source = target.password
      ? ` (${describeSecret(target.password)})`
      : target.rdsIam
        ? ` (an RDS IAM token for ${target.rdsIam.region}: check that the database user has the rds_iam role and the AWS credentials may rds-db:connect as it)`
        : ''
    return new TargetConnectError(
      'TARGET_AUTH_FAILED',
      `The database of ${name} refused dbgate's login as "${target.user}": ${serverMessage(e)}.`,
      `This is the database password in ${key('password')}${source}${inFile}, which dbgate uses for everyone, not your own sign-in: fix the secret it names, or ${key('user')}.`,
      {cause: error},
    )
  }
  if (sqlstate === '3D000') {
    return new TargetConnectError('TARGET_REFUSED', `The database of ${name}: ${serverMessage(e)}.`, `Check ${key('database')}${inFile}.`, {cause: error})
  }
  return new TargetConnectError('TARGET_REFUSED', `The database of ${name} at ${where} could not be used: ${serverMessage(e)}.`, `Check the settings of ${name}${inFile} (host, port, database, user, tls).`, {cause: error})
}

/** Looking targets up and describing them, for commands that show or pick one. */
import {describeSecret} from './secret-ref.js'
import {closest} from './suggest.js'
import type {DbgateConfig, SecretKind, TargetConfig, TlsMode} from './types.js'

export const TARGET_NOT_FOUND = 'DBGATE_TARGET_NOT_FOUND'

export class TargetNotFoundError extends Error {
  override readonly name = 'TargetNotFoundError'
  readonly code = TARGET_NOT_FOUND
  readonly fix: string

  constructor(
    readonly target: string,
    readonly known: readonly string[],
  ) {
    const suggestion = closest(target, known)
    super(`unknown target "${target}"${suggestion ? `; did you mean "${suggestion}"?` : ''}`)
    this.fix = known.length ? `use one of: ${known.join(', ')} (see dbgate targets)` : 'add the target under "targets:" in dbgate.yaml'
    Error.captureStackTrace?.(this, TargetNotFoundError)
  }
}

export function getTarget(config: DbgateConfig, name: string): TargetConfig {
  const target = Object.hasOwn(config.targets, name) ? config.targets[name] : undefined
  if (!target) throw new TargetNotFoundError(name, Object.keys(config.targets))
  return target
}

/** What `dbgate targets` shows: everything needed to pick a target, and no secret. */
export interface TargetSummary {
  name: string
  host: string
  port: number
  database: string
  user: string
  tls: TlsMode
  /** `none` when the target has no password (trust or certificate authentication). */
  passwordKind: SecretKind | 'rds-iam' | 'none'
  /** `env:VAR`, `file:/path`, `keychain:NAME`, `inline` (never the inline value), `rdsIam:REGION[/PROFILE]` or null. */
  passwordSource: string | null
  /** Null when the target does not restrict by group. */
  allow: string[] | null
}

export function summarizeTargets(config: DbgateConfig): TargetSummary[] {
  return Object.values(config.targets).map((t) => ({
    name: t.name,
    host: t.host,
    port: t.port,
    database: t.database,
    user: t.user,
    tls: t.tls,
    passwordKind: t.rdsIam ? 'rds-iam' : (t.password?.kind ?? 'none'),
    passwordSource: t.rdsIam ? `rdsIam:${t.rdsIam.region}${t.rdsIam.profile !== undefined ? `/${t.rdsIam.profile}` : ''}` : t.password ? describeSecret(t.password) : null,
    allow: t.allow ?? null,
  }))
}

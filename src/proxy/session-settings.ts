/**
 * The settings the tunnel's analysis depends on, as the server holds them: read once before the
 * client's session starts (the preflight), then followed through every ParameterStatus. A value
 * the analysis does not hold under ends the session instead of letting it continue misread.
 */
import {ASSUMED_SETTINGS, assumedSettingViolated, type AssumedSetting} from '../policy/assumed-settings.js'
import type {ProxyHooks} from './seam.js'
import type {PgNoticeFields} from '../wire/fields.js'

/** SQLSTATE 55000, object_not_in_prerequisite_state: the session is not in a state dbgate can judge. */
const NOT_JUDGEABLE = '55000'

/** What a connection's session depends on: the tunnel's own settings (policy's list unless it was given another) and its hooks'. */
export function assumedSettingsOf(env: {assumedSettings?: readonly AssumedSetting[]; hooks: Pick<ProxyHooks, 'assumedSettings'>}): readonly AssumedSetting[] {
  const own = env.assumedSettings ?? ASSUMED_SETTINGS
  const extra = env.hooks.assumedSettings
  return extra && extra.length > 0 ? [...own, ...extra] : own
}

/** The query the preflight runs: each assumed setting's effective value and where it came from. */
export function preflightQuery(assumed: readonly AssumedSetting[]): string {
  const names = assumed.map((s) => `'${s.name.replace(/'/g, "''")}'`).join(', ')
  return `SELECT name, setting, source, sourcefile FROM pg_catalog.pg_settings WHERE name IN (${names})`
}

export interface PreflightRow {
  name: string | null
  setting: string | null
  source: string | null
  sourcefile: string | null
}

/** Checks the preflight's rows; the FATAL that refuses the session, or undefined when all is as assumed. */
export function checkPreflight(rows: readonly PreflightRow[], assumed: readonly AssumedSetting[], where: {database: string; user: string}): PgNoticeFields | undefined {
  for (const s of assumed) {
    const row = rows.find((r) => r.name === s.name)
    if (!row || row.setting === null) {
      return {
        severity: 'FATAL',
        code: NOT_JUDGEABLE,
        message: `dbgate: could not read the server setting ${s.name}, which the tunnel's analysis depends on`,
        hint: 'The tunnel checks it before every session; a server that hides it from this role cannot be used through dbgate.',
      }
    }
    if (!assumedSettingViolated(s.name, row.setting, [s])) continue
    const origin = originOf(row, s.name, where)
    return {
      severity: 'FATAL',
      code: NOT_JUDGEABLE,
      message: `dbgate: the server would run this session with ${s.name} = ${row.setting} (${origin.what}); the tunnel analyses statements under ${s.name} = ${s.values.join(' or ')}, so it refused the session`,
      detail: `Why it matters: ${s.why}.`,
      hint: origin.fix,
    }
  }
  return undefined
}

function originOf(row: PreflightRow, name: string, where: {database: string; user: string}): {what: string; fix: string} {
  const db = quoteIdent(where.database)
  const role = quoteIdent(where.user)
  switch (row.source) {
    case 'database':
      return {what: `set for the database with ALTER DATABASE ${db} SET`, fix: `Run ALTER DATABASE ${db} RESET ${name} (as its owner or a superuser).`}
    case 'user':
      return {what: `set for the role with ALTER ROLE ${role} SET`, fix: `Run ALTER ROLE ${role} RESET ${name}.`}
    case 'database user':
      return {what: `set for the role in this database with ALTER ROLE ${role} IN DATABASE ${db} SET`, fix: `Run ALTER ROLE ${role} IN DATABASE ${db} RESET ${name}.`}
    case 'configuration file':
      return {what: `from the server's configuration file${row.sourcefile ? ` ${row.sourcefile}` : ''}`, fix: `Change ${name} in the server's configuration and reload it, or override it for this role with ALTER ROLE ${role} SET ${name} = …`}
    case 'client':
      return {what: "from the connection's startup parameters", fix: `Remove ${name} from the client's connection settings (PGOPTIONS, PGCLIENTENCODING or the driver's options).`}
    case 'command line':
      return {what: "from the server's command line", fix: `Override it for this role with ALTER ROLE ${role} SET ${name} = …, or change how the server is started.`}
    case 'environment variable':
      return {what: "from an environment variable of the server's process", fix: `Override it for this role with ALTER ROLE ${role} SET ${name} = ….`}
    case 'default':
      return {what: "the server's built-in default", fix: `Set it for this role with ALTER ROLE ${role} SET ${name} = ….`}
    default:
      return {what: `source: ${row.source ?? 'unknown'}`, fix: `Find where ${name} is set (SELECT source, sourcefile FROM pg_settings WHERE name = '${name}') and change it.`}
  }
}

function quoteIdent(s: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(s) ? s : `"${s.replace(/"/g, '""')}"`
}

/**
 * A reported change (ParameterStatus) to a setting the analysis depends on. Since PostgreSQL 14 the
 * server reports changes just before ReadyForQuery, so this fires at the end of the message that
 * changed it, never later.
 */
export function checkReported(name: string, value: string, assumed: readonly AssumedSetting[]): PgNoticeFields | undefined {
  const s = assumedSettingViolated(name, value, assumed)
  if (!s) return undefined
  return {
    severity: 'FATAL',
    code: NOT_JUDGEABLE,
    message: `dbgate: the server reports ${s.name} = ${value} for this session; the tunnel analyses statements under ${s.name} = ${s.values.join(' or ')}, so it ended the session`,
    detail: `Why it matters: ${s.why}.`,
    hint: 'Reconnect; do not change this setting through the tunnel.',
  }
}

/**
 * Run-time settings that change how the server reads the statements after them, so that what
 * dbgate parsed is no longer what the server executes; and the startup parameters that would do
 * the same before the first statement.
 *
 * RESET and SET ... TO DEFAULT of these are allowed: they return to the value the session started
 * with, which dbgate already accepted (startup parameters are checked by `checkStartupParameters`,
 * and the proxy sees the server's ParameterStatus for the rest). Refusing them would break
 * `DISCARD ALL`, which connection pools send between clients.
 */
import type {OperationFlag} from './types.js'

export interface SettingVerdict {
  flag: OperationFlag
  reason: string
}

/** Encodings whose bytes the parser reads the same way the server will. */
function isUtf8(value: string): boolean {
  const v = value.toLowerCase().replace(/[-_\s]/g, '')
  return v === 'utf8' || v === 'unicode'
}

function isOn(value: string): boolean {
  return ['on', 'true', 'yes', '1', 't', 'y'].includes(value.trim().toLowerCase())
}

/**
 * Judges setting `name` to the constant `value` (undefined when it is not a constant we can read).
 * Returns why the change is dangerous, or undefined when it is an ordinary setting.
 */
export function dangerousSetting(name: string, value: string | undefined): SettingVerdict | undefined {
  switch (name.toLowerCase()) {
    case 'standard_conforming_strings':
      if (value !== undefined && isOn(value)) return undefined
      return {flag: 'dangerous_setting', reason: 'standard_conforming_strings off makes the server read backslashes in strings differently from dbgate'}
    case 'client_encoding':
      if (value !== undefined && isUtf8(value)) return undefined
      return {flag: 'dangerous_setting', reason: 'a client encoding other than UTF8 makes the server read statement bytes differently from dbgate'}
    case 'session_replication_role':
      return {flag: 'dangerous_setting', reason: 'session_replication_role disables triggers and foreign-key checks'}
    case 'local_preload_libraries':
    case 'session_preload_libraries':
    case 'dynamic_library_path':
      return {flag: 'dangerous_setting', reason: `${name} loads server-side code`}
    case 'role':
    case 'session_authorization':
      return {flag: 'role_change', reason: 'changing the role changes who the server thinks is acting'}
    case 'search_path':
      return {flag: 'search_path', reason: 'search_path changes which tables unqualified names resolve to'}
    default:
      return undefined
  }
}

export interface StartupProblem {
  parameter: string
  reason: string
}

/**
 * Checks the StartupMessage parameters a client sent. `options` is refused outright because it
 * smuggles arbitrary `-c name=value` settings past every other check; `replication` turns the
 * connection into a replication stream that speaks another protocol.
 */
export function checkStartupParameters(params: Record<string, string>): StartupProblem[] {
  const problems: StartupProblem[] = []
  for (const [key, value] of Object.entries(params)) {
    const name = key.toLowerCase()
    if (name === 'options') {
      problems.push({parameter: key, reason: 'command-line options in the startup packet are not allowed through dbgate'})
      continue
    }
    if (name === 'replication') {
      problems.push({parameter: key, reason: 'replication connections are not allowed through dbgate'})
      continue
    }
    const verdict = dangerousSetting(name, value)
    // search_path at startup is an ordinary client choice (drivers send it); it is only worth a
    // warning on a live session, not a refused connection.
    if (verdict && verdict.flag !== 'search_path') problems.push({parameter: key, reason: verdict.reason})
  }
  return problems
}

/**
 * Server settings the analysis is only right under. dbgate parses with libpg_query's defaults and
 * judges statements by what they mean with PostgreSQL's defaults; a session where one of these has
 * another value reads or runs the same text differently from what was judged.
 *
 * The tunnel reads each of them once per session, after it logs in upstream and before the client's
 * session starts (a value preset with ALTER ROLE/DATABASE … SET, in postgresql.conf or in the
 * startup packet is caught there), and watches the ones the server reports (ParameterStatus) for
 * the rest of the session. Preventing a session from changing them (SET, set_config, functions
 * that run SQL) is the statement policy's part; see settings.ts.
 */

export interface AssumedSetting {
  name: string
  /** Values under which the analysis holds, compared case-insensitively. */
  values: readonly string[]
  /** What goes wrong under another value, for the error that refuses the session. */
  why: string
}

export const ASSUMED_SETTINGS: readonly AssumedSetting[] = Object.freeze([
  {
    name: 'standard_conforming_strings',
    values: ['on'],
    why: "dbgate reads backslashes in '…' literals as ordinary characters; with it off the server reads \\' as a quote inside the literal, so what dbgate sees as one string can be several statements to the server",
  },
  {
    name: 'client_encoding',
    values: ['UTF8'],
    why: 'dbgate reads statement bytes as UTF-8; in another multibyte encoding the server splits the same bytes into different characters, quotes included',
  },
  {
    name: 'backslash_quote',
    values: ['safe_encoding', 'on'],
    why: "dbgate's parser accepts \\' in E'…' literals; with it off the server refuses texts dbgate judged, so the two stop agreeing on what a text is",
  },
  {
    name: 'transform_null_equals',
    values: ['off'],
    why: 'with it on, "expr = NULL" is true for NULLs, so a WHERE clause dbgate reads as matching no row can match every row',
  },
  {
    name: 'session_replication_role',
    values: ['origin'],
    why: 'replica or local disables ordinary triggers and foreign-key enforcement, so statements do more or less than dbgate judged',
  },
])

/** The assumed setting `name` when `value` is not one the analysis holds under. */
export function assumedSettingViolated(name: string, value: string, assumed: readonly AssumedSetting[] = ASSUMED_SETTINGS): AssumedSetting | undefined {
  const lower = name.toLowerCase()
  for (const s of assumed) {
    if (s.name !== lower) continue
    const v = value.trim().toLowerCase()
    return s.values.some((ok) => ok.toLowerCase() === v) ? undefined : s
  }
  return undefined
}

/**
 * The settings dbgate's own analysis depends on, and the values it assumes. One list, used
 * wherever these settings are checked:
 * - the tunnel reads each of them once per session, after it logs in upstream and before the
 *   client's session starts (a value preset with ALTER ROLE/DATABASE … SET, in postgresql.conf or
 *   in the startup packet is caught there), and watches the ones the server reports
 *   (ParameterStatus) for the rest of the session (src/proxy/session-settings.ts);
 * - statements and startup parameters that would change a `lexer` setting are refused before any
 *   rule runs (src/policy/settings.ts); the `meaning` ones are denied there by their own rule.
 *
 * `values` are spelled as the server reports them; `assumedValueMatches` accepts every spelling
 * the server would read as one of them.
 */
import {pathCreatesInTemp} from './search-path.js'

export interface AssumedSetting {
  /** Lower-case setting name. */
  name: string
  values: readonly string[]
  why: string
  /** `lexer`: how the server reads statement text; `meaning`: what a statement it read does. */
  kind: 'lexer' | 'meaning'
}

export const ASSUMED_SETTINGS: readonly AssumedSetting[] = [
  {
    name: 'standard_conforming_strings',
    values: ['on'],
    kind: 'lexer',
    why:
      "with it off, a backslash in an ordinary string literal escapes the next character: the server would read `'\\'; DROP …'` as a literal and a second statement where the parser reads one literal",
  },
  {
    name: 'client_encoding',
    values: ['UTF8'],
    kind: 'lexer',
    why:
      'the parser reads statement bytes as UTF-8; in client encodings such as SJIS, BIG5, GBK, GB18030 or UHC the second byte of a character can be a quote or a backslash, so the server would see quotes (and statements) the parser does not',
  },
  {
    name: 'backslash_quote',
    values: ['safe_encoding', 'on'],
    kind: 'lexer',
    why:
      "decides whether the lexer accepts \\' in escape strings; the parser accepts it (safe_encoding, which is the same as on in UTF-8), so a server that refused it would fail statements the parser let through as something else",
  },
  {
    name: 'transform_null_equals',
    values: ['off'],
    kind: 'meaning',
    why: 'with it on, "expr = NULL" is true for NULLs, so a WHERE clause dbgate reads as matching no row can match every row',
  },
  {
    name: 'session_replication_role',
    values: ['origin'],
    kind: 'meaning',
    why: 'replica or local disables ordinary triggers and foreign-key enforcement, so statements do more or less than dbgate judged',
  },
  {
    name: 'search_path',
    values: ['"$user", public', 'any path naming pg_catalog before pg_temp'],
    kind: 'meaning',
    why:
      "under a search_path that names pg_temp without pg_catalog before it, new objects may go to the session's temporary schema, where a type or table named like a built-in type (a domain `text` with a check calling any function) takes the built-in's place in every later statement, which dbgate judges as the built-in",
  },
]

/**
 * The language of the server's messages, which masking (not the parser) depends on: it finds the
 * values PostgreSQL echoes in errors and notices by the wording and quotes of the English texts.
 * Checked, like the settings above, where masking is on (src/pipeline/masking.ts).
 */
export const ENGLISH_MESSAGES: AssumedSetting = {
  name: 'lc_messages',
  values: ['C', 'POSIX', 'an English locale (en_US.UTF-8, en_GB, …)'],
  kind: 'meaning',
  why:
    'masking finds the values PostgreSQL echoes in errors and notices (`Key (email)=(…) already exists`, `Failing row contains (…)`, `invalid input syntax for type integer: "…"`) by the wording and quotes of its English messages; translated ones (`Schlüssel »(email)=(…)« existiert bereits`) would reach the client unmasked. An empty value takes the language of the server\'s environment, which dbgate cannot read',
}

const LEXER = new Map(ASSUMED_SETTINGS.filter((s) => s.kind === 'lexer').map((s) => [s.name, s]))
const BY_NAME = new Map(ASSUMED_SETTINGS.map((s) => [s.name, s]))

/** The lexer setting `name`, which statements may only set to an assumed value. */
export function assumedSetting(name: string): AssumedSetting | undefined {
  return LEXER.get(name.toLowerCase())
}

/** PostgreSQL's spellings of a boolean setting (parse_bool: any unique prefix of on/off/true/false/yes/no). */
export function boolSetting(value: string): boolean | undefined {
  const v = value.trim().toLowerCase()
  if (v === '') return undefined
  if (v === '1' || v === 'on' || (v.length >= 1 && 'true'.startsWith(v)) || (v.length >= 1 && 'yes'.startsWith(v))) return true
  if (v === '0' || v === 'off' || v === 'of' || (v.length >= 1 && 'false'.startsWith(v)) || (v.length >= 1 && 'no'.startsWith(v))) return false
  return undefined
}

/** How the server names an encoding: case, `-` and `_` do not matter, and UNICODE is UTF8. */
function encodingName(value: string): string {
  const v = value.trim().toLowerCase().replace(/[-_\s]/g, '')
  return v === 'unicode' ? 'utf8' : v
}

/** Whether `value` (as a client would write it, or as the server reports it) is one `s` assumes. */
function matches(s: AssumedSetting, value: string): boolean {
  switch (s.name) {
    case 'client_encoding':
      return s.values.some((v) => encodingName(v) === encodingName(value))
    case 'standard_conforming_strings':
    case 'transform_null_equals': {
      const b = boolSetting(value)
      return b !== undefined && s.values.some((v) => boolSetting(v) === b)
    }
    case 'backslash_quote': {
      // An enum that also takes the boolean spellings: on/true/yes/1 mean `on`.
      const v = value.trim().toLowerCase()
      const normal = v === 'safe_encoding' ? v : boolSetting(v) === true ? 'on' : boolSetting(v) === false ? 'off' : v
      return s.values.includes(normal)
    }
    case 'search_path':
      return !pathCreatesInTemp(value)
    case 'lc_messages':
      return englishMessages(value)
    default:
      return s.values.some((v) => v.toLowerCase() === value.trim().toLowerCase())
  }
}

/** Whether `value` is one of the values `name` is assumed to have. Names not in the list match anything. */
export function assumedValueMatches(name: string, value: string): boolean {
  const s = BY_NAME.get(name.toLowerCase())
  return !s || matches(s, value)
}

/** The assumed setting `name` (of `assumed`) when `value` is not one the analysis holds under. */
export function assumedSettingViolated(name: string, value: string, assumed: readonly AssumedSetting[] = ASSUMED_SETTINGS): AssumedSetting | undefined {
  const s = assumed.find((x) => x.name === name.toLowerCase())
  return s && !matches(s, value) ? s : undefined
}

/** Whether the server writes its messages in English under `lc_messages = value`: C, POSIX, or an English locale (Windows spells it `English_…`). */
export function englishMessages(value: string): boolean {
  return /^(c|posix|en|english)([._@-].*)?$/i.test(value.trim())
}

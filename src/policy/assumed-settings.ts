/**
 * The settings dbgate's own analysis depends on, and the values it assumes. The parser reads every
 * statement the way a server with these values would; a session whose server reads text any other
 * way is not one dbgate can judge. One list, used wherever these settings are checked: SET, RESET
 * and set_config() in statements (src/policy/settings.ts), startup parameters, and what the server
 * reports in ParameterStatus.
 *
 * `values` are spelled as the server reports them; `assumedValueMatches` accepts every spelling
 * the server would read as one of them.
 */
export interface AssumedSetting {
  /** Lower-case setting name. */
  name: string
  values: readonly string[]
  why: string
}

export const ASSUMED_SETTINGS: readonly AssumedSetting[] = [
  {
    name: 'standard_conforming_strings',
    values: ['on'],
    why:
      "with it off, a backslash in an ordinary string literal escapes the next character: the server would read `'\\'; DROP …'` as a literal and a second statement where the parser reads one literal",
  },
  {
    name: 'client_encoding',
    values: ['UTF8'],
    why:
      'the parser reads statement bytes as UTF-8; in client encodings such as SJIS, BIG5, GBK, GB18030 or UHC the second byte of a character can be a quote or a backslash, so the server would see quotes (and statements) the parser does not',
  },
  {
    name: 'backslash_quote',
    values: ['safe_encoding', 'on'],
    why:
      "decides whether the lexer accepts \\' in escape strings; the parser accepts it (safe_encoding, which is the same as on in UTF-8), so a server that refused it would fail statements the parser let through as something else",
  },
]

const BY_NAME = new Map(ASSUMED_SETTINGS.map((s) => [s.name, s]))

export function assumedSetting(name: string): AssumedSetting | undefined {
  return BY_NAME.get(name.toLowerCase())
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

/**
 * Whether `value` (as a client would write it, or as ParameterStatus reports it) is one of the
 * values `name` is assumed to have. Names not in the list match anything.
 */
export function assumedValueMatches(name: string, value: string): boolean {
  const s = assumedSetting(name)
  if (!s) return true
  switch (s.name) {
    case 'client_encoding':
      return s.values.some((v) => encodingName(v) === encodingName(value))
    case 'standard_conforming_strings': {
      const b = boolSetting(value)
      return b !== undefined && s.values.some((v) => boolSetting(v) === b)
    }
    case 'backslash_quote': {
      // An enum that also takes the boolean spellings: on/true/yes/1 mean `on`.
      const v = value.trim().toLowerCase()
      const normal = v === 'safe_encoding' ? v : boolSetting(v) === true ? 'on' : boolSetting(v) === false ? 'off' : v
      return s.values.includes(normal)
    }
    default:
      return s.values.some((v) => v.toLowerCase() === value.trim().toLowerCase())
  }
}

/**
 * Names as the server keys them, in the database's encoding. PostgreSQL converts what the client
 * sends into the database's encoding before it reads it; it keys prepared statements, portals and
 * cursors by their first 63 bytes there (NAMEDATALEN), cuts an SQL identifier longer than that at a
 * character boundary of that encoding (truncate_identifier), and in a single-byte encoding folds the
 * case of unquoted letters outside ASCII by the server's locale (downcase_identifier). The tunnel
 * reads names as UTF-8 (its parser cuts identifiers at 63 bytes of UTF-8), which is what the server
 * does only in a UTF8 database.
 *
 * In any other encoding a name outside ASCII may be one name to the server and two to the tunnel,
 * or the other way round. In a LATIN1 database `a…aè` and `a…aé` (62 a's) are 63 bytes each, two
 * names, while the parser cut both to the 62 a's: `PREPARE a…aè AS SELECT full_name …` and then
 * `PREPARE a…aé AS SELECT label FROM pub` left the tunnel holding the second text under the one
 * name it saw, and `EXECUTE a…aè` ran the first, judged and masked as the second (names in clear).
 * In EUC_TW a character the tunnel counts as 3 bytes may take 4, so two protocol names of 49 bytes
 * that differ only at the end are one name on the server. ASCII is the same bytes in every encoding
 * PostgreSQL runs a database in, cut and folded alike, so in such a database names must be ASCII,
 * and SQL names short enough that the parser cannot have cut them.
 */
import type {PgNoticeFields} from '../wire/fields.js'
import type {TextShape} from './sql-effects.js'

/** The encoding in which the server keys names as the tunnel reads them (as ParameterStatus reports it). */
const READ_AS_SERVER = 'UTF8'

/**
 * The database's encoding when names outside ASCII may be keyed otherwise than the tunnel reads
 * them: any but UTF8, an unreported one included. Undefined when names are read as the server does.
 */
export function foreignNameEncoding(reported: string | undefined): string | undefined {
  if (reported === READ_AS_SERVER) return undefined
  return reported ?? 'an encoding the server did not report'
}

function ascii(name: string): boolean {
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) > 0x7f) return false
  return true
}

/**
 * The parser hands on an identifier longer than 63 bytes cut at a character boundary, so a name of
 * 60 bytes or more (63, less the bytes of a character that did not fit) may be the start of a longer
 * one, whose rest, outside ASCII, the server may have kept: `a…aé` reads as the 62 a's.
 */
const MAY_BE_CUT = 60

/** Whether an SQL name the parser read is keyed by the server as the tunnel reads it, in such a database. */
function sqlNameFollowable(name: string): boolean {
  return name.length < MAY_BE_CUT && ascii(name)
}

/**
 * The first name a text defines, drops or reads (PREPARE, EXECUTE, DECLARE, FETCH, CLOSE, …) that
 * the server may key otherwise in such a database: outside ASCII, or long enough to be cut.
 */
export function firstForeignName(shape: TextShape): string | undefined {
  for (const r of shape.refs) if (!sqlNameFollowable(r.name)) return r.name
  for (const s of shape.statements ?? []) {
    const e = s.effect
    if (e && 'name' in e && !sqlNameFollowable(e.name)) return e.name
  }
  return undefined
}

/** Whether a protocol message's statement or portal name is keyed by the server as the tunnel reads it. */
export function protocolNameFollowable(name: string, foreignEncoding: string | undefined): boolean {
  return foreignEncoding === undefined || ascii(name)
}

/** The refusal of a text that names a prepared statement or cursor outside ASCII in such a database. */
export function foreignNameRefusal(name: string, encoding: string): PgNoticeFields {
  return {
    severity: 'ERROR',
    code: '0A000',
    message: `dbgate: the name "${name}" may hold characters outside ASCII, which the tunnel cannot follow in this database: its encoding is ${encoding}, and PostgreSQL cuts and compares such names by their bytes in ${encoding}, not as the tunnel reads them`,
    hint: `Name prepared statements and cursors with ASCII letters, digits and underscores, in fewer than ${MAY_BE_CUT} characters.`,
  }
}

/** Why a protocol message's name is refused in such a database (the connection is closed, as for a name over 63 bytes). */
export function foreignProtocolName(kind: 'prepared statement' | 'portal', name: string, encoding: string): string {
  return `a ${kind} name with characters outside ASCII ("${name.slice(0, 20)}"): this database's encoding is ${encoding}, in which PostgreSQL keys such names by other bytes than the tunnel reads; use an ASCII name`
}

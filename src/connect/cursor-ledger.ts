import type {StatementDetails} from '../audit/events.js'
import type {Analysis} from '../policy/types.js'
import type {StatementEvent} from '../proxy/seam.js'

/** What the recording knows of a declared cursor: the class and tables of the text that declared it. */
interface DeclaredCursor {
  class?: string
  tables: readonly string[]
}

/** Cursors kept per session; past it, the oldest is forgotten (its FETCHes are recorded as before). */
const MAX_CURSORS = 256

/**
 * The classes that change what a session's statements leave behind (data, schema, privileges,
 * the server), by how much, most first; 0 for those that change nothing. What auditors count as
 * changes (`dbgate report`'s write and ddl statements, `sessions search --class write`) must not
 * miss one because another statement of the text, or another operation of the statement, came first.
 */
export function changeWeight(cls: string | undefined): number {
  return cls === undefined ? 0 : (CHANGE_WEIGHT[cls] ?? 0)
}
const CHANGE_WEIGHT: Partial<Record<string, number>> = {privilege: 5, admin: 4, ddl: 3, opaque: 2, write: 1}

/**
 * The cursors each recorded session declared, so that a FETCH or MOVE is recorded with what it
 * runs. The server runs a cursor's query as its rows are fetched: `declare c cursor for select
 * wipe_one(id) from items` deletes at each `fetch 2 from c`, a text that names no table, and was
 * recorded as a read of nothing, so `sessions search --table items` and the report's changes did
 * not find the statements that deleted. A FETCH or MOVE now carries the tables of the DECLARE and,
 * where it changes something, its class.
 */
export class CursorLedger {
  private readonly bySession = new Map<string, Map<string, DeclaredCursor>>()

  /** Notes what `event`'s text declares and closes, and adds what its FETCHes and MOVEs run to `details`. */
  apply(event: StatementEvent, analysis: Analysis, details: StatementDetails): void {
    for (const st of analysis.statements) {
      for (const op of st.operations) {
        if (op.command === 'fetch' || op.command === 'move') {
          const declared = op.cursor === undefined ? undefined : this.bySession.get(event.sessionId)?.get(op.cursor)
          if (declared) addDeclared(details, declared)
        } else if (op.command === 'declare' && op.cursor !== undefined) {
          // Only a DECLARE the server acknowledged made a cursor (a failed one leaves the old name free).
          if (event.commandTags.includes('DECLARE CURSOR')) this.declare(event.sessionId, op.cursor, {class: details.class, tables: details.tables ?? []})
        } else if (op.command === 'close') {
          const cursors = this.bySession.get(event.sessionId)
          if (op.cursor === undefined) cursors?.clear()
          else cursors?.delete(op.cursor)
        }
      }
    }
  }

  /** Forgets a session that ended. */
  end(sessionId: string): void {
    this.bySession.delete(sessionId)
  }

  private declare(sessionId: string, name: string, cursor: DeclaredCursor): void {
    let cursors = this.bySession.get(sessionId)
    if (!cursors) this.bySession.set(sessionId, (cursors = new Map()))
    cursors.delete(name)
    cursors.set(name, cursor)
    if (cursors.size > MAX_CURSORS) cursors.delete(cursors.keys().next().value!)
  }
}

function addDeclared(details: StatementDetails, declared: DeclaredCursor): void {
  const tables = details.tables ?? []
  const missing = declared.tables.filter((t) => !tables.includes(t))
  // The details' table list may be shared by every event of a text's shape: a new one is made.
  if (missing.length > 0) details.tables = [...tables, ...missing]
  if (changeWeight(declared.class) > changeWeight(details.class)) details.class = declared.class
}

/**
 * Calls judged while the session's own change to the catalog is not committed yet.
 *
 * The catalog is read on a connection of the tunnel's own, which sees only committed state. After
 * DDL earlier in the same text, or earlier in a transaction still open (the session is "unsettled":
 * statement-guard.ts), a call may run what that connection cannot see: a function replaced or
 * renamed, a new overload or operator that wins over a built-in (`create function
 * public.length(int)` then `length(1)`), a new cast or domain check, a view, rule or row security
 * policy on a relation, a body that calls any of these. So every call those statements make counts
 * as unknown there, whatever the committed catalog says it resolves to, built-ins included: any
 * name can be shadowed by a better match in another schema. The committed answer is still judged
 * too (a call denied there stays denied).
 *
 * How wide the change is decides which calls (`CallChange`): DDL that only adds or empties storage
 * (TRUNCATE, CREATE INDEX, a sequence) or drops objects changes none (the committed catalog's
 * answer is the worst of every candidate, so removing one never makes a call worse); a new table
 * brings a row type, so casts count, and so do calls that reach a user's function, whose body may
 * cast to the new type by name; a new table whose writes run code it does not show (`MAKES_TABLE`)
 * counts what every write runs as well; anything else (and any statement dbgate cannot read) counts
 * for every call. A cursor's FETCH or MOVE runs the cursor's query, which counts the same way;
 * and a cursor WITH HOLD runs its query at COMMIT, so a change made after declaring one is held.
 */
import {withOperations} from './analyze.js'
import {isBuiltinType} from './builtins.js'
import type {CatalogCall, Operation, StatementAnalysis} from './types.js'
import {CATALOG_KEEPING} from './views.js'

/**
 * What an uncommitted change may have changed for calls: nothing; casts and user functions (new
 * row types); those and what any write runs (a new table whose writes run code the statement does
 * not show); or any call.
 */
export const CallChange = {None: 0, RowTypes: 1, WriteCode: 2, Code: 3} as const
export type CallChange = (typeof CallChange)[keyof typeof CallChange]

/** DDL that changes no function, operator, cast, type, view, rule or policy (or only drops them). */
const CHANGES_NO_CALL: ReadonlySet<string> = new Set(['truncate', 'create_index', 'create_sequence', 'alter_sequence', 'comment', 'security_label', 'create_statistics', 'alter_statistics', 'drop', 'drop_owned'])
/**
 * DDL that makes a new table: a new row type (a cast to it converts into its columns' types,
 * running their domains' checks), and, unless it defines every column itself of built-in types
 * (relation-keeping.ts), code its writes run that the statement does not show: `LIKE … INCLUDING`
 * copies another table's defaults, checks and index expressions, INHERITS and PARTITION OF take a
 * parent's, a column of a domain type runs its check, and CREATE TABLE … AS takes its column
 * types from the query. The catalog connection cannot read that code until the table is
 * committed, so until then every write's code counts as unknown (a write names no relation the
 * committed catalog can tell apart from the new one: `w:name` finds nothing for either).
 */
const MAKES_TABLE: ReadonlySet<string> = new Set(['create_table', 'create_table_as'])
/**
 * Transaction control that commits a change the catalog connection could not see before it: a
 * prepared transaction's DDL (made by any session) becomes visible only when COMMIT PREPARED runs.
 */
const COMMITS_OTHERS_CHANGE: ReadonlySet<string> = new Set(['commit_prepared'])
/** Privilege statements that add code a relation runs: row security policies' expressions. */
const ADDS_POLICY_CODE: ReadonlySet<string> = new Set(['create_policy', 'alter_policy'])

/**
 * A write to a system catalog (a superuser's `UPDATE pg_proc SET prosrc = …`) is DDL by another
 * name, wherever it runs: in the client's statement, or in a function body it calls (catalog.ts).
 */
export function writesCatalog(o: Operation): boolean {
  return o.tables.some((t) => t.access !== 'read' && (t.schema === 'pg_catalog' || (t.schema === undefined && t.name.startsWith('pg_'))))
}

/** What one operation, let through, may change for the calls after it (a function body's too: catalog.ts). */
export function operationCallChange(o: Operation): CallChange {
  // A call held because of a change already counted changes nothing more.
  if (o.flags.includes('unsettled_catalog')) return CallChange.None
  if (ADDS_POLICY_CODE.has(o.command) || (o.class === 'write' && writesCatalog(o)) || COMMITS_OTHERS_CHANGE.has(o.command) || o.flags.includes('changes_catalog')) return CallChange.Code
  if (CATALOG_KEEPING.has(o.class)) return CallChange.None
  if (CHANGES_NO_CALL.has(o.command)) return CallChange.None
  if (MAKES_TABLE.has(o.command)) return o.command === 'create_table' && o.keepsRelations === true ? CallChange.RowTypes : CallChange.WriteCode
  // An ALTER TABLE of columns, constraints and storage (relation-keeping.ts) changes a row type, as a new table makes one.
  return o.command === 'alter_table' && o.keepsRelations === true ? CallChange.RowTypes : CallChange.Code
}

/** What `stmt`, let through, may change for the calls after it until it is committed. */
export function callChange(stmt: StatementAnalysis): CallChange {
  let worst: CallChange = CallChange.None
  for (const o of stmt.operations) {
    const c = operationCallChange(o)
    if (c > worst) worst = c
  }
  return worst
}

const AFTER_COMMIT = 'send it after the COMMIT (or in a text of its own once the change is committed), when dbgate reads the committed catalog again'

function written(call: CatalogCall): string {
  return call.schema ? `${call.schema}.${call.name}` : call.name
}

function describe(call: CatalogCall): string {
  switch (call.kind) {
    case 'function':
      return `the function ${written(call)}`
    case 'attribute':
      return `${written(call)} (attribute notation calls a function of that name)`
    case 'operator':
      return `the operator ${written(call)}`
    case 'cast':
      return call.name.startsWith('#') ? `the conversion of a parameter to the type with OID ${call.name.slice(1)}` : `the cast to ${written(call)}`
    case 'relation':
      return `the views, rules and row security policies of ${written(call)}`
    case 'trigger':
      return `the triggers a write to ${written(call)} fires`
  }
}

function unsettledOperation(what: string): Operation {
  return {
    class: 'opaque',
    command: 'function',
    tables: [],
    // No function names: a target rule that allows a function by name judged it by the committed catalog.
    functions: [],
    flags: ['unsettled_catalog'],
    detail: `${what} may run code this session changed in a transaction that is not committed yet (or earlier in the same text), which dbgate cannot read before the change is committed; ${AFTER_COMMIT}`,
  }
}

/**
 * A relation the operation only changes (ALTER VIEW, CREATE TABLE … LIKE, a foreign key's
 * target): DDL on a relation runs none of its views' or rules' code, nor its policies.
 */
function onlyChanged(call: CatalogCall, o: Operation): boolean {
  if (call.kind !== 'relation') return false
  const named = o.tables.filter((t) => t.name === call.name && t.schema === call.schema)
  return named.length > 0 && named.every((t) => t.access === 'ddl')
}

/**
 * A cast that may be to a row type made since the catalog was read. Only a type the parser itself
 * qualifies (`int`, `varchar`, `boolean`: SQL's own type names) is surely the built-in: a table
 * named `date` is what `date` means to a search_path that puts its schema first.
 */
function castToNewType(call: CatalogCall): boolean {
  return call.kind === 'cast' && !(call.schema === 'pg_catalog' && isBuiltinType(call.name))
}

const CURSOR_COMMANDS: ReadonlySet<string> = new Set(['fetch', 'move'])

/**
 * Whether a call may reach a user's function (directly, or through an operator, aggregate, view,
 * rule, policy or domain check): its body names types at run time (`$1::foo` in PL/pgSQL or a SQL
 * body without BEGIN ATOMIC), and a new table's row type can be what such a name now means.
 * Given by the caller from the committed catalog; without one, every call may.
 */
export type ReachesUserCode = (call: CatalogCall) => boolean

const ANY_CALL: ReachesUserCode = () => true

function distrustStatement(stmt: StatementAnalysis, change: CallChange, userCode: ReachesUserCode): StatementAnalysis {
  const known = new Set(stmt.operations.filter((o) => o.flags.includes('unsettled_catalog')).map((o) => o.detail))
  const added: Operation[] = []
  const add = (what: string) => {
    const op = unsettledOperation(what)
    if (known.has(op.detail)) return
    known.add(op.detail)
    added.push(op)
  }
  for (const o of stmt.operations) {
    for (const call of o.calls ?? []) {
      const changed = change === CallChange.Code || castToNewType(call) || userCode(call) || (change === CallChange.WriteCode && call.kind === 'trigger')
      if (changed && !onlyChanged(call, o)) add(describe(call))
    }
    // Any change that counts, a new row type included: the cursor's query may call a user's function,
    // whose body may name the new type (what it calls is not in this statement to tell).
    if (CURSOR_COMMANDS.has(o.command) && o.class === 'read') add(`${o.command.toUpperCase()} runs its cursor's query, which`)
  }
  return added.length === 0 ? stmt : withOperations(stmt, [...stmt.operations, ...added])
}

/** Whether `stmt` declares a cursor WITH HOLD whose query calls anything: it runs that query to its end at COMMIT. */
export function declaresHoldCursor(stmt: StatementAnalysis): boolean {
  return stmt.operations.some((o) => o.command === 'declare' && o.object === 'hold_cursor' && (o.calls?.length ?? 0) > 0)
}

/** A change made while a WITH HOLD cursor is open in the transaction: the COMMIT would run its query with what the change made. */
function changeUnderHoldCursor(stmt: StatementAnalysis): StatementAnalysis {
  const op: Operation = {
    ...unsettledOperation('a cursor declared WITH HOLD earlier in this transaction'),
    detail:
      'a cursor declared WITH HOLD earlier in this transaction runs its query to the end when the transaction commits, with the functions, operators, casts and views this change makes, which dbgate cannot read before the change is committed; make the change in a transaction of its own, or before declaring the cursor',
  }
  return withOperations(stmt, [...stmt.operations, op])
}

/**
 * The statements with an operation (flag `unsettled_catalog`, class `opaque`) for every call the
 * change before them may have changed: `session`'s own uncommitted change, and those of the
 * statements earlier in the text. The calls themselves stay, to be judged by the committed
 * catalog as well. A change to what calls run while a cursor WITH HOLD is open in the transaction
 * (`holdCursor`, or declared earlier in the text) counts the same way. `statements` itself when
 * there is nothing to distrust.
 */
export function distrustCatalogCalls(
  statements: readonly StatementAnalysis[],
  session: CallChange,
  holdCursor = false,
  userCode: ReachesUserCode = ANY_CALL,
  /** What a statement changes, its calls resolved (a volatile function whose body runs DDL): `callChange` of the resolved statement. */
  changeOf: (stmt: StatementAnalysis) => CallChange = callChange,
): StatementAnalysis[] {
  // The common case, a settled session's text of one statement: nothing before it changed anything.
  if (session === CallChange.None && !holdCursor && statements.length < 2) return statements as StatementAnalysis[]
  let change = session
  let hold = holdCursor
  let out: StatementAnalysis[] | undefined
  for (let i = 0; i < statements.length; i++) {
    const s = statements[i]!
    const own = changeOf(s)
    let r = change === CallChange.None ? s : distrustStatement(s, change, userCode)
    // A new row type too: the cursor's query may call a user's function whose body names it.
    if (hold && own !== CallChange.None) r = changeUnderHoldCursor(r)
    if (r !== s) out ??= statements.slice(0, i)
    out?.push(r)
    if (own > change) change = own
    if (declaresHoldCursor(s)) hold = true
  }
  return out ?? (statements as StatementAnalysis[])
}

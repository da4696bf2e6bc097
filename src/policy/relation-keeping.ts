/**
 * DDL that leaves every relation that exists as it was: what is behind it (views, rules, children,
 * partitions, row security), what writing it runs (triggers, and the code of tables a cascade
 * writes), and which relation a name already in use means. Such a statement needs no distrust of
 * the relations a later statement of the same uncommitted transaction names (views.ts): a
 * migration that creates a table and fills it, or adds a column and sets it, is judged by the
 * committed catalog, which is still right for every other relation.
 *
 * An allow-list, read from the parse tree: anything not named here, or named with a clause that
 * could reach another relation or run code the statement does not show, counts as a change to
 * what is behind relations, as all DDL did before.
 */
import {isBuiltinType} from './builtins.js'
import {isObj, list, names, unwrap, type Obj} from '../sql/tree.js'

/** Statements that make an object of their own beside the relations, or describe one (an index: see `indexKeeps`). */
const KEEPING_STATEMENTS: ReadonlySet<string> = new Set(['CreateSeqStmt', 'AlterSeqStmt', 'CommentStmt', 'CreateStatsStmt', 'AlterStatsStmt'])

/** The built-in index access methods, whose operator classes for built-in types are built in too. */
const BUILTIN_INDEX_METHODS: ReadonlySet<unknown> = new Set([undefined, 'btree', 'hash', 'gist', 'gin', 'spgist', 'brin'])

/**
 * ALTER TABLE actions on columns, constraints, indexes and storage. Left out: triggers and rules
 * (ENABLE/DISABLE), inheritance and partitions (INHERIT, ATTACH, DETACH, OF), row security, the
 * owner (whether row security applies), storage parameters (on a view, `security_barrier`,
 * `check_option`, `security_invoker`), a foreign table's options (where its rows come from), the
 * access method (its handler's code runs on every write), ALTER CONSTRAINT (which may enforce a
 * foreign key that cascades), and any action this list does not know.
 */
const KEEPING_ALTER_TABLE: ReadonlySet<string> = new Set([
  'AT_AddColumn',
  'AT_ColumnDefault',
  'AT_CookedColumnDefault',
  'AT_DropNotNull',
  'AT_SetNotNull',
  'AT_SetExpression',
  'AT_DropExpression',
  'AT_CheckNotNull',
  'AT_SetStatistics',
  'AT_SetOptions',
  'AT_ResetOptions',
  'AT_SetStorage',
  'AT_SetCompression',
  'AT_DropColumn',
  'AT_AddConstraint',
  'AT_ReAddConstraint',
  'AT_ValidateConstraint',
  'AT_AddIndexConstraint',
  'AT_DropConstraint',
  'AT_AlterColumnType',
  'AT_ClusterOn',
  'AT_DropCluster',
  'AT_SetLogged',
  'AT_SetUnLogged',
  'AT_SetTableSpace',
  'AT_ReplicaIdentity',
  'AT_AddIdentity',
  'AT_SetIdentity',
  'AT_DropIdentity',
])

/** The serial pseudo-types: an integer column, a sequence and a default calling nextval. */
const SERIAL_TYPES: ReadonlySet<string> = new Set(['serial', 'serial2', 'serial4', 'serial8', 'smallserial', 'bigserial'])

/** Foreign key actions that write nothing: NO ACTION and RESTRICT only check. */
const CHECKING_ACTIONS: ReadonlySet<unknown> = new Set([undefined, 'a', 'r'])

/**
 * Whether a column's type is a built-in one, whose values run no user code when written (a
 * domain's check may call any function). A name the parser qualified with pg_catalog is one; so
 * is a one-word built-in name, which only the session's temporary schema could shadow, and no
 * statement through dbgate may put such a name there (type-shadowing.ts).
 */
export function builtinColumnType(typeName: unknown): boolean {
  if (!isObj(typeName) || typeName.pct_type === true) return false
  const n = names(typeName.names)
  if (n.length === 2) return n[0] === 'pg_catalog' && isBuiltinType(n[1]!)
  return n.length === 1 && (isBuiltinType(n[0]!) || SERIAL_TYPES.has(n[0]!))
}

/**
 * A constraint that runs only what the statement shows and writes no other table: not an
 * exclusion constraint (its operators run on every write), nor a foreign key that cascades, sets
 * null or sets a default in an existing table (which runs that table's triggers).
 */
function constraintKeeps(c: unknown, cascadesAllowed: boolean): boolean {
  const u = unwrap(c)
  if (!u || u[0] !== 'Constraint') return false
  const body = u[1]
  if (body.contype === 'CONSTR_EXCLUSION') return false
  if (body.contype !== 'CONSTR_FOREIGN' || cascadesAllowed) return true
  return CHECKING_ACTIONS.has(body.fk_upd_action) && CHECKING_ACTIONS.has(body.fk_del_action)
}

/**
 * CREATE INDEX with a built-in access method and no operator class named: a user's operator class
 * (or method) runs its functions on every write to the table. Expressions and a WHERE are
 * judged as the calls they are.
 */
function indexKeeps(body: Obj): boolean {
  if (!BUILTIN_INDEX_METHODS.has(body.accessMethod)) return false
  return list(body.indexParams).every((p) => {
    const u = unwrap(p)
    return u?.[0] === 'IndexElem' && list(u[1].opclass).length === 0
  })
}

/**
 * A column definition of a built-in type whose constraints keep relations. `cascadesAllowed`: the
 * table is new, so what a cascade writes into it runs only what this statement defines.
 */
function columnKeeps(def: unknown, cascadesAllowed: boolean): boolean {
  const u = unwrap(def)
  if (!u || u[0] !== 'ColumnDef') return false
  const col = u[1]
  return builtinColumnType(col.typeName) && list(col.constraints).every((c) => constraintKeeps(c, cascadesAllowed))
}

/**
 * CREATE TABLE: a table under no other (no INHERITS, no PARTITION OF, no OF type), of columns it
 * defines itself (LIKE copies another table's column types, which may be domains, and with
 * INCLUDING its defaults and checks: code the statement does not show), stored as heap.
 */
function createTableKeeps(body: Obj): boolean {
  if (list(body.inhRelations).length > 0 || body.partbound !== undefined || body.ofTypename !== undefined) return false
  // A table access method other than the built-in heap runs its handler's code on every write.
  if (body.accessMethod !== undefined && body.accessMethod !== 'heap') return false
  return list(body.tableElts).every((el) => {
    const u = unwrap(el)
    if (u?.[0] === 'ColumnDef') return columnKeeps(el, true)
    return u?.[0] === 'Constraint' && constraintKeeps(el, true)
  })
}

/** ALTER TABLE (of a table, not a view or foreign table by another name) with only the actions above, on built-in types. */
function alterTableKeeps(body: Obj): boolean {
  if (body.objtype !== 'OBJECT_TABLE') return false
  const cmds = list(body.cmds)
  return (
    cmds.length > 0 &&
    cmds.every((c) => {
      const u = unwrap(c)
      if (!u || u[0] !== 'AlterTableCmd') return false
      const cmd = u[1]
      if (typeof cmd.subtype !== 'string' || !KEEPING_ALTER_TABLE.has(cmd.subtype)) return false
      // CASCADE drops what depends on the column or constraint too: views, policies, triggers.
      if (cmd.behavior === 'DROP_CASCADE') return false
      if (cmd.subtype === 'AT_AddColumn') return columnKeeps(cmd.def, false)
      if (cmd.subtype === 'AT_AlterColumnType') {
        const def = unwrap(cmd.def)
        return def?.[0] === 'ColumnDef' && builtinColumnType(def[1].typeName)
      }
      if (cmd.subtype === 'AT_AddConstraint' || cmd.subtype === 'AT_ReAddConstraint') return constraintKeeps(cmd.def, false)
      return true
    })
  )
}

/** Whether the statement (a parse tree node's type and body) leaves every existing relation as it was. */
export function keepsRelations(type: string, body: Obj): boolean {
  if (KEEPING_STATEMENTS.has(type)) return true
  if (type === 'CreateStmt') return createTableKeeps(body)
  if (type === 'AlterTableStmt') return alterTableKeeps(body)
  if (type === 'IndexStmt') return indexKeeps(body)
  // (CREATE TABLE … AS takes its column types from the query: a domain's check would run on every later write.)
  return false
}

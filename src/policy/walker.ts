/**
 * Turns one parsed statement into the operations it performs. The whole tree is walked, not just
 * the top node: a DELETE hidden in a CTE, a MERGE action, a function call in a subquery, a DML
 * inside EXPLAIN ANALYZE all surface as operations of their own.
 */
import {builtinColumnType, keepsRelations} from './relation-keeping.js'
import {FOREIGN_NAMES, shadowedBuiltinType} from './type-shadowing.js'
import {createsInTemp, judgeSetting} from './settings.js'
import {parseStatements} from '../sql/parser.js'
import {constText, isFuncCall, isObj, isRangeVar, list, names, objectKind, str, unwrap, type Obj} from '../sql/tree.js'
import type {AccessKind, CatalogCall, Operation, OperationFlag, SettingChange, StatementClass, WhereKind} from './types.js'
import {conditionUserCode, cteColumns, cteSources, fromItems, holdsRows, WhereJudge, type OtherRelation} from './where.js'

/** The cursor a DECLARE, FETCH, MOVE or CLOSE names (none for CLOSE ALL). */
function cursorOf(body: Record<string, unknown>): {cursor?: string} {
  return typeof body.portalname === 'string' && body.portalname !== '' ? {cursor: body.portalname} : {}
}

function op(cls: StatementClass, command: string, extra: Partial<Operation> = {}): Operation {
  return {class: cls, command, tables: [], functions: [], flags: [], ...extra}
}

type Simple = [StatementClass, string, AccessKind?]

/**
 * Judgments of a `filtered` WHERE made in doubt (`Walker.lean`): every relation held the target's
 * rows; and also every operator named without a schema, and every `t.x`, was a user's code.
 */
interface Doubts {
  relations: WhereKind
  userCode: WhereKind
}

/**
 * ALTER TABLE actions that evaluate something over every existing row (a check, a new type, a
 * uniqueness, a generated value, NOT NULL) and fail on the first row that does not fit, with an
 * error that shows it: `ALTER TABLE hr.salaries ADD CHECK (person::int > 0)` answers `invalid input
 * syntax for type integer: "Alice Novak"`, and a CHECK or NOT NULL that fails or not says whether a
 * row matches. (ADD COLUMN counts when it brings a constraint, default or generated value.)
 */
const ROW_CHECKING_ACTIONS: ReadonlySet<unknown> = new Set(['AT_AddConstraint', 'AT_ReAddConstraint', 'AT_ValidateConstraint', 'AT_AlterColumnType', 'AT_SetNotNull', 'AT_AddIndexConstraint', 'AT_SetExpression'])

/**
 * ALTER TABLE actions that run code stored on the table over its existing rows, as a write of each
 * row would: a rewrite (a column's new type, SET LOGGED or UNLOGGED, SET ACCESS METHOD, SET
 * EXPRESSION, a column added with a default, generated value or type that may force one) rebuilds
 * every index, evaluating its expressions and operator classes' functions, and checks the table's
 * check constraints again (a new type re-reads them and index expressions by name, so a call may
 * now resolve to another function); VALIDATE CONSTRAINT runs a stored check over every row; ATTACH
 * PARTITION checks the attached table's rows against the parent's partition key and builds the
 * parent's indexes on it.
 */
const REEVALUATING_ACTIONS: ReadonlySet<unknown> = new Set(['AT_AlterColumnType', 'AT_SetLogged', 'AT_SetUnLogged', 'AT_SetAccessMethod', 'AT_SetExpression', 'AT_ValidateConstraint', 'AT_AttachPartition'])

/** Whether an ALTER TABLE (or MATERIALIZED VIEW) runs the code stored on its relation over its rows: `REEVALUATING_ACTIONS`. */
function reevaluatesRows(body: Obj): boolean {
  if ((body.objtype !== 'OBJECT_TABLE' && body.objtype !== 'OBJECT_MATVIEW') || !isRangeVar(body.relation)) return false
  return list(body.cmds).some((c) => {
    const cmd = unwrap(c)?.[1]
    if (!cmd) return false
    if (REEVALUATING_ACTIONS.has(cmd.subtype)) return true
    const def = unwrap(cmd.def)
    return cmd.subtype === 'AT_AddColumn' && def?.[0] === 'ColumnDef' && (list(def[1].constraints).length > 0 || !builtinColumnType(def[1].typeName))
  })
}

/** The tables whose rows a DDL statement reads to check or build what it makes: see `ROW_CHECKING_ACTIONS`; an index reads every row. */
function rowsCheckedBy(type: string, body: Obj): Obj[] {
  if (type === 'IndexStmt') return isRangeVar(body.relation) ? [body.relation] : []
  if (type !== 'AlterTableStmt' || !isRangeVar(body.relation)) return []
  const found: Obj[] = []
  for (const c of list(body.cmds)) {
    const cmd = unwrap(c)?.[1]
    if (!cmd) continue
    const def = unwrap(cmd.def)
    if (ROW_CHECKING_ACTIONS.has(cmd.subtype) || (cmd.subtype === 'AT_AddColumn' && def?.[0] === 'ColumnDef' && list(def[1].constraints).length > 0)) found.push(body.relation)
  }
  return found
}

/** The schema names a list of `String` nodes holds (`DROP SCHEMA a, b`, `… IN SCHEMA a, b`). */
function schemaNames(items: unknown): string[] {
  return list(items)
    .map((i) => str(unwrap(i)?.[0] === 'String' ? unwrap(i)![1].sval : undefined))
    .filter((n): n is string => n !== undefined)
}

/**
 * The schemas a statement acts on as a whole, naming no relation in them: renaming one moves every
 * relation in it out from under a rule on `hr.*` (`ALTER SCHEMA hr RENAME TO x`, then `SELECT *
 * FROM x.salaries`), dropping one with CASCADE drops its tables with their rows, and giving it
 * away or granting on all its tables hands them to another role. A rule on relations there
 * matches them (`TableRef.schemaWide`).
 */
function schemasActedOn(type: string, body: Obj): string[] {
  const object = (kind: unknown): boolean => kind === 'OBJECT_SCHEMA'
  switch (type) {
    case 'RenameStmt':
      return object(body.renameType) && typeof body.subname === 'string' ? [body.subname] : []
    case 'AlterOwnerStmt':
      return object(body.objectType) ? schemaNames([body.object]) : []
    case 'DropStmt':
      return object(body.removeType) ? schemaNames(body.objects) : []
    case 'GrantStmt':
      return body.targtype === 'ACL_TARGET_ALL_IN_SCHEMA' || object(body.objtype) ? schemaNames(body.objects) : []
    case 'AlterDefaultPrivilegesStmt':
      return list(body.options).flatMap((o) => {
        const d = unwrap(o)
        return d?.[0] === 'DefElem' && d[1].defname === 'schemas' ? schemaNames(unwrap(d[1].arg)?.[1].items) : []
      })
    case 'ReindexStmt':
      return body.kind === 'REINDEX_OBJECT_SCHEMA' && typeof body.name === 'string' ? [body.name] : []
    case 'ImportForeignSchemaStmt':
      return typeof body.local_schema === 'string' ? [body.local_schema] : []
    default:
      return []
  }
}

/**
 * Why a statement counts as every table because it drops what depends on the objects it names, in
 * tables it does not name: `DROP DOMAIN public.d CASCADE` drops every column of that domain
 * (hr.salaries' too, with its values), `DROP TABLE` or `DROP TYPE … CASCADE` every column of its
 * row type, `ALTER TYPE … DROP ATTRIBUTE … CASCADE` that column of every table made `OF` it. `DROP
 * OWNED` drops everything the role owns, in any schema.
 */
function reachesDependents(type: string, body: Obj): string | undefined {
  if (type === 'DropOwnedStmt') return 'DROP OWNED drops every table the role owns, in any schema; drop each table by name instead'
  const cascade =
    (type === 'DropStmt' && body.behavior === 'DROP_CASCADE') ||
    (type === 'AlterTableStmt' && list(body.cmds).some((c) => unwrap(c)?.[1].behavior === 'DROP_CASCADE'))
  if (!cascade) return undefined
  return '… CASCADE also drops what depends on the objects named, in tables the statement does not name (a column of a dropped domain or row type, with its values); drop the dependent objects by name first, or leave out CASCADE to see what depends on them'
}

/**
 * The tables whose partitions' and children's data a DDL statement removes with its own, so that
 * what is behind them counts (views.ts, as for a read: partitions and inheritance children):
 * `DROP TABLE` of a partitioned table drops every partition (hr.payroll_2026 of public.payroll,
 * no CASCADE needed), and `DROP COLUMN` of a parent drops the inherited column from every child
 * (with `ONLY`, the children keep it).
 */
function childrenDataRemovedBy(type: string, body: Obj): Obj[] {
  if (type === 'DropStmt' && body.removeType === 'OBJECT_TABLE') {
    return list(body.objects).flatMap((item) => {
      const u = unwrap(item)
      const parts = u && u[0] === 'List' ? names(u[1].items) : names([item])
      const relname = parts.at(-1)
      if (!relname) return []
      return [parts.length >= 2 ? {schemaname: parts[parts.length - 2], relname} : {relname}]
    })
  }
  if (type !== 'AlterTableStmt' || body.objtype !== 'OBJECT_TABLE' || !isRangeVar(body.relation) || body.relation.inh !== true) return []
  return list(body.cmds).some((c) => unwrap(c)?.[1].subtype === 'AT_DropColumn') ? [body.relation] : []
}

/**
 * Built-in functions that read or move the sequence their first argument names, as text or
 * regclass (`nextval('hr.salaries_id_seq')`): a relation the statement does not name as one.
 * nextval and setval change it (the next row hr inserts gets another id, or collides), currval and
 * pg_sequence_last_value read it (how many rows hr has inserted).
 */
const SEQUENCE_FUNCTIONS: Readonly<Record<string, AccessKind>> = {nextval: 'write', setval: 'write', currval: 'read', pg_sequence_last_value: 'read'}

/**
 * Built-in functions that summarize the BRIN index their first argument names (as text or
 * regclass): building a range's summary evaluates the index's expressions on every row of the
 * range, as a write to the table would, so the call is judged by that code and not only as
 * maintenance.
 */
const INDEX_SUMMARIZERS: ReadonlySet<string> = new Set(['brin_summarize_range', 'brin_summarize_new_values'])

/**
 * The relation a constant names as `regclass` input reads it: dot-separated parts, a quoted part
 * kept as written (`""` is a quote), an unquoted one folded to lower case. Undefined for anything
 * else (an OID, a value computed at run time, a malformed name).
 */
export function regclassName(arg: unknown): {schema?: string; name: string} | undefined {
  let node = arg
  // `'hr.s'::regclass` is the same text read as a relation name.
  const u = unwrap(node)
  if (u?.[0] === 'TypeCast' && names(u[1].typeName && (u[1].typeName as Obj).names).at(-1) === 'regclass') node = u[1].arg
  const a = unwrap(node)
  if (a?.[0] !== 'A_Const' || !('sval' in a[1])) return undefined
  const text = constText(node)
  if (text === undefined) return undefined
  const parts: string[] = []
  let i = 0
  while (i <= text.length) {
    let part = ''
    if (text[i] === '"') {
      i++
      for (;;) {
        if (i >= text.length) return undefined
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            part += '"'
            i += 2
            continue
          }
          i++
          break
        }
        part += text[i++]
      }
    } else {
      while (i < text.length && text[i] !== '.') part += text[i++]
      part = part.trim().toLowerCase()
      if (part === '' || /[\s"]/.test(part)) return undefined
    }
    parts.push(part)
    if (i >= text.length) break
    if (text[i] !== '.') return undefined
    i++
  }
  if (parts.length === 0 || parts.length > 3) return undefined
  const name = parts.at(-1)!
  return parts.length >= 2 ? {schema: parts.at(-2)!, name} : {name}
}

/** `keepsRelations` for DDL that leaves every existing relation as it was. */
function keeping(type: string, body: Obj): Partial<Operation> {
  return keepsRelations(type, body) ? {keepsRelations: true} : {}
}

/** Statements whose meaning is fixed by their node type. Walking their body still finds tables and calls. */
const SIMPLE: Record<string, Simple> = {
  CreateStmt: ['ddl', 'create_table'],
  CreateForeignTableStmt: ['ddl', 'create_foreign_table'],
  IndexStmt: ['ddl', 'create_index'],
  ViewStmt: ['ddl', 'create_view'],
  CreateSeqStmt: ['ddl', 'create_sequence'],
  AlterSeqStmt: ['ddl', 'alter_sequence'],
  CreateSchemaStmt: ['ddl', 'create_schema'],
  CreatedbStmt: ['ddl', 'create_database'],
  AlterDatabaseStmt: ['ddl', 'alter_database'],
  AlterDatabaseRefreshCollStmt: ['ddl', 'alter_database'],
  AlterDatabaseSetStmt: ['ddl', 'alter_database'],
  CreateExtensionStmt: ['ddl', 'create_extension'],
  AlterExtensionStmt: ['ddl', 'alter_extension'],
  AlterExtensionContentsStmt: ['ddl', 'alter_extension'],
  CreateFdwStmt: ['ddl', 'create_foreign_data_wrapper'],
  AlterFdwStmt: ['ddl', 'alter_foreign_data_wrapper'],
  CreateForeignServerStmt: ['ddl', 'create_server'],
  AlterForeignServerStmt: ['ddl', 'alter_server'],
  ImportForeignSchemaStmt: ['ddl', 'import_foreign_schema'],
  CreateAmStmt: ['ddl', 'create_access_method'],
  AlterEventTrigStmt: ['ddl', 'alter_event_trigger'],
  CreatePLangStmt: ['ddl', 'create_language'],
  CreateDomainStmt: ['ddl', 'create_domain'],
  AlterDomainStmt: ['ddl', 'alter_domain'],
  CreateOpClassStmt: ['ddl', 'create_operator_class'],
  CreateOpFamilyStmt: ['ddl', 'create_operator_family'],
  AlterOpFamilyStmt: ['ddl', 'alter_operator_family'],
  CommentStmt: ['ddl', 'comment'],
  SecLabelStmt: ['ddl', 'security_label'],
  CreateStatsStmt: ['ddl', 'create_statistics'],
  AlterStatsStmt: ['ddl', 'alter_statistics'],
  AlterFunctionStmt: ['ddl', 'alter_function'],
  AlterObjectDependsStmt: ['ddl', 'alter_depends'],
  AlterObjectSchemaStmt: ['ddl', 'alter_set_schema'],
  AlterOperatorStmt: ['ddl', 'alter_operator'],
  AlterTypeStmt: ['ddl', 'alter_type'],
  CompositeTypeStmt: ['ddl', 'create_type'],
  CreateEnumStmt: ['ddl', 'create_type'],
  CreateRangeStmt: ['ddl', 'create_type'],
  AlterEnumStmt: ['ddl', 'alter_type'],
  CreateConversionStmt: ['ddl', 'create_conversion'],
  CreateCastStmt: ['ddl', 'create_cast'],
  CreateTransformStmt: ['ddl', 'create_transform'],
  AlterTSDictionaryStmt: ['ddl', 'alter_text_search_dictionary'],
  AlterTSConfigurationStmt: ['ddl', 'alter_text_search_configuration'],
  AlterCollationStmt: ['ddl', 'alter_collation'],
  DropOwnedStmt: ['ddl', 'drop_owned'],
  CreateRoleStmt: ['privilege', 'create_role'],
  AlterRoleStmt: ['privilege', 'alter_role'],
  AlterRoleSetStmt: ['privilege', 'alter_role'],
  DropRoleStmt: ['privilege', 'drop_role'],
  AlterOwnerStmt: ['privilege', 'alter_owner'],
  ReassignOwnedStmt: ['privilege', 'reassign_owned'],
  AlterDefaultPrivilegesStmt: ['privilege', 'alter_default_privileges'],
  // Row-level security policies and user mappings (which hold remote credentials) decide who may
  // see what, so they are privilege changes rather than schema changes.
  CreatePolicyStmt: ['privilege', 'create_policy'],
  AlterPolicyStmt: ['privilege', 'alter_policy'],
  CreateUserMappingStmt: ['privilege', 'create_user_mapping'],
  AlterUserMappingStmt: ['privilege', 'alter_user_mapping'],
  DropUserMappingStmt: ['privilege', 'drop_user_mapping'],
  AlterSystemStmt: ['admin', 'alter_system'],
  ClusterStmt: ['admin', 'cluster', 'write'],
  ReindexStmt: ['admin', 'reindex', 'write'],
  CheckPointStmt: ['admin', 'checkpoint'],
  LockStmt: ['admin', 'lock', 'write'],
  CreatePublicationStmt: ['admin', 'create_publication'],
  AlterPublicationStmt: ['admin', 'alter_publication'],
  CreateSubscriptionStmt: ['admin', 'create_subscription'],
  AlterSubscriptionStmt: ['admin', 'alter_subscription'],
  DropSubscriptionStmt: ['admin', 'drop_subscription'],
  AlterTableSpaceOptionsStmt: ['admin', 'alter_tablespace'],
  AlterTableMoveAllStmt: ['admin', 'alter_tablespace'],
  RefreshMatViewStmt: ['write', 'refresh_materialized_view', 'write'],
  VariableShowStmt: ['session', 'show'],
  NotifyStmt: ['session', 'notify'],
  ListenStmt: ['session', 'listen'],
  UnlistenStmt: ['session', 'unlisten'],
  ConstraintsSetStmt: ['transaction', 'set_constraints'],
}

/** Every command word the walker can report, for `dbgate policy lint`. */
export const KNOWN_COMMANDS: ReadonlySet<string> = new Set([
  ...Object.values(SIMPLE).map(([, command]) => command),
  ...['select', 'insert', 'update', 'delete', 'merge', 'copy', 'explain', 'create_table_as', 'create_materialized_view'],
  ...['prepare', 'execute', 'deallocate', 'discard', 'set', 'reset', 'declare', 'fetch', 'move', 'close', 'drop', 'truncate', 'rename'],
  ...['grant', 'revoke', 'grant_role', 'revoke_role', 'create_trigger', 'create_event_trigger', 'create_rule'],
  ...['create_function', 'create_procedure', 'do', 'call', 'load', 'create_tablespace', 'vacuum', 'analyze', 'function', 'shadow_type'],
  ...['begin', 'commit', 'rollback', 'savepoint', 'release', 'rollback_to', 'prepare_transaction', 'commit_prepared', 'rollback_prepared'],
  'unknown',
])

/** Whether a rule's `command` can ever match: a word the walker reports, or one built from an object kind. */
export function isKnownCommand(c: string): boolean {
  // Commands built from an object kind (alter_<kind>, create_<kind>) cannot all be listed.
  return KNOWN_COMMANDS.has(c) || /^(alter|create)_[a-z_]+$/.test(c)
}

const TRANSACTION_COMMANDS: Record<string, string> = {
  TRANS_STMT_BEGIN: 'begin',
  TRANS_STMT_START: 'begin',
  TRANS_STMT_COMMIT: 'commit',
  TRANS_STMT_ROLLBACK: 'rollback',
  TRANS_STMT_SAVEPOINT: 'savepoint',
  TRANS_STMT_RELEASE: 'release',
  TRANS_STMT_ROLLBACK_TO: 'rollback_to',
  TRANS_STMT_PREPARE: 'prepare_transaction',
  TRANS_STMT_COMMIT_PREPARED: 'commit_prepared',
  TRANS_STMT_ROLLBACK_PREPARED: 'rollback_prepared',
}

/**
 * VACUUM and ANALYZE options that leave them plain: they update statistics and visibility without
 * rewriting tables or taking exclusive locks. FULL rewrites the table under ACCESS EXCLUSIVE;
 * FREEZE, DISABLE_PAGE_SKIPPING, INDEX_CLEANUP, TRUNCATE (which locks exclusively) and the rest
 * change how much work and locking happens, so they go to a reviewer.
 */
const PLAIN_VACUUM_OPTIONS = new Set(['verbose', 'analyze', 'skip_locked'])

/**
 * Whether an ALTER DOMAIN checks the values of the domain already stored: adding a constraint (not
 * NOT VALID), validating one, or SET NOT NULL. Each reads every column of the domain, in any table,
 * as DDL that checks every row of a table does (`rowsCheckedBy`).
 */
function checksDomainValues(body: Obj): boolean {
  if (body.subtype === 'V' || body.subtype === 'O') return true
  if (body.subtype !== 'C') return false
  const c = unwrap(body.def)
  return c?.[0] === 'Constraint' && c[1].skip_validation !== true
}

/**
 * Code a maintenance statement runs on tables it does not name, which dbgate does not look up: a
 * call it cannot judge, held for a reviewer (`default.volatile-function`) whatever a rule allowing
 * the maintenance itself says.
 */
function unseenCode(detail: string): Operation {
  return op('write', 'function', {flags: ['volatile_function', 'every_table_code'], detail})
}

/** Whether a VACUUM also analyses (`VACUUM ANALYZE`, `VACUUM (ANALYZE)`, not `(ANALYZE off)`). */
function vacuumAnalyzes(body: Obj): boolean {
  return list(body.options).some((o) => {
    const u = unwrap(o)
    return u?.[0] === 'DefElem' && u[1].defname === 'analyze' && (u[1].arg === undefined || !['false', 'off', '0', 'no'].includes((constText(u[1].arg) ?? 'on').toLowerCase()))
  })
}

/** Object kinds whose DROP names relations, so the names are tables for rule matching. */
const RELATION_KINDS = new Set(['table', 'view', 'matview', 'sequence', 'index', 'foreign_table'])

export interface WalkResult {
  operations: Operation[]
  prepare?: {name: string}
  deallocate?: {name?: string; all: boolean}
  /** The summary command when it is not the primary operation's (prepare, execute). */
  command?: string
}

export class StatementWalker {
  private readonly ops: Operation[] = []
  private current: Operation
  /** CTE names in scope; an unqualified reference to one is not a table. */
  private readonly scopes: Set<string>[] = []
  /** How a bare relation found while walking is being accessed. */
  private access: AccessKind = 'read'

  private constructor() {
    this.current = op('read', 'select')
  }

  static walk(node: Obj): WalkResult {
    const w = new StatementWalker()
    const extra = w.statement(node)
    w.beyondNames(node)
    return {operations: w.ops, ...extra}
  }

  /**
   * Adds to the statement's own operation what it acts on without naming a relation: every
   * relation of a schema it acts on as a whole, or every table when it drops what depends on the
   * objects it names (`schemasActedOn`, `reachesDependents`).
   */
  private beyondNames(node: Obj): void {
    const u = unwrap(node)
    const o = this.ops.find((x) => x.command !== 'shadow_type')
    if (!u || !o) return
    for (const schema of schemasActedOn(u[0], u[1])) {
      if (!o.tables.some((t) => t.schemaWide && t.schema === schema)) o.tables.push({schema, name: '*', access: 'ddl', schemaWide: true})
    }
    const every = reachesDependents(u[0], u[1])
    if (every !== undefined) o.tables.push({name: '*', access: 'ddl', every})
    // Read as a read: what is behind a table for a read is its partitions and children.
    for (const rv of childrenDataRemovedBy(u[0], u[1])) {
      const name = str(rv.relname) ?? ''
      const schema = str(rv.schemaname)
      if (!o.tables.some((t) => t.name === name && t.schema === schema && t.access === 'read')) o.tables.push(schema ? {schema, name, access: 'read'} : {name, access: 'read'})
      // The catalog step looks up what is behind the relations the operation calls on.
      const call: CatalogCall = {kind: 'relation', ...(schema ? {schema} : {}), name, args: 0}
      const calls = (o.calls ??= [])
      if (!calls.some((x) => sameCall(x, call))) calls.push(call)
    }
  }

  private statement(node: Obj): Omit<WalkResult, 'operations'> {
    const u = unwrap(node)
    if (!u) {
      this.push(op('unknown', 'unknown', {detail: 'unrecognised parse tree'}))
      return {}
    }
    const [type, body] = u
    const shadowed = shadowedBuiltinType(type, body)
    if (shadowed !== undefined) {
      this.push(
        op('ddl', 'shadow_type', {
          flags: ['shadows_builtin_type'],
          detail:
            shadowed === FOREIGN_NAMES
              ? "it would put foreign tables named by the foreign server into this session's temporary schema, where one named like a built-in type takes its place in every later statement (the temporary schema is searched first for type names)"
              : `it would make "${shadowed}" mean an object in this session's temporary schema instead of the built-in type pg_catalog.${shadowed} in every later statement (the temporary schema is searched first for type names)`,
        }),
      )
    }
    switch (type) {
      case 'SelectStmt':
        if (isObj(body.intoClause)) {
          // SELECT ... INTO creates the table it names.
          const rel = isRangeVar(body.intoClause.rel) ? body.intoClause.rel : undefined
          this.open(op('ddl', 'create_table_as', {object: 'table'}), () => this.target(body, rel, 'ddl', 'intoClause'))
        } else {
          this.open(op('read', 'select'), () => this.walkBody(body))
        }
        return {}
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        this.visit(node)
        return {}
      case 'CopyStmt':
        this.copy(body)
        return {}
      case 'ExplainStmt':
        this.explain(body)
        return {}
      case 'CreateTableAsStmt': {
        const object = objectKind(body.objtype) ?? 'table'
        const command = object === 'matview' ? 'create_materialized_view' : 'create_table_as'
        this.open(op('ddl', command, {object}), () => this.walkBody(body, 'ddl'))
        return {}
      }
      case 'PrepareStmt': {
        const name = str(body.name) ?? ''
        const inner = isObj(body.query) ? body.query : undefined
        const first = this.ops.length
        if (inner) this.statement(inner)
        else this.push(op('unknown', 'prepare', {detail: 'PREPARE without a statement'}))
        // Each EXECUTE converts its arguments into the parameter types, running their domain
        // checks: they belong to what the prepared statement does, which EXECUTE is judged as.
        const owner = this.ops[first]
        if (owner) {
          const saved = this.current
          this.current = owner
          for (const t of list(body.argtypes)) this.castCall(unwrap(t)?.[1] ?? t)
          this.current = saved
        }
        return {prepare: {name}, command: 'prepare'}
      }
      case 'ExecuteStmt':
        this.visit(node)
        return {command: 'execute'}
      case 'DeallocateStmt': {
        this.push(op('session', 'deallocate'))
        const name = str(body.name)
        return {deallocate: body.isall || name === undefined ? {all: true} : {name, all: false}}
      }
      case 'DiscardStmt': {
        const target = String(body.target ?? 'DISCARD_ALL')
        this.push(op('session', 'discard', {object: target.replace(/^DISCARD_/, '').toLowerCase()}))
        // DISCARD ALL includes DEALLOCATE ALL; the registry must forget with the server.
        return target === 'DISCARD_ALL' ? {deallocate: {all: true}} : {}
      }
      case 'TransactionStmt':
        this.push(op('transaction', TRANSACTION_COMMANDS[String(body.kind)] ?? 'transaction'))
        return {}
      case 'VariableSetStmt':
        this.push(this.setOperation(body))
        return {}
      case 'DeclareCursorStmt': {
        // WITH HOLD (CURSOR_OPT_HOLD): the query runs to its end when the transaction commits, with
        // the functions the transaction has defined by then (unsettled-calls.ts).
        const hold = (Number(body.options ?? 0) & 0x20) !== 0
        this.open(op('read', 'declare', {...(hold ? {object: 'hold_cursor'} : {}), ...cursorOf(body)}), () => this.walkBody(body, 'read'))
        return {}
      }
      case 'FetchStmt':
        this.push(op('read', body.ismove ? 'move' : 'fetch', cursorOf(body)))
        return {}
      case 'ClosePortalStmt':
        this.push(op('read', 'close', cursorOf(body)))
        return {}
      case 'DropStmt':
        this.drop(body)
        return {}
      case 'DropdbStmt':
        this.push(op('ddl', 'drop', {object: 'database'}))
        return {}
      case 'DropTableSpaceStmt':
        this.push(op('ddl', 'drop', {object: 'tablespace'}))
        return {}
      case 'TruncateStmt': {
        const o = this.open(op('ddl', 'truncate', {object: 'table'}), () => this.walkBody(body, 'write'))
        // CASCADE empties, recursively, every table whose foreign keys refer to one named, whatever
        // the keys' actions: tables the statement does not name, whose rules and triggers it does
        // not show. An allow-list cannot carry that; naming each table can.
        if (body.behavior === 'DROP_CASCADE') o.tables.push({name: '*', access: 'write', every: 'TRUNCATE … CASCADE also empties every table whose foreign keys refer to the ones named, and those referring to them; name each table to truncate instead'})
        return {}
      }
      case 'AlterTableStmt': {
        const object = objectKind(body.objtype) ?? 'table'
        const altered = this.open(op('ddl', `alter_${object}`, {object, ...keeping(type, body)}), () => this.walkBody(body, 'ddl'))
        // Judged by what a write to the relation runs, as the catalog step judges a write's (its triggers' bodies included).
        if (reevaluatesRows(body)) this.addWriteCode(altered, body.relation as Obj)
        this.rowsChecked(type, body)
        // ALTER TABLE ... OWNER TO hands every privilege on the table to another role.
        const subtypes = list(body.cmds).map((c) => unwrap(c)?.[1].subtype)
        if (subtypes.includes('AT_ChangeOwner')) this.push(op('privilege', 'alter_owner', {object}))
        return {}
      }
      case 'RenameStmt': {
        const object = objectKind(body.renameType)
        this.open(op('ddl', 'rename', {object}), () => this.walkBody(body, 'ddl'))
        return {}
      }
      case 'DefineStmt': {
        const object = objectKind(body.kind) ?? 'object'
        this.open(op('ddl', `create_${object}`, {object}), () => this.walkBody(body, 'ddl'))
        return {}
      }
      case 'GrantStmt': {
        const command = body.is_grant ? 'grant' : 'revoke'
        this.open(op('privilege', command, {object: objectKind(body.objtype)}), () => this.walkBody(body, 'ddl'))
        return {}
      }
      case 'GrantRoleStmt':
        this.push(op('privilege', body.is_grant ? 'grant_role' : 'revoke_role', {object: 'role'}))
        return {}
      case 'CreateTrigStmt': {
        // The trigger function is not called now, but naming it lets `functions:` rules see it.
        const fn = names(body.funcname).join('.')
        this.open(op('ddl', 'create_trigger', {object: 'trigger', flags: ['trigger'], functions: [fn]}), () => this.walkBody(body, 'ddl'))
        return {}
      }
      case 'CreateEventTrigStmt':
        this.open(op('ddl', 'create_event_trigger', {object: 'event_trigger', flags: ['trigger']}), () => this.walkBody(body, 'ddl'))
        return {}
      case 'RuleStmt':
        this.open(op('ddl', 'create_rule', {object: 'rule', flags: ['rule']}), () => this.walkBody(body, 'ddl'))
        return {}
      case 'CreateFunctionStmt': {
        const command = body.is_procedure ? 'create_procedure' : 'create_function'
        this.open(op('opaque', command, {object: body.is_procedure ? 'procedure' : 'function'}), () => this.walkBody(body, 'ddl'))
        return {}
      }
      case 'DoStmt':
        this.push(op('opaque', 'do'))
        return {}
      case 'CallStmt': {
        // The procedure itself is opaque (a reviewer decides); its arguments are judged like any expression.
        const call = isObj(body.funccall) ? body.funccall : {}
        this.open(op('opaque', 'call', {functions: [names(call.funcname).join('.')]}), () => this.walkBody({args: call.args}))
        return {}
      }
      case 'LoadStmt':
        // LOAD maps a shared library from the server's disk into the backend.
        this.push(op('admin', 'load', {flags: ['server_file']}))
        return {}
      case 'CreateTableSpaceStmt':
        this.push(op('admin', 'create_tablespace', {flags: ['server_file']}))
        return {}
      case 'VacuumStmt': {
        const heavy = list(body.options).some((o) => {
          const u = unwrap(o)
          if (!u || u[0] !== 'DefElem') return true
          const name = String(u[1].defname)
          if (PLAIN_VACUUM_OPTIONS.has(name)) return false
          return u[1].arg === undefined || !['false', 'off', '0', 'no'].includes((constText(u[1].arg) ?? 'on').toLowerCase())
        })
        const command = body.is_vacuumcmd ? 'vacuum' : 'analyze'
        // ANALYZE evaluates each table's index and extended statistics expressions and its range
        // columns' subtype_diff on sampled rows. A table it names is judged by that code (as a write
        // of it); without a list it runs that of every table, which dbgate does not look up.
        const flags: OperationFlag[] = heavy ? ['heavy_maintenance'] : []
        const o = this.open(op('admin', command, {flags}), () => this.walkBody(body, 'write'))
        if (list(body.rels).length === 0 && (!body.is_vacuumcmd || vacuumAnalyzes(body))) {
          this.push(unseenCode('ANALYZE without a table list evaluates the index expressions, extended statistics expressions and range functions of every table, code dbgate does not look up for it; name the tables (ANALYZE t1, t2), whose code is judged'))
        }
        // Without a list it processes every table the role may (hr's too): rules on tables see all of them.
        if (list(body.rels).length === 0) o.tables.push({name: '*', access: 'write', every: `${command.toUpperCase()} without a table list processes every table the role owns or may maintain`})
        return {}
      }
      case 'AlterRoleSetStmt':
      case 'AlterDatabaseSetStmt': {
        const [cls, command] = SIMPLE[type]!
        const change = isObj(body.setstmt) ? this.setOperation(body.setstmt).setting : undefined
        // The value is what the role's (or database's) next sessions start with: one under which new
        // objects may go to pg_temp is refused as a SET of it is, whatever a rule allows.
        const shadows = change !== undefined && createsInTemp(change)
        const detail = `it would start every later session of this ${type === 'AlterRoleSetStmt' ? 'role' : 'database'} with a search_path under which new objects may go to the temporary schema, where a type or table named like a built-in type takes its place`
        this.open(op(cls, command, shadows ? {flags: ['shadows_builtin_type'], detail} : {}), () => this.walkBody(body, 'ddl'))
        return {}
      }
      default: {
        const simple = SIMPLE[type]
        if (simple) {
          const [cls, command, access] = simple
          const made = this.open(op(cls, command, keeping(type, body)), () => this.walkBody(body, access ?? (cls === 'read' || cls === 'session' ? 'read' : 'ddl')))
          // A new partition has the server check the default partition's rows against its bound,
          // evaluating the parent's partition key on each: judged by what a write to the parent runs.
          const parent = type === 'CreateStmt' && body.partbound !== undefined ? list(body.inhRelations).map(unwrap).find((u) => u?.[0] === 'RangeVar')?.[1] : undefined
          if (parent) this.addWriteCode(made, parent, true)
          // VALIDATE CONSTRAINT of a domain runs its checks on every value of it stored in any column: judged as a cast to it.
          if (type === 'AlterDomainStmt' && body.subtype === 'V') this.validatesDomain(made, names(body.typeName))
          if (type === 'AlterDomainStmt' && checksDomainValues(body)) {
            const saved = this.access
            this.open(op('read', 'check_rows'), () => {
              this.current.tables.push({name: '*', access: 'read', every: 'ALTER DOMAIN checks every value of the domain in every column of it, in tables the statement does not name, and fails on the first that does not fit with an error that shows it (or tells whether one matches); make the change where no rule on tables applies, or add the check to the columns of the tables allowed'})
            })
            this.access = saved
          }
          // A REINDEX of a table or an index is judged by its index code (as a write of it); of a schema or database, it names none.
          if (type === 'ReindexStmt' && (body.kind === 'REINDEX_OBJECT_SCHEMA' || body.kind === 'REINDEX_OBJECT_DATABASE')) {
            this.push(unseenCode('REINDEX of a whole schema or database rebuilds every index in it, evaluating index expressions and operator classes dbgate does not look up for it; reindex the tables by name (REINDEX TABLE t), whose index code is judged'))
          }
          this.rowsChecked(type, body)
        } else {
          this.push(op('unknown', 'unknown', {detail: `statement type ${type} is not understood by dbgate`}))
        }
        return {}
      }
    }
  }

  // ---- operations --------------------------------------------------------------------------

  /** Has `o` judged as a cast to the domain `typeName` (schema and name, or the name alone), which runs its checks. */
  private validatesDomain(o: Operation, typeName: string[]): void {
    const name = typeName[typeName.length - 1]
    if (!name) return
    const schema = typeName.length > 1 ? typeName[typeName.length - 2] : undefined
    o.calls = [...(o.calls ?? []), {kind: 'cast', ...(schema ? {schema} : {}), name, args: 1}]
  }

  /** Has `o` judged by what a write to the relation `rv` runs (DDL that evaluates the code stored on its rows), or by its partition keys alone. */
  private addWriteCode(o: Operation, rv: Obj, partitionKeyOnly = false): void {
    const schema = str(rv.schemaname)
    const name = str(rv.relname)
    if (!name) return
    const call: CatalogCall = {kind: 'trigger', ...(schema ? {schema} : {}), name, args: 0, ...(partitionKeyOnly ? {partitionKeyOnly: true as const} : {})}
    if (!(o.calls ?? []).some((x) => sameCall(x, call))) o.calls = [...(o.calls ?? []), call]
  }

  /** A read (command `check_rows`) of each table whose rows the DDL checks: its errors show them. */
  private rowsChecked(type: string, body: Obj): void {
    const tables = rowsCheckedBy(type, body)
    if (tables.length === 0) return
    const saved = this.access
    this.open(op('read', 'check_rows'), () => {
      for (const t of tables) this.table(t, 'read')
    })
    this.access = saved
  }

  private push(o: Operation): Operation {
    this.ops.push(o)
    return o
  }

  /** Makes `o` the operation that tables and calls found inside `fn` belong to. */
  private open(o: Operation, fn: () => void): Operation {
    this.push(o)
    const saved = this.current
    const savedAccess = this.access
    this.current = o
    try {
      fn()
    } finally {
      this.current = saved
      this.access = savedAccess
    }
    return o
  }

  private walkBody(body: Obj, access: AccessKind = 'read'): void {
    this.access = access
    this.visit(body)
  }

  private table(rv: Obj, access: AccessKind, cteVisible = true): void {
    const name = str(rv.relname) ?? ''
    const schema = str(rv.schemaname)
    if (!schema && cteVisible && this.scopes.some((s) => s.has(name))) return
    // A view (or a rule on a table) may call functions of its own: the catalog says which.
    if (name) this.call({kind: 'relation', ...(schema ? {schema} : {}), name, args: 0})
    // And writing it fires its triggers, whose bodies the catalog step judges as this statement's own.
    if (name && access === 'write') this.call({kind: 'trigger', ...(schema ? {schema} : {}), name, args: 0})
    if (access === 'write' && writesSettings(schema, name)) {
      this.push(
        op('unknown', 'set', {
          flags: ['hidden_setting'],
          detail: 'a write to pg_settings runs set_config through the view\'s rule, for settings and values dbgate cannot judge; use SET name = value instead',
        }),
      )
    }
    const exists = this.current.tables.some((t) => t.name === name && t.schema === schema && t.access === access)
    if (!exists) this.current.tables.push(schema ? {schema, name, access} : {name, access})
  }

  // ---- the generic walk ---------------------------------------------------------------------

  private visit(node: unknown): void {
    if (Array.isArray(node)) {
      for (const n of node) this.visit(n)
      return
    }
    if (!isObj(node)) return
    if (isRangeVar(node)) {
      this.table(node, this.access)
      return
    }
    if (isFuncCall(node)) {
      this.funcCall(node)
      return
    }
    const u = unwrap(node)
    if (u) {
      this.node(u[0], u[1])
      return
    }
    this.fields(node)
  }

  /**
   * Visits an object's fields, opening a CTE scope first when it carries a WITH clause; `before`
   * runs inside that scope, ahead of the fields.
   */
  private fields(body: Obj, skip: readonly string[] = [], before?: () => void): void {
    const run = (): void => {
      before?.()
      for (const [key, value] of Object.entries(body)) {
        if (key === 'withClause' || skip.includes(key)) continue
        // A type named outside a cast also converts values into it, running its domain checks and
        // input function: a column definition list (`json_to_record(…) AS x(a d)`), a RETURNING
        // type (`json_value(… RETURNING d)`), JSON_TABLE and XMLTABLE columns. In DDL a type
        // names what a column holds, and nothing is converted yet.
        if (key === 'typeName' && this.access !== 'ddl') this.castCall(value)
        this.visit(value)
      }
    }
    if (isObj(body.withClause)) this.withScope(body.withClause, run)
    else run()
  }

  private withScope(withClause: Obj, fn: () => void): void {
    const scope = new Set<string>()
    const ctes = list(withClause.ctes)
    const cteName = (c: unknown): string | undefined => {
      const u = unwrap(c)
      return u && u[0] === 'CommonTableExpr' ? str(u[1].ctename) : undefined
    }
    // A recursive WITH sees all its names in every member; a plain one only the earlier ones, so a
    // later CTE's name in an earlier body still means the real table.
    if (withClause.recursive) for (const c of ctes) scope.add(cteName(c) ?? '')
    this.scopes.push(scope)
    try {
      for (const c of ctes) {
        this.visit(c)
        const name = cteName(c)
        if (name !== undefined) scope.add(name)
      }
      fn()
    } finally {
      this.scopes.pop()
    }
  }

  private node(type: string, body: Obj): void {
    switch (type) {
      // A constant holds a scalar and nothing to judge; not reading it keeps analyses shareable by shape.
      case 'A_Const':
        return
      case 'RangeVar':
        this.table(body, this.access)
        return
      case 'Constraint':
        // A foreign key reads the table it references: its validation scans it, and every later
        // write to the referencing table looks the key up there, answering whether a value is in
        // it. So `REFERENCES hr.salaries (id)` is a read of hr.salaries for rules, not DDL alone.
        if (body.contype === 'CONSTR_FOREIGN' && isRangeVar(body.pktable)) {
          const pktable = body.pktable
          const saved = this.access
          this.open(op('read', 'references'), () => this.table(pktable, 'read'))
          this.access = saved
        }
        this.fields(body)
        return
      case 'FuncCall':
        this.funcCall(body)
        return
      case 'ColumnRef': {
        // `t.f` is also `f(t)` when t is a row and f a function of it: PostgreSQL tries both.
        const fields = list(body.fields)
        const last = unwrap(fields.at(-1))
        if (fields.length >= 2 && last?.[0] === 'String' && typeof last[1].sval === 'string') this.call({kind: 'attribute', name: last[1].sval, args: 1})
        return
      }
      case 'A_Indirection':
        for (const i of list(body.indirection)) {
          const u = unwrap(i)
          if (u?.[0] === 'String' && typeof u[1].sval === 'string') this.call({kind: 'attribute', name: u[1].sval, args: 1})
        }
        this.fields(body)
        return
      case 'A_Expr':
        this.operatorCall(body)
        this.fields(body)
        return
      case 'SortBy':
        if (Array.isArray(body.useOp)) this.operator(body.useOp, 2)
        this.fields(body)
        return
      case 'SubLink':
        // `x op ANY/ALL (SELECT …)` and `(a, b) op (SELECT …)` run their operator for every row;
        // `x IN (SELECT …)` carries no name and means `= ANY`.
        if (Array.isArray(body.operName)) this.operator(body.operName, 2)
        else if (body.subLinkType === 'ANY_SUBLINK') this.call({kind: 'operator', name: '=', args: 2})
        this.fields(body)
        return
      case 'CaseExpr':
        // `CASE x WHEN y …` compares x with each y by `=`, which for x's type may be a user's operator.
        if (body.arg !== undefined) this.call({kind: 'operator', name: '=', args: 2})
        this.fields(body)
        return
      case 'TypeCast':
        this.castCall(body.typeName)
        this.fields(body)
        return
      case 'SelectStmt': {
        // Inside DDL (CREATE VIEW ... AS SELECT) the query only reads.
        const saved = this.access
        this.access = 'read'
        try {
          this.fields(body)
        } finally {
          this.access = saved
        }
        return
      }
      case 'InsertStmt':
        this.dml('insert', body)
        return
      case 'UpdateStmt':
        this.dml('update', body)
        return
      case 'DeleteStmt':
        this.dml('delete', body)
        return
      case 'MergeStmt':
        this.merge(body)
        return
      case 'ExecuteStmt': {
        const name = str(body.name) ?? ''
        this.open(
          op('unknown', 'execute', {executes: name, flags: ['unresolved'], detail: `prepared statement "${name}" is not known to dbgate`}),
          () => this.walkBody({params: body.params}),
        )
        return
      }
      default:
        this.fields(body)
    }
  }

  private dml(command: 'insert' | 'update' | 'delete', body: Obj): void {
    const rel = isRangeVar(body.relation) ? body.relation : undefined
    const o = op('write', command)
    let doubts: Doubts | undefined
    if (command !== 'insert') {
      // UPDATE … FROM and DELETE … USING bring other relations (perhaps copies of the target) into scope.
      const extra = command === 'update' ? body.fromClause : body.usingClause
      o.where = this.judge(rel, this.others(rel, extra, body.withClause), body.withClause).judge(body.whereClause)
      const suspect = (userCode: boolean) => this.judge(rel, this.others(rel, extra, body.withClause, true), body.withClause, true, userCode).judge(body.whereClause)
      if (o.where === 'filtered') doubts = {relations: suspect(false), userCode: suspect(true)}
    }
    this.open(o, () => this.target(body, rel, 'write'))
    if (doubts !== undefined) this.lean(o, o, rel, doubts, [body.whereClause])
    if (command === 'insert' && isObj(body.onConflictClause) && body.onConflictClause.action === 'ONCONFLICT_UPDATE') this.upsert(body, rel, o)
  }

  /**
   * Keeps with a `filtered` WHERE what its proof leans on when the proof fails once every relation
   * and user call is taken to hold the target's rows, or once the operators the condition names
   * without a schema and its `t.x` are taken for a user's code: the target's catalog settles it (where-basis.ts).
   * `source` is the operation whose calls the condition's relations and calls were recorded in.
   * Every `filtered` WHERE keeps one: the catalog also shows whether the target has rules.
   */
  private lean(o: Operation, source: Operation, rel: Obj | undefined, doubts: Doubts, conditions: readonly unknown[]): void {
    // Kept even when nothing is in doubt: the target's own rules may run other writes (where-basis.ts).
    const relname = rel ? (str(rel.relname) ?? '') : ''
    const calls = doubts.relations === 'filtered' ? [] : (source.calls ?? []).filter((c) => !(c.kind === 'relation' && c.name === relname && c.schema === (str(rel?.schemaname) ?? c.schema)))
    const code = doubts.userCode === 'filtered' ? {operators: [], attributes: []} : conditionUserCode(conditions)
    o.whereBasis = {calls, otherwise: doubts.relations, ...code, userCodeOtherwise: doubts.userCode}
  }

  /**
   * INSERT … ON CONFLICT DO UPDATE updates every existing row that conflicts with a row it inserts.
   * Rows from constants, parameters or other tables pick those rows; rows read from the target
   * table itself conflict with every row, so then only the DO UPDATE's own WHERE can filter.
   */
  private upsert(body: Obj, rel: Obj | undefined, insert: Operation): void {
    const conflict = body.onConflictClause as Obj
    const relname = rel ? (str(rel.relname) ?? '') : ''
    const where = (suspect: boolean, userCode = false): WhereKind => {
      const fromItself = rel !== undefined && (holdsRows(body.selectStmt, relname, suspect) || holdsRows(body.withClause, relname, suspect))
      if (!fromItself) return 'filtered'
      return conflict.whereClause === undefined ? 'trivial' : this.judge(rel, [{name: 'excluded', sameTable: true}], undefined, suspect, userCode).judge(conflict.whereClause)
    }
    const update = op('write', 'update', {where: where(false)})
    this.open(update, () => {
      if (rel) this.table(rel, 'write', false)
      this.access = 'read'
      this.visit(conflict.targetList)
      this.visit(conflict.whereClause)
    })
    // The rows inserted are read by the INSERT: a view or function over the target conflicts with every row.
    if (update.where === 'filtered') this.lean(update, {...insert, calls: [...(insert.calls ?? []), ...(update.calls ?? [])]}, rel, {relations: where(true), userCode: where(true, true)}, [conflict.whereClause])
  }

  private others(rel: Obj | undefined, items: unknown, withClause: unknown, suspect = false): OtherRelation[] {
    const relname = rel ? (str(rel.relname) ?? '') : ''
    return fromItems(items, relname, cteSources(withClause, relname, suspect), suspect)
  }

  /** Records a statement's target relation, then walks the rest of it as reads. */
  private target(body: Obj, rel: Obj | undefined, access: AccessKind, field = 'relation'): void {
    this.access = 'read'
    this.fields(body, [field], () => {
      if (rel) this.table(rel, access, false)
    })
  }

  private merge(body: Obj): void {
    const rel = isRangeVar(body.relation) ? body.relation : undefined
    const judge = this.judge(rel, this.others(rel, [body.sourceRelation], body.withClause), body.withClause)
    const suspect = (userCode: boolean) => this.judge(rel, this.others(rel, [body.sourceRelation], body.withClause, true), body.withClause, true, userCode)
    // NOT MATCHED BY SOURCE conditions can only name the target.
    const alone = this.judge(rel, [], body.withClause)
    const aloneSuspect = (userCode: boolean) => this.judge(rel, [], body.withClause, true, userCode)
    const merge = this.open(op('write', 'merge'), () => this.target(body, rel, 'write'))
    // Each WHEN action is an operation of its own, so `command: delete` rules see MERGE deletes.
    for (const clause of list(body.mergeWhenClauses)) {
      const u = unwrap(clause)
      if (!u) continue
      const w = u[1]
      const command = {CMD_DELETE: 'delete', CMD_UPDATE: 'update', CMD_INSERT: 'insert'}[String(w.commandType)]
      if (!command) continue
      const action = op('write', command)
      if (rel) action.tables.push(tableRef(rel, 'write'))
      if (command !== 'insert') {
        // WHEN MATCHED rows are those the ON condition pairs with a source row; NOT MATCHED BY
        // SOURCE rows are every target row without a partner, filtered only by the WHEN condition.
        const bySource = w.matchKind === 'MERGE_WHEN_NOT_MATCHED_BY_SOURCE'
        const conditions = bySource ? [w.condition] : [body.joinCondition, w.condition]
        action.where = (bySource ? alone : judge).judgeAll(conditions)
        const doubt = bySource ? aloneSuspect : suspect
        if (action.where === 'filtered') this.lean(action, merge, rel, {relations: doubt(false).judgeAll(conditions), userCode: doubt(true).judgeAll(conditions)}, conditions)
      }
      this.push(action)
    }
  }

  private judge(rel: Obj | undefined, others: OtherRelation[] = [], withClause?: unknown, suspect = false, userCode = false): WhereJudge {
    const names = new Set<string>()
    const relname = rel ? (str(rel.relname) ?? '') : ''
    if (rel) {
      const alias = isObj(rel.alias) ? str(rel.alias.aliasname) : undefined
      names.add(alias ?? relname)
    }
    // The statement's own CTEs, for subqueries of the condition that read them.
    return new WhereJudge({names, relname, others, ctes: cteSources(withClause, relname, suspect), cteColumns: cteColumns(withClause), ...(suspect ? {suspect} : {}), ...(userCode ? {userCode} : {})})
  }

  private funcCall(body: Obj): void {
    const parts = names(body.funcname)
    const name = parts.join('.')
    if (!this.current.functions.includes(name)) this.current.functions.push(name)
    const bare = parts.at(-1) ?? ''
    const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined
    // What the call does is the catalog's to say (catalog.ts); only its shape is recorded here.
    // An ordered-set aggregate's WITHIN GROUP (ORDER BY …) columns are arguments too: pg_proc
    // counts percentile_cont(0.5) WITHIN GROUP (ORDER BY x) as two.
    const args = body.agg_star ? 0 : list(body.args).length + (body.agg_within_group ? list(body.agg_order).length : 0)
    // `set_config`, `pg_catalog.set_config` and `db.pg_catalog.set_config` (a catalog-qualified
    // name the server accepts for the current database) all reach the built-in: the schema part,
    // not the first part, says which function it is.
    const setConfig = bare.toLowerCase() === 'set_config' && (schema === undefined || schema === 'pg_catalog')
    const shownType = typeShownFor(bare.toLowerCase(), list(body.args))
    if (shownType) this.castCall(shownType)
    this.call({
      kind: 'function',
      ...(schema !== undefined ? {schema} : {}),
      name: bare,
      args,
      ...(setConfig ? {judgedAsSetting: true as const} : {}),
      ...(shownType ? {judgedAsCast: true as const} : {}),
    })
    if (setConfig) this.push(this.setConfigOperation(name, list(body.args)))
    const sequenceAccess = schema === undefined || schema === 'pg_catalog' ? SEQUENCE_FUNCTIONS[bare.toLowerCase()] : undefined
    if (sequenceAccess !== undefined) this.sequence(bare.toLowerCase(), list(body.args)[0], sequenceAccess)
    if ((schema === undefined || schema === 'pg_catalog') && INDEX_SUMMARIZERS.has(bare.toLowerCase())) this.summarizedIndex(bare.toLowerCase(), list(body.args)[0])
    this.fields(body, ['funcname'])
  }

  /**
   * The sequence a sequence function names, as a relation of the operation; one it names otherwise
   * (an OID, a value computed at run time) may be any sequence, so it counts as every table.
   */
  private sequence(fn: string, arg: unknown, access: AccessKind): void {
    const named = regclassName(arg)
    if (!named) {
      const every = `${fn}() is given a sequence dbgate cannot read from the statement, which may belong to any table; write its name as a constant (${fn}('scratch.items_id_seq'))`
      if (!this.current.tables.some((t) => t.every === every)) this.current.tables.push({name: '*', access, every})
      return
    }
    const saved = this.access
    this.table(named.schema ? {schemaname: named.schema, relname: named.name} : {relname: named.name}, access, false)
    this.access = saved
  }

  /**
   * The index a summarizing call names, judged by what a write to it runs (its expressions and
   * operator classes); one it names otherwise (an OID, a value computed at run time) may be any
   * index, whose code dbgate does not look up, so the call needs a reviewer.
   */
  private summarizedIndex(fn: string, arg: unknown): void {
    const named = regclassName(arg)
    if (!named) {
      this.push(unseenCode(`${fn}() is given an index dbgate cannot read from the statement, and summarizing a BRIN index evaluates its expressions on the rows of its table; write the index's name as a constant (${fn}('public.t_brin'))`))
      return
    }
    this.addWriteCode(this.current, named.schema ? {schemaname: named.schema, relname: named.name} : {relname: named.name})
  }

  private call(c: CatalogCall): void {
    const calls = (this.current.calls ??= [])
    if (!calls.some((x) => sameCall(x, c))) calls.push(c)
  }

  /** Operators run functions; `OPERATOR(s.op)` names its schema. BETWEEN is two comparisons. */
  private operatorCall(body: Obj): void {
    const kind = String(body.kind)
    const args = body.lexpr === undefined ? 1 : 2
    if (kind === 'AEXPR_BETWEEN' || kind === 'AEXPR_NOT_BETWEEN' || kind === 'AEXPR_BETWEEN_SYM' || kind === 'AEXPR_NOT_BETWEEN_SYM') {
      this.call({kind: 'operator', name: '>=', args: 2})
      this.call({kind: 'operator', name: '<=', args: 2})
      return
    }
    if (Array.isArray(body.name)) this.operator(body.name, args)
  }

  private operator(nameList: unknown[], args: number): void {
    const parts = names(nameList)
    const symbol = parts.at(-1)
    if (!symbol) return
    this.call({kind: 'operator', ...(parts.length >= 2 ? {schema: parts[parts.length - 2]} : {}), name: symbol, args})
  }

  /**
   * A cast may run a cast function or a domain's checks: into a type that is not built in, and
   * into a built-in one too, from a user's type by a user's cast function (`c::text` with
   * `CREATE CAST (comp AS text) WITH FUNCTION …`), or when a type in another schema shadows it.
   */
  private castCall(typeName: unknown): void {
    if (!isObj(typeName)) return
    const parts = names(typeName.names)
    const bare = parts.at(-1)
    if (!bare) return
    const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined
    this.call({kind: 'cast', ...(schema ? {schema} : {}), name: bare, args: 1})
  }

  // ---- statement families ------------------------------------------------------------------

  private copy(body: Obj): void {
    const rel = isRangeVar(body.relation) ? body.relation : undefined
    const filename = str(body.filename)
    const isFrom = body.is_from === true
    let o: Operation
    if (body.is_program) o = op('admin', 'copy', {flags: ['program'], detail: filename})
    else if (filename !== undefined) o = op('admin', 'copy', {flags: ['server_file'], detail: filename})
    else o = op(isFrom ? 'write' : 'read', 'copy')
    this.open(o, () => this.target(body, rel, isFrom ? 'write' : 'read'))
  }

  private explain(body: Obj): void {
    const inner = isObj(body.query) ? body.query : undefined
    if (inner && explainAnalyzes(body.options)) {
      // EXPLAIN ANALYZE runs the statement, so it is judged as the statement.
      this.statement(inner)
      return
    }
    // Plain EXPLAIN only plans. Its inner statement's tables and calls are still reported, and
    // known-dangerous calls stay operations, since the planner may evaluate constant calls.
    const sub = inner ? StatementWalker.walk(inner).operations : []
    const e = op('read', 'explain')
    for (const o of sub) {
      for (const t of o.tables) if (!e.tables.some((x) => x.name === t.name && x.schema === t.schema)) e.tables.push({...t, access: 'read'})
      for (const f of o.functions) if (!e.functions.includes(f)) e.functions.push(f)
      // The planner may run constant calls, so what they resolve to is judged as if they ran.
      for (const c of o.calls ?? []) if (!(e.calls ??= []).some((x) => sameCall(x, c))) e.calls.push(c)
    }
    this.push(e)
    for (const o of sub) if (o.command === 'set' && o.functions.length > 0) this.push(o)
  }

  private drop(body: Obj): void {
    const object = objectKind(body.removeType) ?? 'object'
    const o = op('ddl', 'drop', {object})
    if (RELATION_KINDS.has(object)) {
      for (const item of list(body.objects)) {
        const u = unwrap(item)
        const parts = u && u[0] === 'List' ? names(u[1].items) : names([item])
        const name = parts.at(-1)
        if (!name) continue
        const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined
        o.tables.push(schema ? {schema, name, access: 'ddl'} : {name, access: 'ddl'})
      }
    }
    this.push(o)
  }

  private setOperation(body: Obj): Operation {
    const kind = String(body.kind)
    const name = (str(body.name) ?? '').toLowerCase()
    if (kind === 'VAR_SET_MULTI') return op('session', 'set', {setting: {name, reset: false, dynamic: false}})
    if (kind === 'VAR_RESET_ALL') return op('session', 'reset', {setting: {name: 'all', reset: true, dynamic: false}})
    const reset = kind === 'VAR_RESET' || kind === 'VAR_SET_DEFAULT'
    const command = kind === 'VAR_RESET' ? 'reset' : 'set'
    const args = list(body.args)
    const values = args.map(constText)
    const dynamic = !reset && values.some((v) => v === undefined)
    const value = reset || dynamic ? undefined : values.join(', ')
    return settingOperation(command, {name, value, reset, dynamic})
  }

  /** `set_config(name, value, is_local)` is SET by another name and is judged exactly like it. */
  private setConfigOperation(fn: string, args: unknown[]): Operation {
    const name = constText(args[0])
    if (name === undefined) {
      return op('unknown', 'set', {functions: [fn], detail: 'set_config with a setting name that is not a constant cannot be judged'})
    }
    const value = constText(args[1])
    const o = settingOperation('set', {name: name.toLowerCase(), value, reset: false, dynamic: value === undefined})
    o.functions.push(fn)
    return o
  }
}

/**
 * pg_catalog.pg_settings has an UPDATE rule that calls set_config for each row it matches: writing
 * to it changes settings that the statement names only as data. (An unqualified name is the
 * system view, since pg_catalog is searched first unless a search_path lists it later; refusing a
 * user table of that name too fails closed.)
 */
function writesSettings(schema: string | undefined, name: string): boolean {
  return name === 'pg_settings' && (schema === undefined || schema === 'pg_catalog')
}

function sameCall(a: CatalogCall, b: CatalogCall): boolean {
  return a.kind === b.kind && a.name === b.name && a.schema === b.schema && a.args === b.args && a.judgedAsSetting === b.judgedAsSetting && a.judgedAsCast === b.judgedAsCast && a.partitionKeyOnly === b.partitionKeyOnly
}

/**
 * The type a built-in that converts into a type its arguments choose (functions.ts,
 * TYPE_CHOSEN_BY_DATA) converts into, when the statement shows it: the type name of
 * `pg_input_is_valid(v, 'schema.type')` and `pg_input_error_info` given as a constant, and the cast
 * of `json_populate_record(null::t, …)` and its siblings' first argument. Undefined otherwise
 * (a type name computed at run time, a type OID, a table's row): the call is then judged by what
 * it may convert into, anything.
 */
function typeShownFor(fn: string, args: readonly unknown[]): Obj | undefined {
  if (fn === 'pg_input_is_valid' || fn === 'pg_input_error_info') {
    // A plain literal only: a cast could change the text the server reads (`'public.dx'::varchar(8)` is 'public.d').
    const text = args.length === 2 && unwrap(args[1])?.[0] === 'A_Const' ? constText(args[1]) : undefined
    return text === undefined ? undefined : typeNameOf(text)
  }
  if (/^jsonb?_populate_record(set|_valid)?$/.test(fn)) {
    const first = unwrap(args[0])
    return first?.[0] === 'TypeCast' && isObj(first[1].typeName) ? first[1].typeName : undefined
  }
  return undefined
}

/**
 * A type name given as text, read as the server reads it (parse_type.c, typeStringToTypeName):
 * `SELECT NULL::<text>` must parse to exactly that one cast and nothing else.
 */
function typeNameOf(text: string): Obj | undefined {
  const parsed = parseStatements(`SELECT NULL::${text}`)
  if (!parsed.ok || parsed.statements.length !== 1) return undefined
  const stmt = unwrap(parsed.statements[0]!.node)
  if (stmt?.[0] !== 'SelectStmt' || Object.keys(stmt[1]).some((k) => !['targetList', 'limitOption', 'op'].includes(k))) return undefined
  const targets = list(stmt[1].targetList)
  const target = targets.length === 1 ? unwrap(targets[0]) : undefined
  if (target?.[0] !== 'ResTarget' || target[1].name !== undefined) return undefined
  const cast = unwrap(target[1].val)
  if (cast?.[0] !== 'TypeCast' || unwrap(cast[1].arg)?.[1].isnull !== true || !isObj(cast[1].typeName)) return undefined
  return cast[1].typeName
}

function settingOperation(command: string, setting: SettingChange): Operation {
  const flags: OperationFlag[] = []
  let cls: StatementClass = 'session'
  let detail: string | undefined
  const verdict = judgeSetting(setting)
  if (verdict) {
    flags.push(verdict.flag)
    detail = verdict.reason
    if (verdict.class) cls = verdict.class
  }
  if (createsInTemp(setting)) flags.push('shadows_builtin_type')
  return op(cls, command, {setting, flags, ...(detail ? {detail} : {})})
}

function tableRef(rv: Obj, access: AccessKind): {schema?: string; name: string; access: AccessKind} {
  const schema = str(rv.schemaname)
  const name = str(rv.relname) ?? ''
  return schema ? {schema, name, access} : {name, access}
}

/** Whether EXPLAIN's options turn ANALYZE on; any value we cannot read counts as on. */
function explainAnalyzes(options: unknown): boolean {
  let on = false
  for (const o of list(options)) {
    const u = unwrap(o)
    if (!u || u[0] !== 'DefElem' || u[1].defname !== 'analyze') continue
    const arg = u[1].arg
    if (arg === undefined) {
      on = true
      continue
    }
    const text = (constText(arg) ?? 'on').toLowerCase()
    on = !['false', 'off', '0', 'no', 'f', 'n'].includes(text)
  }
  return on
}

/**
 * A session's temporary schema is searched before pg_catalog for type names (and for relations,
 * whose row types are types), so a temporary domain, type, table, view or sequence named `text`
 * takes the built-in's place for every later statement of that session: `'x'::text` and a new
 * column of type `text` then run that domain's check, code no statement shows, while dbgate
 * judges them as the built-in (its catalog connection cannot see another session's temporary
 * objects). Only the temporary schema can do this: the others come after pg_catalog on the
 * default search_path, and dbgate refuses a search_path that names other schemas. So a statement
 * that would put a type or relation named like a built-in type into the temporary schema is
 * refused outright (a guard in rules.ts).
 */
import {isBuiltinType} from './builtins.js'
import {isObj, list, names, unwrap, type Obj} from '../sql/tree.js'

const isTempSchema = (schema: unknown): boolean => typeof schema === 'string' && schema.startsWith('pg_temp')

/** The name a relation being created gets, when it goes to the temporary schema. */
function tempRelationName(rel: unknown): string | undefined {
  if (!isObj(rel) || typeof rel.relname !== 'string') return undefined
  return rel.relpersistence === 't' || isTempSchema(rel.schemaname) ? rel.relname : undefined
}

/** The name of a type being created as `pg_temp.name`. */
function tempTypeName(qualified: unknown): string | undefined {
  const n = names(qualified)
  return n.length === 2 && isTempSchema(n[0]) ? n[1] : undefined
}

/**
 * The name a range type's `multirange_type_name` gives the multirange made with it, when it may go
 * to the temporary schema: written `pg_temp.name`, or unqualified (it goes where the session's
 * search_path creates objects, not beside the range).
 */
function multirangeName(params: unknown): string | undefined {
  for (const p of list(params)) {
    const def = unwrap(p)
    if (def?.[0] !== 'DefElem' || def[1].defname !== 'multirange_type_name') continue
    const arg = unwrap(def[1].arg)
    const n = arg?.[0] === 'TypeName' ? names(arg[1].names) : arg?.[0] === 'String' && typeof arg[1].sval === 'string' ? [arg[1].sval] : []
    // An argument of a shape not read here: judged as the built-in name it may be.
    if (n.length === 0) return 'text'
    if (n.length === 1 || isTempSchema(n[0])) return n.at(-1)
  }
  return undefined
}

/** Object kinds that are (or carry) a type whose name a column type or a cast can mean. */
const TYPED_OBJECTS: ReadonlySet<unknown> = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_SEQUENCE', 'OBJECT_FOREIGN_TABLE', 'OBJECT_TYPE', 'OBJECT_DOMAIN'])

/** Object kinds whose RENAME can name a typed object: `ALTER INDEX t RENAME TO text` renames a table t too. */
const RENAMED_OBJECTS: ReadonlySet<unknown> = new Set([...TYPED_OBJECTS, 'OBJECT_INDEX'])

/** The qualified name of an object a statement names by a name list (`object`, wrapped in a List or not). */
function objectNames(object: unknown): string[] {
  return names(isObj(object) && isObj(object.List) ? object.List.items : object)
}

/** Whether an existing object, as a statement names it, may be in the temporary schema: unqualified (searched there first) or qualified so. */
function mayBeTemp(relation: unknown, object: unknown): boolean {
  if (isObj(relation)) return relation.schemaname === undefined || isTempSchema(relation.schemaname)
  const n = objectNames(object)
  return n.length < 2 || isTempSchema(n[0])
}

/** Where each statement that creates a relation (and with it a row type) names it. */
const CREATED_RELATION: ReadonlyMap<string, (body: Obj) => unknown> = new Map<string, (body: Obj) => unknown>([
  ['CreateStmt', (b) => b.relation],
  ['ViewStmt', (b) => b.view],
  ['CreateForeignTableStmt', (b) => (isObj(b.base) ? b.base.relation : undefined)],
  ['CreateSeqStmt', (b) => b.sequence],
  ['CreateTableAsStmt', (b) => (isObj(b.into) ? b.into.rel : undefined)],
  ['SelectStmt', (b) => (isObj(b.intoClause) ? b.intoClause.rel : undefined)],
  ['CompositeTypeStmt', (b) => b.typevar],
])

/** Where each statement that creates a type by a qualified name names it. */
const CREATED_TYPE: ReadonlyMap<string, (body: Obj) => unknown> = new Map<string, (body: Obj) => unknown>([
  ['CreateDomainStmt', (b) => b.domainname],
  ['CreateEnumStmt', (b) => b.typeName],
  ['DefineStmt', (b) => (b.kind === 'OBJECT_TYPE' ? b.defnames : undefined)],
])

/** What `shadowedBuiltinType` answers for IMPORT FOREIGN SCHEMA into the temporary schema: names the foreign server chooses. */
export const FOREIGN_NAMES = '(the names the foreign server lists)'

/** The built-in type name a statement would give a temporary type or relation (or `FOREIGN_NAMES`), or undefined. */
export function shadowedBuiltinType(type: string, body: Obj): string | undefined {
  const relation = CREATED_RELATION.get(type)
  if (relation) return builtin(tempRelationName(relation(body)))
  const created = CREATED_TYPE.get(type)
  if (created) return builtin(tempTypeName(created(body)))
  switch (type) {
    case 'ImportForeignSchemaStmt': {
      if (!isTempSchema(body.local_schema)) return undefined
      // The wrapper names what it makes (postgres_fdw as the remote tables are named, whatever
      // LIMIT TO says): anything it lists may be named like a built-in type.
      const listed = list(body.table_list).map((t) => unwrap(t)?.[1].relname)
      return listed.find((n): n is string => typeof n === 'string' && isBuiltinType(n)) ?? FOREIGN_NAMES
    }
    case 'CreateRangeStmt':
      // Two types: the range, and the multirange made with it under a name of its own.
      return builtin(tempTypeName(body.typeName)) ?? builtin(multirangeName(body.params))
    case 'RenameStmt':
      return RENAMED_OBJECTS.has(body.renameType) && typeof body.newname === 'string' && mayBeTemp(body.relation, body.object) ? builtin(body.newname) : undefined
    case 'AlterObjectSchemaStmt':
      if (!TYPED_OBJECTS.has(body.objectType) || !isTempSchema(body.newschema)) return undefined
      return builtin(isObj(body.relation) ? (typeof body.relation.relname === 'string' ? body.relation.relname : undefined) : objectNames(body.object).at(-1))
    default:
      return undefined
  }
}

/** `name` when a built-in type has it. */
function builtin(name: string | undefined): string | undefined {
  return name !== undefined && isBuiltinType(name) ? name : undefined
}

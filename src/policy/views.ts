/**
 * What `tables:` rules match beyond the names a statement writes: the relations behind the views,
 * materialized views and rules it reads or writes through, and the system relations that show
 * samples of every table's values (the planner statistics).
 *
 * A per-target step, like resolving calls (catalog.ts): analyses are shared across targets, so the
 * tables behind a view are added on top of them, from the target's catalog. Without a catalog
 * (`dbgate policy check`) names are judged as written, and the report says so.
 */
import {mapStatements, withOperations} from './analyze.js'
import type {CatalogKey, FunctionCatalog} from './catalog.js'
import type {Operation, OperationFlag, StatementAnalysis, TableRef} from './types.js'
import {INFORMATION_SCHEMA_RELATIONS} from '../sql/system-relations.js'

/** One relation a view or a rule reads or writes, as the target's catalog records it. */
export interface TableBehind {
  /** Schema of the relation the statement names (the view), to match a qualified name. */
  scope: string
  schema: string
  name: string
  /** The chain of views and rules it is reached through, e.g. `the view public.v2, over the view public.v1`. */
  via: string
  /** Reached through SELECT rules (view definitions) alone: a read of the view reads it. Rules on other events fire only for writes. */
  selectOnly: boolean
  /**
   * Reached through a foreign key whose action writes the referencing table: `d` when a DELETE of
   * the referenced rows does (ON DELETE CASCADE, SET NULL, SET DEFAULT), `u` when an UPDATE of
   * them does; both when both. Only a write of that kind reaches it.
   */
  cascade?: string
  /**
   * Set when the chain passes through a rule on a write (`ON INSERT … DO INSTEAD DELETE FROM …`):
   * past it the statement that runs is the rule's action, not the client's command, so a cascading
   * foreign key beyond it is reached by any write (`INSERT INTO v` deleting the referenced rows).
   */
  rewritten?: true
  /** Set when the views nest deeper than the lookup follows: what is behind is not known. */
  tooDeep?: true
  /**
   * Set for a foreign table (the relation named, when `via` is empty): its rows come from another
   * server, perhaps this very database's `hr` schema, which the catalog does not show.
   */
  foreign?: true
  /**
   * Set when a write to this relation (the one named, when `via` is empty) runs user code the
   * statement does not name: a trigger, or a default, constraint or index calling a user function.
   */
  runsCode?: true
}

/** A catalog that can say what is behind a relation (the tunnel's; the offline one cannot). */
export interface ViewAwareCatalog extends FunctionCatalog {
  /** Everything behind the relations named `key` (`r:name`) in every user schema; undefined when not looked up. */
  tablesBehind(key: CatalogKey): readonly TableBehind[] | undefined
}

export function seesViews(catalog: FunctionCatalog): catalog is ViewAwareCatalog {
  return typeof (catalog as Partial<ViewAwareCatalog>).tablesBehind === 'function'
}

/** How deep the lookup follows views on views; deeper fails closed (`TableBehind.tooDeep`). */
export const VIEW_DEPTH_LIMIT = 8

/** The kind of a trigger lookup's row for a relation a write reaches beyond `VIEW_DEPTH_LIMIT`, whose triggers were not read. */
export const BEYOND_DEPTH_KIND = 'beyond_depth'

/** The kind of a trigger lookup's row for a rule on a write (INSERT, UPDATE, DELETE): its actions run with the write. */
export const WRITE_RULE_KIND = 'write_rule'

/**
 * Where a trigger lookup's candidate keeps its body among the catalog's bodies: a function's under
 * its pg_proc OID, a rule's under its pg_rewrite OID negated (the two catalogs' OIDs may coincide).
 */
export function bodyKey(c: {kind: string; oid?: number}): number | undefined {
  if (c.oid === undefined) return undefined
  return c.kind === WRITE_RULE_KIND ? -c.oid : c.oid
}

/**
 * The system relations that hold or show values sampled from table columns (most common values,
 * histogram bounds, extended statistics' MCV lists and expression statistics). Reading them reads
 * a sample of every analysed table, whichever schema the statement names in its WHERE.
 */
export const STATISTICS_RELATIONS: ReadonlySet<string> = new Set(['pg_stats', 'pg_stats_ext', 'pg_stats_ext_exprs', 'pg_statistic', 'pg_statistic_ext_data'])

/**
 * Why `t` counts as reading every table for `tables:` rules, or undefined. Every restricting rule
 * with a `tables:` list matches such an operation, and no allow rule with one carries it.
 */
export function everyTableReason(t: TableRef): string | undefined {
  if (t.every) return t.every
  if ((t.schema === undefined || t.schema === 'pg_catalog') && STATISTICS_RELATIONS.has(t.name)) {
    return `pg_catalog.${t.name} shows values sampled from the columns of every analysed table (most common values, histogram bounds), so rules on tables count it as reading every table`
  }
  return undefined
}

function qualifiedName(t: Pick<TableRef, 'schema' | 'name'>): string {
  return t.schema ? `${t.schema}.${t.name}` : t.name
}

/** How `t` reads in an error: `hr.salaries, through the view public.staff_directory`. */
export function describeTable(t: TableRef): string {
  return t.via ? `${qualifiedName(t)}, through ${t.via}` : qualifiedName(t)
}

function scopeFits(schema: string | undefined, b: TableBehind): boolean {
  if (schema === undefined) return true
  if (schema === 'pg_temp') return b.scope.startsWith('pg_temp')
  return b.scope === schema
}

function foreignReason(b: TableBehind): string {
  const name = `${b.schema}.${b.name}`
  return `${b.via ? `${name} (through ${b.via})` : name} is a foreign table: its rows come from another server (which may be this database, hr tables included), and dbgate cannot see which tables they are read from`
}

/**
 * Whether a write by `command` reaches a table behind a cascading foreign key (`TableBehind.cascade`):
 * a DELETE through ON DELETE actions, an UPDATE (an upsert's too) through ON UPDATE ones, a MERGE
 * through either. An INSERT or COPY changes no referenced row.
 */
function cascadesTo(command: string, cascade: string): boolean {
  if (command === 'delete') return cascade.includes('d')
  if (command === 'update') return cascade.includes('u')
  if (command === 'merge') return true
  return false
}

/** The tables behind one table reference of an operation run by `command`, or undefined when nothing is behind it. */
function behind(t: TableRef, command: string, catalog: ViewAwareCatalog): TableRef[] | undefined {
  // DDL on a view (DROP VIEW, ALTER VIEW) does not touch the tables behind it.
  if (t.access === 'ddl') return undefined
  const all = catalog.tablesBehind(`r:${t.name}`)
  if (all === undefined) {
    // Not looked up (the lookup failed): the call step refuses the relation too; this keeps tables rules closed on their own.
    return [{...t, every: `dbgate could not look up what is behind ${qualifiedName(t)} in the target's catalog`}]
  }
  const out: TableRef[] = []
  for (const b of all) {
    if (!scopeFits(t.schema, b) || (t.access === 'read' && !b.selectOnly)) continue
    if (b.cascade !== undefined && !(t.access === 'write' && (b.rewritten || cascadesTo(command, b.cascade)))) continue
    // The code a write runs is reached by writes alone; the relation named itself is reported for that only.
    const runsCode = b.runsCode && t.access === 'write' ? {runsCode: true as const} : {}
    if (!b.via && !b.foreign && !('runsCode' in runsCode)) continue
    const ref: TableRef = b.tooDeep
      ? {schema: b.schema, name: b.name, access: t.access, via: b.via, every: `${b.via} nests views deeper than ${VIEW_DEPTH_LIMIT} levels, so dbgate cannot see which tables are behind it`}
      : b.foreign
        ? {schema: b.schema, name: b.name, access: t.access, ...(b.via ? {via: b.via} : {}), every: foreignReason(b), ...runsCode}
        : {schema: b.schema, name: b.name, access: t.access, via: b.via, ...runsCode}
    if (!out.some((x) => x.schema === ref.schema && x.name === ref.name && x.via === ref.via)) out.push(ref)
  }
  return out.length > 0 ? out : undefined
}

function withBehind(op: Operation, catalog: ViewAwareCatalog): Operation {
  let added: TableRef[] | undefined
  const known = (r: TableRef) => [...op.tables, ...(added ?? [])].some((x) => x.schema === r.schema && x.name === r.name && x.access === r.access && x.via === r.via && x.every === r.every)
  for (const t of op.tables) {
    // What an earlier pass added (a text's statements are judged again once its EXECUTEs are resolved).
    if (t.via !== undefined || t.every !== undefined) continue
    for (const r of behind(t, op.command, catalog) ?? []) if (!known(r)) (added ??= []).push(r)
  }
  return added ? {...op, tables: [...op.tables, ...added]} : op
}

/**
 * `op` with the relations behind what it reads and writes, for an operation found after the
 * statement's own were given theirs: one a trigger's or a rule's body runs (catalog.ts,
 * `triggerOperations`), whose DELETE of a referenced row cascades as the client's would.
 */
export function operationWithBehind(op: Operation, catalog: FunctionCatalog): Operation {
  return seesViews(catalog) ? withBehind(op, catalog) : op
}

function statementWithBehind(stmt: StatementAnalysis, catalog: ViewAwareCatalog, byOperations: WeakMap<readonly Operation[], Operation[] | null>): StatementAnalysis {
  // Texts of one shape share their operations (`shape-cache.ts`): so do their results, which keeps
  // the decisions kept per operations list (rules.ts) hitting.
  let operations = byOperations.get(stmt.operations)
  if (operations === undefined) {
    let changed = false
    const ops = stmt.operations.map((o) => {
      const r = withBehind(o, catalog)
      if (r !== o) changed = true
      return r
    })
    operations = changed ? ops : null
    byOperations.set(stmt.operations, operations)
  }
  return operations === null ? stmt : withOperations(stmt, operations)
}


const memo = new WeakMap<FunctionCatalog, {generation: number; byOperations: WeakMap<readonly Operation[], Operation[] | null>}>()

/**
 * Adds to every operation the relations behind the views and rules it reads or writes through,
 * marked with the route (`TableRef.via`). Kept per (catalog generation, operations): a text of
 * plain tables comes back as it went in. Offline catalogs see no views: statements come back as
 * they are (see `tablesAsWritten`).
 */
export function addTablesBehindViews(statements: readonly StatementAnalysis[], catalog: FunctionCatalog): StatementAnalysis[] {
  if (!seesViews(catalog)) return statements as StatementAnalysis[]
  let m = memo.get(catalog)
  if (!m || m.generation !== catalog.generation) {
    m = {generation: catalog.generation, byOperations: new WeakMap()}
    memo.set(catalog, m)
  }
  return mapStatements(statements, (s) => statementWithBehind(s, catalog, m.byOperations))
}

/**
 * The relations in user schemas whose names `tables:` rules judged as written because `catalog`
 * cannot see views (`dbgate policy check`); [] when it can.
 */
export function tablesAsWritten(statements: readonly StatementAnalysis[], catalog: FunctionCatalog): string[] {
  if (seesViews(catalog)) return []
  const out = new Set<string>()
  for (const s of statements) {
    for (const t of s.tables) {
      if (t.access !== 'ddl' && !systemRelation(t) && everyTableReason(t) === undefined) out.add(qualifiedName(t))
    }
  }
  return [...out]
}

/**
 * A relation of pg_catalog, or one of information_schema's own: that schema is an ordinary one,
 * where a superuser may make a view over hr.salaries.
 */
function systemRelation(t: TableRef): boolean {
  return t.schema === 'pg_catalog' || (t.schema === 'information_schema' && INFORMATION_SCHEMA_RELATIONS.has(t.name))
}

/**
 * Statement classes that never change what is behind a relation (an allow-list: DDL, `DO`, `CALL`
 * and whatever could not be read may create, replace or re-parent a view, rule or table).
 */
export const CATALOG_KEEPING: ReadonlySet<string> = new Set(['read', 'write', 'transaction', 'session', 'admin', 'privilege'])

/**
 * What the catalog step (catalog.ts) marks a call with when the function it runs may do anything,
 * DDL included: a volatile function (its author's body is not taken as proof: a volatile body
 * runs DDL as readily as a write), one that could not be found or judged, SQL built at run time.
 * Such a call counts as a change to what is behind a relation whatever class its operation has.
 */
const MAY_RUN_DDL: ReadonlySet<OperationFlag> = new Set(['volatile_function', 'unknown_function', 'dynamic_sql', 'changes_catalog'])

/**
 * The key whose candidates are the database's enabled event triggers (one per trigger, by name):
 * DDL that keeps relations (relation-keeping.ts) fires them, and their code may change any
 * relation, so it keeps them only where this key is known to be empty (views.ts).
 */
export const EVENT_TRIGGERS_KEY: CatalogKey = 'e:ddl'

/** How the code of a partition key (its expressions, its operator classes) begins the route it is reached by (`via`) among a write's. */
export const PARTITION_KEY_VIA = 'a partition key'

/**
 * Whether `stmt` may change what is behind a relation: a later statement's lookup may then be out
 * of date. DDL that keeps relations does not, unless an event trigger may fire: its code (`ALTER
 * TABLE hr.salaries INHERIT public.parent` on `ddl_command_end`) runs on any DDL, so it keeps
 * relations only where the catalog knows there is none.
 */
export function mayChangeTablesBehind(stmt: StatementAnalysis, catalog?: FunctionCatalog): boolean {
  const noEventTriggers = catalog?.get(EVENT_TRIGGERS_KEY)?.length === 0
  const keeps = (o: Operation) => o.keepsRelations === true && noEventTriggers
  // COMMIT PREPARED commits whatever DDL the prepared transaction holds.
  return stmt.operations.some((o) => (!CATALOG_KEEPING.has(o.class) && !keeps(o)) || o.command === 'commit_prepared' || o.flags.some((f) => MAY_RUN_DDL.has(f)) || o.tables.some((t) => t.runsCode))
}

/**
 * The statements from position `from` on, with every relation they read or write in a user schema
 * counting as every table (`TableRef.every`). Used while a change to the catalog that this session
 * made is not committed yet (or comes earlier in the same text): the tunnel reads the catalog on a
 * connection of its own, which sees only committed changes, so what it found behind a relation
 * may not be what this session's statement will read (`ALTER TABLE hr.salaries INHERIT
 * public.parent; SELECT * FROM public.parent`).
 */
export function distrustTablesBehind(statements: readonly StatementAnalysis[], from: number, catalog: FunctionCatalog): StatementAnalysis[] {
  if (!seesViews(catalog) || from >= statements.length) return statements as StatementAnalysis[]
  return statements.map((stmt, i) => {
    if (i < from) return stmt
    let changed = false
    const operations = stmt.operations.map((op) => {
      const added: TableRef[] = []
      for (const t of op.tables) {
        if (t.access === 'ddl' || t.via !== undefined || t.every !== undefined || systemRelation(t)) continue
        added.push({...t, every: `this session, or another of this tunnel, changed the catalog in a transaction that is not committed yet (or earlier in the same text), and dbgate reads what is behind ${qualifiedName(t)} only once that change is committed; send this statement after the COMMIT`})
      }
      if (added.length === 0) return op
      changed = true
      return {...op, tables: [...op.tables, ...added]}
    })
    return changed ? withOperations(stmt, operations) : stmt
  })
}

/**
 * Column lineage: for each output column of a statement, which sensitive base columns flow into
 * it, through aliases, expressions, functions, casts, aggregates, subqueries, CTEs, set operations
 * and views. Pure analysis of the libpg_query tree against the catalog; no I/O.
 *
 * Clean only with proof: a value is clean when every part of it provably comes from clean columns,
 * constants or parameters through expression forms, operators and functions known to compute only
 * from their inputs (`functions.ts`). Anything else — an unknown function or node kind, a user
 * function, operator or domain, a relation the catalog does not know — is `unknown`, and the
 * statement counts as reading something the analysis cannot see. Conditions (CASE WHEN, ANY)
 * count as flowing into the value they guard.
 */
import type {Catalog, CatalogRelation} from './catalog.js'
import {builtinKind} from './functions.js'
import {systemRelationKind} from './system-relations.js'
import {isBuiltinType} from '../policy/builtins.js'
import {keepsRelations} from '../policy/relation-keeping.js'
import {INFORMATION_SCHEMA_RELATIONS} from '../sql/system-relations.js'
import {anyUnknown, anySettings, dedupe, derived, either, EMPTY, flatten, named, SETTINGS, transformed, UNKNOWN, type CatalogMiss, type CopyShape, type RenameOf, type Lineage, type NamedLineage, type SensitiveSource, type StatementLineage, type TextLineage} from './lineage-model.js'
import {parseSql} from '../sql/parser.js'
import {isObj, list, svalOf, unwrap, type Obj as Node} from '../sql/tree.js'
import type {MaskingCategory} from './categories.js'

export {flatten, settingsUntraceable, type CatalogMiss, type CopyShape, type Lineage, type NamedLineage, type SensitiveSource, type StatementLineage, type TextLineage} from './lineage-model.js'

// ---- scope ----------------------------------------------------------------------------------

interface ScopeRel {
  /** The name the relation is referenced by: its alias, else its own name. */
  alias: string
  /** Undefined when the relation's columns are not known (unknown tables, set-returning functions). */
  columns?: NamedLineage[]
  /** What any column of an unknown-shape relation carries. */
  fallback: Lineage
  /** For relations known by column name only (system catalogs): a column's lineage. */
  lookup?: (name: string) => Lineage
  /** The catalog relation it is, so a column the catalog does not know can be looked for again. */
  catalog?: {schema: string; relation: string}
  /**
   * Its columns are the catalog's, which the session's uncommitted change may have made another
   * relation's (`unprovenNames`): a whole row of it may have other fields than those.
   */
  shapeUnproven?: true
}

interface Scope {
  rels: ScopeRel[]
  ctes: Map<string, NamedLineage[] | undefined>
  parent?: Scope
}

interface Ctx {
  catalog: Catalog
  touches: boolean
  opaque: boolean
  sideChannels: string[]
  /** Why parts of the output are untraceable, naming what the analysis could not see into. */
  reasons: string[]
  readsSettings: boolean
  misses: CatalogMiss[]
  views: Set<number>
  /** Tables whose column order a COPY without a column list relies on (see `StatementLineage.layouts`). */
  layouts: Set<number>
  /** Tables read whose rows may include rows the catalog does not know of (see `gainsRows`). */
  unvouched: Set<number>
  fills: NonNullable<StatementLineage['fills']>
  /** Views being expanded, against definitions that refer to themselves. */
  expanding: Set<number>
  depth: number
  /**
   * The catalog may not yet hold what ran before this statement (see `analyzeText`): an
   * unqualified function or operator name may then resolve to one created since, not the built-in,
   * and a view's definition may have been replaced since.
   */
  distrustNames: boolean
  /**
   * Relation names that what ran before this statement may have moved (renamed or moved a relation
   * or its columns, made a relation that shadows one), or `all` (code the analysis cannot see
   * into): such a name may mean another relation, or its columns other columns, than the
   * catalog's (`unprovenNames`).
   */
  moved: MovedNames
  /**
   * The session's search_path is not known to be the default: an unqualified relation name that
   * several schemas hold may mean any of them (`shadowedRelation`), not the one in public.
   */
  anyOfSameName: boolean
  /** An unqualified relation name was found in more than one schema (see `StatementLineage.shadowable`). */
  shadowable: boolean
  /** What earlier statements of the same text wrote, which the catalog cannot know yet (see `TextWrite`). */
  written: readonly TextWrite[]
  /** What this statement reads of those writes from relations whose columns the catalog does not know. */
  readWrites: Lineage[]
}

/**
 * Values an earlier statement of the text wrote into a relation (`columns`, by name; `all`: into
 * columns that cannot be told apart). The catalog learns them only after the text, so `CREATE TEMP
 * TABLE t (n text); INSERT INTO t SELECT full_name …; INSERT INTO orders (status) SELECT n FROM t`
 * read t as the catalog knew it: unknown, or clean.
 */
interface TextWrite {
  schema?: string
  name: string
  columns?: readonly NamedLineage[]
  all?: Lineage
}

/**
 * Relation names a session's uncommitted change may have moved (see `Ctx.moved`); undefined: none;
 * `all`: any name. A set may also hold the entries of `ROWS_OF` and `EVERY_NAME`.
 */
export type MovedNames = ReadonlySet<string> | 'all' | undefined

/**
 * How `MovedNames` holds a table that may have gained rows of tables the catalog does not know as
 * its children (`CREATE TABLE k () INHERITS (orders)`, `ALTER TABLE k INHERIT orders`, `ATTACH
 * PARTITION`): its name after a NUL byte, which no relation name holds.
 */
const ROWS_OF = '\u0000'
/**
 * Every name moved, in a set that keeps the tables that gained rows (`all` after them would forget
 * them): `ROWS_OF` before the empty name, which no relation has.
 */
const EVERY_NAME = ROWS_OF

function isMoved(moved: MovedNames, name: string): boolean {
  return moved === 'all' || (moved !== undefined && (moved.has(name) || moved.has(EVERY_NAME)))
}

/** `name`, and `name` as a table that may have gained rows (see `ROWS_OF`). */
function gainingRows(names: Iterable<string>): Set<string> {
  const out = new Set<string>()
  for (const n of names) out.add(n).add(ROWS_OF + n)
  return out
}

/**
 * Whether the session's uncommitted change may have given the table `name` rows of a child or a
 * partition the catalog does not know: the server describes their columns as the table's own
 * (its OID, the attribute number of the same-named column), so that description proves nothing of
 * what they hold. Code the analysis cannot see into (`all`) may as well have written the table
 * itself (see the honest limits).
 */
function gainsRows(moved: MovedNames, name: string): boolean {
  return moved !== undefined && moved !== 'all' && name !== '' && moved.has(ROWS_OF + name)
}

/** The tables, by OID, that `moved` says may have gained rows the catalog does not know (see `gainsRows`). */
export function rowsGainedBy(moved: MovedNames, catalog: Catalog): number[] {
  if (moved === undefined || moved === 'all') return []
  return [...moved].filter((n) => n.length > ROWS_OF.length && n.startsWith(ROWS_OF)).flatMap((n) => catalog.sameNamed(n.slice(ROWS_OF.length)).map((r) => r.oid))
}

/** `a` and `b` together. */
export function bothMoved(a: MovedNames, b: MovedNames): MovedNames {
  if (a === 'all' || b === 'all') {
    // Which tables gained rows is still known, and still matters (see `gainsRows`).
    const kept = [...(a === 'all' ? [] : (a ?? [])), ...(b === 'all' ? [] : (b ?? []))].filter((n) => n.startsWith(ROWS_OF))
    return kept.length === 0 ? 'all' : new Set([EVERY_NAME, ...kept])
  }
  if (!a || a.size === 0) return b
  if (!b || b.size === 0) return a
  return new Set([...a, ...b])
}

function newCtx(catalog: Catalog, distrustNames = false, anyOfSameName = false, moved: MovedNames = undefined, written: readonly TextWrite[] = []): Ctx {
  return {catalog, touches: false, opaque: false, sideChannels: [], reasons: [], readsSettings: false, misses: [], views: new Set(), layouts: new Set(), unvouched: new Set(), fills: [], expanding: new Set(), depth: 0, distrustNames, moved, anyOfSameName, shadowable: false, written, readWrites: []}
}

/**
 * A value of a row whose shape the analysis does not know (`SELECT *` of a relation the catalog
 * does not know): untraceable, and holding whatever earlier statements of the text wrote into the
 * relations read.
 */
function unknownValue(ctx: Ctx): Lineage {
  return ctx.readWrites.length === 0 ? UNKNOWN : derived([UNKNOWN, ...ctx.readWrites])
}

/** What a statement writes, as later statements of its text read it (`TextWrite`). */
function writesOf(l: StatementLineage): TextWrite[] {
  const out: TextWrite[] = []
  const place = (r: {schema?: string; name: string}) => (r.schema === undefined ? {name: r.name} : {schema: r.schema, name: r.name})
  if (l.creates && !l.creates.view) out.push(l.creates.columns ? {...place(l.creates), columns: l.creates.columns} : {...place(l.creates), all: derived([UNKNOWN, ...(l.creates.values ?? [])])})
  for (const f of l.fills ?? []) out.push(f.columns ? {...place(f), columns: f.columns} : {...place(f), all: derived([UNKNOWN, ...(f.values ?? [])])})
  return out
}

/** The earlier writes of the text into a relation of this name (a `pg_temp` write is into any temporary schema's). */
function writtenInto(ctx: Ctx, schema: string | undefined, name: string): TextWrite[] {
  if (ctx.written.length === 0) return []
  return ctx.written.filter((w) => w.name === name && (w.schema === undefined || schema === undefined || w.schema === schema || (w.schema === 'pg_temp' && /^pg_temp_\d+$/.test(schema))))
}

/** A column of a relation, with what earlier statements of the text wrote into it. */
function withWritten(c: NamedLineage, writes: readonly TextWrite[]): NamedLineage {
  const parts = writes.flatMap((w) => [...(w.columns ?? []).filter((f) => f.name === c.name), ...(w.all ? [w.all] : [])])
  return parts.length === 0 ? c : named(c.name, parts.reduce((a: Lineage, b) => either(a, transformedUnlessDirect(b)), c))
}

/** A written value as a column holds it: a direct copy stays the source's own value, anything else is derived. */
function transformedUnlessDirect(l: Lineage): Lineage {
  return l.direct ? l : transformed(l)
}

/** Something the analysis cannot see into: its value is untraceable and the statement may read anything. */
function untraceable(ctx: Ctx, reason: string, parts: Lineage[] = []): Lineage {
  ctx.touches = true
  ctx.opaque = true
  if (!ctx.reasons.includes(reason)) ctx.reasons.push(reason)
  return {...derived(parts), unknown: true}
}

function wholeRow(rel: ScopeRel): Lineage {
  if (!rel.columns) return rel.fallback
  if (rel.shapeUnproven) return {...derived(rel.columns), unknown: true}
  return {sources: dedupe(rel.columns.flatMap(flatten)), direct: false, unknown: rel.columns.some(anyUnknown), fields: rel.columns}
}

function findRel(scope: Scope | undefined, alias: string): ScopeRel | undefined {
  for (let s = scope; s; s = s.parent) {
    const r = s.rels.find((x) => x.alias === alias)
    if (r) return r
  }
  return undefined
}

function findCte(scope: Scope | undefined, name: string): {found: boolean; columns?: NamedLineage[]} {
  for (let s = scope; s; s = s.parent) if (s.ctes.has(name)) return {found: true, columns: s.ctes.get(name)}
  return {found: false}
}

function resolveColumn(scope: Scope, name: string, ctx?: Ctx): Lineage {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    let unsure: Lineage | undefined
    let system = false
    for (const rel of s.rels) {
      if (rel.columns) {
        const col = rel.columns.find((c) => c.name === name)
        if (col) return col
      } else if (rel.lookup) {
        const col = rel.lookup(name)
        if (col !== EMPTY) return col
        system = true
      } else {
        unsure = unsure ? derived([unsure, rel.fallback]) : rel.fallback
      }
    }
    // A relation of unknown shape may own this column; its fallback says what it could carry.
    if (unsure) return unsure
    // A bare relation name is a whole-row reference: `SELECT u FROM users u`.
    const rel = s.rels.find((r) => r.alias === name)
    if (rel) return wholeRow(rel)
    // A system catalog's ordinary column.
    if (system) return EMPTY
  }
  // Perhaps a column added after the catalog was read: any relation in scope may own it. Such a
  // column (added in the session's open transaction) may hold anything, its table's other
  // columns being clean says nothing about it: the statement counts as touching sensitive data,
  // so its untraceable output is masked.
  if (ctx) for (let s: Scope | undefined = scope; s; s = s.parent) for (const rel of s.rels) if (rel.catalog) missedColumn(ctx, rel.catalog, name)
  return UNKNOWN
}

function columnRef(node: Node, scope: Scope, ctx: Ctx): Lineage {
  const fields = list(node.fields)
  const names = fields.map(svalOf)
  const star = fields.some((f) => unwrap(f)?.[0] === 'A_Star')
  if (star) {
    if (names.length === 1) return derived(scope.rels.map(wholeRow))
    const rel = findRel(scope, names[names.length - 2]!)
    return rel ? wholeRow(rel) : UNKNOWN
  }
  if (names.some((n) => n === undefined)) return UNKNOWN
  if (names.length === 1) return resolveColumn(scope, names[0]!, ctx)
  const relName = names[names.length - 2]!
  const colName = names[names.length - 1]!
  const rel = findRel(scope, relName)
  if (!rel) {
    // `(u).email` parses elsewhere; `u.email` where `u` is a composite column of an outer relation.
    const composite = resolveColumn(scope, relName)
    return (composite.fields && fieldNamed(composite.fields, colName)) ?? derived([composite])
  }
  if (!rel.columns) return rel.lookup ? rel.lookup(colName) : rel.fallback
  const col = rel.columns.find((c) => c.name === colName)
  if (col) return col
  if (rel.catalog) missedColumn(ctx, rel.catalog, colName)
  return UNKNOWN
}

/** A column the catalog does not know of a relation it does: see `resolveColumn`. */
function missedColumn(ctx: Ctx, relation: NonNullable<ScopeRel['catalog']>, column: string): void {
  ctx.misses.push({...relation, column})
  ctx.touches = true
}

// ---- relations --------------------------------------------------------------------------------

/**
 * The system schema a relation name, as written, is in: anything pg_catalog holds (nothing can be
 * made there), information_schema's own relations, and unqualified, a pg_ name pg_catalog has.
 */
function systemSchema(schema: string | undefined, name: string): 'pg_catalog' | 'information_schema' | undefined {
  if (schema === 'pg_catalog') return 'pg_catalog'
  if (schema === 'information_schema') return INFORMATION_SCHEMA_RELATIONS.has(name) ? 'information_schema' : undefined
  // Unqualified, any other pg_ name is a relation of the session's own (a temporary table, or one
  // its open transaction created) that the catalog has not read, whatever was copied into it.
  return schema === undefined && name.startsWith('pg_') && isBuiltinType(name) ? 'pg_catalog' : undefined
}

function systemRelation(schema: 'pg_catalog' | 'information_schema', name: string, as: string, ctx: Ctx): ScopeRel {
  const kind = systemRelationKind(schema, name)
  if (!kind) {
    ctx.touches = true
    const reason = `${schema}.${name} is not a system relation masking has reviewed`
    if (!ctx.reasons.includes(reason)) ctx.reasons.push(reason)
    return {alias: as, fallback: UNKNOWN}
  }
  switch (kind.kind) {
    case 'catalog':
      return {alias: as, fallback: EMPTY, lookup: () => EMPTY}
    case 'settings':
      ctx.readsSettings = true
      return {alias: as, fallback: SETTINGS, lookup: (column) => (kind.columns.has(column) ? SETTINGS : EMPTY)}
    case 'whole':
      ctx.touches = true
      return {alias: as, fallback: UNKNOWN}
    case 'columns':
      ctx.touches = true
      return {
        alias: as,
        fallback: UNKNOWN,
        lookup: (column) => {
          const category = kind.columns[column]
          if (!category) return EMPTY
          return {sources: [{relation: `${schema}.${name}`, column, category, reason: 'system column holding secrets or user data'}], direct: true, unknown: false}
        },
      }
  }
}

/**
 * Whether a relation's rows may hold sensitive values: its columns, or those of the tables that
 * inherit from it (or are its partitions), which may have columns of their own: `UPDATE parent`
 * runs a child's constraints on the child's `full_name`, which the parent does not have.
 */
function holdsSensitive(rel: CatalogRelation, catalog: Catalog, seen = new Set<number>()): boolean {
  if (rel.columns.some((c) => c.sensitive)) return true
  seen.add(rel.oid)
  return (rel.children ?? []).some((oid) => {
    if (seen.has(oid)) return false
    const child = catalog.relation(oid)
    return !child || holdsSensitive(child, catalog, seen)
  })
}

function catalogRelation(rel: CatalogRelation, ctx: Ctx): NamedLineage[] {
  if (holdsSensitive(rel, ctx.catalog)) ctx.touches = true
  // Row-level security runs the policies' expressions, which may call user functions.
  if (rel.rowSecurity) ctx.opaque = true
  const own = rel.columns.map((c): NamedLineage => {
    const origin = {tableOid: rel.oid, attnum: c.attnum}
    if (!c.sensitive) return {name: c.name, sources: [], direct: true, unknown: false, origin}
    const source: SensitiveSource = {relation: `${rel.schema}.${rel.name}`, column: c.name, category: c.sensitive.category, reason: c.sensitive.reason, typeName: c.typeName, ...(c.sensitive.untraced ? {untraced: true as const} : {})}
    return {name: c.name, sources: [source], direct: !c.sensitive.inexact, unknown: false, origin}
  })
  if (rel.viewDefinition === undefined) {
    if (gainsRows(ctx.moved, rel.name)) ctx.unvouched.add(rel.oid)
    const writes = writtenInto(ctx, rel.schema, rel.name)
    const held = writes.length === 0 ? own : own.map((c) => withWritten(c, writes))
    return isMoved(ctx.moved, rel.name) ? unprovenNames(held, ctx) : held
  }
  ctx.views.add(rel.oid)
  // A definition known to have changed, but not re-read, or one an earlier statement may have
  // replaced (names distrusted: the catalog has not read what it did): nothing it says can be relied on.
  const viewed = ctx.catalog.isStale(rel.oid) || ctx.distrustNames ? undefined : viewColumns(rel, ctx)
  if (!viewed) {
    ctx.touches = true
    if (!ctx.reasons.includes(`the definition of view ${rel.schema}.${rel.name} could not be followed`)) ctx.reasons.push(`the definition of view ${rel.schema}.${rel.name} could not be followed`)
  }
  // A view's own column names are classified too: a view column called `email` is masked even if
  // its definition hides where it comes from.
  return own.map((c, i) => {
    const v = viewed?.[i]
    if (!v) return {...c, unknown: c.sources.length === 0}
    // PostgreSQL describes a view's columns as the view's own, whatever they are built from.
    return {...named(c.name, c.sources.length > 0 ? either({...c, origin: undefined}, v) : v), origin: c.origin}
  })
}

/**
 * A table's columns as its name finds them while the session's own change to that name is not
 * committed (`Ctx.moved`): the catalog, read on a connection of its own, holds the
 * committed names, but the open transaction may have renamed them (`ALTER TABLE customers RENAME
 * TO orders`, `RENAME full_name TO country` after `country` was renamed away), also inside a DO
 * block. So what the name holds is untraceable, and may be sensitive whatever the catalog says of
 * it. What stays provable is a column the server describes as its origin, table OID and attribute
 * number, which a rename keeps (plan.ts `vouched`); an expression over it has no such description.
 */
function unprovenNames(columns: NamedLineage[], ctx: Ctx): NamedLineage[] {
  ctx.touches = true
  const reason = 'a table or column name may mean another one than the catalog says until the change this session made to the schema is committed (send it after the COMMIT, or read the column as it is)'
  if (!ctx.reasons.includes(reason)) ctx.reasons.push(reason)
  return columns.map((c) => ({...c, unknown: true}))
}

function viewColumns(rel: CatalogRelation, ctx: Ctx): NamedLineage[] | undefined {
  if (ctx.expanding.has(rel.oid) || ctx.depth > 32) return undefined
  const parsed = parseSql(rel.viewDefinition!)
  if (!parsed.ok || parsed.statements.length !== 1) return undefined
  const sel = unwrap(parsed.statements[0])
  if (!sel || sel[0] !== 'SelectStmt') return undefined
  ctx.expanding.add(rel.oid)
  ctx.depth++
  try {
    return selectOutput(sel[1], undefined, ctx)
  } finally {
    ctx.expanding.delete(rel.oid)
    ctx.depth--
  }
}

/**
 * A write through an updatable view lands in its base table: `INSERT INTO v SELECT id, address …`
 * fills the base column each written view column passes through (views of views followed).
 */
function throughView(view: CatalogRelation, columns: NamedLineage[], ctx: Ctx, depth: number): void {
  if (view.viewDefinition === undefined || depth > 32) return
  const viewed = viewColumns(view, ctx)
  if (!viewed) return
  for (const c of columns) {
    const origin = viewed[view.columns.findIndex((v) => v.name === c.name)]?.origin
    const base = origin && ctx.catalog.relation(origin.tableOid)
    const column = base?.columns.find((x) => x.attnum === origin!.attnum)
    if (!base || !column) continue
    const filled = named(column.name, c)
    ctx.fills.push({schema: base.schema, name: base.name, columns: [filled]})
    throughView(base, [filled], ctx, depth + 1)
  }
}

function renamed(columns: NamedLineage[] | undefined, alias: Node | undefined): NamedLineage[] | undefined {
  const colnames = list(alias?.colnames).map(svalOf)
  if (!columns || colnames.length === 0) return columns
  return columns.map((c, i) => (colnames[i] ? named(colnames[i]!, c) : c))
}

function rangeVar(node: Node, scope: Scope, ctx: Ctx): ScopeRel {
  const schema = node.schemaname as string | undefined
  const name = node.relname as string
  const alias = node.alias as Node | undefined
  const as = (alias?.aliasname as string | undefined) ?? name
  if (!schema) {
    const cte = findCte(scope, name)
    if (cte.found) return {alias: as, columns: renamed(cte.columns, alias), fallback: cte.columns ? EMPTY : UNKNOWN}
  }
  if (!schema) {
    const same = ctx.catalog.sameNamed(name)
    if (same.length > 1) {
      ctx.shadowable = true
      // A session's temporary relations go first whatever the search_path says, and the catalog
      // cannot tell which session's pg_temp_N is this one's: a name one of them holds may be it.
      if (ctx.anyOfSameName || same.some((r) => r.schema.startsWith('pg_temp'))) return shadowedRelation(same, as, ctx)
    }
  }
  const found = ctx.catalog.lookup(schema, name)
  if (found.length === 1) {
    const rel = found[0]!
    return {alias: as, columns: renamed(catalogRelation(rel, ctx), alias), fallback: EMPTY, catalog: {schema: rel.schema, relation: rel.name}, ...(isMoved(ctx.moved, rel.name) ? {shapeUnproven: true as const} : {})}
  }
  if (found.length > 1) {
    const all = found.map((r) => catalogRelation(r, ctx))
    return {alias: as, fallback: derived(all.map((cols) => derived(cols)))}
  }
  const system = systemSchema(schema, name)
  if (system) return systemRelation(system, name, as, ctx)
  // Created after the catalog was read, a temporary table, or reached through search_path: its
  // columns could hold anything until the catalog is read again.
  ctx.touches = true
  ctx.misses.push({...(schema ? {schema} : {}), relation: name})
  const reason = `the catalog does not know the relation ${schema ? `${schema}.` : ''}${name}`
  if (!ctx.reasons.includes(reason)) ctx.reasons.push(reason)
  // Made earlier in the text: which column holds what was written into it is not followed, every one may.
  const writes = writtenInto(ctx, schema, name)
  const held = writes.flatMap((w) => [...(w.columns ?? []), ...(w.all ? [w.all] : [])])
  if (held.length === 0) return {alias: as, fallback: UNKNOWN}
  ctx.readWrites.push(...held)
  return {alias: as, fallback: derived([UNKNOWN, ...held])}
}

/**
 * An unqualified name that several schemas hold, where the session's search_path may pick any of
 * them (`SET search_path = s9, public` makes `orders` mean s9.orders): each column carries what the
 * same-named column of every candidate carries. Where the candidates' columns differ, `*` is
 * whatever any of them holds.
 */
function shadowedRelation(rels: readonly CatalogRelation[], as: string, ctx: Ctx): ScopeRel {
  const each = rels.map((r) => catalogRelation(r, ctx))
  const first = each[0]!
  const sameShape = each.every((cols) => cols.length === first.length && cols.every((c, i) => c.name === first[i]!.name))
  if (sameShape) return {alias: as, columns: first.map((c, i) => named(c.name, derived(each.map((cols) => cols[i]!)))), fallback: EMPTY}
  return {
    alias: as,
    // A name no candidate has is unknown, as for a column added since the catalog was read.
    lookup: (column) => {
      const cols = each.flatMap((cs) => cs.filter((c) => c.name === column))
      return cols.length > 0 ? derived(cols) : UNKNOWN
    },
    fallback: derived(each.map((cols) => derived(cols))),
  }
}

/** Column names of common set-returning functions, for `SELECT * FROM f(...)`. */
const SRF_COLUMNS: Record<string, string[]> = {
  unnest: ['unnest'],
  generate_series: ['generate_series'],
  generate_subscripts: ['generate_subscripts'],
  json_each: ['key', 'value'],
  jsonb_each: ['key', 'value'],
  json_each_text: ['key', 'value'],
  jsonb_each_text: ['key', 'value'],
  json_array_elements: ['value'],
  jsonb_array_elements: ['value'],
  json_array_elements_text: ['value'],
  jsonb_array_elements_text: ['value'],
  json_object_keys: ['json_object_keys'],
  jsonb_object_keys: ['jsonb_object_keys'],
  regexp_matches: ['regexp_matches'],
  regexp_split_to_table: ['regexp_split_to_table'],
  string_to_table: ['string_to_table'],
}

interface FromResult {
  visible: ScopeRel[]
  /** What `*` expands to, in order; undefined when unknown. */
  star?: NamedLineage[]
}

function fromItem(item: unknown, scope: Scope, ctx: Ctx): FromResult {
  const u = unwrap(item)
  if (!u) return {visible: [{alias: '?', fallback: UNKNOWN}]}
  const [kind, node] = u
  switch (kind) {
    case 'RangeVar': {
      const rel = rangeVar(node, scope, ctx)
      return {visible: [rel], star: rel.columns}
    }
    case 'RangeSubselect': {
      const sub = unwrap(node.subquery)
      const alias = node.alias as Node | undefined
      const columns = sub && sub[0] === 'SelectStmt' ? renamed(selectOutput(sub[1], scope, ctx), alias) : undefined
      const rel: ScopeRel = {alias: (alias?.aliasname as string | undefined) ?? '', columns, fallback: columns ? EMPTY : UNKNOWN}
      return {visible: [rel], star: columns}
    }
    case 'RangeFunction': {
      const alias = node.alias as Node | undefined
      const calls = list(node.functions).map((f) => list(unwrap(f)?.[1].items)[0])
      const lineages = calls.map((c) => expr(c, scope, ctx))
      const value = derived(lineages)
      let names = list(alias?.colnames).map((n) => svalOf(n) ?? '?')
      if (names.length === 0) names = list(node.coldeflist).map((d) => (unwrap(d)?.[1].colname as string | undefined) ?? '?')
      if (names.length === 0 && calls.length === 1) {
        const fn = unwrap(calls[0])
        const fname = fn ? svalOf(list(fn[1].funcname).at(-1)) : undefined
        const known = fname ? SRF_COLUMNS[fname] : undefined
        if (known) names = known.length === 1 && alias?.aliasname ? [alias.aliasname as string] : known
      }
      const columns = names.length > 0 ? names.map((n) => named(n, value)) : undefined
      const rel: ScopeRel = {alias: (alias?.aliasname as string | undefined) ?? '', columns, fallback: value}
      return {visible: [rel], star: columns}
    }
    case 'JoinExpr':
      return joinExpr(node, scope, ctx)
    case 'RangeTableSample':
      return fromItem(node.relation, scope, ctx)
    case 'RangeTableFunc':
    case 'JsonTable': {
      // XMLTABLE and JSON_TABLE compute their columns from their document and path arguments.
      const value = genericChildren(node, scope, ctx)
      const alias = node.alias as Node | undefined
      const defs = kind === 'RangeTableFunc' ? list(node.columns).map((c) => unwrap(c)?.[1].colname) : list(node.columns).map((c) => unwrap(c)?.[1].name)
      const names = list(alias?.colnames).length > 0 ? list(alias?.colnames).map((n) => svalOf(n) ?? '?') : defs.map((n) => (typeof n === 'string' ? n : '?'))
      // Nested JSON_TABLE paths add columns of their own: the shape is then left unknown.
      const nested = kind === 'JsonTable' && list(node.columns).some((c) => unwrap(c)?.[1].coltype === 'JTC_NESTED')
      const columns = names.length > 0 && !nested && !names.includes('?') ? names.map((n) => named(n, value)) : undefined
      return {visible: [{alias: (alias?.aliasname as string | undefined) ?? '', columns, fallback: value}], star: columns}
    }
    default:
      return {visible: [{alias: '', fallback: untraceable(ctx, `the analysis does not know FROM items of the kind ${kind}`)}]}
  }
}

function joinExpr(node: Node, scope: Scope, ctx: Ctx): FromResult {
  const left = fromItem(node.larg, scope, ctx)
  // The right side may refer to the left (LATERAL); resolving against both is a harmless superset.
  const inner: Scope = {rels: [...scope.rels, ...left.visible], ctes: scope.ctes, parent: scope.parent}
  const right = fromItem(node.rarg, inner, ctx)
  const visible = [...left.visible, ...right.visible]
  let star: NamedLineage[] | undefined
  if (left.star && right.star) {
    let using = list(node.usingClause).map((n) => svalOf(n)!).filter(Boolean)
    if (node.isNatural) using = left.star.filter((c) => right.star!.some((r) => r.name === c.name)).map((c) => c.name)
    if (using.length > 0) {
      const merged = using.map((n) => {
        const l = left.star!.find((c) => c.name === n)
        const r = right.star!.find((c) => c.name === n)
        return named(n, l && r ? either(l, r) : (l ?? r ?? UNKNOWN))
      })
      star = [...merged, ...left.star.filter((c) => !using.includes(c.name)), ...right.star.filter((c) => !using.includes(c.name))]
    } else {
      star = [...left.star, ...right.star]
    }
  }
  const alias = node.alias as Node | undefined
  if (alias?.aliasname) visible.push({alias: alias.aliasname as string, columns: renamed(star, alias), fallback: star ? EMPTY : UNKNOWN})
  return {visible, star}
}

// ---- expressions ------------------------------------------------------------------------------

/** Functions that wrap a row into a document or array without changing its fields. */
const DOCUMENT_FUNCTIONS = new Set([
  'row_to_json',
  'to_json',
  'to_jsonb',
  'json_agg',
  'jsonb_agg',
  'json_agg_strict',
  'jsonb_agg_strict',
  'array_agg',
  'array_to_json',
  'json_strip_nulls',
  'jsonb_strip_nulls',
  'jsonb_pretty',
])

const JSON_OBJECT_BUILDERS = new Set(['json_build_object', 'jsonb_build_object'])
const JSON_FIELD_OPERATORS = new Set(['->', '->>', '#>', '#>>'])

function constString(node: unknown): string | undefined {
  const u = unwrap(node)
  if (!u) return undefined
  if (u[0] === 'A_Const') return (u[1].sval as Node | undefined)?.sval as string | undefined
  if (u[0] === 'TypeCast') return constString(u[1].arg)
  return undefined
}

/** Whether a lineage is proven clean: no sensitive source, nothing untraceable, nothing read back from settings. */
function clean(l: Lineage): boolean {
  return flatten(l).length === 0 && !anyUnknown(l) && !anySettings(l)
}

function funcCall(node: Node, scope: Scope, ctx: Ctx): Lineage {
  const nameParts = list(node.funcname).map(svalOf)
  const name = nameParts.at(-1) ?? ''
  const schema = nameParts.length > 1 ? nameParts[0] : undefined
  // ORDER BY, FILTER and OVER decide which values an aggregate sees, not what they are; except in
  // an ordered-set aggregate, whose WITHIN GROUP (ORDER BY …) is the aggregated input itself
  // (`mode() WITHIN GROUP (ORDER BY name)` returns a name).
  const within = node.agg_within_group === true ? list(node.agg_order).map((s) => expr(s, scope, ctx)) : []
  for (const part of [node.agg_within_group === true ? undefined : node.agg_order, node.agg_filter, node.over]) if (part) genericChildren({part} as Node, scope, ctx)
  if (node.agg_star) return EMPTY
  const args = list(node.args)
  const argLineages = [...args.map((a) => expr(a, scope, ctx)), ...within]
  if (schema === undefined && ctx.distrustNames) {
    // Whatever the name resolves to, what the built-in of that name would store or read still counts.
    const kind = builtinKind(name)
    if (kind === 'stores-arguments' && !argLineages.every(clean)) ctx.sideChannels.push(STORED_WHERE[name] ?? `${name}() would store values derived from sensitive or untraceable data where other statements and sessions read them back, out of masking's reach`)
    if (kind === 'reads-settings') ctx.readsSettings = true
    return untraceable(ctx, `${name}() may resolve to a function created by an earlier statement that the catalog has not read yet`, argLineages)
  }
  const builtin = (schema === undefined || schema === 'pg_catalog') && !(schema === undefined && ctx.catalog.isUserFunction(name))
  if (!builtin || nameParts.length > 2) {
    // A user-defined function (its body is not analysed), or one the catalog does not know yet.
    return untraceable(ctx, `${schema ? `${schema}.` : ''}${name}() is not a built-in function, and its body is not analysed`, argLineages)
  }
  switch (builtinKind(name)) {
    case 'value-free':
      return EMPTY
    case 'untraceable':
      return untraceable(ctx, `${name}() is not known to compute only from its arguments (it may run SQL given as text or read rows, files or other sessions)`, argLineages)
    case 'reads-settings':
      ctx.readsSettings = true
      return {...derived(argLineages), settings: true}
    case 'stores-arguments':
      // Settings, notifications, locks and sequences are read back by later statements and other
      // sessions (and some reach the client as ParameterStatus), where no result filter masks them.
      if (!argLineages.every(clean)) ctx.sideChannels.push(STORED_WHERE[name] ?? `${name}() would store values derived from sensitive or untraceable data where other statements and sessions read them back, out of masking's reach`)
      return derived(argLineages)
    case 'of-arguments':
      // to_char prints the session's TimeZone for TZ, tz and OF (and TZH, TZM): a POSIX zone's
      // abbreviation is free text (`'AliceNovak5'`) that unseen code may have set, as SHOW reads it.
      if (name === 'to_char' && args.length >= 2 && /tz|of/i.test(constString(args[1]) ?? 'tz')) {
        ctx.readsSettings = true
        return {...derived(argLineages), settings: true}
      }
      break
  }
  if (DOCUMENT_FUNCTIONS.has(name) && argLineages.length >= 1 && argLineages[0]!.fields) {
    const doc = argLineages[0]!
    return {sources: flatten(doc), direct: false, unknown: anyUnknown(doc), ...(anySettings(doc) ? {settings: true} : {}), fields: doc.fields}
  }
  if (JSON_OBJECT_BUILDERS.has(name) && args.length % 2 === 0) {
    const fields: NamedLineage[] = []
    for (let i = 0; i < args.length; i += 2) {
      const key = constString(args[i])
      if (key === undefined) return derived(argLineages)
      fields.push(named(key, argLineages[i + 1]!))
    }
    return document(fields)
  }
  return derived(argLineages)
}

const STORED_WHERE: Record<string, string> = {
  pg_notify: 'pg_notify() would send values derived from sensitive or untraceable data as a notification payload, which reaches listeners in other sessions out of masking\'s reach',
  set_config: 'set_config() would store values derived from sensitive or untraceable data in a setting, which SHOW, current_setting(), pg_settings and ParameterStatus messages read back out of masking\'s reach',
}

/** A row or document whose fields are exactly these, in this order and with these names. */
function document(fields: NamedLineage[]): Lineage {
  return {sources: dedupe(fields.flatMap(flatten)), direct: false, unknown: fields.some(anyUnknown), ...(fields.some(anySettings) ? {settings: true} : {}), fields}
}

function aExpr(node: Node, scope: Scope, ctx: Ctx): Lineage {
  const opName = list(node.name).map(svalOf)
  const op = opName.at(-1)
  const left = node.lexpr === undefined ? EMPTY : expr(node.lexpr, scope, ctx)
  const right = node.rexpr === undefined ? EMPTY : Array.isArray(node.rexpr) ? derived(node.rexpr.map((e) => expr(e, scope, ctx))) : expr(node.rexpr, scope, ctx)
  // Every built-in operator computes from its operands; a user-defined one runs user code.
  const opSchema = opName.length > 1 ? opName[0] : undefined
  if (opSchema === undefined && ctx.distrustNames) return untraceable(ctx, `the operator ${opName.join('.')} may resolve to one created by an earlier statement that the catalog has not read yet`, [left, right])
  if (op === undefined || (opSchema !== undefined && opSchema !== 'pg_catalog') || (opSchema === undefined && ctx.catalog.isUserOperator(op))) {
    return untraceable(ctx, `the operator ${opName.join('.')} is not a built-in one`, [left, right])
  }
  if (op && JSON_FIELD_OPERATORS.has(op) && left.fields) {
    const key = constString(node.rexpr)
    const field = key === undefined ? undefined : fieldNamed(left.fields, key)
    if (field) return transformed(field)
  }
  return derived([left, right])
}

/**
 * The field of a row or document a name selects. Names may repeat (`select 1 as a, full_name as a`,
 * `jsonb_build_object('id', 1, 'id', email)`), and which one the server picks differs by type (jsonb
 * keeps the last key, a record is ambiguous): every field of that name counts.
 */
function fieldNamed(fields: NamedLineage[], name: string): NamedLineage | undefined {
  const all = fields.filter((f) => f.name === name)
  if (all.length <= 1) return all[0]
  return named(name, derived(all))
}

function subLink(node: Node, scope: Scope, ctx: Ctx): Lineage {
  const sub = unwrap(node.subselect)
  const cols = sub && sub[0] === 'SelectStmt' ? selectOutput(sub[1], scope, ctx) : undefined
  switch (node.subLinkType) {
    case 'EXISTS_SUBLINK':
      return EMPTY
    case 'EXPR_SUBLINK':
      return cols?.[0] ?? UNKNOWN
    case 'ARRAY_SUBLINK':
      return cols?.[0] ? transformed(cols[0]) : UNKNOWN
    default: {
      const test = node.testexpr === undefined ? EMPTY : expr(node.testexpr, scope, ctx)
      return derived([test, ...(cols ?? [UNKNOWN])])
    }
  }
}

/**
 * The scope of a rule's actions: its relation's row as NEW and OLD. Of a relation the catalog does
 * not know yet (made earlier in the text, or in the open transaction), the row may hold anything
 * later written to it, names into its `full_name` among them: each of its values counts as a
 * sensitive one, of no known category.
 */
function ruleRows(node: Node, outer: Scope | undefined, ctx: Ctx): Scope {
  const rel = node.relation as Node | undefined
  const own = rel === undefined ? undefined : fromItem({RangeVar: rel}, TARGET_SCOPE(), ctx).visible[0]
  const unknown = own !== undefined && own.columns === undefined && own.lookup === undefined && own.catalog === undefined
  const name = `${typeof rel?.schemaname === 'string' ? `${rel.schemaname}.` : ''}${String(rel?.relname)}`
  const row = (alias: string): ScopeRel => {
    if (!unknown) return {...own!, alias}
    const source: SensitiveSource = {relation: name, column: `${alias}.*`, category: 'untraceable', reason: 'a row of a relation the catalog does not know yet, which may hold any value written to it'}
    return {alias, fallback: {sources: [source], direct: false, unknown: true}}
  }
  return {rels: own ? [row('new'), row('old')] : [], ctes: new Map(), parent: outer}
}

/**
 * One column of `UPDATE … SET (a, b) = (SELECT id, full_name …)` or `= ROW(x, y)`: the `colno`th
 * value of the source. The parser leaves the subquery an ordinary scalar one, whose first column
 * alone is its value, so `b` was read as `id`. A source of another shape: every value it holds.
 */
function multiAssigned(node: Node, scope: Scope, ctx: Ctx): Lineage {
  const colno = typeof node.colno === 'number' ? node.colno : 0
  const source = unwrap(node.source)
  if (source?.[0] === 'SubLink' && source[1].subLinkType === 'EXPR_SUBLINK') {
    const sub = unwrap(source[1].subselect)
    const cols = sub && sub[0] === 'SelectStmt' ? selectOutput(sub[1], scope, ctx) : undefined
    return cols?.[colno - 1] ?? UNKNOWN
  }
  if (source?.[0] === 'RowExpr') {
    const arg = list(source[1].args)[colno - 1]
    return arg === undefined ? UNKNOWN : expr(arg, scope, ctx)
  }
  return genericChildren(node, scope, ctx)
}

/** Every expression child of a node, for node kinds without a rule of their own. */
function genericChildren(node: Node, scope: Scope, ctx: Ctx): Lineage {
  const parts: Lineage[] = []
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(visit)
    if (!v || typeof v !== 'object') return
    if (unwrap(v)) {
      parts.push(expr(v, scope, ctx))
      return
    }
    for (const child of Object.values(v)) visit(child)
  }
  for (const child of Object.values(node)) visit(child)
  return derived(parts)
}

/**
 * Node kinds whose value is computed from their children only (or that carry no value), so that
 * they are as clean as their children: the grammar's expression forms other than those with a rule
 * of their own in `expr`. A kind missing here is untraceable.
 */
const FROM_CHILDREN = new Set([
  'BoolExpr',
  'A_ArrayExpr',
  'XmlExpr',
  'XmlSerialize',
  'JsonObjectConstructor',
  'JsonArrayConstructor',
  'JsonArrayQueryConstructor',
  'JsonObjectAgg',
  'JsonArrayAgg',
  'JsonAggConstructor',
  'JsonKeyValue',
  'JsonValueExpr',
  'JsonFuncExpr',
  'JsonParseExpr',
  'JsonScalarExpr',
  'JsonSerializeExpr',
  'JsonIsPredicate',
  'JsonArgument',
  'JsonBehavior',
  'JsonFormat',
  'JsonOutput',
  'JsonReturning',
  'JsonTablePathSpec',
  'JsonTableColumn',
  'RangeTableFuncCol',
  'A_Indices',
  'A_Star',
  'SortBy',
  'WindowDef',
  'CurrentOfExpr',
  'List',
])

/** Node kinds that carry no value from any relation. */
const NO_VALUE = new Set(['A_Const', 'ParamRef', 'SQLValueFunction', 'SetToDefault', 'GroupingFunc', 'MergeSupportFunc', 'String', 'Integer', 'Float', 'Boolean', 'BitString', 'TypeName', 'Null'])

/** Cast targets that keep a row's or document's fields where they were (record text, JSON). */
const FIELD_KEEPING_CASTS = new Set(['text', 'varchar', 'bpchar', 'name', 'record', 'json', 'jsonb'])

function typeCast(node: Node, scope: Scope, ctx: Ctx): Lineage {
  const inner = expr(node.arg, scope, ctx)
  const names = list((node.typeName as Node | undefined)?.names).map(svalOf)
  const type = names.at(-1) ?? ''
  const schema = names.length > 1 ? names[0] : undefined
  // A domain's constraints and a user-defined cast run user code on the value.
  if (schema !== 'pg_catalog' && ctx.catalog.castRunsCode(type, schema)) return untraceable(ctx, `a cast to ${names.join('.')} runs user code (a domain's constraints or a user-defined cast)`, [inner])
  if (schema !== 'pg_catalog' && ctx.distrustNames) return untraceable(ctx, `a cast to ${names.join('.')} may run a domain's constraints or a cast created by an earlier statement that the catalog has not read yet`, [inner])
  if (!inner.fields && inner.sources.length === 0 && !inner.unknown && !inner.settings) return EMPTY
  // Cast to another row type, a row's fields get that type's names: only their values are followed.
  if (inner.fields && !FIELD_KEEPING_CASTS.has(type)) return derived([inner])
  return transformed(inner)
}

/** `ROW(a, t.*, b)`: PostgreSQL expands `t.*` into t's columns, so the fields are listed the same way. */
function rowExpr(node: Node, scope: Scope, ctx: Ctx): Lineage {
  const colnames = list(node.colnames).map(svalOf)
  const fields: NamedLineage[] = []
  for (const a of list(node.args)) {
    const u = unwrap(a)
    const refFields = u?.[0] === 'ColumnRef' ? list(u[1].fields) : []
    if (unwrap(refFields.at(-1))?.[0] === 'A_Star') {
      const rel = refFields.length > 1 ? findRel(scope, svalOf(refFields.at(-2)) ?? '') : undefined
      const cols = refFields.length > 1 ? rel?.columns : undefined
      // Whose columns `*` stands for is not known: the row as a whole is untraceable.
      if (!cols) return {...derived([expr(a, scope, ctx)]), unknown: true}
      fields.push(...cols)
      continue
    }
    fields.push(named('', expr(a, scope, ctx)))
  }
  return document(fields.map((f, i) => named(colnames[i] ?? `f${i + 1}`, f)))
}

function expr(raw: unknown, scope: Scope, ctx: Ctx): Lineage {
  const u = unwrap(raw)
  if (!u) return Array.isArray(raw) ? derived(raw.map((r) => expr(r, scope, ctx))) : EMPTY
  const [kind, node] = u
  if (NO_VALUE.has(kind)) return EMPTY
  switch (kind) {
    case 'ColumnRef':
      return columnRef(node, scope, ctx)
    case 'NullTest':
    case 'BooleanTest':
      expr(node.arg, scope, ctx)
      return EMPTY
    case 'TypeCast':
      return typeCast(node, scope, ctx)
    case 'CollateClause': {
      const inner = expr(node.arg, scope, ctx)
      return inner.fields || inner.sources.length > 0 || inner.unknown || inner.settings ? transformed(inner) : EMPTY
    }
    case 'FuncCall':
      return funcCall(node, scope, ctx)
    case 'A_Expr':
      return aExpr(node, scope, ctx)
    case 'CoalesceExpr':
    case 'MinMaxExpr':
      return list(node.args).map((a) => expr(a, scope, ctx)).reduce((a, b) => either(a, b), EMPTY)
    case 'CaseExpr': {
      const parts: Lineage[] = []
      if (node.arg) parts.push(expr(node.arg, scope, ctx))
      for (const w of list(node.args)) {
        const cw = unwrap(w)?.[1]
        if (!cw) continue
        parts.push(expr(cw.expr, scope, ctx), expr(cw.result, scope, ctx))
      }
      if (node.defresult) parts.push(expr(node.defresult, scope, ctx))
      return derived(parts)
    }
    case 'SubLink':
      return subLink(node, scope, ctx)
    case 'MultiAssignRef':
      return multiAssigned(node, scope, ctx)
    case 'RowExpr':
      return rowExpr(node, scope, ctx)
    case 'A_Indirection': {
      let value = expr(node.arg, scope, ctx)
      for (const step of list(node.indirection)) {
        const field = svalOf(step)
        if (field !== undefined && value.fields) {
          value = fieldNamed(value.fields, field) ?? UNKNOWN
        } else if (unwrap(step)?.[0] !== 'A_Star') {
          value = derived([value, expr(step, scope, ctx)])
        }
      }
      return value
    }
    case 'ResTarget':
      return expr(node.val, scope, ctx)
    default:
      if (FROM_CHILDREN.has(kind)) return genericChildren(node, scope, ctx)
      return untraceable(ctx, `the analysis does not know expressions of the kind ${kind}`)
  }
}

// ---- statements -------------------------------------------------------------------------------

function withCtes(withClause: Node | undefined, outer: Scope | undefined, ctx: Ctx): Scope {
  const scope: Scope = {rels: [], ctes: new Map(), parent: outer}
  if (!withClause) return scope
  for (const c of list(withClause.ctes)) {
    const cte = unwrap(c)?.[1]
    if (!cte) continue
    const name = cte.ctename as string
    const q = unwrap(cte.ctequery)
    let cols: NamedLineage[] | undefined
    if (q && q[0] === 'SelectStmt') {
      if (withClause.recursive && q[1].op && q[1].op !== 'SETOP_NONE') {
        // The recursive term refers to the CTE itself: seed it with the non-recursive term.
        scope.ctes.set(name, renamed(selectOutput(q[1].larg as Node, scope, ctx), {colnames: cte.aliascolnames}))
      }
      cols = selectOutput(q[1], scope, ctx)
    } else if (q) {
      cols = statementLineage(cte.ctequery as Node, ctx, scope).columns
    }
    scope.ctes.set(name, renamed(cols, {colnames: cte.aliascolnames}))
  }
  return scope
}

function targetList(targets: unknown[], scope: Scope, star: NamedLineage[] | undefined, ctx: Ctx): NamedLineage[] | undefined {
  const out: NamedLineage[] = []
  for (const t of targets) {
    const rt = unwrap(t)?.[1]
    if (!rt) return undefined
    const val = unwrap(rt.val)
    if (val && val[0] === 'ColumnRef') {
      const fields = list(val[1].fields)
      if (unwrap(fields.at(-1))?.[0] === 'A_Star') {
        if (fields.length === 1) {
          if (!star) return undefined
          out.push(...star)
        } else {
          const rel = findRel(scope, svalOf(fields.at(-2)) ?? '')
          if (!rel?.columns) return undefined
          out.push(...rel.columns)
        }
        continue
      }
    }
    if (val && val[0] === 'A_Indirection' && unwrap(list(val[1].indirection).at(-1))?.[0] === 'A_Star') {
      // `(composite).*` expands to the composite's fields.
      const composite = expr({A_Indirection: {...val[1], indirection: list(val[1].indirection).slice(0, -1)}}, scope, ctx)
      if (!composite.fields) return undefined
      out.push(...composite.fields)
      continue
    }
    out.push(named((rt.name as string | undefined) ?? outputName(rt.val), expr(rt.val, scope, ctx)))
  }
  return out
}

/** The name PostgreSQL gives an unaliased output column, close enough for documents and reports. */
function outputName(val: unknown): string {
  const u = unwrap(val)
  if (!u) return '?column?'
  if (u[0] === 'ColumnRef') return svalOf(list(u[1].fields).at(-1)) ?? '?column?'
  if (u[0] === 'FuncCall') return svalOf(list(u[1].funcname).at(-1)) ?? '?column?'
  if (u[0] === 'TypeCast') return outputName(u[1].arg)
  return '?column?'
}

/** The output columns of a SELECT (or VALUES, or set operation); undefined when not knowable. */
function selectOutput(sel: Node, outer: Scope | undefined, ctx: Ctx): NamedLineage[] | undefined {
  const scope = withCtes(sel.withClause as Node | undefined, outer, ctx)
  if (sel.op && sel.op !== 'SETOP_NONE') {
    const l = selectOutput(sel.larg as Node, scope, ctx)
    const r = selectOutput(sel.rarg as Node, scope, ctx)
    if (!l || !r || l.length !== r.length) return undefined
    return l.map((c, i) => named(c.name, either(c, r[i]!)))
  }
  if (sel.valuesLists) {
    const rows = list(sel.valuesLists).map((row) => list(unwrap(row)?.[1].items).map((e) => expr(e, scope, ctx)))
    const width = rows[0]?.length ?? 0
    return Array.from({length: width}, (_, i) => named(`column${i + 1}`, rows.map((r) => r[i] ?? UNKNOWN).reduce((a, b) => either(a, b), EMPTY)))
  }
  const star: NamedLineage[] | undefined = []
  let starKnown = true
  for (const item of list(sel.fromClause)) {
    const res = fromItem(item, scope, ctx)
    scope.rels.push(...res.visible)
    if (res.star) star.push(...res.star)
    else starKnown = false
  }
  // Conditions are analysed for what they touch; their values do not reach the output.
  for (const cond of [sel.whereClause, sel.havingClause]) if (cond) expr(cond, scope, ctx)
  return targetList(list(sel.targetList), scope, starKnown ? star : undefined, ctx)
}

function defValue(d: Node): string | boolean | undefined {
  const arg = unwrap(d.arg)
  if (!arg) return true
  if (arg[0] === 'String') return arg[1].sval as string
  if (arg[0] === 'Boolean') return Boolean(arg[1].boolval)
  if (arg[0] === 'Integer') return String(arg[1].ival ?? 0)
  return undefined
}

/**
 * The columns `COPY t TO` writes without a column list: the table's but its generated ones, which
 * the server leaves out (CopyGetAttnums). Fields are masked by position, so counting a generated
 * column would move the mask of every column after it one place along, onto its neighbour. When
 * the name may mean relations that differ there, undefined: every field is masked.
 */
function copiedWhole(rel: ScopeRel, relation: Node, ctx: Ctx): NamedLineage[] | undefined {
  if (!rel.columns) return undefined
  const name = relation.relname as string
  const schema = relation.schemaname as string | undefined
  const candidates = rel.catalog ? ctx.catalog.lookup(rel.catalog.schema, rel.catalog.relation) : schema ? ctx.catalog.lookup(schema, name) : ctx.catalog.sameNamed(name)
  // Another connection may have dropped a column and added one under its name since the catalog
  // was read: the same count in another order. The order is checked before the COPY runs, and one
  // that moved but could not be read again is relied on for nothing.
  for (const r of candidates) ctx.layouts.add(r.oid)
  if (candidates.some((r) => ctx.catalog.isStale(r.oid))) return undefined
  const generated = new Set(candidates.flatMap((r) => r.columns.filter((c) => c.generated !== undefined).map((c) => c.name)))
  if (generated.size === 0) return rel.columns
  if (candidates.length !== 1) return undefined
  return rel.columns.filter((c) => !generated.has(c.name))
}

function copyShape(node: Node, columns: NamedLineage[] | undefined): CopyShape {
  const opts = new Map<string, string | boolean | undefined>()
  for (const o of list(node.options)) {
    const d = unwrap(o)?.[1]
    if (d) opts.set(d.defname as string, defValue(d))
  }
  const formatOpt = opts.get('format')
  const format = formatOpt === 'csv' ? 'csv' : formatOpt === 'binary' ? 'binary' : 'text'
  const quote = typeof opts.get('quote') === 'string' ? (opts.get('quote') as string) : '"'
  const header = opts.get('header')
  return {
    format,
    delimiter: typeof opts.get('delimiter') === 'string' ? (opts.get('delimiter') as string) : format === 'csv' ? ',' : '\t',
    quote,
    escape: typeof opts.get('escape') === 'string' ? (opts.get('escape') as string) : quote,
    nullString: typeof opts.get('null') === 'string' ? (opts.get('null') as string) : format === 'csv' ? '' : '\\N',
    // As the server reads it (defGetCopyHeaderChoice): 1, and `true` or `on` in any case.
    header: header === true || (typeof header === 'string' && ['true', 'on', '1', 'match'].includes(header.toLowerCase())),
    ...(opts.has('encoding') ? {encoding: typeof opts.get('encoding') === 'string' ? (opts.get('encoding') as string) : ''} : {}),
    // A format masking does not read (a newer server's `json`, one object per line) has no fields
    // to place: every line is masked whole.
    columns: formatOpt === undefined || formatOpt === 'text' || format !== 'text' ? columns : undefined,
  }
}

/**
 * A table's column passed through unchanged while names are distrusted (`unprovenNames`): the
 * server's row description names the column it reads, which the result filter checks and masks by
 * (plan.ts), so it is not refused beforehand as untraceable.
 */
function serverNamesOrigin(c: NamedLineage, ctx: Ctx): boolean {
  if (!ctx.moved || !c.origin || c.fields || ctx.unvouched.has(c.origin.tableOid)) return false
  const rel = ctx.catalog.relation(c.origin.tableOid)
  return rel !== undefined && rel.viewDefinition === undefined && isMoved(ctx.moved, rel.name)
}

function finish(l: Omit<StatementLineage, 'touchesSensitive' | 'untraceable' | 'opaque' | 'sideChannels'>, ctx: Ctx): StatementLineage {
  const untraceable: string[] = []
  const cols = l.columns ?? l.copy?.columns
  if (ctx.touches) {
    const why = ctx.reasons.length > 0 ? `: ${ctx.reasons.join('; ')}` : ''
    if ((l.rows !== 'no' || l.copy) && !cols) untraceable.push(`the shape of the result could not be determined${why}`)
    for (const c of cols ?? []) if (anyUnknown(c) && !serverNamesOrigin(c, ctx)) untraceable.push(`output column "${c.name}" comes partly from something the analysis cannot follow${why}`)
  }
  return {
    ...l,
    touchesSensitive: ctx.touches,
    untraceable,
    opaque: ctx.opaque,
    sideChannels: [...ctx.sideChannels],
    ...(ctx.readsSettings ? {readsSettings: true} : {}),
    ...(ctx.misses.length > 0 ? {misses: [...ctx.misses]} : {}),
    ...(ctx.views.size > 0 ? {views: [...ctx.views]} : {}),
    ...(ctx.layouts.size > 0 ? {layouts: [...ctx.layouts]} : {}),
    ...(ctx.unvouched.size > 0 ? {unvouched: [...ctx.unvouched]} : {}),
    ...(ctx.fills.length > 0 ? {fills: [...ctx.fills]} : {}),
    ...(ctx.shadowable ? {shadowable: true as const} : {}),
  }
}

/**
 * The clauses of an INSERT or MERGE that write columns besides its query or SET list: `ON CONFLICT
 * DO UPDATE SET` (a `targetList`), and MERGE's `WHEN … THEN UPDATE SET` (a `targetList`) and
 * `THEN INSERT (…) VALUES (…)` (the column names in `targetList`, the values in `values`).
 */
function writtenElsewhere(node: Node): Node[] {
  const out: Node[] = []
  const conflict = node.onConflictClause as Node | undefined
  if (conflict) out.push({targetList: conflict.targetList, conflict: true})
  for (const w of list(node.mergeWhenClauses)) {
    const clause = unwrap(w)?.[1]
    if (!clause) continue
    // In INSERT's targetList the entries name columns and carry no value: the values come in order.
    out.push(clause.commandType === 'CMD_INSERT' ? {values: clause.values, targetList: clause.targetList} : {targetList: clause.targetList})
  }
  return out
}

/**
 * The scope a written relation's name is read in: none of the statement's CTEs. PostgreSQL never
 * reads an INSERT, UPDATE, DELETE or MERGE target as a CTE: `WITH customers AS (SELECT … 'x' AS
 * full_name) INSERT INTO customers …` writes the table, though its FROM would read the CTE.
 */
const TARGET_SCOPE = (): Scope => ({rels: [], ctes: new Map()})

function dmlReturning(node: Node, ctx: Ctx, outer: Scope | undefined): NamedLineage[] | undefined {
  const scope = withCtes(node.withClause as Node | undefined, outer, ctx)
  const target = fromItem({RangeVar: node.relation}, TARGET_SCOPE(), ctx)
  scope.rels.push(...target.visible)
  // Triggers and rules on the written relation run code of their own, which may print or store anything.
  const written = target.visible[0]?.catalog
  if (writtenRelations(node.relation as Node | undefined, ctx).some((r) => r.runsCode)) {
    ctx.touches = true
    ctx.opaque = true
  }
  const sourceRelation = node.sourceRelation === undefined ? [] : [node.sourceRelation]
  for (const item of [...list(node.fromClause), ...list(node.usingClause), ...sourceRelation]) scope.rels.push(...fromItem(item, scope, ctx).visible)
  const sel = unwrap(node.selectStmt)
  const inserted = sel && sel[0] === 'SelectStmt' ? selectOutput(sel[1], scope, ctx) : undefined
  // Values written into the relation's columns: a column filled with unproven values is no longer clean.
  const filled: NamedLineage[] = []
  // ON CONFLICT's `excluded`: the row proposed for insertion, each column what the statement put
  // there (the column's own default where it put nothing), not what the table holds.
  let excluded: ScopeRel | undefined
  if (sel) {
    const cols = list(node.cols).map((c) => unwrap(c)?.[1].name as string | undefined)
    const names = cols.length > 0 ? cols : (target.star ?? []).map((c) => c.name)
    names.forEach((n, i) => n && filled.push(named(n, inserted?.[i] ?? unknownValue(ctx))))
    if (node.onConflictClause !== undefined && target.star) {
      excluded = {
        alias: 'excluded',
        columns: target.star.map((c) => {
          const i = names.indexOf(c.name)
          if (i >= 0) return named(c.name, inserted?.[i] ?? UNKNOWN)
          const from = generatedFrom(c, names, ctx)
          return from.length === 0 ? c : named(c.name, derived([c, ...from.map((n) => inserted?.[names.indexOf(n)] ?? UNKNOWN)]))
        }),
        fallback: UNKNOWN,
      }
    }
  } else {
    for (const t of list(node.targetList)) {
      const rt = unwrap(t)?.[1]
      if (rt?.name) filled.push(named(rt.name as string, expr(rt.val, scope, ctx)))
    }
  }
  // What `ON CONFLICT DO UPDATE SET` and MERGE's actions write fills the columns as well.
  let unnamedValues = false
  const unnamedLineages: Lineage[] = []
  for (const set of writtenElsewhere(node)) {
    const within: Scope = set.conflict === true && excluded ? {...scope, rels: [...scope.rels, excluded]} : scope
    for (const t of set.values ? [] : list(set.targetList)) {
      const rt = unwrap(t)?.[1]
      if (rt?.name) filled.push(named(rt.name as string, expr(rt.val, within, ctx)))
    }
    const values = list(set.values)
    if (values.length > 0) {
      const names = list(set.targetList).map((t) => unwrap(t)?.[1].name as string | undefined)
      const all = names.length > 0 ? names : (target.star ?? []).map((c) => c.name)
      const lineages = values.map((v) => expr(v, scope, ctx))
      // `THEN INSERT VALUES (…)` into a relation whose columns the catalog does not know: which columns it fills cannot be said.
      if (names.length === 0 && target.star === undefined && lineages.some((l) => !clean(l))) {
        unnamedValues = true
        unnamedLineages.push(...lineages)
      }
      all.forEach((n, i) => n && filled.push(named(n, lineages[i] ?? UNKNOWN)))
    }
  }
  const unproven = filled.filter((c) => !clean(c))
  const rel = node.relation as Node | undefined
  const where = {...(written ? {schema: written.schema} : rel?.schemaname ? {schema: rel.schemaname as string} : {}), name: (written?.relation ?? rel?.relname) as string}
  // With no column list and the target's columns unknown (`pg_temp.t`, a table of the open
  // transaction), which columns the rows fill cannot be said: all of them, unless proven clean.
  const unnamed = unnamedValues || (sel !== undefined && filled.length === 0 && (inserted === undefined || inserted.some((c) => !clean(c))))
  const values = [...(inserted ?? (ctx.readWrites.length > 0 ? [named('column1', unknownValue(ctx))] : [])), ...unnamedLineages.map((l, i) => named(`column${i + 1}`, l))]
  if (rel?.relname && unnamed) ctx.fills.push(values.length > 0 ? {...where, values} : where)
  else if (unproven.length > 0 && rel?.relname) ctx.fills.push({...where, columns: unproven})
  if (unproven.length > 0 && written) for (const r of ctx.catalog.lookup(written.schema, written.relation)) throughView(r, unproven, ctx, 0)
  // PostgreSQL 18 wraps RETURNING in a clause that may also rename OLD and NEW.
  const clause = node.returningClause as Node | undefined
  const returning = [...list(node.returningList), ...list(clause?.exprs)]
  if (returning.length === 0) return []
  const own = target.visible[0]!
  // RETURNING reads the rows as written: the values put in each column, not what the catalog says
  // the column held (`WITH x AS (INSERT INTO tmp (n) SELECT full_name … RETURNING n) INSERT INTO
  // orders (status) SELECT n FROM x` copied names as tmp.n's clean values). OLD is the row before.
  const after = rowAsWritten(own, unproven, unnamed ? values : undefined)
  const at = scope.rels.indexOf(own)
  if (at >= 0) scope.rels[at] = after
  scope.rels.push({...own, alias: 'old'}, {...after, alias: 'new'})
  for (const o of list(clause?.options)) {
    const opt = unwrap(o)?.[1]
    if (opt?.value) scope.rels.push({...(String(opt.option).includes('OLD') ? own : after), alias: opt.value as string})
  }
  return targetList(returning, scope, target.star && (after.columns ?? target.star), ctx)
}

/**
 * A written relation's row as the write leaves it: each column filled with values not proven clean
 * (`unproven`) carries them too; with `everywhere` (rows whose columns cannot be told apart), every
 * column carries all of them.
 */
function rowAsWritten(rel: ScopeRel, unproven: readonly NamedLineage[], everywhere: readonly NamedLineage[] | undefined): ScopeRel {
  const all = everywhere === undefined ? undefined : derived(everywhere.length > 0 ? [...everywhere] : [UNKNOWN])
  if (unproven.length === 0 && all === undefined) return rel
  const columns = rel.columns?.map((c) => {
    const parts: Lineage[] = [...unproven.filter((f) => f.name === c.name), ...(all ? [all] : [])]
    return parts.length === 0 ? c : named(c.name, parts.reduce((a: Lineage, b) => either(a, b), c))
  })
  return {...rel, ...(columns ? {columns} : {}), fallback: all ? either(rel.fallback, all) : rel.fallback}
}

/**
 * The catalog relations a statement's target may be: the one it names, or, for an unqualified name
 * that several schemas hold while the session's search_path may pick any of them
 * (`shadowedRelation`, which stands for no one relation), every one of them: a trigger on the one
 * `SET search_path = s9, public` picks runs as surely as one on the relation in public.
 */
function writtenRelations(rel: Node | undefined, ctx: Ctx): CatalogRelation[] {
  const name = rel?.relname
  if (typeof name !== 'string') return []
  const schema = rel!.schemaname as string | undefined
  if (!schema && ctx.anyOfSameName) {
    const same = ctx.catalog.sameNamed(name)
    if (same.length > 1) return same
  }
  return ctx.catalog.lookup(schema, name)
}

/** Whether an EXPLAIN option is on; a value that cannot be read counts as on. */
function explainOptionOn(options: unknown, name: string): boolean {
  let on = false
  for (const o of list(options)) {
    const u = unwrap(o)
    if (!u || u[0] !== 'DefElem' || u[1].defname !== name) continue
    const value = u[1].arg === undefined ? 'on' : (constString(u[1].arg) ?? svalOf(u[1].arg) ?? 'on')
    on = !['false', 'off', '0', 'no', 'f', 'n'].includes(String(value).toLowerCase())
  }
  return on
}

function statementLineage(stmt: Node, ctx: Ctx, outer?: Scope): StatementLineage {
  const u = unwrap(stmt)
  if (!u) return finish({rows: 'maybe'}, {...ctx, touches: true, opaque: true})
  const [kind, node] = u
  switch (kind) {
    case 'SelectStmt': {
      const columns = selectOutput(node, outer, ctx)
      if (node.intoClause) return {...finish({rows: 'no'}, ctx), creates: created((node.intoClause as Node).rel as Node, columns, columns || ctx.readWrites.length === 0 ? undefined : [named('column1', unknownValue(ctx))])}
      return finish({rows: 'yes', columns}, ctx)
    }
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt': {
      // Its UPDATE or DELETE may cascade into tables that reference it, whose errors echo their rows.
      if ((kind !== 'InsertStmt' || node.onConflictClause) && cascadesIntoSensitive(node.relation as Node | undefined, ctx.catalog)) ctx.touches = true
      const columns = dmlReturning(node, ctx, outer)
      if (columns && columns.length === 0) return finish({rows: 'no'}, ctx)
      return finish({rows: 'yes', columns}, ctx)
    }
    case 'CopyStmt': {
      if (node.is_from || node.filename || node.is_program) {
        const written = node.query ? selectOutput(unwrap(node.query)?.[1] ?? {}, outer, ctx) : undefined
        // `COPY … TO '/tmp/f'` (or a program) stores the rows on the server, where `COPY t FROM
        // '/tmp/f'` puts them into any table as values no analysis traces, and no read masks.
        if (!node.is_from && !copiedRows(node, written, outer, ctx).every(clean)) ctx.sideChannels.push(COPY_TO_SERVER)
        // A program runs code the analysis cannot see into (a psql reading any table, running DDL).
        if (node.is_program) {
          ctx.touches = true
          ctx.opaque = true
        }
        // A server file or a program fills the table with values from outside the analysis: what
        // `COPY (SELECT full_name …) TO '/tmp/f'` wrote, read back into a clean column.
        if (node.is_from && (node.filename || node.is_program)) fillsFromOutside(node, outer, ctx)
        return finish({rows: 'no'}, ctx)
      }
      let columns: NamedLineage[] | undefined
      const q = unwrap(node.query)
      if (q) {
        columns = q[0] === 'SelectStmt' ? selectOutput(q[1], outer, ctx) : statementLineage(node.query as Node, ctx, outer).columns
      } else {
        const rel = fromItem({RangeVar: node.relation}, withCtes(undefined, outer, ctx), ctx).visible[0]!
        const attlist = list(node.attlist).map(svalOf)
        columns = rel.columns && attlist.length > 0 ? attlist.map((n) => rel.columns!.find((c) => c.name === n) ?? named(n ?? '?', UNKNOWN)) : copiedWhole(rel, node.relation as Node, ctx)
      }
      return finish({rows: 'no', copy: copyShape(node, columns)}, ctx)
    }
    case 'ExplainStmt': {
      // The plan text names columns and constants from the query; with ANALYZE the query runs, and
      // its errors and notices are those of a statement that reads it. The constants are not only
      // the statement's own: the planner evaluates a call whose arguments are constants when its
      // function is immutable, and a user function declared so may read any table (`body =
      // f()` is printed `body = 'Alice Novak'::text`); so the plan of a statement that runs code
      // the analysis cannot see into is as untraceable as that code's output.
      const inner = statementLineage(node.query as Node, ctx, outer)
      // With ANALYZE the statement runs: `EXPLAIN ANALYZE CREATE TABLE t AS …` creates and fills t.
      if (inner.creates && explainOptionOn(node.options, 'analyze')) {
        // Of `… AS EXECUTE p`, the plan is p's, which may print what its calls computed (as EXPLAIN EXECUTE's).
        const plan = named('QUERY PLAN', derived([ctx.opaque || inner.uses ? UNKNOWN : EMPTY, explainOptionOn(node.options, 'settings') ? SETTINGS : EMPTY]))
        if (explainOptionOn(node.options, 'settings')) ctx.readsSettings = true
        const reasons = ctx.opaque ? ctx.reasons.map((r) => `the plan may print a constant the planner computed with it: ${r}`) : []
        return {...finish({rows: 'yes', columns: [plan]}, {...ctx, reasons}), creates: inner.creates, ...(inner.uses ? {uses: inner.uses} : {})}
      }
      if (inner.uses?.kind === 'prepared') {
        // EXPLAIN EXECUTE: the plan of the prepared statement, whose calls are known once it is
        // resolved (`planOfExecute`), and a custom plan prints the arguments as constants.
        const settings = explainOptionOn(node.options, 'settings')
        if (settings) ctx.readsSettings = true
        const plan = named('QUERY PLAN', derived([UNKNOWN, inner.uses.args ?? EMPTY, settings ? SETTINGS : EMPTY]))
        return {...finish({rows: 'yes', columns: [plan]}, {...ctx, reasons: []}), touchesSensitive: true, untraceable: [], uses: {...inner.uses, explain: true}}
      }
      const reasons = ctx.opaque ? ctx.reasons.map((r) => `the plan may print a constant the planner computed with it: ${r}`) : []
      // SETTINGS prints the planner settings the session changed (search_path among them), which
      // code the analysis cannot see into may have set to any value it read, as SHOW reads them.
      const settings = explainOptionOn(node.options, 'settings')
      if (settings) ctx.readsSettings = true
      return finish({rows: 'yes', columns: [named('QUERY PLAN', derived([ctx.opaque ? UNKNOWN : EMPTY, settings ? SETTINGS : EMPTY]))]}, {...ctx, reasons})
    }
    case 'VariableShowStmt': {
      ctx.readsSettings = true
      const name = String(node.name ?? '')
      // SHOW ALL answers name, setting and description.
      const columns = name === 'all' ? [named('name', EMPTY), named('setting', SETTINGS), named('description', EMPTY)] : [named(name, SETTINGS)]
      return finish({rows: 'yes', columns}, ctx)
    }
    case 'DeclareCursorStmt': {
      const inner = statementLineage(node.query as Node, ctx, outer)
      return {...finish({rows: 'no'}, ctx), defines: {kind: 'cursor', name: node.portalname as string, lineage: inner}}
    }
    case 'PrepareStmt': {
      const inner = statementLineage(node.query as Node, ctx, outer)
      return {...finish({rows: 'no'}, ctx), defines: {kind: 'prepared', name: node.name as string, lineage: inner}}
    }
    case 'FetchStmt':
      // MOVE runs the cursor's query as FETCH does, and its errors quote what that query read.
      if (node.ismove) return {rows: 'no', touchesSensitive: true, untraceable: [], opaque: false, sideChannels: [], uses: {kind: 'cursor', name: node.portalname as string, move: true}}
      return {rows: 'yes', touchesSensitive: true, untraceable: [], opaque: false, sideChannels: [], uses: {kind: 'cursor', name: node.portalname as string}}
    case 'ExecuteStmt': {
      // Its arguments are expressions the server evaluates into the statement's parameters, which
      // the statement's analysis took for the client's own values: `EXECUTE p(query_to_xml('select
      // full_name from customers', …)::text)` of `PREPARE p(text) AS SELECT $1` returned every name.
      // What they carry flows into the statement's output (`withArguments`).
      const scope: Scope = {rels: [], ctes: new Map(), parent: outer}
      const args = derived(list(node.params).map((p) => expr(p, scope, ctx)))
      return {
        rows: 'maybe',
        touchesSensitive: true,
        untraceable: [],
        opaque: ctx.opaque,
        sideChannels: [...ctx.sideChannels],
        ...(ctx.readsSettings ? {readsSettings: true} : {}),
        uses: {kind: 'prepared', name: node.name as string, ...(clean(args) ? {} : {args})},
      }
    }
    case 'CallStmt':
    case 'DoStmt':
      // Procedure and DO bodies run SQL the analysis never sees; they may return OUT values or raise notices.
      ctx.touches = true
      ctx.opaque = true
      return finish({rows: kind === 'CallStmt' ? 'maybe' : 'no'}, ctx)
    case 'RenameStmt':
    case 'AlterObjectSchemaStmt': {
      if (readsRowsOf(node, ctx.catalog)) ctx.touches = true
      const r = renameOf(kind, node)
      return r ? {...finish({rows: 'no'}, ctx), renames: [r]} : finish({rows: 'no'}, ctx)
    }
    case 'RuleStmt':
      // A rule's actions run, as written here, whenever its event does: what they write is filled
      // now as if they ran, and what they read is read. Their NEW and OLD rows are rows of the
      // rule's relation, whose columns hold what a read of them holds: `DO ALSO INSERT INTO log
      // VALUES (new.full_name)` copies every name later written to it (one the catalog does not
      // know yet: untraceable).
      for (const action of list(node.actions)) statementLineage(action as Node, ctx, ruleRows(node, outer, ctx))
      if (readsRowsOf(node, ctx.catalog)) ctx.touches = true
      // `CREATE OR REPLACE RULE "_RETURN" AS ON SELECT TO v`: a view's definition by another name.
      if (node.event === 'CMD_SELECT') {
        const replaced = replacedView(node.relation as Node | undefined)
        if (replaced) return {...finish({rows: 'no'}, ctx), replacesView: replaced}
      }
      return finish({rows: 'no'}, ctx)
    case 'CreateStmt': {
      createdColumns(node, outer, ctx)
      unprovenDefaults(node, outer, ctx, true)
      if (readsRowsOf(node, ctx.catalog)) ctx.touches = true
      const made = created(node.relation as Node | undefined, undefined)
      return made ? {...finish({rows: 'no'}, ctx), makes: made} : finish({rows: 'no'}, ctx)
    }
    case 'AlterTableStmt':
      alteredColumns(node, outer, ctx)
      unprovenDefaults(node, outer, ctx, true)
      if (readsRowsOf(node, ctx.catalog)) ctx.touches = true
      return finish({rows: 'no'}, ctx)
    case 'CreateTableAsStmt': {
      const inner = statementLineage(node.query as Node, ctx, outer)
      const into = node.into as Node | undefined
      const columns = renamed(inner.columns, {colnames: into?.colNames})
      // Columns whose shape is unknown hold what the query read of earlier writes of the text.
      const creates = created(into?.rel as Node | undefined, columns, columns || ctx.readWrites.length === 0 ? undefined : [named('column1', unknownValue(ctx))])
      // A materialized view's columns are read from its definition, which every later catalog read follows.
      const made = creates && node.objtype === 'OBJECT_MATVIEW' ? {...creates, view: true as const} : creates
      // `CREATE TABLE t AS EXECUTE p`: its columns are the prepared statement's, known once the
      // name is resolved in the session (`throughUse`), as those of a plain `EXECUTE p` are.
      if (inner.uses?.kind !== 'prepared' || !made) return {...finish({rows: 'no'}, ctx), creates: made}
      const names = list(into?.colNames).map(svalOf)
      return {...finish({rows: 'no'}, ctx), creates: names.length > 0 ? {...made, names} : made, uses: inner.uses}
    }
    case 'TransactionStmt':
    case 'ConstraintsSetStmt':
      return runsDeferred(kind, node) ? {...finish({rows: 'no'}, ctx), runsDeferred: true} : finish({rows: 'no'}, ctx)
    default: {
      if (DEFINES_DEFAULTS.has(kind)) unprovenDefaults(node, outer, ctx)
      if (readsRowsOf(node, ctx.catalog) || readsEveryTable(kind, node)) ctx.touches = true
      const done = finish({rows: 'no'}, ctx)
      const replaced = kind === 'ViewStmt' && node.replace === true ? replacedView(node.view as Node | undefined) : undefined
      if (replaced) return {...done, replacesView: replaced}
      return setsFromCurrent(node) ? {...done, copiesSettings: true} : done
    }
  }
}

/**
 * Whether a transaction statement runs work earlier statements deferred (see
 * `StatementLineage.runsDeferred`). An allow-list of those that run none: beginning a transaction
 * or a savepoint, releasing one (its deferred work stays queued for the commit), rolling back, and
 * ending a prepared transaction, whose deferred work ran at PREPARE TRANSACTION.
 */
function runsDeferred(kind: string, node: Node): boolean {
  if (kind === 'ConstraintsSetStmt') return node.deferred !== true
  return !RUNS_NOTHING_DEFERRED.has(String(node.kind))
}

const RUNS_NOTHING_DEFERRED = new Set([
  'TRANS_STMT_BEGIN', 'TRANS_STMT_START', 'TRANS_STMT_SAVEPOINT', 'TRANS_STMT_RELEASE', 'TRANS_STMT_ROLLBACK', 'TRANS_STMT_ROLLBACK_TO',
  'TRANS_STMT_COMMIT_PREPARED', 'TRANS_STMT_ROLLBACK_PREPARED',
])

/**
 * Statements that read rows of tables they do not name, and whose errors echo them: `ANALYZE` and
 * `VACUUM ANALYZE` evaluate extended statistics' expressions on sampled rows (`CREATE STATISTICS s
 * ON (full_name::int) FROM customers` evaluates nothing until then); `VACUUM FULL`, `CLUSTER` and
 * `REINDEX` of a schema, a database or the system rebuild indexes from expressions; `REFRESH
 * MATERIALIZED VIEW` runs the view's query, whose filters may read sensitive columns its output
 * does not have (`WHERE full_name::int > 0`); `ALTER DOMAIN … ADD CONSTRAINT` and `VALIDATE
 * CONSTRAINT` check every column of the domain, in any table.
 */
function readsEveryTable(kind: string, node: Node): boolean {
  if (kind === 'RefreshMatViewStmt' || kind === 'AlterDomainStmt') return true
  if (kind === 'VacuumStmt') return list(node.rels).length === 0
  if (kind === 'ClusterStmt') return !node.relation
  if (kind === 'ReindexStmt') return node.kind !== 'REINDEX_OBJECT_TABLE' && node.kind !== 'REINDEX_OBJECT_INDEX'
  return false
}

/** Statements besides ALTER TABLE that give a column or a domain a default. */
const DEFINES_DEFAULTS = new Set(['CreateStmt', 'CreateForeignTableStmt', 'CreateDomainStmt', 'AlterDomainStmt'])

/**
 * A default is evaluated by every later INSERT (and `UPDATE … SET x = DEFAULT`, `ADD COLUMN`'s
 * rewrite) that leaves its column out, and what it computes lands in the column where no statement
 * names it: `DEFAULT query_to_xml('select full_name from customers', …)` fills a clean-looking
 * column with every name. So a default must be proven clean like a value written into a setting;
 * one that is not (it runs SQL text, reads settings or files) is refused as a side channel.
 */
function unprovenDefaults(node: Node, outer: Scope | undefined, ctx: Ctx, columnsMarked = false): void {
  for (const {e, bound} of defaultExpressions(node)) {
    if (clean(expr(e, withCtes(undefined, outer, ctx), ctx))) continue
    // After DDL earlier in the text or its open transaction every unqualified call is distrusted
    // (it may resolve to a function the catalog has not read): a migration's `DEFAULT now()` or
    // `lower('X')`. A column default that is clean as the built-ins it names is not refused then:
    // the column it fills is marked by the distrusted expression (createdColumns, alteredColumns),
    // so what this tunnel reads of it is masked.
    if (columnsMarked && !bound && ctx.distrustNames) {
      const trusted = newCtx(ctx.catalog, false, ctx.anyOfSameName)
      if (clean(expr(e, withCtes(undefined, outer, trusted), trusted))) continue
    }
    ctx.sideChannels.push('a column or domain DEFAULT, or a partition bound, that is not proven clean (a function that runs SQL text, reads settings, files or rows) would store values no statement names: a default in every later INSERT that leaves its column out, a bound in the catalog; give it as a constant or a server fact (now(), nextval(…), gen_random_uuid())')
    return
  }
}

/** The expressions of `DEFAULT …` clauses anywhere in a statement (column constraints, `ALTER COLUMN … SET DEFAULT`, a domain's), and of partition bounds (`bound`). */
function defaultExpressions(node: unknown, into: {e: unknown; bound: boolean}[] = []): {e: unknown; bound: boolean}[] {
  if (Array.isArray(node)) {
    for (const x of node) defaultExpressions(x, into)
    return into
  }
  if (!node || typeof node !== 'object') return into
  const n = node as Node
  if (n.contype === 'CONSTR_DEFAULT' && n.raw_expr !== undefined) into.push({e: n.raw_expr, bound: false})
  // ALTER TABLE … ALTER COLUMN … SET DEFAULT, and ALTER DOMAIN … SET DEFAULT (subtype 'T').
  if ((n.subtype === 'AT_ColumnDefault' || (n.subtype === 'T' && 'typeName' in n)) && n.def !== undefined) into.push({e: n.def, bound: false})
  // A partition's bounds (`FOR VALUES IN (…)`, `FROM (…) TO (…)`) are evaluated once and kept as
  // constants in the catalog (pg_get_expr(relpartbound), pg_get_partition_constraintdef, `\d+`).
  for (const k of ['listdatums', 'lowerdatums', 'upperdatums']) for (const d of list(n[k])) if (!isRangeBound(d)) into.push({e: d, bound: true})
  for (const v of Object.values(n)) defaultExpressions(v, into)
  return into
}

/** `MINVALUE` and `MAXVALUE` in a range partition's bounds, which the parser leaves as column references. */
function isRangeBound(d: unknown): boolean {
  const ref = unwrap(d)
  if (ref?.[0] !== 'ColumnRef') return false
  const fields = list(ref[1].fields).map(svalOf)
  return fields.length === 1 && (fields[0] === 'minvalue' || fields[0] === 'maxvalue')
}

/** Whether a statement's tree holds `SET x FROM CURRENT` (a role's, a database's or a function's setting). */
function setsFromCurrent(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(setsFromCurrent)
  if (!node || typeof node !== 'object') return false
  // A VariableSetStmt, wrapped as a node (a function's `SET` clause) or not (ALTER ROLE's `setstmt`).
  if ((node as Node).kind === 'VAR_SET_CURRENT') return true
  return Object.values(node).some(setsFromCurrent)
}

/**
 * Whether a statement names a relation whose rows may hold sensitive values: one with sensitive
 * columns, or one the catalog does not know (created earlier in the same text). DDL reads the rows
 * of the tables it names (an index build, a constraint's validation, a rewrite) and its errors echo
 * them: `CREATE INDEX ON customers ((full_name::int))` fails with `invalid input syntax for type
 * integer: "Alice Novak"`, `CREATE UNIQUE INDEX` with `Key (nm)=(…) is duplicated`.
 */
function readsRowsOf(node: unknown, catalog: Catalog): boolean {
  if (Array.isArray(node)) return node.some((x) => readsRowsOf(x, catalog))
  if (!node || typeof node !== 'object') return false
  const o = node as Node
  // A RangeVar, wrapped as a node or not (a statement's own `relation` field is not).
  if (typeof o.relname === 'string') {
    const found = catalog.lookup(o.schemaname as string | undefined, o.relname)
    if (found.length === 0 || found.some((r) => holdsSensitive(r, catalog))) return true
  }
  return Object.values(o).some((v) => readsRowsOf(v, catalog))
}

/**
 * Whether writing the relation `rel` names may write, through foreign keys that cascade (and theirs
 * in turn), a table with sensitive columns or one the catalog does not know: `UPDATE parent SET id
 * = …` runs the referencing table's CHECK constraints and index expressions on its rows, and
 * `invalid input syntax for type integer: "Alice Novak"` echoes them.
 */
function cascadesIntoSensitive(rel: Node | undefined, catalog: Catalog): boolean {
  if (typeof rel?.relname !== 'string') return false
  const toVisit = catalog.lookup(rel.schemaname as string | undefined, rel.relname).flatMap((r) => r.cascadesTo ?? [])
  const seen = new Set<number>()
  for (let oid = toVisit.pop(); oid !== undefined; oid = toVisit.pop()) {
    if (seen.has(oid)) continue
    seen.add(oid)
    const child = catalog.relation(oid)
    if (!child || child.columns.some((c) => c.sensitive)) return true
    toVisit.push(...(child.cascadesTo ?? []))
  }
  return false
}

const RENAMED_RELATIONS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE'])

/** What `ALTER TABLE … RENAME [COLUMN] … TO …` or `ALTER TABLE … SET SCHEMA …` does to a relation's name. */
function renameOf(kind: string, node: Node): RenameOf | undefined {
  const rel = node.relation as Node | undefined
  if (typeof rel?.relname !== 'string') return undefined
  const from = {...(typeof rel.schemaname === 'string' ? {schema: rel.schemaname} : {}), name: rel.relname}
  if (kind === 'AlterObjectSchemaStmt') return RENAMED_RELATIONS.has(String(node.objectType)) && typeof node.newschema === 'string' ? {...from, toSchema: node.newschema} : undefined
  if (typeof node.newname !== 'string') return undefined
  if (RENAMED_RELATIONS.has(String(node.renameType))) return {...from, toName: node.newname}
  if (node.renameType === 'OBJECT_COLUMN' && typeof node.subname === 'string') return {...from, column: node.subname, toColumn: node.newname}
  return undefined
}

/** The expression a column definition's `DEFAULT` or `GENERATED ALWAYS AS (…)` fills it with, if any. */
function columnDefFill(def: unknown, column?: unknown): {name: string; expr: unknown}[] {
  const col = unwrap(def)
  const name = typeof column === 'string' ? column : col?.[1].colname
  if (col?.[0] !== 'ColumnDef' || typeof name !== 'string') return []
  // `raw_default` is the `USING` of `ALTER COLUMN … TYPE`; the parser puts a column's own default
  // and generation expression in its constraints.
  const exprs = [col[1].raw_default, ...list(col[1].constraints).map((c) => {
    const u = unwrap(c)
    return u?.[0] === 'Constraint' && (u[1].contype === 'CONSTR_DEFAULT' || u[1].contype === 'CONSTR_GENERATED') ? u[1].raw_expr : undefined
  })]
  return exprs.filter((e) => e !== undefined).map((e) => ({name, expr: e}))
}

/**
 * The columns an `ALTER TABLE` action fills, and with what expression of the row:
 * `ALTER COLUMN c TYPE … USING expr` rewrites `c` (`USING full_name` makes `country` hold names),
 * `ADD COLUMN c … DEFAULT expr` or `GENERATED ALWAYS AS (expr) STORED` fills `c` in every existing
 * row, and `ALTER COLUMN c SET DEFAULT expr` or `SET EXPRESSION AS (expr)` in every row written
 * later: a default calling a function that reads `hr.salaries` copies it into a clean-looking column.
 */
function alterTableFills(cmd: Node): {name: string; expr: unknown}[] {
  switch (cmd.subtype) {
    case 'AT_AlterColumnType':
      return columnDefFill(cmd.def, cmd.name)
    case 'AT_AddColumn':
      return columnDefFill(cmd.def)
    case 'AT_ColumnDefault':
    case 'AT_SetExpression':
      return typeof cmd.name === 'string' && cmd.def !== undefined ? [{name: cmd.name, expr: cmd.def}] : []
    default:
      return []
  }
}

/** Marks the columns `fills` fill, with an expression of a row of `rel`, where it is not proven clean. */
function filledColumns(rel: Node | undefined, fills: {name: string; expr: unknown}[], outer: Scope | undefined, ctx: Ctx, known: boolean): void {
  if (!rel?.relname || fills.length === 0) return
  const scope = withCtes(undefined, outer, ctx)
  // A table this statement creates is not in the catalog yet: its generated columns' references
  // to its other columns resolve to nothing known, and so count as untraceable.
  const target = known ? fromItem({RangeVar: rel}, scope, ctx) : undefined
  if (target) scope.rels.push(...target.visible)
  const unproven = fills.map((f) => named(f.name, expr(f.expr, scope, ctx))).filter((c) => !clean(c))
  const written = target?.visible[0]?.catalog
  const schema = written?.schema ?? (rel.schemaname as string | undefined)
  if (unproven.length > 0) ctx.fills.push({...(schema ? {schema} : {}), name: (written?.relation ?? rel.relname) as string, columns: unproven})
}

/**
 * What `ALTER TABLE` fills: see `alterTableFills`. A view's default (`ALTER VIEW v ALTER COLUMN c
 * SET DEFAULT expr`) fills the column of the table under it, in each row an `INSERT` through the
 * view writes without `c`, and reading that table does not pass the view: one not proven clean is
 * refused, as is one on a relation the catalog does not know (a view the open transaction made).
 */
function alteredColumns(node: Node, outer: Scope | undefined, ctx: Ctx): void {
  const cmds = list(node.cmds).map((c) => unwrap(c)?.[1]).filter((c): c is Node => c !== undefined)
  const rel = node.relation as Node | undefined
  const found = typeof rel?.relname === 'string' ? ctx.catalog.lookup(rel.schemaname as string | undefined, rel.relname) : []
  const mayBeView = node.objtype === 'OBJECT_VIEW' || found.length === 0 || found.some((r) => r.viewDefinition !== undefined)
  const viewDefaults = mayBeView ? cmds.filter((c) => c.subtype === 'AT_ColumnDefault' && c.def !== undefined) : []
  if (viewDefaults.some((c) => !clean(expr(c.def, withCtes(undefined, outer, ctx), ctx)))) {
    ctx.sideChannels.push(`a view's DEFAULT that is not proven clean fills the table under the view with values derived from sensitive or untraceable data, where reading that table does not pass the view; give it a constant default, or set it outside the tunnel after review`)
  }
  filledColumns(rel, cmds.filter((c) => !viewDefaults.includes(c)).flatMap(alterTableFills), outer, ctx, true)
}

/** `LIKE … INCLUDING DEFAULTS` and `INCLUDING GENERATED` (bits of `TableLikeClause.options`; `ALL` sets every bit). */
const LIKE_COPIES_FILLS = (1 << 3) | (1 << 4)

/**
 * `CREATE TABLE t (c … DEFAULT expr)`: each row written later without `c` gets `expr`. With
 * `LIKE src INCLUDING DEFAULTS` (or `GENERATED`, `ALL`), `t`'s columns get `src`'s expressions,
 * so they carry what `src`'s columns are known to hold; all of them where `src` is not known.
 */
function createdColumns(node: Node, outer: Scope | undefined, ctx: Ctx): void {
  const rel = node.relation as Node | undefined
  filledColumns(rel, list(node.tableElts).flatMap((el) => columnDefFill(el)), outer, ctx, false)
  if (!rel?.relname) return
  const schema = rel.schemaname as string | undefined
  for (const el of list(node.tableElts)) {
    const like = unwrap(el)
    if (like?.[0] !== 'TableLikeClause' || (Number(like[1].options) & LIKE_COPIES_FILLS) === 0) continue
    const source = fromItem({RangeVar: like[1].relation}, withCtes(undefined, outer, ctx), ctx).visible[0]
    const columns = source?.columns?.filter((c) => !clean(c))
    if (columns && columns.length === 0) continue
    ctx.fills.push({...(schema ? {schema} : {}), name: rel.relname as string, ...(columns ? {columns} : {}), copiedDefinitions: true})
  }
}

/** The columns `COPY … FROM` a file or program writes, as filled with values not proven clean. */
const COPY_TO_SERVER = "COPY … TO a server file or program would store values derived from sensitive or untraceable data on the server, where COPY … FROM reads them back into any table out of masking's reach"

/** The columns `COPY … TO` a file or program writes: its query's, or its table's (those listed). */
function copiedRows(node: Node, query: NamedLineage[] | undefined, outer: Scope | undefined, ctx: Ctx): Lineage[] {
  if (node.query) return query ?? [UNKNOWN]
  const rel = node.relation as Node | undefined
  if (!rel?.relname) return [UNKNOWN]
  const target = fromItem({RangeVar: rel}, withCtes(undefined, outer, ctx), ctx).visible[0]
  const attlist = list(node.attlist).map(svalOf)
  const columns = target?.columns
  if (!columns) return [target?.fallback ?? UNKNOWN]
  return attlist.length > 0 ? attlist.map((n) => columns.find((c) => c.name === n) ?? UNKNOWN) : columns
}

function fillsFromOutside(node: Node, outer: Scope | undefined, ctx: Ctx): void {
  const rel = node.relation as Node | undefined
  if (!rel?.relname) return
  const target = fromItem({RangeVar: rel}, withCtes(undefined, outer, ctx), ctx)
  const written = target.visible[0]?.catalog
  const attlist = list(node.attlist).map(svalOf).filter((n): n is string => n !== undefined)
  const names = attlist.length > 0 ? attlist : (target.visible[0]?.columns ?? []).map((c) => c.name)
  const schema = written?.schema ?? (rel.schemaname as string | undefined)
  // A table the catalog does not know yet: every column of it, whatever its name.
  const columns = names.length > 0 ? names.map((n) => named(n, UNKNOWN)) : undefined
  ctx.fills.push({...(schema ? {schema} : {}), name: (written?.relation ?? rel.relname) as string, ...(columns ? {columns} : {})})
}

function created(rel: Node | undefined, columns: NamedLineage[] | undefined, values?: NamedLineage[]): StatementLineage['creates'] {
  const name = rel?.relname as string | undefined
  if (!name) return undefined
  const schema = rel?.schemaname as string | undefined
  // `CREATE TEMP TABLE … AS`: the session's own, which no other session reads.
  const temporary = rel?.relpersistence === 't' || schema === 'pg_temp'
  return {...(schema ? {schema} : {}), name, columns, ...(values ? {values} : {}), ...(temporary ? {temporary: true as const} : {})}
}

/**
 * The lineage of each statement of a text (a simple Query may hold several). The catalog is read between statements, never during a
 * text: after a statement that may change it (DDL, or code the analysis cannot see into, which may
 * run DDL), the statements after it in the same text are analysed with unqualified function and
 * operator names distrusted, since `CREATE FUNCTION public.lower(int) …; SELECT lower(1)` calls a
 * function the catalog does not hold yet. `distrustNames` starts the text that way (see
 * `StatementLineage.changesCatalog`).
 */
/**
 * `anyOfSameName`: the session's search_path is not known to be the default, so an unqualified
 * relation name held by several schemas is read as any of them (see `Ctx`). `moved`: relation
 * names the session's uncommitted change may have moved already (see `Ctx.moved`); the text's own
 * changes add to them (`StatementLineage.movesNames`).
 */
export function analyzeText(sql: string, catalog: Catalog, distrustNames = false, anyOfSameName = false, moved: MovedNames = undefined): TextLineage {
  const parsed = parseSql(sql)
  if (!parsed.ok) return parsed
  let distrust = distrustNames
  let names = moved
  const written: TextWrite[] = []
  return {
    ok: true,
    statements: parsed.statements.map((s) => {
      const l = withEventTriggers(s, statementLineage(s, newCtx(catalog, distrust, anyOfSameName, names, [...written])), catalog)
      written.push(...writesOf(l))
      const changes = l.opaque || mayChangeCatalog(s)
      if (changes) distrust = true
      if (!changes) return l
      const moves = l.opaque ? 'all' : movedBy(s, catalog)
      names = bothMoved(names, moves)
      const changed: StatementLineage = moves ? {...l, changesCatalog: true, movesNames: moves === 'all' ? 'all' : [...moves]} : {...l, changesCatalog: true}
      return commitsInside(s) ? {...changed, commitsInside: true} : changed
    }),
  }
}

/** The view `CREATE OR REPLACE VIEW` names, as written. */
function replacedView(rel: Node | undefined): StatementLineage['replacesView'] {
  const name = rel?.relname
  if (typeof name !== 'string') return undefined
  const schema = rel!.schemaname
  return typeof schema === 'string' ? {schema, name} : {name}
}

/** The relation a statement creates, as written (CREATE TABLE, CREATE TABLE … AS, SELECT … INTO, CREATE VIEW). */
function createdRelation(kind: string, node: Node): Node | undefined {
  if (kind === 'CreateStmt') return node.relation as Node | undefined
  // CREATE FOREIGN TABLE holds a CREATE TABLE, INHERITS and PARTITION OF included.
  if (kind === 'CreateForeignTableStmt') return (node.base as Node | undefined)?.relation as Node | undefined
  if (kind === 'CreateTableAsStmt') return (node.into as Node | undefined)?.rel as Node | undefined
  if (kind === 'SelectStmt') return (node.intoClause as Node | undefined)?.rel as Node | undefined
  if (kind === 'ViewStmt') return node.view as Node | undefined
  return undefined
}

/** Relation names (`relname` of every RangeVar) anywhere in a parse tree. */
function relationNames(node: unknown, out: Set<string>): Set<string> {
  if (Array.isArray(node)) {
    for (const x of node) relationNames(x, out)
  } else if (isObj(node)) {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'RangeVar' && isObj(v) && typeof v.relname === 'string') out.add(v.relname)
      relationNames(v, out)
    }
  }
  return out
}

/** Renames and moves whose object is a relation or one of its columns, constraints or indexes. */
const RELATION_RENAMES: ReadonlySet<unknown> = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_INDEX', 'OBJECT_SEQUENCE', 'OBJECT_COLUMN', 'OBJECT_TABCONSTRAINT'])

/** DDL on relations it names (with a RangeVar) that can change only what those names mean or hold. */
const NAMED_RELATION_DDL: ReadonlySet<string> = new Set(['AlterTableStmt', 'RuleStmt', 'CreateTrigStmt', 'CreatePolicyStmt', 'AlterPolicyStmt', 'IndexStmt'])

/**
 * Which relation names a statement that changes the catalog may make mean another relation, or
 * other columns, than the catalog (committed state) says (see \`Ctx.moved\`); undefined when none.
 * Nothing: a DROP (a name it frees means nothing, or what the catalog already resolves it to), a
 * function's definition (running it is code the analysis cannot see into, judged where it runs),
 * a relation made under a name no relation the catalog knows has (it shadows none, in any schema,
 * whatever the search_path), and the DDL that keeps relations for the guardrails (indexes,
 * sequences, comments, ALTER TABLE on columns and constraints). The names it renames, moves or
 * reuses (a relation made under a name in use, a temporary one included, which goes first on the
 * path), and those of the relations DDL on named relations reaches (a parent gains a child's
 * rows). Anything else (a new or renamed schema, which a name may now find first) may move every
 * name: an allow-list.
 */
function movedBy(stmt: Node, catalog: Catalog): MovedNames {
  const u = unwrap(stmt)
  if (!u) return 'all'
  const [kind, node] = u
  if (kind === 'ExplainStmt') return movedBy(node.query as Node, catalog)
  if (kind === 'DropStmt' || kind === 'CreateFunctionStmt') return undefined
  const created = createdRelation(kind, node)
  if (created) {
    const name = created.relname
    // A temporary relation goes first on the path, before pg_catalog: one named pg_… may shadow a system relation.
    if (typeof name !== 'string' || name.startsWith('pg_')) return 'all'
    const fresh = catalog.sameNamed(name).length === 0
    const table = kind === 'CreateStmt' ? node : kind === 'CreateForeignTableStmt' ? (node.base as Node | undefined) : undefined
    if (!table) return fresh ? undefined : new Set([name])
    // A child or partition adds its rows to its parents'.
    const under = gainingRows(relationNames([table.inhRelations, table.partbound], new Set()))
    if (fresh && under.size === 0) return undefined
    return fresh ? under : under.add(name)
  }
  if (keepsRelations(kind, node)) return undefined
  if ((kind === 'RenameStmt' || kind === 'AlterObjectSchemaStmt') && RELATION_RENAMES.has(kind === 'RenameStmt' ? node.renameType : node.objectType)) {
    const rel = node.relation as Node | undefined
    if (typeof rel?.relname !== 'string') return 'all'
    return typeof node.newname === 'string' ? new Set([rel.relname, node.newname]) : new Set([rel.relname])
  }
  if (NAMED_RELATION_DDL.has(kind)) {
    const names = relationNames(node, new Set())
    // INHERIT and ATTACH PARTITION give the parent the child's rows. ATTACH names both without a
    // RangeVar node (the altered table, and the partition in its PartitionCmd); INHERIT names the child so.
    const joins = kind === 'AlterTableStmt' ? list(node.cmds).map((c) => unwrap(c)?.[1]).filter((c) => c?.subtype === 'AT_AddInherit' || c?.subtype === 'AT_AttachPartition') : []
    if (joins.length === 0) return names.size > 0 ? names : 'all'
    const bare = [(node.relation as Node | undefined)?.relname, ...joins.map((c) => ((unwrap(c!.def)?.[1].name ?? undefined) as Node | undefined)?.relname)]
    for (const n of bare) if (typeof n === 'string') names.add(n)
    return names.size > 0 ? gainingRows(names) : 'all'
  }
  return 'all'
}

/** Statement kinds that never create, alter or drop a catalog object (an allow-list: any other kind may). */
const CATALOG_KEEPING = new Set([
  'SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'CopyStmt', 'ExplainStmt', 'VariableShowStmt', 'VariableSetStmt',
  'TransactionStmt', 'DeclareCursorStmt', 'FetchStmt', 'ClosePortalStmt', 'PrepareStmt', 'ExecuteStmt', 'DeallocateStmt', 'ListenStmt',
  'UnlistenStmt', 'NotifyStmt', 'DiscardStmt', 'LockStmt', 'CheckPointStmt', 'VacuumStmt', 'ConstraintsSetStmt',
])

/**
 * A statement that may fire the database's event triggers (DDL, `SELECT … INTO`) runs their
 * functions, which read and print anything (`RAISE NOTICE '%', (SELECT full_name …)` on
 * `ddl_command_end`) and may set settings or prepare statements anew: code the analysis cannot
 * see into. Statements on event triggers themselves fire none, so one can always be dropped.
 */
function withEventTriggers(stmt: Node, l: StatementLineage, catalog: Catalog): StatementLineage {
  if ((l.opaque && l.touchesSensitive) || !catalog.firesOnDdl() || !mayChangeCatalog(stmt) || onEventTrigger(stmt)) return l
  // The reason `onUntraceable: deny` refuses it with, whether or not it returns rows.
  const reason = "it fires the database's event triggers (pg_event_trigger), whose functions the analysis cannot see into and whose notices and errors may print any value they read"
  return {...l, touchesSensitive: true, opaque: true, untraceable: [...l.untraceable, reason]}
}

function onEventTrigger(stmt: Node): boolean {
  const u = unwrap(stmt)
  if (!u) return false
  const [kind, node] = u
  return kind === 'CreateEventTrigStmt' || kind === 'AlterEventTrigStmt' || (kind === 'DropStmt' && node.removeType === 'OBJECT_EVENT_TRIGGER')
}

function commitsInside(stmt: Node): boolean {
  const kind = unwrap(stmt)?.[0]
  return kind === 'DoStmt' || kind === 'CallStmt'
}

function mayChangeCatalog(stmt: Node): boolean {
  const u = unwrap(stmt)
  if (!u) return true
  const [kind, node] = u
  // SELECT … INTO and EXPLAIN ANALYZE of CREATE TABLE … AS create a table.
  if (kind === 'SelectStmt') return node.intoClause !== undefined
  if (kind === 'ExplainStmt') return mayChangeCatalog(node.query as Node)
  return !CATALOG_KEEPING.has(kind)
}

// ---- where bind parameters go -----------------------------------------------------------------

/**
 * Where a statement's bind parameter is used, for the recording (see `paramPlaces`): `clean`, every
 * use is a comparison with, an assignment to or an insertion into a column proven clean; `count`,
 * a LIMIT or OFFSET (its value is a number of rows); a category, a column of that category; `masked`,
 * anywhere else (a function's argument, `select $1`, a column of unknown or mixed origin).
 */
export type ParamPlace = 'clean' | 'count' | 'masked' | {category: MaskingCategory}

/** Comparison operators whose operands are only compared, never stored or printed (built-in ones only). */
const COMPARISONS = new Set(['=', '<>', '!=', '<', '>', '<=', '>='])

interface ParamWalk {
  ctx: Ctx
  places: Map<number, ParamPlace>
  /**
   * The statements whose RETURNING goes to the client (a text's own, and a PREPARE's): what any
   * other writing statement returns (a writing CTE's) is handed on in the statement, anywhere.
   */
  top: Set<Node>
}

/** Two places of one parameter: clean only when both are; a sensitive column's category when they agree. */
function bothPlaces(a: ParamPlace | undefined, b: ParamPlace): ParamPlace {
  if (a === undefined || a === b) return b
  if (a === 'masked' || b === 'masked') return 'masked'
  if (typeof a === 'object' && typeof b === 'object') return a.category === b.category ? a : 'masked'
  if (typeof a === 'object') return a
  if (typeof b === 'object') return b
  // One use is a count, the other a clean column: shown only as a number.
  return 'count'
}

function placeParam(w: ParamWalk, param: Node, place: ParamPlace): void {
  const n = typeof param.number === 'number' ? param.number : 0
  w.places.set(n, bothPlaces(w.places.get(n), place))
}

/**
 * The ParamRef a value is, through casts to types whose input runs no user code (`$1::int`), or
 * undefined. A domain's constraints and a user-defined cast run user code on the value (`typeCast`).
 */
function paramOf(raw: unknown, ctx: Ctx): Node | undefined {
  const u = unwrap(raw)
  if (!u) return undefined
  if (u[0] === 'ParamRef') return u[1]
  if (u[0] !== 'TypeCast') return undefined
  if (typeRunsCode(u[1].typeName, ctx)) return undefined
  return paramOf(u[1].arg, ctx)
}

/** Whether a value converted to the type a TypeName names may run user code on it (`paramOf`). */
function typeRunsCode(typeName: unknown, ctx: Ctx): boolean {
  const names = list((unwrap(typeName)?.[1] ?? (typeName as Node | undefined))?.names).map(svalOf)
  const schema = names.length > 1 ? names[0] : undefined
  // A composite type one of whose fields is such a domain converts the value field by field.
  return schema !== 'pg_catalog' && (ctx.distrustNames || ctx.catalog.namedInputRunsCode(names.at(-1) ?? '', schema))
}

/**
 * A column's lineage for a parameter compared with or stored into it, or undefined when its type
 * runs user code on the value (a domain's constraints): the value may be copied anywhere.
 */
function codeFree(col: Lineage | undefined, ctx: Ctx): Lineage | undefined {
  const origin = col?.origin
  if (!origin) return col
  const column = ctx.catalog.relation(origin.tableOid)?.columns.find((c) => c.attnum === origin.attnum)
  // A composite column converts each field of the value (`pair_t` with a domain field), an array each element.
  if (!column) return col
  const runs = ctx.catalog.castRunsCode(column.typeName) || (ctx.catalog.type(column.typeOid) !== undefined && ctx.catalog.inputRunsCode(column.typeOid))
  return runs ? undefined : col
}

/** The lineage of the column `name` of a written relation (see `codeFree`). */
function writtenColumn(target: ScopeRel | undefined, name: string | undefined, ctx: Ctx): Lineage | undefined {
  return codeFree(name === undefined ? undefined : target?.columns?.find((c) => c.name === name), ctx)
}

/** What a column's lineage makes of a parameter compared with or written into it. */
function columnPlace(l: Lineage | undefined): ParamPlace {
  if (!l) return 'masked'
  if (clean(l)) return 'clean'
  const sources = flatten(l)
  if (anyUnknown(l) || sources.length === 0) return 'masked'
  const category = sources[0]!.category
  return sources.every((s) => s.category === category) ? {category} : 'masked'
}

/** Whether an operator name is a built-in comparison, as the catalog read it (`aExpr` decides alike for lineage). */
function builtinComparison(name: unknown, ctx: Ctx): boolean {
  const parts = list(name).map(svalOf)
  const op = parts.at(-1)
  if (op === undefined || !COMPARISONS.has(op) || parts.length > 2) return false
  if (parts.length === 2) return parts[0] === 'pg_catalog'
  return !ctx.distrustNames && !ctx.catalog.isUserOperator(op)
}

/** A plain column reference (not `*`, not a whole row by its alias alone), resolved in scope. */
function plainColumn(raw: unknown, scope: Scope, ctx: Ctx): Lineage | undefined {
  const u = unwrap(raw)
  if (!u || u[0] !== 'ColumnRef') return undefined
  if (list(u[1].fields).some((f) => unwrap(f)?.[0] !== 'String')) return undefined
  // Masked, not left to the generic walk: the parameter is compared with this column either way.
  return codeFree(columnRef(u[1], scope, ctx), ctx) ?? UNKNOWN
}

/** `col op $n`, `$n op col`, `col IN ($n, …)`, `col = ANY($n)`: true when handled here. */
function comparisonPlaces(node: Node, scope: Scope, w: ParamWalk): boolean {
  if (!builtinComparison(node.name, w.ctx)) return false
  const kind = node.kind as string | undefined
  if (kind === undefined || kind === 'AEXPR_OP' || kind === 'AEXPR_OP_ANY' || kind === 'AEXPR_OP_ALL') {
    const pairs: [unknown, unknown][] = kind === undefined || kind === 'AEXPR_OP' ? [[node.lexpr, node.rexpr], [node.rexpr, node.lexpr]] : [[node.lexpr, node.rexpr]]
    for (const [col, other] of pairs) {
      const p = paramOf(other, w.ctx)
      const c = p && plainColumn(col, scope, w.ctx)
      if (p && c) {
        placeParam(w, p, columnPlace(c))
        return true
      }
    }
    return false
  }
  if (kind === 'AEXPR_IN') {
    const c = plainColumn(node.lexpr, scope, w.ctx)
    if (!c) return false
    // `IN ($1, $2)` arrives as a List node or a bare array, depending on the parser's version.
    const items = Array.isArray(node.rexpr) ? node.rexpr : list(unwrap(node.rexpr)?.[0] === 'List' ? unwrap(node.rexpr)![1].items : undefined)
    if (items.length === 0) return false
    for (const item of items) {
      const p = paramOf(item, w.ctx)
      if (p) placeParam(w, p, columnPlace(c))
      else paramWalk(item, scope, w)
    }
    return true
  }
  return false
}

/** `SET col = $n` of UPDATE and ON CONFLICT DO UPDATE; other targets are walked as any expression. */
function assignmentPlaces(targets: unknown, target: ScopeRel | undefined, scope: Scope, w: ParamWalk): void {
  for (const t of list(targets)) {
    const rt = unwrap(t)?.[1]
    const p = rt && typeof rt.name === 'string' && rt.indirection === undefined ? paramOf(rt.val, w.ctx) : undefined
    if (p) placeParam(w, p, columnPlace(writtenColumn(target, rt!.name as string, w.ctx)))
    else paramWalk(t, scope, w)
  }
}

function selectPlaces(sel: Node, outer: Scope, w: ParamWalk): void {
  const scope = withCtes(sel.withClause as Node | undefined, outer, w.ctx)
  for (const c of list((sel.withClause as Node | undefined)?.ctes)) paramWalk(unwrap(c)?.[1].ctequery, scope, w)
  for (const item of list(sel.fromClause)) scope.rels.push(...fromItem(item, scope, w.ctx).visible)
  for (const [key, value] of Object.entries(sel)) {
    if (key === 'withClause') continue
    if (key === 'limitCount' || key === 'limitOffset') {
      const p = paramOf(value, w.ctx)
      if (p) {
        placeParam(w, p, 'count')
        continue
      }
    }
    paramWalk(value, scope, w)
  }
}

function dmlPlaces(kind: string, node: Node, outer: Scope, w: ParamWalk): void {
  const scope = withCtes(node.withClause as Node | undefined, outer, w.ctx)
  for (const c of list((node.withClause as Node | undefined)?.ctes)) paramWalk(unwrap(c)?.[1].ctequery, scope, w)
  const target = node.relation === undefined ? undefined : fromItem({RangeVar: node.relation}, TARGET_SCOPE(), w.ctx).visible[0]
  if (target) scope.rels.push(target)
  // Triggers and rules on the written relation (or a partition or child the row may land in, or
  // any relation an unqualified name may mean) run code of their own, which may copy a value
  // anywhere; and one created by the connection's own uncommitted change is not in the catalog yet.
  const runsCode = target !== undefined && (w.ctx.distrustNames || writtenRelations(node.relation as Node | undefined, w.ctx).some((r) => writesRunCode(r, w.ctx.catalog)))
  // What a writing CTE returns is handed on to the rest of the statement, which may write it into
  // any column or pass it to any function: a value written there is proven nowhere.
  const handsOn = !w.top.has(node) && (list(node.returningList).length > 0 || list((node.returningClause as Node | undefined)?.exprs).length > 0)
  const into = runsCode || handsOn ? undefined : target
  for (const item of [...list(node.fromClause), ...list(node.usingClause)]) scope.rels.push(...fromItem(item, scope, w.ctx).visible)
  let inserted = new Map<string, Node[]>()
  // The VALUES first: ON CONFLICT's `excluded` holds what they put in each column.
  if (kind === 'InsertStmt' && node.selectStmt !== undefined) inserted = insertedPlaces(node, into, scope, w)
  for (const [key, value] of Object.entries(node)) {
    if (key === 'withClause' || key === 'relation' || (kind === 'InsertStmt' && key === 'selectStmt')) continue
    if (kind === 'UpdateStmt' && key === 'targetList') assignmentPlaces(value, into, scope, w)
    else if (kind === 'InsertStmt' && key === 'onConflictClause') {
      const oc = value as Node
      excludedPlaces(oc, inserted, into, w)
      // `excluded` is the row proposed for insertion: the target's own columns.
      const inner: Scope = {rels: target ? [...scope.rels, {...target, alias: 'excluded'}] : scope.rels, ctes: scope.ctes, parent: scope.parent}
      for (const [k, v] of Object.entries(oc)) {
        if (k === 'targetList') assignmentPlaces(v, into, inner, w)
        else paramWalk(v, inner, w)
      }
    } else paramWalk(value, scope, w)
  }
}

/** The column an `excluded.col` reference names; `*` for the whole proposed row (`excluded`, `excluded.*`). */
function excludedColumn(raw: unknown): string | undefined {
  const u = unwrap(raw)
  if (!u || u[0] !== 'ColumnRef') return undefined
  const fields = list(u[1].fields)
  if (svalOf(fields[0]) !== 'excluded' || fields.length > 2) return undefined
  if (fields.length === 1 || unwrap(fields[1])?.[0] === 'A_Star') return '*'
  return svalOf(fields[1])
}

/** Every `excluded` reference in an expression, by the column it names. */
function excludedRefs(raw: unknown, out: string[] = []): string[] {
  if (Array.isArray(raw)) {
    for (const item of raw) excludedRefs(item, out)
    return out
  }
  if (!isObj(raw)) return out
  const column = excludedColumn(raw)
  if (column !== undefined) {
    out.push(column)
    return out
  }
  for (const v of Object.values(raw)) excludedRefs(v, out)
  return out
}

/**
 * The proposed columns (`names`) a generated column of the written table is computed from: the
 * server computes it for the proposed row too, so `excluded.g` of `g … GENERATED ALWAYS AS (a)`
 * holds what was proposed for `a`. Names are looked for in the expression's text, as the catalog
 * does (`markGenerated`), which over-matches rather than misses one.
 */
function generatedFrom(c: NamedLineage, names: readonly (string | undefined)[], ctx: Ctx): string[] {
  const expression = c.origin ? ctx.catalog.column(c.origin.tableOid, c.origin.attnum)?.generated?.toLowerCase() : undefined
  if (expression === undefined) return []
  return names.filter((n): n is string => n !== undefined && expression.includes(n.toLowerCase()))
}

/**
 * `ON CONFLICT DO UPDATE`: `excluded.col` is the value the statement proposed for `col`, a bound
 * one among them, and `SET other = excluded.col` writes it into another column of the row. So a
 * value inserted into `col` is also placed where `excluded.col` is used: assigned whole to a column,
 * that column's place; anywhere else (in an expression, the whole row, the WHERE), masked.
 */
function excludedPlaces(oc: Node, inserted: Map<string, Node[]>, into: ScopeRel | undefined, w: ParamWalk): void {
  if (inserted.size === 0) return
  const place = (column: string, p: ParamPlace): void => {
    // A generated column holds the proposed values it is computed from (`generatedFrom`).
    const own = column === '*' ? undefined : into?.columns?.find((c) => c.name === column)
    const from = own ? generatedFrom(own, [...inserted.keys()], w.ctx) : []
    const params = column === '*' ? [...inserted.values()].flat() : [column, ...from].flatMap((c) => inserted.get(c) ?? [])
    for (const param of params) placeParam(w, param, p)
  }
  for (const t of list(oc.targetList)) {
    const rt = unwrap(t)?.[1]
    const direct = rt && typeof rt.name === 'string' && rt.indirection === undefined ? excludedColumn(rt.val) : undefined
    if (direct !== undefined && direct !== '*') place(direct, columnPlace(writtenColumn(into, rt!.name as string, w.ctx)))
    else for (const column of excludedRefs(rt?.val)) place(column, 'masked')
  }
  for (const column of excludedRefs(oc.whereClause)) place(column, 'masked')
}

/**
 * Whether writing a relation may run code: its own triggers, rules or row-level security policies
 * (their WITH CHECK expressions), or those of a relation inheriting from it (a partition).
 */
function writesRunCode(rel: CatalogRelation, catalog: Catalog, seen = new Set<number>()): boolean {
  if (rel.runsCode || rel.rowSecurity) return true
  seen.add(rel.oid)
  return (rel.children ?? []).some((oid) => {
    if (seen.has(oid)) return false
    const child = catalog.relation(oid)
    return !child || writesRunCode(child, catalog, seen)
  })
}

/**
 * `INSERT … VALUES ($1, …)`: each value in the column its position names (the list given, else the
 * table's order). Returns the parameters put in each column, by its name.
 */
function insertedPlaces(node: Node, target: ScopeRel | undefined, scope: Scope, w: ParamWalk): Map<string, Node[]> {
  const byColumn = new Map<string, Node[]>()
  const sel = unwrap(node.selectStmt)
  if (!sel || sel[0] !== 'SelectStmt' || !sel[1].valuesLists || (sel[1].op && sel[1].op !== 'SETOP_NONE')) {
    paramWalk(node.selectStmt, scope, w)
    return byColumn
  }
  const given = list(node.cols).map((c) => unwrap(c)?.[1])
  // A column named with a subscript or field (`tags[1]`, `addr.city`) is a part of it: not resolved here.
  const names: (string | undefined)[] = given.length > 0 ? given.map((rt) => (rt && rt.indirection === undefined ? (rt.name as string | undefined) : undefined)) : (target?.columns ?? []).map((c) => c.name)
  for (const [key, value] of Object.entries(sel[1])) {
    if (key !== 'valuesLists') {
      paramWalk(value, scope, w)
      continue
    }
    for (const row of list(value)) {
      list(unwrap(row)?.[1].items).forEach((item, i) => {
        const p = paramOf(item, w.ctx)
        if (p) placeParam(w, p, columnPlace(writtenColumn(target, names[i], w.ctx)))
        else paramWalk(item, scope, w)
        // Any value under the column's name, a cast or expression included: `excluded` holds it.
        const name = names[i]
        if (name !== undefined) for (const ref of paramRefs(item)) byColumn.set(name, [...(byColumn.get(name) ?? []), ref])
      })
    }
  }
  return byColumn
}

/** Every ParamRef in an expression. */
function paramRefs(raw: unknown, out: Node[] = []): Node[] {
  if (Array.isArray(raw)) {
    for (const item of raw) paramRefs(item, out)
    return out
  }
  if (!isObj(raw)) return out
  const u = unwrap(raw)
  if (u?.[0] === 'ParamRef') {
    out.push(u[1])
    return out
  }
  for (const v of Object.values(raw)) paramRefs(v, out)
  return out
}

/** Every parameter reached here is in a place not recognised above: masked. */
function paramWalk(raw: unknown, scope: Scope, w: ParamWalk): void {
  if (Array.isArray(raw)) {
    for (const item of raw) paramWalk(item, scope, w)
    return
  }
  if (!isObj(raw)) return
  const u = unwrap(raw)
  if (!u) {
    for (const v of Object.values(raw)) paramWalk(v, scope, w)
    return
  }
  const [kind, node] = u
  switch (kind) {
    case 'ParamRef':
      return placeParam(w, node, 'masked')
    case 'SelectStmt':
      return selectPlaces(node, scope, w)
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
      return dmlPlaces(kind, node, scope, w)
    case 'A_Expr':
      if (comparisonPlaces(node, scope, w)) return
      break
    case 'ExplainStmt':
      // The plan prints every value the planner was given (`Filter: (full_name = 'Dora Quill'::text)`):
      // each is in the output, whatever place the query gives it.
      for (const ref of paramRefs(node)) placeParam(w, ref, 'masked')
      return
  }
  for (const v of Object.values(node)) paramWalk(v, scope, w)
}

/**
 * For each bind parameter of a text (by number), where its value goes, resolved against the catalog
 * by the lineage's own scopes: the recording keeps a parameter in clear only where this proves it
 * lands in a clean column or a row count. `distrustNames`: the session may have created operators
 * the catalog has not read, so no unqualified comparison is proven built-in. Undefined when the text
 * does not parse: every parameter is then masked.
 */
export function paramPlaces(sql: string, catalog: Catalog, distrustNames = false, moved: MovedNames = undefined): ReadonlyMap<number, ParamPlace> | undefined {
  const parsed = parseSql(sql)
  if (!parsed.ok) return undefined
  // Any schema holding a relation of that name may be the one meant: the session's search_path is not known here.
  const w: ParamWalk = {ctx: newCtx(catalog, distrustNames, true, moved), places: new Map(), top: new Set()}
  for (const s of parsed.statements) {
    const node = unwrap(s)
    if (!node) continue
    w.top.add(node[1])
    // `PREPARE p AS INSERT … RETURNING …`: its EXECUTE returns the rows to the client.
    const prepared = node[0] === 'PrepareStmt' ? unwrap(node[1].query) : undefined
    if (prepared) w.top.add(prepared[1])
  }
  for (const s of parsed.statements) paramWalk(s, {rels: [], ctes: new Map()}, w)
  // `PREPARE p(checked_text) AS …`: each value is converted to its declared type at EXECUTE or
  // Bind, and a domain's CHECK runs user code on it there, before any place the text gives it.
  for (const s of parsed.statements) {
    const u = unwrap(s)
    if (u?.[0] !== 'PrepareStmt') continue
    list(u[1].argtypes).forEach((t, i) => {
      if (typeRunsCode(t, w.ctx)) placeParam(w, {number: i + 1}, 'masked')
    })
  }
  return w.places
}

/**
 * What the masking layer knows about the target's schema: every user table and view, its columns,
 * and which of them are sensitive and why. Built from the live catalog, refreshed after DDL.
 */
import type {MaskingConfig} from '../config/types.js'
import {classifyColumn, type MaskingCategory} from './categories.js'
import {globMatcher} from './glob.js'
import {loadParser} from '../sql/parser.js'
import {runsCodeOnWrite} from '../sql/runs-code.js'
import type {RenameOf} from './lineage-model.js'

export type Row = Record<string, unknown>
export type CatalogQuery = (sql: string) => Promise<Row[]>

export interface SensitiveMark {
  category: MaskingCategory
  reason: string
  /**
   * `name` for the dictionary, `config` for a `mask:` glob, `lineage` for a column this tunnel saw
   * filled from sensitive or untraceable values (`CREATE TABLE … AS SELECT email …`).
   */
  source: 'name' | 'type' | 'config' | 'lineage'
  /**
   * This tunnel saw the column filled with values that are not a column's own of its category
   * (`UPDATE customers SET email = reverse(email)`, `CREATE TABLE t AS SELECT 'x@' || ssn AS
   * email`): `partial` would keep the wrong part of them, so the column is redacted instead.
   */
  inexact?: true
  /**
   * Filled by a statement this tunnel saw with values it could not trace (a user function's
   * result), not copied from a sensitive column: masked here, but a copy of it copies no classified value.
   */
  untraced?: true
}

export interface CatalogColumn {
  name: string
  attnum: number
  typeOid: number
  typeName: string
  /** A generated column's expression, as the server prints it (`pg_get_expr`). */
  generated?: string
  sensitive?: SensitiveMark
}

export interface CatalogRelation {
  oid: number
  schema: string
  name: string
  kind: 'table' | 'view' | 'materialized_view' | 'foreign_table' | 'partitioned_table' | 'sequence'
  /** The relation's row type: what RowDescription reports for `SELECT u FROM users u`. */
  rowTypeOid: number
  columns: CatalogColumn[]
  /** For views: the definition as pg_get_viewdef returns it. */
  viewDefinition?: string
  /**
   * For views: a change marker of the definition (the row version of its `_RETURN` rule), which
   * `CREATE OR REPLACE VIEW` changes, so a stale definition is noticed before it is relied on.
   */
  viewMark?: string
  /** User triggers or rewrite rules run code of their own when the relation is written. */
  runsCode?: boolean
  /** Row-level security: reading it runs the policies' expressions. */
  rowSecurity?: boolean
  /** Tables that inherit from it, or its partitions (pg_inherits): reading it reads their rows too. */
  children?: number[]
  /**
   * Tables whose foreign keys to it cascade (`ON UPDATE CASCADE`, `ON DELETE SET NULL`, …): an
   * UPDATE or DELETE of it writes their rows too, running their constraints and index expressions,
   * whose errors echo those rows.
   */
  cascadesTo?: number[]
}

export interface TypeInfo {
  oid: number
  name: string
  /** pg_type.typcategory: S string, N numeric, D date/time, A array, C composite, U user, … */
  category: string
  elementOid: number
  relationOid: number
  /** A domain's base type (pg_type.typbasetype); absent for any other type. */
  baseOid?: number
  /** A range's subtype, or that of a multirange's range (pg_range); absent for any other type. */
  rangeOf?: number
  /** A composite type made by `CREATE TYPE … AS (…)`: its fields, in order. A table's row type has its columns instead. */
  fields?: Array<{name: string; typeOid: number; typeName: string}>
}

export interface CatalogSnapshot {
  relations: CatalogRelation[]
  types: TypeInfo[]
  /** User-defined functions (schema-qualified and bare names), whose bodies the lineage cannot see. */
  functions: string[]
  /** Operators defined outside pg_catalog (their symbols), which call user code. */
  operators?: string[]
  /** Types a cast to runs user code: domains (their constraints) and targets of user-defined casts. */
  codeTypes?: string[]
  /** The events of the database's enabled event triggers (`ddl_command_start`, `sql_drop`, `login`, …), whose functions the lineage cannot see. */
  eventTriggers?: string[]
}

const CATALOG_SQL = {
  columns: `
    with rels as (
      select c.oid, n.nspname, c.relname, c.relkind, c.reltype, c.relrowsecurity,
             case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end as viewdef,
             case when c.relkind in ('v', 'm') then (select r.xmin::text from pg_rewrite r where r.ev_class = c.oid and r.rulename = '_RETURN') end as viewmark,
             c.relhasrules or exists (select 1 from pg_trigger g where g.tgrelid = c.oid and not g.tgisinternal) or ${runsCodeOnWrite('c', {plainDefaults: false})} as runscode,
             (select string_agg(i.inhrelid::text, ',') from pg_inherits i where i.inhparent = c.oid) as children,
             (select string_agg(f.conrelid::text, ',') from pg_constraint f
               where f.contype = 'f' and f.confrelid = c.oid and (f.confupdtype not in ('a', 'r') or f.confdeltype not in ('a', 'r'))) as cascades
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'v', 'm', 'f', 'p', 'S')
        and n.nspname not in ('pg_catalog', 'information_schema')
        and n.nspname not like 'pg_toast%'
    )
    select c.oid::int8 as oid, c.nspname as schema, c.relname as name, c.relkind as kind, c.reltype::int8 as rowtype,
           c.relrowsecurity as rls, c.runscode, c.viewdef, c.viewmark, c.children, c.cascades,
           a.attnum::int4 as attnum, a.attname as column, a.atttypid::int8 as typeoid, t.typname as typename,
           case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end as generated
    from rels c
    left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    left join pg_type t on t.oid = a.atttypid
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    order by c.oid, a.attnum`,
  // A multirange is tied to its range only by pg_range.rngmultitypid (PostgreSQL 14 on), read through to_jsonb so older servers read it too.
  types: `
    select t.oid::int8 as oid, t.typname as name, t.typcategory as category, t.typelem::int8 as elem, t.typrelid::int8 as relid, t.typbasetype::int8 as base,
           (select r.rngsubtype::int8 from pg_range r where r.rngtypid = t.oid or to_jsonb(r) ->> 'rngmultitypid' = t.oid::text limit 1) as rangeof
    from pg_type t`,
  /** The fields of composite types made by CREATE TYPE … AS (a stored column of one holds them all). */
  fields: `
    select t.oid::int8 as typeoid, a.attname as name, a.atttypid::int8 as fieldtype, ft.typname as fieldtypename
    from pg_type t
    join pg_class c on c.oid = t.typrelid and c.relkind = 'c'
    join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    join pg_type ft on ft.oid = a.atttypid
    order by t.oid, a.attnum`,
  /** Everything outside pg_catalog that runs user code when a statement names it. */
  code: `
    select 'function' as what, n.nspname as schema, p.proname as name
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname not in ('pg_catalog', 'information_schema')
    union all
    select 'operator', n.nspname, o.oprname
    from pg_operator o join pg_namespace n on n.oid = o.oprnamespace
    where n.nspname <> 'pg_catalog'
    union all
    select 'type', n.nspname, t.typname
    from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where t.typtype = 'd' and n.nspname <> 'pg_catalog'
    union all
    select 'type', n.nspname, t.typname
    from pg_cast k join pg_proc p on p.oid = k.castfunc join pg_type t on t.oid = k.casttarget join pg_namespace n on n.oid = t.typnamespace
    where p.pronamespace <> 'pg_catalog'::regnamespace
    union all
    select 'event_trigger', '', e.evtevent::text
    from pg_event_trigger e
    where e.evtenabled <> 'D'`,
}

const KINDS: Record<string, CatalogRelation['kind']> = {r: 'table', v: 'view', m: 'materialized_view', f: 'foreign_table', p: 'partitioned_table', S: 'sequence'}

/** Reads the catalog through `query` (any connection to the target) into a snapshot. */
export async function readCatalog(query: CatalogQuery): Promise<CatalogSnapshot> {
  const [columnRows, typeRows, codeRows, fieldRows] = await Promise.all([query(CATALOG_SQL.columns), query(CATALOG_SQL.types), query(CATALOG_SQL.code), query(CATALOG_SQL.fields)])
  const relations = new Map<number, CatalogRelation>()
  for (const r of columnRows) {
    const oid = Number(r.oid)
    let rel = relations.get(oid)
    if (!rel) {
      rel = {
        oid,
        schema: String(r.schema),
        name: String(r.name),
        kind: KINDS[String(r.kind)] ?? 'table',
        rowTypeOid: Number(r.rowtype),
        columns: [],
        viewDefinition: r.viewdef == null ? undefined : String(r.viewdef),
        ...(r.viewmark == null ? {} : {viewMark: String(r.viewmark)}),
        ...(r.runscode === true ? {runsCode: true} : {}),
        ...(r.rls === true ? {rowSecurity: true} : {}),
        ...(r.children == null ? {} : {children: String(r.children).split(',').map(Number)}),
        ...(r.cascades == null ? {} : {cascadesTo: String(r.cascades).split(',').map(Number)}),
      }
      relations.set(oid, rel)
    }
    if (r.attnum != null) rel.columns.push({name: String(r.column), attnum: Number(r.attnum), typeOid: Number(r.typeoid), typeName: String(r.typename), ...(r.generated == null ? {} : {generated: String(r.generated)})})
  }
  const fields = new Map<number, NonNullable<TypeInfo['fields']>>()
  for (const f of fieldRows) {
    const oid = Number(f.typeoid)
    let list = fields.get(oid)
    if (!list) fields.set(oid, (list = []))
    list.push({name: String(f.name), typeOid: Number(f.fieldtype), typeName: String(f.fieldtypename)})
  }
  const types = typeRows.map((t): TypeInfo => {
    const oid = Number(t.oid)
    const base = Number(t.base ?? 0)
    const own = fields.get(oid)
    return {
      oid, name: String(t.name), category: String(t.category), elementOid: Number(t.elem), relationOid: Number(t.relid),
      ...(base !== 0 ? {baseOid: base} : {}), ...(t.rangeof == null ? {} : {rangeOf: Number(t.rangeof)}), ...(own ? {fields: own} : {}),
    }
  })
  const named = (what: string) => codeRows.filter((f) => f.what === what).flatMap((f) => [String(f.name), `${String(f.schema)}.${String(f.name)}`])
  const eventTriggers = [...new Set(codeRows.filter((f) => f.what === 'event_trigger').map((f) => String(f.name)))]
  return {relations: [...relations.values()], types, functions: named('function'), operators: named('operator'), codeTypes: named('type'), ...(eventTriggers.length > 0 ? {eventTriggers} : {})}
}

/**
 * A foreign table's rows come from another server, or from this one through a loopback server
 * under any name (`nm text options (column_name 'full_name')` over `customers`): its column names
 * prove nothing of what they hold, and the catalog cannot read the other side. Such a column is
 * masked as untraceable unless `unmaskColumns:` names it.
 */
const FOREIGN_COLUMN: SensitiveMark = {category: 'untraceable', reason: 'a column of a foreign table, whose values come from a server the catalog does not read (list it in unmaskColumns to show it)', source: 'type'}

/** Marks the sensitive columns of a snapshot: the dictionary first, then `mask:` adds and `unmaskColumns:` removes. */
export function classifySnapshot(snapshot: CatalogSnapshot, config: Pick<MaskingConfig, 'mask' | 'unmaskColumns'>): CatalogSnapshot {
  const classify = columnClassifier(config)
  const removed = globMatcher(config.unmaskColumns)
  const relations = snapshot.relations.map((rel) => ({
    ...rel,
    columns: rel.columns.map((col): CatalogColumn => ({...col, sensitive: classify(rel.schema, rel.name, col, rel.kind)})),
  }))
  return markCompositeColumns({...snapshot, relations: relations.map((rel) => markGenerated(rel, removed))}, removed)
}

/**
 * How the dictionary and `mask:` / `unmaskColumns:` classify a column by its own name, type and
 * place; what its type's fields and the table's other columns add comes after (`classifySnapshot`).
 */
function columnClassifier(config: Pick<MaskingConfig, 'mask' | 'unmaskColumns'>) {
  const added = globMatcher(config.mask)
  const removed = globMatcher(config.unmaskColumns)
  return (schema: string, relation: string, col: Pick<CatalogColumn, 'name' | 'typeName'>, kind: CatalogRelation['kind']): SensitiveMark | undefined => {
    const path = [schema, relation, col.name] as const
    if (removed(path)) return undefined
    const found = classifyColumn(col.name, col.typeName)
    if (found) return {...found, source: found.reason.startsWith('type') ? 'type' : 'name'}
    const glob = added(path)
    if (glob) return {category: categoryForConfigured(col), reason: `configured by mask: ${glob}`, source: 'config'}
    if (kind === 'foreign_table') return FOREIGN_COLUMN
    return undefined
  }
}

/**
 * A column of a composite type holds its fields' values in every row (`who contact_t` with fields
 * `full_name` and `email`), whatever the column itself is called: one whose type has a field the
 * dictionary calls sensitive (or a column of a table whose row type it is, or any view's), at any depth, through
 * arrays, domains, ranges and multiranges, is masked as untraceable, its value being several values of several kinds.
 */
function markCompositeColumns(snapshot: CatalogSnapshot, removed: ReturnType<typeof globMatcher>): CatalogSnapshot {
  const typeOf = new Map(snapshot.types.map((t) => [t.oid, t]))
  const rowTypes = new Map(snapshot.relations.map((r) => [r.rowTypeOid, r]))
  const held = new Map<number, string | undefined>()
  const sensitiveIn = (oid: number, seen: ReadonlySet<number>): string | undefined => {
    if (held.has(oid)) return held.get(oid)
    const t = typeOf.get(oid)
    if (!t || seen.has(oid)) return undefined
    const inner = new Set(seen).add(oid)
    let found: string | undefined
    if (t.baseOid !== undefined) found = sensitiveIn(t.baseOid, inner)
    // A range's bounds (and each range of a multirange) are values of its subtype: `contact_r` over contact_t holds names.
    else if (t.rangeOf !== undefined) found = sensitiveIn(t.rangeOf, inner)
    else if (t.fields) {
      for (const f of t.fields) {
        const named = classifyColumn(f.name, f.typeName)
        found = named ? `${t.name}.${f.name} (${named.reason})` : sensitiveIn(f.typeOid, inner)
        if (found) break
      }
    } else if (rowTypes.has(oid)) {
      const rel = rowTypes.get(oid)!
      const col = rel.columns.find((c) => c.sensitive)
      found = col ? `${rel.schema}.${rel.name}.${col.name} (${col.sensitive!.reason})` : undefined
      // A column of that table may itself be of such a type (`h homes`, where homes has `who contact_t`).
      for (const c of found ? [] : rel.columns) {
        const inside = sensitiveIn(c.typeOid, inner)
        if (inside) {
          found = `${rel.schema}.${rel.name}.${c.name}, whose type holds ${inside}`
          break
        }
      }
      // A view's columns are named by its definition, not by what they hold (`full_name AS who`), which only lineage follows.
      if (!found && rel.viewDefinition !== undefined) found = `the columns of view ${rel.schema}.${rel.name}, whatever its definition reads into them`
    } else if (t.relationOid !== 0) {
      // The row type of a relation the catalog does not read (`x pg_authid` holds rolpassword).
      found = `the row type of a relation the catalog does not read`
    } else if (t.elementOid !== 0) found = sensitiveIn(t.elementOid, inner)
    held.set(oid, found)
    return found
  }
  let changed = false
  const relations = snapshot.relations.map((rel) => {
    if (!rel.columns.some((c) => !c.sensitive && typeOf.get(c.typeOid)?.category !== 'S' && typeOf.get(c.typeOid)?.category !== 'N')) return rel
    const columns = rel.columns.map((col): CatalogColumn => {
      if (col.sensitive || removed([rel.schema, rel.name, col.name])) return col
      const found = sensitiveIn(col.typeOid, new Set())
      if (!found) return col
      changed = true
      return {...col, sensitive: {category: 'untraceable', reason: `its type ${col.typeName} holds ${found}`, source: 'type'}}
    })
    return {...rel, columns}
  })
  return changed ? {...snapshot, relations} : snapshot
}

/**
 * A generated column holds what its expression computes from the row's other columns
 * (`ADD COLUMN nm text GENERATED ALWAYS AS (full_name) STORED`): one that names a sensitive column
 * of its table is marked with that column's category (untraceable when it names several of
 * different categories). Names are looked for in the expression's text, which over-matches (a
 * constant holding a column's name) rather than misses one.
 */
function markGenerated(rel: CatalogRelation, removed: ReturnType<typeof globMatcher>): CatalogRelation {
  if (!rel.columns.some((c) => c.generated !== undefined && !c.sensitive)) return rel
  const sensitive = rel.columns.filter((c) => c.sensitive && c.generated === undefined)
  if (sensitive.length === 0) return rel
  const columns = rel.columns.map((col): CatalogColumn => {
    if (col.generated === undefined || col.sensitive || removed([rel.schema, rel.name, col.name])) return col
    const expr = col.generated.toLowerCase()
    const from = sensitive.filter((c) => expr.includes(c.name.toLowerCase()))
    if (from.length === 0) return col
    const category = from.every((c) => c.sensitive!.category === from[0]!.sensitive!.category) ? from[0]!.sensitive!.category : 'untraceable'
    // Only the column itself is its own value: `partial` on `'x@' || replace(email, '@', '.')` keeps the address as the domain.
    const only = from[0]!
    const own = from.length === 1 && !only.sensitive!.inexact && [only.name, `"${only.name.replaceAll('"', '""')}"`].includes(col.generated.trim())
    const untraced = from.every((c) => c.sensitive!.untraced)
    return {...col, sensitive: {category, reason: `generated from ${from.map((c) => `${rel.schema}.${rel.name}.${c.name}`).join(', ')}`, source: 'lineage', ...(own ? {} : {inexact: true as const}), ...(untraced ? {untraced: true as const} : {})}}
  })
  return {...rel, columns}
}

/**
 * The server computes a generated column from its row's other columns on every write (or read,
 * `VIRTUAL`): one whose expression names a column this tunnel learnt holds sensitive values, a mark
 * made after the snapshot was classified (filled by `INSERT … SELECT full_name`, a mark kept under a
 * new name, or shared with a child), holds them too, and is marked as `markGenerated` marks it.
 */
function generatedFromLearnt(snapshot: CatalogSnapshot, config: Pick<MaskingConfig, 'unmaskColumns'> | undefined): CatalogSnapshot {
  const removed = globMatcher(config?.unmaskColumns ?? [])
  let changed = false
  const relations = snapshot.relations.map((rel) => {
    const marked = markGenerated(rel, removed)
    if (marked !== rel) changed = true
    return marked
  })
  return changed ? {...snapshot, relations} : snapshot
}

/** A session's temporary schema (`pg_temp_3`), or its TOAST schema: no other session reads its relations. */
export function isTemporarySchema(schema: string): boolean {
  return /^pg_(toast_)?temp_\d+$/.test(schema)
}

/** A column named by `mask:` that the dictionary does not know: masked as untraceable (fully redacted). */
function categoryForConfigured(col: Pick<CatalogColumn, 'name' | 'typeName'>): MaskingCategory {
  return classifyColumn(col.name, col.typeName)?.category ?? 'untraceable'
}

// COMMIT PREPARED commits whatever the prepared transaction holds, DDL included, from any session.
const REFRESH_TAGS = /^(CREATE|ALTER|DROP|COMMENT|GRANT|REVOKE|SECURITY LABEL|IMPORT FOREIGN SCHEMA|REFRESH MATERIALIZED VIEW|SELECT INTO|COMMIT PREPARED)\b/
const REFRESH_TAG_EXCEPTIONS = /^(CREATE|DROP) (ROLE|USER|DATABASE|TABLESPACE|SUBSCRIPTION|PUBLICATION|EVENT TRIGGER)\b|^ALTER (ROLE|USER|DATABASE|SYSTEM|TABLESPACE)\b/

/**
 * Whether a CommandComplete tag means the schema may have changed. `CREATE TABLE AS` reports
 * `SELECT n`, which cannot be told apart from a query, so it is covered by `SELECT INTO` only.
 */
export function needsRefresh(commandTag: string): boolean {
  return REFRESH_TAGS.test(commandTag) && !REFRESH_TAG_EXCEPTIONS.test(commandTag)
}

/** How a column filled by a statement this tunnel saw is to be classified (see `Catalog.markDerived`). */
export interface DerivedMarks {
  schema?: string
  name: string
  /** Column name → its mark; `all` marks every column (the query's shape was not known). */
  columns: Map<string, SensitiveMark> | 'all'
}

/** What the statement hook asks of the catalog before a statement runs (see `Catalog.ensureFresh`). */
export interface FreshnessNeeds {
  misses: {schema?: string; relation: string; column?: string}[]
  views: number[]
  /** Tables whose column order is relied on (`StatementLineage.layouts`). */
  layouts?: number[]
}

/** Catalog re-reads caused by names it does not know happen at most this often. */
export const MIN_REREAD_INTERVAL_MS = 2000

/**
 * The catalog the filter consults on every RowDescription: lookups by OID and by name are O(1).
 * `refresh()` swaps in a new snapshot atomically; lookups in flight keep the old one.
 */
export class Catalog {
  private byOid = new Map<number, CatalogRelation>()
  private byRowType = new Map<number, CatalogRelation>()
  private byName = new Map<string, CatalogRelation[]>()
  /** The tables a table inherits from, or is a partition of (pg_inherits read the other way). */
  private parentsByOid = new Map<number, number[]>()
  private typeByOid = new Map<number, TypeInfo>()
  /** Type OIDs by name, in any schema (pg_type has no schema here): for casts named in SQL text. */
  private typesByName = new Map<string, number[]>()
  private functionNames = new Set<string>()
  private operatorNames = new Set<string>()
  private codeTypeNames = new Set<string>()
  private current: CatalogSnapshot = {relations: [], types: [], functions: []}
  /** The snapshot as read and classified, before `derived` marks are applied. */
  private base: CatalogSnapshot = this.current
  private readonly derived: DerivedMarks[] = []
  /** `base` as a read from scratch classifies it, by OID: made on first need after each install. */
  private fresh: Map<number, CatalogRelation> | undefined
  private classifier: ReturnType<typeof columnClassifier> | undefined
  private unmasked: ReturnType<typeof globMatcher> | undefined
  /** Every mark a column has had, by `tableOid:attnum`, so that renaming it does not unmask it (see `keepMarks`). */
  private readonly marksByColumn = new Map<string, SensitiveMark>()
  private refreshing: Promise<void> | undefined
  private again = false
  private nextReread: Promise<void> | undefined
  private rereads = 0
  private lastReread = -Infinity
  /** Names a re-read did not find, and until when another re-read for them is not worth it. */
  private readonly confirmedMissing = new Map<string, number>()
  /** Views whose definition changed but could not be re-read: their lineage is not trusted. */
  private stale = new Set<number>()
  /** Bumped on every refresh, so caches keyed on the catalog know to start over. */
  generation = 0

  constructor(
    snapshot: CatalogSnapshot,
    private readonly source?: {query: CatalogQuery; config: Pick<MaskingConfig, 'mask' | 'unmaskColumns'>},
    private readonly minRereadMs = MIN_REREAD_INTERVAL_MS,
  ) {
    this.install(snapshot)
  }

  get snapshot(): CatalogSnapshot {
    return this.current
  }

  private install(snapshot: CatalogSnapshot): void {
    this.base = snapshot
    this.current = generatedFromLearnt(inheritMarks(keepMarks(this.derived.length > 0 ? applyDerived(snapshot, this.derived, this.source?.config) : snapshot, this.marksByColumn)), this.source?.config)
    const relations = this.current.relations
    this.byOid = new Map(relations.map((r) => [r.oid, r]))
    this.byRowType = new Map(relations.map((r) => [r.rowTypeOid, r]))
    this.byName = new Map()
    this.parentsByOid = new Map()
    for (const r of relations) for (const c of r.children ?? []) this.parentsByOid.set(c, [...(this.parentsByOid.get(c) ?? []), r.oid])
    for (const r of relations) {
      for (const key of [`${r.schema}.${r.name}`, r.name]) {
        const list = this.byName.get(key) ?? []
        list.push(r)
        this.byName.set(key, list)
      }
    }
    this.typeByOid = new Map(snapshot.types.map((t) => [t.oid, t]))
    this.typesByName = new Map()
    for (const t of snapshot.types) this.typesByName.set(t.name, [...(this.typesByName.get(t.name) ?? []), t.oid])
    this.functionNames = new Set(snapshot.functions)
    this.operatorNames = new Set(snapshot.operators ?? [])
    this.codeTypeNames = new Set(snapshot.codeTypes ?? [])
    this.stale = new Set()
    this.fresh = undefined
    this.generation++
  }

  /** The re-read under way, if any, to wait for before analysing a statement; never rejects. */
  settling(): Promise<void> | undefined {
    return this.refreshing?.catch(() => {})
  }

  /** Re-reads the catalog; concurrent calls share one read, and a call during a read queues one more. */
  refresh(): Promise<void> {
    const source = this.source
    if (!source) return Promise.resolve()
    if (this.refreshing) {
      this.again = true
      return this.refreshing
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false
        this.install(classifySnapshot(await readCatalog(source.query), source.config))
      } while (this.again)
    }
    this.refreshing = run().finally(() => {
      this.refreshing = undefined
    })
    return this.refreshing
  }

  /**
   * A re-read for names the catalog does not know: every caller waiting at once shares one read
   * that starts after they asked, and such reads start at most once every `minRereadMs`, so a
   * client naming one unknown table after another cannot turn the catalog into a load test.
   */
  private reread(): Promise<void> {
    if (this.nextReread) return this.nextReread
    const turn = ++this.rereads
    this.nextReread = (async () => {
      // Continues only once `nextReread` holds this read, so that starting it hands waiting on to the next one.
      await null
      const wait = this.lastReread + this.minRereadMs - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      if (this.rereads === turn) this.nextReread = undefined
      this.lastReread = Date.now()
      await this.refresh()
    })()
    return this.nextReread
  }

  /**
   * Before a statement runs: when it names relations or columns this catalog does not know, or
   * relies on views whose definitions changed since they were read (their change marker moved),
   * re-reads the catalog so that its rows are masked with the current schema. Undefined when
   * nothing is missing, which is the common case and costs nothing. Rejects when the catalog
   * cannot be read; what is still unknown is then masked as untraceable, and changed views are
   * no longer trusted.
   */
  ensureFresh(needs: FreshnessNeeds): Promise<void> | undefined {
    const layouts = needs.layouts ?? []
    if (!this.source || (needs.misses.length === 0 && needs.views.length === 0 && layouts.length === 0)) return undefined
    const now = Date.now()
    const wanted = needs.misses.filter((m) => (this.confirmedMissing.get(missKey(m)) ?? 0) <= now && this.missing(m))
    if (wanted.length === 0 && needs.views.length === 0 && layouts.length === 0) return undefined
    return this.freshen(wanted, needs.views, layouts)
  }

  private async freshen(wanted: FreshnessNeeds['misses'], views: number[], layouts: number[] = []): Promise<void> {
    // A read already under way (after DDL through this tunnel) may bring what is missing.
    if (wanted.length > 0 && this.refreshing) {
      await this.refreshing.catch(() => {})
      wanted = wanted.filter((m) => this.missing(m))
    }
    const changed = (views.length > 0 ? await this.viewsChanged(views).catch(() => true) : false) || (layouts.length > 0 ? await this.layoutsChanged(layouts).catch(() => true) : false)
    if (wanted.length === 0 && !changed) return
    try {
      await this.reread()
    } catch (error) {
      if (changed) for (const v of [...views, ...layouts]) this.stale.add(v)
      throw error
    }
    const until = Date.now() + this.minRereadMs
    for (const m of wanted) if (this.missing(m)) this.confirmedMissing.set(missKey(m), until)
  }

  /** Whether any of these views' definitions changed since they were read (or they were dropped). */
  private async viewsChanged(oids: number[]): Promise<boolean> {
    const ids = [...new Set(oids)].filter((o) => Number.isSafeInteger(o))
    if (ids.length === 0) return false
    const rows = await this.source!.query(`select ev_class::int8 as oid, xmin::text as mark from pg_rewrite where rulename = '_RETURN' and ev_class in (${ids.join(', ')})`)
    const marks = new Map(rows.map((r) => [Number(r.oid), String(r.mark)]))
    return ids.some((oid) => marks.get(oid) !== this.byOid.get(oid)?.viewMark)
  }

  /** Whether any of these tables' columns, in order, differ from what was read (or they were dropped). */
  private async layoutsChanged(oids: number[]): Promise<boolean> {
    const ids = [...new Set(oids)].filter((o) => Number.isSafeInteger(o))
    if (ids.length === 0) return false
    const rows = await this.source!.query(`select attrelid::int8 as oid, attname as name from pg_attribute where attrelid in (${ids.join(', ')}) and attnum > 0 and not attisdropped order by attrelid, attnum`)
    const now = new Map<number, string[]>()
    for (const r of rows) {
      const oid = Number(r.oid)
      const names = now.get(oid) ?? []
      names.push(String(r.name))
      now.set(oid, names)
    }
    return ids.some((oid) => {
      const read = this.byOid.get(oid)?.columns.map((c) => c.name) ?? []
      const current = now.get(oid) ?? []
      return read.length !== current.length || read.some((n, i) => n !== current[i])
    })
  }

  private missing(m: FreshnessNeeds['misses'][number]): boolean {
    const found = this.lookup(m.schema, m.relation)
    if (found.length === 0) return true
    return m.column !== undefined && !found.some((r) => r.columns.some((c) => c.name === m.column))
  }

  /** A result named a table or column the catalog does not know: re-read in the background. */
  noteUnknown(): void {
    if (this.source) this.reread().catch(() => {})
  }

  /** A view whose definition changed and could not be re-read: its lineage must not be relied on. */
  isStale(oid: number): boolean {
    return this.stale.has(oid)
  }

  /**
   * Classifies the columns of a relation a statement this tunnel saw fills from a query
   * (`CREATE TABLE … AS`, `SELECT … INTO`): the dictionary cannot know that `contact` holds
   * e-mail addresses, the statement's lineage does. Kept for the catalog's lifetime and applied
   * to every later snapshot, since the relation usually appears only after the next read.
   */
  markDerived(marks: DerivedMarks): void {
    // The same statement is seen again when it is described and run, or run again.
    const key = derivedKey(marks)
    if (this.derived.some((d) => derivedKey(d) === key)) return
    this.derived.push(marks)
    this.install(this.base)
  }

  /**
   * Marks made by name (`markDerived`) follow a rename or move this tunnel saw: the relation may not
   * have been read yet (created in a transaction still open, or earlier in the same text), so its
   * marks cannot have been kept by OID. The old name keeps its marks too.
   */
  renameDerived(r: RenameOf): void {
    const moved: DerivedMarks[] = []
    for (const d of this.derived) {
      if (d.name !== r.name || (d.schema !== undefined && r.schema !== undefined && d.schema !== r.schema)) continue
      const schema = r.toSchema ?? d.schema
      let columns = d.columns
      if (r.column !== undefined && r.toColumn !== undefined && columns !== 'all') {
        const mark = columns.get(r.column)
        if (!mark) continue
        columns = new Map([...columns, [r.toColumn, mark]])
      }
      moved.push({...(schema === undefined ? {} : {schema}), name: r.toName ?? d.name, columns})
    }
    const fresh = moved.filter((m) => !this.derived.some((d) => derivedKey(d) === derivedKey(m)))
    if (fresh.length === 0) return
    this.derived.push(...fresh)
    this.install(this.base)
  }

  needsRefresh(commandTag: string): boolean {
    return needsRefresh(commandTag)
  }

  /**
   * The relations of this name as a catalog read from scratch classifies them: by the dictionary,
   * `mask:` and the catalog, without the marks this catalog learnt from statements it saw. That is
   * what another person's pipeline on the gateway, another replica, or this tunnel after a restart
   * goes by. An unqualified name gives every schema's relation of that name; `pg_temp`, the
   * session's temporary ones.
   */
  freshlyRead(schema: string | undefined, name: string): CatalogRelation[] {
    const fresh = (this.fresh ??= new Map(generatedFromLearnt(inheritMarks(this.base), this.source?.config).relations.map((r) => [r.oid, r])))
    const all = this.byName.get(name) ?? []
    const found = schema === 'pg_temp' ? all.filter((r) => isTemporarySchema(r.schema)) : schema ? this.lookup(schema, name) : all
    return found.flatMap((r) => fresh.get(r.oid) ?? [])
  }

  /** Whether `unmaskColumns:` shows this column, wherever the catalog would otherwise mask it. */
  unmaskedAt(schema: string, relation: string, column: string): boolean {
    this.unmasked ??= globMatcher(this.source?.config.unmaskColumns ?? [])
    return this.unmasked([schema, relation, column]) !== undefined
  }

  /** The schemas of the relations the catalog holds. */
  schemaNames(): string[] {
    return [...new Set(this.current.relations.map((r) => r.schema))]
  }

  /** How a read from scratch would classify a column the catalog does not hold yet, by its own name, type and place. */
  classifiedAt(schema: string, relation: string, column: Pick<CatalogColumn, 'name' | 'typeName'>, kind: CatalogRelation['kind'] = 'table'): SensitiveMark | undefined {
    this.classifier ??= columnClassifier(this.source?.config ?? {mask: [], unmaskColumns: []})
    return this.classifier(schema, relation, column, kind)
  }

  relation(oid: number): CatalogRelation | undefined {
    return this.byOid.get(oid)
  }

  relationOfRowType(typeOid: number): CatalogRelation | undefined {
    return this.byRowType.get(typeOid)
  }

  /**
   * Resolves a name as written in SQL. An unqualified name prefers `public`, else a relation of
   * that name in exactly one schema; ambiguity returns every candidate so callers can be cautious.
   */
  lookup(schema: string | undefined, name: string): CatalogRelation[] {
    if (schema) return this.byName.get(`${schema}.${name}`) ?? []
    const all = this.byName.get(name) ?? []
    if (all.length <= 1) return all
    const pub = all.filter((r) => r.schema === 'public')
    return pub.length === 1 ? pub : all
  }

  /**
   * The tables `oid` inherits from or is a partition of, and theirs, each once. PostgreSQL prints a
   * row that failed a constraint in a partition or child in the column order of the table the
   * statement named, which may be any of these.
   */
  ancestors(oid: number): CatalogRelation[] {
    const seen = new Set<number>([oid])
    const out: CatalogRelation[] = []
    const visit = (o: number): void => {
      for (const p of this.parentsByOid.get(o) ?? []) {
        if (seen.has(p)) continue
        seen.add(p)
        const rel = this.byOid.get(p)
        if (rel) out.push(rel)
        visit(p)
      }
    }
    visit(oid)
    return out
  }

  /** Every relation of this name, in any schema. */
  sameNamed(name: string): CatalogRelation[] {
    return this.byName.get(name) ?? []
  }

  /** Whether a schema of this name holds any relation the catalog knows. */
  hasSchema(schema: string): boolean {
    return this.current.relations.some((r) => r.schema === schema)
  }

  column(tableOid: number, attnum: number): CatalogColumn | undefined {
    const rel = this.byOid.get(tableOid)
    return rel?.columns.find((c) => c.attnum === attnum)
  }

  type(oid: number): TypeInfo | undefined {
    return this.typeByOid.get(oid)
  }

  isUserFunction(name: string, schema?: string): boolean {
    return this.functionNames.has(schema ? `${schema}.${name}` : name)
  }

  /**
   * Whether the database has an enabled event trigger that DDL fires (`ddl_command_start`,
   * `ddl_command_end`, `sql_drop`, `table_rewrite`): its function runs with the statement, and may
   * read and print anything.
   */
  firesOnDdl(): boolean {
    return (this.current.eventTriggers ?? []).some((e) => e !== 'login')
  }

  /** Whether the database has an enabled `login` event trigger (PostgreSQL 17 on): its function runs as each session begins. */
  firesAtLogin(): boolean {
    return (this.current.eventTriggers ?? []).includes('login')
  }

  isUserOperator(symbol: string, schema?: string): boolean {
    return this.operatorNames.has(schema ? `${schema}.${symbol}` : symbol)
  }

  /** Whether a cast to this type runs user code (a domain's constraints, a user-defined cast). */
  castRunsCode(typeName: string, schema?: string): boolean {
    return this.codeTypeNames.has(schema ? `${schema}.${typeName}` : typeName)
  }

  /**
   * Whether converting a value to the type `oid` may run user code on it: a domain with constraints
   * or a type with a user-defined cast (by name, in any schema), an array of one, a composite type
   * one of whose fields is one (record input converts each field); and a type this catalog does not
   * know (created since it was read).
   */
  inputRunsCode(oid: number, depth = 0): boolean {
    const type = this.typeByOid.get(oid)
    if (!type || depth > 8) return true
    if (this.castRunsCode(type.name)) return true
    if (type.elementOid !== 0 && this.inputRunsCode(type.elementOid, depth + 1)) return true
    // A range's input converts its bounds to the subtype (a domain's check, a composite's fields).
    if (type.rangeOf !== undefined && this.inputRunsCode(type.rangeOf, depth + 1)) return true
    if (type.relationOid === 0) return false
    const row = this.byRowType.get(oid)
    return !row || row.columns.some((c) => this.inputRunsCode(c.typeOid, depth + 1))
  }

  /**
   * `inputRunsCode` for a type named in SQL text (a cast, a PREPARE's parameter types): any type of
   * that name, in any schema (an array named `kept_pair[]` names its element type).
   */
  namedInputRunsCode(name: string, schema?: string): boolean {
    if (this.castRunsCode(name, schema)) return true
    return (this.typesByName.get(name) ?? []).some((oid) => {
      const t = this.typeByOid.get(oid)
      // A composite type is made with its table or by CREATE TYPE: only its fields can run code; a range, only its subtype.
      return t !== undefined && (t.relationOid !== 0 || t.rangeOf !== undefined) && this.inputRunsCode(oid)
    })
  }

  /** Views and materialized views, with their definitions. */
  definedRelations(): CatalogRelation[] {
    return this.current.relations.filter((r) => r.viewDefinition !== undefined)
  }

  /** Relations with at least one sensitive column. */
  sensitiveRelations(): CatalogRelation[] {
    return this.current.relations.filter((r) => r.columns.some((c) => c.sensitive))
  }
}

function derivedKey(d: DerivedMarks): string {
  return JSON.stringify([d.schema ?? '', d.name, d.columns === 'all' ? 'all' : [...d.columns.entries()]])
}

function missKey(m: FreshnessNeeds['misses'][number]): string {
  return `${m.schema ?? ''}.${m.relation}.${m.column ?? ''}`
}

/** A snapshot with `derived` marks applied to the columns the dictionary and `mask:` left clean. */
function applyDerived(snapshot: CatalogSnapshot, derived: DerivedMarks[], config: Pick<MaskingConfig, 'unmaskColumns'> | undefined): CatalogSnapshot {
  const removed = globMatcher(config?.unmaskColumns ?? [])
  const relations = snapshot.relations.map((rel) => {
    const marks = derived.filter((d) => d.name === rel.name && (d.schema === undefined || d.schema === rel.schema))
    if (marks.length === 0) return rel
    return {
      ...rel,
      columns: rel.columns.map((col): CatalogColumn => {
        if (removed([rel.schema, rel.name, col.name])) return col
        for (const d of marks) {
          const mark = d.columns === 'all' ? {category: 'untraceable' as const, reason: 'filled by a query whose columns could not be traced', source: 'lineage' as const, inexact: true as const} : d.columns.get(col.name)
          if (!mark) continue
          if (!col.sensitive) return {...col, sensitive: mark}
          // A sensitive column filled with values not its category's own: its mark stays, but not `partial`.
          if (!col.sensitive.inexact && (mark.inexact || mark.category !== col.sensitive.category)) return {...col, sensitive: {...col.sensitive, inexact: true}}
        }
        return col
      }),
    }
  })
  return {...snapshot, relations}
}

/**
 * Marks follow a column, not its name: a column once classified keeps its mark for the catalog's
 * lifetime when a later snapshot finds it clean under a new name or type (`ALTER TABLE customers
 * RENAME COLUMN full_name TO nm`, a table renamed out of a `mask:` glob), since the values in it
 * are the same. Columns are identified by table OID and attribute number, which PostgreSQL never
 * reuses within a table. Records the marks of `snapshot` into `seen` and returns it with the
 * remembered marks applied.
 */
function keepMarks(snapshot: CatalogSnapshot, seen: Map<string, SensitiveMark>): CatalogSnapshot {
  let kept = false
  const relations = snapshot.relations.map((rel) => {
    const columns = rel.columns.map((col): CatalogColumn => {
      const key = `${rel.oid}:${col.attnum}`
      if (col.sensitive) {
        const before = seen.get(key)
        if (!before) seen.set(key, {...col.sensitive, reason: `${rel.schema}.${rel.name}.${col.name}: ${col.sensitive.reason}`})
        // Once filled with values not its own, a column stays so under any later name.
        else if (col.sensitive.inexact && !before.inexact) seen.set(key, {...before, inexact: true})
        else if (before.inexact && !col.sensitive.inexact) {
          kept = true
          return {...col, sensitive: {...col.sensitive, inexact: true}}
        }
        return col
      }
      const before = seen.get(key)
      if (!before) return col
      kept = true
      return {...col, sensitive: {...before, reason: `classified under an earlier name or type (${before.reason})`}}
    })
    return columns.some((c, i) => c !== rel.columns[i]) ? {...rel, columns} : rel
  })
  return kept ? {...snapshot, relations} : snapshot
}

/**
 * A table's rows include those of the tables that inherit from it and of its partitions, column by
 * column name (how PostgreSQL matches inherited columns): `SELECT nm FROM parent` reads the `nm` of
 * a child whose `nm` holds names. And what is written through a parent lands in its children: an
 * `INSERT` into a partitioned table in its partitions, an `UPDATE` of a parent in its children's
 * rows too. So each column carries the marks of the same-named columns of all its ancestors and
 * descendants (one category, or untraceable when they differ), and is never shown partially when
 * they are not its own.
 */
function inheritMarks(snapshot: CatalogSnapshot): CatalogSnapshot {
  if (!snapshot.relations.some((r) => r.children?.length)) return snapshot
  const byOid = new Map(snapshot.relations.map((r) => [r.oid, r]))
  const parents = new Map<number, number[]>()
  for (const r of snapshot.relations) for (const c of r.children ?? []) parents.set(c, [...(parents.get(c) ?? []), r.oid])
  /** Every relation reachable from `oid` one way (children, or parents), each once. */
  const reach = (oid: number, next: (oid: number) => number[] | undefined, seen: Set<number>): void => {
    for (const o of next(oid) ?? []) {
      if (seen.has(o)) continue
      seen.add(o)
      reach(o, next, seen)
    }
  }
  const relations = snapshot.relations.map((rel) => {
    if (!rel.children?.length && !parents.has(rel.oid)) return rel
    const related = new Set<number>()
    reach(rel.oid, (o) => byOid.get(o)?.children, related)
    reach(rel.oid, (o) => parents.get(o), related)
    related.delete(rel.oid)
    const marks = new Map<string, SensitiveMark[]>()
    for (const oid of related) {
      const other = byOid.get(oid)
      if (!other) continue
      for (const c of other.columns) if (c.sensitive) marks.set(c.name, [...(marks.get(c.name) ?? []), {...c.sensitive, reason: `${other.schema}.${other.name}.${c.name}, whose rows this table's share: ${c.sensitive.reason}`}])
    }
    if (marks.size === 0) return rel
    const columns = rel.columns.map((col): CatalogColumn => {
      const found = marks.get(col.name)
      if (!found) return col
      const all = col.sensitive ? [col.sensitive, ...found] : found
      const category = all.every((m) => m.category === all[0]!.category) ? all[0]!.category : 'untraceable'
      const exact = category === all[0]!.category && all.every((m) => !m.inexact)
      if (col.sensitive && category === col.sensitive.category && (exact || col.sensitive.inexact)) return col
      const untraced = all.every((m) => m.untraced)
      return {...col, sensitive: {category, reason: found[0]!.reason, source: 'lineage', ...(exact ? {} : {inexact: true}), ...(untraced ? {untraced: true} : {})}}
    })
    return {...rel, columns}
  })
  return {...snapshot, relations}
}

/** Reads and classifies the target's catalog, and loads the SQL parser lineage needs. */
export async function discoverCatalog(query: CatalogQuery, config: Pick<MaskingConfig, 'mask' | 'unmaskColumns'> = {mask: [], unmaskColumns: []}): Promise<Catalog> {
  await loadParser()
  const snapshot = classifySnapshot(await readCatalog(query), config)
  return new Catalog(snapshot, {query, config})
}

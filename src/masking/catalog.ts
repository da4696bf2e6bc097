/**
 * What the masking layer knows about the target's schema: every user table and view, its columns,
 * and which of them are sensitive and why. Built from the live catalog, refreshed after DDL.
 */
import type {MaskingConfig} from '../config/types.js'
import {classifyColumn, type MaskingCategory} from './categories.js'
import {globMatcher} from './glob.js'
import {loadSqlParser} from './sql.js'

export type Row = Record<string, unknown>
export type CatalogQuery = (sql: string) => Promise<Row[]>

export interface SensitiveMark {
  category: MaskingCategory
  reason: string
  /** `name` for the dictionary, `config` for a `mask:` glob. */
  source: 'name' | 'type' | 'config'
}

export interface CatalogColumn {
  name: string
  attnum: number
  typeOid: number
  typeName: string
  sensitive?: SensitiveMark
}

export interface CatalogRelation {
  oid: number
  schema: string
  name: string
  kind: 'table' | 'view' | 'materialized_view' | 'foreign_table' | 'partitioned_table'
  /** The relation's row type: what RowDescription reports for `SELECT u FROM users u`. */
  rowTypeOid: number
  columns: CatalogColumn[]
  /** For views: the definition as pg_get_viewdef returns it. */
  viewDefinition?: string
}

export interface TypeInfo {
  oid: number
  name: string
  /** pg_type.typcategory: S string, N numeric, D date/time, A array, C composite, U user, … */
  category: string
  elementOid: number
  relationOid: number
}

export interface CatalogSnapshot {
  relations: CatalogRelation[]
  types: TypeInfo[]
  /** User-defined functions (schema-qualified and bare names), whose bodies the lineage cannot see. */
  functions: string[]
}

const CATALOG_SQL = {
  columns: `
    select c.oid::int8 as oid, n.nspname as schema, c.relname as name, c.relkind as kind, c.reltype::int8 as rowtype,
           a.attnum::int4 as attnum, a.attname as column, a.atttypid::int8 as typeoid, t.typname as typename,
           case when c.relkind in ('v', 'm') then pg_get_viewdef(c.oid) end as viewdef
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    left join pg_type t on t.oid = a.atttypid
    where c.relkind in ('r', 'v', 'm', 'f', 'p')
      and n.nspname not in ('pg_catalog', 'information_schema')
      and n.nspname not like 'pg_toast%'
    order by c.oid, a.attnum`,
  types: `select oid::int8 as oid, typname as name, typcategory as category, typelem::int8 as elem, typrelid::int8 as relid from pg_type`,
  functions: `
    select n.nspname as schema, p.proname as name
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname not in ('pg_catalog', 'information_schema')`,
}

const KINDS: Record<string, CatalogRelation['kind']> = {r: 'table', v: 'view', m: 'materialized_view', f: 'foreign_table', p: 'partitioned_table'}

/** Reads the catalog through `query` (any connection to the target) into a snapshot. */
export async function readCatalog(query: CatalogQuery): Promise<CatalogSnapshot> {
  const [columnRows, typeRows, functionRows] = await Promise.all([query(CATALOG_SQL.columns), query(CATALOG_SQL.types), query(CATALOG_SQL.functions)])
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
      }
      relations.set(oid, rel)
    }
    if (r.attnum != null) rel.columns.push({name: String(r.column), attnum: Number(r.attnum), typeOid: Number(r.typeoid), typeName: String(r.typename)})
  }
  const types = typeRows.map((t) => ({oid: Number(t.oid), name: String(t.name), category: String(t.category), elementOid: Number(t.elem), relationOid: Number(t.relid)}))
  const functions = functionRows.flatMap((f) => [String(f.name), `${String(f.schema)}.${String(f.name)}`])
  return {relations: [...relations.values()], types, functions}
}

/** Marks the sensitive columns of a snapshot: the dictionary first, then `mask:` adds and `unmaskColumns:` removes. */
export function classifySnapshot(snapshot: CatalogSnapshot, config: Pick<MaskingConfig, 'mask' | 'unmaskColumns'>): CatalogSnapshot {
  const added = globMatcher(config.mask)
  const removed = globMatcher(config.unmaskColumns)
  const relations = snapshot.relations.map((rel) => ({
    ...rel,
    columns: rel.columns.map((col): CatalogColumn => {
      const path = [rel.schema, rel.name, col.name] as const
      if (removed(path)) return {...col, sensitive: undefined}
      const found = classifyColumn(col.name, col.typeName)
      if (found) return {...col, sensitive: {...found, source: found.reason.startsWith('type') ? 'type' : 'name'}}
      const glob = added(path)
      if (glob) return {...col, sensitive: {category: categoryForConfigured(col), reason: `configured by mask: ${glob}`, source: 'config'}}
      return {...col, sensitive: undefined}
    }),
  }))
  return {...snapshot, relations}
}

/** A column named by `mask:` that the dictionary does not know: masked as untraceable (fully redacted). */
function categoryForConfigured(col: CatalogColumn): MaskingCategory {
  return classifyColumn(col.name, col.typeName)?.category ?? 'untraceable'
}

const REFRESH_TAGS = /^(CREATE|ALTER|DROP|COMMENT|GRANT|REVOKE|SECURITY LABEL|IMPORT FOREIGN SCHEMA|REFRESH MATERIALIZED VIEW|SELECT INTO)\b/
const REFRESH_TAG_EXCEPTIONS = /^(CREATE|DROP) (ROLE|USER|DATABASE|TABLESPACE|SUBSCRIPTION|PUBLICATION|EVENT TRIGGER)\b|^ALTER (ROLE|USER|DATABASE|SYSTEM|TABLESPACE)\b/

/**
 * Whether a CommandComplete tag means the schema may have changed. `CREATE TABLE AS` reports
 * `SELECT n`, which cannot be told apart from a query, so it is covered by `SELECT INTO` only.
 */
export function needsRefresh(commandTag: string): boolean {
  return REFRESH_TAGS.test(commandTag) && !REFRESH_TAG_EXCEPTIONS.test(commandTag)
}

/**
 * The catalog the filter consults on every RowDescription: lookups by OID and by name are O(1).
 * `refresh()` swaps in a new snapshot atomically; lookups in flight keep the old one.
 */
export class Catalog {
  private byOid = new Map<number, CatalogRelation>()
  private byRowType = new Map<number, CatalogRelation>()
  private byName = new Map<string, CatalogRelation[]>()
  private typeByOid = new Map<number, TypeInfo>()
  private functionNames = new Set<string>()
  private current: CatalogSnapshot = {relations: [], types: [], functions: []}
  private refreshing: Promise<void> | undefined
  private again = false
  /** Bumped on every refresh, so caches keyed on the catalog know to start over. */
  generation = 0

  constructor(
    snapshot: CatalogSnapshot,
    private readonly source?: {query: CatalogQuery; config: Pick<MaskingConfig, 'mask' | 'unmaskColumns'>},
  ) {
    this.install(snapshot)
  }

  get snapshot(): CatalogSnapshot {
    return this.current
  }

  private install(snapshot: CatalogSnapshot): void {
    this.current = snapshot
    this.byOid = new Map(snapshot.relations.map((r) => [r.oid, r]))
    this.byRowType = new Map(snapshot.relations.map((r) => [r.rowTypeOid, r]))
    this.byName = new Map()
    for (const r of snapshot.relations) {
      for (const key of [`${r.schema}.${r.name}`, r.name]) {
        const list = this.byName.get(key) ?? []
        list.push(r)
        this.byName.set(key, list)
      }
    }
    this.typeByOid = new Map(snapshot.types.map((t) => [t.oid, t]))
    this.functionNames = new Set(snapshot.functions)
    this.generation++
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

  needsRefresh(commandTag: string): boolean {
    return needsRefresh(commandTag)
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

  /** Relations with at least one sensitive column. */
  sensitiveRelations(): CatalogRelation[] {
    return this.current.relations.filter((r) => r.columns.some((c) => c.sensitive))
  }
}

/** Reads and classifies the target's catalog, and loads the SQL parser lineage needs. */
export async function discoverCatalog(query: CatalogQuery, config: Pick<MaskingConfig, 'mask' | 'unmaskColumns'> = {mask: [], unmaskColumns: []}): Promise<Catalog> {
  await loadSqlParser()
  const snapshot = classifySnapshot(await readCatalog(query), config)
  return new Catalog(snapshot, {query, config})
}

/**
 * What the schema tools ask the database, and how their answers become tool results. Every query
 * here runs through the endpoint like the agent's own SQL (judged, masked, recorded), and calls no
 * function beyond an aggregate, so the guardrails' function allow-list has nothing to object to.
 * Which columns are masked comes from masking's own classification (name, type, `mask:` globs).
 */
import type {MaskingConfig} from '../config/types.js'
import {classifySnapshot, DEFAULT_STRATEGIES, type CatalogRelation} from '../masking/index.js'

export const SCHEMAS_SQL = `select n.nspname as schema, count(c.oid) as relations
from pg_catalog.pg_namespace n
left join pg_catalog.pg_class c on c.relnamespace = n.oid and c.relkind in ('r', 'v', 'm', 'p', 'f')
where n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'
group by n.nspname
order by n.nspname`

/** $1: schema or null; $2: table name or null. */
export const RELATIONS_SQL = `select c.oid::int8 as oid, n.nspname as schema, c.relname as name, c.relkind as kind, c.reltuples::int8 as estimated_rows,
  a.attnum::int4 as attnum, a.attname as column, t.typname as type, a.attnotnull as not_null, a.atthasdef as has_default
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
left join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
left join pg_catalog.pg_type t on t.oid = a.atttypid
where c.relkind in ('r', 'v', 'm', 'p', 'f')
  and n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'
  and ($1::text is null or n.nspname = $1::text)
  and ($2::text is null or c.relname = $2::text)
order by n.nspname, c.relname, a.attnum`

/** $1: relation oid. */
export const CONSTRAINTS_SQL = `select con.conname as name, con.contype as type, con.conkey::text as columns, con.confrelid::int8 as ref_oid,
  fn.nspname as ref_schema, fc.relname as ref_table, con.confkey::text as ref_columns
from pg_catalog.pg_constraint con
left join pg_catalog.pg_class fc on fc.oid = con.confrelid
left join pg_catalog.pg_namespace fn on fn.oid = fc.relnamespace
where con.conrelid = $1::oid and con.contype in ('p', 'u', 'f')
order by con.contype, con.conname`

/** $1: relation oid. */
export const INDEXES_SQL = `select ic.relname as name, i.indisunique as is_unique, i.indisprimary as is_primary, i.indkey::text as columns, am.amname as method
from pg_catalog.pg_index i
join pg_catalog.pg_class ic on ic.oid = i.indexrelid
left join pg_catalog.pg_am am on am.oid = ic.relam
where i.indrelid = $1::oid
order by ic.relname`

/** $1: relation oid. */
export const ATTRIBUTES_SQL = `select a.attnum::int4 as attnum, a.attname as column from pg_catalog.pg_attribute a where a.attrelid = $1::oid and a.attnum > 0 and not a.attisdropped`

const KINDS: Record<string, CatalogRelation['kind']> = {r: 'table', v: 'view', m: 'materialized_view', f: 'foreign_table', p: 'partitioned_table'}

export type Row = Record<string, string | null>

export interface MaskedColumnInfo {
  column: string
  category: string
  strategy: string
  reason: string
}

export interface RelationInfo {
  oid: string
  schema: string
  name: string
  kind: CatalogRelation['kind']
  estimatedRows: number | null
  columns: {name: string; type: string; notNull: boolean; hasDefault: boolean; masked?: MaskedColumnInfo}[]
}

/** Groups the rows of RELATIONS_SQL into relations, and marks the columns masking hides for this identity. */
export function relationsFrom(rows: readonly Row[], masking: MaskingConfig, unmasked: boolean): RelationInfo[] {
  const byOid = new Map<string, RelationInfo>()
  for (const r of rows) {
    const oid = r.oid ?? ''
    let rel = byOid.get(oid)
    if (!rel) {
      const estimate = r.estimated_rows === null ? null : Number(r.estimated_rows)
      rel = {oid, schema: r.schema ?? '', name: r.name ?? '', kind: KINDS[r.kind ?? ''] ?? 'table', estimatedRows: estimate !== null && estimate >= 0 ? estimate : null, columns: []}
      byOid.set(oid, rel)
    }
    if (r.attnum !== null && r.column !== null) rel.columns.push({name: r.column, type: r.type ?? '?', notNull: r.not_null === 't', hasDefault: r.has_default === 't'})
  }
  const relations = [...byOid.values()]
  if (unmasked) return relations
  const snapshot = classifySnapshot(
    {
      relations: relations.map((rel) => ({
        oid: Number(rel.oid),
        schema: rel.schema,
        name: rel.name,
        kind: rel.kind,
        rowTypeOid: 0,
        columns: rel.columns.map((c, i) => ({name: c.name, attnum: i + 1, typeOid: 0, typeName: c.type})),
      })),
      types: [],
      functions: [],
    },
    masking,
  )
  snapshot.relations.forEach((rel, i) => {
    rel.columns.forEach((col, j) => {
      if (!col.sensitive) return
      const {category, reason} = col.sensitive
      relations[i]!.columns[j]!.masked = {column: col.name, category, strategy: masking.strategies[category] ?? DEFAULT_STRATEGIES[category], reason}
    })
  })
  return relations
}

/** `{1,2}` (int2[] as text) or `1 2` (int2vector as text) → attribute numbers. */
export function attnums(text: string | null): number[] {
  if (!text) return []
  return text
    .replace(/[{}]/g, '')
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number)
}

/**
 * Marks learnt from statements (a column filled with names) live in one pipeline's memory: another
 * person's pipeline on the gateway, another replica, or this tunnel after a restart reads the
 * catalog from scratch, and would show the copied values in clear. So a write that copies a
 * sensitive column's values (as they are, or derived from them) into a lasting column that a read
 * from scratch would not mask at least as strongly is refused before it runs. The session's
 * temporary relations, which no one else reads, may take anything; values the analysis cannot
 * trace (a user function's result) are masked for this pipeline's lifetime, as before.
 */
import type {MaskingStrategy} from '../config/types.js'
import type {MaskingCategory} from './categories.js'
import {isTemporarySchema, type Catalog, type CatalogRelation, type SensitiveMark} from './catalog.js'
import {parseSql} from '../sql/parser.js'
import {flatten, type NamedLineage, type StatementLineage} from './lineage-model.js'

export interface UnkeptMark {
  /** What the write does, for the refusal (`fills public.orders.status with values from public.customers.full_name`). */
  message: string
  hint: string
}

type StrategyOf = (category: MaskingCategory) => MaskingStrategy

/** The strategies that show part of a value: on a value that is not the column's own, the wrong part. */
const SHOWS_PART: ReadonlySet<MaskingStrategy> = new Set(['partial'])

/**
 * Whether a column a fresh read classifies as `fresh` masks a value this pipeline would mark `learnt`
 * at least as well: the same category of the column's own values, or a strategy that shows none of it.
 */
export function keeps(fresh: SensitiveMark | undefined, learnt: SensitiveMark, strategyOf: StrategyOf): boolean {
  if (!fresh) return false
  // A column marked inexact is never shown in part, whatever its strategy (plan.ts `strategyFor`).
  if (fresh.inexact || !SHOWS_PART.has(strategyOf(fresh.category))) return true
  return fresh.category === learnt.category && !learnt.inexact
}

/** Where a copy lands, and how a read from scratch classifies it; `known`: the catalog holds the column (and its type). */
interface Place {
  name: string
  fresh: SensitiveMark | undefined
  known: boolean
}

/** The refusal of a copy into a place a read from scratch would not mask as well. */
function refusal(what: string, place: Place, mark: SensitiveMark, strategyOf: StrategyOf): UnkeptMark {
  const {name, fresh} = place
  const read = !place.known
    ? `${name}, a column the catalog does not know yet: whether a read would mask it depends on its type, read once the change that makes it is committed`
    : fresh
      ? `${name}, which a read shows by ${strategyOf(fresh.category)}: made to keep a safe part of the column's own ${fresh.category} values, it may keep any part of values derived from them`
      : `${name}, which the catalog does not classify as sensitive`
  const hint = !place.known
    ? 'Commit the statement that makes the column first, then copy into it; name it for what it holds (full_name, email) or add it to the target\'s masking.mask.'
    : fresh
      ? `Copy only the column's own values into it, or have someone who may see the values unmasked (masking.unmask) run it; masking.strategies.${fresh.category}: redact or hash shows none of any value.`
      : 'Copy such values only into columns masking classifies for them: name the column for what it holds (full_name, email), add it to the target\'s masking.mask, or use a temporary table.'
  return {message: `masking refuses ${what}: it copies ${origin(mark)} into ${read}; later sessions, other people on the gateway and this tunnel after a restart would see them`, hint}
}

function qualified(r: {schema?: string; name: string}): string {
  return r.schema ? `${r.schema}.${r.name}` : r.name
}

/** Where a filled column's values come from, for the refusal. */
function origin(mark: SensitiveMark): string {
  const from = mark.reason.replace(/ by a statement this tunnel ran$/, '').replace(/^filled from /, '')
  return from.startsWith('values ') ? from : `values from ${from}`
}

/** What a write copies from sensitive columns into one column, or undefined for values of no sensitive column. */
function copied(c: NamedLineage): SensitiveMark | undefined {
  return flatten(c).some((x) => !x.untraced) ? markOf(c) : undefined
}

/**
 * The first lasting column a write leaves unmasked for a read from scratch, checked against the
 * relations as that read classifies them, or the name and place of one it does not know yet.
 */
function unkeptFill(target: {schema?: string; name: string; columns?: NamedLineage[]; values?: NamedLineage[]; temporary?: true}, catalog: Catalog, strategyOf: StrategyOf, verb: string): UnkeptMark | undefined {
  if (target.temporary || target.schema === 'pg_temp') return undefined
  const found = catalog.freshlyRead(target.schema, target.name)
  if (found.length > 0 && found.every((r) => isTemporarySchema(r.schema))) return undefined
  const lasting = found.filter((r) => !isTemporarySchema(r.schema))
  if (!target.columns) {
    // Columns of a relation the catalog did not know, filled in order: which gets what cannot be said.
    const mark = target.values?.map(copied).find((m) => m !== undefined)
    if (!mark) return undefined
    return {
      message: `masking refuses ${verb} ${qualified(target)}: it copies ${origin(mark)} into columns of a relation the catalog does not know yet, so which column holds them, and whether a read would mask it, cannot be said`,
      hint: 'List the columns the statement fills (INSERT INTO t (full_name, …) SELECT …), or commit the CREATE TABLE first.',
    }
  }
  for (const c of target.columns) {
    const mark = copied(c)
    if (!mark) continue
    const remote = lasting.map((r) => foreignIn(r, catalog)).find((r) => r !== undefined)
    if (remote) return foreignRefusal(`${verb} ${qualified(target)}`, remote, mark)
    const places = lasting.length > 0 ? lasting.map((r) => freshColumn(r, c.name)) : made(target, c, catalog, verb === 'creating')
    for (const place of places) {
      if (place.known && keeps(place.fresh, mark, strategyOf)) continue
      return refusal(`${verb} ${qualified(target)}`, place, mark, strategyOf)
    }
  }
  return undefined
}

/**
 * A foreign table the rows written to `r` land in: `r` itself, or a partition or child of it. Its
 * rows are stored by another server, or by this one through a loopback server (`OPTIONS (table_name
 * 'orders')`, a column `OPTIONS (column_name 'status')`), in a table whose reads nothing ties to
 * the foreign table's masked columns.
 */
function foreignIn(r: CatalogRelation, catalog: Catalog, seen = new Set<number>()): CatalogRelation | undefined {
  if (r.kind === 'foreign_table') return r
  seen.add(r.oid)
  for (const oid of r.children ?? []) {
    const child = catalog.relation(oid)
    if (!child || seen.has(oid)) continue
    const found = foreignIn(child, catalog, seen)
    if (found) return found
  }
  return undefined
}

function foreignRefusal(what: string, remote: CatalogRelation, mark: SensitiveMark): UnkeptMark {
  return {
    message: `masking refuses ${what}: it copies ${origin(mark)} into the foreign table ${remote.schema}.${remote.name}, whose rows another server stores (or this one, through a loopback server, in any of its tables), where a read does not go through the foreign table's masked columns`,
    hint: 'Copy such values into tables of this database that masking classifies for them, or into a temporary table.',
  }
}

function freshColumn(r: CatalogRelation, column: string): Place {
  const col = r.columns.find((c) => c.name === column)
  return {name: `${r.schema}.${r.name}.${column}`, fresh: col?.sensitive, known: col !== undefined}
}

/**
 * A column of a relation the catalog does not know (made in the open transaction or earlier in this
 * text). Its type decides how a read classifies it, and is known only for `CREATE TABLE … AS` of a
 * column copied as it is (the source's). An unqualified relation may land in any schema of the
 * search path: the column as each schema would have it.
 */
function made(target: {schema?: string; name: string}, c: NamedLineage, catalog: Catalog, creating: boolean): Place[] {
  const name = `${qualified(target)}.${c.name}`
  const sources = flatten(c)
  const typeName = creating && c.direct && !c.fields && sources.length === 1 ? sources[0]!.typeName : undefined
  if (typeName === undefined) return [{name, fresh: undefined, known: false}]
  const schemas = target.schema ? [target.schema] : [...catalog.schemaNames(), '']
  return schemas.map((schema) => ({name, fresh: catalog.classifiedAt(schema, target.name, {name: c.name, typeName}), known: true}))
}

/** The mark a column filled with this lineage takes in this pipeline's catalog, or undefined for values proven clean. */
export function markOf(c: NamedLineage): SensitiveMark | undefined {
  const sources = flatten(c)
  const src = sources[0]
  if (src) {
    // A copied column keeps its category; a row or document copied whole is masked whole.
    const category = c.fields ? 'untraceable' : sources.every((x) => x.category === src.category) ? src.category : 'untraceable'
    // `partial` keeps part of a column's own value; of `reverse(email)` it would keep the wrong part.
    const exact = c.direct && category !== 'untraceable'
    const untraced = sources.every((x) => x.untraced)
    return {category, reason: `filled from ${sources.map((x) => `${x.relation}.${x.column}`).join(', ')} by a statement this tunnel ran`, source: 'lineage', ...(exact ? {} : {inexact: true as const}), ...(untraced ? {untraced: true as const} : {})}
  }
  if (c.unknown || c.settings || c.fields?.some((f) => f.unknown)) return {category: 'untraceable', reason: 'filled from values masking could not trace by a statement this tunnel ran', source: 'lineage', untraced: true}
  return undefined
}

/**
 * The first write of these statements (the text's, with prepared statements resolved) that would
 * leave sensitive values where a read from scratch shows them, or undefined.
 */
export function unkeptMarks(statements: readonly StatementLineage[], catalog: Catalog, strategyOf: StrategyOf): UnkeptMark | undefined {
  const made = new TextRelations()
  let materialized: string | undefined
  for (const s of statements) {
    const stale = s.replacesView && (staleMaterialized(s.replacesView, catalog) ?? materialized)
    if (stale && s.replacesView) return replacedUnder(s.replacesView, stale)
    if (s.creates?.view) materialized = qualified(s.creates)
    const created = s.creates && !s.creates.view && unkeptFill(s.creates, catalog, strategyOf, 'creating')
    if (created) return created
    if (s.makes) made.add(s.makes)
    // The rows a copied definition fills are written later, by statements checked as they come.
    for (const f of s.fills ?? []) {
      const filled = !f.copiedDefinitions && !made.temporary(f, catalog) && unkeptFill(f, catalog, strategyOf, 'writing to')
      if (filled) return filled
    }
    if (s.creates) made.add(s.creates)
  }
  return undefined
}

/**
 * A materialized view (`schema.name`) that reads the view `CREATE OR REPLACE VIEW` replaces,
 * directly or through other views, or undefined. It keeps the rows the old definition computed
 * until it is refreshed, but every read, from scratch too, classifies its columns by following the
 * definitions as they are now: `mv AS SELECT n FROM v`, with `v AS SELECT full_name AS n …`
 * replaced by `v AS SELECT 'x'::text AS n …`, would show the names mv holds in clear. Views are
 * matched by name, which may find more than the server would, never fewer.
 */
function staleMaterialized(view: {schema?: string; name: string}, catalog: Catalog): string | undefined {
  const defined = catalog.definedRelations().map((r) => ({r, reads: readNames(r.viewDefinition!)}))
  const reached = new Set([view.name])
  for (let grew = true; grew; ) {
    grew = false
    for (const {r, reads} of defined) {
      if (r.kind !== 'view' || reached.has(r.name) || !reads.some((n) => reached.has(n))) continue
      reached.add(r.name)
      grew = true
    }
  }
  const found = defined.find(({r, reads}) => r.kind === 'materialized_view' && reads.some((n) => reached.has(n)))
  return found && `${found.r.schema}.${found.r.name}`
}

/** The relation names a definition reads; every name, when it cannot be parsed (`*`). */
function readNames(definition: string): string[] {
  const parsed = parseSql(definition)
  if (!parsed.ok) return ['*']
  const out = new Set<string>()
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk)
    if (!node || typeof node !== 'object') return
    for (const [k, v] of Object.entries(node)) {
      if (k === 'RangeVar' && v && typeof v === 'object' && typeof (v as {relname?: unknown}).relname === 'string') out.add((v as {relname: string}).relname)
      walk(v)
    }
  }
  walk(parsed.statements)
  return [...out]
}

function replacedUnder(view: {schema?: string; name: string}, materialized: string): UnkeptMark {
  return {
    message: `masking refuses replacing the view ${qualified(view)}: the materialized view ${materialized} reads it and keeps the rows its current definition computed, which a read would then classify by the new one; later sessions, other people on the gateway and this tunnel after a restart could see sensitive values it holds in clear`,
    hint: `Drop ${materialized} first and create it again after the view is replaced, or give the new definition another name.`,
  }
}

/**
 * The tables earlier statements of a text made, which the catalog cannot know yet: a name is the
 * session's temporary table only if nothing lasting of that name exists or was made, as a
 * search_path with pg_temp after public (`SET search_path = public, pg_temp`) takes a lasting one first.
 */
class TextRelations {
  private readonly temp = new Set<string>()
  private readonly lasting = new Set<string>()

  add(r: {schema?: string; name: string; temporary?: true}): void {
    ;(r.temporary || r.schema === 'pg_temp' ? this.temp : this.lasting).add(r.name)
  }

  temporary(target: {schema?: string; name: string}, catalog: Catalog): boolean {
    if (target.schema !== undefined && target.schema !== 'pg_temp') return false
    if (!this.temp.has(target.name) || this.lasting.has(target.name)) return false
    return catalog.freshlyRead(undefined, target.name).every((r) => isTemporarySchema(r.schema))
  }
}

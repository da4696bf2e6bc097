/**
 * The vocabulary of column lineage: what flows into a value, and how lineages combine when values
 * are computed from, or chosen among, other values. Pure data and pure functions.
 */
import type {MaskingCategory} from './categories.js'

export interface SensitiveSource {
  relation: string
  column: string
  category: MaskingCategory
  reason: string
  /** The column holds values this tunnel could not trace, rather than a sensitive column's (`SensitiveMark.untraced`). */
  untraced?: true
  /** The column's type, as the catalog names it: what a copy made by `CREATE TABLE … AS` is typed. */
  typeName?: string
}

export interface Lineage {
  /** Sensitive base columns whose values flow into this one. */
  sources: SensitiveSource[]
  /** The value is exactly a base column's value (an alias at most). */
  direct: boolean
  /** The value is a row or document built from these named fields (`u`, `row_to_json(u)`). */
  fields?: NamedLineage[]
  /** Part of the value comes from somewhere the analysis could not follow. */
  unknown: boolean
  /**
   * Part of the value is read back from the session's settings (`current_setting`, `SHOW`,
   * `pg_settings`): clean unless the session ran code that could have written them unseen.
   */
  settings?: boolean
  /**
   * The table (or view) column whose value this is, passed through unchanged. PostgreSQL reports
   * the same in RowDescription, which lets the filter check the analysis against the server.
   */
  origin?: {tableOid: number; attnum: number}
}

export interface NamedLineage extends Lineage {
  name: string
}

export interface CopyShape {
  format: 'text' | 'csv' | 'binary'
  delimiter: string
  quote: string
  escape: string
  nullString: string
  header: boolean
  /** The `ENCODING` option as written (`'SJIS'`), undefined when the statement gives none (the session's, UTF-8). */
  encoding?: string
  /** Undefined when the copied query's shape is unknown. */
  columns?: NamedLineage[]
}

/** A rename or move of a relation, or a rename of one of its columns (see `StatementLineage.renames`). */
export interface RenameOf {
  schema?: string
  name: string
  toName?: string
  toSchema?: string
  column?: string
  toColumn?: string
}

export interface StatementLineage {
  /** Whether the statement sends rows (RowDescription + DataRow). */
  rows: 'yes' | 'no' | 'maybe'
  /** The output columns, when rows come and their shape is known. */
  columns?: NamedLineage[]
  /** It reads a relation with sensitive columns, or something the analysis cannot see into. */
  touchesSensitive: boolean
  /** Why some output could not be traced (empty when everything was). */
  untraceable: string[]
  /** It runs code the analysis cannot see into (DO, CALL, user functions), which may RAISE values. */
  opaque: boolean
  /** Sensitive values it sends where no result filter can mask them (NOTIFY payloads). */
  sideChannels: string[]
  copy?: CopyShape
  defines?: {kind: 'cursor' | 'prepared'; name: string; lineage: StatementLineage}
  /**
   * The cursor or prepared statement it runs. `args`: what `EXECUTE p(…)`'s arguments carry when
   * not proven clean; the server evaluates them (`query_to_xml(…)`, `current_setting(…)`) into the
   * parameters that the prepared statement's analysis took for the client's own values. `explain`:
   * it is `EXPLAIN EXECUTE`, whose rows are the plan of the statement, not its output.
   */
  uses?: {kind: 'cursor' | 'prepared'; name: string; args?: Lineage; explain?: true; move?: true}
  /** It reads the session's settings (see `Lineage.settings`). */
  readsSettings?: boolean
  /**
   * It copies the session's current value of a setting into the catalog (`ALTER ROLE … SET x FROM
   * CURRENT`, `CREATE FUNCTION … SET x FROM CURRENT`), where every session reads it as a definition.
   */
  copiesSettings?: boolean
  /** Relations and columns it names that the catalog does not know: a reason to re-read it. */
  misses?: CatalogMiss[]
  /** Views (and materialized views) whose definitions its lineage relies on, by OID. */
  views?: number[]
  /**
   * Tables whose column order its lineage relies on, by OID: `COPY t TO STDOUT` without a column
   * list, whose fields are placed by position, with no description naming their columns.
   */
  layouts?: number[]
  /**
   * Tables it reads whose rows may include those of a child or partition the session's uncommitted
   * change added (lineage.ts `gainsRows`), by OID: the server's description of a column as theirs
   * does not vouch for its values.
   */
  unvouched?: number[]
  /**
   * A relation it creates from a query (`CREATE TABLE … AS`, `SELECT … INTO`, `CREATE MATERIALIZED
   * VIEW`: `view`), with that query's columns. Of `CREATE TABLE t (a, b) AS EXECUTE p` (with
   * `uses`), the columns are p's, known once it is resolved (`throughUse`), under `names`. With no
   * `columns` (the query's shape is unknown), `values`: what they hold, in no known order.
   */
  creates?: {schema?: string; name: string; columns?: NamedLineage[]; values?: NamedLineage[]; temporary?: true; view?: true; names?: (string | undefined)[]}
  /**
   * The view `CREATE OR REPLACE VIEW` gives a new definition: a materialized view that reads it
   * keeps the rows the old one computed, which a read then takes for the new one's.
   */
  replacesView?: {schema?: string; name: string}
  /** A table it creates empty (`CREATE [TEMP] TABLE`): a later statement of the text may fill it. */
  makes?: {schema?: string; name: string; temporary?: true}
  /**
   * Columns of existing relations it fills with values not proven clean (`INSERT … SELECT`, `UPDATE …
   * SET`). Without `columns`, every column: `COPY … FROM` a file into a table the catalog does not
   * know, or an `INSERT … SELECT` with no column list into a relation whose columns the catalog did
   * not know when it was judged; `values` are then what it writes, in the order of the columns.
   * `copiedDefinitions`: `CREATE TABLE … (LIKE t INCLUDING …)` copies no value, but the defaults and
   * generation expressions it copies will fill the new table's rows from what is written into them.
   */
  fills?: {schema?: string; name: string; columns?: NamedLineage[]; values?: NamedLineage[]; copiedDefinitions?: true}[]
  /**
   * Relations and columns it renames or moves (`ALTER TABLE … RENAME [COLUMN] … TO`, `SET SCHEMA`):
   * marks made by name for a relation the catalog has not read yet (`CREATE TABLE … AS` in an open
   * transaction) follow them.
   */
  renames?: RenameOf[]
  /** It may create, alter or drop catalog objects: DDL, or code the analysis cannot see into. */
  changesCatalog?: true
  /**
   * The relation names its change may make mean another relation, or other columns, than the
   * catalog's (a rename, a relation that shadows one), or `all` (code the analysis cannot see
   * into): see lineage.ts `movedBy`.
   */
  movesNames?: readonly string[] | 'all'
  /** A DO block or CALL: its code may COMMIT a change and go on running. */
  commitsInside?: true
  /**
   * It runs what earlier statements of the transaction left for its end (`COMMIT`, `END`, `PREPARE
   * TRANSACTION`, `SET CONSTRAINTS … IMMEDIATE`): deferred constraint triggers, and the queries of
   * `WITH HOLD` cursors, which the server runs to completion at the commit. Their errors and
   * notices arrive as this statement's, and quote what those statements read.
   */
  runsDeferred?: true
  /**
   * It names a relation without a schema that more than one schema holds: under the default
   * search_path it is the one in public (as analysed), under another it may be any of them.
   */
  shadowable?: true
}

/** A name a statement uses that the catalog did not hold when it was analysed. */
export interface CatalogMiss {
  schema?: string
  relation: string
  /** Set when the relation is known but this column of it is not. */
  column?: string
}

export type TextLineage = {ok: true; statements: StatementLineage[]} | {ok: false; error: string}

export const EMPTY: Lineage = Object.freeze({sources: [], direct: false, unknown: false}) as Lineage
export const UNKNOWN: Lineage = Object.freeze({sources: [], direct: false, unknown: true}) as Lineage
export const SETTINGS: Lineage = Object.freeze({sources: [], direct: false, unknown: false, settings: true}) as Lineage

/** Every sensitive source in a lineage, including those inside its fields. */
export function flatten(l: Lineage): SensitiveSource[] {
  if (!l.fields) return l.sources
  const out = [...l.sources]
  for (const f of l.fields) out.push(...flatten(f))
  return dedupe(out)
}

export function dedupe(sources: SensitiveSource[]): SensitiveSource[] {
  if (sources.length < 2) return sources
  const seen = new Set<string>()
  return sources.filter((s) => {
    const k = `${s.relation}.${s.column}`
    if (seen.has(k)) return false
    seen.add(k)
    return true
  })
}

export function anyUnknown(l: Lineage): boolean {
  return l.unknown || (l.fields?.some(anyUnknown) ?? false)
}

export function anySettings(l: Lineage): boolean {
  return l.settings === true || (l.fields?.some(anySettings) ?? false)
}

/** Settings-derived parts of a lineage made untraceable: for a session whose settings are not proven clean. */
export function settingsUntraceable<L extends Lineage>(l: L): L {
  if (!anySettings(l)) return l
  const {settings: _settings, ...rest} = l
  return {...rest, unknown: l.unknown || l.settings === true, ...(l.fields ? {fields: l.fields.map(settingsUntraceable)} : {})} as L
}

/** A value computed from several inputs: every input's sources flow into it. */
export function derived(parts: Lineage[]): Lineage {
  if (parts.length === 0) return EMPTY
  const sources = dedupe(parts.flatMap(flatten))
  const unknown = parts.some(anyUnknown)
  const settings = parts.some(anySettings)
  if (sources.length === 0 && !unknown && !settings) return EMPTY
  return {sources, direct: false, unknown, ...(settings ? {settings} : {})}
}

/** A value that is one of several inputs (UNION arms, COALESCE): documents keep their fields. */
export function either(a: Lineage, b: Lineage): Lineage {
  const fields = a.fields && b.fields ? mergeFields(a.fields, b.fields) : (a.fields ?? b.fields)
  const origin = a.origin && b.origin && a.origin.tableOid === b.origin.tableOid && a.origin.attnum === b.origin.attnum ? a.origin : undefined
  const settings = a.settings === true || b.settings === true
  return {sources: dedupe([...a.sources, ...b.sources]), direct: a.direct && b.direct, unknown: a.unknown || b.unknown, ...(settings ? {settings} : {}), ...(fields ? {fields} : {}), ...(origin ? {origin} : {})}
}

/** The same value after a transformation: no longer any column's own value. */
export function transformed(l: Lineage): Lineage {
  const {origin: _origin, ...rest} = l
  return {...rest, direct: false}
}

/**
 * `CREATE TABLE t AS EXECUTE p(…)` (`s`) read with what p runs (`def`): t's columns are p's output
 * columns, under the names the statement gives, each carrying EXECUTE's arguments when they are not
 * proven clean (as `throughUse` does for rows).
 */
function createdThroughUse(s: StatementLineage, creates: NonNullable<StatementLineage['creates']>, def: StatementLineage): StatementLineage {
  const {uses: _uses, ...rest} = s
  const args = s.uses?.args
  const carry = (c: NamedLineage, name = c.name): NamedLineage => named(name, args ? derived([c, args]) : c)
  const columns = def.columns?.map((c, i) => carry(c, creates.names?.[i] ?? c.name))
  return {
    ...rest,
    touchesSensitive: s.touchesSensitive || def.touchesSensitive,
    opaque: s.opaque || def.opaque,
    sideChannels: [...s.sideChannels, ...def.sideChannels],
    untraceable: [...s.untraceable, ...def.untraceable],
    ...(rest.columns ? {columns: rest.columns.map((c) => carry(c))} : {}),
    creates: {...creates, columns},
  }
}

function mergeFields(a: NamedLineage[], b: NamedLineage[]): NamedLineage[] {
  const out = a.map((f) => ({...f}))
  b.forEach((f, i) => {
    const same = out.find((o) => o.name === f.name) ?? out[i]
    if (same) Object.assign(same, either(same, f), {name: same.name})
    else out.push(f)
  })
  return out
}

export function named(name: string, l: Lineage): NamedLineage {
  return {...l, name}
}

/**
 * A statement that runs a cursor or prepared statement (`s`, with `uses`), read as what it runs
 * (`def`, the definition's lineage). `EXECUTE p(…)`'s arguments fill the definition's parameters:
 * when they are not proven clean, every output column carries them, since which columns a
 * parameter reaches is not followed (more is masked, never less). `EXPLAIN EXECUTE p(…)` answers
 * the plan, which prints the arguments as constants of a custom plan, and constants the planner
 * computed by calling the definition's functions (see the ExplainStmt case of the analysis), and
 * with SETTINGS the session's settings.
 */
export function throughUse(s: StatementLineage, def: StatementLineage): StatementLineage {
  const use = s.uses
  if (!use) return def
  // MOVE runs the cursor's query and sends none of its rows: its messages are the query's.
  if (use.move) return {rows: 'no', touchesSensitive: def.touchesSensitive, opaque: def.opaque, untraceable: [], sideChannels: []}
  if (s.creates && !use.explain) return createdThroughUse(s, s.creates, def)
  const args = use.args
  const untraced = args !== undefined && anyUnknown(args)
  const why = 'an argument of EXECUTE, which the server evaluates into the prepared statement\'s parameters, comes from something the analysis cannot follow'
  if (use.explain) {
    const {uses: _uses, ...rest} = s
    // `readsSettings`: EXPLAIN (SETTINGS) prints the session's planner settings.
    const plan = derived([def.opaque ? UNKNOWN : EMPTY, args ?? EMPTY, s.readsSettings ? SETTINGS : EMPTY])
    const reasons = [...(def.opaque ? ['the plan may print a constant the planner computed with code the analysis cannot see into'] : []), ...(untraced ? [why] : [])]
    return {...rest, columns: [named('QUERY PLAN', plan)], untraceable: reasons, ...(args && anySettings(args) ? {readsSettings: true} : {})}
  }
  if (!args) return def
  const carry = (c: NamedLineage): NamedLineage => named(c.name, derived([c, args]))
  return {
    ...def,
    touchesSensitive: true,
    opaque: def.opaque || s.opaque,
    sideChannels: [...def.sideChannels, ...s.sideChannels],
    ...(def.columns ? {columns: def.columns.map(carry)} : {}),
    untraceable: untraced ? [...def.untraceable, why] : def.untraceable,
    ...(anySettings(args) || def.readsSettings ? {readsSettings: true} : {}),
  }
}

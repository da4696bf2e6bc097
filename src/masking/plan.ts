/**
 * Deciding, once per RowDescription, which output columns need work and what work: masking by a
 * category, masking inside a row or document, or only the scanner. Rows are then rewritten from
 * this plan without looking at the statement again.
 */
import type {FieldDescription} from '../wire/fields.js'
import type {MaskingCategory, MaskingStrategy} from './categories.js'
import type {Catalog, SensitiveMark} from './catalog.js'
import {flatten, type NamedLineage, type StatementLineage} from './lineage.js'
import {fieldRules, isTextual, type FieldRules} from './values.js'

export type ColumnMask = {kind: 'value'; category: MaskingCategory; strategy: MaskingStrategy} | {kind: 'document'; rules: FieldRules}

export interface ColumnWork {
  index: number
  typeOid: number
  /** 0 text, 1 binary, -1 unknown (a DataRow without a RowDescription). */
  format: number
  textual: boolean
  mask?: ColumnMask
}

/** What the audit record says about one masked output column; never the values. */
export interface MaskedColumn {
  /** Which result of the statement text (a simple Query may return several). */
  result: number
  column: number
  name: string
  category: MaskingCategory | 'document'
  strategy: MaskingStrategy | 'per-field'
  how: 'direct' | 'derived' | 'document' | 'untraceable' | 'copy'
  reasons: string[]
}

/** PostgreSQL's FirstNormalObjectId: objects below it come with the server, not from users. */
const FIRST_NORMAL_OID = 16384

export interface ResultPlan {
  work: ColumnWork[]
  masked: MaskedColumn[]
  /** The description named a user table or column the catalog does not know (a re-read was asked for). */
  notedUnknown?: true
}

export interface PlanOptions {
  catalog: Catalog
  maskUntraceable: boolean
  /**
   * Tables whose columns the server names as a result's origin that this does not vouch for, beside
   * the lineage's own `unvouched` (for a text not analysed); `all`: none is vouched for.
   */
  unvouched?: ReadonlySet<number> | 'all'
  strategyOf(category: MaskingCategory): MaskingStrategy
}

/**
 * A partial mask keeps part of the value, which is only safe on the value itself: on
 * `reverse(email)` or a UNION of names and e-mails it would keep the wrong part. Derived and
 * mixed values are redacted unless the category hashes (joins still line up) or nulls.
 */
export function strategyFor(category: MaskingCategory, exact: boolean, opts: Pick<PlanOptions, 'strategyOf'>): MaskingStrategy {
  const s = opts.strategyOf(category)
  return s === 'partial' && !exact ? 'redact' : s
}

function reasonsOf(sources: {relation: string; column: string; reason: string}[]): string[] {
  return sources.map((s) => `${s.relation}.${s.column}: ${s.reason}`)
}

/**
 * Whether a column the server names as a result's origin holds that column's own values, so that
 * `partial` keeps the harmless part: a table's column, unless this tunnel saw it filled with values
 * derived from others (`SensitiveMark.inexact`); a view's column (named `email`, defined as
 * `'x@' || replace(email, '@', '.')`) only as its definition, followed by the analysis, proves.
 */
function ownValue(mark: SensitiveMark, table: boolean, col: NamedLineage | undefined): boolean {
  if (mark.inexact) return false
  if (table) return true
  if (!col || !col.direct || col.fields) return false
  const sources = flatten(col)
  return sources.length > 0 && sources.every((x) => x.category === mark.category)
}

function agrees(col: NamedLineage, f: FieldDescription | undefined): boolean {
  if (!col.origin || !f || f.tableOid === 0) return true
  return col.origin.tableOid === f.tableOid && col.origin.attnum === f.columnAttr
}

/**
 * The plan for one result. `lineage` is the statement's analysis (undefined when not known);
 * its columns are used only when their count matches the description's.
 */
export function planResult(fields: FieldDescription[] | undefined, width: number, lineage: StatementLineage | undefined, result: number, opts: PlanOptions): ResultPlan {
  let columns = lineage?.columns && lineage.columns.length === width ? lineage.columns : undefined
  // Where the server names a column's origin, it must agree with the analysis; if it does not,
  // the analysis is wrong about this result and none of it is trusted.
  const contradicted = columns !== undefined && fields !== undefined && !columns.every((c, i) => agrees(c, fields[i]))
  if (contradicted) columns = undefined
  const touches = lineage && !contradicted ? lineage.touchesSensitive : true
  const work: ColumnWork[] = []
  const masked: MaskedColumn[] = []
  let notedUnknown = false
  for (let i = 0; i < width; i++) {
    const f = fields?.[i]
    const col: NamedLineage | undefined = columns?.[i]
    const name = f?.name ?? col?.name ?? `column${i + 1}`
    const typeOid = f?.typeOid ?? 0
    const format = f ? f.format : -1
    const direct = f && f.tableOid !== 0 ? opts.catalog.column(f.tableOid, f.columnAttr) : undefined
    // A view's column is clean only as its definition proves, which the catalog's copy may no longer
    // be (`CREATE OR REPLACE VIEW` in the session's open transaction): only the analysis can vouch for it.
    const relation = f && f.tableOid !== 0 ? opts.catalog.relation(f.tableOid) : undefined
    // Nor a table's, where the session's open transaction may have given it a child's rows (lineage.ts `gainsRows`).
    const knownTable =
      relation !== undefined && relation.viewDefinition === undefined && !lineage?.unvouched?.includes(relation.oid) && opts.unvouched !== 'all' && !opts.unvouched?.has(relation.oid)
    // A user table or column created after the catalog was read (system objects have OIDs below 16384):
    // this result is masked as untraceable, and the catalog is re-read for the next one.
    if (f && f.tableOid >= FIRST_NORMAL_OID && !direct) {
      opts.catalog.noteUnknown()
      notedUnknown = true
    }
    let mask: ColumnMask | undefined
    let record: MaskedColumn | undefined
    if (direct?.sensitive) {
      const rel = opts.catalog.relation(f!.tableOid)!
      const category = direct.sensitive.category
      mask = {kind: 'value', category, strategy: strategyFor(category, ownValue(direct.sensitive, knownTable, col), opts)}
      record = {result, column: i, name, category: direct.sensitive.category, strategy: mask.strategy, how: 'direct', reasons: [`${rel.schema}.${rel.name}.${direct.name}: ${direct.sensitive.reason}`]}
    } else if (col?.fields) {
      const rules = fieldRules(col.fields, opts.maskUntraceable)
      if (rules.byName.size > 0 || rules.byPosition.some(Boolean)) {
        mask = {kind: 'document', rules}
        record = {result, column: i, name, category: 'document', strategy: 'per-field', how: 'document', reasons: reasonsOf(flatten(col))}
      }
    } else if (col && flatten(col).length > 0) {
      const sources = flatten(col)
      const category = sources[0]!.category
      const exact = col.direct && sources.every((x) => x.category === category)
      mask = {kind: 'value', category, strategy: strategyFor(category, exact, opts)}
      record = {result, column: i, name, category, strategy: mask.strategy, how: col.direct ? 'direct' : 'derived', reasons: reasonsOf(sources)}
    } else if (!col && f && opts.catalog.relationOfRowType(f.typeOid)) {
      // A whole row of a known table, in a result whose shape the analysis could not follow.
      const rel = opts.catalog.relationOfRowType(f.typeOid)!
      const rules = fieldRules(
        rel.columns.map((c) => ({name: c.name, direct: true, unknown: false, sources: c.sensitive ? [{relation: `${rel.schema}.${rel.name}`, column: c.name, ...c.sensitive}] : []})),
        false,
      )
      if (rules.byPosition.some(Boolean)) {
        mask = {kind: 'document', rules}
        record = {result, column: i, name, category: 'document', strategy: 'per-field', how: 'document', reasons: [`whole row of ${rel.schema}.${rel.name}`]}
      }
    }
    // A result the server describes otherwise than the analysis was let through on a wrong reading
    // (`onUntraceable: deny` refuses only what the analysis knew it could not follow): whatever it
    // proved is void, so what has no known clean origin is masked in either mode.
    if (!mask && (opts.maskUntraceable || contradicted) && touches) {
      // A table's column the analysis could not vouch for by its name (the session's uncommitted
      // change may have renamed it, lineage.ts `unprovenNames`) is vouched for by the server
      // naming the same column as its origin: its values are that column's, classified by it.
      const vouched = col?.origin !== undefined && direct !== undefined && knownTable && col.origin.tableOid === f!.tableOid && col.origin.attnum === f!.columnAttr
      const unknown = col ? col.unknown && !vouched : !(direct && knownTable)
      if (unknown) {
        mask = {kind: 'value', category: 'untraceable', strategy: strategyFor('untraceable', false, opts)}
        record = {result, column: i, name, category: 'untraceable', strategy: mask.strategy, how: 'untraceable', reasons: contradicted ? ['the server described this result differently from the analysis'] : lineage?.untraceable.length ? lineage.untraceable : ['the origin of this column could not be traced']}
      }
    }
    const textual = f ? isTextual(typeOid, opts.catalog) : true
    if (mask || textual) work.push({index: i, typeOid, format, textual, mask})
    if (record) masked.push(record)
  }
  return notedUnknown ? {work, masked, notedUnknown} : {work, masked}
}

/** One line per masked column for the session log, e.g. `email (result 0, column 1): email, partial, direct; public.customers.email: name matches /e?mail/`. */
export function formatMaskedColumn(m: MaskedColumn): string {
  return `${m.name} (result ${m.result}, column ${m.column}): ${m.category}, ${m.strategy}, ${m.how}; ${m.reasons.join('; ')}`
}

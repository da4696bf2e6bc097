/**
 * Values echoed back in ErrorResponse / NoticeResponse fields and NOTIFY payloads. PostgreSQL
 * quotes data in several messages (`Key (email)=(a@b.com) already exists.`, `Failing row contains
 * (…)`, `invalid input syntax for type integer: "…"`); those shapes are masked structurally, and
 * the scanner runs over every field.
 */
import type {Catalog, CatalogRelation} from './catalog.js'
import {classifyColumn, type MaskingCategory} from './categories.js'
import type {StatementLineage} from './lineage.js'
import {maskJson, scanAndMask, type FieldRules, type ValueMasking} from './values.js'

export type NoticeLike = Record<string, string | undefined>

const TEXT_FIELDS = ['message', 'detail', 'hint', 'where', 'internalQuery'] as const

function relationOf(fields: NoticeLike, catalog: Catalog): CatalogRelation | undefined {
  if (!fields.table) return undefined
  const found = catalog.lookup(fields.schema, fields.table)
  return found.length === 1 ? found[0] : undefined
}

function maskAs(value: string, category: MaskingCategory, m: ValueMasking): string {
  const strategy = m.strategyOf(category)
  return m.masker.text(value, category, strategy === 'null' ? 'redact' : strategy) ?? ''
}

/** `Key (a, b)=(x, y)`: values of sensitive key columns masked; all of them when the table is unknown. */
function maskKeyDetail(detail: string, rel: CatalogRelation | undefined, m: ValueMasking): string {
  return detail.replace(/Key \((.*?)\)=\((.*)\)( already exists| is not present| is still referenced| conflicts)/s, (_all, cols: string, vals: string, rest: string) => {
    const names = cols.split(', ')
    const values = vals.split(', ')
    const categoryOf = (name: string): MaskingCategory | undefined => {
      const col = rel?.columns.find((c) => c.name === name)
      if (col) return col.sensitive?.category
      return classifyColumn(name, 'text')?.category ?? (rel ? undefined : 'untraceable')
    }
    if (names.length !== values.length) return `Key (${cols})=(${maskAs(vals, 'untraceable', m)})${rest}`
    const masked = values.map((v, i) => {
      const c = categoryOf(names[i]!.replace(/^"|"$/g, ''))
      return c ? maskAs(v, c, m) : (scanAndMask(v, m) ?? v)
    })
    return `Key (${cols})=(${masked.join(', ')})${rest}`
  })
}

/**
 * `Failing row contains (…)`: the row of the error's table, values joined by `, ` without quoting.
 * When the count does not match the table's columns (a value holding `, `), all of it is masked.
 */
function maskFailingRow(detail: string, rel: CatalogRelation | undefined, m: ValueMasking): string {
  return detail.replace(/Failing row contains \((.*)\)\.?$/s, (_all, row: string) => {
    const values = row.split(', ')
    if (!rel || values.length !== rel.columns.length) return `Failing row contains (${maskAs(row, 'untraceable', m)}).`
    const masked = values.map((v, i) => {
      if (v === 'null') return v
      const c = rel.columns[i]?.sensitive?.category
      return c ? maskAs(v, c, m) : (scanAndMask(v, m) ?? v)
    })
    return `Failing row contains (${masked.join(', ')}).`
  })
}

/** A data exception quoting its input (`invalid input syntax for type integer: "…"`). */
function maskQuotedInput(message: string, m: ValueMasking): string {
  return message.replace(/: "(.*)"$/s, (_all, v: string) => `: "${maskAs(v, 'untraceable', m)}"`)
}

/**
 * Masks one error or notice. `lineage` is the statement's, where known: a statement that reads
 * sensitive data (or runs code the analysis cannot see) has its data exceptions' quoted inputs
 * and the text of its RAISEd messages masked, since that text may be any value it read.
 */
export function maskNotice(fields: NoticeLike, lineage: StatementLineage | undefined, m: ValueMasking): NoticeLike | undefined {
  const out: NoticeLike = {...fields}
  const rel = relationOf(fields, m.catalog)
  const touches = lineage ? lineage.touchesSensitive : true
  const opaque = lineage ? lineage.opaque : true
  const code = fields.code ?? ''
  if (out.detail) {
    out.detail = maskKeyDetail(out.detail, rel, m)
    out.detail = maskFailingRow(out.detail, rel, m)
  }
  if (touches && code.startsWith('22') && out.message) out.message = maskQuotedInput(out.message, m)
  // RAISE text is whatever the code chose to print: in a statement that reads sensitive data,
  // through a function, a DO block or a trigger on the table it writes, it may print any value.
  if ((opaque || touches) && fields.routine === 'exec_stmt_raise') {
    for (const k of ['message', 'detail', 'hint'] as const) if (out[k]) out[k] = maskAs(out[k], 'untraceable', m)
  }
  for (const k of TEXT_FIELDS) {
    const v = out[k]
    if (!v) continue
    const scanned = scanAndMask(v, m)
    if (scanned !== undefined) out[k] = scanned
  }
  const changed = Object.keys(out).some((k) => out[k] !== fields[k])
  return changed ? out : undefined
}

/** Sensitive column names anywhere in the catalog, for documents whose origin is unknown. */
export function sensitiveNameRules(catalog: Catalog): FieldRules {
  const byName = new Map<string, MaskingCategory>()
  for (const rel of catalog.sensitiveRelations()) for (const c of rel.columns) if (c.sensitive && !byName.has(c.name)) byName.set(c.name, c.sensitive.category)
  return {byName, byPosition: []}
}

/**
 * A NOTIFY payload: JSON payloads (a trigger's `row_to_json(NEW)`) have fields named like
 * sensitive columns masked; the scanner covers the rest.
 */
export function maskNotification(payload: string, rules: FieldRules, m: ValueMasking): string | undefined {
  const trimmed = payload.trimStart()
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const dictionary: FieldRules = {byName: new Map(rules.byName), byPosition: []}
    try {
      collectKeys(JSON.parse(payload), (k) => {
        const c = classifyColumn(k, 'text')
        if (c && !dictionary.byName.has(k)) dictionary.byName.set(k, c.category)
      })
      return maskJson(payload, dictionary, undefined, m)
    } catch {
      // Not JSON after all: scanned as text below.
    }
  }
  return scanAndMask(payload, m)
}

function collectKeys(v: unknown, fn: (k: string) => void): void {
  if (Array.isArray(v)) return v.forEach((x) => collectKeys(x, fn))
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      fn(k)
      collectKeys(x, fn)
    }
  }
}

/**
 * Masking one value of a known PostgreSQL type so that the result is still a valid value of that
 * type: strings get the category's strategy, dates stay dates, numbers stay numbers, JSON stays
 * JSON, arrays and records keep their shape. Also the value scanner applied to text.
 */
import type {Catalog} from './catalog.js'
import type {MaskingCategory, MaskingStrategy} from './categories.js'
import {maskFindings, type Finding} from './detectors.js'
import type {NamedLineage} from './lineage.js'
import {flatten} from './lineage.js'
import {formatArray, formatRecord, mapArray, parseArray, parseRecord} from './pg-text.js'
import type {Masker} from './strategies.js'

export const OID = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  xml: 142,
  float4: 700,
  float8: 701,
  unknown: 705,
  cidr: 650,
  inet: 869,
  macaddr: 829,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  numeric: 1700,
  record: 2249,
  uuid: 2950,
  jsonb: 3802,
} as const

/** Categories of built-in types, for when the catalog has not been read (tests, early startup). */
const BUILTIN_CATEGORY: Record<number, string> = {
  16: 'B', 17: 'U', 18: 'Z', 19: 'S', 20: 'N', 21: 'N', 23: 'N', 25: 'S', 26: 'N', 114: 'U', 142: 'U', 700: 'N', 701: 'N', 705: 'X',
  650: 'I', 869: 'I', 829: 'U', 1042: 'S', 1043: 'S', 1082: 'D', 1083: 'D', 1114: 'D', 1184: 'D', 1186: 'T', 1266: 'D', 1700: 'N',
  2249: 'P', 2950: 'U', 3802: 'U', 1009: 'A', 1015: 'A', 1007: 'A', 1016: 'A', 1005: 'A', 199: 'A', 3807: 'A', 1000: 'A', 1182: 'A', 1115: 'A', 1185: 'A', 1041: 'A', 2287: 'A',
}
const BUILTIN_ELEMENT: Record<number, number> = {1009: 25, 1015: 1043, 1007: 23, 1016: 20, 1005: 21, 199: 114, 3807: 3802, 1000: 16, 1182: 1082, 1115: 1114, 1185: 1184, 1041: 869, 2287: 2249}

export interface TypeView {
  readonly category: string
  readonly elementOid: number
}

const builtinTypes = new Map<number, TypeView>()

/** Called for every masked value: returns shared objects rather than allocating one per call. */
export function typeOf(oid: number, catalog: Catalog): TypeView {
  const t = catalog.type(oid)
  if (t) return t
  let b = builtinTypes.get(oid)
  if (!b) {
    b = {category: BUILTIN_CATEGORY[oid] ?? 'X', elementOid: BUILTIN_ELEMENT[oid] ?? 0}
    builtinTypes.set(oid, b)
  }
  return b
}

/**
 * Type categories whose values cannot spell free text: booleans, dates and times, geometry,
 * network addresses, numbers, intervals, bit strings. Every other category may hold any text:
 * `refcursor`, `tsvector`, `jsonpath` and ranges of text (category U and R) print it as it was.
 */
const NO_FREE_TEXT = new Set(['B', 'D', 'G', 'I', 'N', 'T', 'V'])
/** Types of free-text categories the scanner leaves alone: bytea's hex (see the honest limits) and uuid. */
const NOT_SCANNED: ReadonlySet<number> = new Set([17, OID.uuid])

/** Types whose text (and binary) form may hold readable text the scanner should look at: all but those known not to. */
export function isTextual(oid: number, catalog: Catalog): boolean {
  return !NO_FREE_TEXT.has(typeOf(oid, catalog).category) && !NOT_SCANNED.has(oid)
}

/** Types whose binary form is their UTF-8 text (jsonb with a version byte in front). */
export function isBinaryText(oid: number, catalog: Catalog): boolean {
  return typeOf(oid, catalog).category === 'S' || oid === OID.json || oid === OID.jsonb || oid === OID.xml || oid === OID.unknown
}

/** Names of everything in a catalog, lower-cased, built once per catalog generation. */
const catalogNames = new WeakMap<Catalog, {generation: number; names: Set<string>}>()

export function namesOf(catalog: Catalog): Set<string> {
  const cached = catalogNames.get(catalog)
  if (cached && cached.generation === catalog.generation) return cached.names
  const names = new Set<string>()
  for (const r of catalog.snapshot.relations) {
    names.add(r.schema.toLowerCase()).add(r.name.toLowerCase())
    for (const c of r.columns) names.add(c.name.toLowerCase()).add(c.typeName.toLowerCase())
  }
  for (const t of catalog.snapshot.types) names.add(t.name.toLowerCase())
  for (const f of catalog.snapshot.functions) names.add(f.toLowerCase())
  catalogNames.set(catalog, {generation: catalog.generation, names})
  return names
}

export interface ValueMasking {
  masker: Masker
  catalog: Catalog
  strategyOf(category: MaskingCategory): MaskingStrategy
  /** Called for every scanner hit, for audit counts. */
  onFinding?(f: Finding): void
  /** Called once for every field whose value was replaced, for the recording's masked-value count. */
  onMasked?(): void
}

/**
 * The scanner over one text: sensitive substrings replaced per their category's strategy.
 * `needs` is the text's `textNeeds` when the caller already computed it.
 */
export function scanAndMask(text: string, m: ValueMasking, needs?: number): string | undefined {
  const hit = maskFindings(
    text,
    (value, f) => {
      m.onFinding?.(f)
      const strategy = m.strategyOf(f.category)
      // Inside free text a NULL cannot be expressed: `null` degrades to the fixed mask.
      return m.masker.text(value, f.category, strategy === 'null' ? 'redact' : strategy) ?? ''
    },
    needs,
  )
  return hit?.text
}

const HASH_NUMBER_RANGE: Record<number, bigint> = {21: 32767n, 23: 2147483647n, 20: 9223372036854775807n}

/**
 * Masks a whole value of type `typeOid` as `category`, with `strategy` when the caller narrowed
 * the category's own (derived values are never partially masked); null means SQL NULL.
 */
export function maskTyped(text: string, typeOid: number, category: MaskingCategory, m: ValueMasking, strategy: MaskingStrategy = m.strategyOf(category), depth = 0): string | null {
  if (strategy === 'null') return null
  const type = typeOf(typeOid, m.catalog)
  switch (type.category) {
    case 'S':
    case 'X':
      return m.masker.text(text, category, strategy)
    case 'D': {
      const dateLike = category === 'birth_date' && (strategy === 'partial' || strategy === 'hash') ? m.masker.text(text, category, strategy) : '1900-01-01'
      const day = dateLike ?? '1900-01-01'
      if (typeOid === OID.date) return day.slice(0, 10)
      if (typeOid === OID.timestamp) return `${day.slice(0, 10)} 00:00:00`
      if (typeOid === OID.timestamptz) return `${day.slice(0, 10)} 00:00:00+00`
      if (typeOid === OID.timetz) return '00:00:00+00'
      return '00:00:00'
    }
    case 'T':
      return '00:00:00'
    case 'N': {
      if (strategy !== 'hash') return '0'
      const range = HASH_NUMBER_RANGE[typeOid] ?? 2147483647n
      return (BigInt(`0x${m.masker.digest(text, 16)}`) % range).toString()
    }
    case 'I': {
      const masked = category === 'ip_address' ? m.masker.text(text, category, strategy) : '0.0.0.0'
      if (masked === null) return null
      return typeOid === OID.cidr && !masked.includes('/') ? `${masked}/32` : masked
    }
    case 'A': {
      const tree = parseArray(text)
      if (!tree || depth > 4) return '{}'
      return formatArray(mapArray(tree, (e) => maskTyped(e, type.elementOid, category, m, strategy, depth + 1)))
    }
    case 'C':
    case 'P': {
      const fields = parseRecord(text)
      return fields ? formatRecord(fields.map(() => null)) : null
    }
    case 'U':
      if (typeOid === OID.json || typeOid === OID.jsonb) return maskJson(text, undefined, category, m, strategy) ?? 'null'
      if (typeOid === OID.uuid) {
        const h = strategy === 'hash' ? m.masker.digest(text, 32) : '0'.repeat(32)
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
      }
      if (typeOid === OID.bytea) return strategy === 'hash' ? `\\x${m.masker.digest(text, 32)}` : '\\x'
      return null
    default:
      return null
  }
}

/** Field rules for a document: which names (at any depth) and positions hold which category. */
export interface FieldRules {
  byName: Map<string, MaskingCategory>
  byPosition: (MaskingCategory | undefined)[]
  /**
   * Names and positions whose values are not a sensitive column's own value (`reverse(email)`,
   * `'x@' || replace(email, '@', '.')`): `partial` would keep the wrong part of them, so they are
   * redacted instead (see `strategyFor`). Absent: every field is a column's own value.
   */
  inexact?: {names: Set<string>; positions: Set<number>}
  /**
   * Per position, the rules of a field that is itself a row or document (`ROW(1, c)`, `(c, 2)`,
   * `ROW(1, ROW(c.*))`): in a record's text its value is the inner record's text, quoted, which
   * the position's own category (none) would leave to the scanner alone.
   */
  nested?: (FieldRules | undefined)[]
}

/** Whether a field's value is exactly one sensitive column's own value, or several of one category. */
function exactField(f: NamedLineage): boolean {
  if (f.fields || !f.direct) return false
  const sources = flatten(f)
  return sources.every((s) => s.category === sources[0]!.category)
}

export function fieldRules(fields: NamedLineage[], untraceable: boolean): FieldRules {
  const byName = new Map<string, MaskingCategory>()
  const inexact = {names: new Set<string>(), positions: new Set<number>()}
  const categoryOf = (f: NamedLineage): MaskingCategory | undefined => {
    const src = f.fields ? undefined : flatten(f)[0]
    if (src) return src.category
    if (f.unknown && !f.fields && untraceable) return 'untraceable'
    return undefined
  }
  const visit = (list: NamedLineage[]) => {
    for (const f of list) {
      const c = categoryOf(f)
      if (c && !byName.has(f.name)) byName.set(f.name, c)
      // A name that several fields share is read as the least exact of them.
      if (c && !exactField(f)) inexact.names.add(f.name)
      if (f.fields) visit(f.fields)
    }
  }
  visit(fields)
  fields.forEach((f, i) => {
    if (!exactField(f)) inexact.positions.add(i)
  })
  const nested = fields.map((f) => (f.fields ? fieldRules(f.fields, untraceable) : undefined))
  return {byName, byPosition: fields.map(categoryOf), inexact, ...(nested.some(Boolean) ? {nested} : {})}
}

/** The strategy of a document's field: `partial` only on a column's own value (see `FieldRules.inexact`). */
function fieldStrategy(category: MaskingCategory, inexact: boolean, m: ValueMasking): MaskingStrategy {
  const s = m.strategyOf(category)
  return s === 'partial' && inexact ? 'redact' : s
}

/**
 * Masks a JSON document: values under keys named in `rules` by their category, every string leaf
 * when `allCategory` is given (a document derived from sensitive values as a whole), and the
 * scanner over all remaining strings. Returns undefined when nothing changed.
 */
export function maskJson(text: string, rules: FieldRules | undefined, allCategory: MaskingCategory | undefined, m: ValueMasking, allStrategy?: MaskingStrategy): string | undefined {
  // Keys that are names from the catalog (a row's column names) say nothing of any value.
  const names = allCategory ? namesOf(m.catalog) : undefined
  const keptKey = (k: string): boolean => names?.has(k.toLowerCase()) ?? false
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    return allCategory || rules ? JSON.stringify(m.masker.text('', 'untraceable', 'redact')) : undefined
  }
  let changed = false
  /** Whether the category the leaves under way are masked by came from an inexact field. */
  let inexactLeaf = false
  const leaf = (v: unknown, category: MaskingCategory | undefined): unknown => {
    if (typeof v === 'string') {
      if (category) {
        changed = true
        const strategy = category === allCategory && allStrategy ? allStrategy : fieldStrategy(category, inexactLeaf, m)
        return strategy === 'null' ? null : m.masker.text(v, category, strategy)
      }
      const scanned = scanAndMask(v, m)
      if (scanned !== undefined) changed = true
      return scanned ?? v
    }
    if (typeof v === 'number' && category) {
      changed = true
      return 0
    }
    if (Array.isArray(v)) return v.map((x) => leaf(x, category))
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {}
      for (const [k, x] of Object.entries(v)) {
        const key = maskKey(k, category, out)
        if (key !== k) changed = true
        const byName = category ? undefined : rules?.byName.get(k)
        const outer = inexactLeaf
        if (byName) inexactLeaf = rules?.inexact?.names.has(k) ?? false
        out[key] = leaf(x, category ?? byName)
        inexactLeaf = outer
      }
      return out
    }
    return v
  }
  /*
   * A key is a value too: `jsonb_object_agg(name, 1)`, `jsonb_set('{}', array[name], …)` and
   * `json_object(name : 1)` carry the sensitive values as keys. Inside a document derived from
   * sensitive values every key is replaced but names from the catalog; elsewhere the scanner runs
   * over keys as over strings.
   * Replaced keys are numbered so that the object keeps one member per key.
   */
  const maskKey = (k: string, category: MaskingCategory | undefined, taken: Record<string, unknown>): string => {
    const masked = category ? (keptKey(k) ? undefined : 'masked') : scanAndMask(k, m)
    if (masked === undefined) return k
    let key = masked
    for (let n = 2; Object.hasOwn(taken, key); n++) key = `${masked}_${n}`
    return key
  }
  const masked = leaf(doc, allCategory)
  return changed ? JSON.stringify(masked) : undefined
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/**
 * Masks a value that holds whole rows: a record `(…)`, an array of records, or JSON (when it was
 * cast to text). Unrecognisable text is masked whole: its fields are known to be sensitive.
 */
export function maskComposite(text: string, typeOid: number, rules: FieldRules, m: ValueMasking): string | null | undefined {
  if (typeOid === OID.json || typeOid === OID.jsonb) return maskJson(text, rules, undefined, m)
  const record = (t: string): string | undefined => {
    const fields = parseRecord(t)
    if (!fields) return undefined
    let changed = false
    const out = fields.map((f, i) => {
      const c = rules.byPosition[i]
      if (f === null) return null
      const inner = rules.nested?.[i]
      if (inner && !c) {
        const masked = maskComposite(f, 0, inner, m)
        if (masked === undefined) return f
        changed = true
        return masked
      }
      if (c) {
        changed = true
        const strategy = fieldStrategy(c, rules.inexact?.positions.has(i) ?? false, m)
        return strategy === 'null' ? null : m.masker.text(f, c, strategy)
      }
      const scanned = scanAndMask(f, m)
      if (scanned !== undefined) changed = true
      return scanned ?? f
    })
    return changed ? formatRecord(out) : t
  }
  const trimmed = text.trimStart()
  if (trimmed.startsWith('(')) {
    const r = record(text)
    if (r !== undefined) return r === text ? undefined : r
  }
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    if (isJson(text)) return maskJson(text, rules, undefined, m)
    const tree = parseArray(text)
    if (tree) {
      let failed = false
      const out = mapArray(tree, (e) => {
        const r = record(e)
        if (r === undefined) failed = true
        return r ?? null
      })
      if (!failed) {
        const formatted = formatArray(out)
        return formatted === text ? undefined : formatted
      }
    }
  }
  return maskTyped(text, typeOid, 'untraceable', m)
}

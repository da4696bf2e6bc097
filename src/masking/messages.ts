/**
 * Values echoed back in ErrorResponse / NoticeResponse fields and NOTIFY payloads. PostgreSQL
 * quotes data in many messages, whatever their SQLSTATE (`Key (email)=(a@b.com) already exists.`,
 * `Failing row contains (…)`, `invalid input syntax for type integer: "…"`, `unrecognized
 * configuration parameter "…"`, `relation "…" does not exist`, `syntax error in tsquery: "…"`), and
 * some echo input unquoted (libxml's caret lines, `JSON data, line 1: …`, byte sequences).
 *
 * For a statement that reads sensitive data (or could), every quoted value in every text field is
 * masked unless it is proven clean: a word or value the statement text itself holds, a name from
 * the catalog, or a name the message's own fields give (table, column, constraint…). The key and
 * row shapes are masked by column for every statement, and the scanner runs over every field.
 */
import type {Catalog, CatalogRelation} from './catalog.js'
import {classifyColumn, type MaskingCategory} from './categories.js'
import {analyzeText, flatten, type StatementLineage} from './lineage.js'
import {parseSql} from '../sql/parser.js'
import {maskJson, namesOf, scanAndMask, type FieldRules, type ValueMasking} from './values.js'
import {MESSAGE_WORDS_TEXT} from './message-words.generated.js'

export type NoticeLike = Record<string, string | undefined>

const TEXT_FIELDS = ['message', 'detail', 'hint', 'where', 'internalQuery'] as const

const MASK = '[masked]'

/** Fields that name the object an error is about (the protocol's `s`, `t`, `c`, `n`, `d`). */
const NAME_FIELDS = ['schema', 'table', 'column', 'constraint', 'dataType'] as const

/** What makes a value quoted in a message clean: the client wrote it, or it is the name of something. */
export interface MessageProof {
  has(value: string): boolean
}

function collect(node: unknown, into: Set<string>): void {
  if (typeof node === 'string') into.add(node.toLowerCase())
  else if (typeof node === 'number') into.add(String(node))
  else if (Array.isArray(node)) for (const x of node) collect(x, into)
  else if (node && typeof node === 'object') for (const x of Object.values(node)) collect(x, into)
}

/**
 * The proof for messages of one statement text: every identifier, constant and number its parse
 * tree holds, and the catalog's names. A text that does not parse proves what it contains.
 */
export function messageProof(sql: string, catalog: Catalog): MessageProof {
  const words = new Set<string>()
  const parsed = parseSql(sql)
  if (parsed.ok) collect(parsed.statements, words)
  const lowerSql = parsed.ok ? '' : sql.toLowerCase()
  const names = namesOf(catalog)
  const one = (v: string): boolean => {
    const lower = v.toLowerCase()
    return words.has(lower) || names.has(lower) || (!parsed.ok && lower.length > 0 && lowerSql.includes(lower))
  }
  return {has: (v) => one(v) || (v.includes('.') && v.split('.').every(one))}
}

/** Words of PostgreSQL's message templates that may stand between two quoted names. */
const GLUE = new Set(
  'of relation table view for type in on at or near and to from column constraint schema function is not with key foreign violates check unique index the a an by as into role database operator domain sequence trigger policy extension but expression cannot be referenced this part query named there was'.split(' '),
)

function isGlue(text: string): boolean {
  const words = text.split(/[\s,.;:()]+/).filter(Boolean)
  return words.every((w) => GLUE.has(w.toLowerCase()))
}

/**
 * Masks the quoted region of `text` (from its first `quote` to its last) unless every quoted part
 * is proven clean and only template words stand between them. Values may themselves hold quotes,
 * so the region is judged as a whole: pairing quotes one by one would let a value that contains
 * `" … "` smuggle its middle out unquoted.
 */
function maskQuoted(text: string, quote: string, clean: (v: string) => boolean): string {
  const first = text.indexOf(quote)
  if (first < 0) return text
  const last = text.lastIndexOf(quote)
  if (last === first) return `${text.slice(0, first + 1)}${MASK}`
  const parts = text.slice(first + 1, last).split(quote)
  const proven = parts.length % 2 === 1 && parts.every((p, i) => (i % 2 === 0 ? clean(p) : isGlue(p)))
  return proven ? text : `${text.slice(0, first + 1)}${MASK}${text.slice(last)}`
}

const BYTES = /0x[0-9a-fA-F]{2}(?:\s+0x[0-9a-fA-F]{2})*/g
/**
 * A number, wherever it stands but inside a word or a parameter (`int4`, `$1`): the server prints
 * values it computed beside dashes, dots and parentheses (`date field value out of range:
 * 2000-989846850-01` from `make_date`, `0..10` from `get_byte`, `9.89847e+08` from `%g`), so a
 * number is only left alone when it is proven clean or a type modifier (`varchar(5)`).
 */
const NUMBER = /(?<![\w$])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g
/** `varchar(5)`, `numeric(10,2)`: a type's modifiers, directly inside the parentheses after its name. */
const TYPE_MODIFIER_BEFORE = /[A-Za-z_]\((?:\d+,\s*)?$/
const TYPE_MODIFIER_AFTER = /^(?:,\s*\d+)?\)/

function isTypeModifier(text: string, at: number, n: string): boolean {
  return TYPE_MODIFIER_BEFORE.test(text.slice(Math.max(0, at - 64), at)) && TYPE_MODIFIER_AFTER.test(text.slice(at + n.length, at + n.length + 32))
}
const CARET_LINE = /\n\s*\^\s*(\n|$)/

/**
 * Reasons the server prints after a colon that are its own, not input: the regular expression
 * library's errors and the operating system's (`could not open file "…": No such file or directory`).
 */
const OWN_REASONS = new Set(
  [
    'invalid collating element', 'invalid character class', 'invalid escape \\ sequence', 'invalid backreference number',
    'brackets [] not balanced', 'parentheses () not balanced', 'braces {} not balanced', 'invalid repetition count(s)',
    'invalid character range', 'out of memory', 'quantifier operand invalid', 'invalid argument to regex function',
    'character widths of regex and string differ', 'invalid embedded option', 'regular expression is too complex',
    'too many colors', 'operation cancelled', 'No such file or directory', 'Permission denied', 'Is a directory',
    'Not a directory', 'File exists', 'No space left on device', 'Too many open files', 'Read-only file system',
    'Invalid argument', 'Operation not permitted', 'Input/output error',
  ].map((r) => r.toLowerCase()),
)

/** The words of the SQL names format_type prints (`operator does not exist: integer = character varying`). */
const TYPE_WORDS = new Set('integer smallint bigint character varying double precision boolean timestamp time with without zone numeric real bit interval date'.split(' '))

const WORD = /[\p{L}\p{N}_$]+/gu

/**
 * Input the server prints unquoted after a colon: names joined by dots (`improper relation name
 * (too many dotted names): alice_novak.b.c.d`, from a cast to regclass, regproc or regtype),
 * `invalid normalization form: …`, libxml's `line 1: Opening and ending tag mismatch: a line 1
 * and Alice_Novak`. What follows the first `: ` of a line is kept only when every word of it is
 * proven clean (or already masked), or it is one of the server's own reasons.
 */
function maskUnquotedTails(text: string, clean: (v: string) => boolean): string {
  return text
    .split('\n')
    .map((line) => {
      const at = line.indexOf(': ')
      if (at < 0 || ROW_LINE.test(line)) return line
      const tail = line.slice(at + 2)
      if (tail === MASK || OWN_REASONS.has(tail.replace(/\.$/, '').toLowerCase())) return line
      const proven = chunksOf(tail).every((chunk) => clean(chunk) || (chunk.match(WORD) ?? []).every((w) => w === 'masked' || TYPE_WORDS.has(w.toLowerCase()) || clean(w)))
      return proven ? line : `${line.slice(0, at + 2)}${MASK}`
    })
    .join('\n')
}
const JSON_CONTEXT = /^(JSON data, line \d+: ).*$/m

/** The words of the server's own message texts (src/masking/message-words.generated.ts). */
const MESSAGE_WORDS = new Set(MESSAGE_WORDS_TEXT.split(/\s+/).filter(Boolean))

/** Lines a column-by-column masking already judged: keys and failing rows print values of every kind. */
const ROW_LINE = /^(Key \(|Failing row contains \(|Partition key of the failing row contains \()/

/**
 * A line of a message is the server's template with values put in. Quoted values and numbers are
 * judged above; a value a template prints unquoted (`Alice Novak is not a valid encoding name`
 * from `to_ascii(x, full_name::name)`) is a word no template has. So a line is kept only when
 * every unquoted word in it is a word of the server's own messages or proven clean, and masked
 * whole otherwise: masking only the unknown words would leave a value's words that happen to be
 * the server's (`Via` of `Via Roma`).
 */
function maskUnknownWords(text: string, clean: (v: string) => boolean): string {
  return text
    .split('\n')
    .map((line) => {
      if (line === MASK || ROW_LINE.test(line)) return line
      const unquoted = withoutRegion(withoutRegion(line, '"'), "'")
      const known = chunksOf(unquoted).every((chunk) => clean(chunk) || (chunk.match(WORD) ?? []).every((w) => w === 'masked' || /^\d+$/.test(w) || MESSAGE_WORDS.has(w.toLowerCase()) || clean(w)))
      return known ? line : MASK
    })
    .join('\n')
}

/**
 * The whitespace-separated parts of a text, without the punctuation a template puts around a
 * value, so that a constant of the statement (`'a.b.c.d'`, a path) is proven as a whole.
 */
function chunksOf(text: string): string[] {
  return text
    .split(/\s+/)
    .map((c) => c.replace(/^[(\[{]+|[)\]}.,;:]+$/g, ''))
    .filter(Boolean)
}

/** `text` without the region from the first `quote` to the last, which maskQuoted judged as a whole. */
function withoutRegion(text: string, quote: string): string {
  const first = text.indexOf(quote)
  const last = text.lastIndexOf(quote)
  return first < 0 || last === first ? text : text.slice(0, first) + text.slice(last + 1)
}

/** The structural masking of one text field of a message from a statement that reads sensitive data. */
function maskEchoes(key: (typeof TEXT_FIELDS)[number], text: string, clean: (v: string) => boolean, opaque: boolean): string {
  // Code the analysis cannot see into builds its queries from anything it read.
  if (key === 'internalQuery' && opaque) return MASK
  let out = maskQuoted(maskQuoted(text, '"', clean), "'", clean)
  // An input echoed on its own line above a caret (libxml, and parsers of other formats).
  if (CARET_LINE.test(out)) out = `${out.split('\n')[0]}\n${MASK}`
  out = out.replace(JSON_CONTEXT, `$1${MASK}`).replace(BYTES, MASK)
  if (key === 'message') out = out.replace(NUMBER, (n: string, at: number, whole: string) => (clean(n) || isTypeModifier(whole, at, n) ? n : MASK))
  if (key === 'message' || key === 'detail' || key === 'hint') out = maskUnknownWords(maskUnquotedTails(out, clean), clean)
  return out
}

/**
 * Where the procedural languages print a message their code wrote: PL/pgSQL's RAISE and ASSERT
 * (`assert false, full_name` fails with the name as its message), PL/Python's plpy.error and
 * exceptions, PL/Perl's elog and die, PL/Tcl's elog and errors.
 */
const CODES_OWN_ROUTINES = new Set([
  'exec_stmt_raise',
  'exec_stmt_assert',
  'PLy_output',
  'PLy_elog_impl',
  'plperl_util_elog',
  'plperl_call_perl_func',
  'plperl_call_perl_trigger_func',
  'plperl_call_perl_event_trigger_func',
  'pltcl_elog',
  'throw_tcl_error',
])

function isCodesOwnMessage(fields: NoticeLike): boolean {
  return fields.routine !== undefined && CODES_OWN_ROUTINES.has(fields.routine)
}

function relationOf(fields: NoticeLike, catalog: Catalog): CatalogRelation | undefined {
  if (!fields.table) return undefined
  const found = catalog.lookup(fields.schema, fields.table)
  return found.length === 1 ? found[0] : undefined
}

/**
 * `own`: the value is known to be its column's own (`partial` may keep part of it). A row or key
 * an error prints from a statement that reads sensitive data may hold any value derived from it
 * (`'x@' || replace(email, '@', '.')` written into `email`), of which `partial` keeps the wrong part.
 */
function maskAs(value: string, category: MaskingCategory, m: ValueMasking, own = true): string {
  const strategy = m.strategyOf(category)
  return m.masker.text(value, category, strategy === 'null' || (strategy === 'partial' && !own) ? 'redact' : strategy) ?? ''
}

/** The values of a `(a, b)=(x, y)` key: those of sensitive columns masked; all of them when the table is unknown. */
function maskKeyValues(cols: string, vals: string, rel: CatalogRelation | undefined, m: ValueMasking, own: boolean): string {
  const names = keyNames(cols)
  const values = vals.split(', ')
  const categoryOf = (name: string): MaskingCategory | undefined => {
    const col = rel?.columns.find((c) => c.name === name)
    if (col) return col.sensitive?.category
    return classifyColumn(name, 'text')?.category ?? (rel ? undefined : 'untraceable')
  }
  if (names.length !== values.length) return maskAs(vals, 'untraceable', m)
  return values
    .map((v, i) => {
      const part = names[i]!
      const name = /^".*"$/s.test(part) ? part.slice(1, -1).replace(/""/g, '"') : part
      if (isExpression(name, rel)) return maskExpressionValue(v, name, rel, m, own)
      const c = categoryOf(name)
      return c ? maskAs(v, c, m, own) : (scanAndMask(v, m) ?? v)
    })
    .join(', ')
}

/**
 * The parts of a key's column list, split at the `, ` PostgreSQL joins them with, but not inside a
 * quoted identifier (`"k, id"`), a string constant or an expression's parentheses
 * (`coalesce(a, b)`): split there, a name would pair with the next part of a value (`Key (address,
 * "k, id")=(178 Via Roma, Portsmouth, 5)` paired `Portsmouth` with `"k`, a clean name).
 */
function keyNames(cols: string): string[] {
  const out: string[] = []
  let depth = 0
  let quote: string | undefined
  let start = 0
  for (let i = 0; i < cols.length; i++) {
    const c = cols[i]!
    if (quote) {
      if (c === quote) quote = undefined
    } else if (c === '"' || c === "'") quote = c
    else if (c === '(') depth++
    else if (c === ')') depth--
    else if (c === ',' && cols[i + 1] === ' ' && depth === 0) {
      out.push(cols.slice(start, i))
      start = i + 2
      i++
    }
  }
  out.push(cols.slice(start))
  return out
}

const IDENTIFIER = /^[\p{L}_][\p{L}\p{N}_$]*$/u
/** A key part that is an index expression (`lower(nm)`, `(nm || ''::text)`), not a column's name. */
function isExpression(name: string, rel: CatalogRelation | undefined): boolean {
  return !IDENTIFIER.test(name) && !rel?.columns.some((c) => c.name === name)
}

/**
 * The value of an index expression in a key (`Key (lower(nm))=(alice novak) already exists`, or
 * a partition key's): what the expression computes from the row, traced as a query's column would
 * be (`SELECT lower(nm) FROM t`), since it may call a user function that reads any table
 * (`Key (public.f_name(id))=(Alice Novak) is duplicated`). Masked as what it computes from
 * (redacted: it is not a column's own value, of which `partial` would keep the wrong part), and as
 * untraceable unless proven clean. In a statement that reads sensitive data or runs code the
 * analysis cannot see into, the row itself may hold values the catalog does not classify yet, so
 * there it is masked whatever it reads.
 */
function maskExpressionValue(value: string, expression: string, rel: CatalogRelation | undefined, m: ValueMasking, own: boolean): string {
  if (!rel || !own) return maskAs(value, 'untraceable', m)
  const text = analyzeText(`select ${expression} from ${quoteIdent(rel.schema)}.${quoteIdent(rel.name)}`, m.catalog)
  const st = text.ok && text.statements.length === 1 ? text.statements[0] : undefined
  const column = st?.columns?.length === 1 && !st.opaque && st.untraceable.length === 0 ? st.columns[0] : undefined
  if (!column || column.unknown) return maskAs(value, 'untraceable', m)
  const categories = new Set(flatten(column).map((x) => x.category))
  if (categories.size === 1) return maskAs(value, [...categories][0]!, m, false)
  if (categories.size > 1) return maskAs(value, 'untraceable', m)
  return scanAndMask(value, m) ?? value
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/**
 * The keys PostgreSQL prints with their values: `Key (a, b)=(x, y) already exists` (and is not
 * present, is still referenced, is duplicated, conflicts with existing key (…)=(…)), and
 * `Partition key of the failing row contains (a) = (x)`.
 */
function maskKeyDetail(detail: string, rel: CatalogRelation | undefined, m: ValueMasking, own: boolean): string {
  return detail
    .replace(/Key \((.*?)\)=\((.*)\)( already exists| is not present| is still referenced| conflicts| is duplicated)/s, (_all, cols: string, vals: string, rest: string) => `Key (${cols})=(${maskKeyValues(cols, vals, rel, m, own)})${rest}`)
    .replace(/(with existing key|with key|Partition key of the failing row contains) \((.*?)\)( ?= ?)\((.*)\)\.$/s, (_all, lead: string, cols: string, eq: string, vals: string) => `${lead} (${cols})${eq}(${maskKeyValues(cols, vals, rel, m, own)}).`)
}

/**
 * `Failing row contains (…)`: a row, values joined by `, ` without quoting, in the column order of
 * the error's table, or, when the statement named a parent (`UPDATE parent …` reaching a
 * partition, an `INSERT` routed through it), in the parent's order while the error still names the
 * partition, whose columns may stand in another order. So each position is masked by what any of
 * those orders has there. When the count matches none of them (a value holding `, `), all of it
 * is masked.
 */
function maskFailingRow(detail: string, rel: CatalogRelation | undefined, m: ValueMasking, own: boolean): string {
  return detail.replace(/Failing row contains \((.*)\)\.?$/s, (_all, row: string) => {
    const values = row.split(', ')
    const orders = rel ? [rel, ...m.catalog.ancestors(rel.oid)].filter((r) => r.columns.length === values.length) : []
    if (orders.length === 0) return `Failing row contains (${maskAs(row, 'untraceable', m)}).`
    const masked = values.map((v, i) => {
      if (v === 'null') return v
      const categories = [...new Set(orders.map((r) => r.columns[i]?.sensitive?.category).filter((c): c is MaskingCategory => c !== undefined))]
      if (categories.length === 0) return scanAndMask(v, m) ?? v
      // A value another order puts here is not this column's own: `partial` could keep the wrong part.
      const mine = orders.length === 1 || orders.every((r) => r.columns[i]?.name === rel!.columns[i]?.name)
      return categories.length === 1 ? maskAs(v, categories[0]!, m, own && mine) : maskAs(v, 'untraceable', m)
    })
    return `Failing row contains (${masked.join(', ')}).`
  })
}

/**
 * Masks one error or notice. `lineage` is the statement's, where known: a statement that reads
 * sensitive data (or runs code the analysis cannot see) has every quoted value of its messages
 * masked unless `proof` shows it clean, and the text of its RAISEd messages masked whole, since
 * that text may be any value it read. Without a lineage the statement is assumed to read anything.
 */
export function maskNotice(fields: NoticeLike, lineage: StatementLineage | undefined, m: ValueMasking, proof?: MessageProof): NoticeLike | undefined {
  const out: NoticeLike = {...fields}
  const rel = relationOf(fields, m.catalog)
  const touches = lineage ? lineage.touchesSensitive : true
  const opaque = lineage ? lineage.opaque : true
  if (out.detail) {
    // Values a statement that reads nothing sensitive writes are its own constants and parameters.
    const own = !touches && !opaque
    out.detail = maskKeyDetail(out.detail, rel, m, own)
    out.detail = maskFailingRow(out.detail, rel, m, own)
  }
  // RAISE text is whatever the code chose to print: in a statement that reads sensitive data,
  // through a function, a DO block or a trigger on the table it writes, it may print any value.
  const raised = (opaque || touches) && isCodesOwnMessage(fields)
  if (raised) {
    for (const k of ['message', 'detail', 'hint'] as const) if (out[k]) out[k] = maskAs(out[k], 'untraceable', m)
  }
  // The server's own logging, sent to a client that asked for it (client_min_messages = log or
  // debug): no template of it is known, and the parser's and planner's node trees
  // (debug_print_parse, _rewritten, _plan) print every constant as its raw bytes in decimal
  // (`:constvalue 15 [ 60 0 0 0 65 108 105 99 101 … ]`), constants the planner computed by running
  // a user function or from EXECUTE's arguments among them. In a statement that reads sensitive
  // data, or runs code the analysis cannot see into, its text is masked whole.
  const logged = !raised && (touches || opaque) && (fields.severity === 'LOG' || fields.severity === 'DEBUG')
  if (logged) {
    for (const k of ['message', 'detail', 'hint'] as const) if (out[k]) out[k] = maskAs(out[k], 'untraceable', m)
  }
  if (touches || opaque) {
    const names = namesOf(m.catalog)
    const proven = (v: string) => (proof ? proof.has(v) : names.has(v.toLowerCase()))
    // Code the analysis cannot see into sets the name fields to anything it read (`RAISE … USING
    // COLUMN = name`, PL/Python's `table_name=`): there, they are kept only when proven clean.
    if (opaque) for (const k of NAME_FIELDS) if (out[k] && !proven(out[k])) out[k] = MASK
    // The server's own name fields are names, never values.
    const own = new Set(NAME_FIELDS.map((k) => out[k]).filter((x): x is string => !!x && x !== MASK).map((x) => x.toLowerCase()))
    const clean = (v: string) => own.has(v.toLowerCase()) || proven(v)
    for (const k of TEXT_FIELDS) {
      const v = out[k]
      if (!v || ((raised || logged) && k !== 'where' && k !== 'internalQuery')) continue
      const masked = maskEchoes(k, v, clean, opaque)
      if (masked !== v) out[k] = masked
    }
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

/**
 * A NOTIFY payload that code the analysis cannot see into may have built from anything it read
 * (a DO block's `pg_notify('c', name)`, a trigger's `json_build_object('label', name)`): masked
 * whole, and a JSON payload in its every value, keeping only keys that are names from the catalog
 * (so a trigger's `row_to_json(NEW)` still shows which columns changed).
 */
export function maskUntracedNotification(payload: string, m: ValueMasking): string {
  const trimmed = payload.trimStart()
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const masked = maskJson(payload, undefined, 'untraceable', m, 'redact')
    if (masked !== undefined || isJsonText(payload)) return masked ?? payload
  }
  return payload === '' ? payload : MASK
}

function isJsonText(text: string): boolean {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
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

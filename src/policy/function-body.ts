/**
 * What a user-defined function's body runs, read from its catalog entry: the statements of a SQL
 * function, and every SQL query and expression a PL/pgSQL function embeds, analysed like a client's
 * statements. A function's declared volatility is its author's word; PostgreSQL lets a STABLE or
 * IMMUTABLE function call volatile functions, so the body is what the policy judges (catalog.ts).
 *
 * Pure: the catalog row in, a `FunctionBody` out. Fails closed: a body that does not parse, a
 * PL/pgSQL node this module does not know, or a language it cannot read comes back `unreadable`.
 */
import {analyze, summarise} from './analyze.js'
import {columnsWin, outerDeclarations, recordNames, scopeOf, variableNames} from './plpgsql-variables.js'
import {assumedSettingViolated} from './assumed-settings.js'
import {catalogKeys, type CatalogKey} from './catalog.js'
import type {StatementAnalysis} from './types.js'
import {parsePlpgsql, parseSql, scanTokens, type ScanToken} from '../sql/parser.js'
import {isObj, type Obj} from '../sql/tree.js'
import {StatementWalker} from './walker.js'

/** A user function's body as the catalog holds it (src/connect/function-catalog.ts reads it). */
export interface FunctionBodySource {
  /** pg_language.lanname. */
  language: string
  /** pg_proc.prokind: an aggregate (`a`) has no body; its support functions are judged instead. */
  kind: string
  /** Whether the function belongs to an extension (pg_depend deptype 'e'). */
  extension: boolean
  /** pg_proc.prosrc: a SQL function's statements as written. */
  src?: string
  /** `pg_get_functiondef`, for PL/pgSQL and for a SQL function with a `BEGIN ATOMIC` or `RETURN` body. */
  definition?: string
  /** True when the SQL body is stored parsed (pg_proc.prosqlbody, PostgreSQL 14 and later). */
  atomic: boolean
  /** pg_proc.proconfig: the function's own `SET name = value` clauses, in force while its body runs. */
  config?: readonly string[]
  /**
   * The types its results are converted to (the return type, OUT and TABLE columns) that are not
   * built in, schema-qualified and quoted: a domain's checks run on what the body returns.
   */
  results?: readonly string[]
  /** The kind of type whose constructor CREATE TYPE … AS RANGE made this function (src/connect/function-catalog.ts proves it). */
  constructs?: 'range' | 'multirange'
}

export interface FunctionBody {
  extension: boolean
  /** The body's statements, analysed; empty when it could not be read. */
  statements: StatementAnalysis[]
  /** Why the body cannot be judged, in words that follow the function's name. */
  unreadable?: string
  /** Where the body runs SQL built at run time (EXECUTE), which no analysis can see into. */
  dynamic?: string
  /** The catalog keys the statements need (functions, operators, casts, relations they reach). */
  keys: CatalogKey[]
}

function unreadable(why: string, extension = false): FunctionBody {
  return {extension, statements: [], unreadable: why, keys: []}
}

function done(statements: StatementAnalysis[], dynamic?: string): FunctionBody {
  return {extension: false, statements, ...(dynamic ? {dynamic} : {}), keys: catalogKeys(statements)}
}

/** The languages whose bodies dbgate reads: an extension's function in one of them is read like a user's. */
const READABLE_LANGUAGES = new Set(['sql', 'plpgsql'])

/**
 * The C functions (pg_proc.prosrc) PostgreSQL makes a range type's constructors, and its
 * multirange type's, with: they build a value of the type from their arguments and nothing else.
 */
const CONSTRUCTORS: Record<NonNullable<FunctionBodySource['constructs']>, ReadonlySet<string>> = {
  range: new Set(['range_constructor2', 'range_constructor3']),
  multirange: new Set(['multirange_constructor0', 'multirange_constructor1', 'multirange_constructor2']),
}

/**
 * The most of a body dbgate judges. Reading a body is synchronous parsing on the tunnel's event
 * loop (about 0.1 s per 100 KiB of PL/pgSQL, 25 µs or more per statement), which every session
 * waits for: a body past either limit is not read, and its function is judged unknown. Both are
 * far beyond what a hand-written function reaches (docs/policy.md).
 */
export const MAX_BODY_CHARS = 256 * 1024
export const MAX_BODY_STATEMENTS = 5000

function tooLong(text: string | undefined): FunctionBody | undefined {
  if (text === undefined || text.length <= MAX_BODY_CHARS) return undefined
  return unreadable(`has a body of ${text.length} characters, more than the ${MAX_BODY_CHARS} dbgate reads (a body that large would stall every session while it is analysed)`)
}

function tooMany(count: number): FunctionBody | undefined {
  if (count <= MAX_BODY_STATEMENTS) return undefined
  return unreadable(`has ${count} statements and expressions in its body, more than the ${MAX_BODY_STATEMENTS} dbgate judges (a body that large would stall every session while it is analysed)`)
}

/** A user range type's own constructor: a read. Any other internal function stays unknown, whatever it is named. */
function isRangeConstructor(source: FunctionBodySource): boolean {
  return source.language === 'internal' && source.constructs !== undefined && source.src !== undefined && CONSTRUCTORS[source.constructs].has(source.src)
}

export function readFunctionBody(source: FunctionBodySource): FunctionBody {
  // An extension's C functions are the DBA's installed code, judged by what they declare. Its SQL and
  // PL/pgSQL ones are read: membership is no proof of origin (`ALTER EXTENSION … ADD FUNCTION`
  // makes any function a member, and a trusted extension's owner is whoever created it).
  if (source.extension && !READABLE_LANGUAGES.has(source.language)) return {extension: true, statements: [], keys: []}
  if (source.kind === 'a') return done([])
  for (const item of source.config ?? []) {
    // The body runs under the function's own settings: one that changes how text is read (or what
    // a query means) would make the server run something other than what dbgate analysed.
    const eq = item.indexOf('=')
    const name = eq < 0 ? item : item.slice(0, eq)
    const broken = assumedSettingViolated(name, eq < 0 ? '' : item.slice(eq + 1))
    if (broken) return unreadable(`sets ${item} for its body, which dbgate does not read it under (${broken.why})`)
  }
  // A range's builds the value as a cast to the type would (range_serialize orders the bounds by
  // the subtype's operator class, then the canonical function runs), so it is judged as that cast.
  // A multirange's takes ranges built (and judged) already; judged as a cast to the multirange, it
  // would be judged through itself, since it is also the cast from its range type.
  if (isRangeConstructor(source)) return source.constructs === 'range' ? withResults(done([]), source.results) : done([])
  try {
    if (source.language === 'sql') return tooLong(source.atomic ? source.definition : source.src) ?? withResults(source.atomic ? atomicSqlBody(source.definition) : sqlBody(source.src), source.results)
    if (source.language === 'plpgsql') return tooLong(source.definition) ?? withResults(plpgsqlBody(source.definition, source.config), source.results)
  } catch (error) {
    return unreadable(`has a body dbgate could not read (${error instanceof Error ? error.message : String(error)})`)
  }
  return unreadable(`is written in ${source.language}, whose body dbgate cannot read`)
}

/**
 * A body's result is converted to the function's declared result types: a domain's checks (and
 * those of a composite's attributes, an array's elements) run on it, in SQL and PL/pgSQL alike,
 * whatever the body says. Judged as the cast each conversion is.
 */
function withResults(body: FunctionBody, results: readonly string[] | undefined): FunctionBody {
  if (body.unreadable || !results || results.length === 0) return body
  const statements = [...body.statements]
  for (const type of results) {
    const text = `SELECT NULL::${type}`
    const {statements: analysed} = analyze(text)
    const failed = analysed.length === 1 ? analysed[0]!.error : 'not one type name'
    if (failed !== undefined) return unreadable(`returns a type dbgate could not analyse (${failed}: ${type.slice(0, 200)})`)
    for (const s of analysed) statements.push({...s, index: statements.length})
  }
  return done(statements, body.dynamic)
}

function sqlBody(src: string | undefined): FunctionBody {
  if (src === undefined) return unreadable('has no body in the catalog')
  const {statements} = analyze(src)
  const over = tooMany(statements.length)
  if (over) return over
  const failed = statements.find((s) => s.error !== undefined)
  if (failed) return unreadable(`has a body dbgate could not analyse (${failed.error})`)
  return done(statements)
}

/** A body stored parsed (`BEGIN ATOMIC … END` or `RETURN expr`), read back from the function's definition. */
function atomicSqlBody(definition: string | undefined): FunctionBody {
  if (definition === undefined) return unreadable('has no definition in the catalog')
  const parsed = parseSql(definition)
  if (!parsed.ok) throw new Error(parsed.error)
  const create = parsed.statements[0]?.CreateFunctionStmt
  if (!isObj(create) || !isObj(create.sql_body)) throw new Error('its definition is not a CREATE FUNCTION with a SQL body')
  const nodes: Obj[] = []
  const body = create.sql_body
  if (isObj(body.ReturnStmt)) {
    // `RETURN expr` runs as `SELECT expr`.
    nodes.push({SelectStmt: {targetList: [{ResTarget: {val: body.ReturnStmt.returnval}}], limitOption: 'LIMIT_OPTION_DEFAULT', op: 'SETOP_NONE'}})
  } else if (isObj(body.List)) {
    for (const outer of (body.List.items as unknown[] | undefined) ?? []) {
      if (!isObj(outer) || !isObj(outer.List)) throw new Error('unrecognised BEGIN ATOMIC body')
      for (const n of (outer.List.items as unknown[] | undefined) ?? []) {
        if (!isObj(n)) throw new Error('unrecognised BEGIN ATOMIC body')
        nodes.push(n)
      }
    }
  } else throw new Error('unrecognised SQL body')
  const over = tooMany(nodes.length)
  if (over) return over
  return done(nodes.map((n, i) => summarise(i, definition, StatementWalker.walk(n))))
}

// ---- PL/pgSQL ---------------------------------------------------------------------------------

/**
 * The PL/pgSQL nodes whose meaning is known: control flow, declarations and the statements whose
 * only effect is the SQL they embed (every `PLpgSQL_expr` anywhere below them is judged). Anything
 * else makes the body unreadable.
 */
const KNOWN_NODES = new Set([
  'PLpgSQL_function',
  'PLpgSQL_alias',
  'PLpgSQL_var',
  'PLpgSQL_rec',
  'PLpgSQL_row',
  'PLpgSQL_recfield',
  'PLpgSQL_type',
  'PLpgSQL_expr',
  'PLpgSQL_stmt_block',
  'PLpgSQL_exception_block',
  'PLpgSQL_exception',
  'PLpgSQL_condition',
  'PLpgSQL_stmt_assign',
  'PLpgSQL_stmt_if',
  'PLpgSQL_if_elsif',
  'PLpgSQL_stmt_case',
  'PLpgSQL_case_when',
  'PLpgSQL_stmt_loop',
  'PLpgSQL_stmt_while',
  'PLpgSQL_stmt_fori',
  'PLpgSQL_stmt_fors',
  'PLpgSQL_stmt_forc',
  'PLpgSQL_stmt_foreach_a',
  'PLpgSQL_stmt_exit',
  'PLpgSQL_stmt_return',
  'PLpgSQL_stmt_return_next',
  'PLpgSQL_stmt_return_query',
  'PLpgSQL_stmt_raise',
  'PLpgSQL_raise_option',
  'PLpgSQL_stmt_assert',
  'PLpgSQL_stmt_execsql',
  'PLpgSQL_stmt_getdiag',
  'PLpgSQL_diag_item',
  'PLpgSQL_stmt_open',
  'PLpgSQL_stmt_fetch',
  'PLpgSQL_stmt_close',
  'PLpgSQL_stmt_perform',
  'PLpgSQL_stmt_call',
  'PLpgSQL_stmt_commit',
  'PLpgSQL_stmt_rollback',
])

/** Statements that run SQL text built at run time. */
const DYNAMIC_NODES: Record<string, string> = {
  PLpgSQL_stmt_dynexecute: 'EXECUTE',
  PLpgSQL_stmt_dynfors: 'FOR … IN EXECUTE',
}

/** PLpgSQL_expr.parseMode: how the expression's text is parsed (PostgreSQL's RawParseMode). */
const PARSE_DEFAULT = 0
const PARSE_EXPR = 2
const PARSE_ASSIGN = [3, 4, 5]

/** An assignment's target: a variable, a field, or an array element (`a[i]`, `r.f`, `"x".y[1:2]`). */
const ASSIGN_TARGET = /^\s*((?:"(?:[^"]|"")*"|[\p{L}_][\p{L}\p{N}_$]*)(?:\s*\.\s*(?:"(?:[^"]|"")*"|[\p{L}_][\p{L}\p{N}_$]*))*(?:\s*\[[^\]]*\])*)\s*:?=/u

/** The SQL texts a PL/pgSQL expression runs, as a client would send them. */
function exprTexts(query: string, mode: number, line: string): string[] {
  if (mode === PARSE_DEFAULT) return [query]
  if (mode === PARSE_EXPR) return [`SELECT ${query}`]
  if (PARSE_ASSIGN.includes(mode)) {
    const m = ASSIGN_TARGET.exec(query)
    if (!m) throw new Error(`unrecognised assignment ${line}`)
    const target = m[1]!
    const rest = query.slice(m[0].length)
    // A subscript is an expression of its own (`a[f()] := 1` calls f).
    return target.includes('[') ? [`SELECT ${target}`, `SELECT ${rest}`] : [`SELECT ${rest}`]
  }
  throw new Error(`unrecognised expression ${line}`)
}

/** Fields through which a PL/pgSQL statement names a variable it writes (or a record it fills). */
const TARGET_KEYS = new Set(['varno', 'dno', 't_varno', 'target', 'retvarno'])

/**
 * A CLOSE, FETCH or MOVE of a cursor variable that may hold the name of a portal the function did
 * not open: a parameter, a variable with a default, or one something assigns. Closing a client's
 * cursor and opening another under its name would leave the tunnel judging and masking the
 * client's FETCH by the old query (docs/tunnel.md). Reading one runs the client's cursor query out
 * of the tunnel's sight: it was judged when the client opened it, and another session's change
 * committed since would run under it (docs/policy.md, a commit waits for the other sessions). A
 * variable that starts out null and is only ever OPENed gets a portal name the server makes up,
 * which no client's cursor has; using that one is harmless.
 */
function usesForeignCursor(tree: unknown): string | undefined {
  const fn = (((tree as Obj | undefined)?.plpgsql_funcs as unknown[] | undefined)?.[0] as Obj | undefined)?.PLpgSQL_function
  if (!isObj(fn)) return undefined
  const datums = Array.isArray(fn.datums) ? fn.datums : []
  // Parameters come first, then FOUND: anything before it was passed in by the caller. (A write to
  // datum 0, whose `varno` the tree leaves out, is to a parameter or FOUND, neither of which passes.)
  const found = datums.findIndex((d) => isObj(d) && isObj(d.PLpgSQL_var) && d.PLpgSQL_var.refname === 'found')
  const written = new Set<number>()
  const used: {varno: number; line: unknown; verb: string}[] = []
  const scan = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(scan)
    if (!isObj(v)) return
    // The tree leaves out fields that are zero: a CLOSE or FETCH without `curvar` uses datum 0.
    const use = isObj(v.PLpgSQL_stmt_close) ? {node: v.PLpgSQL_stmt_close, verb: 'closes'} : isObj(v.PLpgSQL_stmt_fetch) ? {node: v.PLpgSQL_stmt_fetch, verb: v.PLpgSQL_stmt_fetch.is_move === true ? 'moves' : 'fetches from'} : undefined
    if (use) used.push({varno: typeof use.node.curvar === 'number' ? use.node.curvar : 0, line: use.node.lineno, verb: use.verb})
    for (const [k, x] of Object.entries(v)) {
      if (TARGET_KEYS.has(k) && typeof x === 'number') written.add(x)
      scan(x)
    }
  }
  scan(fn)
  for (const {varno, line, verb} of used) {
    const d = datums[varno]
    const v = isObj(d) && isObj(d.PLpgSQL_var) ? d.PLpgSQL_var : undefined
    if (!v || found < 0 || varno <= found || v.default_val !== undefined || written.has(varno)) {
      return verb === 'closes'
        ? `closes a cursor at line ${String(line)} that may be one the client opened (a parameter, or a variable given a name), which would let a cursor of the same name be redefined behind the tunnel`
        : `${verb} a cursor at line ${String(line)} that may be one the client opened (a parameter, or a variable given a name), which runs that cursor's query out of the tunnel's sight, with whatever another session changed since it was opened`
    }
  }
  return undefined
}

/** The function's body as the server compiles it (pg_proc.prosrc): the `AS` string of its definition. */
function bodyText(definition: string): string {
  const parsed = parseSql(definition)
  if (!parsed.ok) throw new Error(parsed.error)
  const create = parsed.statements[0]?.CreateFunctionStmt
  const options = isObj(create) && Array.isArray(create.options) ? create.options : []
  for (const o of options) {
    const def = isObj(o) && isObj(o.DefElem) ? o.DefElem : undefined
    if (def?.defname !== 'as' || !isObj(def.arg) || !isObj(def.arg.List)) continue
    const first = (def.arg.List.items as unknown[] | undefined)?.[0]
    if (isObj(first) && isObj(first.String) && typeof first.String.sval === 'string') return first.String.sval
  }
  throw new Error('its definition has no body')
}

/** An identifier token's name as PL/pgSQL stores it: a quoted one as written, any other folded to lower case. */
function tokenName(t: ScanToken): string {
  return t.text.startsWith('"') ? t.text.slice(1, -1).replace(/""/g, '"') : t.text.toLowerCase()
}

/**
 * The defaults of the variables libpg_query's PL/pgSQL tree shows as records. Its parser has no
 * catalog: a variable of a type it does not know (a domain, an enum, a table's row type, `record`)
 * becomes a record, and a record's default is left out of the tree; PL/pgSQL evaluates it, as
 * `SELECT <default>`, each time the block is entered (`d my_domain := nextval('s')`). So the
 * default is read back from the declaration's own tokens: from the variable's name, on the line
 * the tree gives, to the `;` that ends the declaration (PL/pgSQL reads it so, nesting included).
 * A declared record whose name is not on its line makes the body unreadable.
 */
function recordDefaults(definition: string, datums: readonly unknown[]): string[] {
  const declared = datums.flatMap((d) => (isObj(d) && isObj(d.PLpgSQL_rec) && typeof d.PLpgSQL_rec.lineno === 'number' && typeof d.PLpgSQL_rec.refname === 'string' ? [d.PLpgSQL_rec] : []))
  if (declared.length === 0) return []
  const body = bodyText(definition)
  const tokens = scanTokens(body)
  // PL/pgSQL numbers lines from the body's start, counting newlines.
  const lineOf: number[] = []
  let line = 1
  let at = 0
  for (const t of tokens) {
    for (; at < t.start; at++) if (body.charCodeAt(at) === 10) line++
    lineOf.push(line)
  }
  const texts: string[] = []
  for (const rec of declared) {
    const starts = tokens.flatMap((t, i) => (lineOf[i] === rec.lineno && tokenName(t) === rec.refname ? [i] : []))
    if (starts.length === 0) throw new Error(`cannot find the declaration of ${String(rec.refname)} at line ${String(rec.lineno)}`)
    for (const start of starts) {
      let depth = 0
      let value: number | undefined
      for (let i = start + 1; i < tokens.length && depth >= 0; i++) {
        const text = tokens[i]!.text
        if (text === '(' || text === '[') depth++
        else if (text === ')' || text === ']') depth--
        else if (depth > 0) continue
        else if (text === ';') {
          if (value !== undefined) texts.push(`SELECT ${body.slice(tokens[value]!.start, tokens[i]!.start)}`)
          break
        } else if (value === undefined && (text === ':=' || text === '=' || text.toLowerCase() === 'default')) value = i + 1
      }
    }
  }
  return texts
}

function plpgsqlBody(definition: string | undefined, config: readonly string[] | undefined): FunctionBody {
  if (definition === undefined) return unreadable('has no definition in the catalog')
  const tree = parsePlpgsql(definition)
  const fn = (((tree as Obj | undefined)?.plpgsql_funcs as unknown[] | undefined)?.[0] as Obj | undefined)?.PLpgSQL_function
  const datums = isObj(fn) && Array.isArray(fn.datums) ? fn.datums : []
  // Its queries reach its variables as parameters (a trigger's `WHERE id = OLD.id` picks one row),
  // each query those in scope where it is (after `FOR id IN …` ends, `id` is a column again).
  const wide = columnsWin(definition, config) ? undefined : variableNames(datums, outerNames(definition))
  const records = recordNames(datums)
  const texts: {text: string; scope: ReadonlySet<string>}[] = []
  let dynamic: string | undefined
  let unknown: string | undefined
  const visit = (v: unknown, line: string, scope: ReadonlySet<string>, parent?: string): void => {
    if (unknown) return
    if (Array.isArray(v)) {
      for (const x of v) visit(x, line, scope)
      return
    }
    if (!isObj(v)) return
    for (const [key, value] of Object.entries(v)) {
      if (!key.startsWith('PLpgSQL_')) {
        if (key === 'dynquery' && value !== undefined) dynamic ??= `EXECUTE ${line}`
        visit(value, line, parent && wide ? scopeOf(parent, v, key, scope) : scope)
        continue
      }
      if (!isObj(value)) {
        unknown = `${key} ${line}`
        return
      }
      const at = typeof value.lineno === 'number' ? `at line ${value.lineno}` : line
      if (key in DYNAMIC_NODES) {
        dynamic ??= `${DYNAMIC_NODES[key]} ${at}`
        visit(value, at, scope, key)
        continue
      }
      if (!KNOWN_NODES.has(key)) {
        unknown = `a PL/pgSQL ${key.slice('PLpgSQL_'.length)} node ${at}`
        return
      }
      if (key === 'PLpgSQL_expr') {
        if (typeof value.query !== 'string') {
          unknown = `an expression without text ${at}`
          return
        }
        texts.push(...exprTexts(value.query, typeof value.parseMode === 'number' ? value.parseMode : PARSE_DEFAULT, at).map((text) => ({text, scope})))
        continue
      }
      if (key === 'PLpgSQL_type' && typeof value.typname === 'string') {
        // A variable of a domain type runs the domain's checks on every assignment. `t%ROWTYPE` is
        // t's row type, and `t.c%TYPE` is judged as t's too (its columns' domains included).
        const m = /^(.*?)(%rowtype|%type)$/i.exec(value.typname)
        const type = !m ? value.typname : m[2]!.toLowerCase() === '%rowtype' ? m[1]! : m[1]!.replace(/\.[^.]*$/, '')
        if (type !== '') texts.push({text: `SELECT NULL::${type}`, scope})
      }
      visit(value, at, scope, key)
    }
  }
  const functionScope: ReadonlySet<string> = wide ?? new Set()
  visit((tree as Obj | undefined)?.plpgsql_funcs, '', functionScope)
  if (unknown) return unreadable(`has ${unknown} in its body, which dbgate does not know`)
  texts.push(...recordDefaults(definition, datums).map((text) => ({text, scope: functionScope})))
  const over = tooMany(texts.length)
  if (over) return over
  const foreign = usesForeignCursor(tree)
  if (foreign) return unreadable(foreign)
  const statements: StatementAnalysis[] = []
  for (const {text, scope} of texts) {
    const {statements: analysed} = analyze(text, wide ? {variables: scope, records} : {})
    const failed = analysed.find((s) => s.error !== undefined)
    if (failed) return unreadable(`has a statement in its body dbgate could not analyse (${failed.error}: ${text.slice(0, 200)})`)
    for (const s of analysed) statements.push({...s, index: statements.length})
  }
  return done(statements, dynamic)
}

/** The names the outermost block of the body of `definition` declares; none when its tokens cannot be read. */
function outerNames(definition: string): Set<string> {
  try {
    return outerDeclarations(scanTokens(bodyText(definition)))
  } catch {
    return new Set()
  }
}

/**
 * A rule on a write, from its definition (`pg_get_ruledef`): its actions, analysed as statements of
 * the write that fires them (a `DO ALSO DELETE FROM accounts` on an INSERT empties accounts).
 */
export function readRuleBody(definition: string): FunctionBody {
  const over = tooLong(definition)
  if (over) return over
  const {statements} = analyze(definition)
  const failed = statements.find((s) => s.error !== undefined)
  if (failed || statements.length !== 1) return unreadable(`has a definition dbgate could not analyse${failed ? ` (${failed.error})` : ''}`)
  // The CREATE RULE itself is no part of what the rule runs: its actions are.
  const actions = statements[0]!.operations.filter((o) => o.command !== 'create_rule')
  return done([{...statements[0]!, operations: actions}])
}

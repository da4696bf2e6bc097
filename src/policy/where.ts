/**
 * Decides whether the WHERE of an UPDATE or DELETE (or a MERGE action's condition) picks rows,
 * by proof: a condition counts as filtering only when dbgate can show a row it does not touch.
 *
 * How. The condition is compiled to a small boolean model whose atoms are comparisons of a column
 * of the target row with something that is not a function of that row: a constant, a parameter,
 * another relation's column, an uncorrelated subquery. Everything else (functions and arithmetic
 * on a column, comparisons of the row with itself, CASE, COALESCE and IS NOT NULL of predicates,
 * system columns, the whole row, correlated subqueries, columns whose table cannot be told) is
 * opaque: it may be true for every row. Then dbgate looks for a witness: values for the columns
 * under which the condition is certainly not true whatever the opaque parts are. Found: `filtered`.
 * Not found: `trivial`.
 *
 * The line, exactly (docs/policy.md repeats it):
 * - Comparisons with values the caller or the data supplies count: `id > 0`, `id = $1`,
 *   `user_id IN (SELECT b.user_id FROM banned b)`, `o.user_id = u.id` all filter, even when the
 *   data makes them hold for every row (the value-based limit).
 * - A parameter or another relation's value is an arbitrary but fixed value: `x = $1` filters,
 *   `x = $1 OR x <> $1` does not, and neither does `x < $1 OR x > $2` (the caller could pick $2 < $1).
 *   It may be NULL: `(x = $1) IS NOT TRUE` and `coalesce(x = $1, true)` do not filter.
 * - Strings compare by equality only (their order depends on the collation).
 * - Numbers are tried as integers only (the column may be an integer type: `id <= 1 OR id >= 2`
 *   holds for every row), and a literal a double does not hold exactly is a value not known.
 * - Unqualified columns count as the target's only where nothing else is in scope: with USING or
 *   FROM, and inside subqueries that have a FROM of their own, they could belong to either, so
 *   they prove nothing, unless the text names every column of that FROM (a CTE's or subquery's
 *   output names, an alias's column list: `ColumnList`).
 * - A comparison with the same column of the same table (a self-join, `id IN (SELECT t2.id FROM t t2)`)
 *   is an identity, unless the other side is itself filtered.
 * - A condition that is constantly false or null touches no row and counts as filtered.
 */
import {outputColumnNames} from '../sql/output-names.js'
import {isObj, list, names, str, unwrap, type Obj} from '../sql/tree.js'
import type {WhereKind} from './types.js'
import {builtinCandidates, isBuiltinOperator, isBuiltinType} from './builtins.js'

// ---- three-valued sets ---------------------------------------------------------------------------

/** A set of possible truth values: bit 1 TRUE, 2 FALSE, 4 NULL. */
type VSet = number
const T = 1
const F = 2
const N = 4
const ANY = T | F | N

function each(s: VSet, fn: (v: number) => VSet): VSet {
  let out = 0
  for (const v of [T, F, N]) if (s & v) out |= fn(v)
  return out
}

const not3 = (v: number): VSet => (v === T ? F : v === F ? T : N)
const and3 = (a: number, b: number): VSet => (a === F || b === F ? F : a === N || b === N ? N : T)
const or3 = (a: number, b: number): VSet => (a === T || b === T ? T : a === N || b === N ? N : F)

function combine(a: VSet, b: VSet, op: (x: number, y: number) => VSet): VSet {
  return each(a, (x) => each(b, (y) => op(x, y)))
}

// ---- the model -----------------------------------------------------------------------------------

type Scalar = boolean | number | string | null
/**
 * A value the condition compares a column with. `sym` stands for an arbitrary fixed value (a
 * parameter, another row's column). `rows`: it reads a relation the statement joins (USING, FROM,
 * MERGE's source), so it is one value per joined row, and a row of the target is touched when
 * the condition holds with any of them: `DELETE FROM t USING o WHERE t.id <> o.k` deletes every
 * row once `o` holds two keys, so no row can be shown equal to "the" value.
 */
type Val = {k: 'num'; n: number} | {k: 'str'; s: string} | {k: 'bool'; b: boolean} | {k: 'null'} | {k: 'sym'; id: string; rows?: true}
type CmpOp = '=' | '<>' | '<' | '<=' | '>' | '>='

type Node =
  | {k: 'const'; v: VSet}
  | {k: 'and' | 'or'; parts: Node[]}
  | {k: 'not'; part: Node}
  | {k: 'test'; part: Node; test: string}
  | {k: 'case'; whens: [Node, Node][]; otherwise: Node}
  | {k: 'coalesce'; parts: Node[]}
  /**
   * `q`: the value is a set the comparison is quantified over (`= ANY(S)`, `< ALL(S)`, an EXISTS
   * partner's column); the witness `eq` is then one of its members, the others unknown.
   */
  | {k: 'cmp'; col: string; op: CmpOp; v: Val; q?: 'any' | 'all'}
  | {k: 'in'; col: string; values: Val[]; negated: boolean}
  | {k: 'distinct'; col: string; v: Val; not: boolean}
  | {k: 'null'; col: string; isNull: boolean}
  /**
   * `re` is the pattern read into JavaScript; `loose` the same pattern over `looseText`, for what a
   * nondeterministic collation may match too (PostgreSQL 18 runs LIKE under one); `fold` a
   * regular expression or SIMILAR TO ignoring case (citext's `~` does); `plain` that the pattern
   * is ASCII. `sym` a pattern the caller or the data supplies.
   */
  | {k: 'like'; col: string; re: RegExp | undefined; loose?: RegExp; fold?: RegExp; plain?: boolean; example?: string; sym?: string; rows?: true; negated: boolean}
  /** `exact`: the correlation is the subquery's only condition, so a partner row exists exactly when it holds. */
  | {k: 'exists'; corr: Node; exact: boolean}

const OPAQUE: Node = {k: 'const', v: ANY}
const CONST_T: Node = {k: 'const', v: T}

/** Witness values a column can take. `rel` is a value placed against a symbol; `fresh` equals nothing named. */
type W = {k: 'num'; n: number} | {k: 'str'; s: string} | {k: 'bool'; b: boolean} | {k: 'null'} | {k: 'rel'; id: string; rel: 'lt' | 'eq' | 'gt'} | {k: 'fresh'}

/** The row a cursor is on (`WHERE CURRENT OF c`): never NULL (an unpositioned cursor is an error). */
const CURSOR = 'cursor'

const SYSTEM_COLUMNS = new Set(['ctid', 'xmin', 'xmax', 'cmin', 'cmax', 'tableoid'])
/**
 * System columns whose values the server assigns from transactions and commands: most rows share
 * a few (`xmax = 0` holds for every row no one has locked or deleted, `cmin = 0` for every row
 * its transaction's first command wrote), so a comparison with one picks no row out.
 */
const TRANSACTION_COLUMNS = new Set(['xmin', 'xmax', 'cmin', 'cmax'])
const COMPARISONS: Record<string, CmpOp> = {'=': '=', '<>': '<>', '!=': '<>', '<': '<', '<=': '<=', '>': '>', '>=': '>='}
const FLIP: Record<CmpOp, CmpOp> = {'=': '=', '<>': '<>', '<': '>', '<=': '>=', '>': '<', '>=': '<='}
const NEGATE: Record<CmpOp, CmpOp> = {'=': '<>', '<>': '=', '<': '>=', '<=': '>', '>': '<=', '>=': '<'}

// ---- scopes --------------------------------------------------------------------------------------

/** Another relation the condition can see: a USING / FROM item, MERGE's source, ON CONFLICT's `excluded`. */
export interface OtherRelation {
  name: string
  /** It holds rows of the target table itself (a self-join, a subquery or CTE over it). */
  sameTable: boolean
  /**
   * It is the target table named as itself, so its columns are the target's under their own names.
   * A subquery, CTE, function or view over the target may show any of its columns under any name.
   */
  exact?: true
}

export interface TargetInfo {
  /** The names the target row answers to (its alias, or its table name). */
  names: ReadonlySet<string>
  /** The target table's name, for telling self-joins. */
  relname: string
  others?: readonly OtherRelation[]
  /** The statement's CTEs by name, with whether each reads the target table (a subquery of the condition may read them). */
  ctes?: ReadonlyMap<string, boolean>
  /** The columns the statement's CTEs show (`cteColumns`), for placing a subquery's unqualified columns. */
  cteColumns?: ReadonlyMap<string, ColumnList>
  /**
   * Judge as if every relation, and every value a user's function, operator or cast computes,
   * held the target table's own rows. The catalog decides later whether this judgment is the one
   * that holds (where-basis.ts): a view, a parent table or a function body may reach the target.
   */
  suspect?: boolean
  /**
   * Judge as if every operator named without a schema were a user's (`trustedSymbol`), and every
   * `t.x` of the target a user's function `x(t)` (`rowFunction`): the catalog decides later whether
   * one of the condition's symbols or names is (where-basis.ts).
   */
  userCode?: boolean
}

/** A subquery level between the condition and a column reference. */
interface Scope {
  /** Names of the subquery's FROM items, with whether each holds rows of the target table. */
  names: Map<string, boolean>
  /** The FROM items that are the target table named as itself (`OtherRelation.exact`). */
  exact: Set<string>
  hasFrom: boolean
  /** What the statement's text tells of the columns each FROM item (a join's members one by one) shows. */
  columns: ReadonlyArray<{known: ColumnList; sameTable: boolean}>
  /** The CTEs in scope at this level (its own WITH and every enclosing one), as `TargetInfo.ctes` and `cteColumns`. */
  ctes: ReadonlyMap<string, boolean>
  cteColumns: ReadonlyMap<string, ColumnList>
}

/**
 * The columns a relation shows, in order, as far as the statement's text tells them: a CTE's or a
 * subquery's output names, an alias's column list. A name dbgate cannot tell is undefined; `more`
 * when columns past these may exist (`SELECT *`, a table: a table's columns are the catalog's).
 */
export interface ColumnList {
  names: ReadonlyArray<string | undefined>
  more: boolean
}

const UNKNOWN_COLUMNS: ColumnList = {names: [], more: true}

/** A relation's columns once an alias's column list renames the first of them. */
function renamed(base: ColumnList, alias: unknown): ColumnList {
  const given = strings(isObj(alias) ? alias.colnames : undefined)
  // More alias names than columns is an error: nothing runs.
  const names = Array.from({length: Math.max(given.length, base.names.length)}, (_, i) => given[i] ?? base.names[i])
  return {names, more: base.more}
}

function outputColumns(query: unknown): ColumnList {
  const names = outputColumnNames(query)
  return names ? {names, more: false} : UNKNOWN_COLUMNS
}

/** Whether `col` is certainly one of the columns, or certainly not; undefined when the text cannot tell. */
function showsColumn(columns: ColumnList, col: string): boolean | undefined {
  if (columns.names.includes(col)) return true
  return columns.more || columns.names.includes(undefined) ? undefined : false
}

/** The columns each CTE of a WITH clause shows, seen from where `outer` CTEs are in scope too. */
export function cteColumns(withClause: unknown, outer: ReadonlyMap<string, ColumnList> = new Map()): Map<string, ColumnList> {
  const out = new Map(outer)
  if (!isObj(withClause)) return out
  for (const c of list(withClause.ctes)) {
    const u = unwrap(c)
    if (u?.[0] !== 'CommonTableExpr') continue
    const named = renamed(outputColumns(u[1].ctequery), {colnames: u[1].aliascolnames})
    // SEARCH and CYCLE add columns of their own.
    out.set(str(u[1].ctename) ?? '', u[1].search_clause || u[1].cycle_clause ? {...named, more: true} : named)
  }
  return out
}

/**
 * The columns the FROM items of one query level show to an unqualified name, one entry per
 * relation (a join's members each), with whether it holds the target's rows. A join under an
 * alias of its own, a function and a table sampled are what the text cannot tell.
 */
function visibleColumns(items: unknown, relname: string, ctes: ReadonlyMap<string, boolean>, columns: ReadonlyMap<string, ColumnList>, suspect: boolean): Array<{known: ColumnList; sameTable: boolean}> {
  const out: Array<{known: ColumnList; sameTable: boolean}> = []
  const visit = (item: unknown): void => {
    const u = unwrap(item)
    const [type, body] = u ?? (isObj(item) && typeof item.relname === 'string' ? ['RangeVar', item] : [undefined, undefined])
    if (!type || !body) return
    switch (type) {
      case 'RangeVar': {
        const rel = str(body.relname) ?? ''
        const cte = !str(body.schemaname) ? ctes.get(rel) : undefined
        const base = (cte !== undefined ? columns.get(rel) : undefined) ?? UNKNOWN_COLUMNS
        out.push({known: renamed(base, body.alias), sameTable: cte ?? (suspect || rel === relname)})
        return
      }
      case 'RangeSubselect':
        out.push({known: renamed(outputColumns(body.subquery), body.alias), sameTable: holdsRows(body, relname, suspect)})
        return
      case 'JoinExpr':
        if (isObj(body.alias)) {
          out.push({known: UNKNOWN_COLUMNS, sameTable: holdsRows(body, relname, suspect)})
          return
        }
        visit(body.larg)
        visit(body.rarg)
        return
      default:
        out.push({known: UNKNOWN_COLUMNS, sameTable: holdsRows(body, relname, suspect)})
    }
  }
  for (const i of list(items)) visit(i)
  return out
}

type Ref =
  | {k: 'target'; col: string}
  | {k: 'whole'}
  | {k: 'other'; col: string; sameTable: boolean}
  | {k: 'inner'; col: string; sameTable: boolean}
  | {k: 'ambiguous'}

function strings(v: unknown): string[] {
  return list(v).map((item) => {
    const u = unwrap(item)
    return u && u[0] === 'String' && typeof u[1].sval === 'string' ? u[1].sval : '*'
  })
}

/** Structural key of an expression, without source positions: `$1` here and `$1` there are one value. */
function keyOf(node: unknown): string {
  return JSON.stringify(node, (k, v: unknown) => (k === 'location' ? undefined : v))
}

/** Whether `node` (any depth) reads table `relname` (by name, in any schema). */
export function readsTable(node: unknown, relname: string): boolean {
  if (Array.isArray(node)) return node.some((n) => readsTable(n, relname))
  if (!isObj(node)) return false
  if (typeof node.relname === 'string' && 'relpersistence' in node && node.relname === relname) return true
  return Object.values(node).some((v) => readsTable(v, relname))
}

/**
 * Whether `node` reads any relation, or computes a value with a function, operator or cast that
 * is not built in: what the catalog may show to hold the target's rows (`TargetInfo.suspect`).
 */
export function readsAnything(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(readsAnything)
  if (!isObj(node)) return false
  if (typeof node.relname === 'string' && 'relpersistence' in node) return true
  const u = unwrap(node)
  if (u && userCode(u[0], u[1])) return true
  return Object.values(node).some(readsAnything)
}

function userCode(type: string, body: Obj): boolean {
  switch (type) {
    case 'FuncCall': {
      const parts = names(body.funcname)
      const schema = parts.length >= 2 ? parts[parts.length - 2] : undefined
      return (schema !== undefined && schema !== 'pg_catalog') || builtinCandidates(parts.at(-1) ?? '') === undefined
    }
    case 'A_Expr': {
      const parts = strings(body.name)
      return parts.length > 1 ? parts[0] !== 'pg_catalog' : !isBuiltinOperator(parts[0] ?? '')
    }
    case 'TypeCast': {
      const parts = names(isObj(body.typeName) ? body.typeName.names : undefined)
      return parts.length > 1 ? parts[0] !== 'pg_catalog' : !isBuiltinType(parts[0] ?? '')
    }
    default:
      return false
  }
}

/** Whether `node` holds rows of the target: reads it by name, or, judged as `suspect`, reads anything. */
export function holdsRows(node: unknown, relname: string, suspect = false): boolean {
  return suspect ? readsAnything(node) : readsTable(node, relname)
}

/** FROM items as (name, holds rows of `relname`) pairs; joins contribute their members. */
export function fromItems(items: unknown, relname: string, ctes: ReadonlyMap<string, boolean> = new Map(), suspect = false): OtherRelation[] {
  const out: OtherRelation[] = []
  const visit = (item: unknown): void => {
    const u = unwrap(item)
    const [type, body] = u ?? (isObj(item) && typeof item.relname === 'string' ? ['RangeVar', item] : [undefined, undefined])
    if (!type || !body) return
    const alias = isObj(body.alias) ? str(body.alias.aliasname) : undefined
    switch (type) {
      case 'RangeVar': {
        const rel = str(body.relname) ?? ''
        const cte = !str(body.schemaname) ? ctes.get(rel) : undefined
        const same = cte ?? (suspect || rel === relname)
        out.push({name: alias ?? rel, sameTable: same || rel === relname, ...(cte === undefined && rel === relname ? {exact: true as const} : {})})
        return
      }
      case 'RangeSubselect':
      case 'RangeFunction':
      case 'RangeTableFunc':
        if (alias) out.push({name: alias, sameTable: holdsRows(body, relname, suspect)})
        return
      case 'JoinExpr':
        visit(body.larg)
        visit(body.rarg)
        if (alias) out.push({name: alias, sameTable: holdsRows(body, relname, suspect)})
        return
      default:
        return
    }
  }
  for (const i of list(items)) visit(i)
  return out
}

/** Which CTE names (of a WITH clause) hold rows of `relname`. */
export function cteSources(withClause: unknown, relname: string, suspect = false): Map<string, boolean> {
  const out = new Map<string, boolean>()
  if (!isObj(withClause)) return out
  for (const c of list(withClause.ctes)) {
    const u = unwrap(c)
    if (u && u[0] === 'CommonTableExpr') out.set(str(u[1].ctename) ?? '', holdsRows(u[1].ctequery, relname, suspect))
  }
  return out
}

// ---- compiling a condition -----------------------------------------------------------------------

/**
 * The symbol of an operator the proof may read as the built-in one, or undefined. An operator
 * named with a schema other than pg_catalog is a user's, whatever its symbol
 * (`id OPERATOR(public.=) 5`). One named without a schema may be a user's too: PostgreSQL picks an
 * exact match of the argument types over the built-in operator it would reach by a cast, so a
 * user's `=(int4, numeric)` is what `id = 5.0` runs, and it may be true for every row. A judgment
 * with `distrust` (`TargetInfo.userCode`) takes it for a user's; the catalog decides (where-basis.ts).
 * BETWEEN, IN and IS DISTINCT FROM run such operators by name as well.
 */
function trustedSymbol(nameList: unknown, distrust: boolean): string | undefined {
  const parts = strings(nameList)
  if (parts.length > 1) return parts[0] === 'pg_catalog' ? parts.at(-1) : undefined
  return distrust ? undefined : parts[0]
}

/** Argument types a whole row can be passed to. */
const ROW_ARGUMENTS = new Set(['record', 'anyelement', 'anynonarray', 'anycompatible', 'anycompatiblenonarray', '"any"'])

/**
 * Whether `t.x` may be a built-in function of the row rather than a column: PostgreSQL reads
 * `t.x` as `x(t)` when `t` has no column `x` (attribute notation), so `t.to_json IS NOT NULL` is
 * true for every row. dbgate does not know the target's columns; a user's function by that name
 * is the catalog's to show (where-basis.ts).
 */
function rowFunction(name: string): boolean {
  return (builtinCandidates(name) ?? []).some((c) => c.kind === 'f' && c.nargs >= 1 && c.nargs - c.ndefaults <= 1 && ROW_ARGUMENTS.has((c.args ?? '').split(',')[0]!.trim()))
}

/**
 * The operator symbols, named without a schema, that the proof of these conditions may read as
 * built-in comparisons or arithmetic (BETWEEN as `>=` and `<=`; `IN (SELECT …)` as `=`), and the
 * names it reads as columns of a qualified reference (`t.x`): what where-basis.ts looks up in the
 * target's catalog for a user's operator of the same symbol, or a user's function of that name.
 */
export function conditionUserCode(conditions: readonly unknown[]): {operators: string[]; attributes: string[]} {
  const out = new Set<string>()
  const attributes = new Set<string>()
  const visit = (n: unknown): void => {
    if (Array.isArray(n)) {
      for (const x of n) visit(x)
      return
    }
    if (!isObj(n)) return
    const u = unwrap(n)
    if (u?.[0] === 'A_Expr') {
      const parts = strings(u[1].name)
      if (String(u[1].kind).includes('BETWEEN')) {
        out.add('>=')
        out.add('<=')
      } else if (parts.length === 1) out.add(parts[0]!)
    } else if (u?.[0] === 'SubLink') {
      const parts = u[1].operName === undefined ? ['='] : strings(u[1].operName)
      if (parts.length === 1) out.add(parts[0]!)
    } else if (u?.[0] === 'ColumnRef') {
      const parts = strings(u[1].fields)
      if (parts.length > 1 && parts.at(-1) !== '*') attributes.add(parts.at(-1)!)
    }
    for (const v of Object.values(n)) visit(v)
  }
  for (const c of conditions) visit(c)
  return {operators: [...out], attributes: [...attributes]}
}

class Compiler {
  private readonly others: Map<string, boolean>
  private readonly exactOthers: Set<string>

  constructor(private readonly target: TargetInfo) {
    this.others = new Map((target.others ?? []).map((o) => [o.name, o.sameTable]))
    this.exactOthers = new Set((target.others ?? []).filter((o) => o.exact).map((o) => o.name))
  }

  /**
   * Whether the relation a qualified column reference names is the target table named as itself,
   * whose columns are the target's under their own names (`OtherRelation.exact`).
   */
  exactCopy(qual: string, scopes: readonly Scope[]): boolean {
    for (let i = scopes.length - 1; i >= 0; i--) if (scopes[i]!.names.has(qual)) return scopes[i]!.exact.has(qual)
    return this.exactOthers.has(qual)
  }

  /** Where a column reference points, seen from inside `scopes` (innermost last). */
  resolve(fields: unknown, scopes: readonly Scope[]): Ref {
    const parts = strings(fields)
    const col = parts.at(-1) ?? '*'
    if (parts.length === 1) {
      // `SELECT *` in a subquery is its own FROM's columns, never the outer row's.
      if (col === '*' && scopes.length > 0) {
        const inner = scopes[scopes.length - 1]!
        return [...inner.names.values()].some((same) => same) ? {k: 'ambiguous'} : {k: 'inner', col, sameTable: false}
      }
      // PostgreSQL places a name in the innermost query level that has such a column.
      for (let i = scopes.length - 1; i >= 0; i--) {
        const level = scopes[i]!
        if (!level.hasFrom) continue
        const shown = level.columns.map((c) => showsColumn(c.known, col))
        if (shown.includes(true)) return {k: 'inner', col, sameTable: level.columns.some((c, j) => shown[j] === true && c.sameTable)}
        if (shown.includes(undefined)) return {k: 'ambiguous'}
      }
      if (this.others.size > 0) return {k: 'ambiguous'}
      // A bare name that is the target's own name is the whole row (when no column shadows it).
      if (this.target.names.has(col)) return {k: 'whole'}
      return {k: 'target', col}
    }
    const qual = parts[parts.length - 2]!
    for (let i = scopes.length - 1; i >= 0; i--) {
      const same = scopes[i]!.names.get(qual)
      if (same !== undefined) return {k: 'inner', col, sameTable: same}
    }
    const other = this.others.get(qual)
    if (other !== undefined) return {k: 'other', col, sameTable: other}
    if (this.target.names.has(qual)) {
      if (col === '*') return {k: 'whole'}
      // `t.x` may call a function of the whole row (attribute notation), which may be anything.
      if (this.target.userCode || rowFunction(col)) return {k: 'ambiguous'}
      return {k: 'target', col}
    }
    return {k: 'ambiguous'}
  }

  /**
   * Whether `node` depends on nothing of the target row: `no` it does not (a constant, a parameter,
   * another relation, an uncorrelated subquery), `yes` or `maybe` it does or may.
   */
  dependence(node: unknown, scopes: readonly Scope[]): 'no' | 'yes' | 'maybe' {
    let result: 'no' | 'yes' | 'maybe' = 'no'
    const visit = (n: unknown, sc: readonly Scope[]): void => {
      if (result === 'yes') return
      if (Array.isArray(n)) {
        for (const x of n) visit(x, sc)
        return
      }
      if (!isObj(n)) return
      const u = unwrap(n)
      if (u) {
        const [type, body] = u
        if (type === 'ColumnRef') {
          const r = this.resolve(body.fields, sc)
          if (r.k === 'target' || r.k === 'whole') result = 'yes'
          else if (r.k === 'ambiguous' && result === 'no') result = 'maybe'
          return
        }
        if (type === 'CurrentOfExpr') {
          result = 'yes'
          return
        }
        if (type === 'SelectStmt') {
          visit(body, [...sc, this.scopeOf(body, sc)])
          return
        }
        visit(body, sc)
        return
      }
      for (const v of Object.values(n)) visit(v, sc)
    }
    visit(node, scopes)
    return result
  }

  /** The names a SELECT's FROM brings into scope, seen from inside `outer` (innermost last): a WITH of an enclosing level is in scope too. */
  scopeOf(select: Obj, outer: readonly Scope[]): Scope {
    const suspect = this.target.suspect === true
    const enclosing = outer.at(-1)
    const ctes = new Map([...(enclosing?.ctes ?? this.target.ctes ?? []), ...cteSources(select.withClause, this.target.relname, suspect)])
    const columnsOfCtes = cteColumns(select.withClause, enclosing?.cteColumns ?? this.target.cteColumns)
    const items = fromItems(select.fromClause, this.target.relname, ctes, suspect)
    const columns = visibleColumns(select.fromClause, this.target.relname, ctes, columnsOfCtes, suspect)
    return {names: new Map(items.map((i) => [i.name, i.sameTable])), exact: new Set(items.filter((i) => i.exact).map((i) => i.name)), hasFrom: list(select.fromClause).length > 0, columns, ctes, cteColumns: columnsOfCtes}
  }

  /**
   * A column of the target as a plain reference (COLLATE keeps it the column).
   * Not `tableoid`: it is the same for every row of a table (only partitions and inheritance
   * children differ, which dbgate cannot see), so `tableoid = 'users'::regclass` picks no row out.
   * Nor the transaction and command ids (`TRANSACTION_COLUMNS`). `ctid` is, with the positions
   * a row can have (`possibleTid`).
   */
  targetColumn(node: unknown, scopes: readonly Scope[]): string | undefined {
    const u = unwrap(node)
    if (!u) return undefined
    if (u[0] === 'ColumnRef') {
      const r = this.resolve(u[1].fields, scopes)
      return r.k === 'target' && r.col !== '*' && r.col !== 'tableoid' && !TRANSACTION_COLUMNS.has(r.col) ? r.col : undefined
    }
    // Under another collation it is still the same value: `name COLLATE "C" = 'a' OR name <> 'a'`
    // holds for every row of a column whose own collation is deterministic. Strings that a
    // collation may take for one are not told apart (`relate`).
    if (u[0] === 'CollateClause') return this.targetColumn(u[1].arg, scopes)
    return undefined
  }

  /** The value an independent expression stands for. */
  value(node: unknown, scopes: readonly Scope[]): Val {
    const c = constant(node, this.target.userCode)
    if (c === undefined) return {k: 'sym', id: keyOf(node), ...(this.readsJoined(node, scopes) ? {rows: true as const} : {})}
    if (c === null) return {k: 'null'}
    if (typeof c === 'number') return {k: 'num', n: c}
    if (typeof c === 'boolean') return {k: 'bool', b: c}
    return {k: 'str', s: c}
  }

  /** Whether `node` reads a column of a relation the statement joins (`Val.rows`). */
  readsJoined(node: unknown, scopes: readonly Scope[]): boolean {
    return this.refersTo(node, scopes, (r) => r.k === 'other')
  }

  /**
   * Whether a column reference in `node`, resolved in the scopes it sits in, passes `hit`, or the
   * FROM list of a subquery in it passes `fromHits`. A subquery's references resolve in its own
   * scope first, as the server resolves them.
   */
  refersTo(node: unknown, scopes: readonly Scope[], hit: (r: Ref) => boolean, fromHits?: (scope: Scope) => boolean): boolean {
    const visit = (n: unknown, sc: readonly Scope[]): boolean => {
      if (Array.isArray(n)) return n.some((x) => visit(x, sc))
      if (!isObj(n)) return false
      const u = unwrap(n)
      if (!u) return Object.values(n).some((v) => visit(v, sc))
      const [type, body] = u
      if (type === 'ColumnRef') return hit(this.resolve(body.fields, sc))
      if (type !== 'SelectStmt') return visit(body, sc)
      const scope = this.scopeOf(body, sc)
      return fromHits?.(scope) === true || visit(body, [...sc, scope])
    }
    return visit(node, scopes)
  }

  /**
   * `col op ANY(set)` or `ALL(set)`, the set an array or subquery the caller or the data
   * supplies: a comparison with the set's symbol, quantified (`cmpWith`). `id <> ANY($1)` and
   * `id < ANY(S) OR id > ANY(S)` hold for every row once the set has two values.
   */
  quantified(node: Node, all: boolean): Node {
    return node.k === 'cmp' && node.v.k === 'sym' ? {...node, q: all ? 'all' : 'any'} : node
  }

  /** `l op r` as a model node. */
  compare(l: unknown, op: CmpOp, r: unknown, scopes: readonly Scope[]): Node {
    const lc = this.targetColumn(l, scopes)
    const rc = this.targetColumn(r, scopes)
    if (lc !== undefined && rc === undefined && this.dependence(r, scopes) === 'no' && !this.identity(lc, r, scopes)) {
      return {k: 'cmp', col: lc, op, v: this.value(r, scopes)}
    }
    if (rc !== undefined && lc === undefined && this.dependence(l, scopes) === 'no' && !this.identity(rc, l, scopes)) {
      return {k: 'cmp', col: rc, op: FLIP[op], v: this.value(l, scopes)}
    }
    if (this.dependence(l, scopes) === 'no' && this.dependence(r, scopes) === 'no') {
      const a = constant(l, this.target.userCode)
      const b = constant(r, this.target.userCode)
      // transform_null_equals makes `NULL = NULL` true: a comparison with NULL is not a constant.
      if (a !== undefined && b !== undefined && !(op === '=' && (a === null || b === null))) return constNode(binary(op, a, b))
    }
    return OPAQUE
  }

  /**
   * `col` compared with the same column of another copy of the target table is an identity (every
   * row pairs with itself). An IN-subquery over the target is one unless its own WHERE filters.
   */
  identity(col: string, other: unknown, scopes: readonly Scope[]): boolean {
    const u = unwrap(other)
    if (u?.[0] === 'ColumnRef') {
      const r = this.resolve(u[1].fields, scopes)
      // A copy that renames (a subquery, CTE or view over the target) may show `col` under any name.
      return (r.k === 'other' || r.k === 'inner') && r.sameTable && (r.col === col || !this.exactCopy(strings(u[1].fields).at(-2) ?? '', scopes))
    }
    // Any other value computed from the target table's own rows may be every row's own value or
    // bound it: `id >= (SELECT min(t2.id) FROM t t2)`, `id = ANY(ARRAY(SELECT t2.id FROM t t2))`,
    // `t.id = t2.id + 0` with `USING t t2`. It is no value fixed apart from the row, so it proves nothing.
    return this.readsOwnRows(other, scopes)
  }

  /** Whether `node` reads the target table: a subquery over it, or a column of another copy of it. */
  readsOwnRows(node: unknown, scopes: readonly Scope[]): boolean {
    if (holdsRows(node, this.target.relname, this.target.suspect)) return true
    return this.refersTo(
      node,
      scopes,
      (r) => (r.k === 'other' || r.k === 'inner') && r.sameTable,
      // A FROM item over the target (a CTE of the subquery's own WITH included) reads its rows.
      (scope) => [...scope.names.values()].some((same) => same),
    )
  }

  compile(node: unknown, scopes: readonly Scope[] = []): Node {
    const c = constant(node, this.target.userCode)
    if (c !== undefined) return constNode(c === null ? null : toBool(c) ?? undefined)
    const u = unwrap(node)
    if (!u) return OPAQUE
    const [type, body] = u
    switch (type) {
      case 'BoolExpr': {
        const parts = list(body.args).map((a) => this.compile(a, scopes))
        if (body.boolop === 'NOT_EXPR') return {k: 'not', part: parts[0] ?? OPAQUE}
        return {k: body.boolop === 'OR_EXPR' ? 'or' : 'and', parts}
      }
      case 'ColumnRef': {
        const col = this.targetColumn(node, scopes)
        return col !== undefined ? {k: 'cmp', col, op: '=', v: {k: 'bool', b: true}} : OPAQUE
      }
      case 'TypeCast':
        // A cast to boolean of a predicate is the predicate; any other cast is opaque.
        return isBoolType(body.typeName) ? this.compile(body.arg, scopes) : OPAQUE
      case 'A_Expr':
        return this.aExpr(body, scopes)
      case 'NullTest': {
        const col = this.targetColumn(body.arg, scopes)
        // System columns are never null, and a whole row or a predicate IS NOT NULL says nothing about which row.
        if (col === undefined || SYSTEM_COLUMNS.has(col)) return OPAQUE
        return {k: 'null', col, isNull: body.nulltesttype !== 'IS_NOT_NULL'}
      }
      case 'BooleanTest':
        return {k: 'test', part: this.compile(body.arg, scopes), test: String(body.booltesttype)}
      case 'CaseExpr': {
        if (body.arg !== undefined) return OPAQUE
        const whens = list(body.args).map((w) => {
          const wu = unwrap(w)
          return [this.compile(wu?.[1].expr, scopes), this.compile(wu?.[1].result, scopes)] as [Node, Node]
        })
        return {k: 'case', whens, otherwise: body.defresult === undefined ? {k: 'const', v: N} : this.compile(body.defresult, scopes)}
      }
      case 'CoalesceExpr':
        return {k: 'coalesce', parts: list(body.args).map((a) => this.compile(a, scopes))}
      case 'CurrentOfExpr':
        return {k: 'cmp', col: 'ctid', op: '=', v: {k: 'sym', id: CURSOR}}
      case 'SubLink':
        return this.subLink(body, scopes)
      default:
        return OPAQUE
    }
  }

  private aExpr(body: Obj, scopes: readonly Scope[]): Node {
    const kind = String(body.kind)
    const opName = trustedSymbol(body.name, this.target.userCode === true)
    if (opName === undefined) return OPAQUE
    const l = body.lexpr
    const r = body.rexpr
    switch (kind) {
      case 'AEXPR_OP': {
        const op = COMPARISONS[opName]
        if (op && isRow(l) && isRow(r)) return this.rowCompare(rowItems(l), op, rowItems(r), scopes)
        if (op) return this.compare(l, op, r, scopes)
        const like = LIKE_OPS[opName]
        if (like) return this.like(l, r, like.negated, like.kind, scopes)
        return OPAQUE
      }
      case 'AEXPR_OP_ANY':
      case 'AEXPR_OP_ALL': {
        const op = COMPARISONS[opName]
        if (!op) return OPAQUE
        // An array written in the statement is its elements: `x <> ALL('{}')` holds for every row.
        const items = writtenArray(r)
        if (items) {
          const parts = items.map((e) => this.compare(l, op, e, scopes))
          return {k: kind === 'AEXPR_OP_ANY' ? 'or' : 'and', parts}
        }
        // A constant array dbgate does not read (quoted elements, NULLs) may be empty, and then ALL,
        // or a negated ANY, holds for every row.
        if (unwrap(stripCasts(r))?.[0] === 'A_Const') return OPAQUE
        // `x = ANY($1)`: an arbitrary set of values, quantified over (an array column on the
        // left, `5 = ANY(tags)`, is compared as one value).
        const node = this.compare(l, op, r, scopes)
        return this.targetColumn(l, scopes) !== undefined ? this.quantified(node, kind === 'AEXPR_OP_ALL') : node
      }
      case 'AEXPR_IN': {
        const negated = opName === '<>'
        const items = list(unwrap(r)?.[0] === 'List' ? unwrap(r)![1].items : r)
        if (isRow(l)) {
          const parts = items.map((i) => (isRow(i) ? this.rowCompare(rowItems(l), negated ? '<>' : '=', rowItems(i), scopes) : OPAQUE))
          return {k: negated ? 'and' : 'or', parts}
        }
        const col = this.targetColumn(l, scopes)
        if (col !== undefined && items.every((i) => this.dependence(i, scopes) === 'no' && !this.identity(col, i, scopes))) {
          return {k: 'in', col, values: items.map((i) => this.value(i, scopes)), negated}
        }
        return {k: negated ? 'and' : 'or', parts: items.map((i) => this.compare(l, negated ? '<>' : '=', i, scopes))}
      }
      case 'AEXPR_DISTINCT':
      case 'AEXPR_NOT_DISTINCT': {
        const not = kind === 'AEXPR_NOT_DISTINCT'
        const lc = this.targetColumn(l, scopes)
        if (lc !== undefined && this.dependence(r, scopes) === 'no' && !this.identity(lc, r, scopes)) return {k: 'distinct', col: lc, v: this.value(r, scopes), not}
        const rc = this.targetColumn(r, scopes)
        if (rc !== undefined && this.dependence(l, scopes) === 'no' && !this.identity(rc, l, scopes)) return {k: 'distinct', col: rc, v: this.value(l, scopes), not}
        return OPAQUE
      }
      case 'AEXPR_BETWEEN':
      case 'AEXPR_NOT_BETWEEN':
      case 'AEXPR_BETWEEN_SYM':
      case 'AEXPR_NOT_BETWEEN_SYM': {
        const [lo, hi] = list(unwrap(r)?.[0] === 'List' ? unwrap(r)![1].items : r)
        const inside = (a: unknown, b: unknown): Node => ({k: 'and', parts: [this.compare(l, '>=', a, scopes), this.compare(l, '<=', b, scopes)]})
        let node: Node = inside(lo, hi)
        if (kind.endsWith('_SYM')) node = {k: 'or', parts: [node, inside(hi, lo)]}
        return kind.includes('NOT') ? {k: 'not', part: node} : node
      }
      case 'AEXPR_LIKE':
      case 'AEXPR_ILIKE':
        return this.like(l, r, opName.startsWith('!'), kind === 'AEXPR_ILIKE' ? 'ilike' : 'like', scopes)
      case 'AEXPR_SIMILAR':
        return this.like(l, similarPattern(r), opName.startsWith('!'), 'similar', scopes)
      default:
        return OPAQUE
    }
  }

  private like(l: unknown, pattern: unknown, negated: boolean, kind: PatternKind, scopes: readonly Scope[]): Node {
    const col = this.targetColumn(l, scopes)
    if (col === undefined || pattern === undefined || this.dependence(pattern, scopes) !== 'no') return OPAQUE
    const written = writtenPattern(pattern, kind, this.target.userCode === true)
    if (written === null) return {k: 'const', v: N}
    if (written !== undefined) {
      const re = patternRegex(written.text, kind, written.escape)
      if (!re) return OPAQUE
      const example = exampleFor(written.text, kind, re)
      const loose = kind === 'like' ? patternRegex(written.text, kind, written.escape, true) : undefined
      const fold = kind === 'regex' || kind === 'similar' ? patternRegex(written.text, kind, written.escape, false, true) : undefined
      return {k: 'like', col, re, ...(loose ? {loose} : {}), ...(fold ? {fold} : {}), plain: isAscii(written.text), ...(example !== undefined ? {example} : {}), negated}
    }
    // A pattern the caller or the data supplies is a value like any other (`name LIKE $1`: the
    // value-based limit). One computed from constants dbgate does not read is not: it is the
    // statement's own, and may be `%` (`'%'::varchar(3)`, `concat('%')`, `like_escape('%', '')`).
    const supplied = suppliedValue(pattern)
    if (supplied === undefined) return OPAQUE
    return {k: 'like', col, re: undefined, sym: keyOf(supplied), ...(this.readsJoined(supplied, scopes) ? {rows: true as const} : {}), negated}
  }

  /** `(a, b) op (x, y)`, element by element; ordering comparisons are lexicographic. */
  private rowCompare(l: unknown[], op: CmpOp, r: unknown[], scopes: readonly Scope[]): Node {
    if (l.length !== r.length || l.length === 0) return OPAQUE
    const eq = (i: number): Node => this.compare(l[i], '=', r[i], scopes)
    if (op === '=') return {k: 'and', parts: l.map((_, i) => eq(i))}
    if (op === '<>') return {k: 'or', parts: l.map((_, i) => this.compare(l[i], '<>', r[i], scopes))}
    const strict: CmpOp = op === '<' || op === '<=' ? '<' : '>'
    const parts: Node[] = []
    for (let i = 0; i < l.length; i++) {
      parts.push({k: 'and', parts: [...Array.from({length: i}, (_, j) => eq(j)), this.compare(l[i], strict, r[i], scopes)]})
    }
    if (op === '<=' || op === '>=') parts.push({k: 'and', parts: l.map((_, i) => eq(i))})
    return {k: 'or', parts}
  }

  private subLink(body: Obj, scopes: readonly Scope[]): Node {
    const type = String(body.subLinkType)
    const sub = unwrap(body.subselect)
    if (!sub || sub[0] !== 'SelectStmt') return OPAQUE
    const select = sub[1]
    const inner = [...scopes, this.scopeOf(select, scopes)]
    if (type === 'EXISTS_SUBLINK') {
      // A semi-join on a target column: `EXISTS (SELECT 1 FROM b WHERE b.user_id = u.id)`. Only
      // when the partners are rows the WHERE picks from: not a query that returns a row over none
      // (`rowOverNone`), nor partners computed from the target row itself (`FROM
      // generate_series(t.id, t.id) g(k) WHERE g.k = t.id` has a partner for every row).
      if (rowOverNone(select) || this.dependence(select.fromClause, inner) !== 'no') return OPAQUE
      const conds = conjuncts(select.whereClause)
      const plain = conds.length === 1 && list(select.fromClause).length === 1 && !select.havingClause && !select.limitCount && !select.limitOffset && list(select.groupClause).length === 0
      for (const conj of conds) {
        const cu = unwrap(conj)
        if (cu?.[0] !== 'A_Expr' || cu[1].kind !== 'AEXPR_OP') continue
        const op = COMPARISONS[trustedSymbol(cu[1].name, this.target.userCode === true) ?? '']
        if (!op) continue
        const corr = this.compare(cu[1].lexpr, op, cu[1].rexpr, inner)
        if (corr.k !== 'cmp') continue
        if (corr.v.k !== 'sym') return {k: 'exists', corr, exact: false}
        // The partner's value is one per partner row: a set of this subquery's own, quantified
        // over (`EXISTS (… WHERE o.k <> t.id)` holds for every row once `o` has two keys).
        const v: Val = {k: 'sym', id: `exists ${keyOf(select)} ${corr.v.id}`}
        return {k: 'exists', corr: {...corr, v, q: 'any'}, exact: plain}
      }
      return OPAQUE
    }
    if (type === 'ANY_SUBLINK' || type === 'ALL_SUBLINK') {
      // Over no rows, ANY (and IN) is false and ALL true for every row, whatever the operator.
      if (certainlyEmpty(select, this.target.userCode === true)) return {k: 'const', v: type === 'ANY_SUBLINK' ? F : T}
      const symbol = type === 'ANY_SUBLINK' && body.operName === undefined ? (this.target.userCode ? undefined : '=') : trustedSymbol(body.operName, this.target.userCode === true)
      const op = COMPARISONS[symbol ?? '']
      if (!op) return OPAQUE
      const col = this.targetColumn(body.testexpr, scopes)
      if (col === undefined || this.dependence(body.subselect, scopes) !== 'no') return OPAQUE
      if (this.selectsSameColumn(col, select, scopes)) return OPAQUE
      // Over the target itself, only a plain column of its copy is read above (the same column is
      // an identity unless filtered, another column is a value); an expression, aggregate or
      // array of its rows (`SELECT unnest(array_agg(t2.id)) FROM t t2`) proves nothing.
      if (this.readsOwnRows(body.subselect, scopes) && !this.selectsPlainColumn(select, scopes)) return OPAQUE
      return {k: 'cmp', col, op, v: {k: 'sym', id: keyOf(body.subselect)}, q: type === 'ALL_SUBLINK' ? 'all' : 'any'}
    }
    return OPAQUE
  }

  /** Whether a subquery selects one plain column of a FROM item, with no grouping, set operation or set-returning call around it. */
  private selectsPlainColumn(select: Obj, scopes: readonly Scope[]): boolean {
    const targets = list(select.targetList)
    if (targets.length !== 1 || select.op !== 'SETOP_NONE' || list(select.groupClause).length > 0 || select.havingClause) return false
    const val = unwrap(unwrap(targets[0])?.[1].val)
    if (val?.[0] !== 'ColumnRef') return false
    const r = this.resolve(val[1].fields, [...scopes, this.scopeOf(select, scopes)])
    return r.k === 'inner' && r.col !== '*'
  }

  /**
   * `col IN (SELECT t2.col FROM <the target table> t2 …)` is an identity unless the subquery's own
   * WHERE filters its copy of the table. A copy that is not the table named as itself (a CTE, a
   * subquery, a function, a view) may show `col` under any name: `WITH c AS (SELECT id AS k FROM t)`.
   */
  private selectsSameColumn(col: string, select: Obj, scopes: readonly Scope[]): boolean {
    const targets = list(select.targetList)
    if (targets.length !== 1) return false
    const val = unwrap(targets[0])?.[1].val
    const scope = this.scopeOf(select, scopes)
    const all = [...scopes, scope]
    const ref = unwrap(val)?.[0] === 'ColumnRef' ? this.resolve(unwrap(val)![1].fields, all) : undefined
    if (!ref || ref.k !== 'inner' || !ref.sameTable) return false
    const qual = strings(unwrap(val)![1].fields).at(-2) ?? ''
    if (ref.col !== col && this.exactCopy(qual, all)) return false
    const others = [...scope.names].filter(([n]) => n !== qual).map(([name, sameTable]) => ({name, sameTable}))
    const judge = new WhereJudge({names: new Set([qual]), relname: this.target.relname, others, ctes: scope.ctes, cteColumns: scope.cteColumns, ...(this.target.suspect ? {suspect: true} : {}), ...(this.target.userCode ? {userCode: true} : {})})
    // Inner joins filter too: `SELECT p.id FROM posts p JOIN authors a ON a.id = p.author_id WHERE …` (ORMs' update_all with joins).
    const conditions = [select.whereClause, ...innerJoinQuals(select.fromClause)]
    return judge.judgeAll(conditions) !== 'filtered'
  }
}

type PatternKind = 'like' | 'ilike' | 'similar' | 'regex' | 'iregex'

const LIKE_OPS: Record<string, {kind: 'like' | 'ilike' | 'regex' | 'iregex'; negated: boolean}> = {
  '~~': {kind: 'like', negated: false},
  '!~~': {kind: 'like', negated: true},
  '~~*': {kind: 'ilike', negated: false},
  '!~~*': {kind: 'ilike', negated: true},
  '~': {kind: 'regex', negated: false},
  '!~': {kind: 'regex', negated: true},
  '~*': {kind: 'iregex', negated: false},
  '!~*': {kind: 'iregex', negated: true},
}

/**
 * Whether a subquery returns no rows by its form, whatever the data: a WHERE or HAVING that is
 * constantly false or null, LIMIT 0, a set operation whose result is empty by the same token.
 * `id NOT IN (SELECT c.id FROM closed c WHERE false)` and `id <> ALL (SELECT 1 LIMIT 0)` hold
 * for every row. (A subquery the data leaves empty is the value-based limit.)
 */
function certainlyEmpty(select: Obj, userCode: boolean): boolean {
  const side = (n: unknown): boolean => {
    const u = unwrap(n)
    return u?.[0] === 'SelectStmt' ? certainlyEmpty(u[1], userCode) : isObj(n) && certainlyEmpty(n, userCode)
  }
  const op = String(select.op ?? 'SETOP_NONE')
  if (op === 'SETOP_UNION') return side(select.larg) && side(select.rarg)
  if (op === 'SETOP_INTERSECT') return side(select.larg) || side(select.rarg)
  if (op === 'SETOP_EXCEPT') return side(select.larg)
  const never = (cond: unknown): boolean => conjuncts(cond).some((c) => {
    const v = constant(c, userCode)
    return v === null || (v !== undefined && toBool(v) === false)
  })
  // A WHERE that keeps no row still leaves the one row of an aggregate query (`rowOverNone`).
  if ((never(select.whereClause) && !rowOverNone(select)) || never(select.havingClause)) return true
  const limit = select.limitCount === undefined ? undefined : constant(select.limitCount, userCode)
  return limit === 0 || limit === '0'
}

/**
 * Whether a SELECT may return a row when its WHERE keeps none: an aggregate query without GROUP
 * BY returns one (`SELECT count(*) … WHERE false`, `… HAVING true`), and so does an empty
 * grouping set (`GROUP BY ()`, `GROUPING SETS ((), …)`). A call in the select list may be a
 * user's aggregate, so any call counts.
 */
function rowOverNone(select: Obj): boolean {
  const groups = list(select.groupClause)
  if (groups.some((g) => unwrap(g)?.[0] === 'GroupingSet')) return true
  if (groups.length > 0) return false
  return select.havingClause !== undefined || callsOutsideSubqueries(select.targetList)
}

function callsOutsideSubqueries(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(callsOutsideSubqueries)
  if (!isObj(node)) return false
  const u = unwrap(node)
  if (u?.[0] === 'FuncCall') return true
  if (u?.[0] === 'SubLink') return false
  return Object.values(node).some(callsOutsideSubqueries)
}

function isRow(node: unknown): boolean {
  return unwrap(node)?.[0] === 'RowExpr'
}

function rowItems(node: unknown): unknown[] {
  return list(unwrap(node)?.[1].args)
}

function isBoolType(typeName: unknown): boolean {
  const n = isObj(typeName) ? strings(typeName.names).at(-1) : undefined
  return n === 'bool' || n === 'boolean'
}

/**
 * SIMILAR TO arrives as `x ~ similar_to_escape(pattern)`; the pattern is its first argument. With
 * an ESCAPE clause (a second argument) it is not read.
 */
function similarPattern(r: unknown): unknown {
  const u = unwrap(r)
  if (u?.[0] === 'FuncCall' && list(u[1].args).length === 1) return list(u[1].args)[0]
  return undefined
}

/**
 * A LIKE, SIMILAR TO or regular expression pattern written in the statement, with its escape
 * character (`''` for none); null for a NULL pattern; undefined when it is anything else. LIKE's
 * ESCAPE clause arrives as `pg_catalog.like_escape(pattern, escape)`: `ESCAPE ''` turns escapes
 * off, so `'%' ESCAPE ''` is `%` and matches every row.
 */
function writtenPattern(node: unknown, kind: PatternKind, userCode: boolean): {text: string; escape: string} | null | undefined {
  const u = unwrap(node)
  if ((kind === 'like' || kind === 'ilike') && u?.[0] === 'FuncCall' && names(u[1].funcname).join('.') === 'pg_catalog.like_escape') {
    const [p, e] = list(u[1].args).map((a) => constant(a, userCode))
    if (p === null || e === null) return null
    // More than one escape character is an error: nothing runs.
    if (typeof p !== 'string' || typeof e !== 'string' || [...e].length > 1) return undefined
    return {text: p, escape: e}
  }
  const p = constant(node, userCode)
  if (p === null) return null
  return typeof p === 'string' ? {text: p, escape: kind === 'regex' || kind === 'iregex' ? '' : '\\'} : undefined
}

/**
 * The value a caller or the data supplies, behind casts: a parameter, another relation's column,
 * a subquery; undefined for anything else. LIKE's `pattern ESCAPE e` of such a value is the value.
 */
function suppliedValue(node: unknown): unknown {
  const inner = stripCasts(node)
  const u = unwrap(inner)
  if (u?.[0] === 'ParamRef' || u?.[0] === 'ColumnRef' || u?.[0] === 'SubLink') return inner
  if (u?.[0] === 'FuncCall' && names(u[1].funcname).join('.') === 'pg_catalog.like_escape') {
    const [p, e] = list(u[1].args)
    return typeof constant(e) === 'string' ? suppliedValue(p) : undefined
  }
  return undefined
}

function isAscii(s: string): boolean {
  return !/[^\x00-\x7f]/.test(s)
}

/**
 * A string as a nondeterministic collation may see it, for ASCII text: case set aside and
 * everything but letters dropped (an ICU collation may ignore punctuation and spaces, and with
 * numeric ordering take `'01'` for `'1'`).
 */
function looseText(s: string): string {
  return s.toLowerCase().replace(/[^a-z]/g, '')
}

/** The ON conditions of inner joins in a FROM list: rows of either side without a partner are dropped. */
function innerJoinQuals(items: unknown): unknown[] {
  const out: unknown[] = []
  const visit = (item: unknown): void => {
    const u = unwrap(item)
    if (u?.[0] !== 'JoinExpr') return
    if ((u[1].jointype ?? 'JOIN_INNER') === 'JOIN_INNER' && u[1].quals !== undefined) out.push(u[1].quals)
    visit(u[1].larg)
    visit(u[1].rarg)
  }
  for (const i of list(items)) visit(i)
  return out
}

function conjuncts(node: unknown): unknown[] {
  const u = unwrap(node)
  if (u?.[0] === 'BoolExpr' && u[1].boolop === 'AND_EXPR') return list(u[1].args).flatMap(conjuncts)
  return node === undefined ? [] : [node]
}

function constNode(v: Scalar | undefined): Node {
  if (v === undefined) return OPAQUE
  if (v === null) return {k: 'const', v: N}
  const b = toBool(v)
  return b === undefined ? OPAQUE : {k: 'const', v: b ? T : F}
}

// ---- evaluating under a witness --------------------------------------------------------------------

type Rel = 'lt' | 'eq' | 'gt' | 'ne' | 'unk' | 'null'

/**
 * Which symbols stand for NULL in one pass of the search: a parameter, a subquery or another row's
 * column may be NULL, and then every comparison with it is NULL, whatever the row holds. `any`:
 * each comparison with a symbol may be NULL on its own (the cautious pass when there are too many
 * symbols to try each choice).
 */
type NullSyms = ReadonlySet<string> | 'any'
const NO_NULLS: NullSyms = new Set()

function relate(w: W, v: Val, nulls: NullSyms): Rel {
  if (w.k === 'null' || v.k === 'null') return 'null'
  if (v.k === 'sym') {
    if (nulls !== 'any' && nulls.has(v.id)) return 'null'
    if (w.k === 'rel' && w.id === v.id) return w.rel
    return w.k === 'fresh' ? 'ne' : 'unk'
  }
  if (w.k === 'fresh') return 'ne'
  if (w.k === 'rel') return 'unk'
  if (w.k === 'bool' || v.k === 'bool') {
    const a = w.k === 'bool' ? w.b : toBool(w.k === 'num' ? w.n : w.s)
    const b = v.k === 'bool' ? v.b : toBool(v.k === 'num' ? v.n : v.s)
    if (a === undefined || b === undefined) return 'unk'
    return a === b ? 'eq' : a ? 'gt' : 'lt'
  }
  if (w.k === 'num' || v.k === 'num') {
    const a = w.k === 'num' ? w.n : exactNumber(w.s)
    const b = v.k === 'num' ? v.n : exactNumber(v.s)
    if (a === undefined || b === undefined) return 'unk'
    return a === b ? 'eq' : a < b ? 'lt' : 'gt'
  }
  // Two different string literals may be one value of the column's type, which dbgate does not
  // know: a type's input reads many spellings as one (`'01'` and `'1'`, `'t'` and `'yes'`, dates,
  // uuids, json with its keys in another order, bpchar's trailing spaces, bytea's `'\x'` and
  // `''`), and a nondeterministic collation takes apart strings for one (case, accents,
  // punctuation, `'ø'` and `'o'`, and anything an ICU rule says). So they are never told apart.
  return w.s === v.s ? 'eq' : 'unk'
}

/**
 * `cmpSet` of a comparison with `v`: with `any`, a symbol's comparison may also be NULL. Over a
 * set (`q`), `lt` and `gt` are below and above every member, `ne` apart from all; `eq` is equal
 * to one member, the others unknown: ANY is then true where that member makes it true and
 * unknown otherwise (`id <> ANY(S)`), ALL false where that member makes it false and unknown
 * otherwise (`id = ALL(S)`).
 */
function cmpWith(w: W, v: Val, op: CmpOp, nulls: NullSyms, q?: 'any' | 'all'): VSet {
  const rel = relate(w, v, nulls)
  let set = cmpSet(rel, op)
  if (q !== undefined && rel === 'eq' && set === (q === 'any' ? F : T)) set = T | F
  return nulls === 'any' && v.k === 'sym' && v.id !== CURSOR ? set | N : set
}

function cmpSet(rel: Rel, op: CmpOp): VSet {
  if (rel === 'null') return N
  if (rel === 'unk') return T | F
  switch (op) {
    case '=':
      return rel === 'eq' ? T : F
    case '<>':
      return rel === 'eq' ? F : T
    case '<':
      return rel === 'lt' ? T : rel === 'ne' ? T | F : F
    case '<=':
      return rel === 'lt' || rel === 'eq' ? T : rel === 'ne' ? T | F : F
    case '>':
      return rel === 'gt' ? T : rel === 'ne' ? T | F : F
    case '>=':
      return rel === 'gt' || rel === 'eq' ? T : rel === 'ne' ? T | F : F
  }
}

function test(v: number, t: string): VSet {
  switch (t) {
    case 'IS_TRUE':
      return v === T ? T : F
    case 'IS_NOT_TRUE':
      return v === T ? F : T
    case 'IS_FALSE':
      return v === F ? T : F
    case 'IS_NOT_FALSE':
      return v === F ? F : T
    case 'IS_UNKNOWN':
      return v === N ? T : F
    case 'IS_NOT_UNKNOWN':
      return v === N ? F : T
    default:
      return ANY
  }
}

function evaluate(n: Node, w: ReadonlyMap<string, W>, nulls: NullSyms): VSet {
  switch (n.k) {
    case 'const':
      return n.v
    case 'and':
      return n.parts.reduce<VSet>((acc, p) => combine(acc, evaluate(p, w, nulls), and3), T)
    case 'or':
      return n.parts.reduce<VSet>((acc, p) => combine(acc, evaluate(p, w, nulls), or3), F)
    case 'not':
      return each(evaluate(n.part, w, nulls), not3)
    case 'test':
      return each(evaluate(n.part, w, nulls), (v) => test(v, n.test))
    case 'case': {
      let out = 0
      let reach = true
      for (const [cond, result] of n.whens) {
        const c = evaluate(cond, w, nulls)
        if (c & T) out |= evaluate(result, w, nulls)
        if (!(c & (F | N))) {
          reach = false
          break
        }
      }
      if (reach) out |= evaluate(n.otherwise, w, nulls)
      return out
    }
    case 'coalesce': {
      let out = 0
      for (const p of n.parts) {
        const v = evaluate(p, w, nulls)
        out |= v & (T | F)
        if (!(v & N)) return out
      }
      return out | N
    }
    case 'cmp':
      return cmpWith(w.get(n.col) ?? {k: 'fresh'}, n.v, n.op, nulls, n.q)
    case 'in': {
      const x = w.get(n.col) ?? {k: 'fresh'}
      let acc: VSet = F
      for (const v of n.values) acc = combine(acc, cmpWith(x, v, '=', nulls), or3)
      return n.negated ? each(acc, not3) : acc
    }
    case 'distinct': {
      const x = w.get(n.col) ?? {k: 'fresh'}
      const xNull = x.k === 'null'
      // IS DISTINCT FROM a symbol that is NULL is IS NOT NULL; under `any` it may be either.
      const symNull = n.v.k === 'sym' && nulls !== 'any' && nulls.has(n.v.id)
      const vNull = n.v.k === 'null' || symNull
      let differs: VSet = xNull || vNull ? (xNull === vNull ? F : T) : each(cmpSet(relate(x, n.v, nulls), '='), not3)
      if (nulls === 'any' && n.v.k === 'sym') differs |= xNull ? F : T
      return n.not ? each(differs, not3) : differs
    }
    case 'null': {
      const x = w.get(n.col) ?? {k: 'fresh'}
      return (x.k === 'null') === n.isNull ? T : F
    }
    case 'like': {
      const x = w.get(n.col) ?? {k: 'fresh'}
      let v: VSet
      if (x.k === 'null') v = N
      // Outside ASCII, PostgreSQL's case folding (`'İ' ILIKE 'i'`, `'I' ~* 'ı'`) and classes are
      // the locale's, not JavaScript's; under a nondeterministic collation LIKE matches what
      // compares equal (`'A' LIKE 'a'`), which `loose` bounds.
      else if (n.re && x.k === 'str') v = !n.plain || !isAscii(x.s) ? T | F : n.re.test(x.s) ? T : n.loose?.test(looseText(x.s)) || n.fold?.test(x.s) ? T | F : F
      else if (n.sym !== undefined) v = cmpWith(x, {k: 'sym', id: n.sym}, '=', nulls)
      else v = T | F
      return n.negated ? each(v, not3) : v
    }
    case 'exists': {
      // EXISTS is never null: no partner row (or a null key) is false. Its symbol is a partner
      // row's value, one of many, not one value the caller fixes: a row with a partner may exist
      // whichever partners hold NULL, so it is never taken as NULL here.
      const c = evaluate(n.corr, w, NO_NULLS)
      if (n.exact) return c === T ? T : c & T ? T | F : F
      return c & T ? T | F : F
    }
  }
}

// ---- looking for a witness -------------------------------------------------------------------------

const MAX_VALUES_PER_COLUMN = 48
const MAX_WITNESSES = 4096

interface ColumnFacts {
  nums: Set<number>
  strs: Set<string>
  syms: Set<string>
  /** Symbols that are one value per joined row (`Val.rows`): no row can equal all of them. */
  rowSyms: Set<string>
  bool: boolean
  nullable: boolean
  examples: string[]
  /** Constants used in ordering comparisons: kept first when the list is cut. */
  ordered: Set<number>
  /** The column is `ctid`: its values are row positions, never NULL. */
  tid: boolean
}

function collect(n: Node, facts: Map<string, ColumnFacts>): void {
  const of = (col: string): ColumnFacts => {
    let f = facts.get(col)
    if (!f) facts.set(col, (f = {nums: new Set(), strs: new Set(), syms: new Set(), rowSyms: new Set(), bool: false, nullable: false, examples: [], ordered: new Set(), tid: col === 'ctid'}))
    return f
  }
  const addVal = (f: ColumnFacts, v: Val, ordered: boolean) => {
    if (v.k === 'num') {
      f.nums.add(v.n)
      if (ordered) f.ordered.add(v.n)
    } else if (v.k === 'str') f.strs.add(v.s)
    else if (v.k === 'bool') f.bool = true
    else if (v.k === 'sym') {
      f.syms.add(v.id)
      if (v.rows) f.rowSyms.add(v.id)
    }
  }
  switch (n.k) {
    case 'and':
    case 'or':
    case 'coalesce':
      for (const p of n.parts) collect(p, facts)
      return
    case 'not':
    case 'test':
      collect(n.part, facts)
      return
    case 'case':
      for (const [c, r] of n.whens) {
        collect(c, facts)
        collect(r, facts)
      }
      collect(n.otherwise, facts)
      return
    case 'cmp':
      addVal(of(n.col), n.v, n.op !== '=' && n.op !== '<>')
      return
    case 'in':
      for (const v of n.values) addVal(of(n.col), v, false)
      return
    case 'distinct':
      addVal(of(n.col), n.v, false)
      of(n.col).nullable = true
      return
    case 'null':
      of(n.col).nullable = true
      return
    case 'like': {
      const f = of(n.col)
      if (n.re) f.examples.push(n.example ?? 'x')
      if (n.sym) f.syms.add(n.sym)
      if (n.sym && n.rows) f.rowSyms.add(n.sym)
      return
    }
    case 'exists':
      collect(n.corr, facts)
      return
    case 'const':
      return
  }
}

/**
 * Values worth trying for one column: each constant and its neighbours, each symbol from three
 * sides, NULL if tested. Numbers are integers only: the column may be an integer type, where no
 * value lies between 1 and 2, so `id <= 1 OR id >= 2` holds for every row (an integer is a value
 * of every numeric type, so an integer witness holds for all of them).
 */
function candidates(f: ColumnFacts): W[] {
  if (f.tid) return valueCandidates(f).filter((w) => (w.k === 'str' ? possibleTid(w.s) : w.k !== 'null'))
  return valueCandidates(f)
}

/**
 * Whether a row can be at the position `s`: no row is at offset 0 (`ctid <> '(0,0)'` holds for
 * every row), nor past the most tuples an 8 kB page holds (291).
 */
function possibleTid(s: string): boolean {
  const m = /^\((\d+),(\d+)\)$/.exec(s)
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 291
}

function valueCandidates(f: ColumnFacts): W[] {
  if (f.bool && f.nums.size === 0 && f.strs.size === 0 && f.syms.size === 0) return booleanCandidates(f)
  const out: W[] = [{k: 'fresh'}]
  if (f.nullable) out.push({k: 'null'})
  if (f.bool) out.push({k: 'bool', b: true}, {k: 'bool', b: false})
  // A value per joined row: below or above all of them, or apart from each (`fresh`), but not
  // equal to all of them, which only one value can be.
  for (const id of f.syms) out.push({k: 'rel', id, rel: 'lt'}, ...(f.rowSyms.has(id) ? [] : [{k: 'rel', id, rel: 'eq'} as W]), {k: 'rel', id, rel: 'gt'})
  const nums = [...f.ordered, ...[...f.nums].filter((n) => !f.ordered.has(n))]
  if (nums.length > 0) {
    const sorted = [...new Set(nums)].sort((a, b) => a - b)
    out.push({k: 'num', n: Math.floor(sorted[0]!) - 1}, {k: 'num', n: Math.ceil(sorted.at(-1)!) + 1})
    for (const n of nums) {
      const around = Number.isInteger(n) ? [n, n + 1, n - 1] : [Math.floor(n), Math.ceil(n)]
      for (const m of around) out.push({k: 'num', n: m})
    }
  }
  const strings = new Set<string>(['', '\u0001'])
  for (const s of f.strs) strings.add(s)
  for (const e of f.examples) strings.add(e)
  if (f.strs.size > 0 || f.examples.length > 0) for (const s of strings) out.push({k: 'str', s})
  return out.slice(0, MAX_VALUES_PER_COLUMN)
}

/** The values of a boolean column, NULL if tested. */
function booleanCandidates(f: ColumnFacts): W[] {
  return [{k: 'bool', b: true}, {k: 'bool', b: false}, ...(f.nullable ? [{k: 'null'} as W] : [])]
}

/** A string the pattern matches, when a simple one is easy to find (a witness on the pattern's side). */
function exampleFor(pattern: string, kind: string, re: RegExp): string | undefined {
  const tries = kind === 'regex' || kind === 'iregex' ? [pattern.replace(/[\\^$.*+?()[\]{}|]/g, ''), 'x', 'a'] : [pattern.replace(/\\(.)|%|_/g, (m, esc: string | undefined) => esc ?? (m === '_' ? 'x' : ''))]
  for (const s of tries) if (re.test(s)) return s
  return undefined
}

/** Up to this many symbols, each choice of which are NULL is searched on its own; above, the cautious `any` pass. */
const MAX_NULL_CHOICES_SYMBOLS = 4

/**
 * Whether `n` is certainly not true for some row, whatever the symbols hold. The caller (or the
 * data) picks the symbols' values, NULL included: `(id = $1) IS NOT TRUE` with $1 NULL, or
 * `coalesce(id = (SELECT NULL::int), true)`, is true for every row. So a witness must exist under
 * every choice of which symbols are NULL.
 */
function hasWitness(n: Node): boolean {
  const facts = new Map<string, ColumnFacts>()
  collect(n, facts)
  const syms = [...new Set([...facts.values()].flatMap((f) => [...f.syms]))].filter((id) => id !== CURSOR)
  // A column every literal of which reads as a boolean may be a boolean, whose only values are
  // true and false: `b = 't' OR b = 'f'` holds for every row of one. A witness must then exist
  // whichever of these columns are booleans, each choice a search of its own.
  const boolish = [...facts].filter(([, f]) => mayBeBoolean(f)).map(([c]) => c)
  if (boolish.length > MAX_BOOLEAN_CHOICES) return false
  const typings = Array.from({length: 1 << boolish.length}, (_, mask) => new Set(boolish.filter((_, i) => mask & (1 << i))))
  // Each choice is a search of its own: past a few symbols (or a large search), one cautious pass.
  let total = 1
  for (const f of facts.values()) total *= Math.max(1, candidates(f).length)
  if (syms.length > MAX_NULL_CHOICES_SYMBOLS || total * 2 ** syms.length * typings.length > MAX_WITNESSES * 4) return typings.every((asBool) => witnessUnder(n, facts, 'any', asBool))
  for (const asBool of typings) {
    for (let mask = 0; mask < 1 << syms.length; mask++) {
      if (!witnessUnder(n, facts, new Set(syms.filter((_, i) => mask & (1 << i))), asBool)) return false
    }
  }
  return true
}

/** Up to this many columns that may be booleans, each choice of which are is searched; above, no witness. */
const MAX_BOOLEAN_CHOICES = 3

/**
 * Whether a column compared only with literals that read as booleans (`'t'`, `'yes'`, `'0'`,
 * `true`) may be a boolean. A number, a LIKE pattern or a string no boolean reads says it is not
 * (PostgreSQL would refuse the comparison).
 */
function mayBeBoolean(f: ColumnFacts): boolean {
  if (f.nums.size > 0 || f.examples.length > 0) return false
  if (f.strs.size === 0) return f.bool
  return [...f.strs].every((s) => toBool(s) !== undefined)
}

/** Whether some assignment of the columns makes `n` certainly not true, with the symbols `nulls` NULL and the columns `asBool` booleans. */
function witnessUnder(n: Node, facts: ReadonlyMap<string, ColumnFacts>, nulls: NullSyms, asBool: ReadonlySet<string> = new Set()): boolean {
  const cols = [...facts.keys()]
  const lists = cols.map((c) => (asBool.has(c) ? booleanCandidates(facts.get(c)!) : candidates(facts.get(c)!)))
  let total = 1
  for (const l of lists) total *= Math.max(1, l.length)
  if (total > MAX_WITNESSES) return false
  const w = new Map<string, W>()
  const search = (i: number): boolean => {
    if (i === cols.length) return !(evaluate(n, w, nulls) & T)
    for (const v of lists[i]!) {
      w.set(cols[i]!, v)
      if (search(i + 1)) return true
    }
    return false
  }
  return search(0)
}

// ---- the judge -------------------------------------------------------------------------------------

export class WhereJudge {
  private readonly compiler: Compiler

  constructor(target: TargetInfo) {
    this.compiler = new Compiler(target)
  }

  judge(where: unknown): WhereKind {
    if (where === undefined || where === null) return 'none'
    return this.proves(where) ? 'filtered' : 'trivial'
  }

  /** Several conditions that must all hold (MERGE's ON and a WHEN ... AND ...). */
  judgeAll(conditions: unknown[]): WhereKind {
    const present = conditions.filter((c) => c !== undefined && c !== null)
    if (present.length === 0) return 'none'
    return present.some((c) => this.proves(c)) ? 'filtered' : 'trivial'
  }

  /** A conjunction filters when any conjunct does; each is tried on its own (fewer columns to search). */
  private proves(where: unknown): boolean {
    const parts = conjuncts(where)
    if (parts.some((p) => hasWitness(this.compiler.compile(p)))) return true
    return parts.length > 1 && hasWitness(this.compiler.compile(where))
  }
}

// ---- constants -------------------------------------------------------------------------------------

/** The value of an expression made only of constants, or undefined when it is anything else. */
export function constant(node: unknown, userCode = false): Scalar | undefined {
  const u = unwrap(node)
  if (!u) return undefined
  const [type, body] = u
  switch (type) {
    case 'A_Const':
      return constValue(body)
    case 'TypeCast': {
      const inner = constant(body.arg, userCode)
      return inner === undefined ? undefined : castConst(inner, body.typeName)
    }
    case 'A_Expr': {
      if (body.kind !== 'AEXPR_OP') return undefined
      // A user's operator computes what it likes (`trustedSymbol`).
      const op = trustedSymbol(body.name, userCode)
      if (op === undefined) return undefined
      const r = constant(body.rexpr, userCode)
      if (r === undefined) return undefined
      if (body.lexpr === undefined) return op === '-' && typeof r === 'number' ? -r : op === '+' && typeof r === 'number' ? r : undefined
      const l = constant(body.lexpr, userCode)
      if (l === undefined) return undefined
      // With transform_null_equals on, `x = NULL` means `x IS NULL`: such a comparison is not a constant.
      if (op === '=' && (l === null || r === null)) return undefined
      if (op === '~~' || op === '!~~') {
        if (typeof l !== 'string' || typeof r !== 'string') return l === null || r === null ? null : undefined
        const hit = patternRegex(r, 'like')?.test(l)
        return hit === undefined ? undefined : op === '~~' ? hit : !hit
      }
      return binary(op, l, r)
    }
    case 'BoolExpr': {
      const args = list(body.args).map((a) => constant(a, userCode))
      if (args.some((a) => a === undefined)) return undefined
      const vals = (args as Scalar[]).map((a) => (a === null ? null : toBool(a)))
      if (vals.some((v) => v === undefined)) return undefined
      if (body.boolop === 'NOT_EXPR') return vals[0] === null ? null : !vals[0]
      if (body.boolop === 'AND_EXPR') return vals.includes(false) ? false : vals.includes(null) ? null : true
      return vals.includes(true) ? true : vals.includes(null) ? null : false
    }
    case 'NullTest': {
      const a = constant(body.arg, userCode)
      if (a === undefined) return undefined
      return body.nulltesttype === 'IS_NOT_NULL' ? a !== null : a === null
    }
    case 'BooleanTest': {
      const a = constant(body.arg, userCode)
      if (a === undefined) return undefined
      const v = a === null ? N : toBool(a) === true ? T : toBool(a) === false ? F : undefined
      if (v === undefined) return undefined
      return test(v, String(body.booltesttype)) === T
    }
    case 'CoalesceExpr': {
      for (const a of list(body.args)) {
        const v = constant(a, userCode)
        if (v === undefined) return undefined
        if (v !== null) return v
      }
      return null
    }
    default:
      return undefined
  }
}

function stripCasts(node: unknown): unknown {
  let n = node
  for (let u = unwrap(n); u?.[0] === 'TypeCast'; u = unwrap(n)) n = u[1].arg
  return n
}

/**
 * The elements of an array written in the statement, perhaps cast: `ARRAY[…]` as its element
 * nodes, a plain array literal (`'{1,2}'`, `'{}'`) as constants; undefined for anything else,
 * including literals with quotes, escapes, nesting or NULL elements.
 */
function writtenArray(node: unknown): unknown[] | undefined {
  const u = unwrap(stripCasts(node))
  if (u?.[0] === 'A_ArrayExpr') return list(u[1].elements)
  if (u?.[0] !== 'A_Const') return undefined
  const text = constValue(u[1])
  const m = typeof text === 'string' ? /^\{([^{}"\\]*)\}$/.exec(text.trim()) : null
  if (!m) return undefined
  if (m[1]!.trim() === '') return []
  const items = m[1]!.split(',').map((s) => s.trim())
  if (items.some((s) => s === '' || s.toLowerCase() === 'null')) return undefined
  return items.map((s) => ({A_Const: {sval: {sval: s}}}))
}

/**
 * A numeric literal as a JavaScript number, when the number is exactly the literal's value as far
 * as ordering goes: a safe integer, or a decimal the double prints back as written. Otherwise
 * undefined: `9007199254740993` and `1.00000000000000001` would round onto their neighbours and
 * make `id < 9007199254740993 OR id > 9007199254740992` look like it leaves a row alone.
 */
function exactNumber(text: string): number | undefined {
  const t = text.trim()
  // An exponent moves the decimal point: the number is read as the decimal it writes, so that
  // `1e-400` (0 as a double) and `1.00000000000000001e0` (1 as a double) are not read as rounded.
  const e = /^([+-]?)(\d*)(?:\.(\d*))?[eE]([+-]?\d+)$/.exec(t)
  if (e) {
    const whole = e[2] ?? ''
    const digits = whole + (e[3] ?? '')
    const point = whole.length + Number(e[4])
    if (digits === '' || Math.abs(point) > 400) return undefined
    const plain = point <= 0 ? `0.${'0'.repeat(-point)}${digits}` : point >= digits.length ? digits + '0'.repeat(point - digits.length) : `${digits.slice(0, point)}.${digits.slice(point)}`
    return exactNumber(`${e[1]}${plain}`)
  }
  const n = Number(t)
  if (!Number.isFinite(n)) return undefined
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(t)
  if (!m) return Number.isSafeInteger(n) ? n : undefined
  const whole = (m[2] ?? '').replace(/^0+(?=\d)/, '') || '0'
  const fraction = (m[3] ?? '').replace(/0+$/, '')
  const written = `${m[1] === '-' && (whole !== '0' || fraction !== '') ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`
  if (fraction === '') return Number.isSafeInteger(n) && String(n) === written ? n : undefined
  return String(n) === written ? n : undefined
}

function constValue(body: Obj): Scalar | undefined {
  if (body.isnull) return null
  const inner = (k: string, f: string): unknown => (isObj(body[k]) ? (body[k] as Obj)[f] : undefined)
  // Protobuf JSON leaves out default values, so `{boolval: {}}` is false and `{ival: {}}` is 0.
  if ('boolval' in body) return inner('boolval', 'boolval') === true
  if ('ival' in body) return Number(inner('ival', 'ival') ?? 0)
  if ('fval' in body) return exactNumber(String(inner('fval', 'fval') ?? '0'))
  if ('sval' in body) return String(inner('sval', 'sval') ?? '')
  if ('bsval' in body) return String(inner('bsval', 'bsval') ?? '')
  return null
}

function castConst(v: Scalar, typeName: unknown): Scalar | undefined {
  if (v === null) return null
  if (!isObj(typeName) || typeName.arrayBounds !== undefined) return undefined
  const type = strings(typeName.names).at(-1) ?? ''
  // A length or precision cuts or rounds the value (`'ax'::varchar(1)` is 'a', `1.5::numeric(2,0)`
  // is 2): the constant is then not the literal, and is not read.
  const bounded = typeName.typmods !== undefined
  if (type === 'bool' || type === 'boolean') return toBool(v)
  if (['int2', 'int4', 'int8', 'numeric', 'float4', 'float8'].includes(type)) {
    if (bounded) return undefined
    const n = typeof v === 'number' ? v : typeof v === 'string' ? exactNumber(v) : undefined
    if (n === undefined) return undefined
    // Into an integer a fraction rounds (`1.5::int4` is 2), into float4 a value may round to the nearest it holds.
    if (type.startsWith('int') && !Number.isInteger(n)) return undefined
    if (type === 'float4' && Math.fround(n) !== n) return undefined
    return n
  }
  // bpchar (and `char`, which is char(1)) pads and compares without trailing spaces; `name` cuts at 63 bytes.
  if ((type === 'text' || type === 'varchar') && !bounded) return String(v)
  if (type === 'name' && Buffer.byteLength(String(v), 'utf8') < 64) return String(v)
  return undefined
}

/** PostgreSQL's boolean input syntax (boolin), including unique prefixes. */
function toBool(v: Scalar): boolean | undefined {
  if (typeof v === 'boolean') return v
  if (typeof v === 'number') return undefined
  if (v === null) return undefined
  const s = String(v).trim().toLowerCase()
  if (s === '') return undefined
  if (s === '1' || s === 'on' || 'true'.startsWith(s) || 'yes'.startsWith(s)) return true
  if (s === '0' || s === 'off' || s === 'of' || 'false'.startsWith(s) || 'no'.startsWith(s)) return false
  return undefined
}

/**
 * Applies a binary operator to constants; undefined when we cannot compute it. Comparisons follow
 * SQL: NULL in, NULL out. A number against a numeric string compares as numbers, as PostgreSQL
 * would after resolving the unknown-typed literal to the other side's type.
 */
function binary(op: string, a: Scalar, b: Scalar): Scalar | undefined {
  if (a === null || b === null) return null
  let x: Scalar = a
  let y: Scalar = b
  if (typeof x !== typeof y) {
    if (typeof x === 'boolean' || typeof y === 'boolean') {
      const bx = typeof x === 'boolean' ? x : toBool(x)
      const by = typeof y === 'boolean' ? y : toBool(y)
      if (bx === undefined || by === undefined) return undefined
      x = bx
      y = by
    } else {
      const nx = typeof x === 'number' ? x : exactNumber(String(x))
      const ny = typeof y === 'number' ? y : exactNumber(String(y))
      if (nx === undefined || ny === undefined) return undefined
      x = nx
      y = ny
    }
  }
  switch (op) {
    case '=':
      return x === y
    case '<>':
    case '!=':
      return x !== y
    case '<':
      return typeof x === 'string' && x !== y ? undefined : x < y
    case '>':
      return typeof x === 'string' && x !== y ? undefined : x > y
    case '<=':
      return typeof x === 'string' && x !== y ? undefined : x <= y
    case '>=':
      return typeof x === 'string' && x !== y ? undefined : x >= y
    case '+':
    case '-':
    case '*': {
      // Exact integer arithmetic only: PostgreSQL's numeric is exact (0.1 + 0.2 is 0.3) and its
      // bigint has 64 bits, where a double rounds, which could make two values look apart that equal.
      if (typeof x !== 'number' || typeof y !== 'number' || !Number.isSafeInteger(x) || !Number.isSafeInteger(y)) return undefined
      const r = op === '+' ? x + y : op === '-' ? x - y : x * y
      return Number.isSafeInteger(r) ? r : undefined
    }
    case '||':
      return String(a) + String(b)
    default:
      return undefined
  }
}

/**
 * A LIKE/ILIKE/SIMILAR TO/regex pattern as a JavaScript RegExp, when it can be translated
 * faithfully; `escape` is LIKE's escape character (`''` for none). `loose`: a LIKE pattern as
 * matched over `looseText`, every wildcard any run of characters (an ignored character may stand
 * anywhere), for what a nondeterministic collation may match besides. `fold`: ignoring case.
 */
function patternRegex(pattern: string, kind: PatternKind, escape = '\\', loose = false, fold = false): RegExp | undefined {
  try {
    if (kind === 'regex' || kind === 'iregex') {
      // POSIX ARE and JavaScript agree on a common subset only (`sharedRegex`); `.` matches a
      // newline in PostgreSQL's default mode, hence the `s` flag.
      if (!sharedRegex(pattern)) return undefined
      return new RegExp(pattern, kind === 'iregex' || fold ? 'isu' : 'su')
    }
    let re = ''
    const chars = [...pattern]
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i]!
      const literal = escape !== '' && c === escape && i + 1 < chars.length ? chars[++i]! : undefined
      if (literal === undefined && (c === '%' || (c === '_' && loose))) re += '[\\s\\S]*'
      else if (literal === undefined && c === '_') re += '[\\s\\S]'
      else if (literal === undefined && kind === 'similar' && '|*+?{}()[]'.includes(c)) re += c
      else if (loose) re += escapeRe(looseText(literal ?? c))
      else re += escapeRe(literal ?? c)
    }
    return new RegExp(`^(?:${re})$`, kind === 'ilike' || fold ? 'iu' : 'u')
  } catch {
    return undefined
  }
}

/**
 * Whether JavaScript reads a POSIX regular expression as PostgreSQL does, by an allow-list. The
 * two share a subset only: `\b` is a backspace to PostgreSQL and a word boundary to JavaScript,
 * `\B` a backslash and a non-boundary, `\x414` one character and two; `(?` starts options,
 * lookarounds or groups, `***` a director, `[[` a class, collating element or equivalence, each
 * its own. So a backslash may only come before a class shorthand, a control character's letter
 * or ASCII punctuation.
 */
function sharedRegex(pattern: string): boolean {
  if (pattern.includes('(?') || pattern.startsWith('***') || pattern.includes('[[')) return false
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== '\\') continue
    const next = pattern[++i]
    if (next === undefined || !/^[dDsSwWntrfv!-\/:-@[-`{-~]$/.test(next)) return false
  }
  return true
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

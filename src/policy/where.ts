/**
 * Decides whether a WHERE clause of an UPDATE or DELETE actually picks rows.
 *
 * The principle: a condition filters only if its truth depends on the target row. Each expression
 * is folded to one of
 *   TRUE / FALSE / NULL  a constant we could compute (`1=1`, `'a'='a'`, `NOT false`, `1<2`)
 *   MAYBE                row-independent but not computable here: bind parameters, `now()`,
 *                        subqueries that do not mention the target, columns of other tables.
 *                        The caller (or the clock) decides its value, so it may hold for every row.
 *   ROW                  depends on the target row
 * and a WHERE is trivial when it folds to TRUE or MAYBE. An OR with any disjunct that is TRUE or
 * MAYBE is therefore trivial (`id = 1 OR $1` deletes everything when executed with `true`).
 * A comparison of an expression with itself (`id = id`) and `p OR NOT p` are treated as TRUE: they
 * only exclude NULLs, which is not a filter anyone means to write.
 */
import {isObj, unwrap, type Obj} from './tree.js'
import type {WhereKind} from './types.js'

type Scalar = boolean | number | string | null
type Folded = {k: 'const'; v: Scalar} | {k: 'maybe'} | {k: 'row'}

const MAYBE: Folded = {k: 'maybe'}
const ROW: Folded = {k: 'row'}
const TRUE: Folded = {k: 'const', v: true}
const FALSE: Folded = {k: 'const', v: false}
const NULL: Folded = {k: 'const', v: null}

/** Structural equality that ignores source positions, so `id = id` compares the two sides. */
function sameExpr(a: unknown, b: unknown): boolean {
  return JSON.stringify(a, dropLocation) === JSON.stringify(b, dropLocation)
}

function dropLocation(key: string, value: unknown): unknown {
  return key === 'location' ? undefined : value
}

function strings(list: unknown): string[] {
  if (!Array.isArray(list)) return []
  return list.map((item) => {
    const u = unwrap(item)
    return u && u[0] === 'String' && typeof u[1].sval === 'string' ? u[1].sval : '*'
  })
}

export class WhereJudge {
  /** @param targetNames the names by which the condition can refer to the target row (its alias, or its table name). */
  constructor(private readonly targetNames: ReadonlySet<string>) {}

  judge(where: unknown): WhereKind {
    if (where === undefined || where === null) return 'none'
    const f = this.fold(where)
    if (f.k === 'maybe') return 'trivial'
    if (f.k === 'const') return f.v === true ? 'trivial' : 'filtered'
    return 'filtered'
  }

  /** Several conditions that must all hold (MERGE's ON and a WHEN ... AND ...). */
  judgeAll(conditions: unknown[]): WhereKind {
    const present = conditions.filter((c) => c !== undefined && c !== null)
    if (present.length === 0) return 'none'
    return this.judge({BoolExpr: {boolop: 'AND_EXPR', args: present}})
  }

  private fold(node: unknown): Folded {
    const u = unwrap(node)
    if (!u) return this.mentionsTarget(node) ? ROW : MAYBE
    const [type, body] = u
    switch (type) {
      case 'A_Const':
        return {k: 'const', v: constValue(body)}
      case 'ParamRef':
        return MAYBE
      case 'ColumnRef':
        return this.columnIsTarget(body) ? ROW : MAYBE
      case 'TypeCast':
        return castFolded(this.fold(body.arg), body.typeName)
      case 'BoolExpr':
        return this.foldBool(body)
      case 'A_Expr':
        return this.foldAExpr(body)
      case 'NullTest': {
        const arg = this.fold(body.arg)
        if (arg.k !== 'const') return arg
        const isNull = arg.v === null
        return {k: 'const', v: body.nulltesttype === 'IS_NOT_NULL' ? !isNull : isNull}
      }
      case 'BooleanTest':
        return foldBooleanTest(this.fold(body.arg), String(body.booltesttype))
      case 'CoalesceExpr': {
        const args = (Array.isArray(body.args) ? body.args : []).map((a) => this.fold(a))
        for (const a of args) {
          if (a.k !== 'const') return combine(args)
          if (a.v !== null) return a
        }
        return NULL
      }
      case 'CurrentOfExpr':
        return ROW
      case 'SubLink':
        return this.mentionsTarget(node) ? ROW : MAYBE
      default:
        // Functions, CASE, arrays, row constructors...: not computed, but still row-independent
        // unless they read the target row.
        return this.mentionsTarget(node) ? ROW : MAYBE
    }
  }

  private foldBool(body: Obj): Folded {
    const args = Array.isArray(body.args) ? body.args : []
    const folded = args.map((a) => this.fold(a))
    switch (body.boolop) {
      case 'NOT_EXPR': {
        const a = folded[0] ?? NULL
        return a.k === 'const' ? {k: 'const', v: a.v === null ? null : !a.v} : a
      }
      case 'AND_EXPR': {
        if (folded.some((f) => f.k === 'const' && f.v === false)) return FALSE
        if (folded.some((f) => f.k === 'row')) return ROW
        if (folded.some((f) => f.k === 'maybe')) return MAYBE
        return folded.some((f) => f.k === 'const' && f.v === null) ? NULL : TRUE
      }
      case 'OR_EXPR': {
        if (folded.some((f) => f.k === 'const' && f.v === true)) return TRUE
        if (folded.some((f) => f.k === 'maybe')) return MAYBE
        if (hasComplementaryPair(args)) return TRUE
        if (folded.some((f) => f.k === 'row')) return ROW
        return folded.some((f) => f.k === 'const' && f.v === null) ? NULL : FALSE
      }
      default:
        return this.mentionsTarget(body) ? ROW : MAYBE
    }
  }

  private foldAExpr(body: Obj): Folded {
    const op = strings(body.name).at(-1) ?? ''
    const kind = String(body.kind)
    const l = body.lexpr === undefined ? undefined : this.fold(body.lexpr)
    const r = body.rexpr === undefined ? undefined : this.fold(body.rexpr)
    switch (kind) {
      case 'AEXPR_OP': {
        if (l === undefined && r !== undefined) return unary(op, r)
        if (l === undefined || r === undefined) return MAYBE
        if (l.k === 'const' && r.k === 'const') return computed(binary(op, l.v, r.v))
        if ((l.k === 'row' || r.k === 'row') && sameExpr(body.lexpr, body.rexpr)) {
          if (op === '=' || op === '<=' || op === '>=') return TRUE
          if (op === '<>' || op === '!=' || op === '<' || op === '>') return FALSE
        }
        return combine([l, r])
      }
      case 'AEXPR_DISTINCT':
      case 'AEXPR_NOT_DISTINCT': {
        if (l === undefined || r === undefined) return MAYBE
        const same = sameExpr(body.lexpr, body.rexpr)
        if (l.k === 'const' && r.k === 'const') {
          const eq = l.v === null || r.v === null ? l.v === r.v : binary('=', l.v, r.v) === true
          return {k: 'const', v: kind === 'AEXPR_NOT_DISTINCT' ? eq : !eq}
        }
        if (same) return kind === 'AEXPR_NOT_DISTINCT' ? TRUE : FALSE
        return combine([l, r])
      }
      case 'AEXPR_IN': {
        const items = listItems(body.rexpr).map((i) => this.fold(i))
        if (l === undefined) return MAYBE
        if (l.k === 'const' && items.every((i) => i.k === 'const')) {
          const values = items.map((i) => (i as {v: Scalar}).v)
          const hit = l.v === null ? null : values.some((v) => binary('=', l.v, v) === true) ? true : values.includes(null) ? null : false
          if (hit === null) return NULL
          return {k: 'const', v: op === '<>' ? !hit : hit}
        }
        return combine([l, ...items])
      }
      case 'AEXPR_BETWEEN':
      case 'AEXPR_NOT_BETWEEN':
      case 'AEXPR_BETWEEN_SYM':
      case 'AEXPR_NOT_BETWEEN_SYM': {
        const [lo, hi] = listItems(body.rexpr).map((i) => this.fold(i))
        if (l === undefined || lo === undefined || hi === undefined) return MAYBE
        if (l.k === 'const' && lo.k === 'const' && hi.k === 'const') {
          let [a, b] = [lo.v, hi.v]
          if (kind.endsWith('_SYM') && binary('>', a, b) === true) [a, b] = [b, a]
          const lower = binary('>=', l.v, a)
          const upper = binary('<=', l.v, b)
          if (lower === undefined || upper === undefined) return MAYBE
          const inside = lower === false || upper === false ? false : lower === null || upper === null ? null : true
          if (inside === null) return NULL
          return {k: 'const', v: kind.includes('NOT') ? !inside : inside}
        }
        return combine([l, lo, hi])
      }
      case 'AEXPR_LIKE':
      case 'AEXPR_ILIKE': {
        if (l === undefined || r === undefined) return MAYBE
        if (l.k === 'const' && r.k === 'const' && typeof l.v === 'string' && typeof r.v === 'string') {
          const hit = likeRegex(r.v, kind === 'AEXPR_ILIKE').test(l.v)
          return {k: 'const', v: op.startsWith('!') ? !hit : hit}
        }
        return combine([l, r])
      }
      default:
        return combine([l, r].filter((x): x is Folded => x !== undefined))
    }
  }

  private columnIsTarget(body: Obj): boolean {
    const parts = strings(body.fields)
    if (parts.length <= 1) return true
    return this.targetNames.has(parts[parts.length - 2]!)
  }

  /**
   * Whether any column reference in the subtree may read the target row. Unqualified names count:
   * without the catalog a correlated `customer_id` cannot be told from a column of the subquery's
   * own table, and correlated subqueries are usually written unqualified (limit in docs/policy.md).
   */
  private mentionsTarget(node: unknown): boolean {
    if (Array.isArray(node)) return node.some((n) => this.mentionsTarget(n))
    if (!isObj(node)) return false
    for (const [key, value] of Object.entries(node)) {
      if (key === 'ColumnRef' && isObj(value) && this.columnIsTarget(value)) return true
      if (key === 'CurrentOfExpr') return true
      if (this.mentionsTarget(value)) return true
    }
    return false
  }
}

function listItems(node: unknown): unknown[] {
  if (Array.isArray(node)) return node
  const u = unwrap(node)
  if (u && u[0] === 'List' && Array.isArray(u[1].items)) return u[1].items
  return node === undefined ? [] : [node]
}

function combine(parts: Folded[]): Folded {
  if (parts.some((p) => p.k === 'row')) return ROW
  return MAYBE
}

const COMPLEMENT: Record<string, string> = {'=': '<>', '<>': '=', '!=': '=', '<': '>=', '>=': '<', '>': '<=', '<=': '>'}

/** `A OR NOT A`, `x IS NULL OR x IS NOT NULL`, `x = 1 OR x <> 1`. */
function hasComplementaryPair(args: unknown[]): boolean {
  for (const a of args) {
    const ua = unwrap(a)
    if (!ua) continue
    for (const b of args) {
      if (a === b) continue
      const ub = unwrap(b)
      if (!ub) continue
      if (ua[0] === 'BoolExpr' && ua[1].boolop === 'NOT_EXPR' && Array.isArray(ua[1].args) && sameExpr(ua[1].args[0], b)) return true
      if (
        ua[0] === 'NullTest' &&
        ub[0] === 'NullTest' &&
        ua[1].nulltesttype !== ub[1].nulltesttype &&
        sameExpr(ua[1].arg, ub[1].arg)
      )
        return true
      if (
        ua[0] === 'A_Expr' &&
        ub[0] === 'A_Expr' &&
        ua[1].kind === 'AEXPR_OP' &&
        ub[1].kind === 'AEXPR_OP' &&
        COMPLEMENT[strings(ua[1].name).at(-1) ?? ''] === strings(ub[1].name).at(-1) &&
        sameExpr(ua[1].lexpr, ub[1].lexpr) &&
        sameExpr(ua[1].rexpr, ub[1].rexpr)
      )
        return true
    }
  }
  return false
}

function constValue(body: Obj): Scalar {
  if (body.isnull) return null
  const inner = (k: string, f: string): unknown => (isObj(body[k]) ? (body[k] as Obj)[f] : undefined)
  // Protobuf JSON leaves out default values, so `{boolval: {}}` is false and `{ival: {}}` is 0.
  if ('boolval' in body) return inner('boolval', 'boolval') === true
  if ('ival' in body) return Number(inner('ival', 'ival') ?? 0)
  if ('fval' in body) return Number(inner('fval', 'fval') ?? 0)
  if ('sval' in body) return String(inner('sval', 'sval') ?? '')
  if ('bsval' in body) return String(inner('bsval', 'bsval') ?? '')
  return null
}

function castFolded(arg: Folded, typeName: unknown): Folded {
  if (arg.k !== 'const' || arg.v === null) return arg
  const names = isObj(typeName) ? strings(typeName.names) : []
  const type = names.at(-1) ?? ''
  if (type === 'bool' || type === 'boolean') {
    const b = toBool(arg.v)
    return b === undefined ? MAYBE : {k: 'const', v: b}
  }
  if (['int2', 'int4', 'int8', 'numeric', 'float4', 'float8'].includes(type)) {
    const n = Number(arg.v)
    return Number.isFinite(n) ? {k: 'const', v: n} : MAYBE
  }
  if (['text', 'varchar', 'bpchar', 'name'].includes(type)) return {k: 'const', v: String(arg.v)}
  return MAYBE
}

/** PostgreSQL's boolean input syntax (boolin), including unique prefixes. */
function toBool(v: Scalar): boolean | undefined {
  if (typeof v === 'boolean') return v
  if (typeof v === 'number') return v !== 0
  const s = String(v).trim().toLowerCase()
  if (s === '') return undefined
  if (s === '1' || s === 'on' || 'true'.startsWith(s) || 'yes'.startsWith(s)) return true
  if (s === '0' || s === 'off' || s === 'of' || 'false'.startsWith(s) || 'no'.startsWith(s)) return false
  return undefined
}

function foldBooleanTest(arg: Folded, test: string): Folded {
  if (arg.k !== 'const') return arg
  const v = arg.v === null ? null : toBool(arg.v) ?? null
  switch (test) {
    case 'IS_TRUE':
      return {k: 'const', v: v === true}
    case 'IS_NOT_TRUE':
      return {k: 'const', v: v !== true}
    case 'IS_FALSE':
      return {k: 'const', v: v === false}
    case 'IS_NOT_FALSE':
      return {k: 'const', v: v !== false}
    case 'IS_UNKNOWN':
      return {k: 'const', v: v === null}
    case 'IS_NOT_UNKNOWN':
      return {k: 'const', v: v !== null}
    default:
      return MAYBE
  }
}

function unary(op: string, r: Folded): Folded {
  if (r.k !== 'const') return r
  if (r.v === null) return NULL
  if (op === '-') return typeof r.v === 'number' ? {k: 'const', v: -r.v} : MAYBE
  if (op === '+') return r
  return MAYBE
}

function computed(v: Scalar | undefined): Folded {
  return v === undefined ? MAYBE : {k: 'const', v}
}

/**
 * Applies a binary operator to constants; undefined when we cannot compute it (an operator we do
 * not model, a type error the server would raise). Comparisons follow SQL: NULL in, NULL out. Mixed
 * number/string operands compare numerically when the string is a number, as PostgreSQL would
 * after resolving the unknown-typed literal to the other side's type.
 */
function binary(op: string, a: Scalar, b: Scalar): Scalar | undefined {
  if (a === null || b === null) return null
  let x: Scalar = a
  let y: Scalar = b
  if (typeof x !== typeof y) {
    if (typeof x === 'boolean' || typeof y === 'boolean') {
      const bx = toBool(x)
      const by = toBool(y)
      if (bx === undefined || by === undefined) return undefined
      x = bx
      y = by
    } else {
      const nx = Number(x)
      const ny = Number(y)
      if (!Number.isFinite(nx) || !Number.isFinite(ny)) return undefined
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
      return x < y
    case '>':
      return x > y
    case '<=':
      return x <= y
    case '>=':
      return x >= y
    case '+':
      return typeof x === 'number' && typeof y === 'number' ? x + y : undefined
    case '-':
      return typeof x === 'number' && typeof y === 'number' ? x - y : undefined
    case '*':
      return typeof x === 'number' && typeof y === 'number' ? x * y : undefined
    case '/':
      return typeof x === 'number' && typeof y === 'number' && y !== 0 ? x / y : undefined
    case '%':
      return typeof x === 'number' && typeof y === 'number' && y !== 0 ? x % y : undefined
    case '||':
      return String(a) + String(b)
    default:
      return undefined
  }
}

function likeRegex(pattern: string, insensitive: boolean): RegExp {
  let re = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!)
    else if (c === '%') re += '[\\s\\S]*'
    else if (c === '_') re += '[\\s\\S]'
    else re += escapeRe(c)
  }
  return new RegExp(`^${re}$`, insensitive ? 'i' : '')
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

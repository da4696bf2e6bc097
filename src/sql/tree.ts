/**
 * Small readers for libpg_query's JSON tree. Nodes typed as a generic `Node` arrive wrapped
 * (`{"RangeVar": {...}}`); fields with a concrete type arrive bare (`relation: {...}`); and protobuf
 * JSON leaves out every default value (false, 0, empty), so absence is meaningful.
 */

export type Obj = Record<string, unknown>

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** `[type, body]` of a wrapped node, or undefined. */
export function unwrap(node: unknown): [string, Obj] | undefined {
  if (!isObj(node)) return undefined
  const keys = Object.keys(node)
  if (keys.length !== 1) return undefined
  const type = keys[0]!
  const body = node[type]
  return isObj(body) && /^[A-Z]/.test(type) ? [type, body] : undefined
}

export function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : []
}

/** The text of a `String` node list such as a qualified name: `[{String:{sval:'s'}}, ...]`. */
export function names(v: unknown): string[] {
  const out: string[] = []
  for (const item of list(v)) {
    const u = unwrap(item)
    if (u && u[0] === 'String') out.push(typeof u[1].sval === 'string' ? u[1].sval : '')
  }
  return out
}

/** `v` when it is a string (a tree field such as `relname`), else undefined; for a wrapped `String` node use `svalOf`. */
export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

/** The text of a wrapped `String` node (`{String: {sval: 's'}}`), or undefined for any other node. */
export function svalOf(node: unknown): string | undefined {
  const u = unwrap(node)
  return u && u[0] === 'String' ? str(u[1].sval) : undefined
}

/** A bare RangeVar: the shape of `relation`, `rel`, `view`, `table` fields. */
export function isRangeVar(v: unknown): v is Obj {
  return isObj(v) && typeof v.relname === 'string' && 'relpersistence' in v
}

/** A bare FuncCall, as in `CallStmt.funccall`. */
export function isFuncCall(v: unknown): v is Obj {
  return isObj(v) && Array.isArray(v.funcname) && 'funcformat' in v
}

/** The constant text of an A_Const / String / TypeCast-of-constant, if it is one. */
export function constText(node: unknown): string | undefined {
  const u = unwrap(node)
  if (!u) return undefined
  const [type, body] = u
  if (type === 'String') return str(body.sval) ?? ''
  if (type === 'TypeCast') return constText(body.arg)
  if (type !== 'A_Const' || body.isnull) return undefined
  const inner = (k: string): unknown => (isObj(body[k]) ? (body[k] as Obj)[k] : undefined)
  if ('sval' in body) return str(inner('sval')) ?? ''
  if ('ival' in body) return String(inner('ival') ?? 0)
  if ('fval' in body) return str(inner('fval')) ?? '0'
  if ('boolval' in body) return inner('boolval') === true ? 'true' : 'false'
  if ('bsval' in body) return str(inner('bsval')) ?? ''
  return undefined
}

/** `OBJECT_FOREIGN_TABLE` → `foreign_table`. */
export function objectKind(v: unknown): string | undefined {
  return typeof v === 'string' ? v.replace(/^OBJECT_/, '').toLowerCase() : undefined
}

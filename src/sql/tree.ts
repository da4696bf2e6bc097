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

/** Whether a cast to `typeName` leaves a string's text as it is: `text` or `varchar` with no length, not an array. */
function keepsText(typeName: unknown): boolean {
  if (!isObj(typeName) || typeName.typmods !== undefined || typeName.arrayBounds !== undefined || typeName.setof) return false
  const parts = list(typeName.names).map((n) => (isObj(n) && isObj(n.String) ? n.String.sval : undefined))
  const bare = parts.at(-1)
  return (parts.length === 1 || (parts.length === 2 && parts[0] === 'pg_catalog')) && (bare === 'text' || bare === 'varchar')
}

/** The constant text of an A_Const / String / TypeCast-of-constant (to unbounded text), if it is one. */
export function constText(node: unknown): string | undefined {
  const u = unwrap(node)
  if (!u) return undefined
  const [type, body] = u
  if (type === 'String') return str(body.sval) ?? ''
  // Through a cast only to unbounded text: any other cast may change the text the server then
  // uses (`'pg_tempest'::varchar(7)` is 'pg_temp', `'abc'::char` is 'a', `'5s'::interval` prints
  // as '00:00:05'), so its value is not the literal's.
  if (type === 'TypeCast') return keepsText(body.typeName) ? constText(body.arg) : undefined
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

/**
 * Calls `visit` with every object node of a parse tree (each node once, depth-first, arrays
 * looked through); `visit` returning true stops the walk. Whether it stopped.
 */
export function eachNode(tree: unknown, visit: (node: Obj) => boolean | void): boolean {
  const stack: unknown[] = [tree]
  while (stack.length > 0) {
    const node = stack.pop()
    if (typeof node !== 'object' || node === null) continue
    if (Array.isArray(node)) {
      for (const v of node) stack.push(v)
      continue
    }
    if (visit(node as Obj)) return true
    for (const v of Object.values(node)) stack.push(v)
  }
  return false
}

/**
 * PL/pgSQL hands an embedded query's references to its variables (`OLD.id`, `v_id`, a parameter)
 * to the server as parameters: `DELETE FROM t WHERE id = OLD.id` is `… WHERE id = $1` to the
 * planner. The walker, which sees the query as a client's, would take `OLD.id` for a column of a
 * relation named `old` that is not there. This rewrites those references into parameters, so the
 * body's statements are judged as the server runs them (a trigger's filtered DELETE stays filtered).
 *
 * Only where a variable surely wins: PL/pgSQL's default (`variable_conflict = error`) refuses a
 * name that is both a column and a variable, and `use_variable` picks the variable. A body that
 * says `#variable_conflict use_column` (or sets it in its SET clause) lets a column win, so nothing
 * is rewritten there and its references stay columns (judged as the walker judges unknown ones).
 */

type Node = unknown

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function firstField(columnRef: Record<string, unknown>): string | undefined {
  const fields = columnRef.fields
  if (!Array.isArray(fields) || fields.length === 0) return undefined
  const f = fields[0]
  if (!isObj(f) || !isObj(f.String)) return undefined
  const s = f.String.sval
  return typeof s === 'string' ? s : undefined
}

/** `node` with every column reference whose first name is one of `variables` replaced by a parameter; `node` itself when there is none. */
export function variablesAsParams(node: Node, variables: ReadonlySet<string>): Node {
  if (variables.size === 0) return node
  const walk = (v: Node): Node => {
    if (Array.isArray(v)) {
      let out: unknown[] | undefined
      v.forEach((x, i) => {
        const y = walk(x)
        if (y !== x) (out ??= v.slice())[i] = y
      })
      return out ?? v
    }
    if (!isObj(v)) return v
    if (isObj(v.ColumnRef)) {
      const name = firstField(v.ColumnRef)
      if (name !== undefined && variables.has(name)) {
        const location = v.ColumnRef.location
        return {ParamRef: {number: 1, ...(typeof location === 'number' ? {location} : {})}}
      }
      return v
    }
    let out: Record<string, unknown> | undefined
    for (const [k, x] of Object.entries(v)) {
      const y = walk(x)
      if (y !== x) (out ??= {...v})[k] = y
    }
    return out ?? v
  }
  return walk(node)
}

/** Whether a PL/pgSQL definition lets columns win over variables of the same name. */
export function columnsWin(definition: string, config: readonly string[] | undefined): boolean {
  if (/#\s*variable_conflict\s+use_column/i.test(definition)) return true
  return (config ?? []).some((c) => /^\s*plpgsql\.variable_conflict\s*=/i.test(c))
}

/** The names of a PL/pgSQL function's variables (its parameters, NEW/OLD and TG_* in a trigger, its declarations), as the parser stores them. */
export function variableNames(datums: readonly unknown[]): Set<string> {
  const out = new Set<string>()
  for (const d of datums) {
    if (!isObj(d)) continue
    for (const value of Object.values(d)) {
      if (isObj(value) && typeof value.refname === 'string') out.add(value.refname)
    }
  }
  return out
}

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

/**
 * `node` with every reference to one of `variables` replaced by a parameter; `node` itself when
 * there is none. As PL/pgSQL resolves a name: a single name (`v_id`) is the variable, two names are
 * a field of a record (`OLD.id`, when `records` has `old`); a scalar variable followed by a field
 * (`x.id`, x an int) is no variable to PL/pgSQL, so the server reads the column of the relation
 * aliased x. Names PL/pgSQL reads as a block label or the function's name (`blk.v`) stay columns.
 */
export function variablesAsParams(node: Node, variables: ReadonlySet<string>, records: ReadonlySet<string> = new Set()): Node {
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
      const parts = Array.isArray(v.ColumnRef.fields) ? v.ColumnRef.fields.length : 0
      if (name !== undefined && variables.has(name) && (parts === 1 || (parts === 2 && records.has(name)))) {
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

/**
 * The names of a PL/pgSQL function's variables that are variables in every statement of its body:
 * those PL/pgSQL declares itself (its parameters, NEW/OLD and TG_* in a trigger, FOUND: no line)
 * and those the outermost block declares (`outer`, `outerDeclarations`). Any other is a variable
 * only in its scope (a FOR loop's counter, an exception handler's SQLSTATE, an inner block's
 * declaration) and a column elsewhere: `scopeOf` adds it where it is one.
 */
export function variableNames(datums: readonly unknown[], outer: ReadonlySet<string>): Set<string> {
  const out = new Set<string>()
  for (const d of datums) {
    if (!isObj(d)) continue
    for (const value of Object.values(d)) {
      if (!isObj(value) || typeof value.refname !== 'string') continue
      const declaredByPlpgsql = typeof value.lineno !== 'number' || value.lineno === 0
      if (declaredByPlpgsql || outer.has(value.refname)) out.add(value.refname)
    }
  }
  return out
}

/**
 * The names among `datums` that are records wherever they are variables: NEW and OLD, a `record`
 * or `%ROWTYPE` declaration, a cursor loop's record. The parser has no catalog: it shows a variable
 * of a type it does not know (a domain, an enum, a composite type) as a record too, which may be a
 * scalar to the server, so those are left out, and so is a name any scalar variable also has.
 */
export function recordNames(datums: readonly unknown[]): Set<string> {
  const records = new Set<string>()
  const scalars = new Set<string>()
  for (const d of datums) {
    if (!isObj(d)) continue
    for (const [kind, value] of Object.entries(d)) {
      if (!isObj(value) || typeof value.refname !== 'string') continue
      const typname = isObj(value.datatype) && isObj(value.datatype.PLpgSQL_type) ? value.datatype.PLpgSQL_type.typname : undefined
      // The tree shows `t%ROWTYPE` as a scalar, a record declared by PL/pgSQL (NEW, a loop's) without a type.
      const record = typeof typname === 'string' ? /^(record|.*%rowtype)$/i.test(typname.trim()) : kind === 'PLpgSQL_rec'
      ;(record ? records : scalars).add(value.refname)
    }
  }
  return new Set([...records].filter((n) => !scalars.has(n)))
}

/**
 * The names the outermost block's DECLARE section declares, read from the body's tokens (the
 * parser's tree does not say which block declared a variable): the first name after `DECLARE` and
 * after each `;` outside brackets, up to the `BEGIN` that ends the section. Anything unexpected
 * (no section, no `BEGIN`) gives none: those names then stay columns, which never passes a write
 * that the server would run as unfiltered.
 */
export function outerDeclarations(tokens: readonly {text: string}[]): Set<string> {
  const none = new Set<string>()
  const word = (t: {text: string} | undefined) => (t === undefined || t.text.startsWith('"') ? undefined : t.text.toLowerCase())
  let i = 0
  // Compiler options (`#variable_conflict use_column`, `#option dump`) are three tokens each.
  while (tokens[i]?.text === '#') i += 3
  if (tokens[i]?.text === '<<') {
    if (tokens[i + 2]?.text !== '>>') return none
    i += 3
  }
  if (word(tokens[i]) !== 'declare') return none
  const out = new Set<string>()
  let expectName = true
  let depth = 0
  for (i++; i < tokens.length; i++) {
    const t = tokens[i]!
    const w = word(t)
    if (t.text === '(' || t.text === '[') depth++
    else if (t.text === ')' || t.text === ']') depth--
    if (depth > 0) continue
    if (w === 'begin') return out
    if (w === 'declare' || t.text === ';') {
      expectName = true
      continue
    }
    if (expectName) {
      out.add(t.text.startsWith('"') ? t.text.slice(1, -1).replace(/""/g, '"') : t.text.toLowerCase())
      expectName = false
    }
  }
  return none
}

/**
 * The variables in scope in the field `field` of the PL/pgSQL node `key`, given those in scope at
 * the node: a FOR loop's variable in its body (the counter of `FOR i IN 1..n` and the record of a
 * cursor loop are declared by the loop; a query loop's target is a variable where the loop is),
 * SQLSTATE and SQLERRM in an exception handler.
 */
export function scopeOf(key: string, node: Record<string, unknown>, field: string, scope: ReadonlySet<string>): ReadonlySet<string> {
  if (key === 'PLpgSQL_exception_block') return new Set([...scope, 'sqlstate', 'sqlerrm'])
  if (field !== 'body' || !/^PLpgSQL_stmt_for/.test(key) || !isObj(node.var)) return scope
  const names = Object.values(node.var).flatMap((v) => (isObj(v) && typeof v.refname === 'string' ? [v.refname] : []))
  return names.length === 0 ? scope : new Set([...scope, ...names])
}

/**
 * PostgreSQL's built-in functions as its own catalog describes them: one generated table
 * (builtins.generated.ts, by `npm run gen:builtins`) that the guardrails (src/policy/builtins.ts)
 * and masking's lineage (src/masking/functions.ts) both read.
 */
import {BUILTIN_FUNCTIONS} from './builtins.generated.js'

export type BuiltinFunctionRow = readonly [schema: string, name: string, args: string, volatility: string, kind: string, retset: boolean, ndefaults: number, variadic: boolean, returns: string]
export type BuiltinOperatorRow = readonly [name: string, left: string, right: string, func: string, volatility: string]

let immutable: ReadonlySet<string> | undefined

/**
 * The names of the built-in functions (schema pg_catalog) whose every overload is IMMUTABLE,
 * leaving out those whose every overload takes or returns `internal` (no SQL can call them).
 * PostgreSQL's contract for an immutable function is that it reads nothing but its arguments: no
 * table, no setting, no other session. That is the proof lineage relies on when it lets such a
 * function's result be as clean as its arguments.
 */
export function immutableBuiltins(): ReadonlySet<string> {
  if (immutable) return immutable
  const byName = new Map<string, {immutable: boolean; internalOnly: boolean}>()
  for (const [schema, name, args, volatility, , , , , returns] of BUILTIN_FUNCTIONS) {
    if (schema !== 'pg_catalog') continue
    let e = byName.get(name)
    if (!e) byName.set(name, (e = {immutable: true, internalOnly: true}))
    if (volatility !== 'i') e.immutable = false
    if (returns !== 'internal' && !args.split(',').includes('internal')) e.internalOnly = false
  }
  immutable = new Set([...byName].filter(([, e]) => e.immutable && !e.internalOnly).map(([name]) => name))
  return immutable
}

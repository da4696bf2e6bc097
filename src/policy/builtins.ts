/** The generated built-in catalog (src/sql/builtins.generated.ts), indexed for lookups. */
import {BUILTIN_FUNCTIONS, BUILTIN_OPERATORS, BUILTIN_TYPES} from '../sql/builtins.generated.js'
import type {FunctionCandidate} from './functions.js'

export type Volatility = 'i' | 's' | 'v'
/** pg_proc.prokind: f function, a aggregate, w window, p procedure. */
export type ProKind = 'f' | 'a' | 'w' | 'p'

let builtinIndex: Map<string, FunctionCandidate[]> | undefined
let builtinOperatorNames: Set<string> | undefined
let builtinTypeNames: Set<string> | undefined

/** The built-in overloads of `name` (pg_catalog, information_schema), from the generated table. */
export function builtinCandidates(name: string): readonly FunctionCandidate[] | undefined {
  if (!builtinIndex) {
    builtinIndex = new Map()
    for (const [schema, fname, args, volatility, kind, _retset, ndefaults, variadic] of BUILTIN_FUNCTIONS) {
      const nargs = args === '' ? 0 : splitArgs(args).length
      let list = builtinIndex.get(fname)
      if (!list) builtinIndex.set(fname, (list = []))
      list.push({schema, name: fname, args, volatility: volatility as Volatility, kind, nargs, ndefaults, variadic})
    }
  }
  return builtinIndex.get(name)
}

/** Type lists such as `numeric(10,2),text` have commas inside parentheses too. */
function splitArgs(args: string): string[] {
  const out: string[] = []
  let depth = 0
  let cur = ''
  for (const ch of args) {
    if (ch === '(') depth++
    if (ch === ')') depth--
    if (ch === ',' && depth === 0) {
      out.push(cur)
      cur = ''
    } else cur += ch
  }
  out.push(cur)
  return out
}

export function isBuiltinOperator(symbol: string): boolean {
  builtinOperatorNames ??= new Set(BUILTIN_OPERATORS.map((o) => o[0]))
  return builtinOperatorNames.has(symbol)
}

export function isBuiltinType(name: string): boolean {
  builtinTypeNames ??= new Set(BUILTIN_TYPES)
  return builtinTypeNames.has(name)
}


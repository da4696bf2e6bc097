/**
 * SQL text in, one classification per statement out. Fails closed: text that does not parse, is
 * too large, or holds something the walker does not understand comes back as class `unknown`.
 */
import {parseStatements} from '../sql/parser.js'
import {variablesAsParams} from './plpgsql-variables.js'
import type {Analysis, AnalyzeOptions, Operation, StatementAnalysis, StatementClass, TableRef} from './types.js'
import {StatementWalker, type WalkResult} from './walker.js'

export const DEFAULT_MAX_STATEMENT_SIZE = 1024 * 1024

/**
 * Which operation speaks for a statement in summaries. Higher is more telling: a SELECT that also
 * deletes through a CTE is summarised as the delete.
 */
const SUMMARY_RANK: Record<StatementClass, number> = {
  unknown: 8,
  privilege: 7,
  admin: 6,
  opaque: 5,
  ddl: 4,
  write: 3,
  session: 2,
  transaction: 1,
  read: 0,
}

export function primaryOperation(ops: readonly Operation[]): Operation | undefined {
  let best: Operation | undefined
  for (const o of ops) if (!best || SUMMARY_RANK[o.class] > SUMMARY_RANK[best.class]) best = o
  return best
}

/** Analyses `sql`. Requires `loadParser()` to have resolved; before that everything is `unknown`. */
export function analyze(sql: string, opts: AnalyzeOptions = {}): Analysis {
  const cap = opts.maxStatementSize ?? DEFAULT_MAX_STATEMENT_SIZE
  const size = Buffer.byteLength(sql, 'utf8')
  if (size > cap) {
    return {sql, statements: [unknownStatement(0, sql, `statement text is ${size} bytes, over the ${cap}-byte limit (the target's tunnel.maxStatementSize): send it in smaller statements, or raise the limit`)]}
  }
  const parsed = parseStatements(sql)
  if (!parsed.ok) {
    const stmt = unknownStatement(0, sql, `could not parse: ${parsed.error}`)
    return {sql, statements: [parsed.syntax ? {...stmt, syntaxError: parsed.syntax} : stmt]}
  }
  const statements = parsed.statements.map((raw, index) => {
    let walked: WalkResult
    try {
      walked = StatementWalker.walk(opts.variables ? (variablesAsParams(raw.node, opts.variables, opts.records) as typeof raw.node) : raw.node)
    } catch (err) {
      // A tree deep enough to exhaust the stack is refused, not half-judged.
      return unknownStatement(index, raw.text, `could not analyse: ${err instanceof Error ? err.message : String(err)}`)
    }
    return summarise(index, raw.text, walked)
  })
  return {sql, statements}
}

/** Builds a statement's summary fields from its operations. */
export function summarise(index: number, text: string, walked: WalkResult): StatementAnalysis {
  const ops = walked.operations.length > 0 ? walked.operations : [unknownOperation('the statement produced nothing to judge')]
  const primary = primaryOperation(ops)!
  const tables: TableRef[] = []
  const functions: string[] = []
  for (const o of ops) {
    for (const t of o.tables) {
      if (!tables.some((x) => x.name === t.name && x.schema === t.schema && x.access === t.access)) tables.push(t)
    }
    for (const f of o.functions) if (!functions.includes(f)) functions.push(f)
  }
  const unknown = ops.find((o) => o.class === 'unknown')
  return {
    index,
    text,
    class: primary.class,
    // A dangerous call is summarised by the statement that makes it: `admin` + `select`.
    command: walked.command ?? (primary.command === 'function' ? ops[0]!.command : primary.command),
    ...(primary.where ? {where: primary.where} : {}),
    tables,
    functions,
    operations: ops,
    ...(walked.prepare ? {prepare: walked.prepare} : {}),
    ...(walked.deallocate ? {deallocate: walked.deallocate} : {}),
    ...(unknown?.detail ? {error: unknown.detail} : {}),
  }
}

export function unknownOperation(detail: string): Operation {
  return {class: 'unknown', command: 'unknown', tables: [], functions: [], flags: [], detail}
}

function unknownStatement(index: number, text: string, error: string): StatementAnalysis {
  return {index, text, class: 'unknown', command: 'unknown', tables: [], functions: [], operations: [unknownOperation(error)], error}
}

/** `stmt` summarised again over `operations` (what PREPARE, EXECUTE and DEALLOCATE say kept). */
export function withOperations(stmt: StatementAnalysis, operations: Operation[]): StatementAnalysis {
  const special = stmt.command === 'prepare' || stmt.command === 'execute' ? stmt.command : undefined
  return summarise(stmt.index, stmt.text, {
    operations,
    ...(special ? {command: special} : {}),
    ...(stmt.prepare ? {prepare: stmt.prepare} : {}),
    ...(stmt.deallocate ? {deallocate: stmt.deallocate} : {}),
  })
}

/** `statements` with `fn` applied to each; the same array when `fn` changed none (callers memoise by it). */
export function mapStatements(statements: readonly StatementAnalysis[], fn: (s: StatementAnalysis, i: number) => StatementAnalysis): StatementAnalysis[] {
  let out: StatementAnalysis[] | undefined
  for (let i = 0; i < statements.length; i++) {
    const s = statements[i]!
    const r = fn(s, i)
    if (r !== s) out ??= statements.slice(0, i)
    out?.push(r)
  }
  return out ?? (statements as StatementAnalysis[])
}

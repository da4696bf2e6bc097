/**
 * Read-only sessions (AI agents by default): an allow-list of what such a session may run, judged
 * before the target's rules. Reads pass; of everything else only what cannot change data or undo
 * read-only does: SHOW, a few harmless settings (timeouts, formats), transaction control that does
 * not ask for READ WRITE, and `SET SESSION CHARACTERISTICS` / `SET TRANSACTION` that only make
 * things stricter. Everything not on the list is refused, including every way back to writing
 * (`SET default_transaction_read_only`, `set_config('transaction_read_only', …)`, `RESET ALL`,
 * `DISCARD ALL`, `BEGIN READ WRITE`, role changes).
 *
 * The server enforces read-only too (`SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY` on
 * every agent session): this check keeps a write from ever reaching it, and keeps the agent from
 * talking its way out of the server's setting.
 */
import {parseTree} from '../sql/parser.js'
import {offlineCatalog, resolveCatalogCalls} from './catalog.js'
import type {Analysis, Operation, RuleDecision, StatementAnalysis} from './types.js'

export const READ_ONLY_RULE = 'agent.read-only'

/** Settings whose value cannot change what data a statement may touch or whether it may write. */
const HARMLESS_SETTINGS = new Set([
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'timezone',
  'datestyle',
  'intervalstyle',
  'extra_float_digits',
  'client_min_messages',
])

/** Transaction control that cannot turn writing back on. `begin` is judged on its options. */
const HARMLESS_TRANSACTION = new Set(['commit', 'rollback', 'savepoint', 'release', 'rollback_to'])

type Obj = Record<string, unknown>

function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined
}

/**
 * Whether a list of transaction options (`BEGIN …`, `SET TRANSACTION …`) only sets isolation,
 * deferrable or READ ONLY. READ WRITE (`transaction_read_only` 0), or anything unreadable, is not.
 */
function onlyStricterModes(options: unknown): boolean {
  if (options === undefined) return true
  if (!Array.isArray(options)) return false
  return options.every((o) => {
    const d = obj(obj(o)?.DefElem)
    if (!d) return false
    if (d.defname === 'transaction_isolation' || d.defname === 'transaction_deferrable') return true
    if (d.defname !== 'transaction_read_only') return false
    const ival = obj(obj(obj(d.arg)?.A_Const)?.ival)
    return ival?.ival === 1
  })
}

function statementNode(sql: string, index: number): Obj | undefined {
  try {
    return obj(parseTree(sql).stmts?.[index]?.stmt)
  } catch {
    return undefined
  }
}

/** Why `op` (of statement `index` in `sql`) may not run in a read-only session; undefined when it may. */
function refusal(op: Operation, sql: string, index: number): string | undefined {
  // A function the built-ins do not hold is the target's own: policy judges it with the target's
  // catalog, and a read-only session refuses whatever that makes more than a read (pipeline/policy.ts).
  if (op.command === 'function' && op.flags.includes('unknown_function')) return undefined
  // A read that also signals processes, touches server files or runs SQL text the parser never
  // saw is not a plain read, whatever the rules say of it elsewhere.
  if (op.class === 'read') return op.flags.length === 0 ? undefined : `it calls something with effects beyond reading (${op.flags.join(', ')})`
  if (op.class === 'session') {
    if (op.command === 'show') return undefined
    // set_config's own call: the setting it writes is judged as a `set` operation of the statement.
    if (op.command === 'function' && op.flags.length === 0 && op.functions.length > 0 && op.functions.every(isSetConfig)) return undefined
    if (op.command === 'function') return `it calls ${op.functions.join(', ') || 'a function'}, which ${op.detail ?? 'has effects beyond reading'}`
    const name = op.setting?.name
    if ((op.command === 'set' || op.command === 'reset') && name && HARMLESS_SETTINGS.has(name)) return undefined
    if (op.command === 'set' && (name === 'session characteristics' || name === 'transaction')) {
      const set = obj(statementNode(sql, index)?.VariableSetStmt)
      if (set && set.kind === 'VAR_SET_MULTI' && onlyStricterModes(set.args)) return undefined
      return 'it could turn writing back on (only READ ONLY, isolation and deferrable modes are allowed)'
    }
    if (name) return `it changes the setting ${name}, which a read-only session may not change`
    return `${op.command.toUpperCase()} could undo the session's read-only setting`
  }
  if (op.class === 'transaction') {
    if (HARMLESS_TRANSACTION.has(op.command)) return undefined
    if (op.command === 'begin') {
      const tx = obj(statementNode(sql, index)?.TransactionStmt)
      if (tx && onlyStricterModes(tx.options)) return undefined
      return 'BEGIN READ WRITE would start a transaction that may write'
    }
    return `${op.command.replace(/_/g, ' ').toUpperCase()} is not allowed in a read-only session`
  }
  if (op.command === 'function') return `it calls ${op.functions.join(', ') || 'a function'}, which ${op.detail ?? `is a ${op.class} operation`}`
  return `it is a ${op.class} statement (${op.command}), and this session may only read`
}

/**
 * The first statement of `analysis` a read-only session may not run, as a deny decision citing
 * `agent.read-only`; undefined when every statement may run (the target's rules still judge it).
 * Statements that did not parse are left to the guardrails, which refuse them with the parser's
 * own message.
 */
export function readOnlyViolation(analysis: Analysis, opts: {hint?: string} = {}): RuleDecision | undefined {
  // Built-in calls are judged by what they do (pg_notify and advisory locks reach other sessions,
  // nextval writes): the statement's own operations only say it is a SELECT. Functions only the
  // target's catalog knows are judged by policy with it, and a read-only session refuses what
  // policy would hold for a reviewer (pipeline/policy.ts).
  for (const stmt of resolveCatalogCalls(analysis.statements, offlineCatalog)) {
    if (stmt.error && stmt.class === 'unknown' && stmt.operations.every((o) => o.class === 'unknown')) continue
    const found = firstRefused(stmt, analysis.sql)
    if (found) {
      return {
        action: 'deny',
        ruleId: READ_ONLY_RULE,
        reason: `this session is read-only: ${found.reason}`,
        hint: opts.hint ?? 'run only reads here, or ask a person to run the change',
        statementIndex: stmt.index,
        operationIndex: found.operationIndex,
        command: found.op.command,
        class: found.op.class,
      }
    }
  }
  return undefined
}

function isSetConfig(name: string): boolean {
  return name === 'set_config' || name === 'pg_catalog.set_config'
}

function firstRefused(stmt: StatementAnalysis, sql: string): {op: Operation; operationIndex: number; reason: string} | undefined {
  for (const [operationIndex, op] of stmt.operations.entries()) {
    const reason = refusal(op, sql, stmt.index)
    if (reason) return {op, operationIndex, reason}
  }
  return undefined
}

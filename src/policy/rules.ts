/**
 * Rule evaluation. A target's own rules run first, in order, and the first that matches an
 * operation decides it; the built-in pack runs after them the same way. A statement's decision is
 * the strictest of its operations', and a text's the strictest of its statements'.
 */
import {primaryOperation} from './analyze.js'
import {defaultPack} from './default-pack.js'
import {anyGlobMatches, functionNames, schemaGlobsMatch, tableNames} from './glob.js'
import {describeTable, everyTableReason} from './views.js'
import type {Analysis, ClientKind, BuiltinRule, TableRef, Decision, Operation, PolicyAction, PolicyPackName, PolicyRule, RuleDecision, StatementAnalysis} from './types.js'

export const STRICTNESS: Record<PolicyAction, number> = {allow: 0, warn: 1, require_approval: 2, deny: 3}

export interface EvaluateOptions {
  rules?: readonly PolicyRule[]
  /** `default`, `none`, or an explicit list of built-in rules. */
  pack?: PolicyPackName | readonly BuiltinRule[]
  /** The identity's groups, for `match.groups`. */
  groups?: readonly string[]
  /** Which client the session comes through, for `match.client`; default `connect`. */
  client?: ClientKind
}

function asList<T>(v: T | readonly T[] | undefined): readonly T[] | undefined {
  if (v === undefined) return undefined
  return Array.isArray(v) ? (v as readonly T[]) : [v as T]
}

/**
 * Whether `rule` applies to `op`. Table and function lists are read by the rule's action: a
 * restricting rule (deny, require_approval, warn) applies when any name matches, an allow rule only
 * when every name the operation touches matches, so an allow for `scratch.*` cannot carry a
 * statement that also touches another table.
 */
export function ruleMatches(rule: PolicyRule, op: Operation, groups: readonly string[] = [], client: ClientKind = 'connect'): boolean {
  const m = rule.match
  const clients = asList(m.client)
  if (clients && !clients.includes(client)) return false
  const classes = asList(m.class)
  if (classes && !classes.includes(op.class)) return false
  const commands = asList(m.command)
  if (commands && !commands.some((c) => c.toLowerCase() === op.command)) return false
  if (m.where !== undefined) {
    // `none` means "not filtered": a WHERE that is always true filters nothing either.
    if (m.where === 'none' && op.where !== 'none' && op.where !== 'trivial') return false
    if (m.where === 'trivial' && op.where !== 'trivial') return false
  }
  if (m.groups && !m.groups.some((g) => groups.includes(g))) return false
  if (m.settings && !(op.setting && anyGlobMatches(m.settings, [op.setting.name]))) return false
  const all = rule.action === 'allow'
  if (m.tables && !tablesMatch(m.tables, op, all)) return false
  if (m.functions && !namesMatch(m.functions, op.functions.map(functionNames), all)) return false
  return true
}

/**
 * A statistics view (or a view too deep to see through) may show any table: every restricting
 * `tables:` rule matches it, and no allow rule's list can vouch for it.
 */
function tablesMatch(globs: readonly string[], op: Operation, all: boolean): boolean {
  if (op.tables.some((t) => everyTableReason(t) !== undefined)) return !all
  if (op.tables.length === 0) return false
  const matches = (t: TableRef): boolean => (t.schemaWide && t.schema !== undefined ? schemaGlobsMatch(globs, t.schema, all) : anyGlobMatches(globs, tableNames(t)))
  return all ? op.tables.every(matches) : op.tables.some(matches)
}

function namesMatch(globs: readonly string[], items: string[][], all: boolean): boolean {
  if (items.length === 0) return false
  return all ? items.every((c) => anyGlobMatches(globs, c)) : items.some((c) => anyGlobMatches(globs, c))
}

export function packRules(pack: EvaluateOptions['pack']): readonly BuiltinRule[] {
  if (pack === undefined || pack === 'default') return defaultPack
  if (pack === 'none') return []
  return pack
}

type Verdict = Omit<RuleDecision, 'statementIndex' | 'operationIndex' | 'command' | 'class'>

/**
 * Refusals no rule can lift, because they protect the analysis itself rather than express a
 * preference: once the server reads text differently from the parser, no later verdict means
 * anything.
 */
const GUARDS: readonly BuiltinRule[] = [
  {
    id: 'guard.assumed-setting',
    action: 'deny',
    reason: "this setting changes how the server reads statement text, which would make dbgate's analysis of every later statement wrong",
    hint: 'leave client_encoding at UTF8, standard_conforming_strings on and backslash_quote at safe_encoding; no rule can allow this',
    test: (op) => op.flags.includes('assumed_setting'),
  },
  {
    id: 'guard.shadowed-type',
    action: 'deny',
    reason: 'a temporary type or relation named like a built-in type would take its place in every later statement of the session, running code dbgate judges as the built-in',
    hint: (op) =>
      op.setting || op.command === 'alter_role' || op.command === 'alter_database'
        ? 'write the schema names into the statement as constants, with pg_catalog before pg_temp (SET search_path = "$user", public); no rule can allow this'
        : 'give it a name no built-in type has (or make it outside the temporary schema); no rule can allow this',
    test: (op) => op.flags.includes('shadows_builtin_type'),
  },
]

function hintOf(rule: BuiltinRule, op: Operation): {hint?: string} {
  if (rule.hint === undefined) return {}
  return {hint: typeof rule.hint === 'function' ? rule.hint(op) : rule.hint}
}

/** The decision for one operation. */
export function evaluateOperation(op: Operation, opts: EvaluateOptions = {}): Verdict {
  const groups = opts.groups ?? []
  const detail = op.detail ? {detail: op.detail} : {}
  for (const rule of GUARDS) {
    if (rule.test(op)) return {action: rule.action, ruleId: rule.id, reason: rule.reason, ...hintOf(rule, op), ...detail}
  }
  for (const rule of opts.rules ?? []) {
    if (ruleMatches(rule, op, groups, opts.client)) return {action: rule.action, ruleId: rule.id, reason: rule.reason ?? `matched rule ${rule.id}`, ...tablesDetail(rule, op, detail)}
  }
  for (const rule of packRules(opts.pack)) {
    if (rule.test(op)) return {action: rule.action, ruleId: rule.id, reason: rule.reason, ...hintOf(rule, op), ...detail}
  }
  // Nothing spoke (only possible without the default pack). What could not be read is still not
  // let through on silence; everything else is.
  if (op.class === 'unknown') {
    return {action: 'deny', ruleId: 'fallback.unknown', reason: 'dbgate could not judge this statement and no rule allows it', ...detail}
  }
  return {action: 'allow', ruleId: 'fallback.allow', reason: 'no rule matched'}
}

/**
 * What a refusal by a target rule says about tables the statement does not name: the hidden table
 * that matched (`hr.salaries, through the view public.staff_directory`), or why a relation counts
 * as every table. A rule without `tables:` (a deny-by-default after an allow-list) names every hidden table.
 */
function tablesDetail(rule: PolicyRule, op: Operation, detail: {detail?: string}): {detail?: string} {
  if (rule.action === 'allow') return detail
  const globs = rule.match.tables
  const every = [...new Set(op.tables.map(everyTableReason).filter((r): r is string => r !== undefined))]
  const hidden = op.tables.filter((t) => t.via !== undefined && t.every === undefined && (!globs || anyGlobMatches(globs, tableNames(t))))
  const schemas = op.tables.filter((t) => t.schemaWide && t.schema !== undefined && (!globs || schemaGlobsMatch(globs, t.schema, false))).map((t) => t.schema)
  const parts = [
    ...(globs ? every : []),
    ...(hidden.length > 0 ? [`reaches ${hidden.map(describeTable).join('; ')}`] : []),
    ...(schemas.length > 0 ? [`acts on every relation of the schema ${[...new Set(schemas)].join(', ')} at once`] : []),
  ]
  if (parts.length === 0) return detail
  return {detail: [detail.detail, ...parts].filter(Boolean).join('; ')}
}

/**
 * The verdict placed in its statement, members in the order a spread would give. Built member by
 * member: a spread of the verdict's varying shapes went through V8's slow path on every statement.
 */
function decided(v: Verdict, statementIndex: number, operationIndex: number, op: Operation): RuleDecision {
  const d = {action: v.action, ruleId: v.ruleId, reason: v.reason} as RuleDecision
  if ('hint' in v) d.hint = v.hint
  if ('detail' in v) d.detail = v.detail
  d.statementIndex = statementIndex
  d.operationIndex = operationIndex
  d.command = op.command
  d.class = op.class
  return d
}

/** Evaluates every operation of one statement; the strictest decides. */
export function evaluateStatement(stmt: StatementAnalysis, opts: EvaluateOptions = {}): {decision: RuleDecision; operations: RuleDecision[]} {
  const operations = stmt.operations.map((op, operationIndex) => decided(evaluateOperation(op, opts), stmt.index, operationIndex, op))
  // Among equally strict results the statement's primary operation speaks, so a report of an
  // allowed `WITH d AS (DELETE ...) SELECT` cites the write rule, not the read one.
  const primary = primaryOperation(stmt.operations)
  let decision = operations[Math.max(0, stmt.operations.indexOf(primary!))]!
  for (const d of operations) if (STRICTNESS[d.action] > STRICTNESS[decision.action]) decision = d
  return {decision, operations}
}

/** Evaluates a whole text. An empty text (only comments) is allowed: the server answers it with EmptyQueryResponse. */
export function evaluate(analysis: Analysis | readonly StatementAnalysis[], opts: EvaluateOptions = {}): Decision {
  const statements = Array.isArray(analysis) ? (analysis as readonly StatementAnalysis[]) : (analysis as Analysis).statements
  const one = statements.length === 1 ? statements[0]! : undefined
  if (!one || one.syntaxError) return evaluateNow(statements, opts)
  const memo = decisionsFor(opts)
  const hit = memo.byOperations.get(one.operations)
  if (hit && hit.index === one.index) return hit.decision
  const decision = frozen(evaluateNow(statements, opts))
  memo.byOperations.set(one.operations, {index: one.index, decision})
  return decision
}

/**
 * Decisions kept per options object and statement operations: a text of one statement is judged
 * from its operations, its index and the options alone (every rule's test is a function of the
 * operation), and texts of one shape share their operations (`shape-cache.ts`). Kept decisions are
 * frozen, since every verdict of the shape carries the same one. Options are compared member by
 * member (the groups by value), so options changed in place start over.
 */
interface KeptDecisions {
  rules: EvaluateOptions['rules']
  pack: EvaluateOptions['pack']
  client: EvaluateOptions['client']
  groups: readonly string[]
  byOperations: WeakMap<readonly Operation[], {index: number; decision: Decision}>
}
const keptDecisions = new WeakMap<EvaluateOptions, KeptDecisions>()

function decisionsFor(opts: EvaluateOptions): KeptDecisions {
  const k = keptDecisions.get(opts)
  const groups = opts.groups ?? []
  if (k && k.rules === opts.rules && k.pack === opts.pack && k.client === opts.client && k.groups.length === groups.length && k.groups.every((g, i) => g === groups[i])) return k
  const fresh: KeptDecisions = {rules: opts.rules, pack: opts.pack, client: opts.client, groups: [...groups], byOperations: new WeakMap()}
  keptDecisions.set(opts, fresh)
  return fresh
}

function frozen(d: Decision): Decision {
  for (const s of d.statements) Object.freeze(s)
  for (const w of d.warnings) Object.freeze(w)
  for (const h of d.holds ?? []) Object.freeze(h)
  if (d.holds) Object.freeze(d.holds)
  if (d.decisive) Object.freeze(d.decisive)
  Object.freeze(d.statements)
  Object.freeze(d.warnings)
  return Object.freeze(d)
}

function evaluateNow(statements: readonly StatementAnalysis[], opts: EvaluateOptions): Decision {
  const syntax = statements.find((s) => s.syntaxError)?.syntaxError
  if (syntax) {
    // Not a policy decision: the text is not SQL, whatever the rules say, and it never reaches the server.
    const d: RuleDecision = {action: 'deny', ruleId: 'syntax-error', reason: syntax.message, statementIndex: 0, operationIndex: 0, command: 'unknown', class: 'unknown'}
    return {action: 'deny', decisive: d, statements: [d], warnings: [], syntaxError: syntax}
  }
  const decisions: RuleDecision[] = []
  const warnings: RuleDecision[] = []
  const holds: RuleDecision[] = []
  for (const stmt of statements) {
    const {decision, operations} = evaluateStatement(stmt, opts)
    decisions.push(decision)
    for (const o of operations) {
      if (o.action === 'warn') warnings.push(o)
      else if (o.action === 'require_approval') holds.push(o)
    }
  }
  let decisive: RuleDecision | undefined
  for (const d of decisions) if (!decisive || STRICTNESS[d.action] > STRICTNESS[decisive.action]) decisive = d
  return {action: decisive?.action ?? 'allow', ...(decisive ? {decisive} : {}), statements: decisions, warnings, ...(holds.length > 0 ? {holds} : {})}
}

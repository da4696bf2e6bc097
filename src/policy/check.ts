/**
 * The cores of `dbgate policy check` (how would this SQL be judged?) and `dbgate policy lint`
 * (are these rules sensible?). Pure functions; the commands only load config and print.
 */
import {analyze} from './analyze.js'
import {offlineCatalog, unresolvedCalls, type FunctionCatalog} from './catalog.js'
import {judgeStatements} from './statement-guard.js'
import {PreparedRegistry} from './prepared.js'
import {readOnlyViolation} from './read-only.js'
import {evaluateStatement, packRules} from './rules.js'
import {isKnownCommand} from './walker.js'
import {tablesAsWritten} from './views.js'
import type {BuiltinRule, ClientKind, Decision, PolicyPackName, PolicyRule, RuleDecision, StatementAnalysis, StatementClass} from './types.js'

export interface CheckOptions {
  rules: readonly PolicyRule[]
  pack: PolicyPackName | readonly BuiltinRule[]
  groups: readonly string[]
  maxStatementSize?: number
  /** Where functions are looked up; by default the built-ins alone (no connection). */
  functions?: FunctionCatalog
  /** Judge as a session of this client (`mcp`: an AI agent). */
  client?: ClientKind
  /** Judge as a read-only session (an agent in `mcp.mode: read-only`): the allow-list in read-only.ts first. */
  readOnly?: boolean
}

export interface CheckedStatement {
  analysis: StatementAnalysis
  decision: RuleDecision
  /** One per operation, for the curious: which rule judged each part. */
  operations: RuleDecision[]
}

export interface CheckResult {
  decision: Decision
  statements: CheckedStatement[]
  /** Calls whose verdict needs the target's catalog, which this check could not read. */
  unresolved: string[]
  report: string
}

/**
 * Judges `sqlText` as one simple query would be, with a fresh connection's prepared statements (so
 * a PREPARE in the text is known to a later EXECUTE). Requires `loadParser()` first.
 */
export function checkPolicy(sqlText: string, opts: CheckOptions): CheckResult {
  const evalOpts = {rules: opts.rules, pack: opts.pack, groups: opts.groups, client: opts.client}
  const analysis = analyze(sqlText, opts.maxStatementSize === undefined ? {} : {maxStatementSize: opts.maxStatementSize})
  const catalog = opts.functions ?? offlineCatalog
  const unresolved = unresolvedCalls(analysis.statements, catalog)
  // Only worth saying when a rule matches tables: nothing else depends on what is behind a view.
  const asWritten = opts.rules.some((r) => r.match.tables) ? tablesAsWritten(analysis.statements, catalog) : []
  const readOnly = opts.readOnly ? readOnlyViolation(analysis) : undefined
  const judged = judgeStatements(analysis.statements, new PreparedRegistry().stage(), evalOpts, catalog)
  const statements = judged.statements
  const decision: Decision = readOnly ? {action: 'deny', decisive: readOnly, statements: judged.decision.statements.map((d) => (d.statementIndex === readOnly.statementIndex ? readOnly : d)), warnings: judged.decision.warnings} : judged.decision
  const checked = statements.map((s) => {
    const {decision: d, operations} = evaluateStatement(s, evalOpts)
    return {analysis: s, decision: readOnly && readOnly.statementIndex === s.index ? readOnly : d, operations}
  })
  return {decision, statements: checked, unresolved, report: formatReport(decision, checked, unresolved, asWritten)}
}

const LABEL: Record<Decision['action'], string> = {allow: 'ALLOW', warn: 'WARN', require_approval: 'APPROVAL', deny: 'DENY'}

function oneLine(text: string, max = 100): string {
  const s = text.replace(/\s+/g, ' ').trim()
  return s.length > max ? `${s.slice(0, max)}…` : s
}

export function formatReport(decision: Decision, statements: readonly CheckedStatement[], unresolved: readonly string[] = [], asWritten: readonly string[] = []): string {
  const lines: string[] = []
  if (decision.syntaxError) {
    lines.push(`ERROR    syntax error (SQLSTATE 42601) at character ${decision.syntaxError.position}: ${decision.syntaxError.message}`)
    lines.push('result: SYNTAX ERROR (the server would refuse it too; it is never sent)')
    return lines.join('\n')
  }
  if (statements.length === 0) lines.push('(no statements)')
  for (const {analysis: a, decision: d} of statements) {
    const where = a.where ? `, where ${a.where}` : ''
    lines.push(`[${a.index + 1}] ${LABEL[d.action].padEnd(8)} ${a.command} (${a.class}${where})  rule ${d.ruleId}`)
    lines.push(`    ${oneLine(a.text)}`)
    lines.push(`    ${d.reason}`)
    if (d.detail) lines.push(`    detail: ${d.detail}`)
    if (d.hint && d.action !== 'allow') lines.push(`    hint: ${d.hint}`)
    if (a.tables.length > 0) lines.push(`    tables: ${a.tables.map((t) => `${t.schema ? `${t.schema}.` : ''}${t.name} (${t.access}${t.via ? `, through ${t.via}` : ''})`).join(', ')}`)
    if (a.functions.length > 0) lines.push(`    functions: ${a.functions.join(', ')}`)
  }
  if (unresolved.length > 0) {
    lines.push(`note: this verdict depends on what the target's catalog says about ${unresolved.join(', ')}.`)
    lines.push('      `dbgate policy check` has no connection and knows only built-in functions; through the tunnel')
    lines.push("      these are looked up, and a user function is judged by what its body does (an extension's by its")
    lines.push('      declared volatility; volatile: at least a write that needs a reviewer).')
  }
  if (asWritten.length > 0) {
    lines.push(`note: rules on tables judged ${asWritten.join(', ')} as written. \`dbgate policy check\` has no connection, so it`)
    lines.push('      cannot see which of them are views or materialized views; through the tunnel the tables behind a')
    lines.push('      view count too (a read of a view over hr.salaries matches a rule on hr.*).')
  }
  const n = statements.length
  lines.push(`result: ${LABEL[decision.action]}${n > 1 ? ` (strictest of ${n} statements)` : ''}`)
  return lines.join('\n')
}

export interface LintIssue {
  ruleId: string
  severity: 'error' | 'warning'
  message: string
}

const asList = <T>(v: T | readonly T[] | undefined): readonly T[] | undefined =>
  v === undefined ? undefined : Array.isArray(v) ? (v as readonly T[]) : [v as T]

/** Whether every operation `later` matches is also matched by `earlier`, so `later` never fires. */
function covers(earlier: PolicyRule, later: PolicyRule): boolean {
  const e = earlier.match
  const l = later.match
  if (e.tables || e.functions || e.where || e.groups || e.settings) return false
  const ec = asList(e.class)
  const lc = asList(l.class)
  if (ec && !(lc && lc.every((c) => ec.includes(c)))) return false
  const em = asList(e.command)
  const lm = asList(l.command)
  if (em && !(lm && lm.every((c) => em.includes(c)))) return false
  return true
}

/** Problems in a target's rules that would make them do something other than what they say. */
export function lintRules(rules: readonly PolicyRule[], pack: PolicyPackName | readonly BuiltinRule[] = 'default'): LintIssue[] {
  const issues: LintIssue[] = []
  rules.forEach((rule, i) => {
    const m = rule.match
    for (const c of asList(m.command) ?? []) {
      if (!isKnownCommand(c.toLowerCase())) {
        issues.push({ruleId: rule.id, severity: 'error', message: `command "${c}" is not a command dbgate reports, so this rule never matches`})
      }
    }
    const classes = asList(m.class)
    const commands = (asList(m.command) ?? []).map((c) => c.toLowerCase())
    if (m.where && !(classes?.includes('write') || commands.some((c) => c === 'update' || c === 'delete'))) {
      issues.push({ruleId: rule.id, severity: 'warning', message: 'match.where only applies to UPDATE and DELETE; add class: write or command: [update, delete]'})
    }
    if (rule.action === 'allow' && (classes === undefined || classes.includes('unknown' as StatementClass))) {
      const what = classes === undefined ? 'has no class, so it also allows' : 'allows'
      issues.push({ruleId: rule.id, severity: 'warning', message: `this allow rule ${what} statements dbgate could not parse or judge`})
    }
    for (const glob of [...(m.tables ?? []), ...(m.functions ?? [])]) {
      if (glob.trim() === '' || /\s/.test(glob)) issues.push({ruleId: rule.id, severity: 'error', message: `"${glob}" is not a usable name glob`})
    }
    const shadow = rules.slice(0, i).find((earlier) => covers(earlier, rule))
    if (shadow) issues.push({ruleId: rule.id, severity: 'warning', message: `rule ${shadow.id} comes first and matches everything this rule does, so it never fires`})
  })
  if (packRules(pack).length === 0 && !rules.some((r) => r.action === 'deny')) {
    issues.push({ruleId: '(target)', severity: 'warning', message: 'policy: none with no deny rules lets every parsed statement through'})
  }
  return issues
}

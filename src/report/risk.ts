/**
 * Which recorded statements an auditor must see one by one: the destructive and the privileged.
 * The recording keeps the class the policy decided on, not the command, so the text is read again
 * with the same analyser the tunnel uses; a report never disagrees with the guardrails about what a
 * statement was.
 */
import {AnalysisCache} from '../policy/cache.js'
import {offlineCatalog, resolveCatalogCalls} from '../policy/catalog.js'
import type {Operation} from '../policy/types.js'

export type Risk = 'destructive' | 'privileged'

export interface RiskFinding {
  risk: Risk
  /** What makes it so, in a few words: `DROP TABLE`, `DELETE without WHERE`, `GRANT`, `reads a server file`. */
  what: string
}

const DESTRUCTIVE_DROPS = new Set(['table', 'schema', 'database', 'matview', 'foreign_table', 'index', 'view', 'sequence', 'function', 'type', 'extension'])

const FLAG_WORDS: Partial<Record<Operation['flags'][number], string>> = {
  program: 'runs a program on the server',
  server_file: 'reads or writes a server file',
  process: 'signals server processes',
  dynamic_sql: 'runs SQL the parser never sees',
  assumed_setting: 'changes how the server reads statements',
  dangerous_setting: 'changes what statements mean',
  role_change: 'switches role',
  rule: 'creates a rewrite rule',
  trigger: 'creates a trigger',
}

function words(command: string, object?: string): string {
  return `${command.replace(/_/g, ' ')}${object && !command.includes(object) ? ` ${object.replace(/_/g, ' ')}` : ''}`.toUpperCase()
}

function ofOperation(op: Operation): RiskFinding | undefined {
  if (op.command === 'drop' && DESTRUCTIVE_DROPS.has(op.object ?? '')) return {risk: 'destructive', what: words('drop', op.object)}
  if (op.command === 'drop_owned' || op.command === 'truncate') return {risk: 'destructive', what: words(op.command)}
  if ((op.command === 'delete' || op.command === 'update') && (op.where === 'none' || op.where === 'trivial')) {
    return {risk: 'destructive', what: `${op.command.toUpperCase()} ${op.where === 'none' ? 'without WHERE' : 'with an always-true WHERE'}`}
  }
  if (op.class === 'privilege') return {risk: 'privileged', what: words(op.command, op.object)}
  for (const f of op.flags) {
    const what = FLAG_WORDS[f]
    if (what) return {risk: 'privileged', what}
  }
  if (op.class === 'admin') return {risk: 'privileged', what: words(op.command, op.object)}
  return undefined
}

// Sessions repeat their texts (ORMs, jobs, pollers): each distinct text is parsed once per report.
const analyses = new AnalysisCache({maxEntries: 20_000})

/** The most serious finding for a statement text (destructive before privileged), or none. */
export function riskOf(sql: string): RiskFinding | undefined {
  let privileged: RiskFinding | undefined
  // Built-in functions are judged as the guardrails judge them (what user functions did is in the recorded class).
  for (const st of resolveCatalogCalls(analyses.analyze(sql).statements, offlineCatalog)) {
    for (const op of st.operations) {
      const f = ofOperation(op)
      if (f?.risk === 'destructive') return f
      privileged ??= f
    }
  }
  return privileged
}

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
  // A DO block, a CALL, a function dbgate cannot see into: the guardrails held it for what it might
  // do, and whatever it did (a DROP run by EXECUTE inside a DO block) is in no text the report reads.
  if (op.class === 'opaque') return {risk: 'privileged', what: `${words(op.command, op.object)}: code dbgate cannot see into`}
  return undefined
}

// Sessions repeat their texts (ORMs, jobs, pollers): each distinct text is parsed once per report.
const analyses = new AnalysisCache({maxEntries: 20_000})

/** Classes of what a statement did that need no one's attention: what it read, its transaction and session settings. */
const QUIET_CLASSES = new Set(['read', 'transaction', 'session'])

/**
 * A call of a function the report cannot look into (a user's, or one it does not know). The
 * guardrails judged it by its body in the target's catalog and recorded the class they found: one
 * that only reads is no attempt; one that writes, or whose body they could not see into either (or
 * a log with no class), is listed.
 */
function ofUserFunction(op: Operation, recordedClass: string | undefined): RiskFinding | undefined {
  if (recordedClass !== undefined && QUIET_CLASSES.has(recordedClass)) return undefined
  if (recordedClass === undefined || recordedClass === 'opaque' || recordedClass === 'unknown') return ofOperation(op)
  return {risk: 'privileged', what: `calls code the guardrails judged as ${recordedClass}`}
}

/** The more serious of two findings (destructive before privileged; the first of equals). */
function worse(a: RiskFinding | undefined, b: RiskFinding | undefined): RiskFinding | undefined {
  return a?.risk === 'destructive' || !b ? a : b?.risk === 'destructive' || !a ? b : a
}

/** What EXECUTE of a name the session's log never prepared (or prepared in a text the report cannot read) may run. */
const UNKNOWN_PREPARED: RiskFinding = {risk: 'privileged', what: 'EXECUTE of a prepared statement the session log does not define'}

/**
 * The most serious finding for a statement text (destructive before privileged), or none.
 *
 * `prepared` is the session's SQL-level prepared statements, by name, with what each runs: a
 * session's texts are read in order with one map, so `EXECUTE wipe` is judged as the `PREPARE wipe
 * AS DELETE FROM items` before it, as the guardrails judged it (the text alone says nothing). A
 * PREPARE adds its name, a DEALLOCATE (or DISCARD ALL) in a text that completed (`ran`) removes it:
 * one that failed may have left it. Without the map an EXECUTE is judged as unknown.
 */
export function riskOf(sql: string, prepared?: Map<string, RiskFinding | undefined>, ran = true, recordedClass?: string): RiskFinding | undefined {
  let found: RiskFinding | undefined
  // Built-in functions are judged as the guardrails judge them; a user's function, which the report
  // cannot look into, by the class the guardrails recorded (they read its body in the target's catalog).
  for (const st of resolveCatalogCalls(analyses.analyze(sql).statements, offlineCatalog)) {
    let own: RiskFinding | undefined
    for (const op of st.operations) {
      const f =
        op.executes !== undefined
          ? prepared?.has(op.executes)
            ? prepared.get(op.executes)
            : UNKNOWN_PREPARED
          : op.class === 'opaque' && op.command === 'function'
            ? ofUserFunction(op, recordedClass)
            : ofOperation(op)
      own = worse(own, f)
    }
    if (st.prepare && prepared) prepared.set(st.prepare.name, own)
    if (st.deallocate && prepared && ran) {
      if (st.deallocate.all) prepared.clear()
      else if (st.deallocate.name !== undefined) prepared.delete(st.deallocate.name)
    }
    found = worse(found, own)
  }
  return found
}

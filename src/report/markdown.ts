/** `report.md`: the same figures, short enough to paste into a ticket; the HTML has the charts. */
import {visible} from '../util/visible.js'
import {isDenied} from '../audit/events.js'
import {approvalOutcome, attemptResult, FRAMEWORK_NAMES, noGaps, type ApprovalRow, type Attempt, type Report} from './model.js'

const LIST_CAP = 50

/** A table cell: one line, no pipes or markup that would break the table or inject HTML. */
export function mdCell(s: string | number | undefined): string {
  return mdEscape(String(s ?? '')).trim()
}

/**
 * Text made inert: one line, with the marks that open Markdown's links and images (`[`), emphasis,
 * code, strikethrough, entities, HTML and table cells escaped, so recorded text (a reason, a name
 * from the IdP) stays text; bidi and zero-width characters are written as visible escapes. `(`, `!`
 * and `#` act on nothing once `[` is escaped and a cell never starts a line, and stay readable:
 * `agent 1.0 (MCP)`.
 */
function mdEscape(s: string): string {
  return visible(s.replace(/\s+/g, ' '))
    .replace(/[\\`*_[\]~|&]/g, (c) => `\\${c}`)
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
}

/**
 * dbgate's own sentence, whose `backticked` commands read as code, with whatever it quotes
 * (identities, key names) still made inert. Each span is either escaped text or a code span, so an
 * odd backtick in quoted text at worst misplaces a code span; with an odd count, nothing is code.
 */
export function mdProse(s: string): string {
  const parts = s.split('`')
  if (parts.length % 2 === 0) return mdCell(s)
  return parts.map((part, i) => (i % 2 === 1 && part.length > 0 ? mdCode(part) : mdEscape(part))).join('').trim()
}

/** A code span that survives backticks inside it. */
export function mdCode(s: string): string {
  const one = visible(s.replace(/\s+/g, ' ')).replace(/\|/g, '\\|').trim()
  const fence = '`'.repeat(Math.max(0, ...[...one.matchAll(/`+/g)].map((m) => m[0].length)) + 1)
  const pad = one.startsWith('`') || one.endsWith('`') ? ' ' : ''
  return `${fence}${pad}${one}${pad}${fence}`
}

function mdTable(head: string[], rows: (string | number | undefined)[][], raw: number[] = []): string {
  if (rows.length === 0) return '_None in this period._\n'
  const shown = rows.slice(0, LIST_CAP)
  const line = (cells: (string | number | undefined)[]) => `| ${cells.map((c, i) => (raw.includes(i) ? String(c ?? '') : mdCell(c))).join(' | ')} |`
  const more = rows.length > shown.length ? `\n_…and ${rows.length - shown.length} more in report.json and report.html._\n` : ''
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...shown.map(line)].join('\n') + '\n' + more
}

/**
 * The attempts in the order report.md lists them, at most LIST_CAP: those that ran first (allowed or
 * approved, and not refused), destructive before privileged, then those refused, each in time
 * order. In time order alone, a client that made fifty refused attempts before its DROP pushed
 * the DROP that ran below the cut of the version pasted into tickets.
 */
function attemptsFirstThatRan(attempts: readonly Attempt[]): Attempt[] {
  const rank = (a: Attempt) => (isDenied(a.decision) || a.outcome === 'rejected' ? 2 : 0) + (a.risk === 'destructive' ? 0 : 1)
  return [...attempts].sort((a, b) => rank(a) - rank(b) || a.at.localeCompare(b.at))
}

/** The approvals in the order report.md lists them: granted first (what let statements run), then the rest, each in time order. */
function approvalsFirstGranted(approvals: readonly ApprovalRow[]): ApprovalRow[] {
  const rank = (a: ApprovalRow) => (a.outcome === 'approved' || a.outcome === 'window' ? 0 : 1)
  return [...approvals].sort((a, b) => rank(a) - rank(b) || a.requestedAt.localeCompare(b.requestedAt))
}

export function renderMarkdown(r: Report): string {
  const s = r.summary
  const out: string[] = []
  out.push(`# Database access report, ${r.period.since.slice(0, 10)} to ${r.period.until.slice(0, 10)}`)
  out.push('')
  out.push(`Period (UTC): ${r.period.since} to ${r.period.until}, ${r.period.days} days. Targets: ${mdCell(r.scope.targets.join(', ') || r.scope.target || 'none')}. Generated ${r.generatedAt} by ${mdCell(r.generator)}.`)
  out.push(`Source: \`${r.sources.bucket}\`, ${s.sessions} session logs, verified against ${r.sources.keys.length} published signing key(s)${r.sources.trustedSigners ? `, accepting only signatures by ${r.sources.trustedSigners.join(', ')}` : ''}. SQL is ${r.scope.sqlShown === 'normalized' ? 'normalized (literals replaced by $n)' : 'shown as recorded'}.`)
  out.push('')
  out.push('## Summary')
  out.push('')
  out.push(
    mdTable(
      ['figure', 'value'],
      [
        ['identities (human / service / unverified)', `${s.identities} (${s.humanIdentities} / ${s.serviceIdentities} / ${s.unverifiedIdentities})`],
        ['sessions', s.sessions],
        ['statements', s.statements],
        ['statements denied', s.denied],
        ['syntax errors (not denials)', s.syntaxErrors],
        ['approvals requested / granted / refused / expired', `${s.approvalsRequested} / ${s.approved} / ${s.approvalsDenied} / ${s.approvalsExpired}`],
        ['values masked', s.maskedValues],
        ['statements with masked output', s.statementsWithMaskedOutput],
        ['destructive attempts', s.destructiveAttempts],
        ['privileged attempts', s.privilegedAttempts],
        ['interrupted / unfinished sessions', `${s.interruptedSessions} / ${s.inProgressSessions}`],
        ['logs failing verification', s.logsFailingVerification],
        ...(s.unreadableObjects ? [['unreadable session objects', s.unreadableObjects]] : []),
        ...(s.refusedSignIns ? [['sign-ins refused to verified identities (sessions with no statement)', s.refusedSignIns]] : []),
      ],
    ),
  )
  out.push('## Gaps and exceptions')
  out.push('')
  if (r.gaps.length === 0) out.push(noGaps(r))
  for (const g of r.gaps) {
    out.push(`- **${g.kind}**: ${mdProse(g.message)}${g.sessions?.length ? ` Sessions: ${g.sessions.slice(0, 10).map((id) => mdCode(id)).join(', ')}${g.sessions.length > 10 ? ', …' : ''}` : ''}`)
    // Every object, not the first ten: each is one to find and remove or restore.
    for (const o of g.objects ?? []) out.push(`  - ${mdCode(o.key)}: ${mdCell(o.problem)}`)
  }
  out.push('')
  out.push('## Privileged and destructive attempts')
  out.push('')
  if (r.attempts.length > 1) out.push('Those that ran first, destructive before privileged, then those refused; each in time order.\n')
  out.push(mdTable(['when', 'identity', 'what', 'statement', 'decision', 'result', 'session'], attemptsFirstThatRan(r.attempts).map((a) => [a.at, a.identity, a.what, mdCode(a.sql), a.decision, attemptResult(a), `${mdCode(a.sessionId)} #${a.seq}`]), [3, 6]))
  out.push('## Approvals')
  out.push('')
  out.push(mdTable(['requested', 'requester', 'statement', 'outcome', 'reviewer', 'reason', 'session'], approvalsFirstGranted(r.approvals).map((a) => [a.requestedAt, a.requester, mdCode(a.sql ?? ''), approvalOutcome(a), a.reviewer, a.decisionReason, mdCode(a.sessionId)]), [2, 6]))
  out.push('## Sign-ins refused')
  out.push('')
  out.push(mdTable(['when', 'identity', 'target', 'reason', 'told', 'session'], (r.refusedSignIns ?? []).map((x) => [x.at, x.identity, x.target === '_unknown' ? `${x.database ?? ''} (no such target)` : x.target, x.alsoRefused ? `${x.reason} (and ${x.alsoRefused} more since ${x.alsoRefusedSince})` : x.reason, x.message, mdCode(x.sessionId)]), [5]))
  if (r.agentActivity && r.agentActivity.agents.sessions > 0) {
    const a = r.agentActivity
    const figures = (f: typeof a.people) => [f.sessions, f.statements, f.denied, f.approvalsRequested, f.approved, f.approvalsDenied, f.maskedValues, f.toolRefusals ?? 0]
    out.push('## AI agent activity')
    out.push('')
    out.push('Sessions AI agents ran through `dbgate mcp`, each acting for a verified identity, apart from everyone else\'s.')
    out.push('')
    out.push(mdTable(['who', 'sessions', 'statements', 'denied', 'approvals requested', 'approved', 'approvals denied', 'masked values', 'refused by MCP tools'], [['people and services', ...figures(a.people)], ['AI agents', ...figures(a.agents)], ...a.byAgent.map((g) => [`${g.agent} for ${g.actingFor}`, ...figures(g)])]))
  }
  out.push('## Controls')
  for (const fw of r.scope.frameworks) {
    out.push('')
    out.push(`### ${FRAMEWORK_NAMES[fw]}`)
    out.push('')
    out.push(
      mdTable(
        ['control', 'status', 'figures', 'exceptions', 'sessions'],
        r.controls
          .filter((c) => c.framework === fw)
          .map((c) => [`${c.id} ${c.title}`, c.status, c.figures.map((f) => `${f.label}: ${f.value}`).join('; '), c.exceptions.length ? c.exceptions.slice(0, 3).join('; ') + (c.exceptions.length > 3 ? `; …${c.exceptions.length - 3} more` : '') : 'none', c.sessions.length]),
      ),
    )
  }
  out.push('## Integrity')
  out.push('')
  const failing = r.integrity.filter((i) => i.result === 'failed')
  const unfinished = r.integrity.filter((i) => i.result === 'unfinished').length
  out.push(`${r.integrity.length - failing.length - unfinished} of ${r.integrity.length} logs verified (hash chain and signatures)${unfinished ? `; ${unfinished} unfinished, verified up to their last signature` : ''}; ${failing.length} failing.`)
  out.push('')
  if (failing.length) out.push(mdTable(['session', 'problems'], failing.map((i) => [mdCode(i.sessionId), i.problems.slice(0, 3).map((p) => `line ${p.line} ${p.code}`).join('; ')]), [0]))
  return out.join('\n') + '\n'
}

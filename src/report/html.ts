/**
 * `report.html`: one file with its styles and charts inside, no script, and a content security
 * policy that forbids loading anything, so it opens offline, attaches to a ticket, and prints.
 * Everything recorded (SQL, names, reasons) is escaped: a statement an engineer typed must never
 * become markup in an auditor's browser.
 */
import {approvalOutcome, attemptResult, FRAMEWORK_NAMES, noGaps, type ControlSection, type Report} from './model.js'
import {dayBars, dayGroupedBars, esc, PALETTE, rankBars} from './svg.js'

const SESSION_LINKS = 30

const STYLE = `
:root{color-scheme:light}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1040px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;border-bottom:2px solid #e3e6ea;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}
.meta{color:#555;margin:0 0 2px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin:14px 0}
.card{border:1px solid #dfe3e8;border-radius:6px;padding:10px 12px}
.card .n{font-size:24px;font-weight:650;display:block}.card .l{color:#555;font-size:12px}
.card.alert .n{color:${PALETTE.denied}}
table{border-collapse:collapse;width:100%;margin:8px 0 16px;font-size:12.5px}
th,td{border-bottom:1px solid #e6e8eb;padding:5px 6px;text-align:left;vertical-align:top}
th{background:#f1f3f5;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.sql{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-word}
.ok{color:${PALETTE.approved};font-weight:600}.bad{color:${PALETTE.denied};font-weight:600}.muted{color:#666}
.gap{border-left:4px solid ${PALETTE.denied};background:#fdf2f1;padding:8px 12px;margin:8px 0}
.nogap{border-left:4px solid ${PALETTE.approved};background:#eff8f1;padding:8px 12px}
.chart{display:block;max-width:100%;height:auto;margin:6px 0 14px}
.control{border:1px solid #dfe3e8;border-radius:6px;padding:10px 14px;margin:10px 0}
.control h3{margin:0 0 4px}
.status{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;margin-left:8px}
.status.evidence{background:#e3f4e8;color:#14532d}.status.exceptions{background:#fde8e6;color:#8a1c12}.status.no-evidence{background:#eceff2;color:#444}
a{color:#1d5fa8}
@media print{
  body{background:#fff}main{max-width:none;padding:0}
  *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
  h2{break-after:avoid}.chart,.control,.card,tr{break-inside:avoid}
  a{color:inherit;text-decoration:none}
}`

const fmt = (n: number) => n.toLocaleString('en-US')

function card(key: string, label: string, value: number, bad = false): string {
  return `<div class="card${bad && value > 0 ? ' alert' : ''}" data-figure="${esc(key)}"><span class="n">${fmt(value)}</span><span class="l">${esc(label)}</span></div>`
}

function sessionLink(id: string): string {
  return `<a href="#session-${esc(id)}"><code>${esc(id)}</code></a>`
}

function sessionLinks(ids: readonly string[]): string {
  if (ids.length === 0) return '<span class="muted">none</span>'
  const shown = ids.slice(0, SESSION_LINKS).map(sessionLink).join(', ')
  return ids.length > SESSION_LINKS ? `${shown} <span class="muted">and ${ids.length - SESSION_LINKS} more (all in report.json)</span>` : shown
}

function table(id: string, head: string[], rows: string[][], numeric: number[] = []): string {
  if (rows.length === 0) return `<p class="muted" id="${esc(id)}-empty">None in this period.</p>`
  const th = head.map((h, i) => `<th${numeric.includes(i) ? ' class="num"' : ''}>${esc(h)}</th>`).join('')
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td${numeric.includes(i) ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`).join('\n')
  return `<table id="${esc(id)}"><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`
}

const time = (iso: string | undefined) => (iso ? esc(iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')) : '')
const outcome = (decision: string, ok = decision === 'allow' || decision === 'approved') => `<span class="${ok ? 'ok' : 'bad'}">${esc(decision)}</span>`

function control(c: ControlSection): string {
  const figures = c.figures.map((f) => `<tr><td>${esc(f.label)}</td><td class="num">${typeof f.value === 'number' ? fmt(f.value) : esc(f.value)}</td></tr>`).join('')
  const statusText = {evidence: 'evidence', exceptions: 'evidence with exceptions', 'no-evidence': 'no evidence in period'}[c.status]
  return `<section class="control" id="control-${esc(c.framework)}-${esc(c.id)}" data-control="${esc(c.id)}">
<h3>${esc(c.id)} ${esc(c.title)}<span class="status ${c.status}">${statusText}</span></h3>
<p><b>Asks:</b> ${esc(c.asks)}</p>
<p><b>Evidence:</b> ${esc(c.answer)}</p>
<table class="figures"><tbody>${figures}</tbody></table>
${c.exceptions.length ? `<p><b>Exceptions:</b></p><ul>${c.exceptions.map((e) => `<li>${esc(e)}</li>`).join('')}</ul>` : ''}
<p><b>Supporting sessions (${c.sessions.length}):</b> ${sessionLinks(c.sessions)}</p>
</section>`
}

export function renderHtml(r: Report): string {
  const s = r.summary
  const period = `${r.period.since.slice(0, 10)} to ${r.period.until.slice(0, 10)}`
  const gaps = r.gaps.length
    ? r.gaps.map((g) => `<div class="gap" data-gap="${esc(g.kind)}">${esc(g.message)}${g.sessions?.length ? `<br>Sessions: ${sessionLinks(g.sessions)}` : ''}${g.objects?.length ? `<ul class="objects">${g.objects.map((o) => `<li><code>${esc(o.key)}</code>: ${esc(o.problem)}</li>`).join('')}</ul>` : ''}</div>`).join('\n')
    : `<div class="nogap">${esc(noGaps(r))}</div>`
  // Days before the first recording are no data, not zero: the charts start when recording did.
  const recorded = r.daily.filter((d) => !d.beforeRecording)
  const days = recorded.length ? recorded : r.daily
  const charts = [
    ...(r.sources.recordingSince && recorded.length < r.daily.length ? [`<p class="muted" id="recording-since">Recording began on ${esc(r.sources.recordingSince)} (the first session log in the bucket); the charts start then.</p>`] : []),
    `<h3>Statements per day</h3>`,
    dayBars('chart-activity', 'Statements per day', days.map((d) => ({day: d.day, value: d.statements})), ['statement', 'statements']),
    `<h3>Sessions per day</h3>`,
    dayBars('chart-sessions', 'Sessions per day', days.map((d) => ({day: d.day, value: d.sessions})), ['session', 'sessions']),
    `<h3>Denials and approvals per day</h3>`,
    dayGroupedBars('chart-decisions', 'Statements denied and approvals granted per day', [
      {name: 'denied', color: PALETTE.denied, points: days.map((d) => ({day: d.day, value: d.denied}))},
      {name: 'approved', color: PALETTE.approved, dash: '6 3', points: days.map((d) => ({day: d.day, value: d.approved}))},
    ]),
    `<h3>Statements by class</h3>`,
    rankBars('chart-classes', 'Statements by class', r.byClass.map((c) => ({label: c.class, value: c.statements}))),
    `<h3>Top identities</h3>`,
    rankBars('chart-identities', 'Statements per identity (denied in red)', r.topIdentities.map((i) => ({label: `${i.identity} (${i.kind})`, value: i.statements, part: i.denied})), 'denied'),
    `<h3>Top tables</h3>`,
    rankBars('chart-tables', 'Statements per table (denied in red)', r.topTables.map((t) => ({label: t.table, value: t.statements, part: t.denied})), 'denied'),
  ].join('\n')

  const attempts = table(
    'attempts',
    ['when', 'identity', 'target', 'what', 'statement', 'decision', 'result', 'rule', 'session'],
    r.attempts.map((a) => [time(a.at), esc(a.identity), esc(a.target), `${esc(a.what)} <span class="muted">(${esc(a.risk)})</span>`, `<span class="sql">${esc(a.sql)}</span>`, outcome(a.decision), `<span class="${a.signed ? 'muted' : 'bad'}">${esc(attemptResult(a))}</span>`, esc(a.ruleId ?? ''), `${sessionLink(a.sessionId)} #${a.seq}`]),
  )
  const approvals = table(
    'approvals',
    ['requested', 'requester', 'statement', 'rule', 'outcome', 'reviewer', 'reason', 'decided', 'session'],
    r.approvals.map((a) => [
      time(a.requestedAt),
      esc(a.requester),
      `<span class="sql">${esc(a.sql ?? '')}</span>`,
      esc(a.ruleId ?? ''),
      outcome(approvalOutcome(a), a.signed && (a.outcome === 'approved' || a.outcome === 'window')) + (a.forgedDecisionsRefused ? ` <span class="bad">(${a.forgedDecisionsRefused} forged decision refused)</span>` : ''),
      esc(a.reviewer ?? ''),
      esc(a.decisionReason ?? ''),
      time(a.decidedAt),
      sessionLink(a.sessionId),
    ]),
  )
  const refusedSignIns = table(
    'refused-sign-ins',
    ['when', 'identity', 'target', 'reason', 'told', 'session'],
    (r.refusedSignIns ?? []).map((x) => [time(x.at), esc(x.identity), esc(x.target === '_unknown' ? `${x.database ?? ''} (no such target)` : x.target), outcome(x.reason, false) + (x.alsoRefused ? ` <span class="bad">(and ${fmt(x.alsoRefused)} more since ${time(x.alsoRefusedSince)})</span>` : ''), esc(x.message), sessionLink(x.sessionId)]),
  )
  const activity = r.agentActivity
  const activityFigures = (label: string, f: NonNullable<typeof activity>['people']) => [esc(label), fmt(f.sessions), fmt(f.statements), fmt(f.denied), fmt(f.approvalsRequested), fmt(f.approved), fmt(f.approvalsDenied), fmt(f.maskedValues), fmt(f.toolRefusals ?? 0)]
  const agents =
    activity && activity.agents.sessions > 0
      ? `\n<h2 id="agents-h">AI agent activity</h2>\n<p>Sessions AI agents ran through <code>dbgate mcp</code>, each acting for a verified identity, apart from everyone else's.</p>\n${table(
          'agents',
          ['who', 'sessions', 'statements', 'denied', 'approvals requested', 'approved', 'approvals denied', 'masked values', 'refused by MCP tools'],
          [activityFigures('people and services', activity.people), activityFigures('AI agents', activity.agents), ...activity.byAgent.map((g) => activityFigures(`${g.agent} for ${g.actingFor}`, g))],
          [1, 2, 3, 4, 5, 6, 7, 8],
        )}\n`
      : ''
  const identities = table(
    'identities',
    ['identity', 'kind', 'issuer', 'groups', 'sessions', 'statements', 'denied', 'first seen', 'last seen'],
    r.identities.map((i) => [esc(i.identity) + (i.name ? ` <span class="muted">${esc(i.name)}</span>` : ''), i.issuer === 'unverified' ? '<span class="bad">unverified</span>' : esc(i.kind), esc(i.issuer), esc(i.groups.join(', ')), fmt(i.sessions), fmt(i.statements), fmt(i.denied), time(i.firstSeen), time(i.lastSeen)]),
    [4, 5, 6],
  )
  const attention = table(
    'attention',
    ['session', 'identity', 'target', 'started', 'why'],
    r.attention.map((a) => [sessionLink(a.sessionId), esc(a.identity), esc(a.target), time(a.startedAt), a.reasons.map(esc).join('<br>')]),
  )
  const integrity = table(
    'integrity',
    ['session', 'result', 'status', 'lines', 'signed through seq', 'problems'],
    r.integrity.map((i) => [
      sessionLink(i.sessionId),
      i.result === 'verified' ? '<span class="ok">verified</span>' : i.result === 'unfinished' ? '<span class="muted">unfinished</span>' : '<span class="bad">FAILED</span>',
      esc(i.status),
      fmt(i.lines),
      fmt(i.signedThroughSeq),
      i.problems
        .slice(0, 5)
        .map((p) => `line ${p.line} ${esc(p.code)}: ${esc(p.message)}`)
        .join('<br>') + (i.problems.length > 5 ? `<br>… ${i.problems.length - 5} more` : ''),
    ]),
    [3, 4],
  )
  const sessions = table(
    'sessions',
    ['session', 'identity', 'target', 'started', 'ended', 'status', 'statements', 'denied', 'integrity', 'replay'],
    r.sessions.map((x) => [
      `<code id="session-${esc(x.sessionId)}">${esc(x.sessionId)}</code>`,
      esc(x.identity),
      esc(x.target + (x.database ? `/${x.database}` : '')),
      time(x.startedAt),
      time(x.endedAt),
      esc(x.status),
      fmt(x.statements),
      fmt(x.denied),
      x.integrity === 'verified' ? '<span class="ok">verified</span>' : x.integrity === 'unfinished' ? '<span class="muted">unfinished</span>' : '<span class="bad">failed</span>',
      `<code>dbgate sessions replay ${esc(x.sessionId)}</code>`,
    ]),
    [6, 7],
  )
  const controls = r.scope.frameworks
    .map((fw) => `<h3 class="framework">${esc(FRAMEWORK_NAMES[fw])}</h3>\n${r.controls.filter((c) => c.framework === fw).map(control).join('\n')}`)
    .join('\n')

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dbgate access report ${esc(period)}</title>
<style>${STYLE}</style>
</head>
<body><main>
<h1>Database access report</h1>
<p class="meta">Period <b>${esc(period)}</b> (UTC, ${r.period.days} days) · targets: <b>${esc(r.scope.targets.join(', ') || r.scope.target || 'none')}</b> · generated ${time(r.generatedAt)} by ${esc(r.generator)}</p>
<p class="meta">Source: <code>${esc(r.sources.bucket)}</code>, ${fmt(r.sources.sessionLogs)} session logs of the period (started in it, or earlier and still recording in it), verified against ${r.sources.keys.length} published signing key(s)${r.sources.trustedSigners ? `, accepting only signatures by ${esc(r.sources.trustedSigners.join(', '))}` : ''}. SQL is shown ${r.scope.sqlShown === 'normalized' ? 'normalized (literals replaced by $1, $2, …)' : 'as recorded, literals included'}. Figures are in <code>report.json</code>.</p>

<h2 id="summary">Summary</h2>
<div class="cards">
${card('identities', 'identities', s.identities)}
${card('sessions', 'sessions', s.sessions)}
${card('statements', 'statements', s.statements)}
${card('denied', 'statements denied', s.denied, true)}
${card('approved', 'approvals granted', s.approved)}
${card('approvalsDenied', 'approvals refused', s.approvalsDenied)}
${card('maskedValues', 'values masked', s.maskedValues)}
${card('destructiveAttempts', 'destructive attempts', s.destructiveAttempts, true)}
${card('privilegedAttempts', 'privileged attempts', s.privilegedAttempts, true)}
${card('logsFailingVerification', 'logs failing verification', s.logsFailingVerification, true)}
${s.unreadableObjects ? card('unreadableObjects', 'unreadable session objects', s.unreadableObjects, true) : ''}
${s.refusedSignIns ? card('refusedSignIns', 'sign-ins refused', s.refusedSignIns, true) : ''}
</div>
<p>${fmt(s.humanIdentities)} human and ${fmt(s.serviceIdentities)} service identities${s.unverifiedIdentities ? `, <span class="bad">${fmt(s.unverifiedIdentities)} unverified</span>` : ''}; ${fmt(s.errors - s.syntaxErrors)} statements failed in the database and ${fmt(s.syntaxErrors)} did not parse (syntax errors, not denials); ${fmt(s.statementsWithMaskedOutput)} statements returned masked values${s.statementsWithUncountedMasking ? ` (${fmt(s.statementsWithUncountedMasking)} of them recorded before values were counted, so not in the total)` : ''}; ${fmt(s.interruptedSessions)} interrupted and ${fmt(s.inProgressSessions)} unfinished session logs.</p>

<h2 id="gaps">Gaps and exceptions</h2>
${gaps}

<h2 id="charts">Activity</h2>
${charts}

<h2 id="attempts-h">Privileged and destructive attempts</h2>
${attempts}

<h2 id="approvals-h">Approvals</h2>
${approvals}

<h2 id="refused-h">Sign-ins refused</h2>
<p>People whose sign-in token a gateway verified, refused all the same: outside the target's <code>allow</code>, a target it does not serve, past their cap of sessions, or a startup parameter the target's policy refuses. Each is a session log with no statement; the sessions above count them.</p>
${refusedSignIns}

${agents}
<h2 id="identities-h">Identities: people and services</h2>
${identities}

<h2 id="attention-h">Sessions needing attention</h2>
${attention}

<h2 id="controls">Controls</h2>
${controls}

<h2 id="integrity-h">Integrity of every log</h2>
${integrity}

<h2 id="sessions-h">Sessions</h2>
${sessions}
</main></body>
</html>
`
}

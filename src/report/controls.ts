/**
 * Maps the report's figures to the controls auditors test. Several frameworks ask the same question
 * in different words (who may access, what privileged use happened, are logs complete and
 * protected), so each question is answered once, by an evidence builder, and each control names
 * the builder that answers it. The wording of what a control asks is our summary, not the
 * standard's text.
 */
import type {ControlSection, ControlStatus, Framework, Report} from './model.js'

interface Evidence {
  answer: string
  figures: {label: string; value: number | string}[]
  exceptions: string[]
  sessions: string[]
  /** No data in the period that bears on this question. */
  empty: boolean
}

type Builder = (r: Report) => Evidence

interface ControlDef {
  id: string
  title: string
  asks: string
  builder: Builder
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

/** Objects under `sessions/` that could not be read: possibly logs, so an exception wherever logs are evidence. */
const unreadableExceptions = (r: Report): string[] => r.sources.unreadableObjects.map((u) => `object ${u.key} cannot be read as a session log: ${u.problem}`)

const identityEvidence: Builder = (r) => {
  const s = r.summary
  const unverified = r.attention.filter((a) => a.reasons.some((x) => x.startsWith('identity not verified'))).map((a) => a.sessionId)
  return {
    answer: 'Every tunnel opens only for an identity whose OIDC token was verified against the identity provider (signature, issuer, audience, expiry); each session log starts with that identity, its groups and the hash of its token, and is signed by a key bound to it.',
    figures: [
      {label: 'identities', value: s.identities},
      {label: 'human identities', value: s.humanIdentities},
      {label: 'service identities', value: s.serviceIdentities},
      {label: 'sessions', value: s.sessions},
      {label: 'sessions without a verified identity', value: unverified.length},
      {label: 'sign-ins refused to verified identities', value: s.refusedSignIns ?? 0},
    ],
    exceptions: unverified.length ? [`${plural(unverified.length, 'session')} ran without a verified identity`] : [],
    sessions: unverified.length ? unverified : r.sessions.map((x) => x.sessionId),
    empty: s.sessions === 0,
  }
}

const enforcementEvidence: Builder = (r) => {
  const s = r.summary
  const deniedSessions = new Set(r.attempts.filter((a) => a.decision !== 'allow').map((a) => a.sessionId))
  for (const row of r.sessions) if (row.denied > 0) deniedSessions.add(row.sessionId)
  return {
    answer: 'Every statement is parsed with the PostgreSQL grammar and judged by the published policy before it reaches the database; what the policy forbids, or cannot parse, is refused and recorded with the rule that refused it.',
    figures: [
      {label: 'statements judged', value: s.statements},
      {label: 'statements denied', value: s.denied},
      {label: 'destructive attempts', value: s.destructiveAttempts},
      {label: 'privileged attempts', value: s.privilegedAttempts},
      {label: 'policy versions in force', value: [...new Set(r.sessions.map((x) => x.policy ?? 'unrecorded'))].join(', ') || 'none'},
    ],
    exceptions: [],
    sessions: [...deniedSessions],
    empty: s.statements === 0,
  }
}

const privilegedEvidence: Builder = (r) => {
  const s = r.summary
  const ids = new Set([...r.attempts.map((a) => a.sessionId), ...r.approvals.map((a) => a.sessionId)])
  return {
    answer: 'Privileged and destructive statements (DROP, TRUNCATE, unfiltered DELETE/UPDATE, GRANT, role switches, server files and programs) are denied or held for a named reviewer, who can never approve their own request; each approval covers one execution, or a time-boxed window when policy allows.',
    figures: [
      {label: 'privileged attempts', value: s.privilegedAttempts},
      {label: 'destructive attempts', value: s.destructiveAttempts},
      {label: 'approvals requested', value: s.approvalsRequested},
      {label: 'approved', value: s.approved},
      {label: 'denied by a reviewer', value: s.approvalsDenied},
      {label: 'expired unanswered', value: s.approvalsExpired},
      {label: 'forged or invalid decisions refused', value: s.forgedDecisionsRefused},
    ],
    exceptions: [
      // Destructive first: report.md shows the first three, and a run of allowed privileged ones must not push a DROP out.
      ...r.attempts
        .filter((a) => a.decision === 'allow' && a.outcome === 'ok')
        .sort((a, b) => Number(a.risk !== 'destructive') - Number(b.risk !== 'destructive'))
        .map((a) => `${a.what} ran without approval: ${a.identity}, session ${a.sessionId} (#${a.seq})`),
      ...(s.forgedDecisionsRefused ? [`${plural(s.forgedDecisionsRefused, 'decision')} that failed verification ${s.forgedDecisionsRefused === 1 ? 'was' : 'were'} refused`] : []),
    ],
    sessions: [...ids],
    empty: s.privilegedAttempts + s.destructiveAttempts + s.approvalsRequested === 0,
  }
}

const changeEvidence: Builder = (r) => {
  const changes = r.byClass.filter((c) => c.class === 'ddl' || c.class === 'write').reduce((n, c) => n + c.statements, 0)
  const approved = r.approvals.filter((a) => a.outcome === 'approved' || a.outcome === 'window')
  return {
    answer: 'Schema changes and other high-impact statements run only after a reviewer approves them in `dbgate approve`; the request, the reviewer, the reason and the statement\'s outcome are all in the signed session log.',
    figures: [
      {label: 'data and schema changes (write, ddl statements)', value: changes},
      {label: 'changes held for approval', value: r.approvals.length},
      {label: 'approved with a recorded reviewer', value: approved.filter((a) => a.reviewer).length},
      {label: 'refused by a reviewer or expired', value: r.summary.approvalsDenied + r.summary.approvalsExpired},
    ],
    exceptions: approved.filter((a) => !a.reviewer).map((a) => `approval ${a.approvalId} has no recorded reviewer`),
    sessions: [...new Set(r.approvals.map((a) => a.sessionId))],
    empty: changes === 0 && r.approvals.length === 0,
  }
}

const maskingEvidence: Builder = (r) => {
  const s = r.summary
  return {
    answer: 'Sensitive values (e-mail addresses, phone numbers, national identifiers, card numbers, secrets) are masked in results as they leave the database: columns are classified from the catalog and traced through expressions, and a value scanner backstops all text. Recordings keep only masked previews and masked parameters.',
    figures: [
      {label: 'values masked', value: s.maskedValues},
      {label: 'statements with masked output', value: s.statementsWithMaskedOutput},
      ...(s.statementsWithUncountedMasking ? [{label: 'statements recorded before values were counted', value: s.statementsWithUncountedMasking}] : []),
    ],
    exceptions: [],
    sessions: r.sessions.filter((x) => x.maskedStatements > 0).map((x) => x.sessionId),
    empty: s.statements === 0,
  }
}

const loggingEvidence: Builder = (r) => {
  const s = r.summary
  const noLogDays = r.gaps.find((g) => g.kind === 'no-sessions-on-day')?.days?.length ?? 0
  return {
    answer: 'Every session and statement is recorded with who, what, when, where, the decision, timing, rows and outcome; logs are spooled to disk before shipping, so a failed network or bucket delays them but loses nothing.',
    figures: [
      {label: 'session logs', value: s.sessions},
      {label: 'statements recorded', value: s.statements},
      {label: 'days in period', value: r.period.days},
      {label: 'days with no session logs', value: noLogDays},
      {label: 'logs without an end (in progress or cut short)', value: s.inProgressSessions},
      {label: 'unreadable session objects', value: s.unreadableObjects},
    ],
    exceptions: [...(noLogDays ? [`${plural(noLogDays, 'day')} with no session logs`] : []), ...(s.inProgressSessions ? [`${plural(s.inProgressSessions, 'log')} without an end`] : []), ...unreadableExceptions(r)],
    sessions: r.sessions.map((x) => x.sessionId),
    empty: s.sessions === 0 && s.unreadableObjects === 0,
  }
}

const contentEvidence: Builder = (r) => ({
  answer: 'Each statement record holds the statement, its normalized form and fingerprint, masked parameters, the statement class, decision and rule, the approval, start time, duration, rows, command tags, outcome and error; the session record holds the verified identity, target, database, client address and application, and the policy version.',
  figures: [
    {label: 'statements with identity, time, target, decision and outcome', value: r.summary.statements},
    {label: 'session logs', value: r.summary.sessions},
  ],
  exceptions: [],
  sessions: r.sessions.map((x) => x.sessionId),
  empty: r.summary.statements === 0,
})

const monitoringEvidence: Builder = (r) => {
  const s = r.summary
  return {
    answer: 'Denials, privileged and destructive attempts, approvals, interrupted sessions and logs that fail verification are collected in this report for review; `dbgate sessions search` and `replay` take a reviewer from any figure to the statements behind it.',
    figures: [
      {label: 'statements denied', value: s.denied},
      {label: 'privileged and destructive attempts', value: s.privilegedAttempts + s.destructiveAttempts},
      {label: 'sessions needing attention', value: r.attention.length},
      {label: 'interrupted sessions', value: s.interruptedSessions},
      {label: 'logs failing verification', value: s.logsFailingVerification},
      {label: 'unreadable session objects', value: s.unreadableObjects},
    ],
    exceptions: [...r.attention.map((a) => `${a.sessionId} (${a.identity}): ${a.reasons.join('; ')}`), ...unreadableExceptions(r)],
    sessions: [...new Set([...r.attention.map((a) => a.sessionId), ...r.attempts.map((a) => a.sessionId)])],
    empty: s.sessions === 0 && s.unreadableObjects === 0,
  }
}

const protectionEvidence: Builder = (r) => {
  const failing = r.integrity.filter((i) => i.result === 'failed')
  const unfinished = r.integrity.filter((i) => i.result === 'unfinished')
  return {
    answer: 'Each log is a hash chain signed with Ed25519 at checkpoints and at its end by a key bound to the verified identity; every log in this report was verified offline against the keys published in the bucket. An edited, removed, reordered or truncated line is detected.',
    figures: [
      {label: 'logs verified', value: r.integrity.length - failing.length - unfinished.length},
      {label: 'unfinished logs, verified up to their last signature', value: unfinished.length},
      {label: 'logs failing verification', value: failing.length},
      {label: 'signing keys published', value: r.sources.keys.length},
      {label: 'unreadable published keys', value: r.sources.keyErrors.length},
      {label: 'unreadable session objects', value: r.sources.unreadableObjects.length},
    ],
    exceptions: [...failing.map((i) => `${i.sessionId}: ${[...new Set(i.problems.map((p) => p.code))].join(', ')}`), ...r.sources.keyErrors.map((e) => `key ${e.key}: ${e.message}`), ...unreadableExceptions(r)],
    sessions: failing.length ? failing.map((i) => i.sessionId) : r.integrity.map((i) => i.sessionId),
    empty: r.integrity.length === 0 && r.sources.unreadableObjects.length === 0,
  }
}

const reviewEvidence: Builder = (r) => {
  const m = monitoringEvidence(r)
  return {...m, answer: 'This report is the periodic review: it is generated from the signed logs themselves, states its period and sources, and lists every gap and exception; each links to the sessions behind it.'}
}

const CATALOG: Record<Framework, ControlDef[]> = {
  soc2: [
    {id: 'CC6.1', title: 'Logical access security', asks: 'Access to protected information is restricted through logical access security software, infrastructure and architecture.', builder: enforcementEvidence},
    {id: 'CC6.2', title: 'Registration and authorization of users', asks: 'Users are registered and authorized before they get access, and access is removed when it is no longer needed.', builder: identityEvidence},
    {id: 'CC6.3', title: 'Role-based and least-privilege access', asks: 'Access is granted, changed and removed according to roles and least privilege, with changes authorized.', builder: privilegedEvidence},
    {id: 'CC7.2', title: 'Monitoring for anomalies', asks: 'System components are monitored for anomalies that indicate malicious acts, errors or failures, and anomalies are analysed.', builder: monitoringEvidence},
    {id: 'CC8.1', title: 'Change management', asks: 'Changes to infrastructure, data and software are authorized, documented, approved and implemented under control.', builder: changeEvidence},
  ],
  iso27001: [
    {id: 'A.5.15', title: 'Access control', asks: 'Rules for physical and logical access to information are established and implemented based on business and security requirements.', builder: enforcementEvidence},
    {id: 'A.5.18', title: 'Access rights', asks: 'Access rights are provided, reviewed, modified and removed according to the access control rules.', builder: identityEvidence},
    {id: 'A.8.2', title: 'Privileged access rights', asks: 'The allocation and use of privileged access rights is restricted and managed.', builder: privilegedEvidence},
    {id: 'A.8.11', title: 'Data masking', asks: 'Data is masked according to the access control policy and business requirements, taking legislation into account.', builder: maskingEvidence},
    {id: 'A.8.15', title: 'Logging', asks: 'Logs that record activities, exceptions, faults and other relevant events are produced, stored, protected and analysed.', builder: loggingEvidence},
    {id: 'A.8.16', title: 'Monitoring activities', asks: 'Networks, systems and applications are monitored for anomalous behaviour, and action is taken on potential incidents.', builder: monitoringEvidence},
  ],
  fedramp: [
    {id: 'AC-2', title: 'Account management', asks: 'Accounts are defined, authorized, monitored and removed; their use is tied to individuals and services.', builder: identityEvidence},
    {id: 'AC-3', title: 'Access enforcement', asks: 'Approved authorizations for logical access are enforced by the system.', builder: enforcementEvidence},
    {id: 'AC-6', title: 'Least privilege', asks: 'Only the access needed for assigned tasks is allowed; privileged functions are restricted and their use is logged.', builder: privilegedEvidence},
    {id: 'AU-2', title: 'Event logging', asks: 'The events the system logs are identified, and logging covers them.', builder: loggingEvidence},
    {id: 'AU-3', title: 'Content of audit records', asks: 'Audit records establish what happened, when, where, the source, the outcome and the identity involved.', builder: contentEvidence},
    {id: 'AU-6', title: 'Audit record review, analysis and reporting', asks: 'Audit records are reviewed and analysed for inappropriate or unusual activity, and findings are reported.', builder: reviewEvidence},
    {id: 'AU-9', title: 'Protection of audit information', asks: 'Audit information and tools are protected from unauthorized access, modification and deletion.', builder: protectionEvidence},
    {id: 'AU-12', title: 'Audit record generation', asks: 'The system generates audit records for the identified events, for every component that must log.', builder: loggingEvidence},
  ],
}

export function controlCatalog(framework: Framework): readonly {id: string; title: string}[] {
  return CATALOG[framework].map(({id, title}) => ({id, title}))
}

export function buildControls(r: Report): ControlSection[] {
  const out: ControlSection[] = []
  for (const framework of r.scope.frameworks) {
    for (const c of CATALOG[framework]) {
      const e = c.builder(r)
      const status: ControlStatus = e.empty ? 'no-evidence' : e.exceptions.length ? 'exceptions' : 'evidence'
      out.push({framework, id: c.id, title: c.title, asks: c.asks, answer: e.answer, status, figures: e.figures, exceptions: e.exceptions, sessions: e.sessions})
    }
  }
  return out
}

/**
 * From verified session logs to the figures of a report. Pure: the sessions, their verification and
 * the period come in, a `Report` comes out, so every figure can be checked against known sessions.
 */
import type {AuditEvent, SessionEndData, SessionStartData, StatementData} from '../audit/events.js'
import {executedOf, isDenied, isSyntaxError, normalizeSql, TOOL_REFUSED, TOOL_REFUSED_DECISION, toolRefusalOf} from '../audit/events.js'
import type {SessionSummary} from '../audit/index-cache.js'
import type {VerifyResult} from '../audit/verify.js'
import {statementsOf, UNFINISHED} from '../audit/read.js'
import {buildControls} from './controls.js'
import type {ApprovalRow, Attempt, AttentionRow, DailyFigures, Framework, Gap, IdentityRow, IntegrityResult, IntegrityRow, RefusedSignInRow, Report, SessionRow, Sources, Summary} from './model.js'
import {riskOf, type RiskFinding} from './risk.js'
import type {ActivityFigures} from './model.js'
import {agentLabel} from '../identity/types.js'
import {scanTokens} from '../sql/parser.js'

function emptyActivity(): ActivityFigures {
  return {sessions: 0, statements: 0, denied: 0, approvalsRequested: 0, approved: 0, approvalsDenied: 0, maskedValues: 0, statementsWithMaskedOutput: 0, toolRefusals: 0}
}

export interface ReportSession {
  summary: SessionSummary
  events: AuditEvent[]
  verification: VerifyResult
  /** It started before the period: `events` are its start and what it recorded from the period's start on (`eventsFrom`). */
  startedBeforePeriod?: boolean
}

/** A recorded table name with its schema: one written unqualified is public's, as the guardrails read it (src/policy/glob.ts). */
export function qualifiedTable(name: string): string {
  return name.includes('.') ? name : `public.${name}`
}

/** When an event happened: a statement when it started, anything else when it was recorded. */
function eventTime(ev: AuditEvent): number {
  const started = ev.type === 'statement' || ev.type === 'statement.streaming' ? (ev.data as Partial<StatementData> | null)?.startedAt : undefined
  return new Date(started ?? ev.ts).getTime()
}

/**
 * A session that started before the period, as far as the period goes: its start (who, where) and
 * every event from `since` on; undefined when it recorded no statement and no approval then. A
 * session started at 23:00 the evening before and dropping a table at 01:00 was in no report of
 * the period that held the DROP (the previous one may have been written while it ran).
 */
export function eventsFrom(events: readonly AuditEvent[], since: Date): AuditEvent[] | undefined {
  const from = since.getTime()
  const kept = events.filter((ev) => ev.type === 'session.start' || eventTime(ev) >= from)
  return kept.some((ev) => ev.type === 'statement' || ev.type === 'statement.streaming' || ev.type === TOOL_REFUSED || ev.type.startsWith('approval.')) ? kept : undefined
}

export interface BuildOptions {
  since: Date
  until: Date
  target?: string
  frameworks: readonly Framework[]
  sources: Omit<Sources, 'sessionLogs' | 'earliestSession' | 'latestSession'>
  /** UTC day (YYYY-MM-DD) of the bucket's first session log, from any period: days before it are not gaps. */
  recordingSince?: string
  generatedAt: Date
  generator: string
  /** Show statements as recorded, literals included; by default the normalized text ($1, $2 for literals). */
  fullSql?: boolean
  /** Masks free text that could not be normalized (an unparseable statement) before it is shown. */
  maskText?: (text: string) => string
}

const TOP = 10
const DAY_MS = 86_400_000

export function utcDay(iso: string | Date): string {
  return (typeof iso === 'string' ? new Date(iso) : iso).toISOString().slice(0, 10)
}

/** Every UTC day from `since` to `until`, both included. */
export function daysBetween(since: Date, until: Date): string[] {
  const out: string[] = []
  const first = Date.UTC(since.getUTCFullYear(), since.getUTCMonth(), since.getUTCDate())
  for (let t = first; t <= until.getTime(); t += DAY_MS) out.push(new Date(t).toISOString().slice(0, 10))
  return out
}

function identityOf(start: SessionStartData | undefined, summary: SessionSummary): {label: string; key: string; subject: string; issuer: string; kind: string; name?: string; groups: string[]} {
  const id = start?.identity
  const subject = id?.subject ?? summary.subject ?? '?'
  const issuer = id?.issuer ?? '?'
  return {label: id?.email ?? subject, key: `${issuer}\u0000${subject}`, subject, issuer, kind: id?.kind ?? summary.identityKind ?? 'unknown', name: id?.name, groups: id?.groups ?? []}
}

/** Literals can hold personal data typed by the engineer: reports show normalized text unless asked. */
function shownSql(d: StatementData, opts: BuildOptions): string {
  if (opts.fullSql) return d.sql
  const normalized = d.normalized ? withoutLiterals(d.normalized) : undefined
  if (normalized !== undefined) return normalized
  const masked = opts.maskText ? opts.maskText(d.sql) : undefined
  return masked ?? `(statement that could not be parsed, ${d.sql.length} characters: see the session)`
}

/**
 * Tokens of a normalized text shown as they are: words (keywords, names, quoted names), `$n`
 * parameters, punctuation and operators. Anything else is text the normalizer left in place: a
 * comment, or a constant it does not replace (the body of a PREPARE, a COPY … PROGRAM command, an
 * ALTER SYSTEM value, a view's or a default's definition, a dollar-quoted string, a bit string).
 */
const SHOWN_TOKENS = new Set(['IDENT', 'PARAM', 'Op', 'TYPECAST', 'DOT_DOT', 'COLON_EQUALS', 'EQUALS_GREATER', 'LESS_EQUALS', 'GREATER_EQUALS', 'NOT_EQUALS'])
/** What the scanner names UNKNOWN and is shown: keywords, and operators and punctuation (`.`, `[`, `::`, `||`, `@>`), none of which can spell a value. */
const WORD = /^[A-Za-z_][A-Za-z0-9_$]*$/
const OPERATOR = /^[-+*/<>=~!@#%^&|`?.:[\]]+$/
const COMMENTS = new Set(['SQL_COMMENT', 'C_COMMENT'])

/**
 * `normalized` with every comment left out and every constant the normalizer kept written `…`: what
 * is shown is an allow-list of tokens, so a literal survives in no construct the normalizer skips.
 * Undefined when the scanner cannot read the text.
 */
export function withoutLiterals(normalized: string): string | undefined {
  let tokens
  try {
    tokens = scanTokens(normalized)
  } catch {
    return undefined
  }
  let out = ''
  let at = 0
  for (const t of tokens) {
    // Between tokens the scanner skips only blanks; anything else there is not shown either.
    const between = normalized.slice(at, t.start)
    out += /^\s*$/.test(between) ? between : ' '
    at = t.end
    if (COMMENTS.has(t.tokenName)) continue
    const shown = SHOWN_TOKENS.has(t.tokenName) || t.tokenName.startsWith('ASCII_') || (t.tokenName === 'UNKNOWN' && (WORD.test(t.text) || OPERATOR.test(t.text)))
    out += shown ? t.text : '…'
  }
  return out.replace(/[ \t]+$/gm, '').trimEnd()
}

interface ApprovalEventData {
  approvalId?: string
  class?: string
  ruleId?: string
  reason?: string
  decision?: string
  reviewer?: {email?: string; subject?: string; name?: string}
  decidedAt?: string
}

/**
 * Accumulates one session at a time, so a long period never holds every session's events in
 * memory at once; `finish` orders everything and derives the rest.
 */
export class ReportBuilder {
  private readonly days: string[]
  private readonly daily: Map<string, DailyFigures>
  private readonly identities = new Map<string, IdentityRow>()
  private readonly classes = new Map<string, number>()
  private readonly tables = new Map<string, {statements: number; denied: number}>()
  private readonly attempts: Attempt[] = []
  private readonly approvals: ApprovalRow[] = []
  private readonly attention: AttentionRow[] = []
  private readonly integrity: IntegrityRow[] = []
  private readonly sessionRows: SessionRow[] = []
  private readonly targets = new Set<string>()
  private readonly activity = {people: emptyActivity(), agents: emptyActivity(), byAgent: new Map<string, ActivityFigures & {agent: string; actingFor: string}>()}
  private readonly s: Summary = {
    identities: 0,
    humanIdentities: 0,
    serviceIdentities: 0,
    unverifiedIdentities: 0,
    sessions: 0,
    statements: 0,
    denied: 0,
    errors: 0,
    syntaxErrors: 0,
    rowsReturnedOrAffected: 0,
    approvalsRequested: 0,
    approved: 0,
    approvalsDenied: 0,
    approvalsExpired: 0,
    approvalsWithdrawn: 0,
    forgedDecisionsRefused: 0,
    maskedValues: 0,
    statementsWithMaskedOutput: 0,
    statementsWithUncountedMasking: 0,
    destructiveAttempts: 0,
    privilegedAttempts: 0,
    interruptedSessions: 0,
    inProgressSessions: 0,
    logsFailingVerification: 0,
    unreadableObjects: 0,
    refusedSignIns: 0,
  }
  private readonly refusedSignIns: RefusedSignInRow[] = []

  constructor(private readonly opts: BuildOptions) {
    this.days = daysBetween(opts.since, opts.until)
    const before = (day: string) => opts.recordingSince !== undefined && day < opts.recordingSince
    this.daily = new Map(this.days.map((day) => [day, {day, ...(before(day) ? {beforeRecording: true} : {}), sessions: 0, statements: 0, denied: 0, approved: 0}]))
  }

  private dayOf(iso: string | undefined): DailyFigures | undefined {
    return iso ? this.daily.get(utcDay(iso)) : undefined
  }

  add(rs: ReportSession): void {
    const {opts, s, identities, classes, tables, attempts, approvals, attention, integrity, sessionRows, targets} = this
    const dayOf = (iso: string | undefined) => this.dayOf(iso)
    s.sessions += 1
    const {summary, events, verification: v} = rs
    const start = events.find((e) => e.type === 'session.start')?.data as SessionStartData | undefined
    const who = identityOf(start, summary)
    targets.add(summary.target)
    const sessionDay = dayOf(summary.startedAt)
    if (sessionDay) sessionDay.sessions += 1

    let row = identities.get(who.key)
    if (!row) {
      row = {identity: who.label, subject: who.subject, name: who.name, issuer: who.issuer, kind: who.kind, groups: who.groups, sessions: 0, statements: 0, denied: 0, firstSeen: summary.startedAt ?? '', lastSeen: summary.startedAt ?? ''}
      identities.set(who.key, row)
    }
    row.sessions += 1
    if (summary.startedAt && summary.startedAt < row.firstSeen) row.firstSeen = summary.startedAt
    if (summary.startedAt && summary.startedAt > row.lastSeen) row.lastSeen = summary.startedAt

    const byApproval = new Map<string, ApprovalRow>()
    let sessionStatements = 0
    let sessionDenied = 0
    let sessionMasked = 0
    // A statement whose rows the client read before the tunnel died is counted by its streaming event.
    const unfinished = unfinishedOf(events)
    // The session's prepared statements, read in order as the server ran them: EXECUTE is judged as what it runs.
    const prepared = new Map<string, RiskFinding | undefined>()
    /** Counts a destructive or privileged attempt of this session and lists it. */
    const attempt = (seq: number, risk: RiskFinding, row: Omit<Attempt, 'sessionId' | 'seq' | 'identity' | 'target' | 'risk' | 'signed'>): void => {
      if (risk.risk === 'destructive') s.destructiveAttempts += 1
      else s.privilegedAttempts += 1
      const {at, ...rest} = row
      attempts.push({sessionId: summary.sessionId, seq, at, identity: who.label, target: summary.target, risk: risk.risk, ...rest, signed: seq <= v.signedThroughSeq})
    }
    for (const ev of events) {
      if (ev.type === 'statement' || unfinished.has(ev)) {
        // Logs from other versions may lack optional-looking fields; a report must not stop at them.
        const d = ev.type === 'statement' ? (ev.data as StatementData) : ({...(ev.data as StatementData), outcome: UNFINISHED} as unknown as StatementData)
        sessionStatements += 1
        s.statements += 1
        s.rowsReturnedOrAffected += d.rows ?? 0
        const denied = isDenied(d.decision)
        if (denied) {
          s.denied += 1
          sessionDenied += 1
        } else if (d.outcome === 'error' || d.error) s.errors += 1
        if (isSyntaxError(d.decision)) s.syntaxErrors += 1
        const day = dayOf(d.startedAt)
        if (day) {
          day.statements += 1
          if (denied) day.denied += 1
        }
        const cls = d.class ?? 'unknown'
        classes.set(cls, (classes.get(cls) ?? 0) + 1)
        // One row per table however the texts wrote it: `users` and `public.users` are one table to the guardrails.
        for (const t of new Set((d.tables ?? []).map(qualifiedTable))) {
          const tr = tables.get(t) ?? {statements: 0, denied: 0}
          tr.statements += 1
          if (denied) tr.denied += 1
          tables.set(t, tr)
        }
        // The scanner can mask values in columns nobody marked, so either sign counts.
        if ((d.maskedColumns?.length ?? 0) > 0 || (d.maskedValues ?? 0) > 0) {
          s.statementsWithMaskedOutput += 1
          sessionMasked += 1
          if (typeof d.maskedValues === 'number') s.maskedValues += d.maskedValues
          else s.statementsWithUncountedMasking += 1
        }
        if (d.approvalId) {
          const a = byApproval.get(d.approvalId)
          if (a) {
            a.sql ??= shownSql(d, opts)
            a.statementOutcome = d.outcome
          }
        }
        // A statement a protocol Parse made is in the log only with what EXECUTEs it: judged by its text (those it executes first).
        for (const e of executedOf(d).reverse()) prepared.set(e.name, riskOf(e.sql, prepared, false, d.class))
        const risk = typeof d.sql === 'string' ? riskOf(d.sql, prepared, d.outcome === 'ok', d.class) : undefined
        if (risk) {
          attempt(ev.seq, risk, {
            at: d.startedAt,
            what: risk.what,
            ...(d.class ? {class: d.class} : {}),
            sql: shownSql(d, opts),
            decision: d.decision,
            ...(d.ruleId ? {ruleId: d.ruleId} : {}),
            ...(d.approvalId ? {approvalId: d.approvalId} : {}),
            outcome: d.outcome,
            ...(Array.isArray(d.commandTags) ? {commandTags: d.commandTags} : {}),
          })
        }
      } else if (ev.type === TOOL_REFUSED) {
        // An agent's DROP the MCP tool refused (`select 1; drop table t`) is an attempt as much as one
        // policy refused: judged as the tool would have sent it, on a copy of the session's prepared
        // statements, since nothing of it ran. A NUL, which the tool refused the text for, would have
        // ended it on the wire: what follows it is what the agent tried to slip past the tool.
        const r = toolRefusalOf(ev)!
        const sql = r.arguments.sql?.replaceAll('\u0000', ' ')
        if (typeof sql !== 'string') continue
        const sent = r.tool === 'explain' ? `EXPLAIN ${r.arguments.analyze === true ? '(ANALYZE) ' : ''}${sql}` : sql
        const risk = riskOf(sent, new Map(prepared), false)
        if (!risk) continue
        attempt(ev.seq, risk, {
          at: ev.ts,
          what: `${risk.what} (refused by the MCP tool ${JSON.stringify(r.tool)}: ${r.reason})`,
          sql: shownSql({sql: sent, ...normalizeSql(sent)} as StatementData, opts),
          decision: TOOL_REFUSED_DECISION,
          outcome: 'rejected',
        })
      } else if (ev.type.startsWith('approval.')) {
        const d = ev.data as ApprovalEventData
        if (!d.approvalId) continue
        let a = byApproval.get(d.approvalId)
        if (!a) {
          a = {approvalId: d.approvalId, sessionId: summary.sessionId, requestedAt: ev.ts, requester: who.label, target: summary.target, outcome: 'pending', forgedDecisionsRefused: 0, signed: true}
          byApproval.set(d.approvalId, a)
        }
        if (ev.seq > v.signedThroughSeq) a.signed = false
        if (ev.type === 'approval.requested') {
          a.requestedAt = ev.ts
          a.class = d.class
          a.ruleId = d.ruleId
          a.reason = d.reason
        } else if (ev.type === 'approval.decided') {
          a.outcome = d.decision ?? 'decided'
          a.reviewer = d.reviewer?.email ?? d.reviewer?.subject
          a.decisionReason = (ev.data as {reason?: string}).reason
          a.decidedAt = d.decidedAt ?? ev.ts
        } else if (ev.type === 'approval.expired') {
          a.outcome = 'expired'
          a.decidedAt = ev.ts
        } else if (ev.type === 'approval.withdrawn') {
          a.outcome = 'withdrawn'
          a.decidedAt = ev.ts
        } else if (ev.type === 'approval.rejected_decision') {
          a.forgedDecisionsRefused += 1
        }
      }
    }
    for (const a of byApproval.values()) {
      approvals.push(a)
      s.approvalsRequested += 1
      s.forgedDecisionsRefused += a.forgedDecisionsRefused
      if (a.outcome === 'approved' || a.outcome === 'window') {
        s.approved += 1
        const day = dayOf(a.decidedAt)
        if (day) day.approved += 1
      } else if (a.outcome === 'denied') s.approvalsDenied += 1
      else if (a.outcome === 'expired') s.approvalsExpired += 1
      else if (a.outcome === 'withdrawn') s.approvalsWithdrawn += 1
    }
    row.statements += sessionStatements
    row.denied += sessionDenied
    // Said by the session's end, an event only the recorder writes (signed, and checked by verify like every line).
    const refused = (events.findLast((e) => e.type === 'session.end')?.data as Partial<SessionEndData> | undefined)?.refused
    if (refused && typeof refused.reason === 'string') {
      const also = typeof refused.alsoRefused === 'number' && refused.alsoRefused > 0 ? refused.alsoRefused : 0
      s.refusedSignIns! += 1 + also
      this.refusedSignIns.push({
        ...(summary.startedAt ? {at: summary.startedAt} : {}),
        identity: who.label,
        target: summary.target,
        ...(start?.database !== undefined ? {database: start.database} : {}),
        reason: refused.reason,
        message: String(refused.message ?? ''),
        ...(also ? {alsoRefused: also, alsoRefusedSince: String(refused.alsoRefusedSince ?? '')} : {}),
        sessionId: summary.sessionId,
      })
    }
    this.addActivity(start, who.label, events, sessionStatements, sessionDenied, [...byApproval.values()])

    const result: IntegrityResult = v.ok ? 'verified' : v.problems.every((p) => p.code === 'MISSING_END') ? 'unfinished' : 'failed'
    const reasons: string[] = []
    if (result === 'failed') {
      s.logsFailingVerification += 1
      reasons.push(`fails verification: ${[...new Set(v.problems.map((p) => p.code))].join(', ')}`)
    }
    if (summary.status === 'interrupted') {
      s.interruptedSessions += 1
      reasons.push('interrupted: the tunnel stopped before the session ended; the log was sealed by the shipper')
    } else if (summary.status === 'in-progress') {
      s.inProgressSessions += 1
      reasons.push(`in progress or cut short: the log has no end yet; signed through seq ${v.signedThroughSeq} of ${v.lines}`)
    }
    if (rs.startedBeforePeriod) reasons.push(`started before the period (${summary.startedAt ?? 'at an unknown time'}): only what it recorded from the period's start on is counted here, the rest is in the previous period's report`)
    if (who.issuer === 'unverified') reasons.push('identity not verified by an identity provider')
    if (reasons.length) attention.push({sessionId: summary.sessionId, identity: who.label, target: summary.target, startedAt: summary.startedAt, reasons})

    integrity.push({
      sessionId: summary.sessionId,
      key: summary.key,
      ok: v.ok,
      result,
      status: v.status,
      lines: v.lines,
      signedThroughSeq: v.signedThroughSeq,
      keyIds: v.keyIds,
      problems: v.problems.map((p) => ({line: p.line, code: p.code, message: p.message})),
    })
    sessionRows.push({
      sessionId: summary.sessionId,
      key: summary.key,
      identity: who.label,
      kind: who.kind,
      target: summary.target,
      ...(summary.database ? {database: summary.database} : {}),
      ...(summary.startedAt ? {startedAt: summary.startedAt} : {}),
      ...(summary.endedAt ? {endedAt: summary.endedAt} : {}),
      status: summary.status,
      statements: sessionStatements,
      denied: sessionDenied,
      maskedStatements: sessionMasked,
      integrity: result,
      ...(summary.policy?.version ? {policy: summary.policy.version} : {}),
      ...(refused && typeof refused.reason === 'string' ? {refused: refused.reason} : {}),
    })
  }

  /** Counts a session towards people's or its agent's figures. */
  private addActivity(start: SessionStartData | undefined, identity: string, events: AuditEvent[], statements: number, denied: number, approvals: ApprovalRow[]): void {
    const agent = start?.agent && typeof start.agent.name === 'string' ? agentLabel(start.agent) : undefined
    const groups = [agent ? this.activity.agents : this.activity.people]
    if (agent) {
      const key = `${agent}\u0000${identity}`
      let row = this.activity.byAgent.get(key)
      if (!row) this.activity.byAgent.set(key, (row = {agent, actingFor: identity, ...emptyActivity()}))
      groups.push(row)
    }
    let maskedValues = 0
    let masked = 0
    const toolRefusals = events.filter((ev) => ev.type === TOOL_REFUSED).length
    for (const ev of statementsOf(events)) {
      const d = ev.data as StatementData
      if ((d.maskedColumns?.length ?? 0) > 0 || (d.maskedValues ?? 0) > 0) masked += 1
      maskedValues += d.maskedValues ?? 0
    }
    for (const g of groups) {
      g.sessions += 1
      g.statements += statements
      g.denied += denied
      g.approvalsRequested += approvals.length
      g.approved += approvals.filter((a) => a.outcome === 'approved' || a.outcome === 'window').length
      g.approvalsDenied += approvals.filter((a) => a.outcome === 'denied').length
      g.maskedValues += maskedValues
      g.statementsWithMaskedOutput += masked
      g.toolRefusals += toolRefusals
    }
  }

  finish(): Report {
    const {opts, s, identities, classes, tables, attempts, approvals, attention, integrity, targets, days} = this
    const bySession = (a: {startedAt?: string; sessionId: string}, b: {startedAt?: string; sessionId: string}) => (a.startedAt ?? '').localeCompare(b.startedAt ?? '') || a.sessionId.localeCompare(b.sessionId)
    const sessionRows = this.sessionRows.sort(bySession)
    const order = new Map(sessionRows.map((r, i) => [r.sessionId, i]))
    integrity.sort((a, b) => order.get(a.sessionId)! - order.get(b.sessionId)!)
    attention.sort((a, b) => order.get(a.sessionId)! - order.get(b.sessionId)!)
    const identityRows = [...identities.values()].sort((a, b) => b.statements - a.statements || a.identity.localeCompare(b.identity))
    s.identities = identityRows.length
    s.humanIdentities = identityRows.filter((r) => r.kind === 'human' && r.issuer !== 'unverified').length
    s.serviceIdentities = identityRows.filter((r) => r.kind === 'service' && r.issuer !== 'unverified').length
    s.unverifiedIdentities = identityRows.filter((r) => r.issuer === 'unverified').length

    s.unreadableObjects = opts.sources.unreadableObjects.length
    const dailyRows = [...this.daily.values()]
    const gaps = findGaps(dailyRows, sessionRows, attention, identityRows, opts)
    const report: Report = {
      v: 1,
      generatedAt: opts.generatedAt.toISOString(),
      generator: opts.generator,
      period: {since: opts.since.toISOString(), until: opts.until.toISOString(), days: days.length},
      scope: {...(opts.target ? {target: opts.target} : {}), targets: [...targets].sort(), frameworks: [...opts.frameworks], sqlShown: opts.fullSql ? 'full' : 'normalized'},
      sources: {
        ...opts.sources,
        sessionLogs: s.sessions,
        ...(sessionRows[0]?.startedAt ? {earliestSession: sessionRows[0].startedAt} : {}),
        ...(sessionRows.at(-1)?.startedAt ? {latestSession: sessionRows.at(-1)!.startedAt} : {}),
        ...(opts.recordingSince ? {recordingSince: opts.recordingSince} : {}),
      },
      summary: s,
      daily: dailyRows,
      byClass: [...classes].map(([cls, n]) => ({class: cls, statements: n})).sort((a, b) => b.statements - a.statements || a.class.localeCompare(b.class)),
      topIdentities: identityRows.slice(0, TOP).map((r) => ({identity: r.identity, kind: r.kind, statements: r.statements, sessions: r.sessions, denied: r.denied})),
      topTables: [...tables]
        .map(([table, t]) => ({table, ...t}))
        .sort((a, b) => b.statements - a.statements || a.table.localeCompare(b.table))
        .slice(0, TOP),
      identities: identityRows,
      attempts: attempts.sort((a, b) => a.at.localeCompare(b.at)),
      approvals: approvals.sort((a, b) => a.requestedAt.localeCompare(b.requestedAt)),
      attention,
      integrity,
      gaps,
      controls: [],
      sessions: sessionRows,
      refusedSignIns: this.refusedSignIns.sort((a, b) => (a.at ?? '').localeCompare(b.at ?? '') || a.sessionId.localeCompare(b.sessionId)),
      agentActivity: {
        people: this.activity.people,
        agents: this.activity.agents,
        byAgent: [...this.activity.byAgent.values()].sort((a, b) => b.statements - a.statements || a.agent.localeCompare(b.agent) || a.actingFor.localeCompare(b.actingFor)),
      },
    }
    report.controls = buildControls(report)
    return report
  }
}

export function buildReport(input: readonly ReportSession[], opts: BuildOptions): Report {
  const builder = new ReportBuilder(opts)
  for (const rs of input) builder.add(rs)
  return builder.finish()
}

/** Consecutive days as ranges, so a month without logs reads as one line, not thirty. */
export function dayRanges(days: readonly string[]): string[] {
  const out: string[] = []
  let from: string | undefined
  let prev: string | undefined
  const flush = () => {
    if (from) out.push(from === prev ? from : `${from} to ${prev}`)
  }
  for (const d of days) {
    if (prev && Date.parse(d) - Date.parse(prev) === DAY_MS) {
      prev = d
      continue
    }
    flush()
    from = prev = d
  }
  flush()
  return out
}

function findGaps(daily: DailyFigures[], sessions: SessionRow[], attention: AttentionRow[], identities: IdentityRow[], opts: BuildOptions): Gap[] {
  const gaps: Gap[] = []
  const unreadable = opts.sources.unreadableObjects
  if (unreadable.length) {
    // First, and even in a period with no readable session: one may be the log of a session this report should hold.
    gaps.push({
      kind: 'unreadable-objects',
      objects: unreadable.map((u) => ({key: u.key, problem: u.problem})),
      message: `${unreadable.length} object(s) under sessions/ cannot be read as session logs (not gzip, cut short, empty, too large, no dbgate event, or a key that does not parse); nothing in them is in this report's figures. Each may be a damaged log of a real session: restore it from the bucket's versions or backups, or find who wrote it. \`dbgate sessions verify\` reports each as OBJECT_UNREADABLE.`,
    })
  }
  if (sessions.length === 0) {
    gaps.push({kind: 'no-sessions-in-period', message: `No session logs in ${opts.sources.bucket} started in this period${opts.target ? ` on target ${opts.target}` : ''}: either nobody connected, or logs were not shipped (run \`dbgate sessions status\` on the machines that connect).`})
    return gaps
  }
  // Days before the first log in the bucket are not missing logs: nothing was recording yet.
  const recorded = daily.filter((d) => !d.beforeRecording)
  const empty = recorded.filter((d) => d.sessions === 0).map((d) => d.day)
  if (empty.length) {
    gaps.push({kind: 'no-sessions-on-day', days: empty, message: `${empty.length} of ${recorded.length} days since recording began have no session logs (${dayRanges(empty).join(', ')}). Confirm nobody connected then, or look for unshipped spools.`})
  }
  const failing = sessions.filter((r) => r.integrity === 'failed').map((r) => r.sessionId)
  if (failing.length) gaps.push({kind: 'verification-failed', sessions: failing, message: `${failing.length} session log(s) fail verification; their figures are included but cannot be relied on. Run \`dbgate sessions verify\` with the session id to see each problem.`})
  const inProgress = sessions.filter((r) => r.status === 'in-progress').map((r) => r.sessionId)
  if (inProgress.length) gaps.push({kind: 'in-progress', sessions: inProgress, message: `${inProgress.length} session log(s) have no end: still running, or cut short before the last events were shipped. They verify up to their last signature; later lines are not yet signed.`})
  const interrupted = sessions.filter((r) => r.status === 'interrupted').map((r) => r.sessionId)
  if (interrupted.length) gaps.push({kind: 'interrupted', sessions: interrupted, message: `${interrupted.length} session(s) were interrupted (the tunnel stopped without ending them); their logs are complete up to the interruption.`})
  const unverified = attention.filter((a) => a.reasons.some((r) => r.startsWith('identity not verified'))).map((a) => a.sessionId)
  if (unverified.length) {
    gaps.push({kind: 'unverified-identity', sessions: unverified, message: `${unverified.length} session(s) ran without a verified identity (${identities.filter((i) => i.issuer === 'unverified').map((i) => i.identity).join(', ')}): the target has no identity section in its configuration.`})
  }
  for (const e of opts.sources.keyErrors) gaps.push({kind: 'key-error', message: `published key ${e.key} cannot be read (${e.message}); sessions signed with it cannot be verified.`})
  return gaps
}

/** The `statement.streaming` events that stand for a statement whose end the log never got. */
function unfinishedOf(events: readonly AuditEvent[]): Set<AuditEvent> {
  const out = new Set<AuditEvent>()
  if (!events.some((e) => e.type === 'statement.streaming')) return out
  for (const ev of statementsOf(events)) if (ev.type === 'statement.streaming') out.add(ev)
  return out
}

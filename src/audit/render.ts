import {agentLabel} from '../identity/types.js'
import {Chalk, type ChalkInstance} from 'chalk'
import {visible, visibleDeep} from '../util/visible.js'
import {executedOf, isDenied, TOOL_REFUSED, toolRefusalOf, type AuditEvent, type ResultPreview, type SessionEndData, type SessionInterruptedData, type SessionStartData, type StatementData, type StatementStreamingData} from './events.js'

/**
 * Turning events into display lines. Everything here is pure: `show`, `replay` and the tests share
 * it, and the commands only decide when to print.
 */

export interface RenderOptions {
  color?: boolean
  /** Wall-clock origin for the `+mm:ss.mmm` offsets; defaults to the first event. */
  origin?: Date
  /** Widest a preview cell may be before it is cut. */
  cellWidth?: number
  /**
   * The highest seq a valid signature covers (`VerifyResult.signedThroughSeq`): each event after it
   * is shown with a warning, since anyone who can write to the bucket can have written it.
   */
  signedThroughSeq?: number
}

/** Under an event no valid signature covers. */
const NOT_SIGNED = "    NOT SIGNED: no valid signature covers this line (it comes after the log's last one); anyone who can write to the bucket can have written it. `dbgate sessions verify` says more."

/** One event as display lines, with the warning under an event no signature covers. */
export function renderEvent(raw: AuditEvent, opts: RenderOptions = {}): string[] {
  const lines = renderEventLines(raw, opts)
  if (lines.length > 0 && opts.signedThroughSeq !== undefined && raw.seq > opts.signedThroughSeq) lines.push(new Chalk({level: opts.color ? 1 : 0}).red.bold(NOT_SIGNED))
  return lines
}

function eventTime(ev: AuditEvent): Date {
  const started = ev.type === 'statement' ? (ev.data as StatementData).startedAt : undefined
  return new Date(started ?? ev.ts)
}

function offset(ms: number): string {
  const sign = ms < 0 ? '-' : '+'
  const a = Math.abs(ms)
  const m = Math.floor(a / 60_000)
  const s = Math.floor((a % 60_000) / 1000)
  return `${sign}${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}.${String(a % 1000).padStart(3, '0')}`
}

/** `approval_denied` → `APPROVAL DENIED`: the same words as the approval events' own lines. */
export function decisionWord(decision: string): string {
  return decision.replace(/_/g, ' ').toUpperCase()
}

/** An Execute that stopped at the client's row limit: its count is a part's, not the statement's. */
const SUSPENDED_WORDS = "SUSPENDED at the client's row limit (these rows are one part of the portal's; a write with RETURNING had already changed every row it matched)"

/** What an outcome other than `ok` says, in the words a reader needs: whether the statement ran. */
const OUTCOME_WORDS: Record<string, string> = {
  aborted: 'NOT RUN (aborted: skipped after an earlier error, or never sent)',
  unanswered: 'UNANSWERED (sent, then the client left: it may have run)',
  cancelled: 'CANCELLED',
  error: 'FAILED',
  rejected: 'NOT RUN (rejected)',
  unfinished: 'UNFINISHED (its rows were sent, then the recording stopped)',
  bound: 'BOUND, NEVER EXECUTED (planned at its Bind, which runs the IMMUTABLE functions it folds)',
}

/**
 * What the server did with a statement, where its text and decision do not already say it: its
 * outcome when that is not `ok` (a denied statement's `rejected` is its decision's word), and its
 * command tags when they are not just the text's own command. A COMMIT sent in a failed transaction
 * block is answered ROLLBACK, a pipeline's DELETE after an error never runs: shown bare, the first
 * reads as committed and the second as a DELETE of no rows. Tags are left out only when there is
 * one and it names the command the text starts with (`select …` and `SELECT 3`); anything else is
 * shown. Undefined when there is nothing to add. The words are the recording's, to be made `visible`.
 */
export function serverAnswer(d: {sql?: unknown; decision?: unknown; outcome?: unknown; commandTags?: unknown; suspended?: unknown}): string | undefined {
  const parts: string[] = []
  const outcome = typeof d.outcome === 'string' ? d.outcome : undefined
  const refused = outcome === 'rejected' && typeof d.decision === 'string' && (isDenied(d.decision) || d.decision === 'syntax_error')
  if (outcome !== undefined && outcome !== 'ok' && !refused) parts.push(OUTCOME_WORDS[outcome] ?? outcome.toUpperCase())
  if (d.suspended === true) parts.push(SUSPENDED_WORDS)
  const tags = Array.isArray(d.commandTags) ? d.commandTags.filter((t): t is string => typeof t === 'string') : []
  if (tags.length > 0 && outcome !== 'rejected' && outcome !== 'aborted' && !(tags.length === 1 && sameCommand(tags[0]!, d.sql))) {
    parts.push(`server answered ${tags.join(', ')}`)
  }
  return parts.length ? parts.join(' · ') : undefined
}

/** Whether a command tag names the command a statement text starts with (`UPDATE 3` and `update t …`). */
function sameCommand(tag: string, sql: unknown): boolean {
  const first = typeof sql === 'string' ? /^\s*([A-Za-z]+)/.exec(sql)?.[1] : undefined
  return first !== undefined && tag.split(' ', 1)[0] === first.toUpperCase()
}

/**
 * The masked columns in a few words: `email (email, partial), phone (phone, partial)`. The
 * recording keeps each one's full reasons (patterns and lineage), which `sessions show --json`
 * prints; a replay line only needs what was hidden and how.
 */
export function shortMasked(masked: readonly string[]): string {
  const seen = new Set<string>()
  for (const m of masked) {
    const parsed = /^(.*?) \(result \d+, column -?\d+\): ([^,]+), ([^,;]+)/.exec(m)
    seen.add(parsed ? `${parsed[1]} (${parsed[2]}, ${parsed[3]})` : m.slice(0, 60))
  }
  return [...seen].join(', ')
}

/**
 * The event with every string it holds made `visible`: SQL, parameters, error messages, names and
 * previews came from a client or an IdP, and are printed to an auditor's terminal. A statement's
 * SQL keeps its line breaks (each line is printed indented, under the statement's head).
 */
function displayable(ev: AuditEvent): AuditEvent {
  const data = visibleDeep(ev.data)
  const sql = ev.type === 'statement' || ev.type === 'statement.streaming' ? (ev.data as Partial<StatementData> | null)?.sql : undefined
  if (typeof sql === 'string') (data as StatementData).sql = visible(sql, {lines: true})
  return {...ev, type: visible(ev.type), session: visible(ev.session), data}
}

/** One event as display lines: pure, so show, replay and tests share it and the command only prints. */
function renderEventLines(raw: AuditEvent, opts: RenderOptions): string[] {
  const ev = displayable(raw)
  const c = new Chalk({level: opts.color ? 1 : 0})
  const at = eventTime(ev)
  const head = `${c.dim(offset(at.getTime() - (opts.origin ?? at).getTime()))} ${c.dim(`#${ev.seq}`)}`
  switch (ev.type) {
    case 'session.start': {
      const d = ev.data as SessionStartData
      // The application name and startup user are the client's text: quoted, as a JSON string is, so
      // neither can end its quotes (`psql" from 10.0.0.7:5432 · dbgate 2.0`) and read as dbgate's words.
      const rawClient = (raw.data as Partial<SessionStartData> | null)?.client
      const who = d.identity?.email ?? d.identity?.subject
      return [
        `${head} ${c.bold('session start')} ${d.sessionId} by ${c.cyan(who)} (${d.identity?.kind}) on ${d.target}/${d.database} as ${d.dbUser}`,
        `    client ${rawClient?.application !== undefined ? quoted(rawClient.application) : '?'}${rawClient?.user !== undefined ? ` (startup user ${quoted(rawClient.user)}, not a role)` : ''} from ${d.client?.address} · dbgate ${d.dbgateVersion}${d.policy?.version ? ` · policy ${d.policy.version}` : ''}`,
        ...(d.agent ? [`    AI agent ${agentLabel(d.agent)} acting for ${who}`] : []),
      ]
    }
    case 'statement': {
      const d = ev.data as StatementData
      const denied = isDenied(d.decision)
      const word = decisionWord(d.decision)
      const decision = denied ? c.red.bold(word) : d.decision === 'allow' ? c.green(word) : c.yellow(word)
      // Read from the raw event: `displayable` made every string of `ev` visible already, and the answer's words are dbgate's own.
      const answer = serverAnswer(raw.data as Partial<StatementData>)
      const facts = [d.class, d.ruleId ? `rule ${d.ruleId}` : undefined, d.approvalId ? `approval ${d.approvalId}` : undefined, `${d.rows} row${d.rows === 1 ? '' : 's'}`, `${d.durationMs} ms`]
      const lines = [`${head} ${decision}${answer ? ` · ${c.yellow.bold(visible(answer))} ·` : ''} ${facts.filter(Boolean).join(' · ')}`]
      for (const l of d.sql.split('\n')) lines.push(`    ${l}`)
      // What an EXECUTE ran, where a protocol Parse made it: the log holds its text only here.
      for (const e of executedOf(raw.data)) {
        lines.push(c.dim(`    which executes ${visible(e.name)}:`))
        for (const l of visible(e.sql, {lines: true}).split('\n')) lines.push(`      ${l}`)
      }
      if (d.params?.length) lines.push(c.dim(`    params: ${d.params.map((p) => (p === null ? 'NULL' : JSON.stringify(p))).join(', ')}`))
      if (d.tables?.length) lines.push(c.dim(`    tables: ${d.tables.join(', ')}`))
      if (d.maskedColumns?.length) lines.push(c.dim(`    masked: ${shortMasked(d.maskedColumns)}`))
      if (d.error) lines.push(c.red(`    error ${d.error.sqlstate}: ${d.error.message}`))
      if (d.preview) lines.push(...renderPreview(d.preview, opts.cellWidth ?? 32).map((l) => `    ${l}`))
      return lines
    }
    case 'statement.streaming': {
      const d = ev.data as StatementStreamingData
      const facts = [d.class, d.ruleId ? `rule ${d.ruleId}` : undefined, `${d.rows} row${d.rows === 1 ? '' : 's'} sent before it finished`]
      const lines = [`${head} ${c.yellow('rows sent')} ${facts.filter(Boolean).join(' · ')}`]
      for (const l of String(d.sql).split('\n')) lines.push(`    ${l}`)
      if (d.tables?.length) lines.push(c.dim(`    tables: ${d.tables.join(', ')}`))
      return lines
    }
    case 'session.end': {
      const d = ev.data as SessionEndData
      return [`${head} ${c.bold('session end')} (${d.reason}): ${d.totals.statements} statements, ${d.totals.denied} denied, ${d.totals.errors} errors${d.totals.syntaxErrors ? ` (${d.totals.syntaxErrors} syntax)` : ''}, ${d.totals.rows} rows`]
    }
    case 'session.interrupted': {
      const d = ev.data as SessionInterruptedData
      return [`${head} ${c.yellow.bold('session interrupted')}: the recorder died${d.tornBytes ? `; ${d.tornBytes} bytes of a partly written event were cut` : ''}; sealed at ${d.detectedAt}`]
    }
    case 'checkpoint':
      return []
    case 'approval.requested':
    case 'approval.decided':
    case 'approval.rejected_decision':
    case 'approval.withdrawn':
    case 'approval.expired':
      return renderApproval(ev, head, c)
    case TOOL_REFUSED: {
      // From the raw event: its SQL keeps its line breaks, each line made visible below.
      const d = toolRefusalOf(raw)!
      const {sql, params, otherArguments, ...rest} = d.arguments
      const lines = [`${head} ${c.red.bold('REFUSED BY MCP TOOL')} ${quoted(d.tool)} (${visible(d.reason)}): nothing reached the database`]
      if (typeof sql === 'string') for (const l of visible(sql, {lines: true}).split('\n')) lines.push(`    ${l}`)
      const facts = [
        ...Object.entries(rest).map(([k, v]) => `${visible(k)}=${visible(JSON.stringify(v) ?? String(v))}`),
        ...(params !== undefined ? [`params: ${typeof params === 'number' ? `${params} value(s), not recorded` : visible(String(params))}`] : []),
        ...(Array.isArray(otherArguments) && otherArguments.length ? [`arguments no tool takes: ${otherArguments.map((n) => quoted(n)).join(', ')}`] : []),
      ]
      if (facts.length) lines.push(c.dim(`    ${facts.join(' · ')}`))
      lines.push(c.dim(`    told: ${visible(d.message.replace(/\s+/g, ' '))}`))
      return lines
    }
    default:
      return [`${head} ${c.magenta(ev.type)} ${JSON.stringify(ev.data)}`]
  }
}

/** Text the client chose, in quotes it cannot close: a JSON string, with what a terminal would act on made visible. */
function quoted(s: unknown): string {
  return visible(JSON.stringify(String(s)))
}

/** The approval events the tunnel writes around a held statement (src/approvals/gate.ts). */
function renderApproval(ev: AuditEvent, head: string, c: ChalkInstance): string[] {
  const d = (ev.data ?? {}) as Record<string, unknown>
  const shown = (v: unknown) => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v))
  const id = shown(d.approvalId)
  switch (ev.type) {
    case 'approval.requested':
      return [
        `${head} ${c.yellow.bold('APPROVAL REQUESTED')} ${id} · ${shown(d.class)} · rule ${shown(d.ruleId)}: ${shown(d.reason)}`,
        c.dim(`    reviewers: ${Array.isArray(d.reviewers) ? d.reviewers.join(', ') : shown(d.reviewers)} · expires ${shown(d.expiresAt)}`),
      ]
    case 'approval.decided': {
      const r = (d.reviewer ?? {}) as {email?: string; subject?: string; groups?: string[]; tokenIssuedAt?: string}
      const verdict = d.decision === 'denied' ? c.red.bold('APPROVAL DENIED') : c.green.bold(d.decision === 'window' ? 'APPROVAL WINDOW' : 'APPROVAL GRANTED')
      const lines = [`${head} ${verdict} ${id} by ${c.cyan(r.email ?? r.subject ?? '?')} (${(r.groups ?? []).join(', ')})${d.reason ? `: ${shown(d.reason)}` : ''}`]
      if (typeof d.windowMs === 'number') lines.push(c.dim(`    window: ${Math.round(d.windowMs / 60_000)} min for statements of the same class`))
      lines.push(c.dim(`    reviewer's sign-in verified where the statement was held (tunnel or gateway); token issued ${r.tokenIssuedAt ?? '?'}`))
      return lines
    }
    case 'approval.rejected_decision': {
      const r = (d.claimedReviewer ?? {}) as {email?: string; subject?: string}
      return [`${head} ${c.red.bold('DECISION REFUSED')} ${id} claiming to be from ${r.email ?? r.subject ?? 'nobody'}: ${shown(d.problem)}`]
    }
    case 'approval.withdrawn':
      return [`${head} ${c.yellow.bold('APPROVAL WITHDRAWN')} ${id}: ${shown(d.reason)}`]
    default:
      return [`${head} ${c.red.bold('APPROVAL EXPIRED')} ${id} with no decision (expired ${shown(d.expiresAt)})`]
  }
}

/** A bordered text table of a masked result preview. */
export function renderPreview(p: ResultPreview, cellWidth: number): string[] {
  const cut = (v: string | null) => {
    const s = v === null ? 'NULL' : v.replace(/\s+/g, ' ')
    return s.length > cellWidth ? s.slice(0, cellWidth - 1) + '…' : s
  }
  const rows = p.rows.map((r) => p.columns.map((_, i) => cut(r[i] ?? null)))
  const widths = p.columns.map((col, i) => Math.max(cut(col).length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => cells.map((v, i) => v.padEnd(widths[i]!)).join(' │ ').trimEnd()
  const out = [line(p.columns.map(cut)), widths.map((w) => '─'.repeat(w)).join('─┼─'), ...rows.map(line)]
  if (p.truncated) out.push(`(preview: first ${p.rows.length} rows)`)
  return out
}

/** Every event of a session, rendered in order: `sessions show`. */
export function renderTimeline(events: AuditEvent[], opts: RenderOptions = {}): string[] {
  const origin = opts.origin ?? (events[0] ? eventTime(events[0]) : undefined)
  return events.flatMap((ev) => renderEvent(ev, {...opts, origin}))
}

export interface ReplayOptions extends RenderOptions {
  /** 2 plays twice as fast; ignored with `noWait`. */
  speed?: number
  noWait?: boolean
  /** Longest pause between two events, so an idle hour does not stall a replay; a longer one is shortened, and says so. */
  maxDelayMs?: number
}

/** Default longest pause of a replay: people typing their first query should not hold it up for half a minute. */
export const DEFAULT_MAX_DELAY_MS = 3000

export interface ReplayStep {
  event: AuditEvent
  /** How long to wait before printing `lines`. */
  delayMs: number
  lines: string[]
}

const seconds = (ms: number) => (ms >= 60_000 ? `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s` : `${Math.round(ms / 100) / 10}s`)

/** The session as steps with their original pacing; the command sleeps, handles keys and prints. */
export function* replay(events: AuditEvent[], opts: ReplayOptions = {}): Generator<ReplayStep> {
  const speed = opts.speed && opts.speed > 0 ? opts.speed : 1
  const origin = opts.origin ?? (events[0] ? eventTime(events[0]) : undefined)
  let last: number | undefined
  for (const event of events) {
    const t = eventTime(event).getTime()
    const idleMs = last === undefined || opts.noWait ? 0 : Math.max(0, Math.round((t - last) / speed))
    const delayMs = opts.maxDelayMs !== undefined ? Math.min(idleMs, opts.maxDelayMs) : idleMs
    last = Math.max(last ?? t, t)
    const lines = renderEvent(event, {...opts, origin})
    if (!lines.length) continue
    if (delayMs < idleMs) {
      const c = new Chalk({level: opts.color ? 1 : 0})
      lines.unshift(c.dim(`    … ${seconds(idleMs * speed)} with nothing happening, shortened to ${seconds(delayMs)}`))
    }
    yield {event, delayMs, lines}
  }
}

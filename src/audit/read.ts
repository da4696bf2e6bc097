import type {Bucket, ObjectInfo} from '../bucket/index.js'
import {executedOf, isDenied, parseEventLine, TOOL_REFUSED_DECISION, toolRefusalOf, type AuditEvent, type StatementData, type ToolRefusedData} from './events.js'
import {loadParser, parserReady} from '../sql/parser.js'
import {AnalysisCache} from '../policy/cache.js'
import {readForm} from './search-text.js'
import {sessionObjectKey} from './shipper.js'
import {visible} from '../util/visible.js'
import {agentLabel} from '../identity/types.js'
import {parseSessionKey, SessionCache, UnreadableObjectError, type Listing, type SessionSummary, type UnreadableObject} from './index-cache.js'

export interface ListFilters {
  /** Case-insensitive substring of the e-mail, subject or name. */
  user?: string
  target?: string
  since?: Date
  until?: Date
  /** Only sessions with at least one denied statement. */
  denied?: boolean
  /** Only sessions through this client: `mcp` (AI agents) or `connect` (everything else). */
  client?: 'connect' | 'mcp'
  /**
   * Also the sessions that started before `since` and were still being recorded then: their object
   * was written at or after `since`, and their end, if they have one, is not before it. A report
   * takes their statements from `since` on; started the evening before, a session's statements of
   * the period were in no report of it.
   */
  spanning?: boolean
}

/** The read side over one bucket: a cache of shipped sessions plus list, search, show and export. */
export class SessionReader {
  readonly cache: SessionCache

  constructor(readonly bucket: Bucket, cacheDir?: string) {
    this.cache = new SessionCache(bucket, cacheDir)
  }

  /** The sessions the filters select, newest first; see `listing` for the objects that could not be read. */
  async list(f: ListFilters = {}): Promise<SessionSummary[]> {
    return (await this.listing(f)).sessions
  }

  /** The sessions the filters select, newest first, and every object under `sessions/` that could not be read. */
  async listing(f: ListFilters = {}): Promise<Listing> {
    // Prune by key before downloading anything: dt= is the UTC start day, target= the target.
    const sinceDay = f.since?.toISOString().slice(0, 10)
    const untilDay = f.until?.toISOString().slice(0, 10)
    const keep = (key: string, info: ObjectInfo) => {
      const {day, target} = parseSessionKey(key) as {day?: string; target?: string}
      // Written at or after `since`: a session started earlier may have run statements in the period.
      const spans = f.spanning && f.since !== undefined && info.lastModified.getTime() >= f.since.getTime()
      if (day && sinceDay && day < sinceDay && !spans) return false
      if (day && untilDay && day > untilDay) return false
      if (f.target && target && target !== f.target) return false
      return true
    }
    const {sessions: all, unreadable} = await this.cache.scan(keep)
    const user = f.user?.toLowerCase()
    const sessions = all
      .filter((s) => {
        // A log without its session.start has no start time: its key's day (pruned above) is all that places it.
        if (s.startedAt !== undefined && !inPeriod(s, f)) return false
        if (user && !namesUser(s, user)) return false
        if (f.denied && s.totals.denied === 0 && !s.refused && !s.toolRefusals) return false
        if (f.client && (s.agent ? 'mcp' : 'connect') !== f.client) return false
        return true
      })
      .sort((a, b) => (b.startedAt ?? '').localeCompare(a.startedAt ?? ''))
    return {sessions, unreadable}
  }

  /**
   * One session's raw lines and parsed events, by id or unique id prefix. When the bucket holds the
   * session's log under several keys, the one stored where the shipper stores it (`placedCopy`).
   */
  async load(sessionIdOrPrefix: string): Promise<LoadedSession> {
    const copies = await this.copiesOf(sessionIdOrPrefix)
    return this.loadSummary(placedCopy(copies))
  }

  /**
   * Every object that holds the session an id or unique id prefix names: one, unless its log was
   * copied or moved under other keys too (each summary's `sessionId` is the one its session.start
   * says, whatever the key). `verify` checks them all; the other readers take `placedCopy`.
   */
  async copiesOf(sessionIdOrPrefix: string): Promise<SessionSummary[]> {
    if (!sessionIdOrPrefix.trim()) throw new Error('give a session id, or the first characters of one (`dbgate sessions list` shows them)')
    const {sessions: all, unreadable} = await this.cache.scan()
    const exact = all.filter((s) => s.sessionId === sessionIdOrPrefix)
    const found = exact.length ? exact : all.filter((s) => s.sessionId.startsWith(sessionIdOrPrefix))
    // An unreadable object's id is only its file name: say the object is there and cannot be read,
    // not that it is missing; and never answer for a longer id in its place (an object made
    // unreadable beside a log named `<its id>-2` would have that log verified instead).
    const damaged = exact.length ? [] : unreadable.filter((u) => objectFileId(u.key).startsWith(sessionIdOrPrefix))
    const damagedExact = damaged.find((u) => objectFileId(u.key) === sessionIdOrPrefix)
    if (damagedExact) throw new UnreadableObjectError(damagedExact.key, damagedExact.problem)
    if (damaged.length > 0 && found.length > 0) {
      const names = [...found.map((s) => s.sessionId), ...damaged.map((u) => `unreadable object ${u.key}`)]
      throw new Error(`session prefix ${JSON.stringify(sessionIdOrPrefix)} matches ${names.length} sessions and objects: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}; give more of the id (\`dbgate sessions list\` shows them)`)
    }
    if (damaged.length > 0) throw new UnreadableObjectError(damaged[0]!.key, damaged[0]!.problem)
    if (found.length === 0) throw new Error(`no shipped session ${sessionIdOrPrefix} in ${this.bucket.url}; run \`dbgate sessions sync\` if it is still in the local spool`)
    // Copies of one log under other keys all carry its id: still one session, not an ambiguous prefix.
    if (found.length > 1 && found.every((s) => s.sessionId === found[0]!.sessionId)) return found
    if (found.length > 1) {
      const shown = found.slice(0, 5).map((s) => s.sessionId).join(', ')
      const more = found.length > 5 ? ` and ${found.length - 5} more` : ''
      throw new Error(`session prefix ${JSON.stringify(sessionIdOrPrefix)} matches ${found.length} sessions: ${shown}${more}; give more of the id (\`dbgate sessions list\` shows them)`)
    }
    return found
  }

  async loadSummary(summary: SessionSummary): Promise<LoadedSession> {
    const text = await this.cache.text({key: summary.key, etag: summary.etag, size: summary.size, lastModified: new Date(0)})
    return {summary, text, events: parseEvents(text)}
  }

  async search(q: SearchQuery): Promise<SearchMatch[]> {
    return (await this.searchAll(q)).matches
  }

  /**
   * `search`, with the objects under `sessions/` that could not be read and so were not searched,
   * and whether more statements match than `limit` (`truncated`): sessions are searched newest
   * first, so a client that filled a newer session with matches (a comment holding the words, two
   * hundred times) hid every older match behind the limit, and nothing said there were more.
   */
  async searchAll(q: SearchQuery): Promise<{matches: SearchMatch[]; unreadable: UnreadableObject[]; truncated?: true}> {
    // Statements are found by when they ran: a session started before --since may have run some since.
    const {sessions, unreadable} = await this.listing({...q, spanning: true})
    // The scanner reads each statement as the server does, for the texts a plain match misses.
    if (q.text) await loadParser()
    const matches: SearchMatch[] = []
    for (const s of sessions) {
      const {events} = await this.loadSummary(s)
      for (const m of searchEvents(events, q, s)) {
        // One past the limit says that there are more; it is not returned.
        if (q.limit && matches.length >= q.limit) return {matches, unreadable, truncated: true}
        matches.push(m)
      }
    }
    return {matches, unreadable}
  }
}

/** Whether a session that has a start time is in the filters' period (see `ListFilters.spanning`). */
function inPeriod(s: SessionSummary, f: ListFilters): boolean {
  const t = new Date(s.startedAt!).getTime()
  if (f.until && t > f.until.getTime()) return false
  if (!f.since || t >= f.since.getTime()) return true
  return f.spanning === true && !(s.endedAt !== undefined && new Date(s.endedAt).getTime() < f.since.getTime())
}

/**
 * Of the objects holding one session's log, the one stored under the key the shipper gives it (its
 * id, start day and target: `sessionObjectKey`); the others were copied or moved, and `verify` fails
 * them with OBJECT_KEY_MISMATCH. Someone who can write the bucket once made a session impossible to
 * show, replay, verify or export by id with one copy of its log under another day ("matches 2
 * sessions: X, X; give more of the id"). When none or several are in place, nothing says which
 * to read: an error names every key.
 */
export function placedCopy(copies: readonly SessionSummary[]): SessionSummary {
  if (copies.length === 1) return copies[0]!
  const placed = copies.filter((s) => s.startedAt !== undefined && s.key === sessionObjectKey(s.sessionId, s.target, s.startedAt))
  if (placed.length === 1) return placed[0]!
  const id = copies[0]!.sessionId
  throw new Error(
    `session ${visible(id)} is held by ${copies.length} objects (${copies.map((s) => visible(s.key)).join(', ')}) and ${placed.length === 0 ? 'none is' : 'more than one is'} stored under the key the shipper gives it; its log was copied or moved there: \`dbgate sessions verify ${visible(id)}\` checks each`,
  )
}

/** Summaries of the named sessions, in the order named; one at a time so the cache fetches each object once. */
export async function loadEach(reader: SessionReader, ids: string[]): Promise<SessionSummary[]> {
  const out: SessionSummary[] = []
  for (const id of ids) out.push((await reader.load(id)).summary)
  return out
}

/** The session id a key names (its file name without `.jsonl.gz`), for objects that could not be read. */
export function objectFileId(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1).replace(/\.jsonl\.gz$/, '')
}

export interface LoadedSession {
  summary: SessionSummary
  text: string
  events: AuditEvent[]
}

/** Parses what can be parsed; `verify` is the place that reports what cannot. */
export function parseEvents(text: string): AuditEvent[] {
  const out: AuditEvent[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    try {
      out.push(parseEventLine(line))
    } catch {
      /* skipped here, reported by verify */
    }
  }
  return out
}

export interface SearchQuery extends ListFilters {
  /** Case-insensitive text to find in statements (SQL and normalized SQL). Empty matches every statement. */
  text?: string
  /** Treat `text` as a regular expression. */
  regex?: boolean
  /** Statement touches this table (case-insensitive; `schema.table` or bare `table`). */
  table?: string
  class?: string
  decision?: string
  limit?: number
}

export interface SearchMatch {
  sessionId: string
  seq: number
  ts: string
  user?: string
  /** The AI agent that ran the statement for `user` through `dbgate mcp` (`claude-code 2.1.0 (MCP)`). */
  agent?: string
  target: string
  sql: string
  /** [start, end) offsets into `sql` of each hit, for highlighting. */
  spans: [number, number][]
  decision: string
  class?: string
  tables: string[]
  /** What the server did with it, as recorded: `ok`, `error`, `aborted` (never ran), … and its CommandComplete tags. */
  outcome?: string
  commandTags?: string[]
  /** The Execute stopped at the client's row limit: its count is one part's (see `StatementData.suspended`). */
  suspended?: true
  /** When the text matched only through them: the PREPARE texts of the prepared statements its EXECUTEs ran. */
  runs?: string[]
  /** A call an MCP tool refused itself (`mcp.tool_refused`, decision `tool_refused`): nothing of it reached the database. */
  refused?: {tool: string; reason: string; message: string}
}

export function searchEvents(events: AuditEvent[], q: SearchQuery, s: Pick<SessionSummary, 'sessionId' | 'user' | 'target' | 'agent'>): SearchMatch[] {
  const pattern = q.text ? (q.regex ? new RegExp(q.text, 'gi') : new RegExp(escapeRegExp(q.text), 'gi')) : undefined
  const table = q.table?.toLowerCase()
  const out: SearchMatch[] = []
  const since = q.since?.getTime()
  const until = q.until?.getTime()
  const prepared = pattern ? new PreparedTexts() : undefined
  const statements = new Set(statementsOf(events))
  for (const ev of events) {
    const refusal = toolRefusalOf(ev)
    if (refusal) {
      const m = refusalMatch(ev, refusal, q, pattern, since, until)
      if (m) out.push({sessionId: s.sessionId, seq: ev.seq, ts: ev.ts, user: s.user, ...(s.agent ? {agent: agentLabel(s.agent)} : {}), target: s.target, ...m})
      continue
    }
    if (!statements.has(ev)) continue
    const d = ev.data as StatementData
    // Every text of the session, in order, whatever the filters: a PREPARE defines what a later EXECUTE runs.
    const runs = prepared?.read(d.sql, ev.type === 'statement' && d.outcome === 'ok') ?? []
    // And by what it ran that a protocol Parse made, recorded with it.
    if (pattern) for (const e of executedOf(d)) if (!runs.includes(e.sql)) runs.push(e.sql)
    const at = new Date(d.startedAt ?? ev.ts).getTime()
    if ((since !== undefined && at < since) || (until !== undefined && at > until)) continue
    if (q.class && d.class !== q.class) continue
    if (q.decision && d.decision !== q.decision) continue
    if (q.denied && !isDenied(d.decision)) continue
    if (table && !(d.tables ?? []).some((t) => tableAnswersTo(t, table))) continue
    let spans: [number, number][] = []
    if (pattern) {
      spans = matchSpans(d.sql, pattern)
      // Also as the server reads it: a comment, line breaks or an escaped name hid a statement from a search for its words.
      if (spans.length === 0) spans = readFormSpans(d.sql, pattern)
      // An EXECUTE matches by the statement it runs: `execute p` after `prepare p as delete from users` is a delete from users.
      if (spans.length === 0 && !runs.some((text) => matchSpans(text, pattern).length > 0 || readFormSpans(text, pattern).length > 0)) continue
    }
    const ranPrepared = pattern && spans.length === 0 ? {runs} : {}
    out.push({sessionId: s.sessionId, seq: ev.seq, ts: d.startedAt ?? ev.ts, user: s.user, ...(s.agent ? {agent: agentLabel(s.agent)} : {}), target: s.target, sql: d.sql, spans, ...ranPrepared, decision: d.decision, class: d.class, tables: d.tables ?? [], ...(ev.type === 'statement' ? {outcome: d.outcome, commandTags: d.commandTags, ...(d.suspended === true ? {suspended: true as const} : {})} : {outcome: UNFINISHED})})
  }
  return out
}

/**
 * A call an MCP tool refused itself, as a search match: found by its SQL (as the server would read
 * it too), or by the tool and what the agent was told when it had none; with `--denied` and
 * `--decision tool_refused`; never by `--class` or `--table`, since nothing judged it.
 */
function refusalMatch(ev: AuditEvent, r: ToolRefusedData, q: SearchQuery, pattern: RegExp | undefined, since: number | undefined, until: number | undefined): Pick<SearchMatch, 'sql' | 'spans' | 'decision' | 'tables' | 'refused'> | undefined {
  const at = new Date(ev.ts).getTime()
  if ((since !== undefined && at < since) || (until !== undefined && at > until)) return undefined
  if (q.class || q.table) return undefined
  if (q.decision && q.decision !== TOOL_REFUSED_DECISION) return undefined
  const sql = typeof r.arguments.sql === 'string' ? r.arguments.sql : `(${r.tool} call refused: ${r.message})`
  let spans: [number, number][] = []
  if (pattern) {
    spans = matchSpans(sql, pattern)
    if (spans.length === 0) spans = readFormSpans(sql, pattern)
    if (spans.length === 0) return undefined
  }
  return {sql, spans, decision: TOOL_REFUSED_DECISION, tables: [], refused: {tool: r.tool, reason: r.reason, message: r.message}}
}

/** Texts that may prepare, run or drop an SQL-level prepared statement; any other text is not parsed again. */
const PREPARED_WORDS = /\b(prepare|execute|deallocate|discard)\b/i
const searchAnalyses = new AnalysisCache({maxEntries: 5_000})

/**
 * A session's SQL-level prepared statements, read from its texts in order as the report reads them
 * (src/report/risk.ts): `prepare p as delete from users` then `execute p` is a delete from users,
 * but the second text says only `execute p`, so a search for what it did found the PREPARE (which
 * ran nothing) and not the EXECUTE (which did).
 */
class PreparedTexts {
  private readonly byName = new Map<string, string>()

  /** The PREPARE texts of what `sql` executes, as defined before it; then what it prepares and (if it `ran`) deallocates. */
  read(sql: string, ran: boolean): string[] {
    if (!parserReady() || !PREPARED_WORDS.test(sql)) return []
    let statements
    try {
      statements = searchAnalyses.analyze(sql).statements
    } catch {
      return []
    }
    const runs: string[] = []
    for (const st of statements) {
      for (const op of st.operations) {
        const text = op.executes !== undefined ? this.byName.get(op.executes) : undefined
        if (text !== undefined && !runs.includes(text)) runs.push(text)
      }
      // A PREPARE that failed defined nothing, but a later EXECUTE of its name is still worth finding.
      if (st.prepare) this.byName.set(st.prepare.name, st.text)
      if (st.deallocate && ran) {
        if (st.deallocate.all) this.byName.clear()
        else if (st.deallocate.name !== undefined) this.byName.delete(st.deallocate.name)
      }
    }
    return runs
  }
}

/**
 * Whether a recorded table is the one `--table` names (lower case): `users` names it in any schema,
 * `public.users` names it in public, and a name recorded unqualified (as the text wrote it) is the
 * public one, as the guardrails read it (src/policy/glob.ts `tableNames`: search_path cannot be
 * changed). Matched only as written, `--table public.users` missed every `delete from users`.
 */
export function tableAnswersTo(recorded: string, wanted: string): boolean {
  const t = recorded.toLowerCase()
  return t === wanted || t.endsWith('.' + wanted) || (!t.includes('.') && `public.${t}` === wanted)
}

/** The CSV outcome of a statement whose rows the client read and whose end the log never got. */
export const UNFINISHED = 'unfinished'

/** One statement's identity in a log: its connection, start and text, which its two events share. */
const runKey = (d: Partial<StatementData> | null): string => `${d?.connectionId}\u0000${d?.startedAt}\u0000${d?.sql}`

/**
 * A log's `statement` events, and each `statement.streaming` whose statement never ended (the tunnel
 * died while the client read its rows) standing for it: what the client read is searched and
 * exported, not only shown.
 */
export function statementsOf(events: readonly AuditEvent[]): AuditEvent[] {
  const ended = new Set<string>()
  for (const ev of events) if (ev.type === 'statement') ended.add(runKey(ev.data as StatementData))
  return events.filter((ev) => ev.type === 'statement' || (ev.type === 'statement.streaming' && !ended.has(runKey(ev.data as StatementData))))
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** [start, end) of each non-empty hit of `pattern` in `text`. */
function matchSpans(text: string, pattern: RegExp): [number, number][] {
  const spans: [number, number][] = []
  pattern.lastIndex = 0
  for (const m of text.matchAll(pattern)) {
    if (m[0].length === 0) break
    spans.push([m.index!, m.index! + m[0].length])
  }
  return spans
}

/**
 * The hits of `pattern` in the text as PostgreSQL reads it (src/audit/search-text.ts), as spans of
 * the recorded text: each covers the whole tokens the hit falls in, and overlapping ones are merged.
 * None when the parser is not loaded or cannot scan the text.
 */
function readFormSpans(sql: string, pattern: RegExp): [number, number][] {
  if (!parserReady()) return []
  const form = readForm(sql)
  if (!form) return []
  const composed = new RegExp(pattern.source.normalize('NFC'), pattern.flags)
  const spans: [number, number][] = []
  for (const [a, b] of matchSpans(form.text, composed)) {
    const span: [number, number] = [form.from[a]!, form.to[b - 1]!]
    const last = spans.at(-1)
    if (last && span[0] <= last[1]) last[1] = Math.max(last[1], span[1])
    else spans.push(span)
  }
  return spans
}

/** `sql` with each span wrapped by `mark` (e.g. chalk.inverse on a TTY, or «» in plain text). */
export function highlight(sql: string, spans: [number, number][], mark: (s: string) => string, show: (s: string) => string = (s) => s): string {
  let out = ''
  let at = 0
  for (const [a, b] of spans) {
    out += show(sql.slice(at, a)) + mark(show(sql.slice(a, b)))
    at = b
  }
  return out + show(sql.slice(at))
}

export const CSV_COLUMNS = ['session', 'seq', 'started_at', 'user', 'agent', 'target', 'database', 'class', 'decision', 'rule', 'approval', 'duration_ms', 'rows', 'outcome', 'command_tags', 'tables', 'sqlstate', 'error', 'sql'] as const

/**
 * A cell a spreadsheet may read as a formula: one starting with = + - @ (or their full-width forms,
 * which CJK versions of Excel accept), or with a tab or CR, also after leading blanks and line
 * breaks, which importers that trim cells (LibreOffice's "Trim spaces", Sheets) take off first.
 */
const FORMULA_START = /^[\s\u3000]*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20]|^[\t\r]/

function csvCell(v: unknown): string {
  const s = v === undefined || v === null ? '' : String(v)
  // A leading quote defuses a formula: the cell is text.
  const safe = FORMULA_START.test(s) ? `'${s}` : s
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe
}

/** Export: `jsonl` keeps the signed lines byte for byte (verifiable); `csv` is one row per statement. */
export function* exportSession(session: LoadedSession, format: 'jsonl' | 'csv', withHeader: boolean): Generator<string> {
  if (format === 'jsonl') {
    yield session.text.endsWith('\n') || session.text === '' ? session.text : session.text + '\n'
    return
  }
  if (withHeader) yield CSV_COLUMNS.join(',') + '\n'
  const s = session.summary
  for (const ev of statementsOf(session.events)) {
    const d = ev.data as StatementData
    const outcome = ev.type === 'statement.streaming' ? UNFINISHED : d.outcome
    const row = [s.sessionId, ev.seq, d.startedAt, s.user, s.agent ? agentLabel(s.agent) : undefined, s.target, s.database, d.class, d.decision, d.ruleId, d.approvalId, d.durationMs, d.rows, outcome, (ev.type === 'statement' ? (d.commandTags ?? []) : []).join('; '), (d.tables ?? []).join(' '), d.error?.sqlstate, d.error?.message, d.sql]
    yield row.map(csvCell).join(',') + '\n'
  }
}

/**
 * Whether `user` (lower case) names the session's person: their whole e-mail or subject, or the
 * e-mail's part before the @ (`alice` or `alice@`), in any case. A part of a name does not: `al@example.com` is not
 * `sal@example.com`, and evidence filtered for one person must not hold another's sessions.
 */
function namesUser(s: {user?: string; subject?: string}, user: string): boolean {
  const email = s.user?.toLowerCase()
  const at = email?.lastIndexOf('@') ?? -1
  const local = user.endsWith('@') ? user.slice(0, -1) : user
  return email === user || s.subject?.toLowerCase() === user || (at > 0 && email!.slice(0, at) === local)
}

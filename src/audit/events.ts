import {fingerprintSync, normalizeSync} from '../sql/parser.js'
import {flat, isoString} from './chain.js'
import {DocumentError, parseDocument, problemsOf} from '../util/document.js'
import {z} from 'zod'
import {LRUCache} from 'lru-cache'
import type {AgentInfo, Identity} from '../identity/types.js'
import type {ProtocolPath, StatementEvent} from '../proxy/seam.js'

/**
 * Recording schema, version 1. Every line is an envelope `{v, type, session, seq, ts, prev, data,
 * sig?, hash}` (see chain.ts); `data` depends on `type`. docs/recording.md is the reference for
 * every field; change both together, and bump `v` for anything a v1 reader would misread.
 */

export type KnownEventType = 'session.start' | 'statement' | 'statement.streaming' | 'session.end' | 'session.interrupted' | 'checkpoint'

/** The identity as recorded (Identity never holds a token), with its expiry as an ISO string. */
export type RecordedIdentity = Omit<Identity, 'expiresAt'> & {expiresAt: string}

export interface SessionStartData {
  sessionId: string
  identity: RecordedIdentity
  target: string
  database: string
  dbUser: string
  client: {application?: string; user?: string; address: string}
  connectionId: number
  startedAt: string
  dbgateVersion: string
  policy?: {hash?: string; version?: string}
  /** The key that signs this session; the verifier checks it is bound to `identity`. */
  keyId: string
  host: string
  /** Present when an AI agent ran the session through `dbgate mcp`, acting for `identity`. */
  agent?: AgentInfo
}

export interface ResultPreview {
  columns: string[]
  /** Already masked by the result pipeline; the recorder never sees clear values. */
  rows: (string | null)[][]
  /** True when more rows were returned than the preview holds. */
  truncated: boolean
}

/**
 * Every decision a recorded statement can carry (src/connect/recording.ts writes them).
 * `syntax_error`: the text did not parse; it was answered with the parser's 42601 error and never
 * reached the server. Not a denial: a typo is not an attempt at something the policy forbids.
 */
/** The decisions statements are recorded with, and `tool_refused`, which `sessions search` gives a call an MCP tool refused itself (`mcp.tool_refused`). */
export const DECISIONS = ['allow', 'deny', 'approved', 'approval_denied', 'approval_timeout', 'approval_withdrawn', 'syntax_error', 'tool_refused'] as const

/** How `sessions search` shows a call an MCP tool refused itself: never a statement's decision. */
export const TOOL_REFUSED_DECISION = 'tool_refused'
export type RecordedDecision = (typeof DECISIONS)[number] | (string & {})

export interface StatementData {
  connectionId: number
  protocol: ProtocolPath
  statementName?: string
  sql: string
  /** libpg-query normalized text (constants replaced by $n); null if the text does not parse. */
  normalized: string | null
  fingerprint: string | null
  /** Bind parameters as masked by the caller. */
  params?: (string | null)[]
  class?: string
  decision: RecordedDecision
  ruleId?: string
  approvalId?: string
  startedAt: string
  durationMs: number
  rows: number
  commandTags: string[]
  outcome: StatementEvent['outcome']
  /** See `StatementEvent.suspended`; absent when the Execute ran to its end (or was no Execute). */
  suspended?: true
  /** See `StatementEvent.executes`: the protocol-made statements its text EXECUTEs, by name, with their text. */
  executes?: {name: string; sql: string}[]
  tables: string[]
  maskedColumns: string[]
  /** Values the result pipeline replaced in this statement's output; absent in recordings made before it was counted. */
  maskedValues?: number
  error?: {sqlstate: string; message: string}
  preview?: ResultPreview
}

/**
 * A statement whose rows reached the client before it finished (`statement.streaming`): what it is
 * and who ran it, with `rows` sent so far and no outcome. Its `statement` event follows at its end,
 * unless the tunnel died first.
 */
export type StatementStreamingData = Omit<StatementData, 'outcome' | 'commandTags' | 'durationMs' | 'params' | 'preview' | 'error' | 'maskedValues'>

export interface SessionEndData {
  reason: string
  endedAt: string
  totals: Totals
  /**
   * Present when the gateway refused a sign-in whose token it verified (the person is known, the
   * target would not let them in): the session never reached the database.
   */
  refused?: SignInRefusalRecord
}

/** Why a verified person's sign-in was refused: the gateway's fixed reason word, and what they were told. */
export interface SignInRefusalRecord {
  reason: string
  message: string
  /** Refusals of the same person counted but not recorded one by one (past the gateway's rate), since `alsoRefusedSince`. */
  alsoRefused?: number
  alsoRefusedSince?: string
}

export interface Totals {
  statements: number
  denied: number
  /** Statements that failed: in the database, or as syntax errors (counted in `syntaxErrors` too). */
  errors: number
  rows: number
  /** Texts that did not parse; absent in recordings made before it was counted. */
  syntaxErrors?: number
}

/** Written by the shipper for a session whose writer died before `session.end`. */
export interface SessionInterruptedData {
  reason: 'writer-died'
  detectedAt: string
  lastWriterPid?: number
  /** Bytes of a final, torn line that were cut off before sealing; their hash is kept as evidence. */
  tornBytes: number
  tornSha256?: string
  totals: Totals
}

export interface CheckpointData {
  totals: Totals
}

/** A parsed line. `data` is typed by `type` for the known types and left open for the rest (e.g. `approval.*`). */
const EventEnvelopeSchema = z.object({
  v: z.literal(1),
  type: z.string().min(1),
  session: z.string().min(1),
  seq: z.number().int().nonnegative(),
  ts: z.string(),
  prev: z.string(),
  data: z.unknown(),
  sig: z.object({keyId: z.string(), alg: z.literal('ed25519'), value: z.string()}).optional(),
  hash: z.string(),
})
/** One line of a session log: the envelope every event type shares, around its own `data`. */
export type AuditEvent<D = unknown> = Omit<z.infer<typeof EventEnvelopeSchema>, 'data'> & {data: D}
/** A line's `hash` is checked by verify, which reports a missing one in its own words. */
const EventLineSchema = EventEnvelopeSchema.extend({hash: z.string().optional()})

export function recordIdentity(id: Identity): RecordedIdentity {
  // Built field by field so a token accidentally attached to the object can never reach the log.
  return {
    subject: id.subject,
    email: id.email,
    name: id.name,
    groups: [...id.groups],
    issuer: id.issuer,
    kind: id.kind,
    tokenHash: id.tokenHash,
    tokenId: id.tokenId,
    clientId: id.clientId,
    expiresAt: id.expiresAt.toISOString(),
  }
}

/** What policy and masking know about a statement that the tunnel's StatementEvent does not carry. */
export interface StatementDetails {
  class?: string
  decision?: RecordedDecision
  ruleId?: string
  approvalId?: string
  tables?: string[]
  maskedColumns?: string[]
  maskedValues?: number
  preview?: ResultPreview
  /** Replaces `event.params`, for callers that mask parameters after the tunnel reports them. */
  params?: (string | null)[]
  /** Replaces `event.error`: the error as the client received it, masked like its results. */
  error?: {code: string; message: string}
  /** Replaces `event.sql`: a text refused for its size, kept as its beginning and its length (`cutStatementText`). */
  sql?: string
}

export type Normalized = {normalized: string | null; fingerprint: string | null}

/**
 * Normalizing parses the text twice; clients repeat the same texts (prepared statements, ORMs),
 * so the answers are kept for recent texts, least recently used dropped first.
 */
const normalizedCache = new LRUCache<string, Normalized>({max: 4096})
export const NORMALIZED_CACHE_MAX_TEXT = 16 * 1024

/** libpg_query's normalized text and fingerprint of `sql`, made now. */
export function normalizeNow(sql: string): Normalized {
  try {
    return {normalized: normalizeSync(sql), fingerprint: fingerprintSync(sql)}
  } catch {
    // Unparseable text is still recorded verbatim; it is usually exactly what an auditor wants to see.
    return {normalized: null, fingerprint: null}
  }
}

/** `normalizeNow`, remembered for recent texts (`make` answers a text not seen lately). */
export function normalizeSql(sql: string, make: (sql: string) => Normalized = normalizeNow): Normalized {
  const hit = normalizedCache.get(sql)
  if (hit) return hit
  if (sql.length > NORMALIZED_CACHE_MAX_TEXT) return normalizeNow(sql)
  const out = make(sql)
  normalizedCache.set(sql, out)
  return out
}

export function clampPreview(preview: ResultPreview | undefined, maxRows: number): ResultPreview | undefined {
  if (!preview || maxRows <= 0) return undefined
  if (preview.rows.length <= maxRows) return preview
  return {columns: preview.columns, rows: preview.rows.slice(0, maxRows), truncated: true}
}

export function statementData(ev: StatementEvent, details: StatementDetails, previewRows: number, normalize: (sql: string) => Normalized = normalizeSql, memo?: StatementJsonMemo): StatementData {
  const sql = details.sql ?? ev.sql
  const {normalized, fingerprint} = memo ? memo.normalize(sql, normalize) : normalize(sql)
  const decision: RecordedDecision = details.decision ?? (ev.verdict.action === 'allow' ? 'allow' : 'deny')
  const outcomeError = details.error ?? ev.error
  const error =
    outcomeError !== undefined
      ? {sqlstate: outcomeError.code, message: outcomeError.message}
      : ev.verdict.action === 'reject'
        ? {sqlstate: ev.verdict.error.code, message: ev.verdict.error.message}
        : undefined
  const params = details.params ?? ev.params
  const preview = clampPreview(details.preview, previewRows)
  // Member by member, in the order of the schema (docs/recording.md), absent members left out:
  // conditional spreads here cost a temporary object and a slow copy per statement.
  const data = {connectionId: ev.connectionId, protocol: ev.protocol} as StatementData
  if (ev.statementName !== undefined) data.statementName = ev.statementName
  data.sql = sql
  data.normalized = normalized
  data.fingerprint = fingerprint
  if (params !== undefined) data.params = params
  if (details.class !== undefined) data.class = details.class
  data.decision = decision
  if (details.ruleId !== undefined) data.ruleId = details.ruleId
  if (details.approvalId !== undefined) data.approvalId = details.approvalId
  data.startedAt = isoString(ev.startedAt)
  // The tunnel measures with performance.now(); microseconds are plenty for a log.
  data.durationMs = Math.round(ev.durationMs * 1000) / 1000
  data.rows = ev.rows
  data.commandTags = ev.commandTags
  data.outcome = ev.outcome
  if (ev.suspended === true) data.suspended = true
  if (ev.executes !== undefined) data.executes = ev.executes.map((e) => ({name: e.name, sql: e.sql}))
  data.tables = details.tables ?? []
  data.maskedColumns = details.maskedColumns ?? []
  if (details.maskedValues !== undefined) data.maskedValues = details.maskedValues
  if (error) data.error = error
  if (preview) data.preview = preview
  return data
}

/** A number as `JSON.stringify` writes it: non-finite ones as null. */
const jsonNumber = (n: number): string => (Number.isFinite(n) ? String(n) : 'null')

/** The decimals of a thousandth, as `String` writes them after the point (`''`, `.5`, `.25`, `.125`). */
const THOUSANDTHS: string[] = []
for (let r = 0; r < 1000; r++) THOUSANDTHS.push(r === 0 ? '' : `.${String(r).padStart(3, '0')}`.replace(/0+$/, ''))

/**
 * `jsonNumber` of a duration rounded to the microsecond (`statementData`'s `durationMs`), without
 * V8's shortest-digits conversion of a double (~0.2 µs, and a heap number and a string, whenever
 * its number-to-string cache misses, which in a busy tunnel is mostly). `n` is `k / 1000` for an
 * integer `k`: the double nearest to that decimal, so `String(n)` is the decimal itself (no shorter
 * one is as near while the doubles' spacing there is far below a thousandth, up to 10^12 ms and
 * beyond); anything else takes `jsonNumber`.
 */
export function jsonMillis(n: number): string {
  const k = Math.round(n * 1000)
  if (k >= 0 && k < 1e12 && k / 1000 === n) {
    const r = k % 1000
    return `${(k - r) / 1000}${THOUSANDTHS[r]}`
  }
  return jsonNumber(n)
}

/** An array element as `JSON.stringify` writes it (what it cannot encode becomes null). */
const jsonElement = (x: unknown): string => (typeof x === 'string' ? JSON.stringify(x) : (JSON.stringify(x) ?? 'null'))

/** An array as `JSON.stringify` writes it; element by element, because the generic call on an array costs far more than on a string. */
function jsonArray(a: readonly unknown[]): string {
  if (a.length === 0) return '[]'
  let s = `[${jsonElement(a[0])}`
  for (let i = 1; i < a.length; i++) s += `,${jsonElement(a[i])}`
  return `${s}]`
}

/** A preview as `JSON.stringify` writes it, when it has exactly the members previews are made with. */
function jsonPreview(p: ResultPreview): string {
  const keys = Object.keys(p)
  if (keys.length !== 3 || keys[0] !== 'columns' || keys[1] !== 'rows' || keys[2] !== 'truncated' || !Array.isArray(p.columns) || !Array.isArray(p.rows) || typeof p.truncated !== 'boolean') return JSON.stringify(p)
  let rows = '['
  for (let i = 0; i < p.rows.length; i++) {
    const r = p.rows[i]
    rows += `${i === 0 ? '' : ','}${Array.isArray(r) ? jsonArray(r) : jsonElement(r)}`
  }
  return `{"columns":${jsonArray(p.columns)},"rows":${rows}],"truncated":${p.truncated}}`
}

/** `"key":value` after a comma, or nothing where `JSON.stringify` would leave the member out. */
function member(s: string, key: string, v: unknown): string {
  if (v === undefined) return s
  const json = Array.isArray(v) ? jsonArray(v) : JSON.stringify(v)
  return json === undefined ? s : `${s},"${key}":${json}`
}

const sameStrings = (a: readonly unknown[], b: readonly unknown[] | undefined): boolean => {
  if (b === undefined || a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] || typeof a[i] !== 'string') return false
  return true
}

/**
 * What one session's last statement event was encoded from, member group by member group: the
 * statements of a session mostly repeat their text, rule and tables (a prepared statement run
 * again, an ORM's query), and a group equal to the last one's is not encoded again.
 */
export class StatementJsonMemo {
  /** The last statement's text and its normalized text and fingerprint (a prepared statement run again, an ORM's query). */
  private text: string | undefined
  private normalized: Normalized | undefined

  /** `normalize(sql)`, asked again only for a text other than the last one: it is a function of the text. */
  normalize(sql: string, normalize: (sql: string) => Normalized): Normalized {
    if (sql !== this.text || this.normalized === undefined) {
      this.normalized = normalize(sql)
      this.text = sql
    }
    return this.normalized
  }

  /** connectionId … fingerprint. */
  head = {connectionId: NaN, protocol: '', statementName: undefined as string | undefined, prefix: '', sql: '', normalized: undefined as string | null | undefined, fingerprint: undefined as string | null | undefined, json: '', flat: false, tail: ''}
  /** class … approvalId. */
  rule = {class: undefined as string | undefined, decision: '', ruleId: undefined as string | undefined, approvalId: undefined as string | undefined, json: ''}
  commandTags: {of: readonly string[] | undefined; json: string} = {of: undefined, json: ''}
  tables: {of: readonly string[] | undefined; json: string} = {of: undefined, json: ''}
  maskedColumns: {of: readonly string[] | undefined; json: string} = {of: undefined, json: ''}
  /** Copies of the last preview's columns and cells (a statement run again mostly returns the same first rows). */
  preview: {columns: readonly string[] | undefined; rows: readonly (readonly (string | null)[])[]; truncated: boolean; json: string} = {columns: undefined, rows: [], truncated: false, json: ''}
}

const MEMO_PREVIEW_CELLS = 64

/** Whether `p` is a preview of exactly the members previews are made with, every column a string and every cell a string or null. */
function plainPreview(p: ResultPreview): boolean {
  const keys = Object.keys(p)
  if (keys.length !== 3 || keys[0] !== 'columns' || keys[1] !== 'rows' || keys[2] !== 'truncated' || !Array.isArray(p.columns) || !Array.isArray(p.rows) || typeof p.truncated !== 'boolean') return false
  for (const c of p.columns) if (typeof c !== 'string') return false
  for (const r of p.rows) {
    if (!Array.isArray(r)) return false
    for (const v of r) if (v !== null && typeof v !== 'string') return false
  }
  return true
}

const PREVIEW_MEMBERS = ['columns', 'rows', 'truncated']

/** Whether `p`'s own enumerable members are exactly `columns`, `rows`, `truncated`, in that order, as `Object.keys` would list them. */
function previewMembers(p: ResultPreview): boolean {
  if (Object.getPrototypeOf(p) !== Object.prototype) return false
  let n = 0
  for (const k in p) if (k !== PREVIEW_MEMBERS[n++]) return false
  return n === 3
}

/** `jsonPreview`, from the memo when the preview holds the same columns and cells as the last one. */
function previewJson(p: ResultPreview, memo: StatementJsonMemo['preview'] | undefined): string {
  if (!memo) return jsonPreview(p)
  // The memo holds only plain previews: equal columns and cells make this one plain too, once its
  // members are exactly those three (counted without `Object.keys`, which would allocate).
  if (memo.columns !== undefined && p.truncated === memo.truncated && Array.isArray(p.rows) && p.rows.length === memo.rows.length && Array.isArray(p.columns) && sameStrings(p.columns, memo.columns) && previewMembers(p)) {
    let same = true
    for (let i = 0; same && i < p.rows.length; i++) {
      const a = p.rows[i]!
      const b = memo.rows[i]!
      if (!Array.isArray(a) || a.length !== b.length) same = false
      for (let j = 0; same && j < a.length; j++) if (a[j] !== b[j]) same = false
    }
    if (same) return memo.json
  }
  const json = jsonPreview(p)
  // Kept only when small: copying a wide preview for every statement would cost more than it saves.
  if (p.rows.length * (p.columns.length + 1) <= MEMO_PREVIEW_CELLS && plainPreview(p)) {
    memo.columns = [...p.columns]
    memo.rows = p.rows.map((r) => [...r])
    memo.truncated = p.truncated
    memo.json = flat(json)
  } else memo.columns = undefined
  return json
}

function headJson(d: StatementData, m: StatementJsonMemo | undefined): string {
  const h = m?.head
  if (h && h.connectionId === d.connectionId && h.protocol === d.protocol && h.statementName === d.statementName && h.sql === d.sql && h.normalized === d.normalized && h.fingerprint === d.fingerprint) {
    // Joined when first used again: a text repeated (a prepared statement) is written many times.
    if (!h.flat) h.json = flat(h.json)
    h.flat = true
    return h.json
  }
  // The members before the text (the connection, the protocol, the statement's name) and after it
  // (its normalized form), kept apart: a new text of a known normalized text (pgbench -M simple) is
  // only the text itself.
  let prefix: string
  if (h && h.prefix !== '' && h.connectionId === d.connectionId && h.protocol === d.protocol && h.statementName === d.statementName) prefix = h.prefix
  else {
    prefix = `{"connectionId":${jsonNumber(d.connectionId)},"protocol":${JSON.stringify(d.protocol)}`
    if (d.statementName !== undefined) prefix += `,"statementName":${JSON.stringify(d.statementName)}`
    if (h) prefix = flat(prefix)
  }
  let tail: string
  if (h && h.normalized === d.normalized && h.fingerprint === d.fingerprint && d.normalized !== undefined && d.fingerprint !== undefined) tail = h.tail
  else {
    tail = ''
    if (d.normalized !== undefined) tail += `,"normalized":${JSON.stringify(d.normalized)}`
    if (d.fingerprint !== undefined) tail += `,"fingerprint":${JSON.stringify(d.fingerprint)}`
    if (h) tail = flat(tail)
  }
  const s = `${prefix},"sql":${JSON.stringify(d.sql)}${tail}`
  if (h) {
    h.connectionId = d.connectionId
    h.protocol = d.protocol
    h.statementName = d.statementName
    h.prefix = prefix
    h.sql = d.sql
    h.normalized = d.normalized
    h.fingerprint = d.fingerprint
    h.json = s
    h.flat = false
    h.tail = tail
  }
  return s
}

function ruleJson(d: StatementData, m: StatementJsonMemo | undefined): string {
  const r = m?.rule
  if (r && r.class === d.class && r.decision === d.decision && r.ruleId === d.ruleId && r.approvalId === d.approvalId) return r.json
  let s = ''
  if (d.class !== undefined) s += `,"class":${JSON.stringify(d.class)}`
  s += `,"decision":${JSON.stringify(d.decision)}`
  if (d.ruleId !== undefined) s += `,"ruleId":${JSON.stringify(d.ruleId)}`
  if (d.approvalId !== undefined) s += `,"approvalId":${JSON.stringify(d.approvalId)}`
  if (r) {
    r.class = d.class
    r.decision = d.decision
    r.ruleId = d.ruleId
    r.approvalId = d.approvalId
    r.json = flat(s)
  }
  return s
}

/** `,"key":[…]` for an array of strings, from the memo when it holds the same strings. */
function stringsMember(key: string, a: readonly string[] | undefined, memo: {of: readonly string[] | undefined; json: string} | undefined): string {
  if (a === undefined) return ''
  if (memo && Array.isArray(a) && sameStrings(a, memo.of)) return memo.json
  const json = member('', key, a)
  if (memo && Array.isArray(a) && a.every((x) => typeof x === 'string')) {
    memo.of = [...a]
    memo.json = flat(json)
  }
  return json
}

/** `JSON.stringify` of a member's value, remembered for the last string: consecutive statements mostly share their `startedAt` (a millisecond) and `outcome`. */
class LastJson {
  private value = ''
  private json = '""'
  of(v: unknown): string | undefined {
    if (typeof v !== 'string') return JSON.stringify(v)
    if (v !== this.value) {
      this.json = JSON.stringify(v)
      this.value = v
    }
    return this.json
  }
}
const startedAtJson = new LastJson()
const outcomeJson = new LastJson()

/**
 * Exactly `JSON.stringify(data)` for what `statementData` builds (same members, same order, absent
 * ones left out), without walking the object: the keys are constants and only values are encoded,
 * and with a session's `memo`, groups of members equal to its last statement's are not encoded
 * again. `test/audit/statement-json.test.ts` compares the two over every member, present, absent
 * and changed from one statement to the next.
 */
export function statementJson(d: StatementData, memo?: StatementJsonMemo): string {
  let s = headJson(d, memo)
  s = member(s, 'params', d.params)
  s += ruleJson(d, memo)
  s += `,"startedAt":${startedAtJson.of(d.startedAt)},"durationMs":${jsonMillis(d.durationMs)},"rows":${jsonNumber(d.rows)}`
  s += stringsMember('commandTags', d.commandTags, memo?.commandTags)
  s += `,"outcome":${outcomeJson.of(d.outcome)}`
  if (d.suspended === true) s += ',"suspended":true'
  if (d.executes !== undefined) s += `,"executes":${JSON.stringify(d.executes)}`
  s += stringsMember('tables', d.tables, memo?.tables)
  s += stringsMember('maskedColumns', d.maskedColumns, memo?.maskedColumns)
  if (d.maskedValues !== undefined) s += `,"maskedValues":${jsonNumber(d.maskedValues)}`
  s = member(s, 'error', d.error)
  if (d.preview !== undefined) s += `,"preview":${previewJson(d.preview, memo?.preview)}`
  return `${s}}`
}

export function emptyTotals(): Totals {
  return {statements: 0, denied: 0, errors: 0, rows: 0, syntaxErrors: 0}
}

export function addToTotals(t: Totals, s: Pick<StatementData, 'decision' | 'outcome' | 'rows' | 'error'>): void {
  t.statements += 1
  if (isDenied(s.decision)) t.denied += 1
  else if (s.outcome === 'error' || s.error) t.errors += 1
  if (isSyntaxError(s.decision)) t.syntaxErrors = (t.syntaxErrors ?? 0) + 1
  t.rows += s.rows
}

export function isSyntaxError(decision: RecordedDecision): boolean {
  return decision === 'syntax_error'
}

export function isDenied(decision: RecordedDecision): boolean {
  return decision === 'deny' || decision === 'approval_denied' || decision === 'approval_timeout'
}

/*
 * What each event type's `data` must be for a reader to use it. Anyone who can write the bucket can
 * leave a line that is a valid envelope around any data (a statement whose `sql` is a number, a
 * `session.end` whose data is null): the readers (list, search, export, verify, report) dereference
 * and add up these fields, and one such line threw out of the whole run, hiding every other session.
 * Only the fields readers use are checked, each as the recorder writes it; unknown fields stay
 * allowed (new optional fields within v1), and the line is kept as it was read.
 */
const text = z.string()
const count = z.number().finite().nonnegative()
const TotalsSchema = z.looseObject({statements: count, denied: count, errors: count, rows: count, syntaxErrors: count.optional()})
const StartDataSchema = z.looseObject({
  sessionId: text.optional(),
  identity: z.looseObject({subject: text, issuer: text, email: text.optional(), name: text.optional(), kind: text.optional(), groups: z.array(text).optional()}),
  target: text.optional(),
  database: text.optional(),
  dbUser: text.optional(),
  client: z.looseObject({application: text.optional(), user: text.optional(), address: text.optional()}).optional(),
  startedAt: text.optional(),
  policy: z.looseObject({hash: text.optional(), version: text.optional()}).optional(),
  agent: z.looseObject({client: text.optional(), name: text, version: text.optional()}).optional(),
  keyId: text.optional(),
})
const PreviewSchema = z.looseObject({columns: z.array(text), rows: z.array(z.array(text.nullable())), truncated: z.boolean()})
const StatementFields = {
  connectionId: z.number().optional(),
  sql: text,
  class: text.optional(),
  ruleId: text.optional(),
  approvalId: text.optional(),
  startedAt: text.optional(),
  rows: count.nullable(),
  tables: z.array(text).optional(),
  maskedColumns: z.array(text).optional(),
}
const StatementDataSchema = z.looseObject({
  ...StatementFields,
  decision: text,
  outcome: text.optional(),
  suspended: z.literal(true).optional(),
  executes: z.array(z.looseObject({name: text, sql: text})).optional(),
  durationMs: z.number().nullable().optional(),
  params: z.array(text.nullable()).optional(),
  commandTags: z.array(text).optional(),
  maskedValues: count.optional(),
  error: z.looseObject({sqlstate: text.optional(), message: text.optional()}).optional(),
  preview: PreviewSchema.optional(),
})
const StreamingDataSchema = z.looseObject({...StatementFields, decision: text.optional()})
const EndDataSchema = z.looseObject({reason: text.optional(), totals: TotalsSchema.optional(), refused: z.looseObject({reason: text, message: text}).optional()})
const ApprovalDataSchema = z.looseObject({
  approvalId: text.optional(),
  class: text.optional(),
  ruleId: text.optional(),
  reason: text.optional(),
  decision: text.optional(),
  reviewer: z.looseObject({email: text.optional(), subject: text.optional(), name: text.optional()}).optional(),
  decidedAt: text.optional(),
})
/** Any other type's data: an object, as every payload the recorder writes is. */
const OtherDataSchema = z.looseObject({})

function dataSchemaOf(type: string): z.ZodType {
  switch (type) {
    case 'session.start':
      return StartDataSchema
    case 'statement':
      return StatementDataSchema
    case 'statement.streaming':
      return StreamingDataSchema
    case 'session.end':
    case 'session.interrupted':
    case 'checkpoint':
      return EndDataSchema
    default:
      return type.startsWith('approval.') ? ApprovalDataSchema : OtherDataSchema
  }
}

/**
 * The deepest nesting of arrays and objects any line may have. The recorder's own lines nest a few
 * levels (a preview's rows, an identity's groups); a line nested thousands deep parses, then
 * overflows the stack of whatever walks it (escaping it for display, writing it as JSON).
 */
export const MAX_EVENT_NESTING = 32

/** Whether the JSON text `line` nests arrays and objects deeper than `max`, counted outside strings. */
function nestsDeeperThan(line: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < line.length; i++) {
    const ch = line.charCodeAt(i)
    if (inString) {
      if (ch === 0x5c) i++ // a backslash: the next character is escaped
      else if (ch === 0x22) inString = false
    } else if (ch === 0x22) inString = true
    else if (ch === 0x5b || ch === 0x7b) {
      if (++depth > max) return true
    } else if (ch === 0x5d || ch === 0x7d) depth--
  }
  return false
}

/** Parses one line; throws a DocumentError naming the field when it is not a v1 event whose data its readers can use. */
export function parseEventLine(line: string): AuditEvent {
  if (nestsDeeperThan(line, MAX_EVENT_NESTING)) throw new DocumentError('event line', [`(the document): nested more than ${MAX_EVENT_NESTING} levels deep`])
  const ev = parseDocument(EventLineSchema, line, 'event line') as AuditEvent
  const problems = problemsOf(dataSchemaOf(ev.type), ev.data)
  if (problems) throw new DocumentError('event line', problems.map((p) => `data.${p}`.replace('data.(the document)', 'data')))
  return ev
}

/**
 * A call an MCP tool refused itself, before anything reached the pipeline (src/mcp/server.ts): a
 * `query` of several statements, arguments the tool's schema rejects, every database session in use.
 * Recorded in the log of one of the agent's database sessions, with its statements.
 */
export const TOOL_REFUSED = 'mcp.tool_refused'

export interface ToolRefusedData {
  /** The tool the agent called (its name as the agent sent it, when no tool has it). */
  tool: string
  /** Why, as a word: `several-statements`, `invalid-arguments`, `malformed-call`, `unknown-tool`, `sessions-busy`, … */
  reason: string
  /** What the agent was told. */
  message: string
  /** The call's arguments as kept: its SQL (the first 64 KiB), its caps; `params` only counted; unknown ones only named. */
  arguments: {sql?: string; params?: number | string; otherArguments?: string[]; [name: string]: unknown}
}

/** A `mcp.tool_refused` event's data, with what a reader relies on well-formed; undefined for any other event. */
export function toolRefusalOf(ev: AuditEvent): ToolRefusedData | undefined {
  if (ev.type !== TOOL_REFUSED) return undefined
  const d = (ev.data ?? {}) as Partial<ToolRefusedData>
  const args = typeof d.arguments === 'object' && d.arguments !== null && !Array.isArray(d.arguments) ? d.arguments : {}
  return {
    tool: typeof d.tool === 'string' ? d.tool : '?',
    reason: typeof d.reason === 'string' ? d.reason : '?',
    message: typeof d.message === 'string' ? d.message : '',
    arguments: {...args, ...(typeof args.sql === 'string' || args.sql === undefined ? {} : {sql: undefined})},
  }
}

/** The statements a recorded statement's text EXECUTEs, as recorded (`executes`), well-formed ones only. */
export function executedOf(data: unknown): {name: string; sql: string}[] {
  const executes = (data as Partial<StatementData> | null)?.executes
  return Array.isArray(executes) ? executes.filter((e): e is {name: string; sql: string} => typeof e?.name === 'string' && typeof e?.sql === 'string') : []
}

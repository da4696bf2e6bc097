/**
 * One statement in flight, from the message that started it to its outcome: what the statement
 * event and the recording's preview are made of. Shared by both directions of a connection.
 */
import {rowsFromTag} from '../wire/backend.js'
import {cutMark, RECORDED_VALUE_BYTES, type BoundParams, type ExecutedStatement, type ProtocolPath, type ResultFilter, type StatementEvent, type StatementVerdict} from './seam.js'
import type {FieldDescription, PgNoticeFields} from '../wire/fields.js'
import type {PortalDef} from './protocol-state.js'

export interface Run {
  sql: string
  protocol: ProtocolPath
  statementName?: string
  params?: BoundParams
  verdict: StatementVerdict
  started: number
  /** Date.now() at the start; the Date is made only if an event is emitted. */
  startedAtMs: number
  tags: string[]
  /** DataRows seen; the CommandComplete tags' counts take precedence for the statements they complete. */
  dataRows: number
  /** `dataRows` at its last CommandComplete: the rows after it are of a statement no tag counts. */
  dataRowsTagged: number
  filter?: ResultFilter
  /** For an Execute: the portal, whose description may have come from an earlier Describe. */
  portal?: PortalDef
  /** The first rows as sent to the client, after the result filter. */
  preview?: {columns: string[]; rows: (string | null)[][]}
  fields?: FieldDescription[]
  error?: {code: string; message: string}
  /** The client-facing error that replaces the server's answer to a refused message. */
  denied?: PgNoticeFields
  finished?: boolean
  /** Rows of it reached the client before it finished, and `onRowsReleased` said so. */
  rowsAnnounced?: boolean
  /** An Execute that ended at its row limit (PortalSuspended): its rows are one part of the portal's. */
  suspended?: boolean
  /** See `StatementEvent.executes`. */
  executes?: readonly ExecutedStatement[]
}

export function newRun(sql: string, protocol: ProtocolPath, verdict: StatementVerdict, statementName?: string): Run {
  return {sql, protocol, statementName, verdict, started: performance.now(), startedAtMs: Date.now(), tags: [], dataRows: 0, dataRowsTagged: 0}
}

/** The columns of an Execute's result: from Describe Portal, else Describe Statement and Bind's formats. */
export function fieldsOf(run: Run): FieldDescription[] | undefined {
  if (run.fields || !run.portal) return run.fields
  const portal = run.portal
  if (portal.fields) return (run.fields = portal.fields)
  const described = portal.statement?.fields
  if (described) run.fields = withFormats(described, portal.resultFormats)
  return run.fields
}

export function statementEvent(sessionId: string, connectionId: number, run: Run, outcome: StatementEvent['outcome']): StatementEvent {
  return {
    sessionId,
    connectionId,
    protocol: run.protocol,
    statementName: run.statementName,
    sql: run.sql,
    params: run.params,
    paramTypes: run.portal?.statement?.paramTypes,
    verdict: run.verdict,
    startedAt: new Date(run.startedAtMs),
    durationMs: performance.now() - run.started,
    commandTags: run.tags,
    rows: rowsOf(run),
    outcome: run.denied ? 'rejected' : outcome,
    suspended: run.suspended,
    executes: run.executes,
    error: run.error,
    resultFilter: run.filter,
    preview: run.preview && {columns: run.preview.columns, rows: run.preview.rows, truncated: run.dataRows > run.preview.rows.length},
  }
}

/**
 * Rows the statement returned or affected: its tags' counts, and the rows sent after its last tag.
 * A text of several statements whose last one fails after sending rows has tags (the earlier
 * statements'), and the failing one's rows are counted by no tag: `select 1; select ssn from
 * people …` failing after its last row counted one row while the client had read every SSN.
 */
function rowsOf(run: Run): number {
  if (run.tags.length === 0) return run.dataRows
  return rowsOfTags(run.tags) + run.dataRows - run.dataRowsTagged
}

/** The last tag counted, and its count: a session's tags repeat, and the proxy hands on one string for them. */
let countedTag: string | undefined
let countedRows = 0

/**
 * The commands whose tag's number is rows sent to the client or changed (CREATE TABLE AS reports
 * `SELECT n`). Any other tag counts none: `MOVE n` moved a cursor past n rows and sent or changed
 * none, and counted as rows, a client could make its session's figures whatever it liked.
 */
const ROW_TAGS = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'MERGE', 'FETCH', 'COPY'])

function rowsOfTag(tag: string): number {
  const space = tag.indexOf(' ')
  return space > 0 && ROW_TAGS.has(tag.slice(0, space)) ? rowsFromTag(tag) : 0
}

function rowsOfTags(tags: readonly string[]): number {
  let n = 0
  for (const t of tags) {
    if (t !== countedTag) {
      countedRows = rowsOfTag(t)
      countedTag = t
    }
    n += countedRows
  }
  return n
}

/** The first rows of a result as the client received them (masked), for the session log. */
export function keepPreviewRow(run: Run, values: (Buffer | null)[]): void {
  const fields = fieldsOf(run)
  run.preview ??= {columns: fields ? fields.map((f) => f.name) : values.map((_, i) => `column${i + 1}`), rows: []}
  run.preview.rows.push(values.map((v, i) => (v === null ? null : fields?.[i]?.format === 1 ? '<binary>' : previewCell(v))))
}

/** A preview cell: the value as the client got it, or its first `RECORDED_VALUE_BYTES` and its length when it is longer. */
function previewCell(v: Buffer): string {
  if (v.length <= RECORDED_VALUE_BYTES) return v.toString('utf8')
  return `${v.toString('utf8', 0, utf8Boundary(v, RECORDED_VALUE_BYTES))}${cutMark(v.length)}`
}

/** The largest end at or below `max` that does not split a UTF-8 character of `b`. */
export function utf8Boundary(b: Buffer, max: number): number {
  let end = Math.min(max, b.length)
  // A continuation byte (its top two bits 1 and 0) at the cut belongs to a character that starts before it.
  while (end > 0 && end < b.length && (b[end]! & 0xc0) === 0x80) end--
  return end
}

/**
 * A statement's RowDescription as a portal bound with `resultFormats` reports it (once per Execute),
 * without the columns' origins. The server describes a statement as planned then, and plans it
 * again at Bind after a change to what it reads: `select x from t` described, then `t` renamed
 * away and a table with a sensitive `x` renamed to `t`, runs on the other table under the same
 * names and types, so the described origin would vouch for values it no longer holds. A portal's
 * own description (Describe of the portal, after its Bind) and a RowDescription of the result
 * itself keep theirs.
 * Built field by field: a spread followed by another property takes V8's slow path, ~0.7 µs each.
 */
function withFormats(fields: FieldDescription[], formats: readonly number[]): FieldDescription[] {
  return fields.map((f, i) => ({
    name: f.name,
    tableOid: 0,
    columnAttr: 0,
    typeOid: f.typeOid,
    typeSize: f.typeSize,
    typeModifier: f.typeModifier,
    format: formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : (formats[i] ?? 0),
  }))
}

/**
 * Bind parameters as text, or base64 with a `b64:` prefix for binary ones. With `keep`, a value
 * longer than that is cut there and its full length noted in `cutFrom` (see `BoundParams`).
 */
export function paramsAsText(params: (Buffer | null)[], formats: number[], keep = Infinity): BoundParams {
  let cutFrom: number[] | undefined
  const out: BoundParams = params.map((p, i) => {
    if (p === null) return null
    const format = formats.length === 1 ? formats[0] : formats[i] ?? 0
    let v = p
    if (p.length > keep) {
      ;(cutFrom ??= new Array<number>(params.length).fill(0))[i] = p.length
      v = p.subarray(0, format === 1 ? keep : utf8Boundary(p, keep))
    }
    return format === 1 ? `b64:${v.toString('base64')}` : v.toString('utf8')
  })
  if (cutFrom) out.cutFrom = cutFrom
  return out
}

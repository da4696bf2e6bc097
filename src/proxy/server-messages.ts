/**
 * Upstream → client: every reply of a ready session. Each one is first matched against what the
 * protocol state says the server owes (a mismatch throws ProtocolDesync and closes the connection),
 * then passed through the result filter of the statement it answers, and forwarded untouched where
 * nothing rewrites it.
 */
import {
  decodeCommandComplete,
  decodeDataRow,
  decodeNotice,
  decodeNotification,
  decodeParameterStatus,
  encodeParameterStatus,
  decodeReadyForQuery,
  decodeRowDescription,
  encodeCopyData,
  encodeDataRow,
  encodeError,
  encodeNotice,
  encodeNotification,
  encodeRowDescription,
} from '../wire/backend.js'
import {Backend, codeName} from '../wire/codes.js'
import {frameByte, type Frame} from '../wire/framer.js'
import type {ConnectionCore} from './connection.js'
import type {ResultFilter} from './seam.js'
import type {FieldDescription, PgNoticeFields} from '../wire/fields.js'
import {ProtocolDesync, type Entry, type PortalDef} from './protocol-state.js'
import {fieldsOf, keepPreviewRow, newRun, type Run} from './run.js'
import {assumedSettingsOf, checkReported} from './session-settings.js'

export class ServerMessages {
  /** The connection's last RowDescription, decoded: the next one with the same bytes reuses it. */
  private readonly described = new LastDescription()
  /** The connection's last CommandComplete tag, decoded: the next one with the same bytes reuses the string. */
  private readonly tags = new LastTag()

  constructor(private readonly c: ConnectionCore) {}

  /**
   * Portals the server bound since the last ReadyForQuery, while statements are recorded. The
   * server plans a statement at Bind, and planning runs what it folds into constants: an IMMUTABLE
   * function's body (`set_config`, `setval`, `pg_notify`, …) runs at a Bind that no Execute
   * follows. Such a Bind is recorded on its own at the end of its pipeline (`recordUnexecuted`), or
   * as soon as a Bind of its name replaces it: kept until the pipeline's end, a client that bound
   * the unnamed portal again and again with no Sync made the tunnel keep every one of them (200,000
   * Binds, 145 MiB) while the server kept one. By name, latest last.
   */
  private boundSinceReady = new Map<string, PortalDef>()

  /** Records each portal bound in the pipeline that just ended (or the session) that no Execute named (`bound`). */
  recordUnexecuted(): void {
    const bound = this.boundSinceReady
    this.boundSinceReady = new Map()
    for (const def of bound.values()) if (!def.executed) this.c.finishRun(boundRun(def), 'bound')
  }

  /** A portal the server bound; one it replaces under the same name can no longer be executed, and is recorded now. */
  private bound(def: PortalDef): void {
    const replaced = this.boundSinceReady.get(def.name)
    if (replaced !== undefined) {
      this.boundSinceReady.delete(def.name)
      if (!replaced.executed) this.c.finishRun(boundRun(replaced), 'bound')
    }
    this.boundSinceReady.set(def.name, def)
  }

  /**
   * Bound once: the framer (`pushRuns`) calls it for every upstream frame. Returns where in
   * `frame.source` what it consumed ends: past the frame when a result filter took the rows after
   * it in the chunk as well (`dataRowMessages`, `copyDataMessages`), which the framer then skips.
   * Those rows are of the same statement and type as the frame's, so the protocol state, which
   * checked the frame's, would say the same of each; only the row count needs them.
   */
  readonly onFrame = (frame: Frame): number => {
    this.onMessage(frame)
    return this.taken
  }

  /** Set by `onMessage`: where the messages it consumed end (0: its frame alone). */
  private taken = 0

  private onMessage(frame: Frame): void {
    const c = this.c
    const state = c.state
    this.taken = 0
    // The tunnel's own query (an approval reading the session's settings): its replies are its own.
    if (c.ownQuery !== undefined && c.ownQuery.take(frame)) return
    switch (frame.code) {
      case Backend.DataRow: {
        const run = state.onResultPart('DataRow').run
        run.dataRows++
        if (run.rowsAnnounced !== true) c.rowsOut = run
        const filter = run.filter
        // Past the recording's preview rows, this row and those after it in the chunk at once.
        if (filter?.dataRowMessages && frame.source && run.dataRows > (c.env.hooks.previewRows ?? 0)) {
          const taken = filter.dataRowMessages(frame.source, fieldsOf(run), frame.start!, c.env.maxMessageSize, c.clientSink)
          if (taken > frame.start!) {
            run.dataRows += messagesBetween(frame.source, frame.end!, taken)
            this.taken = taken
            return
          }
        }
        if (filter?.dataRowMessage) {
          const out = frame.source ? filter.dataRowMessage(frame.source, fieldsOf(run), frame.start! + 5, frame.end) : filter.dataRowMessage(frame.raw, fieldsOf(run), 5)
          if (run.dataRows <= (c.env.hooks.previewRows ?? 0)) keepPreviewRow(run, decodeDataRow(out ? out.subarray(5) : frame.body))
          return void c.toClient.push(out ?? frame.raw)
        }
        if (filter?.dataRow) {
          const values = decodeDataRow(frame.body)
          const out = filter.dataRow(values, fieldsOf(run))
          // Only rows that went through the masking filter are kept for the recording's preview.
          if (run.dataRows <= (c.env.hooks.previewRows ?? 0)) keepPreviewRow(run, out ?? values)
          if (out) return void c.toClient.push(encodeDataRow(out))
        }
        c.passToClient(frame)
        return
      }
      case Backend.RowDescription: {
        const head = state.onRowDescription()
        // Columns are only ever read by result filters: without a filter factory there is nothing to decode.
        if (c.env.hooks.resultFilter === undefined) return void c.passToClient(frame)
        let filter: ResultFilter | undefined
        let fields: FieldDescription[]
        if (head.kind === 'describe') {
          // A described statement or portal keeps its columns for the Executes after it, filtered or not.
          fields = this.described.fields(frame, undefined)
          if (head.def) head.def.fields = fields
          filter = head.filter
        } else {
          const run = head.run as Run
          filter = run.filter
          // A run's columns are read only by its filter (and the preview, kept only with one).
          if (!filter) return void c.passToClient(frame)
          fields = run.fields = this.described.fields(frame, run.fields)
        }
        if (filter?.rowDescription) {
          const out = filter.rowDescription(fields)
          if (out) return void c.toClient.push(encodeRowDescription(out))
        }
        c.passToClient(frame)
        return
      }
      case Backend.CommandComplete: {
        // Most tags need no reading (SELECT 1, INSERT 0 1); COMMIT, ROLLBACK and PREPARE TRANSACTION end transactions.
        const first = frameByte(frame, 5)
        const read = c.env.hooks.onStatement !== undefined || first === 0x43 || first === 0x52 || first === 0x50 || state.tagNeeded()
        const tag = read ? this.tags.tag(frame) : undefined
        const head = state.onCommandComplete(tag)
        // Tags feed the statement event.
        if (tag !== undefined && c.env.hooks.onStatement) {
          head.run.tags.push(tag)
          head.run.dataRowsTagged = head.run.dataRows
        }
        if (head.kind === 'execute') c.finishRun(head.run, 'ok')
        c.passToClient(frame)
        return
      }
      case Backend.EmptyQueryResponse: {
        const head = state.onEmptyQuery()
        if (head.kind === 'execute') c.finishRun(head.run, 'ok')
        c.passToClient(frame)
        return
      }
      case Backend.PortalSuspended: {
        const run = state.onPortalSuspended().run
        run.suspended = true
        c.finishRun(run, 'ok')
        c.passToClient(frame)
        return
      }
      case Backend.ErrorResponse:
        return this.onError(frame)
      case Backend.ReadyForQuery: {
        const status = readyStatus(frame)
        const head = state.onReadyForQuery(status)
        if (head.kind === 'query') c.finishRun(head.run, head.run.error ? 'error' : 'ok')
        if (this.boundSinceReady.size > 0) this.recordUnexecuted()
        const idle = status === 'I' ? c.env.hooks.onIdle : undefined
        if (idle) c.safely(() => idle(c.id, state))
        c.passToClient(frame)
        if (c.closing) c.maybeFinishShutdown()
        return
      }
      case Backend.ParseComplete:
        state.onParseComplete()
        c.passToClient(frame)
        return
      case Backend.BindComplete: {
        const bound = state.onBindComplete().def
        if (bound !== undefined && c.env.hooks.onStatement) this.bound(bound)
        c.passToClient(frame)
        return
      }
      case Backend.CloseComplete:
        state.onCloseComplete()
        c.passToClient(frame)
        return
      case Backend.NoData:
        state.onNoData()
        c.passToClient(frame)
        return
      case Backend.ParameterDescription:
        state.onParameterDescription()
        c.passToClient(frame)
        return
      case Backend.CopyInResponse:
        state.onCopyInResponse()
        c.passToClient(frame)
        return
      case Backend.CopyOutResponse:
        state.onResultPart('CopyOutResponse')
        c.passToClient(frame)
        return
      case Backend.CopyDone:
        state.onResultPart('CopyDone')
        c.passToClient(frame)
        return
      case Backend.CopyData: {
        const run = state.onResultPart('CopyData').run
        // The server sends a COPY TO STDOUT row by row, one CopyData each: a COPY that fails after
        // sending them has no tag, and its rows are counted here (a tag's count replaces them).
        run.dataRows++
        if (run.rowsAnnounced !== true) c.rowsOut = run
        if (run.filter?.copyDataMessages && frame.source) {
          const taken = run.filter.copyDataMessages(frame.source, frame.start!, c.env.maxMessageSize, c.clientSink)
          if (taken > frame.start!) {
            run.dataRows += messagesBetween(frame.source, frame.end!, taken)
            this.taken = taken
            return
          }
        }
        if (run.filter?.copyDataMessage) {
          const out = frame.source ? run.filter.copyDataMessage(frame.source, frame.start! + 5, frame.end) : run.filter.copyDataMessage(frame.raw, 5)
          return void c.toClient.push(out ?? frame.raw)
        }
        if (run.filter?.copyData) {
          const out = run.filter.copyData(frame.body)
          if (out) return void c.toClient.push(encodeCopyData(out))
        }
        c.passToClient(frame)
        return
      }
      case Backend.NoticeResponse: {
        const run = runOf(state.head)
        // A statement's notices say what it read as much as its rows do.
        if (run !== undefined && run.rowsAnnounced !== true) c.rowsOut = run
        const filter = run?.filter ?? c.sessionFilter
        if (filter?.notice) {
          const out = filter.notice(decodeNotice(frame.body))
          if (out) return void c.toClient.push(encodeNotice(out))
        }
        c.passToClient(frame)
        return
      }
      case Backend.NotificationResponse: {
        if (c.sessionFilter?.notification) {
          const n = decodeNotification(frame.body)
          const payload = c.sessionFilter.notification(n.channel, n.payload)
          if (payload !== undefined) return void c.toClient.push(encodeNotification(n.processId, n.channel, payload))
        }
        c.passToClient(frame)
        return
      }
      case Backend.ParameterStatus:
        return this.onParameterStatus(frame)
      case Backend.CopyBothResponse:
        throw new ProtocolDesync('the server started a replication stream (CopyBothResponse)')
      default:
        // BackendKeyData, Authentication, NegotiateProtocolVersion and FunctionCallResponse belong to
        // startup or to messages the tunnel never forwards.
        throw new ProtocolDesync(`the server sent ${codeName(frame.code)}, which no message of this session asks for`)
    }
  }

  private onError(frame: Frame): void {
    const c = this.c
    const fields = decodeNotice(frame.body)
    const fatal = fields.severity === 'FATAL' || fields.severity === 'PANIC'
    const {head, skipped} = c.state.onError(fatal)
    const run = runOf(head) ?? (head?.kind === 'parse' || head?.kind === 'bind' ? head.run : undefined)
    let out: Buffer = frame.raw
    // What the client is shown of the server's error, which is what the recording keeps.
    let shown: {code: string; message: string} = {code: fields.code, message: fields.message}
    if (run?.denied) {
      out = encodeError(run.denied)
      run.error = {code: run.denied.code, message: run.denied.message}
    } else {
      // A Parse that fails (a missing table, a type error) has no run: its error is its text's to filter.
      const parsed = !run && head?.kind === 'parse' ? head.def : undefined
      const filter = run?.filter ?? (parsed && c.safely(() => c.env.hooks.resultFilter?.(parsed.sql, c.context('parse', parsed.name), parsed.verdict))) ?? c.sessionFilter
      const rewritten = filter?.error?.(fields)
      if (rewritten) {
        out = encodeError(rewritten)
        shown = {code: rewritten.code, message: rewritten.message}
      }
      if (run) run.error = shown
    }
    if (run && head && head.kind !== 'query') c.finishRun(run, run.denied ? 'rejected' : 'error')
    // A Parse or Bind that fails (a missing table, a bad parameter, an error while planning) is the
    // failure of the statement an Execute after it was to run: that one is recorded with the
    // server's error as the client was shown it (a Bind's error quotes the parameter it could not
    // take, masked by the filter that saw it, which is not that statement's), as the same text sent
    // as a simple Query is, not as skipped.
    const failed = run ? undefined : executeFailedBy(head, skipped)
    if (failed) failed.error = shown
    // A Bind that failed with no Execute of its portal after it ran its planning all the same (the error is often from it).
    else if (!run && head?.kind === 'bind' && head.def && c.env.hooks.onStatement) {
      const bound = boundRun(head.def)
      bound.error = shown
      c.finishRun(bound, 'error')
    }
    // The messages the server now skips up to Sync: their statements never ran.
    for (const e of skipped) if (e.run) c.finishRun(e.run, e.run === failed ? 'error' : 'aborted')
    c.toClient.push(out)
    if (fatal) c.env.log('warn', `connection ${c.id}: the upstream ended the session: ${fields.message}`)
  }

  private onParameterStatus(frame: Frame): void {
    const c = this.c
    const {name, value} = decodeParameterStatus(frame.body)
    c.state.parameters.set(name, value)
    const problem = checkReported(name, value, assumedSettingsOf(c.env))
    if (problem) {
      c.env.log('error', `connection ${c.id}: ended the session: the server reports ${name} = ${value}, which the tunnel cannot analyse under`)
      // Nothing after this frame is forwarded: the session ends here, and the recording says why.
      throw new SettingChanged(problem)
    }
    // Masking may hide a reported value that code it could not see set (application_name set by a DO block).
    const filter = runOf(c.state.head)?.filter ?? c.sessionFilter
    const shown = filter?.parameterStatus?.(name, value)
    c.toClient.push(shown === undefined ? frame.raw : encodeParameterStatus(name, shown))
  }
}

/** A reported setting the analysis cannot hold under: the connection ends with `notice`. */
export class SettingChanged extends Error {
  override name = 'SettingChanged'
  constructor(readonly notice: PgNoticeFields) {
    super(notice.message)
  }
}

/**
 * How many messages lie in `source[from, to)`, which a result filter took as whole messages: `to`
 * must fall on a message's end, else what the filter returned is not what it took.
 */
function messagesBetween(source: Buffer, from: number, to: number): number {
  let n = 0
  let at = from
  while (at + 5 <= to) {
    at += 1 + (((source[at + 1]! << 24) | (source[at + 2]! << 16) | (source[at + 3]! << 8) | source[at + 4]!) >>> 0)
    n++
  }
  if (at !== to) throw new Error(`a result filter took bytes up to ${to}, which is not the end of a message`)
  return n
}

/** ReadyForQuery's status, read from the frame without a view of it (a missing byte is refused as unknown). */
function readyStatus(frame: Frame): 'I' | 'T' | 'E' {
  const b = frameByte(frame, 5)
  if (b === 0x49) return 'I'
  if (b === 0x54) return 'T'
  if (b === 0x45) return 'E'
  return decodeReadyForQuery(frame.raw, 5)
}

/** The run of the first skipped Execute of the portal a failed Bind made, or of a portal bound from the statement a failed Parse made. */
function executeFailedBy(head: Entry<Run> | undefined, skipped: readonly Entry<Run>[]): Run | undefined {
  if (!head || (head.kind !== 'parse' && head.kind !== 'bind') || !head.def) return undefined
  const made = head.def
  for (const e of skipped) {
    if (e.kind !== 'execute' || !e.def) continue
    if (head.kind === 'bind' ? e.def === made : e.def.statement === made) return e.run
  }
  return undefined
}

/** A run for a portal's Bind, recorded when no Execute ran it. */
function boundRun(def: PortalDef): Run {
  const run = newRun(def.sql, 'parse', def.verdict, def.statement?.name)
  run.params = def.params
  run.portal = def
  return run
}

function runOf(head: Entry<Run> | undefined): Run | undefined {
  return head && (head.kind === 'query' || head.kind === 'execute') ? head.run : undefined
}

/** Descriptions longer than this are decoded each time rather than kept per connection. */
const MAX_KEPT_DESCRIPTION = 2048

/**
 * The last RowDescription a connection decoded, frozen, with its bytes: most statements of a
 * session describe their rows exactly as the one before (pgbench's every `SELECT abalance`), and
 * decoding makes a string and an object per column. Reuse is sound because the decoded columns
 * are a pure function of the bytes and frozen (no one can change them for the next result), and
 * one array is never handed twice to the same result filter: a filter keys its plans on the
 * array's identity and counts results by new arrays, so two results of one simple Query with
 * equal descriptions (`SELECT 'x' AS v; SELECT upper(ssn) AS v FROM people`: no origin, same name
 * and type) must get two arrays. Reuse across statements hands the array to a new filter, whose
 * plan follows its own statement's lineage.
 */
class LastDescription {
  /** The kept description's body, one character per byte (a string: no buffer of its own per connection). */
  private bytes = ''
  private last: FieldDescription[] | undefined

  /**
   * The columns of RowDescription `frame`. `given`: the columns the receiving result already got
   * (its run's last description); the kept array is not handed out again to it.
   */
  fields(frame: Frame, given: FieldDescription[] | undefined): FieldDescription[] {
    const source = frame.source ?? frame.raw
    const start = (frame.source ? frame.start! : 0) + 5
    const end = frame.source ? frame.end! : frame.raw.length
    const last = this.last
    if (last !== undefined && last !== given && end - start === this.bytes.length && sameBytes(this.bytes, source, start)) return last
    const fields = decodeRowDescription(frame.body)
    for (const f of fields) Object.freeze(f)
    Object.freeze(fields)
    const keep = end - start <= MAX_KEPT_DESCRIPTION
    this.bytes = keep ? source.toString('latin1', start, end) : ''
    this.last = keep ? fields : undefined
    return fields
  }
}

/**
 * The last CommandComplete tag a connection decoded: a session's statements mostly end with the
 * same tag (`SELECT 1`), and a string is the same whichever message it was read from. Compared
 * with the message's bytes as ASCII (a tag with other characters is decoded every time).
 */
class LastTag {
  private last: string | undefined

  tag(frame: Frame): string {
    const source = frame.source ?? frame.raw
    const start = (frame.source ? frame.start! : 0) + 5
    const n = (frame.source ? frame.end! : frame.raw.length) - start
    const last = this.last
    if (last !== undefined && n === last.length + 1 && source[start + last.length] === 0 && sameBytes(last, source, start)) return last
    const tag = decodeCommandComplete(frame.body)
    this.last = tag.length < 64 && /^[\x20-\x7e]*$/.test(tag) ? tag : undefined
    return tag
  }
}

/** Whether `source` holds `kept`'s bytes (one character per byte) from `start` on. */
function sameBytes(kept: string, source: Buffer, start: number): boolean {
  for (let i = 0; i < kept.length; i++) if (kept.charCodeAt(i) !== source[start + i]) return false
  return true
}

/**
 * Client → upstream: every message of a ready session. Statement texts are judged before they are
 * forwarded; Bind and Execute are checked against the acknowledged protocol state; a refused
 * message is replaced by one the server is certain to refuse, so the server's own error and
 * skip-till-Sync keep both sides of the protocol in step.
 *
 * A message whose meaning depends on a name still in flight (bound from a statement whose Parse is
 * not yet acknowledged in an earlier segment, EXECUTE of a name a pipelined PREPARE defines) waits
 * for the server's replies first, and so do the messages after it: nothing is judged on a guess.
 */
import {serialize} from 'pg-protocol'
import {encodeNotice} from '../wire/backend.js'
import {codeName, Frontend} from '../wire/codes.js'
import {FrameView, ProtocolError, type Frame} from '../wire/framer.js'
import {decodeBind, decodeDescribeOrClose, decodeExecute, decodeParse, decodeQuery, encodeParse, encodeQuery} from '../wire/frontend.js'
import type {ConnectionCore} from './connection.js'
import {RECORDED_VALUE_BYTES, RECORDED_VALUE_MARGIN, type BoundParams, type ExecutedStatement, type NamedDefinition, type ProtocolPath, type ResultFilter, type StatementContext, type StatementVerdict} from './seam.js'
import type {PgNoticeFields} from '../wire/fields.js'
import {PortalDef, portalFromStatement, StatementDef, UNSETTLED} from './protocol-state.js'
import {newRun, paramsAsText, type Run} from './run.js'
import {firstForeignName, foreignNameEncoding, foreignNameRefusal, foreignProtocolName, protocolNameFollowable} from './server-names.js'
import {textShape, type NameRef, type SqlEffect, type StatementShape, type TextShape} from './sql-effects.js'

/** What the replacement for a refused message says to the server: a guaranteed syntax error with no effect. */
const REFUSED_SQL = 'DBGATE REFUSED STATEMENT'
/** A prepared statement name Parse refuses, so that a client's Parse never looks like the tunnel's refusal. */
const REFUSED_STATEMENT = 'dbgate refused binding'
/** A portal name Bind refuses, for the same reason. */
const REFUSED_PORTAL = 'dbgate refused portal'

/**
 * What the server is sent in place of a refused Bind or Execute: a Bind that reads as two parameter
 * format codes for no parameters, which the server rejects (08P01) while reading the message, before
 * it plans a statement or makes or runs a portal. A refusal that named a statement or portal that
 * must not exist failed only while none did, and SQL makes both (PREPARE "dbgate refused binding",
 * DECLARE "dbgate refused portal" CURSOR …): a refused Execute then ran the client's cursor on the
 * server (its functions, nextval included), recorded as refused.
 */
const REFUSAL_BIND: Buffer = (() => {
  const names = Buffer.from(`${REFUSED_PORTAL}\0${REFUSED_STATEMENT}\0`, 'utf8')
  // Two parameter format codes (text, text), then zero parameters and zero result format codes.
  const tail = Buffer.from([0, 2, 0, 0, 0, 0, 0, 0, 0, 0])
  const head = Buffer.alloc(5)
  head[0] = 0x42 // 'B'
  head.writeInt32BE(4 + names.length + tail.length, 1)
  return Buffer.concat([head, names, tail])
})()

/**
 * NAMEDATALEN - 1: the server keys prepared statements and portals by their first 63 bytes
 * (prepare.c and portalmem.c hash them as C strings of NAMEDATALEN), without a word.
 */
const MAX_NAME_BYTES = 63

/**
 * Replies the server may owe one connection before the tunnel stops reading its client. The tunnel
 * keeps an entry for each owed reply (about 70 bytes), for as little as a 5-byte Sync: a client that
 * pipelined without reading its replies had an entry kept for every message the socket buffers
 * between it and the server held (4 MiB of Syncs: 780,000 entries, 50 MiB of heap, per connection).
 * Reading goes on once the server has answered half of them; the server sends what it holds back
 * (less than its 8 KiB output buffer) at the latest when its buffer fills.
 */
export const MAX_OWED_REPLIES = 8192

const ALLOW: StatementVerdict = Object.freeze({action: 'allow'}) as StatementVerdict
/** A Flush message: the server sends what it holds of its replies. */
const FLUSH = Buffer.from([Frontend.Flush, 0, 0, 0, 4])
const NO_STATEMENTS: TextShape = Object.freeze({statements: Object.freeze([]) as readonly StatementShape[], refs: [], opaque: false})
const NO_SHAPE: StatementShape = Object.freeze({})
const OPAQUE_STATEMENT: StatementShape = Object.freeze({opaque: true})

export class ClientMessages {
  /** Client frames kept back, in order, while a message waits. */
  private held: Buffer[] = []
  /** Why client frames are kept back: a verdict being decided, or server replies that settle a name. */
  private waiting: 'verdict' | 'replies' | undefined
  /** Aborts the pending verdict's wait when the client cancels or leaves. */
  private judgeAbort: AbortController | undefined
  /** The last message sent on is an Execute with no Sync or Flush after it (`endOfInput`). */
  private executeUnflushed = false
  /**
   * Messages sent on that run something on the server or change what a statement will mean there
   * (Query, Parse, Bind, Execute). An approval for one execution holds only while this does not move
   * between its Parse and its Bind, and its Bind and Execute (`ranSinceApproval`).
   */
  private ran = 0

  constructor(private readonly c: ConnectionCore) {}

  /** `foreignNameEncoding` of the session's database, read once (server_encoding cannot change in a session). */
  private nameEncoding: string | undefined | null = null

  private get foreignEncoding(): string | undefined {
    if (this.nameEncoding === null) this.nameEncoding = foreignNameEncoding(this.c.state.parameters.get('server_encoding'))
    return this.nameEncoding
  }

  /** The refusal of a text that names a statement or cursor the server may key otherwise (server-names.ts). */
  private foreignName(shape: TextShape): PgNoticeFields | undefined {
    const encoding = this.foreignEncoding
    if (encoding === undefined) return undefined
    const name = firstForeignName(shape)
    return name === undefined ? undefined : foreignNameRefusal(name, encoding)
  }

  /**
   * Refuses a protocol name the server would key otherwise than the tunnel: cut short past 63
   * bytes, or read in another encoding (server-names.ts).
   */
  private checkName(kind: 'prepared statement' | 'portal', name: string): void {
    checkName(kind, name)
    if (name !== '' && !protocolNameFollowable(name, this.foreignEncoding)) throw new ProtocolError(foreignProtocolName(kind, name, this.foreignEncoding!))
  }

  get busy(): boolean {
    return this.waiting !== undefined || this.held.length > 0
  }

  abortSignal(): AbortSignal {
    return (this.judgeAbort ??= new AbortController()).signal
  }

  /**
   * A CancelRequest withdraws a statement still waiting for its verdict, and so does the end of the
   * session (`why`: its token expired, server.maxSessionDuration, a drain).
   */
  withdrawVerdict(why = 'cancelled by the client'): boolean {
    if (this.waiting !== 'verdict' || !this.judgeAbort) return false
    this.judgeAbort.abort(new Error(why))
    return true
  }

  stop(): void {
    this.judgeAbort?.abort(new Error('the client disconnected'))
  }

  /** Bound once: the framer calls it for every client frame of a ready session. */
  readonly onFrame = (frame: Frame): void => {
    if (this.waiting) {
      // Frame views die with the chunk: keep a copy.
      this.held.push(Buffer.from(frame.raw))
      return
    }
    this.dispatch(frame)
  }

  /** Reading stopped because the server owes too many replies (`MAX_OWED_REPLIES`). */
  private owedFull = false

  /** Server replies were processed: a message waiting for them may go on. */
  repliesArrived(): void {
    if (this.owedFull && this.c.state.pendingCount <= MAX_OWED_REPLIES / 2) {
      this.owedFull = false
      if (!this.waiting) this.c.client.resume()
    }
    if (this.waiting !== 'replies') return
    this.waiting = undefined
    this.drain()
  }

  /** The upstream drained its writes: read from the client again, unless a message is on hold. */
  resumeReading(): void {
    if (!this.waiting && !this.owedFull) this.c.client.resume()
  }

  private drain(): void {
    try {
      while (!this.waiting && this.held.length > 0 && this.c.ready) {
        const raw = this.held.shift()!
        this.dispatch(new FrameView(raw[0]!, raw, 5))
      }
    } catch (error) {
      this.c.fail(error)
      return
    }
    this.endOfInput()
    this.c.flush()
    if (!this.waiting) {
      if (!this.owedFull) this.c.client.resume()
      if (this.c.closing) this.c.maybeFinishShutdown()
    }
  }

  /**
   * Where the client's input ends with an Execute sent on and no Sync or Flush after it, the server
   * keeps its replies until one comes. When other sessions wait on this one (`ProxyHooks.awaited`)
   * a Flush has it send them, so that the tunnel knows whether the statement still runs: a session
   * that changed the schema in an implicit transaction and then holds back its Sync must not count
   * as running, or it would hold the person's other sessions for as long as it stays connected
   * (src/pipeline/change-gate.ts lets them go on once it has nothing in flight).
   */
  endOfInput(): void {
    this.limitOwed()
    if (!this.executeUnflushed) return
    this.executeUnflushed = false
    if (this.c.env.hooks.awaited?.(this.c.id)) this.c.toUpstream.push(FLUSH)
  }

  /**
   * Stops reading the client while the server owes it `MAX_OWED_REPLIES` replies or more. Not while
   * a statement may read COPY data: the server waits for that data before it answers anything more.
   */
  private limitOwed(): void {
    const state = this.c.state
    if (this.owedFull || state.pendingCount < MAX_OWED_REPLIES || state.copyPending || state.copyIn) return
    this.owedFull = true
    this.c.client.pause()
  }

  /**
   * Holds a Sync or Execute the pipeline says must wait before it may commit what the session sent
   * (`ProxyHooks.commitPoint`), and what comes after it; ends the connection if it may not go.
   */
  private heldForCommit(frame: Frame): boolean {
    const point = this.c.env.hooks.commitPoint
    const held = point?.(this.c.id, this.c.state, this.abortSignalOf)
    if (!held) return false
    // Frame views die with the chunk: keep a copy.
    const raw = Buffer.from(frame.raw)
    this.waiting = 'verdict'
    this.c.client.pause()
    const end = (error: PgNoticeFields): void => {
      if (!this.c.ready) return
      this.waiting = undefined
      this.judgeAbort = undefined
      this.held = []
      this.c.refuse({...error, severity: 'FATAL'})
    }
    held.then(
      (error) => (error ? end(error) : this.resume(() => this.dispatch(new FrameView(raw[0]!, raw, 5)))),
      (error: unknown) =>
        end({severity: 'FATAL', code: '42501', message: "dbgate: whether this message may commit the session's change could not be decided, so it was not sent", detail: (error as Error)?.message ?? String(error)}),
    )
    return true
  }

  private readonly abortSignalOf = (): AbortSignal => this.abortSignal()

  /** Keeps `frame` (and everything after it) until the server's replies settle what it reads. */
  private awaitReplies(frame: Frame): void {
    this.waiting = 'replies'
    this.held.unshift(Buffer.from(frame.raw))
    this.c.client.pause()
  }

  private dispatch(frame: Frame): void {
    const c = this.c
    const state = c.state
    if (state.copyIn && !c.closing) return this.duringCopyIn(frame)
    if (state.copyPending) return this.beforeCopyIn(frame)
    // Once the session must end (its token expired, maxSessionDuration, a drain), only what was in
    // flight finishes: new work is not sent on, or a client that always keeps one more statement
    // pipelined would never let the session reach the idle moment at which it ends.
    if (c.closing) return this.failCopyAtEnd()
    switch (frame.code) {
      case Frontend.Query: {
        const sql = decodeQuery(frame.body)
        const shape = textShape(sql)
        if (!state.settled(shape.refs, shape.opaque)) return this.awaitReplies(frame)
        const decided = (verdict: StatementVerdict): void => {
          const run = newRun(sql, 'simple', verdict)
          if (shape.refs.length > 0) run.executes = parsedExecuted(shape.refs, state)
          if (verdict.action === 'reject') {
            run.denied = verdict.error
            c.toUpstream.push(encodeQuery(REFUSED_SQL))
            this.sent(state.sendQuery(sql, NO_STATEMENTS, verdict, run), run)
          } else {
            run.filter = this.filterFor(sql, 'simple', undefined, verdict, undefined, this.judgedContext)
            this.passRunning(frame)
            this.sent(state.sendQuery(sql, shape, verdict, run), run)
          }
        }
        const nested = this.foreignName(shape) ?? executesEffect(shape.refs, state, true)
        if (nested) return decided({action: 'reject', error: nested})
        this.judge(sql, 'simple', undefined, frame, undefined, undefined, decided)
        return
      }
      case Frontend.Parse: {
        const parse = decodeParse(frame.body)
        this.checkName('prepared statement', parse.name)
        if (parse.name === REFUSED_STATEMENT) throw new ProtocolError(`the prepared statement name "${REFUSED_STATEMENT}" is reserved by dbgate`)
        const shape = textShape(parse.text)
        if (!state.settled(shape.refs, shape.opaque)) return this.awaitReplies(frame)
        // Read before judging: a change while the verdict is pending makes the first Bind judge it again.
        const under = c.env.hooks.verdictGeneration?.()
        const reads = state.namesRead(shape.refs)
        const nested = this.foreignName(shape) ?? executesEffect(shape.refs, state)
        this.judgeUnless(nested, parse.text, 'parse', parse.name, frame, parse.paramTypes, undefined, (verdict) => {
          if (verdict.action === 'reject') {
            const run = newRun(parse.text, 'parse', verdict, parse.name)
            run.denied = verdict.error
            c.toUpstream.push(encodeParse({name: parse.name, text: REFUSED_SQL, paramTypes: []}))
            this.sent(state.sendParse(parse.name, undefined, run), run)
          } else {
            const def = state.stamped(new StatementDef(parse.name, parse.text, 0, 'parse', verdict, shape.opaque ? OPAQUE_STATEMENT : (shape.statements?.[0] ?? NO_SHAPE), shape.refs))
            def.judgedUnder = under
            def.readAs = reads
            def.paramTypes = parse.paramTypes
            def.holdsAtBind = verdict.action === 'allow' && verdict.atBind === true
            this.passRunning(frame)
            // Its Bind waits for the server's answer to it (a Parse the server refuses, an unknown
            // column, must not be held for a reviewer): a Flush makes the server send it now.
            if (def.holdsAtBind) c.toUpstream.push(FLUSH)
            if (verdict.action === 'allow' && verdict.once) {
              def.approvedAt = this.ran
              def.approvedReady = state.readyAwaited
            }
            state.sendParse(parse.name, def)
          }
        })
        return
      }
      case Frontend.Bind: {
        // Parameters as text only feed the statement event: without a listener they are checked, not kept.
        const withParams = c.env.hooks.onStatement !== undefined
        const bind = frame.source ? decodeBind(frame.source, frame.start! + 5, frame.end, withParams) : decodeBind(frame.body, 0, frame.body.length, withParams)
        if (bind.portal === REFUSED_PORTAL) throw new ProtocolError(`the portal name "${REFUSED_PORTAL}" is reserved by dbgate`)
        this.checkName('portal', bind.portal)
        this.checkName('prepared statement', bind.statement)
        const s = state.statementAt(bind.statement)
        if (s === UNSETTLED || (s && !state.settled(s.refs))) return this.awaitReplies(frame)
        if (s?.holdsAtBind === true && state.pendingCount > 0) {
          // It is judged once the server has answered what came before it (its Parse above all).
          // The server keeps those answers until a Sync or Flush, and the client sent none after
          // what came (a Describe of the statement, in a pipeline): the Bind would wait for ever.
          c.toUpstream.push(FLUSH)
          return this.awaitReplies(frame)
        }
        if (s?.holdsAtBind === true && state.skipping) {
          // Its Parse (or a message before it) failed: the server ignores this Bind, and nobody is asked.
          c.toUpstream.push(REFUSAL_BIND)
          state.sendBind(bind.portal, undefined)
          return
        }
        if (!s) {
          return this.refuseBind(bind.portal, bind.statement, undefined, {
            severity: 'ERROR',
            code: '26000',
            message: `dbgate: ${bind.statement === '' ? 'the unnamed prepared statement' : `prepared statement "${bind.statement}"`} is not known to the tunnel`,
            hint: 'Prepare it through this connection first (Parse or PREPARE); the tunnel binds only statements the server has confirmed.',
          })
        }
        const nested = executesEffect(s.refs, state)
        if (nested) return this.refuseBind(bind.portal, bind.statement, s, nested)
        // A statement held at its Bind is judged with the values the reviewer will see.
        const values = s.holdsAtBind || s.definedBy === 'prepare' ? paramsAsText(withParams ? bind.params : this.bindValuesOf(frame), bind.paramFormats) : undefined
        // The event's copy is cut where the recording cuts it: the judged values stay whole.
        const params = withParams ? paramsAsText(bind.params, bind.paramFormats, RECORDED_VALUE_BYTES + RECORDED_VALUE_MARGIN) : undefined
        const now = c.env.hooks.verdictGeneration?.()
        // What it calls may have been replaced since it was judged: judge it again, as a Parse now
        // would be. A statement made by SQL PREPARE is judged as the `EXECUTE` that binding it is,
        // every time, as an SQL EXECUTE of it would be.
        // A Parse a reviewer approved for one execution is bound as approved: judged again, it would
        // be held again, as often as the wait for the reviewer moved the catalog on (a lookup does).
        const approved = !s.holdsAtBind && s.verdict.action === 'allow' && s.verdict.once === true && !s.spent
        const lapsed = approved && s.verdict.action === 'allow' ? (s.verdict.lapsed?.() ?? this.ranSinceApproval(s.approvedAt) ?? readySinceApproval(s, state)) : undefined
        if (lapsed) return this.refuseBind(bind.portal, bind.statement, s, lapsed)
        // The server looks up what its text executes or fetches (`EXECUTE p`, also inside EXPLAIN
        // ANALYZE) when it runs: a name defined again since it was judged is judged again as it is
        // now, approved or not (the approval was for what the name meant then).
        const moved = state.namesMoved(s.refs, s.readAs)
        const again =
          s.definedBy === 'prepare'
            ? executeOf(s.name, bind.paramCount)
            : s.holdsAtBind || moved || grantEnded(s.verdict) || (s.judgedUnder !== undefined && now !== s.judgedUnder && !approved)
              ? s.sql
              : undefined
        if (again !== undefined && c.env.hooks.statement) {
          const prepared = s.definedBy === 'prepare'
          const reads = moved ? state.namesRead(s.refs) : s.readAs
          return this.judge(again, prepared ? 'simple' : 'parse', prepared ? undefined : s.name, frame, prepared ? undefined : s.paramTypes, values, (verdict) => {
            if (verdict.action === 'reject') return this.refuseBind(bind.portal, bind.statement, s, verdict.error)
            s.verdict = verdict
            s.readAs = reads
            s.judgedUnder = prepared ? undefined : now
            s.spent = false
            // Held here and approved: nothing has run since the decision, and nothing may before it runs.
            s.approvedAt = verdict.action === 'allow' && verdict.once ? this.ran : undefined
            this.bindJudged(frame, bind.portal, bind.statement, bind.resultFormats, s, params)
          })
        }
        this.bindJudged(frame, bind.portal, bind.statement, bind.resultFormats, s, params)
        return
      }
      case Frontend.Describe: {
        const d = frame.source ? decodeDescribeOrClose(frame.source, 'Describe', frame.start! + 5, frame.end) : decodeDescribeOrClose(frame.body, 'Describe')
        this.checkName(d.target === 'S' ? 'prepared statement' : 'portal', d.name)
        const def = d.target === 'S' ? state.statementAt(d.name) : state.portalAt(d.name)
        if (def === UNSETTLED || (def && !state.settled(def.refs))) return this.awaitReplies(frame)
        const unsafe = describeRefusal(d.target, d.name, def, state)
        if (unsafe) {
          const run = newRun(`<Describe of ${d.target === 'S' ? 'prepared statement' : 'portal'} "${d.name}"${def ? '' : ', unknown to the tunnel'}>`, 'parse', {action: 'reject', error: unsafe}, d.target === 'S' ? d.name : undefined)
          run.denied = unsafe
          c.toUpstream.push(REFUSAL_BIND)
          this.sent(state.sendRefused(run), run)
          return
        }
        const filter = def ? this.filterFor(def.sql, 'parse', def instanceof PortalDef ? def.statement?.name : d.name, def.verdict, def) : undefined
        c.passToUpstream(frame)
        state.sendDescribe(d.target, def, filter)
        return
      }
      case Frontend.Execute: {
        if (this.heldForCommit(frame)) return
        const e = frame.source ? decodeExecute(frame.source, frame.start! + 5, frame.end) : decodeExecute(frame.body)
        this.checkName('portal', e.portal)
        const p = state.portalAt(e.portal)
        if (p === UNSETTLED || (p && !state.settled(p.refs))) return this.awaitReplies(frame)
        if (!p) {
          const error: PgNoticeFields = {
            severity: 'ERROR',
            code: '34000',
            message: `dbgate: ${e.portal === '' ? 'the unnamed portal' : `portal "${e.portal}"`} is not known to the tunnel`,
            hint: 'Bind it through this connection first; the tunnel runs only portals the server has confirmed.',
          }
          const run = newRun(`<Execute of portal "${e.portal}", unknown to the tunnel>`, 'parse', {action: 'reject', error})
          run.denied = error
          c.toUpstream.push(REFUSAL_BIND)
          this.sent(state.sendExecute(undefined, run), run)
          return
        }
        const lapsed = p.verdict.action === 'allow' && p.verdict.once === true ? (p.verdict.lapsed?.() ?? this.ranSinceApproval(p.approvedAt)) : undefined
        if (lapsed) return this.refuseExecute(p, lapsed)
        const nested = executesEffect(p.refs, state, true)
        if (nested) return this.refuseExecute(p, nested)
        const again = this.executeAgain(p)
        if (!again) return this.execute(frame, p, p.verdict)
        if (again === UNSETTLED) return this.awaitReplies(frame)
        if ('refusal' in again) return this.refuseExecute(p, again.refusal)
        const now = c.env.hooks.verdictGeneration?.()
        const reads = again.moved ? state.namesRead(p.refs) : p.readAs
        return this.judge(again.sql, again.protocol, again.name, frame, p.statement?.paramTypes, undefined, (verdict) => {
          if (verdict.action === 'reject') return this.refuseExecute(p, verdict.error)
          if (p.definedBy !== 'declare') p.judgedUnder = now
          p.readAs = reads
          // A cursor keeps the verdict its DECLARE had (masking reads by it); the FETCH's only lets it run.
          this.execute(frame, p, p.definedBy === 'declare' ? p.verdict : verdict)
        })
      }
      case Frontend.Close: {
        const close = frame.source ? decodeDescribeOrClose(frame.source, 'Close', frame.start! + 5, frame.end) : decodeDescribeOrClose(frame.body, 'Close')
        this.checkName(close.target === 'S' ? 'prepared statement' : 'portal', close.name)
        c.passToUpstream(frame)
        state.sendClose(close.target, close.name)
        return
      }
      case Frontend.Sync:
        if (this.heldForCommit(frame)) return
        c.passToUpstream(frame)
        this.executeUnflushed = false
        state.sendSync()
        return
      case Frontend.Flush:
        this.executeUnflushed = false
        c.passToUpstream(frame)
        return
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        c.passToUpstream(frame)
        return
      case Frontend.FunctionCall: {
        // The fast-path function call runs a function by OID, out of sight of SQL analysis.
        const error: PgNoticeFields = {
          severity: 'ERROR',
          code: '0A000',
          message: 'dbgate: the FunctionCall protocol message is not allowed through the tunnel',
          hint: 'Call the function from SQL (SELECT fn(...)) so policy can judge it.',
        }
        const run = newRun('<FunctionCall message>', 'function-call', {action: 'reject', error})
        run.denied = error
        c.toUpstream.push(encodeQuery(REFUSED_SQL))
        this.sent(state.sendQuery('', NO_STATEMENTS, run.verdict, run), run)
        return
      }
      case Frontend.Terminate:
        return this.terminate()
      default:
        throw new ProtocolError(`unknown frontend message type ${codeName(frame.code)}`)
    }
  }

  /**
   * A client message while the server reads COPY data. The server ignores a Sync here, but would
   * answer it had the COPY failed just before (an error in flight): the tunnel drops it, so that the
   * server never sees it either way. Anything but COPY data is a protocol violation.
   */
  /**
   * The session must end while the client feeds a COPY FROM STDIN. That statement runs as long as
   * the client keeps sending, so it is failed now (the server rolls it back) rather than waited for.
   */
  failCopyAtEnd(): void {
    const c = this.c
    if (!c.closing || !c.state.copyIn) return
    c.toUpstream.push(serialize.copyFail('dbgate: the session ended (see the error that follows) before this COPY finished'))
    c.state.endCopyFromClient()
  }

  private duringCopyIn(frame: Frame): void {
    switch (frame.code) {
      case Frontend.CopyData:
      case Frontend.Flush:
        this.c.passToUpstream(frame)
        return
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        this.c.passToUpstream(frame)
        this.c.state.endCopyFromClient()
        return
      case Frontend.Sync:
        return
      case Frontend.Terminate:
        return this.terminate()
      default:
        throw new ProtocolError(`${codeName(frame.code)} during COPY FROM STDIN: end the COPY with CopyDone or CopyFail first`)
    }
  }

  /**
   * A client message while a statement that may COPY FROM STDIN runs, before the server said it
   * has started. COPY data gets no reply whether the server reads it as data or ignores it, so it
   * goes on; anything else waits for the server.
   */
  private beforeCopyIn(frame: Frame): void {
    switch (frame.code) {
      case Frontend.CopyData:
      case Frontend.Flush:
        this.c.passToUpstream(frame)
        return
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        this.c.passToUpstream(frame)
        this.c.state.copyEndedAhead()
        return
      default:
        return this.awaitReplies(frame)
    }
  }

  /**
   * The client ends the session. What it sent before the Terminate goes to the server first, as it
   * would without the tunnel (the server runs it, then reads the Terminate that closing sends).
   */
  private terminate(): void {
    this.c.flush()
    this.c.close('client terminated the session')
  }

  /** A message the server skips (it is discarding up to Sync after an error) gets no reply: its run ends here. */
  private sent(answered: boolean, run: Run): void {
    if (!answered) this.c.finishRun(run, 'aborted')
  }

  /** Sends a Bind the server is sure to refuse, so it discards up to Sync as for any error. */
  /** Binds `s` under the verdict it has now: once only, if that is an approval for one execution. */
  private bindJudged(frame: Frame, portal: string, statement: string, resultFormats: readonly number[], s: StatementDef, params: BoundParams | undefined): void {
    if (s.verdict.action === 'allow' && s.verdict.once) {
      if (s.spent) {
        return this.refuseBind(portal, statement, s, {
          severity: 'ERROR',
          code: '42501',
          message: 'dbgate: this statement was approved for one execution, and it has run',
          hint: 'Send it again (Parse) to have it judged again.',
        })
      }
      s.spent = true
    }
    const p = this.c.state.stamped(portalFromStatement(portal, s, params, resultFormats))
    p.judgedUnder = this.c.env.hooks.verdictGeneration?.()
    this.passRunning(frame)
    if (s.approvedAt !== undefined && s.verdict.action === 'allow' && s.verdict.once) p.approvedAt = this.ran
    this.c.state.sendBind(portal, p)
  }

  /**
   * What a portal runs was judged at its Bind (a cursor's at its DECLARE), but the function bodies,
   * views and casts it reaches are read when it runs: after a change to the catalog since (this
   * session's own, perhaps not yet committed, or one the catalog was re-read for), it is judged
   * again as its Bind, or as a FETCH of the cursor, would be now. The text to judge, or undefined.
   */
  private executeAgain(p: PortalDef): {sql: string; protocol: ProtocolPath; name: string | undefined; moved?: true} | {refusal: PgNoticeFields} | typeof UNSETTLED | undefined {
    if (!this.c.env.hooks.statement) return undefined
    if (p.definedBy === 'declare') return {sql: `FETCH FORWARD ALL FROM ${quoteIdent(p.name)}`, protocol: 'simple', name: undefined}
    // What its text executes or fetches is looked up now, as it runs: a name defined again since
    // its verdict was given (at its Parse or Bind) is judged as it is now, an approval's too.
    if (this.c.state.namesMoved(p.refs, p.readAs)) return {sql: p.sql, protocol: 'parse', name: p.statement?.name, moved: true}
    if (!grantEnded(p.verdict)) {
      const now = this.c.env.hooks.verdictGeneration?.()
      if (p.judgedUnder === undefined || now === p.judgedUnder) return undefined
      // An approval covers the one execution it was bound for.
      if (p.verdict.action === 'allow' && p.verdict.once === true) return undefined
    }
    const s = p.statement
    if (p.definedBy === 'prepare' && s) {
      // `EXECUTE name` is judged by what the name holds now, but the portal runs the statement it
      // was bound from: once the name was prepared again (`DEALLOCATE s; PREPARE s AS SELECT 1`),
      // judging it would judge the new statement and run the old one.
      const now = this.c.state.statementAt(s.name)
      if (now === UNSETTLED) return UNSETTLED
      if (now !== s) return {refusal: preparedAgain(s.name, p.name)}
      return {sql: `EXECUTE ${quoteIdent(s.name)}`, protocol: 'simple', name: undefined}
    }
    return {sql: p.sql, protocol: 'parse', name: s?.name}
  }

  /** A Bind's parameter values, decoded when the Bind was read without them (no statement listener). */
  private bindValuesOf(frame: Frame): (Buffer | null)[] {
    return (frame.source ? decodeBind(frame.source, frame.start! + 5, frame.end, true) : decodeBind(frame.body, 0, frame.body.length, true)).params
  }

  /** Sends on a Query, Parse, Bind or Execute: a message after which an approval's session may differ. */
  private passRunning(frame: Frame): void {
    this.ran++
    this.c.passToUpstream(frame)
  }

  /**
   * Why an approval for one execution no longer covers its Bind or Execute, when the session ran
   * something else since the approved Parse (or its own Bind or Execute), at `approvedAt`. The
   * reviewer approved the statement as the session stood: a named statement sent between (SET
   * search_path, a setting current_setting() reads, a temporary object) changes which tables the
   * server resolves at Bind and which values it reads at Execute, after the decision.
   */
  private ranSinceApproval(approvedAt: number | undefined): PgNoticeFields | undefined {
    if (approvedAt === undefined || approvedAt === this.ran) return undefined
    return {
      severity: 'ERROR',
      code: '42501',
      message: 'dbgate: this statement was approved as the session stood, and the session ran other statements between its approval and its Bind or Execute; it was not sent',
      hint: 'Bind and execute an approved statement right after its Parse (what drivers do), or send it again to have it judged, and if need be held, again.',
    }
  }

  /** Sends an Execute of `p` on under `verdict` (a method, not a closure: every Execute comes here). */
  private execute(frame: Frame, p: PortalDef, verdict: StatementVerdict): void {
    const name = p.statement?.name
    const run = newRun(p.sql, 'parse', verdict, name)
    run.params = p.params
    run.portal = p
    // Recorded by this Execute; a refused one leaves its Bind, which planned the statement, recorded as `bound`.
    p.executed = true
    if (p.refs.length > 0) run.executes = parsedExecuted(p.refs, this.c.state)
    run.filter = this.filterFor(p.sql, 'parse', name, verdict, p)
    this.passRunning(frame)
    if (p.approvedAt !== undefined) p.approvedAt = this.ran
    this.executeUnflushed = true
    this.sent(this.c.state.sendExecute(p, run), run)
  }

  private refuseExecute(p: PortalDef, error: PgNoticeFields): void {
    const run = newRun(p.sql, 'parse', {action: 'reject', error}, p.statement?.name)
    run.denied = error
    if (p.refs.length > 0) run.executes = parsedExecuted(p.refs, this.c.state)
    this.c.toUpstream.push(REFUSAL_BIND)
    this.sent(this.c.state.sendExecute(undefined, run), run)
  }

  private refuseBind(portal: string, statement: string, s: StatementDef | undefined, error: PgNoticeFields): void {
    const run = newRun(s ? s.sql : `<Bind of prepared statement "${statement}", unknown to the tunnel>`, 'parse', {action: 'reject', error}, statement)
    run.denied = error
    this.c.toUpstream.push(REFUSAL_BIND)
    this.sent(this.c.state.sendBind(portal, undefined, run), run)
  }

  /**
   * `judged`: the context the statement hook was just given, synchronously, for the same text,
   * protocol and name (a simple Query's): nothing the context holds can have changed since, so the
   * filter gets it too rather than a second one.
   */
  private filterFor(sql: string, protocol: ProtocolPath, statementName: string | undefined, verdict: StatementVerdict, definition?: NamedDefinition, judged?: StatementContext): ResultFilter | undefined {
    const factory = this.c.env.hooks.resultFilter
    if (!factory || verdict.action !== 'allow') return undefined
    return this.c.safely(() => factory(sql, judged ?? this.c.context(protocol, statementName, definition), verdict))
  }

  /** The context of the verdict being acted on, while its continuation runs synchronously (see `filterFor`). */
  private judgedContext: StatementContext | undefined

  /**
   * Runs the statement hook; `then` continues with the verdict, synchronously when the hook is
   * synchronous (the common, fast case), otherwise after holding back later client frames.
   */
  private judge(
    sql: string,
    protocol: ProtocolPath,
    statementName: string | undefined,
    frame: Frame,
    paramTypes: readonly number[] | undefined,
    bindValues: readonly (string | null)[] | undefined,
    then: (v: StatementVerdict) => void,
  ): void {
    const hook = this.c.env.hooks.statement
    if (!hook) return then(ALLOW)
    let result: StatementVerdict | Promise<StatementVerdict>
    const ctx = this.c.context(protocol, statementName, undefined, paramTypes, bindValues)
    try {
      result = hook(sql, ctx)
    } catch (error) {
      return then(failClosed(error))
    }
    if (!(result instanceof Promise)) {
      this.judgeAbort = undefined
      const verdict = this.withNotices(deferredOnlyAtParse(result, frame))
      this.judgedContext = ctx
      try {
        return then(verdict)
      } finally {
        this.judgedContext = undefined
      }
    }
    // Frame views die with the chunk: keep a copy for the continuation.
    const raw = Buffer.from(frame.raw)
    frame.raw = raw
    frame.body = raw.subarray(5)
    this.waiting = 'verdict'
    this.c.client.pause()
    result.then(
      (v) => this.resume(() => then(this.withNotices(deferredOnlyAtParse(v, frame)))),
      (error: unknown) => this.resume(() => then(failClosed(error))),
    )
  }

  /** `judge`, or straight to `then` with a refusal the tunnel already has (`refusal`). */
  private judgeUnless(
    refusal: PgNoticeFields | undefined,
    sql: string,
    protocol: ProtocolPath,
    statementName: string | undefined,
    frame: Frame,
    paramTypes: readonly number[] | undefined,
    bindValues: readonly (string | null)[] | undefined,
    then: (v: StatementVerdict) => void,
  ): void {
    if (refusal) return then({action: 'reject', error: refusal})
    this.judge(sql, protocol, statementName, frame, paramTypes, bindValues, then)
  }

  private withNotices(v: StatementVerdict): StatementVerdict {
    if (v.action === 'allow') {
      if (v.notices) for (const n of v.notices) this.c.toClient.push(encodeNotice(n))
      return v
    }
    // Only `allow` runs: whatever else a hook answers (a `hold` no stage settled) is refused.
    return v.action === 'reject' ? v : failClosed(new Error('the statement hook answered neither allow nor reject'))
  }

  private resume(continuation: () => void): void {
    if (!this.c.ready) return
    this.waiting = undefined
    this.judgeAbort = undefined
    try {
      continuation()
    } catch (error) {
      this.c.fail(error)
      return
    }
    this.drain()
  }
}

/**
 * Why a Describe must not reach the server, if it must not. PostgreSQL describes a prepared `FETCH`
 * (or a portal bound from one) by the cursor it names, and takes that cursor to exist: once it is
 * closed (CLOSE, a protocol Close, the end of its transaction) the backend crashes, and the
 * postmaster ends every session of the database to recover (FetchStatementTargetList, seen on
 * PostgreSQL 18). So a FETCH is described only while the tunnel knows its cursor is open, and a
 * name the tunnel does not know (never made, or forgotten where the server's outcome could not be
 * read exactly, such as after ROLLBACK TO SAVEPOINT) is not described either, as it is not bound
 * or executed: it might be such a FETCH.
 */
function describeRefusal(target: 'S' | 'P', name: string, def: StatementDef | PortalDef | undefined, state: ConnectionCore['state']): PgNoticeFields | undefined {
  if (!def) {
    const what = target === 'S' ? (name === '' ? 'the unnamed prepared statement' : `prepared statement "${name}"`) : name === '' ? 'the unnamed portal' : `portal "${name}"`
    return {
      severity: 'ERROR',
      code: target === 'S' ? '26000' : '34000',
      message: `dbgate: ${what} is not known to the tunnel, so it is not described`,
      hint: target === 'S' ? 'Prepare it through this connection first (Parse or PREPARE).' : 'Bind it through this connection first.',
    }
  }
  return unsafeFetch(def, state, 0)
}

/**
 * The refusal for describing `def` when it is, or executes (`EXECUTE p`, which the server describes
 * by `p`), a FETCH whose cursor the tunnel does not know as open; a statement it executes that the
 * tunnel does not know may be one, and so does a chain of EXECUTEs deeper than the tunnel follows.
 */
function unsafeFetch(def: StatementDef | PortalDef, state: ConnectionCore['state'], depth: number): PgNoticeFields | undefined {
  const fetch = def.shape.tags?.[0] === 'FETCH'
  for (const r of def.refs) {
    if (r.kind === 'portal') {
      if (!fetch || state.portalAt(r.name) !== undefined) continue
      return {
        severity: 'ERROR',
        code: '34000',
        message: `dbgate: this Describe would FETCH from cursor "${r.name}", which is not open (as far as the tunnel knows), so it was not sent: PostgreSQL cannot describe a FETCH whose cursor is closed`,
        hint: `Declare the cursor "${r.name}" again first, or prepare the FETCH again after declaring it.`,
      }
    }
    const executed = state.statementAt(r.name)
    const problem =
      executed === undefined || executed === UNSETTLED || depth >= MAX_DESCRIBED_EXECUTES
        ? {
            severity: 'ERROR' as const,
            code: '26000',
            message: `dbgate: this Describe reads prepared statement "${r.name}", which the tunnel does not know (or cannot follow), so it was not sent`,
            hint: `Prepare "${r.name}" through this connection first.`,
          }
        : unsafeFetch(executed, state, depth + 1)
    if (problem) return problem
  }
  return undefined
}

/**
 * The refusal of a text that EXECUTEs (directly, or through statements that EXECUTE others) a
 * prepared statement which itself defines or drops names: a protocol Parse of `DEALLOCATE p`,
 * `PREPARE p AS …`, `DECLARE c …`, `CLOSE c`, `DISCARD ALL`, or a text the tunnel cannot read. The
 * tunnel follows what such a statement does when it is bound and executed through the protocol,
 * but an SQL `EXECUTE x` of it would change the server's names out of its sight: `EXECUTE dx`
 * (DEALLOCATE p) then `EXECUTE py` (PREPARE p AS <another text>) left the tunnel judging and masking
 * `p` as the first text while the server ran the second, names in clear. Also the refusal of a
 * FETCH or MOVE, at any depth, in a portal bound through the protocol (`fetchesBoundPortal`), when
 * the text `runs` (a Query, an Execute; a Parse or Bind of it runs nothing).
 */
function executesEffect(refs: readonly NameRef[], state: ConnectionCore['state'], runs = false, depth = 0): PgNoticeFields | undefined {
  for (const r of refs) {
    if (r.kind === 'portal') {
      // Only when the text runs (a Query, an Execute): the portal a name means is the one at that moment.
      const bound = runs && r.runs ? state.portal(r.name) : undefined
      if (bound !== undefined && bound.definedBy !== 'declare') return fetchesBoundPortal(r.name)
      continue
    }
    const x = state.statementAt(r.name)
    if (x === undefined || x === UNSETTLED) continue
    const effect = x.shape.opaque ? 'may define or drop any name' : x.shape.effect ? EFFECT_WORDS[x.shape.effect.kind] : undefined
    if (effect !== undefined || depth >= MAX_DESCRIBED_EXECUTES) {
      return {
        severity: 'ERROR',
        code: '0A000',
        message: `dbgate: EXECUTE of prepared statement "${r.name}" is not allowed through the tunnel: ${effect === undefined ? 'it executes statements deeper than the tunnel follows' : `it ${effect}`}, which the tunnel follows only when it is sent itself`,
        hint: 'Send that statement itself (as a query, or bind and execute it), not through EXECUTE.',
      }
    }
    const deeper = executesEffect(x.refs, state, runs, depth + 1)
    if (deeper) return deeper
  }
  return undefined
}

/**
 * The refusal of a FETCH or MOVE in a portal bound through the protocol (the server keeps those and
 * SQL cursors in one namespace). The portal's statement then runs outside any Execute, so its Bind
 * was recorded as never executed: `DELETE … RETURNING` bound as `q`, then `FETCH 2 FROM q`, deleted
 * every row it matched while the recording said the DELETE never ran. No driver fetches a protocol
 * portal by SQL; SQL cursors (DECLARE) are fetched as before.
 */
function fetchesBoundPortal(name: string): PgNoticeFields {
  return {
    severity: 'ERROR',
    code: '0A000',
    message: `dbgate: FETCH and MOVE in portal "${name}" are not allowed through the tunnel: it was bound through the protocol, and its statement would run outside an Execute, where it is not recorded as run`,
    hint: `Run the portal with the protocol's Execute (a row limit fetches it in parts), or DECLARE a cursor to FETCH from.`,
  }
}

/**
 * The statements made by a protocol Parse that `refs` EXECUTE by SQL, and those they EXECUTE, as
 * the server holds them now: `execute wipe(5)` ran `delete from carts where id > $1`, which a
 * Parse named `wipe` made, and without it the log held only the EXECUTE. Undefined when none.
 */
function parsedExecuted(refs: readonly NameRef[], state: ConnectionCore['state'], depth = 0, out: ExecutedStatement[] = []): ExecutedStatement[] | undefined {
  for (const r of refs) {
    if (r.kind !== 'statement') continue
    const x = state.statementAt(r.name)
    if (x === undefined || x === UNSETTLED || out.some((e) => e.name === r.name)) continue
    if (x.definedBy === 'parse') out.push({name: r.name, sql: x.sql})
    if (depth < MAX_DESCRIBED_EXECUTES) parsedExecuted(x.refs, state, depth + 1, out)
  }
  return out.length > 0 ? out : undefined
}

const EFFECT_WORDS: Record<SqlEffect['kind'], string> = {
  prepare: 'prepares a statement',
  deallocate: 'deallocates a prepared statement',
  'deallocate-all': 'deallocates every prepared statement',
  declare: 'declares a cursor',
  close: 'closes a cursor',
  'close-all': 'closes every cursor',
  'discard-all': 'discards the session state',
}

/** How many EXECUTEs deep a Describe is followed (a statement that executes one that executes one…). */
const MAX_DESCRIBED_EXECUTES = 8

/**
 * Why an approval for one execution given at a Parse no longer covers its Bind, when a ReadyForQuery
 * is owed between them (a Sync: a simple query drops the unnamed statement, the only one an
 * approval covers, so its Bind is refused as unknown anyway). Policy counts the change the
 * statement makes (a function replaced, a table altered) from its Parse, and takes the first idle
 * ReadyForQuery after that as its end: the statements pipelined behind the Execute of the change,
 * in the same transaction, were then judged by the catalog before it, and a call ran the body the
 * change had just given its function.
 */
function readySinceApproval(s: StatementDef, state: ConnectionCore['state']): PgNoticeFields | undefined {
  if (s.approvedReady === undefined || s.approvedReady === state.readyAwaited) return undefined
  return {
    severity: 'ERROR',
    code: '42501',
    message: 'dbgate: this statement was approved at its Parse, and the client sent a Sync between its Parse and its Bind; it was not sent',
    hint: 'Send the Parse, Bind and Execute of an approved statement together, before the Sync (what drivers do), or send it again to have it judged, and if need be held, again.',
  }
}

/**
 * Why a portal bound from an SQL-prepared statement is not run when it must be judged again and its
 * statement's name now holds another statement, or none (see `ClientMessages.executeAgain`).
 */
function preparedAgain(statement: string, portal: string): PgNoticeFields {
  return {
    severity: 'ERROR',
    code: '42501',
    message: `dbgate: ${portal === '' ? 'the unnamed portal' : `portal "${portal}"`} must be judged again before it runs, and prepared statement "${statement}", which it was bound from, has been deallocated or prepared again since its Bind; it was not run`,
    hint: `Bind prepared statement "${statement}" again and execute the new portal.`,
  }
}

/**
 * Refuses a protocol name the server would cut short: two names that differ only past byte 63 are
 * one statement (or portal) on the server and two in the tunnel's map, so a Close of one and a
 * Parse of the other would leave the tunnel judging and masking by the wrong text. (SQL names are
 * cut by the parser exactly as the server cuts them.)
 */
function checkName(kind: 'prepared statement' | 'portal', name: string): void {
  // Up to 21 UTF-16 units are at most 63 UTF-8 bytes: the common short name costs no count.
  if (name.length <= MAX_NAME_BYTES / 3 || Buffer.byteLength(name) <= MAX_NAME_BYTES) return
  throw new ProtocolError(
    `a ${kind} name of ${Buffer.byteLength(name)} bytes ("${name.slice(0, 20)}…"): PostgreSQL keeps only the first ${MAX_NAME_BYTES} bytes of a name, so names longer than that are refused; use a shorter one`,
  )
}

/**
 * The `EXECUTE` that binding SQL-prepared statement `name` with `values` values is: the values are
 * the Bind's, so the text shows where they go (`$1`, …) and never stands for a run without them.
 */
function executeOf(name: string, values: number): string {
  if (values === 0) return `EXECUTE ${quoteIdent(name)}`
  const params: string[] = []
  for (let i = 1; i <= values; i++) params.push(`$${i}`)
  return `EXECUTE ${quoteIdent(name)}(${params.join(', ')})`
}

/** An SQL identifier for `name`, quoted. */
function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/**
 * Whether `v` let a statement through under a grant that has ended since: a reviewer's window,
 * which covers statements for its duration, not the statements and portals made while it lasted.
 * Such a statement is bound and executed again and again without another Parse (the unnamed one,
 * a portal in a transaction), so each Bind and Execute after the end is judged again. (An approval
 * for one execution is `once`, and its `lapsed` refuses rather than asks again: see `Bind`.)
 */
function grantEnded(v: StatementVerdict): boolean {
  return v.action === 'allow' && v.once !== true && v.lapsed !== undefined && v.lapsed() !== undefined
}

function failClosed(error: unknown): StatementVerdict {
  return {
    action: 'reject',
    error: {
      severity: 'ERROR',
      code: '42501',
      message: 'dbgate: the statement could not be judged, so it was not run',
      detail: (error as Error)?.message ?? String(error),
    },
  }
}

/**
 * A verdict that leaves the decision to a statement's Binds (`atBind`) lets only a Parse through:
 * anywhere else (an Execute judged again after the catalog moved) nothing would be decided before
 * the statement ran, so it is refused.
 */
function deferredOnlyAtParse(v: StatementVerdict, frame: Frame): StatementVerdict {
  if (v.action !== 'allow' || v.atBind !== true || frame.code === Frontend.Parse) return v
  return {
    action: 'reject',
    decision: v.decision,
    error: {
      severity: 'ERROR',
      code: '42501',
      message: 'dbgate: this statement now needs approval and takes bind parameters; a reviewer approves it at its Bind, with its values, so it cannot run here',
      hint: 'Bind it again (with its values): it is then held for a reviewer.',
    },
  }
}

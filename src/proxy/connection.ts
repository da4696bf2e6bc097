import {randomUUID} from 'node:crypto'
import type net from 'node:net'
import {timingSafeEqual} from 'node:crypto'
import {serialize} from 'pg-protocol'
import {Backend, Frontend, codeName} from '../wire/codes.js'
import {Framer, ProtocolError, type Frame} from '../wire/framer.js'
import {
  decodeCommandComplete,
  decodeDataRow,
  decodeNotice,
  decodeNotification,
  decodeReadyForQuery,
  decodeRowDescription,
  encodeAuthCleartext,
  encodeAuthOk,
  encodeAuthSasl,
  encodeAuthSaslContinue,
  encodeAuthSaslFinal,
  encodeBackendKeyData,
  encodeCopyData,
  encodeDataRow,
  encodeError,
  encodeNegotiateProtocolVersion,
  encodeNotice,
  encodeNotification,
  encodeParameterStatus,
  decodeParameterStatus,
  encodeReadyForQuery,
  encodeRowDescription,
  rowsFromTag,
} from '../wire/backend.js'
import {decodeBind, decodeDescribeOrClose, decodeExecute, decodeParse, decodeQuery, decodeSaslInitial, decodeStartup, encodeParse, encodeQuery} from '../wire/frontend.js'
import {ScramError, ScramServer, type ScramVerifier} from '../wire/scram.js'
import type {
  FieldDescription,
  PgNoticeFields,
  ProtocolPath,
  ProxyHooks,
  ResultFilter,
  SessionInfo,
  StatementContext,
  StatementEvent,
  StatementVerdict,
} from './hooks.js'
import {cancelUpstream, connectUpstream, UpstreamError, type UpstreamSession, type UpstreamTarget} from './upstream.js'

/** How clients prove they may use this tunnel. */
export interface TunnelAuth {
  method: 'scram-sha-256' | 'cleartext'
  secret: string
  verifier: ScramVerifier
}

export interface ConnectionEnv {
  target: UpstreamTarget
  auth: TunnelAuth
  hooks: ProxyHooks
  maxMessageSize: number
  /** The application_name the upstream sees, from the one the client asked for. */
  applicationName: (clientApplicationName: string | undefined) => string
  issueCancelKey: (conn: ClientConnection) => {processId: number; secretKey: number}
  releaseCancelKey: (processId: number) => void
  cancelByKey: (processId: number, secretKey: number) => void
  log: (level: 'info' | 'warn' | 'error', message: string) => void
}

/** A statement in flight: what was sent, and what came back so far. */
interface Run {
  sql: string
  protocol: ProtocolPath
  statementName?: string
  params?: (string | null)[]
  verdict: StatementVerdict
  started: number
  /** Date.now() at the start; the Date is made only if an event is emitted. */
  startedAtMs: number
  tags: string[]
  /** DataRows seen; the CommandComplete tags' counts take precedence when there are any. */
  dataRows: number
  filter?: ResultFilter
  /** For an Execute: the portal, whose description may arrive after the Execute was sent. */
  portal?: string
  /** The first rows as sent to the client, after the result filter. */
  preview?: {columns: string[]; rows: (string | null)[][]}
  fields?: FieldDescription[]
  error?: {code: string; message: string}
  /** The client-facing error that replaces the server's answer to a denied statement. */
  denied?: PgNoticeFields
}

/** One expected answer from the server, in the order the client's messages were sent. */
type Pending =
  | {kind: 'query'; run: Run}
  | {kind: 'parse'; run?: Run}
  | {kind: 'bind'; denied?: PgNoticeFields}
  | {kind: 'describe'; target: 'S' | 'P'; name: string; sql?: string; filter?: ResultFilter}
  | {kind: 'execute'; run: Run}
  | {kind: 'close'}
  | {kind: 'sync'}

/** What the replacement for a refused message says to the server: a guaranteed syntax error with no effect. */
const REFUSED_SQL = 'DBGATE REFUSED STATEMENT'
/** A prepared statement name no client can have created through the tunnel (it fails to parse as SQL). */
const REFUSED_STATEMENT = 'dbgate refused binding'

let nextConnectionId = 1

/**
 * What the hooks learn about a statement. A class rather than an object literal: a literal with a
 * getter is built the slow way, about 1 µs each, and every statement makes one or two.
 */
class HookContext implements StatementContext {
  constructor(
    readonly sessionId: string,
    readonly connectionId: number,
    readonly protocol: ProtocolPath,
    readonly statementName: string | undefined,
    readonly transactionStatus: 'I' | 'T' | 'E',
    readonly database: string,
    readonly user: string,
    readonly applicationName: string | undefined,
    private readonly abortSignal: () => AbortSignal,
    readonly notify: (notice: PgNoticeFields) => void,
  ) {}

  get signal(): AbortSignal {
    return this.abortSignal()
  }
}

/**
 * One client connection through the tunnel, and its upstream connection. Client bytes are framed,
 * judged and forwarded; server bytes are framed, filtered and forwarded, untouched where nothing
 * rewrites them.
 */
export class ClientConnection {
  readonly id = nextConnectionId++
  readonly sessionId = randomUUID()
  private state: 'startup' | 'auth' | 'connecting' | 'ready' | 'closed' = 'startup'
  private readonly clientFramer: Framer
  private readonly upstreamFramer: Framer
  private upstream: UpstreamSession | undefined
  private scram: ScramServer | undefined
  private startupParams: Record<string, string> = {}
  private protocolMinor = 0
  private txStatus: 'I' | 'T' | 'E' = 'I'
  private readonly pending: Pending[] = []
  private readonly statements = new Map<string, {sql: string; verdict: StatementVerdict}>()
  /** Statements allowed for one execution that have been bound once already. */
  private readonly spent = new WeakSet<object>()
  private readonly portals = new Map<string, {sql: string; statementName: string; params: (string | null)[] | undefined; resultFormats: number[]; verdict: StatementVerdict}>()
  private readonly rowDescriptions = new Map<string, FieldDescription[]>()
  private sessionFilter: ResultFilter | undefined
  private session: SessionInfo | undefined
  private cancelKey: {processId: number; secretKey: number} | undefined
  /** Client frames held back while an asynchronous verdict is pending, to keep their order. */
  private held: Buffer[] = []
  private judging = false
  private closing = false
  private upstreamOut: Buffer[] = []
  private clientOut: Buffer[] = []
  private closeListeners: (() => void)[] = []

  constructor(
    readonly client: net.Socket,
    private readonly env: ConnectionEnv,
  ) {
    this.clientFramer = new Framer({maxMessageSize: env.maxMessageSize, startup: true})
    this.upstreamFramer = new Framer({maxMessageSize: env.maxMessageSize})
    client.setNoDelay(true)
    // A statement may wait minutes for a reviewer; keep idle NAT and firewall state alive meanwhile.
    client.setKeepAlive(true, 30_000)
    client.on('data', (chunk: Buffer) => this.onClientData(chunk))
    client.on('error', () => this.close('client connection error'))
    client.on('close', () => this.close('client disconnected'))
    client.on('drain', () => this.upstream?.socket.resume())
  }

  get idle(): boolean {
    return this.state === 'ready' && this.pending.length === 0 && !this.judging && this.held.length === 0
  }

  get closed(): boolean {
    return this.state === 'closed'
  }

  onClose(fn: () => void): void {
    if (this.state === 'closed') fn()
    else this.closeListeners.push(fn)
  }

  private context(protocol: ProtocolPath, statementName?: string): StatementContext {
    return new HookContext(
      this.sessionId,
      this.id,
      protocol,
      statementName,
      this.txStatus,
      this.env.target.database,
      this.startupParams.user ?? '',
      this.startupParams.application_name,
      // Created only when a hook asks: most verdicts are synchronous and never need one.
      () => (this.judgeAbort ??= new AbortController()).signal,
      (notice) => {
        if (this.state !== 'closed') this.client.write(encodeNotice(notice))
      },
    )
  }

  /** Aborts the pending verdict's wait when the client cancels or leaves. */
  private judgeAbort: AbortController | undefined

  // ---- client → upstream ------------------------------------------------------------------

  private onClientData(chunk: Buffer): void {
    if (this.state === 'closed') return
    try {
      this.clientFramer.push(chunk, this.onClientFrameOrHold)
    } catch (error) {
      this.fatal(error)
      return
    }
    this.flush()
  }

  /** Bound once: the framer calls it for every client frame. */
  private readonly onClientFrameOrHold = (frame: Frame): void => {
    if (this.judging) {
      this.held.push(Buffer.from(frame.raw))
      return
    }
    this.onClientFrame(frame)
  }

  private readonly onUpstreamFrameBound = (frame: Frame): void => this.onUpstreamFrame(frame)

  private onClientFrame(frame: Frame): void {
    switch (this.state) {
      case 'startup':
        this.onStartupPacket(frame.body)
        return
      case 'auth':
        this.onAuthMessage(frame)
        return
      case 'connecting':
        throw new ProtocolError('unexpected message before authentication completed')
      case 'ready':
        this.onReadyMessage(frame)
        return
      case 'closed':
        return
    }
  }

  private onStartupPacket(body: Buffer): void {
    const packet = decodeStartup(body)
    if (packet.kind === 'ssl' || packet.kind === 'gssenc') {
      // Loopback clients need no encryption; 'N' tells them to carry on in the clear.
      this.client.write(Buffer.from('N'))
      return
    }
    if (packet.kind === 'cancel') {
      this.env.cancelByKey(packet.processId, packet.secretKey)
      this.state = 'closed'
      this.client.end()
      return
    }
    this.protocolMinor = packet.minor
    const params = packet.params
    const refused = this.checkStartup(params)
    if (refused) {
      this.refuse(refused)
      return
    }
    this.startupParams = params
    if (packet.minor > 0) {
      const unsupported = Object.keys(params).filter((k) => k.startsWith('_pq_.'))
      this.clientOut.push(encodeNegotiateProtocolVersion(0, unsupported))
    }
    this.clientFramer.endStartup()
    this.state = 'auth'
    if (this.env.auth.method === 'scram-sha-256') {
      this.clientOut.push(encodeAuthSasl(['SCRAM-SHA-256']))
    } else {
      this.clientOut.push(encodeAuthCleartext())
    }
  }

  private checkStartup(params: Record<string, string>): PgNoticeFields | undefined {
    if ('replication' in params && !/^(false|off|no|0)$/i.test(params.replication ?? '')) {
      return {severity: 'FATAL', code: '42501', message: 'dbgate: replication connections are not allowed through the tunnel'}
    }
    if ((params.options ?? '').trim() !== '') {
      return {
        severity: 'FATAL',
        code: '42501',
        message: 'dbgate: the startup parameter "options" is not allowed through the tunnel',
        hint: 'It sets server options before any statement can be checked. Use SET after connecting instead (unset PGOPTIONS).',
      }
    }
    const database = params.database
    if (database && database !== this.env.target.database) {
      return {
        severity: 'FATAL',
        code: '3D000',
        message: `dbgate: this tunnel serves database "${this.env.target.database}", not "${database}"`,
        hint: `Connect to database "${this.env.target.database}", or open a tunnel to a target for "${database}".`,
      }
    }
    return this.env.hooks.startup?.(params)
  }

  private onAuthMessage(frame: Frame): void {
    if (frame.code !== Frontend.Password) throw new ProtocolError(`expected a password message during authentication, got ${codeName(frame.code)}`)
    const auth = this.env.auth
    if (auth.method === 'cleartext') {
      const given = frame.body.subarray(0, Math.max(0, frame.body.length - 1))
      const want = Buffer.from(auth.secret)
      if (given.length !== want.length || !timingSafeEqual(given, want)) return this.refuseAuth()
      return this.startUpstream()
    }
    try {
      if (!this.scram) {
        const initial = decodeSaslInitial(frame.body)
        if (initial.mechanism !== 'SCRAM-SHA-256') throw new ScramError(`unsupported SASL mechanism ${initial.mechanism}`)
        this.scram = new ScramServer(auth.verifier)
        this.clientOut.push(encodeAuthSaslContinue(this.scram.start(initial.data.toString('utf8'))))
        return
      }
      const final = this.scram.finish(frame.body.toString('utf8'))
      this.clientOut.push(encodeAuthSaslFinal(final))
    } catch (error) {
      if (error instanceof ScramError && error.message !== 'wrong password') {
        this.refuse({severity: 'FATAL', code: '08P01', message: `dbgate: ${error.message}`})
        return
      }
      return this.refuseAuth()
    }
    this.startUpstream()
  }

  private refuseAuth(): void {
    this.env.log('warn', `connection ${this.id}: a client presented a wrong tunnel secret`)
    this.refuse({
      severity: 'FATAL',
      code: '28P01',
      message: 'dbgate: password authentication failed: the password must be this tunnel\'s secret',
      hint: 'Use the connection URI printed by `dbgate connect`, or run your client through `dbgate connect <target> -- <command>`.',
    })
  }

  private startUpstream(): void {
    this.state = 'connecting'
    this.client.pause()
    const params: Record<string, string> = {}
    for (const [k, v] of Object.entries(this.startupParams)) {
      if (k === 'user' || k === 'database' || k === 'options' || k === 'replication' || k.startsWith('_pq_.')) continue
      params[k] = v
    }
    params.application_name = this.env.applicationName(this.startupParams.application_name)
    connectUpstream(this.env.target, params).then(
      (up) => this.onUpstreamReady(up),
      (error: unknown) => {
        const e = error instanceof UpstreamError ? error : new UpstreamError(String(error), '08006')
        this.env.log('error', `connection ${this.id}: ${e.message}`)
        this.refuse({severity: 'FATAL', code: e.sqlstate, message: `dbgate: ${e.message}`, hint: 'The tunnel is up, but it could not open a session on the upstream database.'})
      },
    )
  }

  private onUpstreamReady(up: UpstreamSession): void {
    if (this.state === 'closed') {
      up.socket.destroy()
      return
    }
    this.upstream = up
    this.state = 'ready'
    this.txStatus = up.status
    this.cancelKey = this.env.issueCancelKey(this)
    const out: Buffer[] = [encodeAuthOk()]
    for (const [name, value] of up.parameters) out.push(encodeParameterStatus(name, value))
    for (const n of up.notices) out.push(encodeNotice(n))
    out.push(encodeBackendKeyData(this.cancelKey.processId, this.cancelKey.secretKey))
    out.push(encodeReadyForQuery(up.status))
    this.client.write(Buffer.concat(out))
    const socket = up.socket
    socket.on('data', (chunk: Buffer) => this.onUpstreamData(chunk))
    socket.on('error', () => this.upstreamLost())
    socket.on('close', () => this.upstreamLost())
    socket.on('drain', () => {
      if (!this.judging) this.client.resume()
    })
    this.session = {
      sessionId: this.sessionId,
      connectionId: this.id,
      database: this.env.target.database,
      user: this.startupParams.user ?? '',
      applicationName: this.startupParams.application_name,
      clientAddress: this.client.remoteAddress ? `${this.client.remoteAddress}:${this.client.remotePort}` : 'unix socket',
      startedAt: new Date(),
    }
    this.safely(() => this.env.hooks.onSessionStart?.(this.session!))
    this.sessionFilter = this.safely(() => this.env.hooks.resultFilter?.(null, this.context('simple'), {action: 'allow'}))
    if (up.leftover.length > 0) this.onUpstreamData(up.leftover)
    if (this.closing) this.maybeFinishShutdown()
    this.client.resume()
  }

  private onReadyMessage(frame: Frame): void {
    switch (frame.code) {
      case Frontend.Query: {
        const sql = decodeQuery(frame.body)
        this.judge(sql, 'simple', undefined, frame, (verdict) => {
          const run = this.newRun(sql, 'simple', verdict)
          if (verdict.action === 'reject') {
            run.denied = verdict.error
            this.upstreamOut.push(encodeQuery(REFUSED_SQL))
          } else {
            this.upstreamOut.push(frame.raw)
          }
          this.pending.push({kind: 'query', run})
        })
        return
      }
      case Frontend.Parse: {
        const parse = decodeParse(frame.body)
        if (parse.name === REFUSED_STATEMENT) throw new ProtocolError(`the prepared statement name "${REFUSED_STATEMENT}" is reserved by dbgate`)
        this.judge(parse.text, 'parse', parse.name, frame, (verdict) => {
          if (verdict.action === 'reject') {
            const run = this.newRun(parse.text, 'parse', verdict, parse.name)
            run.denied = verdict.error
            this.upstreamOut.push(encodeParse({name: parse.name, text: REFUSED_SQL, paramTypes: []}))
            this.pending.push({kind: 'parse', run})
          } else {
            this.statements.set(parse.name, {sql: parse.text, verdict})
            this.rowDescriptions.delete(`S:${parse.name}`)
            this.upstreamOut.push(frame.raw)
            this.pending.push({kind: 'parse'})
          }
        })
        return
      }
      case Frontend.Bind: {
        const bind = decodeBind(frame.body)
        const stmt = this.statements.get(bind.statement)
        if (stmt?.verdict.action === 'allow' && stmt.verdict.once) {
          if (this.spent.has(stmt)) {
            // Send a Bind the server is sure to refuse, so it discards up to Sync as for any error.
            this.upstreamOut.push(serialize.bind({statement: REFUSED_STATEMENT}))
            this.pending.push({
              kind: 'bind',
              denied: {
                severity: 'ERROR',
                code: '42501',
                message: 'dbgate: this statement was approved for one execution, and it has run',
                hint: 'Send it again (Parse) to have it judged again.',
              },
            })
            return
          }
          this.spent.add(stmt)
        }
        if (stmt) {
          // Parameters as text only feed the statement event; without a listener they are not made.
          const params = this.env.hooks.onStatement ? paramsAsText(bind.params, bind.paramFormats) : undefined
          this.portals.set(bind.portal, {sql: stmt.sql, statementName: bind.statement, params, resultFormats: bind.resultFormats, verdict: stmt.verdict})
        }
        this.rowDescriptions.delete(`P:${bind.portal}`)
        this.forward(frame)
        this.pending.push({kind: 'bind'})
        return
      }
      case Frontend.Describe: {
        const d = decodeDescribeOrClose(frame.body, 'Describe')
        const sql = d.target === 'S' ? this.statements.get(d.name)?.sql : this.portals.get(d.name)?.sql
        const verdict = (d.target === 'S' ? this.statements.get(d.name)?.verdict : this.portals.get(d.name)?.verdict) ?? {action: 'allow'}
        const filter = sql === undefined ? undefined : this.safely(() => this.env.hooks.resultFilter?.(sql, this.context('parse', d.name), verdict))
        this.forward(frame)
        this.pending.push({kind: 'describe', target: d.target, name: d.name, sql, filter})
        return
      }
      case Frontend.Execute: {
        const e = decodeExecute(frame.body)
        const portal = this.portals.get(e.portal)
        const run = this.newRun(portal?.sql ?? '', 'parse', portal?.verdict ?? {action: 'allow'}, portal?.statementName)
        run.params = portal?.params
        run.portal = e.portal
        this.forward(frame)
        this.pending.push({kind: 'execute', run})
        return
      }
      case Frontend.Close: {
        const c = decodeDescribeOrClose(frame.body, 'Close')
        if (c.target === 'S') {
          this.statements.delete(c.name)
          this.rowDescriptions.delete(`S:${c.name}`)
          this.safely(() => this.env.hooks.onStatementClosed?.(this.id, c.name))
        } else {
          this.portals.delete(c.name)
          this.rowDescriptions.delete(`P:${c.name}`)
        }
        this.forward(frame)
        this.pending.push({kind: 'close'})
        return
      }
      case Frontend.Sync:
        this.forward(frame)
        this.pending.push({kind: 'sync'})
        return
      case Frontend.Flush:
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        this.forward(frame)
        return
      case Frontend.FunctionCall: {
        // The fast-path function call runs a function by OID, out of sight of SQL analysis.
        const error: PgNoticeFields = {
          severity: 'ERROR',
          code: '0A000',
          message: 'dbgate: the FunctionCall protocol message is not allowed through the tunnel',
          hint: 'Call the function from SQL (SELECT fn(...)) so policy can judge it.',
        }
        const run = this.newRun('<FunctionCall message>', 'function-call', {action: 'reject', error})
        run.denied = error
        this.upstreamOut.push(encodeQuery(REFUSED_SQL))
        this.pending.push({kind: 'query', run})
        return
      }
      case Frontend.Terminate:
        this.forward(frame)
        this.close('client terminated the session')
        return
      default:
        throw new ProtocolError(`unknown frontend message type ${codeName(frame.code)}`)
    }
  }

  private forward(frame: Frame): void {
    this.upstreamOut.push(frame.raw)
  }

  /**
   * Runs the statement hook; `then` continues with the verdict, synchronously when the hook is
   * synchronous (the common, fast case), otherwise after holding back later client frames.
   */
  private judge(sql: string, protocol: ProtocolPath, statementName: string | undefined, frame: Frame, then: (v: StatementVerdict) => void): void {
    const hook = this.env.hooks.statement
    if (!hook) return then({action: 'allow'})
    let result: StatementVerdict | Promise<StatementVerdict>
    try {
      result = hook(sql, this.context(protocol, statementName))
    } catch (error) {
      return then(failClosed(error))
    }
    if (!(result instanceof Promise)) {
      this.judgeAbort = undefined
      return then(this.withNotices(result))
    }
    // Frame views die with the chunk: keep a copy for the continuation.
    const raw = Buffer.from(frame.raw)
    frame.raw = raw
    frame.body = raw.subarray(5)
    this.judging = true
    this.client.pause()
    result.then(
      (v) => this.resume(() => then(this.withNotices(v))),
      (error: unknown) => this.resume(() => then(failClosed(error))),
    )
  }

  private withNotices(v: StatementVerdict): StatementVerdict {
    if (v.action === 'allow' && v.notices) for (const n of v.notices) this.clientOut.push(encodeNotice(n))
    return v
  }

  private resume(continuation: () => void): void {
    if (this.state === 'closed') return
    this.judging = false
    this.judgeAbort = undefined
    try {
      continuation()
      while (!this.judging && this.held.length > 0 && this.state === 'ready') {
        const raw = this.held.shift()!
        this.onClientFrame({code: raw[0]!, body: raw.subarray(5), raw})
      }
    } catch (error) {
      this.fatal(error)
      return
    }
    this.flush()
    if (!this.judging) this.client.resume()
  }

  private newRun(sql: string, protocol: ProtocolPath, verdict: StatementVerdict, statementName?: string): Run {
    const run: Run = {sql, protocol, statementName, verdict, started: performance.now(), startedAtMs: Date.now(), tags: [], dataRows: 0}
    const factory = this.env.hooks.resultFilter
    if (factory && verdict.action === 'allow') run.filter = this.safely(() => factory(sql, this.context(protocol, statementName), verdict))
    return run
  }

  // ---- upstream → client ------------------------------------------------------------------

  private onUpstreamData(chunk: Buffer): void {
    if (this.state === 'closed') return
    try {
      this.upstreamFramer.push(chunk, this.onUpstreamFrameBound)
    } catch (error) {
      const e = error as Error
      this.env.log('error', `connection ${this.id}: protocol error from the upstream: ${e.message}`)
      this.flush()
      this.refuse({severity: 'FATAL', code: '08P01', message: `dbgate: protocol error from the upstream server: ${e.message}`})
      return
    }
    this.flush()
  }

  private onUpstreamFrame(frame: Frame): void {
    const head = this.pending[0]
    switch (frame.code) {
      case Backend.DataRow: {
        const run = this.currentRun(head)
        if (run) run.dataRows++
        const filter = run ? run.filter : this.sessionFilter
        if (filter?.dataRow) {
          const values = decodeDataRow(frame.body)
          const out = filter.dataRow(values, run ? this.fieldsOf(run) : undefined)
          // Only rows that went through the masking filter are kept for the recording's preview.
          if (run && run.dataRows <= this.previewRows) this.keepPreviewRow(run, out ?? values)
          if (out) return this.toClient(encodeDataRow(out))
        }
        return this.toClient(frame.raw)
      }
      case Backend.RowDescription: {
        let fields: FieldDescription[] | undefined
        let filter: ResultFilter | undefined
        // Columns are only ever read by result filters: without a filter factory there is nothing to decode.
        const decode = this.env.hooks.resultFilter !== undefined
        if (head?.kind === 'describe') {
          this.pending.shift()
          if (decode) {
            fields = decodeRowDescription(frame.body)
            this.rowDescriptions.set(`${head.target}:${head.name}`, fields)
          }
          filter = head.filter
        } else {
          const run = this.currentRun(head)
          if (run && decode) {
            fields = decodeRowDescription(frame.body)
            run.fields = fields
            filter = run.filter
          }
        }
        if (filter?.rowDescription && fields) {
          const out = filter.rowDescription(fields)
          if (out) return this.toClient(encodeRowDescription(out))
        }
        return this.toClient(frame.raw)
      }
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
      case Backend.PortalSuspended: {
        const run = this.currentRun(head)
        // Tags only feed the statement event; without a listener they are not decoded.
        if (run && frame.code === Backend.CommandComplete && this.env.hooks.onStatement) run.tags.push(decodeCommandComplete(frame.body))
        if (head?.kind === 'execute') {
          this.pending.shift()
          this.finishRun(head.run, 'ok')
        }
        return this.toClient(frame.raw)
      }
      case Backend.ErrorResponse:
        return this.onUpstreamError(frame, head)
      case Backend.ReadyForQuery: {
        this.txStatus = decodeReadyForQuery(frame.body)
        if (head?.kind === 'query') {
          this.pending.shift()
          this.finishRun(head.run, head.run.error ? 'error' : 'ok')
        } else if (head?.kind === 'sync') {
          this.pending.shift()
        } else {
          this.env.log('warn', `connection ${this.id}: ReadyForQuery arrived with no request waiting for it`)
        }
        this.toClient(frame.raw)
        if (this.closing) this.maybeFinishShutdown()
        return
      }
      case Backend.ParseComplete:
        return this.answered(head, 'parse', frame)
      case Backend.BindComplete:
        return this.answered(head, 'bind', frame)
      case Backend.CloseComplete:
        return this.answered(head, 'close', frame)
      case Backend.NoData:
        return this.answered(head, 'describe', frame)
      case Backend.ParameterDescription:
        return this.toClient(frame.raw)
      case Backend.CopyData: {
        const run = this.currentRun(head)
        if (run?.filter?.copyData) {
          const out = run.filter.copyData(frame.body)
          if (out) return this.toClient(encodeCopyData(out))
        }
        return this.toClient(frame.raw)
      }
      case Backend.NoticeResponse: {
        const filter = this.currentRun(head)?.filter ?? this.sessionFilter
        if (filter?.notice) {
          const out = filter.notice(decodeNotice(frame.body))
          if (out) return this.toClient(encodeNotice(out))
        }
        return this.toClient(frame.raw)
      }
      case Backend.NotificationResponse: {
        if (this.sessionFilter?.notification) {
          const n = decodeNotification(frame.body)
          const payload = this.sessionFilter.notification(n.channel, n.payload)
          if (payload !== undefined) return this.toClient(encodeNotification(n.processId, n.channel, payload))
        }
        return this.toClient(frame.raw)
      }
      case Backend.ParameterStatus: {
        const filter = this.currentRun(head)?.filter ?? this.sessionFilter
        if (filter?.parameterStatus) {
          const p = decodeParameterStatus(frame.body)
          const value = filter.parameterStatus(p.name, p.value)
          if (value !== undefined) return this.toClient(encodeParameterStatus(p.name, value))
        }
        return this.toClient(frame.raw)
      }
      case Backend.BackendKeyData:
        // The client must only ever know the tunnel's own key.
        return
      default:
        return this.toClient(frame.raw)
    }
  }

  private onUpstreamError(frame: Frame, head: Pending | undefined): void {
    const fields = decodeNotice(frame.body)
    const fatal = fields.severity === 'FATAL' || fields.severity === 'PANIC'
    let run = this.currentRun(head)
    if (!run && head?.kind === 'parse') run = head.run
    let out: Buffer = frame.raw
    if (head?.kind === 'bind' && head.denied) {
      out = encodeError(head.denied)
    } else if (run?.denied) {
      out = encodeError(run.denied)
      run.error = {code: run.denied.code, message: run.denied.message}
    } else {
      if (run) run.error = {code: fields.code, message: fields.message}
      const filter = run?.filter ?? this.sessionFilter
      const rewritten = filter?.error?.(fields)
      if (rewritten) out = encodeError(rewritten)
    }
    if (head && head.kind !== 'query') {
      // The server skips every extended-protocol message up to the next Sync after an error.
      while (this.pending.length > 0 && this.pending[0]!.kind !== 'sync' && this.pending[0]!.kind !== 'query') {
        const p = this.pending.shift()!
        if (p.kind === 'execute') this.finishRun(p.run, p === head ? 'error' : 'aborted')
        else if (p.kind === 'parse' && p.run) this.finishRun(p.run, 'rejected')
      }
    }
    this.toClient(out)
    if (fatal) this.env.log('warn', `connection ${this.id}: the upstream ended the session: ${fields.message}`)
  }

  private answered(head: Pending | undefined, kind: Pending['kind'], frame: Frame): void {
    if (head?.kind === kind) this.pending.shift()
    else this.env.log('warn', `connection ${this.id}: the server answered ${codeName(frame.code)} when a ${head?.kind ?? 'nothing'} answer was expected`)
    this.toClient(frame.raw)
  }

  /** The columns of an Execute's result: from Describe Portal, else Describe Statement and Bind's formats. */
  private fieldsOf(run: Run): FieldDescription[] | undefined {
    if (run.fields || run.portal === undefined) return run.fields
    const direct = this.rowDescriptions.get(`P:${run.portal}`)
    if (direct) return (run.fields = direct)
    const portal = this.portals.get(run.portal)
    const described = portal && this.rowDescriptions.get(`S:${portal.statementName}`)
    if (portal && described) run.fields = withFormats(described, portal.resultFormats)
    return run.fields
  }

  private get previewRows(): number {
    return this.env.hooks.previewRows ?? 0
  }

  /** The first rows of a result as the client received them (masked), for the session log. */
  private keepPreviewRow(run: Run, values: (Buffer | null)[]): void {
    const fields = this.fieldsOf(run)
    run.preview ??= {columns: fields ? fields.map((f) => f.name) : values.map((_, i) => `column${i + 1}`), rows: []}
    run.preview.rows.push(values.map((v, i) => (v === null ? null : fields?.[i]?.format === 1 ? '<binary>' : v.toString('utf8'))))
  }

  private currentRun(head: Pending | undefined): Run | undefined {
    if (!head) return undefined
    if (head.kind === 'query' || head.kind === 'execute') return head.run
    return undefined
  }

  private finishRun(run: Run, outcome: StatementEvent['outcome']): void {
    const hook = this.env.hooks.onStatement
    if (!hook) return
    const event: StatementEvent = {
      sessionId: this.sessionId,
      connectionId: this.id,
      protocol: run.protocol,
      statementName: run.statementName,
      sql: run.sql,
      params: run.params,
      verdict: run.verdict,
      startedAt: new Date(run.startedAtMs),
      durationMs: performance.now() - run.started,
      commandTags: run.tags,
      rows: run.tags.length > 0 ? run.tags.reduce((n, t) => n + rowsFromTag(t), 0) : run.dataRows,
      outcome: run.denied ? 'rejected' : outcome,
      error: run.error,
      resultFilter: run.filter,
      preview: run.preview && {columns: run.preview.columns, rows: run.preview.rows, truncated: run.dataRows > run.preview.rows.length},
    }
    this.safely(() => hook(event))
  }

  private toClient(buf: Buffer): void {
    this.clientOut.push(buf)
  }

  /** Writes what the last chunk produced, merging adjacent views of one buffer into one write. */
  private flush(): void {
    if (this.upstreamOut.length > 0 && this.upstream) {
      const ok = this.upstream.socket.write(joinOut(this.upstreamOut))
      this.upstreamOut.length = 0
      if (!ok) this.client.pause()
    } else {
      this.upstreamOut.length = 0
    }
    if (this.clientOut.length > 0 && this.state !== 'closed') {
      const ok = this.client.write(joinOut(this.clientOut))
      this.clientOut.length = 0
      if (!ok) this.upstream?.socket.pause()
    }
  }

  // ---- endings ------------------------------------------------------------------------------

  /** Ends this connection with an error the client can read, leaving the tunnel untouched. */
  private refuse(error: PgNoticeFields): void {
    if (this.state === 'closed') return
    this.clientOut.push(encodeError(error))
    this.flush()
    this.client.end()
    this.close(error.message)
  }

  private fatal(error: unknown): void {
    const e = error as Error
    const sqlstate = error instanceof ProtocolError ? error.sqlstate : 'XX000'
    this.env.log('warn', `connection ${this.id}: ${e instanceof ProtocolError ? 'protocol error' : 'internal error'}: ${e.message}`)
    this.upstreamOut = []
    this.refuse({severity: 'FATAL', code: sqlstate, message: `dbgate: ${e instanceof ProtocolError ? 'protocol violation' : 'internal error'}: ${e.message}`})
  }

  private upstreamLost(): void {
    if (this.state === 'closed' || this.closingUpstream) return
    this.refuse({
      severity: 'FATAL',
      code: '08006',
      message: 'dbgate: the connection to the upstream database was lost',
      hint: 'The server may have restarted; reconnect to start a new session through the same tunnel.',
    })
  }

  private closingUpstream = false

  /** Stops after in-flight work finishes (or at once when idle). */
  shutdown(message?: string): void {
    this.closing = true
    if (message) this.shutdownMessage = message
    if (this.state !== 'ready') {
      this.refuse({severity: 'FATAL', code: '57P01', message: this.shutdownMessage})
      return
    }
    this.maybeFinishShutdown()
  }

  private shutdownMessage = 'terminating connection: the dbgate tunnel is shutting down'

  private maybeFinishShutdown(): void {
    if (!this.idle) return
    this.refuse({severity: 'FATAL', code: '57P01', message: this.shutdownMessage})
  }

  /**
   * A CancelRequest for this session: withdraws a statement still waiting for its verdict, or
   * asks the upstream to cancel what it is running.
   */
  cancel(): Promise<void> {
    if (this.judging && this.judgeAbort) {
      this.judgeAbort.abort(new Error('cancelled by the client'))
      return Promise.resolve()
    }
    const up = this.upstream
    if (!up) return Promise.resolve()
    return cancelUpstream(this.env.target, up.processId, up.secretKey).catch((e: Error) => {
      this.env.log('warn', `connection ${this.id}: cancel request to the upstream failed: ${e.message}`)
    })
  }

  close(reason: string): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.judgeAbort?.abort(new Error('the client disconnected'))
    for (const p of this.pending.splice(0)) {
      if (p.kind === 'query' || p.kind === 'execute') this.finishRun(p.run, 'aborted')
    }
    if (this.upstream) {
      this.closingUpstream = true
      const s = this.upstream.socket
      if (!s.destroyed) s.end(Buffer.from([Frontend.Terminate, 0, 0, 0, 4]))
      setTimeout(() => s.destroy(), 1000).unref()
    }
    if (!this.client.destroyed) {
      this.client.end()
      setTimeout(() => this.client.destroy(), 1000).unref()
    }
    if (this.cancelKey) this.env.releaseCancelKey(this.cancelKey.processId)
    if (this.session) {
      const session = this.session
      this.safely(() => this.env.hooks.onSessionEnd?.(session, reason))
    }
    this.safely(() => this.env.hooks.onConnectionClosed?.(this.id))
    for (const fn of this.closeListeners.splice(0)) fn()
  }

  /** Hooks must never take the tunnel down; a failing one is logged. */
  private safely<T>(fn: () => T): T | undefined {
    try {
      return fn()
    } catch (error) {
      this.env.log('error', `connection ${this.id}: a hook failed: ${(error as Error).message}`)
      return undefined
    }
  }
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
 * A statement's RowDescription as a portal bound with `resultFormats` reports it (once per Execute).
 * Built field by field: a spread followed by another property takes V8's slow path, ~0.7 µs each.
 */
function withFormats(fields: FieldDescription[], formats: number[]): FieldDescription[] {
  return fields.map((f, i) => ({
    name: f.name,
    tableOid: f.tableOid,
    columnAttr: f.columnAttr,
    typeOid: f.typeOid,
    typeSize: f.typeSize,
    typeModifier: f.typeModifier,
    format: formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : (formats[i] ?? 0),
  }))
}

/** Bind parameters as the statement event reports them: text, or base64 with a `b64:` prefix for binary ones. */
function paramsAsText(params: (Buffer | null)[], formats: number[]): (string | null)[] {
  return params.map((p, i) => {
    if (p === null) return null
    const format = formats.length === 1 ? formats[0] : formats[i] ?? 0
    return format === 1 ? `b64:${p.toString('base64')}` : p.toString('utf8')
  })
}

function joinOut(parts: Buffer[]): Buffer {
  if (parts.length === 1) return parts[0]!
  // Frames forwarded untouched are adjacent views of one chunk: stitch them back into one view,
  // making a Buffer only where a run of adjacent views ends (usually once, for the whole chunk).
  const merged: Buffer[] = []
  let first = parts[0]!
  let end = first.byteOffset + first.length
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i]!
    if (p.buffer === first.buffer && p.byteOffset === end) {
      end += p.length
    } else {
      merged.push(spanOf(first, end))
      first = p
      end = p.byteOffset + p.length
    }
  }
  merged.push(spanOf(first, end))
  return merged.length === 1 ? merged[0]! : Buffer.concat(merged)
}

/** The view from `first`'s start to `end` (a byte offset in its ArrayBuffer). */
function spanOf(first: Buffer, end: number): Buffer {
  return end === first.byteOffset + first.length ? first : Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset)
}

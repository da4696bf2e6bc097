/**
 * One client connection through the tunnel and its upstream session: the sockets, the framers,
 * the buffered writes and the connection's life from accept to close. The work is split the way
 * PgBouncer splits client.c, server.c and proto.c:
 *
 *   startup.ts          the client's startup packet, authentication, the upstream login and its checks
 *   client-messages.ts  client → upstream: judging and forwarding each message
 *   server-messages.ts  upstream → client: filtering each reply
 *   protocol-state.ts   the server's state machine, followed as the server acknowledges it
 */
import {randomUUID} from 'node:crypto'
import type net from 'node:net'
import type {AssumedSetting} from '../policy/assumed-settings.js'
import {encodeAuthOk, encodeBackendKeyData, encodeError, encodeNotice, encodeParameterStatus, encodeReadyForQuery} from '../wire/backend.js'
import {Frontend} from '../wire/codes.js'
import {Framer, ProtocolError, type Frame} from '../wire/framer.js'
import {checkFrontendHeader, type FrontendPhase} from '../wire/frontend-headers.js'
import type {ScramVerifier} from '../wire/scram.js'
import {ClientMessages} from './client-messages.js'
import type {MessageSink, NamedDefinition, ProtocolPath, ProxyHooks, ResultFilter, SessionInfo, SessionView, StatementContext, StatementEvent} from './seam.js'
import type {PgNoticeFields} from '../wire/fields.js'
import {ProtocolDesync, ProtocolState} from './protocol-state.js'
import {statementEvent, type Run} from './run.js'
import {ServerMessages, SettingChanged} from './server-messages.js'
import {ClientStartup} from './startup.js'
import {MAX_AUTH_MESSAGE_SIZE, MAX_STARTUP_PACKET_SIZE} from './limits.js'
import type {SessionGate} from './upstream-gate.js'
import {Outbox, writeAll} from './outbox.js'
import {OwnQuery, OwnQueryFailedTransaction, type OwnResults} from './own-query.js'
import type {UpstreamReader} from './upstream-reader.js'
import {cancelUpstream, terminateUpstream, type UpstreamSession, type UpstreamTarget} from './upstream.js'

/**
 * How long a closed connection's upstream socket is kept while the server still runs what it was
 * sent (the server closes it once it reads the Terminate behind that): meanwhile the pipeline
 * counts that work as running (`onUpstreamClosed`).
 */
export const BUSY_UPSTREAM_LINGER_MS = 10 * 60_000

/** How clients prove they may use this tunnel. */
export interface TunnelAuth {
  method: 'scram-sha-256' | 'cleartext'
  secret: string
  verifier: ScramVerifier
}

/**
 * Sign-in with a bearer token (the gateway): the client sends it as a cleartext password, accepted
 * only over TLS, and `authenticate` decides what this one connection runs. Until it has, the
 * connection has no target and no hooks of its own.
 */
export interface TokenAuth {
  method: 'token'
  authenticate(request: TokenAuthRequest): Promise<TokenAuthResult>
}

export interface TokenAuthRequest {
  user: string
  database: string
  /** The token. Never logged, recorded or sent upstream. */
  password: string
  clientAddress: string
  startupParams: Readonly<Record<string, string>>
}

/** What one authenticated connection runs: decided per connection, after sign-in. */
export interface SessionGrant {
  target: UpstreamTarget
  /** Names the target in messages to the client ("the upstream of target prod is down"). */
  targetName: string
  hooks: ProxyHooks
  applicationName: (clientApplicationName: string | undefined) => string
  upstreamGate?: SessionGate
}

export type TokenAuthResult = {ok: true; grant: SessionGrant} | {ok: false; error: PgNoticeFields}

/**
 * The target of a token-authenticated connection before sign-in: nothing may dial it (its host is
 * empty) and startup never compares the database against it.
 */
export const NO_TARGET_YET: UpstreamTarget = Object.freeze({host: '', port: 0, database: '', user: '', tls: 'verify-full' as const})

export interface ConnectionEnv {
  target: UpstreamTarget
  /** The configured name of the target, for messages (the gateway serves several). */
  targetName?: string
  auth: TunnelAuth | TokenAuth
  hooks: ProxyHooks
  /** The client's address when the socket cannot tell (a TLS socket over a replayed stream). */
  clientAddress?: string
  maxMessageSize: number
  /** How long startup, authentication and the upstream login may take together (default tunnel.authTimeout's). */
  authTimeoutMs?: number
  /**
   * A deadline (epoch ms) for the startup packet and the token, shorter than `authTimeoutMs`, which
   * then applies from the token's arrival; `setting` names it in the refusal.
   */
  signInDeadline?: {at: number; ms: number; setting: string}
  /** How long a closed connection's busy server session may run on before it is cancelled (default `BUSY_UPSTREAM_LINGER_MS`). */
  busyUpstreamLingerMs?: number
  /** Set when the tunnel is at tunnel.maxClientConnections: the client is refused after its startup packet. */
  overCapacity?: {max: number}
  /** The per-target cap on upstream sessions; none means no cap. */
  upstreamGate?: SessionGate
  /** Settings the analysis depends on, checked before the session starts and watched during it. */
  assumedSettings?: readonly AssumedSetting[]
  /** The application_name the upstream sees, from the one the client asked for. */
  applicationName: (clientApplicationName: string | undefined) => string
  issueCancelKey: (conn: ClientConnection) => {processId: number; secretKey: number}
  releaseCancelKey: (processId: number) => void
  cancelByKey: (processId: number, secretKey: number) => void
  log: (level: 'info' | 'warn' | 'error', message: string) => void
}

/** What the two directions of a connection share. */
export interface ConnectionCore {
  readonly id: number
  readonly sessionId: string
  readonly env: ConnectionEnv
  readonly client: net.Socket
  readonly state: ProtocolState<Run>
  readonly upstreamSocket: net.Socket | undefined
  /** What the chunk being handled sends to each side, written together by `flush` (see `Outbox.parts`). */
  readonly toClient: Buffer[]
  readonly toUpstream: Buffer[]
  /** What goes to the client, for a result filter's batch of messages: `toClient` that also passes ranges. */
  readonly clientSink: MessageSink
  /** Sends a frame on untouched: adjacent frames of one chunk are written as one span of it. */
  passToClient(frame: Frame): void
  passToUpstream(frame: Frame): void
  readonly sessionFilter: ResultFilter | undefined
  readonly ready: boolean
  readonly clientAddress: string
  settle(grant: SessionGrant): void
  readonly closing: boolean
  context(protocol: ProtocolPath, statementName?: string, definition?: NamedDefinition, paramTypes?: readonly number[], bindValues?: readonly (string | null)[]): StatementContext
  finishRun(run: Run, outcome: StatementEvent['outcome']): void
  /** The statement whose rows the chunk being handled sent last: `flush` reports it if it is still running. */
  rowsOut: Run | undefined
  safely<T>(fn: () => T): T | undefined
  flush(): void
  close(reason: string): void
  /** Ends the connection after a protocol violation or an internal error. */
  fail(error: unknown): void
  /** Ends the connection with `error` for the client, leaving the tunnel untouched. */
  refuse(error: PgNoticeFields): void
  maybeFinishShutdown(): void
  /** The tunnel's own query in flight in this session, whose replies are its own (`StatementContext.askSession`). */
  ownQuery: OwnQuery | undefined
}

let nextConnectionId = 1

const FLUSH = Buffer.from([Frontend.Flush, 0, 0, 0, 4])

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
    readonly session: SessionView,
    readonly definition: NamedDefinition | undefined,
    private readonly abortSignal: () => AbortSignal,
    readonly notify: (notice: PgNoticeFields) => void,
    readonly paramTypes: readonly number[] | undefined,
    readonly bindValues: readonly (string | null)[] | undefined,
    readonly answered: () => Promise<void>,
    readonly askSession: (statements: readonly string[]) => Promise<OwnResults>,
    readonly startupParameters: Readonly<Record<string, string>>,
  ) {}

  get signal(): AbortSignal {
    return this.abortSignal()
  }
}

/** Asks the server for the answers it keeps back until a Sync or Flush. */
const FLUSH_MESSAGE = Buffer.from([Frontend.Flush, 0, 0, 0, 4])

/**
 * One client connection through the tunnel, and its upstream connection. Client bytes are framed,
 * judged and forwarded; server bytes are framed, filtered and forwarded, untouched where nothing
 * rewrites them.
 */
export class ClientConnection implements ConnectionCore {
  readonly id = nextConnectionId++
  readonly sessionId = randomUUID()
  private phase: 'startup' | 'ready' | 'closed' = 'startup'
  readonly state = new ProtocolState<Run>()
  private readonly clientOut = new Outbox()
  private readonly upstreamOut = new Outbox()
  /** What filters messages outside any statement: made on first use (`sessionFilter`), most sessions never need one. */
  private outsideFilter: ResultFilter | undefined
  private outsideFilterMade = false
  closing = false
  private readonly clientFramer: Framer
  private readonly upstreamFramer: Framer
  /** What the session needs of its login for good; the rest (parameters, preflight rows, notices) is dropped after `begin`. */
  private upstream: Pick<UpstreamSession, 'socket' | 'processId' | 'secretKey'> | undefined
  private startupParams: Record<string, string> = {}
  private session: SessionInfo | undefined
  private cancelKey: {processId: number; secretKey: number} | undefined
  private readonly startup: ClientStartup
  private readonly fromClient: ClientMessages
  private readonly fromServer: ServerMessages
  private closeListeners: (() => void)[] = []
  private endListeners: (() => void)[] = []
  /** Closed, and its server session too. */
  private gone = false
  private closingUpstream = false
  private shutdownMessage = 'terminating connection: the dbgate tunnel is shutting down'

  /**
   * `clientReader`: the client socket reads into a buffer it keeps (`adoptClientSocket`), and its
   * bytes come through the reader rather than as 'data' events.
   */
  constructor(
    readonly client: net.Socket,
    readonly env: ConnectionEnv,
    readonly clientReader?: UpstreamReader,
  ) {
    this.clientFramer = new Framer({
      maxMessageSize: MAX_AUTH_MESSAGE_SIZE,
      limitName: 'the limit for messages before authentication',
      startup: true,
      maxStartupSize: MAX_STARTUP_PACKET_SIZE,
      checkHeader: (code, length) => checkFrontendHeader(this.frontendPhase(), code, length),
    })
    this.upstreamFramer = new Framer({maxMessageSize: env.maxMessageSize, trustedLengths: true})
    this.startup = new ClientStartup(this, this.clientFramer, (up, params) => this.begin(up, params))
    this.fromClient = new ClientMessages(this)
    this.fromServer = new ServerMessages(this)
    client.setNoDelay(true)
    // A statement may wait minutes for a reviewer; keep idle NAT and firewall state alive meanwhile.
    client.setKeepAlive(true, 30_000)
    if (clientReader) clientReader.attach(this.onClientRead)
    else client.on('data', (chunk: Buffer) => this.onClientData(chunk))
    client.on('error', () => this.close('client connection error'))
    client.on('close', () => this.close('client disconnected'))
    client.on('drain', () => this.upstream?.socket.resume())
  }

  /**
   * A connection whose client is already authenticated and whose upstream session is open: for the
   * in-memory benchmark and the byte-level tests of the protocol state.
   */
  static attached(client: net.Socket, env: ConnectionEnv, upstream: UpstreamSession, startupParams: Record<string, string> = {}, clientReader?: UpstreamReader): ClientConnection {
    const conn = new ClientConnection(client, env, clientReader)
    conn.startup.skip()
    conn.clientFramer.endStartup()
    conn.clientFramer.setLimit(env.maxMessageSize, 'tunnel.maxMessageSize')
    conn.begin(upstream, startupParams)
    return conn
  }

  get ready(): boolean {
    return this.phase === 'ready'
  }

  get idle(): boolean {
    return this.phase === 'ready' && this.state.pendingCount === 0 && !this.fromClient.busy
  }

  get closed(): boolean {
    return this.phase === 'closed'
  }

  /**
   * The filter for what arrives outside any statement (notifications, asynchronous notices, reported
   * settings), asked of the hooks once the session has begun, when the first such message comes: the
   * factory keeps no state of its own for it, so asking later gives the filter asking at login gave.
   */
  get sessionFilter(): ResultFilter | undefined {
    if (!this.outsideFilterMade && this.session) {
      this.outsideFilterMade = true
      this.outsideFilter = this.safely(() => this.env.hooks.resultFilter?.(null, this.context('simple'), {action: 'allow'}))
    }
    return this.outsideFilter
  }

  get toClient(): Buffer[] {
    return this.clientOut.parts
  }

  get clientSink(): MessageSink {
    return this.clientOut
  }

  get toUpstream(): Buffer[] {
    return this.upstreamOut.parts
  }

  passToClient(frame: Frame): void {
    this.clientOut.pass(frame)
  }

  passToUpstream(frame: Frame): void {
    this.upstreamOut.pass(frame)
  }

  get upstreamSocket(): net.Socket | undefined {
    return this.upstream?.socket
  }

  /** Where the client connects from, as recorded and as sign-in sees it. */
  get clientAddress(): string {
    if (this.env.clientAddress) return this.env.clientAddress
    return this.client.remoteAddress ? `${this.client.remoteAddress}:${this.client.remotePort}` : 'unix socket'
  }

  /** Token sign-in decided what this connection runs. */
  settle(grant: SessionGrant): void {
    this.env.target = grant.target
    this.env.targetName = grant.targetName
    this.env.hooks = grant.hooks
    this.env.applicationName = grant.applicationName
    this.env.upstreamGate = grant.upstreamGate
  }

  onClose(fn: () => void): void {
    if (this.phase === 'closed') fn()
    else this.closeListeners.push(fn)
  }

  /**
   * `fn` runs once the connection is closed and its server session too (at once if it had none):
   * what the client sent may run on after it hung up, and it counts as a session until then.
   */
  onSessionGone(fn: () => void): void {
    if (this.gone) fn()
    else this.endListeners.push(fn)
  }

  context(protocol: ProtocolPath, statementName?: string, definition?: NamedDefinition, paramTypes?: readonly number[], bindValues?: readonly (string | null)[]): StatementContext {
    return new HookContext(
      this.sessionId,
      this.id,
      protocol,
      statementName,
      this.state.txStatus,
      this.env.target.database,
      this.startupParams.user ?? '',
      this.startupParams.application_name,
      this.state,
      definition,
      this.abortSignalOf,
      this.notifyClient,
      paramTypes,
      bindValues,
      this.awaitAnswered,
      this.runOwnQuery,
      this.startupParams,
    )
  }

  ownQuery: OwnQuery | undefined

  /**
   * `StatementContext.askSession`: only while nothing of the client's is in flight, one at a time.
   * Past an extended-protocol message with no Sync after it, the queries go in the client's batch.
   */
  private readonly runOwnQuery = (statements: readonly string[]): Promise<OwnResults> => {
    if (this.phase !== 'ready') return Promise.reject(new Error('the connection has ended'))
    if (this.state.pendingCount > 0 || this.ownQuery !== undefined || this.state.txStatusCurrent === false || this.state.skipping) {
      return Promise.reject(new Error('the session is answering other messages'))
    }
    return new Promise<OwnResults>((resolve, reject) => {
      const done = () => {
        this.ownQuery = undefined
      }
      const own = new OwnQuery(statements, !this.state.extendedSinceSync, this.state.txStatus, (r) => (done(), resolve(r)), (e) => (done(), reject(e)))
      this.ownQuery = own
      this.toUpstream.push(...own.messages())
      this.flush()
    })
  }

  /** Waiting for the server to have answered all that was sent (`StatementContext.answered`). */
  private answeredWaiters: {resolve: () => void; reject: (e: Error) => void}[] = []
  private readonly awaitAnswered = (): Promise<void> => {
    if (this.state.pendingCount === 0) return Promise.resolve()
    if (this.phase === 'closed') return Promise.reject(new Error('the connection has ended'))
    this.toUpstream.push(FLUSH_MESSAGE)
    this.flush()
    return new Promise((resolve, reject) => this.answeredWaiters.push({resolve, reject}))
  }

  private settleAnswered(error?: Error): void {
    if (this.answeredWaiters.length === 0 || (!error && this.state.pendingCount > 0)) return
    const waiters = this.answeredWaiters
    this.answeredWaiters = []
    for (const w of waiters) {
      if (error) w.reject(error)
      else w.resolve()
    }
  }

  /** What every hook context of this connection shares: one pair per connection, not per statement. */
  // The signal is created only when a hook asks: most verdicts are synchronous and never need one.
  private readonly abortSignalOf = (): AbortSignal => this.fromClient.abortSignal()
  private readonly notifyClient = (notice: PgNoticeFields): void => {
    if (this.phase !== 'closed') this.client.write(encodeNotice(notice))
  }

  // ---- bytes in -----------------------------------------------------------------------------

  private onClientData(chunk: Buffer): void {
    if (this.phase === 'closed') return
    try {
      this.clientFramer.push(chunk, this.onClientFrame)
    } catch (error) {
      this.fail(error)
      return
    }
    if (this.phase === 'ready') this.fromClient.endOfInput()
    this.flush()
    // What the client sent past the end was dropped: the session may be idle now.
    if (this.closing) this.maybeFinishShutdown()
  }

  /** Past the end: a COPY the client feeds is failed, and the session ends once nothing is owed. */
  private continueShutdown(): void {
    if (this.phase !== 'ready') return
    this.fromClient.failCopyAtEnd()
    this.flush()
    this.maybeFinishShutdown()
  }

  /**
   * A read into the client's kept buffer: the framer copies what it keeps, held frames are copies,
   * so the only view left is an upstream write the kernel did not take at once.
   */
  private readonly onClientRead = (chunk: Buffer): boolean => {
    this.onClientData(chunk)
    const up = this.upstream
    return up !== undefined && up.socket.writableLength > 0
  }

  /**
   * What the client may send now, for the check of each header. Messages still held are
   * dispatched first and may end a COPY the server has started (a CopyDone among them), so the next
   * one is then checked against what a session admits, and the dispatch judges it in its turn.
   */
  private frontendPhase(): FrontendPhase {
    if (this.phase === 'startup') return this.startup.readsPassword ? 'authentication' : 'login'
    if (this.phase === 'closed') return 'closed'
    return this.state.copyIn && !this.fromClient.busy ? 'copy-in' : 'session'
  }

  /** Bound once: the framer calls it for every client frame. */
  private readonly onClientFrame = (frame: Frame): void => {
    if (this.phase === 'ready') this.fromClient.onFrame(frame)
    else if (this.phase === 'startup') this.startup.onFrame(frame)
  }

  private onUpstreamData(chunk: Buffer): void {
    if (this.phase === 'closed') return
    try {
      this.env.hooks.outputMemory?.mark()
      this.upstreamFramer.pushRuns(chunk, this.fromServer.onFrame)
    } catch (error) {
      this.flush()
      if (error instanceof SettingChanged || error instanceof OwnQueryFailedTransaction) {
        this.dropUpstreamOutput()
        this.refuse(error.notice)
        return
      }
      if (error instanceof ProtocolDesync) {
        this.env.log('error', `connection ${this.id}: the server's replies no longer match the session the tunnel tracks: ${error.message}; closing the connection`)
        this.refuse({
          severity: 'FATAL',
          code: '08P01',
          message: `dbgate: the server's replies no longer match what the tunnel expects (${error.message}), so the connection was closed rather than continued on a guess`,
          hint: 'Reconnect. If this repeats, report it with the statements that led to it.',
        })
        return
      }
      const e = error as Error
      this.env.log('error', `connection ${this.id}: protocol error from the upstream: ${e.message}`)
      this.refuse({severity: 'FATAL', code: '08P01', message: `dbgate: protocol error from the upstream server: ${e.message}`})
      return
    }
    this.flush()
    // The chunk's rewritten rows went to the client in that write; a queued write still holds them.
    if (!(this.client.writableLength > 0)) this.env.hooks.outputMemory?.written()
    // Replies may have settled what a held client message was waiting for.
    this.settleAnswered()
    if (this.phase === 'ready') this.fromClient.repliesArrived()
    // A session whose record is as large as one may be ends as at a shutdown (in-flight work finishes).
    const full = this.closing || this.phase !== 'ready' ? undefined : this.env.hooks.logFull
    if (full) {
      const message = this.safely(() => full(this.sessionId))
      if (message !== undefined) return this.shutdown(message)
    }
    // The last reply owed may not be a ReadyForQuery (an extended-protocol batch without Sync), and
    // a COPY FROM STDIN may have started since the end came.
    if (this.closing) this.continueShutdown()
  }

  /**
   * A read into the upstream's kept buffer (`UpstreamReader`): everything the chunk produced has
   * been written by the time this returns, and the framer copies what it keeps, so the only view
   * left is a client write the kernel did not take at once (still queued or in flight).
   */
  private readonly onUpstreamRead = (chunk: Buffer): boolean => {
    this.onUpstreamData(chunk)
    return this.client.writableLength > 0
  }

  // ---- the session begins -------------------------------------------------------------------

  private begin(up: UpstreamSession, startupParams: Record<string, string>): void {
    if (this.phase === 'closed') {
      up.socket.destroy()
      return
    }
    this.upstream = {socket: up.socket, processId: up.processId, secretKey: up.secretKey}
    this.startupParams = startupParams
    this.phase = 'ready'
    this.state.txStatus = up.status
    for (const [name, value] of up.parameters) this.state.parameters.set(name, value)
    this.cancelKey = this.env.issueCancelKey(this)
    this.session = {
      sessionId: this.sessionId,
      connectionId: this.id,
      database: this.env.target.database,
      user: sessionUser(up.parameters, this.env.target.user),
      clientUser: this.startupParams.user ?? '',
      applicationName: this.startupParams.application_name,
      clientAddress: this.clientAddress,
      startedAt: new Date(),
    }
    // Before anything of the login reaches the client: the hooks learn what ran at the login.
    this.safely(() => this.env.hooks.onSessionStart?.(this.session!))
    const out: Buffer[] = [encodeAuthOk()]
    // What the login reports and notices may come from code no statement names (a login event
    // trigger's set_config or RAISE, which may print any value it read): they pass the filter for
    // what arrives outside any statement.
    const outside = this.sessionFilter
    for (const [name, value] of up.parameters) out.push(encodeParameterStatus(name, outside?.parameterStatus?.(name, value) ?? value))
    for (const n of up.notices) out.push(encodeNotice(outside?.notice?.(n) ?? n))
    out.push(encodeBackendKeyData(this.cancelKey.processId, this.cancelKey.secretKey))
    out.push(encodeReadyForQuery(up.status))
    this.client.write(Buffer.concat(out))
    const socket = up.socket
    if (!up.reader) socket.on('data', (chunk: Buffer) => this.onUpstreamData(chunk))
    socket.on('error', () => this.upstreamLost())
    socket.on('close', () => this.upstreamLost())
    socket.on('drain', () => this.fromClient.resumeReading())
    if (up.leftover.length > 0) this.onUpstreamData(up.leftover)
    up.reader?.attach(this.onUpstreamRead)
    if (this.closing) this.maybeFinishShutdown()
    this.client.resume()
  }

  // ---- bytes out ----------------------------------------------------------------------------

  /**
   * Replies owed when the upstream's writes were last flushed. Between flushes the client's
   * messages only add to what is owed (and the server's replies, handled apart, only take from it),
   * so the owed entries past this count are the messages not written yet.
   */
  private owedWhenFlushed = 0
  rowsOut: Run | undefined = undefined
  /** What the client's last messages sent upstream was dropped (the connection is failing): they never reach the server. */
  private upstreamDropped = false

  /** The session's record could not be written: only the refusal that ends the connection still goes out. */
  private unrecordable = false

  /**
   * Fails closed when the audit log cannot be written (a full disk, a file-size limit, an I/O
   * error): the replies whose events are only in memory are withheld, and the connection ends, since
   * a client that saw them would hold results a killed tunnel leaves no trace of. The events stay
   * queued and the recorder keeps retrying; the operator's log has the file and the cause.
   */
  private endUnrecorded(cause: Error): void {
    this.unrecordable = true
    this.clientOut.clear()
    this.rowsOut = undefined
    this.env.log('error', `connection ${this.id}: ${cause.message}; the connection is closed and its replies withheld`)
    this.dropUpstreamOutput()
    const code = (cause.cause as NodeJS.ErrnoException | undefined)?.code
    this.refuse({
      severity: 'FATAL',
      code: code === 'ENOSPC' || code === 'EDQUOT' ? '53100' : '58030',
      message: `dbgate: the session's audit log could not be written (${code ?? 'write failed'}), so the replies to your last messages are withheld and the connection is closed`,
      detail: 'Statements already sent may have run on the server; their record is kept in memory and written as soon as the disk allows.',
      hint: 'Tell whoever runs this tunnel: its spool directory (DBGATE_SPOOL_DIR) needs space or repair. Reconnect once it is fixed.',
    })
  }

  /** Drops what is to be written upstream: the connection ends, and nothing of the chunk that ended it runs. */
  private dropUpstreamOutput(): void {
    this.upstreamOut.clear()
    this.upstreamDropped = true
  }

  /** Writes what the last chunk produced, one write per side. */
  flush(): void {
    // Once the upstream is ended (the connection closed) nothing more is written to it: a write
    // after its end would fail and destroy it before the server has finished with it.
    if (this.upstream && !this.closingUpstream) {
      const out = this.upstreamOut.take()
      // A closed connection must not pause its client: an adopted socket (`adoptClientSocket`)
      // paused never reads the end of the stream, and so would never be destroyed.
      if (out !== undefined && !writeAll(this.upstream.socket, out) && this.phase !== 'closed') this.client.pause()
    } else {
      this.upstreamOut.clear()
    }
    if (!this.upstreamDropped) this.owedWhenFlushed = this.state.pendingCount
    if (!this.clientOut.empty && this.phase !== 'closed') {
      if (this.rowsOut !== undefined) this.announceRows(this.rowsOut)
      const release = this.env.hooks.beforeRelease
      if (release && !this.unrecordable) {
        const unwritten = this.safely(() => release(this.sessionId))
        if (unwritten !== undefined) return this.endUnrecorded(unwritten)
      }
      if (!writeAll(this.client, this.clientOut.take()!)) this.upstream?.socket.pause()
    } else {
      this.clientOut.clear()
    }
  }

  /**
   * Rows of a statement still running are about to reach the client: recorded only at its end, it
   * would leave no trace if the tunnel were killed first (a read with a pg_sleep after its rows).
   */
  private announceRows(run: Run): void {
    this.rowsOut = undefined
    if (run.finished || run.rowsAnnounced) return
    run.rowsAnnounced = true
    const hook = this.env.hooks.onRowsReleased
    if (hook) this.safely(() => hook(statementEvent(this.sessionId, this.id, run, 'unanswered')))
  }

  finishRun(run: Run, outcome: StatementEvent['outcome']): void {
    if (run.finished) return
    run.finished = true
    const hook = this.env.hooks.onStatement
    if (!hook) return
    const event = statementEvent(this.sessionId, this.id, run, outcome)
    this.safely(() => hook(event))
  }

  // ---- endings ------------------------------------------------------------------------------

  /** Ends this connection with an error the client can read, leaving the tunnel untouched. */
  refuse(error: PgNoticeFields): void {
    if (this.phase === 'closed') return
    this.toClient.push(encodeError(error))
    this.flush()
    this.client.end()
    this.close(error.message)
  }

  fail(error: unknown): void {
    const e = error as Error
    const sqlstate = error instanceof ProtocolError ? error.sqlstate : 'XX000'
    this.env.log('warn', `connection ${this.id}: ${e instanceof ProtocolError ? 'protocol error' : 'internal error'}: ${e.message}`)
    this.dropUpstreamOutput()
    this.refuse({severity: 'FATAL', code: sqlstate, message: `dbgate: ${e instanceof ProtocolError ? 'protocol violation' : 'internal error'}: ${e.message}`})
  }

  private upstreamLost(): void {
    if (this.phase === 'closed' || this.closingUpstream) return
    this.refuse({
      severity: 'FATAL',
      code: '08006',
      message: 'dbgate: the connection to the upstream database was lost',
      hint: 'The server may have restarted; reconnect to start a new session through the same tunnel.',
    })
  }

  /** Stops after in-flight work finishes (or at once when idle). */
  shutdown(message?: string): void {
    this.closing = true
    if (message) this.shutdownMessage = message
    if (this.phase !== 'ready') {
      this.refuse({severity: 'FATAL', code: '57P01', message: this.shutdownMessage})
      return
    }
    // A statement waiting for its verdict (for a reviewer, above all) has not reached the server, so
    // it is not in flight: approved after this moment it would run for an identity whose session has
    // ended (its token expired, maxSessionDuration), so it is withdrawn and refused now.
    this.fromClient.withdrawVerdict(`the session is ending: ${this.shutdownMessage.replace(/^dbgate: /, '')}`)
    this.continueShutdown()
  }

  maybeFinishShutdown(): void {
    if (!this.idle) return this.flushAtEnd()
    this.refuse({severity: 'FATAL', code: '57P01', message: this.shutdownMessage})
  }

  /** `pendingCount` when `flushAtEnd` last sent a Flush. */
  private flushedAtPending = -1

  /**
   * Past the end, the client's messages are dropped, its Sync too, and the server sends what it
   * owes for an extended-protocol pipeline only at a Sync or a Flush: without a Flush the session
   * would wait for those replies for ever (a Parse sent on once its verdict came, its Bind, Execute
   * and Sync dropped). Not a Sync, which would commit what the client did not ask to commit: the
   * transaction ends with the session. One Flush for each change in what is owed.
   */
  private flushAtEnd(): void {
    const pending = this.state.pendingCount
    if (pending === 0 || pending === this.flushedAtPending || this.phase !== 'ready' || this.state.copyIn) return
    this.flushedAtPending = pending
    this.toUpstream.push(FLUSH)
    this.flush()
  }

  /**
   * A CancelRequest for this session: withdraws a statement still waiting for its verdict, or
   * asks the upstream to cancel what it is running.
   */
  cancel(): Promise<void> {
    // A query of the tunnel's own may be what the verdict waits for, and it may wait itself (for a
    // lock another session holds on a catalog it reads): withdrawn alone, the client would wait with it.
    const own = this.ownQuery !== undefined
    if (this.fromClient.withdrawVerdict() && !own) return Promise.resolve()
    const up = this.upstream
    if (!up) return Promise.resolve()
    return cancelUpstream(this.env.target, up.processId, up.secretKey).catch((e: Error) => {
      this.env.log('warn', `connection ${this.id}: cancel request to the upstream failed: ${e.message}`)
    })
  }

  /**
   * The session's end is past and its statement ran on past the grace: the client is told why and
   * closed, and the server session is ended, not cancelled. A CancelRequest stops only the statement
   * running now, and the server would go on to the statements the client pipelined behind it before
   * the end (one each cancel, minutes of them), each running for an identity whose access has ended.
   */
  async endPastGrace(): Promise<'ended' | 'cancelled' | 'idle'> {
    const up = this.upstream
    const busy = up !== undefined && !up.socket.destroyed && this.state.pendingCount > 0
    this.fromClient.withdrawVerdict(`the session is ending: ${this.shutdownMessage.replace(/^dbgate: /, '')}`)
    this.refuse({severity: 'FATAL', code: '57P01', message: this.shutdownMessage})
    if (!busy) return 'idle'
    return this.endServerSession(up)
  }

  /**
   * Ends the server session of `up` with pg_terminate_backend, for the backend whose pid and
   * client port are this connection's; where that backend cannot be reached (behind a pooler),
   * cancels its statement instead.
   */
  private async endServerSession(up: Pick<UpstreamSession, 'processId' | 'secretKey'> & {socket: net.Socket}): Promise<'ended' | 'cancelled'> {
    const ended = await terminateUpstream(this.env.target, up.processId, up.socket.localPort).catch((e: Error) => {
      this.env.log('warn', `connection ${this.id}: could not end its server session (pg_terminate_backend): ${e.message}; cancelling its statement instead`)
      return undefined
    })
    if (ended) return 'ended'
    if (ended === false)
      this.env.log('warn', `connection ${this.id}: its server session was not ended (no backend ${up.processId} reached from this connection's port, as behind a pooler): cancelling its statement instead`)
    await cancelUpstream(this.env.target, up.processId, up.secretKey).catch((e: Error) => {
      this.env.log('warn', `connection ${this.id}: cancel request to the upstream failed: ${e.message}`)
    })
    return 'cancelled'
  }

  close(reason: string): void {
    if (this.phase === 'closed') return
    this.phase = 'closed'
    this.settleAnswered(new Error(`the connection ended (${reason})`))
    this.ownQuery?.reject(new Error(`the connection ended (${reason})`))
    // An open server session still counts against tunnel.maxUpstreamSessions until the server has
    // closed it: a client that hangs up on a running statement leaves it running (up to the linger
    // below), and hanging up again and again would open sessions past the cap.
    const slot = this.upstream && !this.upstream.socket.destroyed ? this.startup.takeSlot() : undefined
    this.startup.stop()
    this.fromClient.stop()
    // Replies still owed: the server is running something of this session, and goes on with it
    // (to its COMMIT) until it reads the Terminate behind it.
    const busy = this.state.pendingCount > 0
    // A statement the server already answered with an error ended with that error, even when the
    // client hung up before its ReadyForQuery came (pg settles a query on the ErrorResponse). One
    // it has not answered yet runs on to its end (its COMMIT too), unless it was never sent:
    // recorded as `aborted` (never ran) it would hide a write that happened.
    for (const {run, sent} of this.state.drain(this.upstreamDropped || !this.upstreamOut.empty ? this.owedWhenFlushed : Infinity)) this.finishRun(run, run.error ? (run.denied ? 'rejected' : 'error') : sent ? 'unanswered' : 'aborted')
    // Binds the server completed in a pipeline whose end the client did not wait for: planned, so recorded.
    this.fromServer.recordUnexecuted()
    let upstreamOpen = false
    if (this.upstream) {
      this.closingUpstream = true
      const s = this.upstream.socket
      if (!s.destroyed) {
        upstreamOpen = true
        s.once('close', () => {
          if (slot) this.safely(slot)
          this.sessionEnded()
          this.safely(() => this.env.hooks.onUpstreamClosed?.(this.id))
        })
        s.end(Buffer.from([Frontend.Terminate, 0, 0, 0, 4]))
        // Its replies are read and dropped, so that the server is never stuck writing them.
        s.resume()
      }
      const up = this.upstream
      setTimeout(() => this.endLingering(s, busy ? up : undefined), busy ? (this.env.busyUpstreamLingerMs ?? BUSY_UPSTREAM_LINGER_MS) : 1000).unref()
    }
    if (!this.client.destroyed) {
      this.client.end()
      // A paused adopted socket does not read, so it would never see the client's end and close.
      if (this.clientReader) this.client.resume()
      setTimeout(() => this.client.destroy(), 1000).unref()
    }
    if (this.cancelKey) this.env.releaseCancelKey(this.cancelKey.processId)
    if (this.session) {
      const session = this.session
      this.safely(() => this.env.hooks.onSessionEnd?.(session, reason))
    }
    this.safely(() => this.env.hooks.onConnectionClosed?.(this.id))
    if (!upstreamOpen) {
      if (slot) this.safely(slot)
      this.safely(() => this.env.hooks.onUpstreamClosed?.(this.id))
    }
    for (const fn of this.closeListeners.splice(0)) this.safely(fn)
    if (!upstreamOpen) this.sessionEnded()
  }

  /**
   * A closed connection's server session has not ended by its deadline. One still running what it
   * was sent is ended on the server first: dropped unseen, it would run on (a `pg_sleep`, a lock
   * wait) with its slot given back, so clients hanging up again and again would pile up sessions on
   * the server. Ended, not cancelled: a cancel stops only the statement running now, and the server
   * would go on to each statement the client pipelined behind it, long after the client left.
   */
  private endLingering(socket: net.Socket, busy: Pick<UpstreamSession, 'processId' | 'secretKey'> | undefined): void {
    if (socket.destroyed) return
    if (!busy) return void socket.destroy()
    this.env.log('warn', `connection ${this.id}: the server still runs what this connection sent before its client left; ending its server session`)
    void this.endServerSession({...busy, socket}).finally(() => setTimeout(() => socket.destroy(), 1000).unref())
  }

  private sessionEnded(): void {
    this.gone = true
    // Run from the upstream socket's 'close' event: a listener that throws must not take the process down.
    for (const fn of this.endListeners.splice(0)) this.safely(fn)
  }

  /** Hooks must never take the tunnel down; a failing one is logged. */
  safely<T>(fn: () => T): T | undefined {
    try {
      return fn()
    } catch (error) {
      this.env.log('error', `connection ${this.id}: a hook failed: ${(error as Error).message}`)
      return undefined
    }
  }
}

/**
 * The database user a session runs as: the server's report of it at login (session_authorization),
 * else the user the tunnel logged in as. Never the startup packet's user, which only the tunnel
 * reads: a client could name any role there, and the session would be recorded as that role.
 */
export function sessionUser(reported: readonly (readonly [string, string])[], loggedInAs: string): string {
  for (const [name, value] of reported) if (name === 'session_authorization') return value
  return loggedInAs
}

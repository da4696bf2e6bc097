/**
 * The gateway's PostgreSQL listener: TLS first (src/proxy/client-tls.ts), then a token sign-in
 * that decides each connection's target and pipeline, then the same connection machinery as the
 * local tunnel. Unlike the tunnel it may listen on any address: it is a server.
 */
import net from 'node:net'
import type tls from 'node:tls'
import {loadParser} from '../sql/parser.js'
import {acceptClientTls} from '../proxy/client-tls.js'
import {ClientConnection, NO_TARGET_YET, type ConnectionEnv, type TokenAuthRequest, type TokenAuthResult} from '../proxy/connection.js'
import {ConnectionRegistry, type ConnectionRegistryOptions} from '../proxy/connection-registry.js'
import {DEFAULT_MAX_MESSAGE_SIZE} from '../proxy/tunnel.js'
import {DEFAULT_TUNNEL_LIMITS} from '../proxy/limits.js'
import type {GatewayObserver} from './observer.js'
import {PendingSignIns} from './session-caps.js'
import {addressOf, RepeatLimitedLog} from './log-limits.js'
import type {PeerCancels} from './peer-cancels.js'
import {formatDuration} from '../util/duration.js'

const SHUTDOWN_MESSAGE = 'terminating connection: the dbgate gateway is shutting down; reconnect to reach another replica'

export interface GatewayServerOptions {
  listen: {host: string; port: number}
  /** The certificate in force; read per connection, so a reload (SIGHUP) applies to new connections. */
  secureContext: () => tls.SecureContext
  /**
   * Signs the connection in and decides what it runs. `connection` lets the caller tie the session's
   * life (its lease on a pipeline, its maximum duration) to the connection's.
   */
  authenticate: (request: TokenAuthRequest, connection: GatewayConnection) => Promise<TokenAuthResult>
  observer?: GatewayObserver
  /** Verifying the token and the upstream login together must finish within this, from the token's arrival. */
  authTimeoutMs?: number
  /**
   * The TLS handshake, the startup packet and the token must arrive within this of the connection
   * opening (server.signInTimeout; default: authTimeoutMs).
   */
  signInTimeoutMs?: number
  /** Connections not signed in yet, in all and from one source address (server.maxPendingSignIns, …PerAddress). */
  pendingSignIns?: {max: number; maxPerAddress: number}
  maxMessageSize?: number
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
  /**
   * Where the lines a stranger can cause once per connection go (refusals, failed handshakes, cancel
   * requests with a wrong key, anything a connection logs before it signs in); default one of its own.
   */
  repeats?: RepeatLimitedLog
  /** A `--workers` worker: listen on the port the cluster's workers share. */
  shared?: boolean
  /** Cancel requests whose key another worker issued go there (src/gateway/workers.ts). */
  cancelElsewhere?: ConnectionRegistryOptions['elsewhere']
  /** The other replicas (`server.peers`): a cancel key no session here holds is passed on to them. */
  peers?: PeerCancels
}

/** What sign-in may do with the connection it is deciding about. */
export interface GatewayConnection {
  onClose(fn: () => void): void
  /** `fn` runs once the connection and its server session have both ended (a statement the client left may run on). */
  onSessionGone(fn: () => void): void
  /**
   * Ends the session once its statement in flight (if any) has finished, telling the client why.
   * With `cutShortAfterMs`, a statement still running that long after is cancelled, and the
   * connection closed if it is still open 2 s later (a client reading its rows slowly).
   */
  end(message: string, cutShortAfterMs?: number): void
}

export class GatewayServer {
  private readonly server: net.Server
  private readonly registry: ConnectionRegistry
  private readonly handshakes = new Set<net.Socket>()
  private readonly pending: PendingSignIns | undefined
  private readonly repeats: RepeatLimitedLog
  private address_: {host: string; port: number} | undefined
  private closed = false
  private listenerClosed?: Promise<void>
  private finished = false
  /**
   * What every connection calls back into, made once for all of them rather than per connection
   * (its log and cancel requests are per connection: they name its address).
   */
  private readonly calls: Pick<ConnectionEnv, 'applicationName' | 'issueCancelKey' | 'releaseCancelKey'>

  constructor(private readonly options: GatewayServerOptions) {
    this.registry = new ConnectionRegistry((level, message) => this.log(level, message), {elsewhere: options.cancelElsewhere})
    this.calls = {
      applicationName: (app) => (app ? `dbgate/${app}` : 'dbgate'),
      issueCancelKey: (c) => this.registry.issueCancelKey(c),
      releaseCancelKey: (pid) => this.registry.releaseCancelKey(pid),
    }
    this.pending = options.pendingSignIns ? new PendingSignIns(options.pendingSignIns) : undefined
    this.repeats = options.repeats ?? new RepeatLimitedLog((level, message) => this.log(level, message))
    this.server = net.createServer((socket) => this.accept(socket))
    this.server.on('error', (e) => this.log('error', `listener error: ${e.message}`))
  }

  get address(): {host: string; port: number} {
    if (!this.address_) throw new Error('the gateway is not listening yet')
    return this.address_
  }

  /** Client connections past TLS (signing in, or in session). */
  get connectionCount(): number {
    return this.registry.connections.size
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.options.log?.(level, message)
  }

  async listen(): Promise<{host: string; port: number}> {
    await loadParser()
    const {host, port} = this.options.listen
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      // Not exclusive in a cluster worker: the workers share the primary's listening socket.
      this.server.listen({host, port, exclusive: !this.options.shared}, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    const a = this.server.address() as net.AddressInfo
    this.address_ = {host: a.address, port: a.port}
    return this.address_
  }

  private accept(raw: net.Socket): void {
    if (this.closed) {
      raw.destroy()
      return
    }
    const clientAddress = raw.remoteAddress ? `${raw.remoteAddress}:${raw.remotePort}` : 'unknown'
    // Refused before TLS, so a flood of connections costs a socket each and no handshake.
    const slot = this.pending?.take(raw.remoteAddress ?? 'unknown')
    if (slot && !slot.ok) {
      raw.destroy()
      this.options.observer?.signInFailed('too-many-pending')
      this.repeats.write('warn', `connections refused over ${slot.cap}`, addressOf(clientAddress), `refused a connection from ${clientAddress}: ${slot.max} connection(s) ${slot.cap === 'server.maxPendingSignIns' ? 'in all' : 'from its address'} have not signed in yet (${slot.cap})`)
      return
    }
    const signedIn = slot?.release ?? (() => {})
    raw.once('close', signedIn)
    const signInTimeoutMs = this.options.signInTimeoutMs ?? this.options.authTimeoutMs ?? DEFAULT_TUNNEL_LIMITS.authTimeoutMs
    const signInDeadline = {at: Date.now() + signInTimeoutMs, ms: signInTimeoutMs, setting: 'server.signInTimeout'}
    this.handshakes.add(raw)
    raw.setNoDelay(true)
    void acceptClientTls(raw, {
      secureContext: this.options.secureContext,
      timeoutMs: signInTimeoutMs,
      cancel: (pid, key, fromPeer) => this.cancel(pid, key, clientAddress, fromPeer),
      refused: (reason, detail) => {
        this.options.observer?.signInFailed(reason)
        this.repeats.write('warn', `connections refused before TLS (${reason})`, addressOf(clientAddress), `refused a connection from ${clientAddress} before TLS: ${detail}`)
      },
    }).then((accepted) => {
      this.handshakes.delete(raw)
      if (!accepted) return
      if (this.closed) {
        accepted.socket.destroy()
        return
      }
      this.open(accepted.socket, clientAddress, signInDeadline, signedIn)
    })
  }

  private open(socket: tls.TLSSocket, clientAddress: string, signInDeadline: NonNullable<ConnectionEnv['signInDeadline']>, signedIn: () => void): void {
    let conn: ClientConnection | undefined
    let signedInYet = false
    const from = addressOf(clientAddress)
    const handle: GatewayConnection = {
      onClose: (fn) => conn!.onClose(fn),
      onSessionGone: (fn) => conn!.onSessionGone(fn),
      end: (message, cutShortAfterMs) => this.endSession(conn!, message, cutShortAfterMs),
    }
    conn = new ClientConnection(socket, {
      target: NO_TARGET_YET,
      auth: {
        method: 'token',
        authenticate: async (request) => {
          const result = await this.options.authenticate(request, handle)
          // Signed in: the connection no longer counts against the caps on those that have not.
          if (result.ok) {
            signedInYet = true
            signedIn()
          }
          return result
        },
      },
      hooks: {},
      clientAddress,
      maxMessageSize: this.options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
      authTimeoutMs: this.options.authTimeoutMs,
      signInDeadline,
      applicationName: this.calls.applicationName,
      issueCancelKey: this.calls.issueCancelKey,
      releaseCancelKey: this.calls.releaseCancelKey,
      // A CancelRequest sent after TLS, and what the connection logs before it signs in (a
      // protocol error, a sign-in that timed out): a stranger's, so counted by their address.
      cancelByKey: (pid, key) => this.cancel(pid, key, clientAddress, false),
      log: (level, message) => (signedInYet ? this.log(level, message) : this.repeats.write(level, 'lines about connections not signed in', from, `${message} (from ${clientAddress})`)),
    })
    this.registry.add(conn)
  }

  /**
   * Stops accepting, lets statements in flight finish for up to `graceMs`, then cancels what still
   * runs and closes every connection (what SIGTERM's drain builds on).
   */
  async close(graceMs = 5000, message = SHUTDOWN_MESSAGE): Promise<void> {
    if (this.finished) return
    this.finished = true
    const listenerClosed = this.stopAccepting()
    await this.registry.drain(graceMs, message, 'gateway shut down', true)
    if (!this.options.repeats) this.repeats.close()
    await listenerClosed
  }

  private endSession(conn: ClientConnection, message: string, cutShortAfterMs: number | undefined): void {
    conn.shutdown(message)
    if (cutShortAfterMs === undefined || conn.closed) return
    const cut = setTimeout(() => {
      if (conn.closed) return
      this.log('warn', `connection ${conn.id}: its session ended ${formatDuration(cutShortAfterMs)} ago and its statement still runs: closing it and ending its server session (server.runningStatementGrace)`)
      void conn.endPastGrace()
    }, Math.min(cutShortAfterMs, 2 ** 31 - 1))
    cut.unref()
    conn.onClose(() => clearTimeout(cut))
  }

  /** A CancelRequest another worker received for a key this one issued (`fromPeer`: another replica passed it on). */
  cancelByKey(processId: number, secretKey: number, fromPeer = false): void {
    this.cancel(processId, secretKey, 'another worker', fromPeer)
  }

  /** Anyone may send a CancelRequest, in the clear and without signing in, so its lines are counted by source. */
  private cancel(processId: number, secretKey: number, clientAddress: string, fromPeer: boolean): void {
    const outcome = this.registry.cancelByKey(processId, secretKey, fromPeer)
    if (outcome === 'unknown-key' && fromPeer) {
      // Every replica but the one holding the session gets each passed-on key: nothing to report.
      return
    }
    if (outcome === 'unknown-key' && this.options.peers) {
      this.repeats.write('info', 'cancel requests passed on to peers', addressOf(clientAddress), `a cancel request from ${clientAddress} with a key no session here holds: passed on to the peers (server.peers)`)
      void this.options.peers.forward(processId, secretKey)
      return
    }
    if (outcome === 'unknown-key') this.repeats.write('warn', 'cancel requests with an unknown key', addressOf(clientAddress), `ignored a cancel request with an unknown key from ${clientAddress}`)
    else if (outcome !== 'cancelled') this.repeats.write('info', 'cancel requests handed to another worker', addressOf(clientAddress), `a cancel request for a key of worker ${outcome.handedTo}: handed to it (from ${clientAddress})`)
  }

  /** New connections are refused from now on; those open are left alone. */
  stopAccepting(): Promise<void> {
    if (!this.listenerClosed) {
      this.closed = true
      this.listenerClosed = new Promise<void>((resolve) => this.server.close(() => resolve()))
      for (const s of this.handshakes) s.destroy()
    }
    return this.listenerClosed
  }

  /**
   * SIGTERM's drain: stops accepting at once, lets open sessions go on (a transaction included)
   * until they end or `timeoutMs` passes, then ends those left with a FATAL that says why, after
   * their statement in flight (cancelled if it runs on for another `graceMs`).
   */
  async drain(timeoutMs: number, graceMs = 2000, message = SHUTDOWN_MESSAGE): Promise<void> {
    void this.stopAccepting()
    const open = [...this.registry.connections]
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(open.map((c) => new Promise<void>((resolve) => c.onClose(resolve)))),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs)
      }),
    ])
    clearTimeout(timer)
    const left = this.registry.connections.size
    if (left > 0) this.log('warn', `drain deadline (${timeoutMs} ms) reached: ending ${left} session(s) still open`)
    await this.close(graceMs, message)
  }
}

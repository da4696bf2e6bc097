import {randomBytes} from 'node:crypto'
import {chmod, lstat, rm} from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import type {AssumedSetting} from '../policy/assumed-settings.js'
import {loadParser} from '../sql/parser.js'
import {makeScramVerifier} from '../wire/scram.js'
import {adoptClientSocket} from './client-socket.js'
import {ClientConnection, type ConnectionEnv, type TunnelAuth} from './connection.js'
import {ConnectionRegistry} from './connection-registry.js'
import {DEFAULT_TUNNEL_LIMITS, type TunnelLimits} from './limits.js'
export {DEFAULT_TUNNEL_LIMITS, type TunnelLimits} from './limits.js'
import type {ProxyHooks} from './seam.js'
import {UpstreamGate, type SessionGate} from './upstream-gate.js'
import {isLoopbackHost, loopbackAddressOf} from '../util/loopback.js'
import {sharedDirectoryProblem} from '../util/private-dir.js'
import type {UpstreamTarget} from './upstream.js'

export type TunnelListen =
  | {kind: 'tcp'; host: string; port: number; allowNonLoopback?: boolean}
  /** A directory (the socket becomes DIR/.s.PGSQL.<port>, as libpq expects) or a full socket path. */
  | {kind: 'unix'; path: string; port?: number}

export interface TunnelOptions {
  target: UpstreamTarget
  listen: TunnelListen
  hooks?: ProxyHooks
  /** The secret clients present as their password; random when omitted. */
  secret?: string
  authMethod?: 'scram-sha-256' | 'cleartext'
  maxMessageSize?: number
  /** Limits before and around authentication; each defaults as documented in docs/tunnel.md. */
  limits?: Partial<TunnelLimits>
  /** How long a closed connection's busy server session may run on before it is cancelled (10 minutes; tests shorten it). */
  busyUpstreamLingerMs?: number
  /**
   * Upstream sessions counted with others' (the gateway's per-target budget), instead of a gate of
   * this tunnel's own `limits.maxUpstreamSessions`.
   */
  upstreamGate?: SessionGate
  /** Settings the analysis depends on (default: policy's ASSUMED_SETTINGS); checked before each session and watched during it. */
  assumedSettings?: readonly AssumedSetting[]
  /** What the upstream sees as application_name. */
  applicationName?: (clientApplicationName: string | undefined) => string
  /**
   * Where every client of this tunnel is recorded as connecting from, when the listener cannot tell:
   * the gateway's in-process tunnel for a remote MCP session listens on a private unix socket, and
   * the address that matters is the agent's on the gateway's HTTPS API.
   */
  clientAddress?: string
  log?: (level: 'info' | 'warn' | 'error', message: string) => void
}

/** What `Tunnel.recordFor` did with an event. */
export type RecordedFor = 'recorded' | 'session-ended' | 'unrecorded'

export class TunnelConfigError extends Error {
  override name = 'TunnelConfigError'
}

export interface TunnelAddress {
  host: string
  port: number
  /** Set for unix sockets: the socket file. */
  socketPath?: string
  /** What libpq's `host` must be: the address, or the socket's directory. */
  pgHost: string
}


export const DEFAULT_MAX_MESSAGE_SIZE = 1024 ** 3

/**
 * Connections past tunnel.maxClientConnections are still read up to their startup packet, to tell
 * them why they are refused (and to serve cancel requests); past this many more, the listener drops
 * them at once, so a flood cannot hold more descriptors than that.
 */
const REFUSAL_HEADROOM = 64

/**
 * The local listener. Clients prove they hold the tunnel's secret; each gets its own upstream
 * session; one client's failure never touches another's.
 */
export class Tunnel {
  readonly secret: string
  private readonly auth: TunnelAuth
  private readonly server: net.Server
  private readonly registry: ConnectionRegistry
  /** Connections within tunnel.maxClientConnections (the rest are being refused). */
  private admitted = 0
  private readonly limits: TunnelLimits
  private readonly gate: SessionGate
  private address_: TunnelAddress | undefined
  private closed = false
  /** What every connection calls back into, made once for all of them rather than per connection. */
  private readonly calls: Pick<ConnectionEnv, 'applicationName' | 'issueCancelKey' | 'releaseCancelKey' | 'cancelByKey' | 'log'>

  constructor(private readonly options: TunnelOptions) {
    this.secret = options.secret ?? randomBytes(24).toString('base64url')
    this.auth = {method: options.authMethod ?? 'scram-sha-256', secret: this.secret, verifier: makeScramVerifier(this.secret)}
    this.limits = {...DEFAULT_TUNNEL_LIMITS, ...options.limits}
    this.registry = new ConnectionRegistry((level, message) => this.log(level, message))
    this.gate = options.upstreamGate ?? new UpstreamGate({max: this.limits.maxUpstreamSessions, queueTimeoutMs: this.limits.upstreamQueueTimeoutMs})
    this.calls = {
      applicationName: options.applicationName ?? ((app) => (app ? `dbgate/${app}` : 'dbgate')),
      issueCancelKey: (c) => this.registry.issueCancelKey(c),
      releaseCancelKey: (pid) => this.registry.releaseCancelKey(pid),
      cancelByKey: (pid, key) => {
        if (this.registry.cancelByKey(pid, key) === 'unknown-key') this.log('warn', 'ignored a cancel request with an unknown key')
      },
      log: (level, message) => this.log(level, message),
    }
    // Accepted paused: a plain client socket is handed to one that reads into a kept buffer (`adoptClientSocket`).
    this.server = net.createServer({pauseOnConnect: true}, (socket) => this.accept(socket))
    this.server.maxConnections = this.limits.maxClientConnections + REFUSAL_HEADROOM
    this.server.on('error', (e) => this.log('error', `listener error: ${e.message}`))
  }

  get address(): TunnelAddress {
    if (!this.address_) throw new Error('the tunnel is not listening yet')
    return this.address_
  }

  get connectionCount(): number {
    return this.registry.connections.size
  }

  /** Upstream sessions open or being opened, and clients waiting for one. */
  get upstreamSessions(): {inUse: number; queued: number} {
    return {inUse: this.gate.inUse, queued: this.gate.queued}
  }

  /**
   * Records an event of another kind in the log of the session a client of this tunnel holds, named
   * by the cancel key the tunnel gave it (BackendKeyData): what a program serving its clients itself
   * refused (the MCP tools' own refusals) belongs with that session's statements. `recorded` once it
   * is in the log; `session-ended` when that session can take no more (gone, ending, or its log full,
   * which ends it), so the caller records it in another; `unrecorded` when nothing is recorded here.
   */
  recordFor(key: {processId: number; secretKey: number}, type: string, payload: unknown): RecordedFor {
    const hooks = this.options.hooks
    if (!hooks?.recordEvent) return 'unrecorded'
    const conn = this.registry.connectionByKey(key.processId, key.secretKey)
    // A session already ending may have written its last event: what it is given now could be lost.
    if (!conn || conn.closed || conn.closing) return 'session-ended'
    // A log as large as one may be takes nothing more, and its session ends as after a statement:
    // otherwise a client that is refused over and over would grow it past what the readers read.
    const full = () => hooks.logFull?.(conn.sessionId)
    const before = full()
    if (before !== undefined) {
      conn.shutdown(before)
      return 'session-ended'
    }
    let recorded: boolean
    try {
      recorded = hooks.recordEvent(conn.sessionId, type, payload)
    } catch {
      // The session's log ended meanwhile (its end written as the client went).
      return 'session-ended'
    }
    const after = full()
    if (after !== undefined) conn.shutdown(after)
    return recorded ? 'recorded' : 'unrecorded'
  }

  /**
   * Ends every session once its statement in flight is over (at once when idle), with `message` as
   * the reason the client is told and the recording keeps: what serves the clients ended them, not
   * the clients, whose closing afterwards changes nothing.
   */
  endSessions(message: string): void {
    for (const conn of [...this.registry.connections]) conn.shutdown(message)
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.options.log?.(level, message)
  }

  async listen(): Promise<TunnelAddress> {
    // The protocol state reads PREPARE, DECLARE and their kin with the real parser from the first message on.
    await loadParser()
    const listen = this.options.listen
    if (listen.kind === 'tcp') {
      const host = listenAddress(listen.host, listen.allowNonLoopback)
      // A name (forced) counts as what it may resolve to: anywhere.
      if (net.isIP(host) === 0 || !isLoopbackHost(host)) {
        if (!listen.allowNonLoopback) {
          throw new TunnelConfigError(
            `refusing to listen on ${listen.host}: the tunnel binds to loopback only, so other machines cannot use your identity. Use --force-listen to override.`,
          )
        }
        this.log('warn', `listening on non-loopback address ${listen.host}: anyone who can reach it and knows the tunnel secret can use your identity`)
      }
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject)
        this.server.listen({host, port: listen.port, exclusive: true}, () => {
          this.server.off('error', reject)
          resolve()
        })
      })
      // Clients are told the address the listener holds, never a name they would resolve themselves.
      const a = this.server.address() as net.AddressInfo
      this.address_ = {host: a.address, port: a.port, pgHost: a.address}
      return this.address_
    }
    const port = listen.port ?? 5432
    const socketPath = /\.s\.PGSQL\.\d+$/.test(listen.path) ? listen.path : path.join(listen.path, `.s.PGSQL.${port}`)
    await checkSocketDirectory(path.dirname(socketPath))
    await removeStaleSocket(socketPath)
    // Create the socket already private: a chmod afterwards would leave a window open.
    const oldMask = process.umask(0o177)
    try {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject)
        this.server.listen({path: socketPath, exclusive: true}, () => {
          this.server.off('error', reject)
          resolve()
        })
      })
    } finally {
      process.umask(oldMask)
    }
    await chmod(socketPath, 0o600)
    const socketPort = Number(/\.s\.PGSQL\.(\d+)$/.exec(socketPath)![1])
    this.address_ = {host: path.dirname(socketPath), port: socketPort, socketPath, pgHost: path.dirname(socketPath)}
    return this.address_
  }

  private accept(accepted: net.Socket): void {
    if (this.closed) {
      accepted.destroy()
      return
    }
    const {socket, reader} = adoptClientSocket(accepted)
    const admitted = this.admitted < this.limits.maxClientConnections
    if (admitted) this.admitted++
    else this.log('warn', `refusing a client connection: the tunnel's cap of ${this.limits.maxClientConnections} (tunnel.maxClientConnections) is reached`)
    const conn: ClientConnection = new ClientConnection(socket, {
      target: this.options.target,
      auth: this.auth,
      hooks: this.options.hooks ?? {},
      maxMessageSize: this.options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
      authTimeoutMs: this.limits.authTimeoutMs,
      busyUpstreamLingerMs: this.options.busyUpstreamLingerMs,
      overCapacity: admitted ? undefined : {max: this.limits.maxClientConnections},
      upstreamGate: this.gate,
      assumedSettings: this.options.assumedSettings,
      applicationName: this.calls.applicationName,
      ...(this.options.clientAddress !== undefined ? {clientAddress: this.options.clientAddress} : {}),
      issueCancelKey: this.calls.issueCancelKey,
      releaseCancelKey: this.calls.releaseCancelKey,
      cancelByKey: this.calls.cancelByKey,
      log: this.calls.log,
    }, reader)
    this.registry.add(conn)
    conn.onClose(() => {
      if (admitted) this.admitted--
    })
  }

  /**
   * Stops accepting, lets in-flight statements finish for up to `graceMs`, then cancels what is
   * still running and closes every connection.
   */
  async close(graceMs = 5000, message?: string): Promise<void> {
    if (this.closed) return
    this.closed = true
    const listenerClosed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    await this.registry.drain(graceMs, message, 'tunnel shut down')
    await listenerClosed
    if (this.address_?.socketPath) await rm(this.address_.socketPath, {force: true})
    await this.options.hooks?.dispose?.()
  }
}

/**
 * The IP address to listen on for `--listen`. A name resolves to whatever DNS or /etc/hosts says,
 * and `localhost` to both ::1 and 127.0.0.1 on most machines: the listener holds one of them, the
 * same port of the other stays free for any local process, and clients told the name try both in
 * turn, so one that took it is asked for (and given) the tunnel's secret. `localhost` is therefore
 * 127.0.0.1, and any other name is refused unless non-loopback listening is forced, where the
 * person chose to let the resolver decide.
 */
function listenAddress(asked: string, forced: boolean | undefined): string {
  const host = loopbackAddressOf(asked.replace(/^\[(.*)\]$/, '$1'))
  if (net.isIP(host) !== 0 || forced) return host
  throw new TunnelConfigError(
    `refusing to listen on ${asked}: it is a name, not an IP address, and what it resolves to (DNS, /etc/hosts) would decide where the tunnel listens and where its clients connect. Give an address: --listen 127.0.0.1 (the default) or --listen ::1`,
  )
}

/**
 * Refuses a socket directory someone else could change: whoever may write to it (or to a directory
 * above it, or owns one of them) can move the tunnel's socket aside and put one of their own in its
 * place, and the person's clients then send their statements (and, asked for it in clear, the
 * tunnel's secret) to it. A sticky directory (as /tmp is) will do: others cannot remove what is ours.
 */
async function checkSocketDirectory(dir: string): Promise<void> {
  const problem = await sharedDirectoryProblem(dir, {stickyDirOk: true})
  if (problem === undefined) return
  const why = problem.startsWith('other users may write to it') ? `${problem} and put a socket of their own in the tunnel's place` : problem
  throw new TunnelConfigError(`refusing to listen on a unix socket in ${dir}: ${why}. Use a directory only you can write, e.g. --socket "$XDG_RUNTIME_DIR" or a new directory of mode 0700`)
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  try {
    const st = await lstat(socketPath)
    if (!st.isSocket()) throw new TunnelConfigError(`${socketPath} exists and is not a socket; refusing to replace it`)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
    throw error
  }
  // A live server there would answer; only a dead one's socket file may be replaced.
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({path: socketPath})
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
  if (alive) throw new TunnelConfigError(`${socketPath} is in use by a running server`)
  await rm(socketPath, {force: true})
}

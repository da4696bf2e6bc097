import type {X509Certificate} from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'
import {Backend, Frontend} from '../wire/codes.js'
import {Framer, ProtocolError, type Frame} from '../wire/framer.js'
import {decodeAuth, decodeBackendKeyData, decodeDataRow, decodeNotice, decodeParameterStatus, decodeReadyForQuery, decodeRowDescription, type NoticeFields} from '../wire/backend.js'
import {encodeCancelRequest, encodeQuery, encodeSslRequest, encodeStartup} from '../wire/frontend.js'
import {ScramClient, ScramError, md5Password} from '../wire/scram.js'
import {serialize} from 'pg-protocol'
import {isLoopbackHost, isSocketDirectory, loopbackAddressOf, socketPath} from '../util/loopback.js'
import {UpstreamReader} from './upstream-reader.js'

export type TlsMode = 'disable' | 'prefer' | 'require' | 'verify-full'

/** Where and how the tunnel reaches the real database. */
export interface UpstreamTarget {
  host: string
  port: number
  database: string
  user: string
  /** Resolved, or made for each login when it is short-lived (an RDS IAM token). */
  password?: string | (() => Promise<string>)
  tls: TlsMode
  /** PEM of the CA to trust (verify-full, or require to verify the chain). */
  tlsCa?: string
  connectTimeoutMs?: number
}

/** A failure reaching or logging into the upstream, phrased for the client. */
export class UpstreamError extends Error {
  override name = 'UpstreamError'
  constructor(
    message: string,
    readonly sqlstate: string,
    readonly upstream?: NoticeFields,
    /** The network failure behind it (ECONNREFUSED, ENOTFOUND, ETIMEDOUT, …), for explaining it to a person. */
    readonly errno?: string,
  ) {
    super(message)
  }
}

export interface UpstreamSession {
  socket: net.Socket
  parameters: [string, string][]
  processId: number
  secretKey: number
  status: 'I' | 'T' | 'E'
  notices: NoticeFields[]
  /** Bytes that arrived after ReadyForQuery, to be processed before anything else. */
  leftover: Buffer
  encrypted: boolean
  /**
   * Set when the session reads into a buffer it keeps (asked for with `ownReadBuffer`, and the
   * session is not encrypted): its bytes come through `reader.attach`, never as 'data' events.
   */
  reader?: UpstreamReader
  /** The rows of the preflight query, when one was asked for (column name → text value). */
  preflight?: Record<string, string | null>[]
}

export interface ConnectUpstreamOptions {
  /** A query run after login, before the session is handed over; its rows come back in `preflight`. */
  preflight?: string
  /** Aborting gives up the dial or login at once, closing the socket. */
  signal?: AbortSignal
  /**
   * Read an unencrypted session into a buffer it keeps (`UpstreamSession.reader`) rather than
   * through 'data' events. Encrypted sessions read through TLS as usual.
   */
  ownReadBuffer?: boolean
}

const needsPassword = (kind: string) => kind === 'cleartext' || kind === 'md5' || kind === 'sasl'

/** The password to send now: made at this moment when the target makes one per login. */
async function passwordFor(target: UpstreamTarget): Promise<string | undefined> {
  if (typeof target.password !== 'function') return target.password
  try {
    return await target.password()
  } catch (error) {
    throw new UpstreamError(`could not make the password for user "${target.user}": ${(error as Error).message}`, '08001')
  }
}

/** Whether the upstream is on this machine: a loopback host, or a unix socket directory. */
function isLocalUpstream(host: string): boolean {
  return isLoopbackHost(host) || isSocketDirectory(host)
}

/** Reads whole frames off a socket one at a time, for the short startup conversation. */
class FrameQueue {
  private frames: Frame[] = []
  private waiting: {resolve: (f: Frame) => void; reject: (e: Error) => void} | undefined
  private failure: Error | undefined
  private readonly framer = new Framer({maxMessageSize: 1 << 20})
  private readonly onData = (chunk: Buffer) => {
    try {
      this.framer.push(chunk, (f) => this.frames.push({code: f.code, body: Buffer.from(f.body), raw: Buffer.from(f.raw)}))
    } catch (error) {
      this.fail(error as Error)
    }
    this.wake()
  }
  private readonly onEnd = () => this.fail(new UpstreamError('the upstream server closed the connection during startup', '08006'))
  private readonly onError = (e: NodeJS.ErrnoException) => this.fail(new UpstreamError(`upstream connection failed: ${e.message}`, '08006', undefined, e.code))

  constructor(
    private readonly socket: net.Socket,
    private readonly reader?: UpstreamReader,
  ) {
    // The login's frames are copied (onData), so nothing holds the reader's buffer past a read.
    if (reader) reader.attach((chunk) => (this.onData(chunk), false))
    else socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    socket.on('close', this.onEnd)
    socket.on('error', this.onError)
  }

  private fail(error: Error) {
    this.failure ??= error
    this.wake()
  }

  private wake() {
    if (!this.waiting) return
    const w = this.waiting
    if (this.frames.length > 0) {
      this.waiting = undefined
      w.resolve(this.frames.shift()!)
    } else if (this.failure) {
      this.waiting = undefined
      w.reject(this.failure)
    }
  }

  next(): Promise<Frame> {
    return new Promise((resolve, reject) => {
      this.waiting = {resolve, reject}
      this.wake()
    })
  }

  /** Stops listening and returns bytes already received but not consumed. */
  detach(): Buffer {
    if (this.reader) this.reader.detach()
    else this.socket.off('data', this.onData)
    this.socket.off('end', this.onEnd)
    this.socket.off('close', this.onEnd)
    this.socket.off('error', this.onError)
    return Buffer.concat(this.frames.map((f) => f.raw))
  }
}

function connectTcp(target: UpstreamTarget, signal?: AbortSignal, reader?: UpstreamReader): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new UpstreamError('gave up connecting to the upstream', '08006'))
    // Dialled by name, localhost tries ::1 first, where anyone may listen at the port of a server on
    // 127.0.0.1 and be handed the login, and the password in clear (allowed to a loopback host).
    // A host that is a directory names a unix socket in it, as libpq reads it.
    const at = isSocketDirectory(target.host) ? {path: socketPath(target.host, target.port)} : {host: loopbackAddressOf(target.host), port: target.port}
    const where = 'path' in at ? at.path : `${target.host}:${target.port}`
    const socket = net.connect(reader ? {...at, onread: reader.onread} : at)
    const onAbort = () => {
      clearTimeout(timer)
      socket.destroy()
      reject(new UpstreamError('gave up connecting to the upstream', '08006'))
    }
    signal?.addEventListener('abort', onAbort, {once: true})
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 30_000)
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      socket.destroy()
      reject(new UpstreamError(`timed out connecting to the upstream ${where}`, '08001', undefined, 'ETIMEDOUT'))
    }, target.connectTimeoutMs ?? 10_000)
    socket.once('connect', () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      socket.removeAllListeners('error')
      resolve(socket)
    })
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      reject(new UpstreamError(`cannot reach the upstream ${where}: ${e.code ?? e.message}`, '08001', undefined, e.code))
    })
  })
}

function readOneByte(socket: net.Socket, reader?: UpstreamReader): Promise<number> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      if (reader) reader.detach()
      else socket.off('data', onData)
      socket.off('error', onError)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
    }
    const onData = (chunk: Buffer) => {
      cleanup()
      if (chunk.length > 1) {
        if (reader) reader.unshift(chunk.subarray(1))
        else socket.unshift(chunk.subarray(1))
      }
      resolve(chunk[0]!)
    }
    const onError = (e: NodeJS.ErrnoException) => {
      cleanup()
      reject(new UpstreamError(`upstream connection failed: ${e.message}`, '08006', undefined, e.code))
    }
    const onEnd = () => {
      cleanup()
      reject(new UpstreamError('the upstream server closed the connection during TLS negotiation', '08006'))
    }
    if (reader) reader.attach((chunk) => (onData(chunk), false))
    else socket.on('data', onData)
    socket.on('error', onError)
    socket.on('end', onEnd)
    socket.on('close', onEnd)
  })
}

/** How the upstream connection turned out: encrypted or not, and whether the server's certificate was checked against a CA. */
interface Negotiated {
  socket: net.Socket
  encrypted: boolean
  verified: boolean
}

async function negotiateTls(socket: net.Socket, target: UpstreamTarget, reader?: UpstreamReader): Promise<Negotiated> {
  if (target.tls === 'disable') return {socket, encrypted: false, verified: false}
  if (isSocketDirectory(target.host)) {
    // PostgreSQL offers no TLS on a unix socket; libpq does not ask.
    if (target.tls === 'prefer') return {socket, encrypted: false, verified: false}
    socket.destroy()
    throw new UpstreamError(`the upstream ${socketPath(target.host, target.port)} is a unix socket, which carries no TLS, but the target requires it (tls: ${target.tls})`, '08004')
  }
  socket.write(encodeSslRequest())
  const answer = await readOneByte(socket, reader)
  if (answer === 0x4e /* N */) {
    if (target.tls === 'prefer') return {socket, encrypted: false, verified: false}
    socket.destroy()
    throw new UpstreamError(`the upstream ${target.host}:${target.port} does not offer TLS, but the target requires it (tls: ${target.tls})`, '08004')
  }
  if (answer !== 0x53 /* S */) {
    socket.destroy()
    throw new UpstreamError(`unexpected answer 0x${answer.toString(16)} from the upstream to the TLS request`, '08P01')
  }
  const verify = target.tls === 'verify-full' || (target.tls === 'require' && !!target.tlsCa)
  const options: tls.ConnectionOptions = {
    socket,
    // Without `host`, Node checks the certificate against "localhost" when given a bare socket.
    host: target.host,
    servername: net.isIP(target.host) ? undefined : target.host,
    rejectUnauthorized: verify,
    ca: target.tlsCa,
  }
  // libpq's `require` checks the chain only when a CA is given and never the host name.
  if (target.tls !== 'verify-full') options.checkServerIdentity = () => undefined
  const secure = tls.connect(options)
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', () => {
      secure.removeAllListeners('error')
      resolve()
    })
    secure.once('error', (e) => {
      secure.destroy()
      reject(new UpstreamError(`TLS to the upstream ${target.host}:${target.port} failed: ${e.message}`, '08006'))
    })
    secure.once('close', () => reject(new UpstreamError(`TLS to the upstream ${target.host}:${target.port} failed: the connection closed`, '08006')))
  })
  secure.setNoDelay(true)
  return {socket: secure, encrypted: true, verified: verify}
}

/**
 * The certificate a PostgreSQL-protocol server presents over verify-full TLS (against `target.tlsCa`
 * and `target.host`), with no startup sent: how a gateway's client learns who holds the key the
 * gateway signs with. The connection is closed at once.
 */
export async function presentedCertificate(target: UpstreamTarget): Promise<X509Certificate> {
  const tcp = await connectTcp(target)
  const timeoutMs = target.connectTimeoutMs ?? 10_000
  const deadline = setTimeout(() => tcp.destroy(new Error(`timed out after ${timeoutMs} ms waiting for ${target.host}:${target.port} to complete TLS`)), timeoutMs)
  try {
    const {socket} = await negotiateTls(tcp, {...target, tls: 'verify-full'})
    const cert = (socket as tls.TLSSocket).getPeerX509Certificate()
    socket.destroy()
    if (!cert) throw new UpstreamError(`${target.host}:${target.port} presented no certificate`, '08006')
    return cert
  } finally {
    clearTimeout(deadline)
    tcp.destroy()
  }
}

/**
 * Opens an authenticated upstream session: TCP, TLS per the target's mode, startup, then
 * SCRAM-SHA-256, MD5 or cleartext (the last only over TLS or to a loopback host).
 */
export async function connectUpstream(target: UpstreamTarget, startupParams: Record<string, string>, opts: ConnectUpstreamOptions = {}): Promise<UpstreamSession> {
  const timeoutMs = target.connectTimeoutMs ?? 10_000
  const started = Date.now()
  // Only a session that may end up unencrypted reads into a kept buffer: over TLS, TLSWrap reads the socket.
  const reader = opts.ownReadBuffer && (target.tls === 'disable' || target.tls === 'prefer') ? new UpstreamReader() : undefined
  const tcp = await connectTcp(target, opts.signal, reader)
  let socket: net.Socket = tcp
  let queue: FrameQueue | undefined
  const abort = () => socket.destroy()
  opts.signal?.addEventListener('abort', abort, {once: true})
  // The timeout covers the whole startup, as libpq's connect_timeout does: a server that accepts
  // the connection and then never answers must not hang the client forever.
  const deadline = setTimeout(() => {
    const e: NodeJS.ErrnoException = new Error(`timed out after ${timeoutMs} ms waiting for the upstream ${target.host}:${target.port} to answer`)
    e.code = 'ETIMEDOUT'
    socket.destroy(e)
  }, Math.max(0, timeoutMs - (Date.now() - started)))
  try {
    const negotiated = await negotiateTls(tcp, target, reader)
    socket = negotiated.socket
    const plainReader = negotiated.encrypted ? undefined : reader
    queue = new FrameQueue(socket, plainReader)
    socket.write(encodeStartup({...startupParams, user: target.user, database: target.database}))
    const parameters: [string, string][] = []
    const notices: NoticeFields[] = []
    let key = {processId: 0, secretKey: 0}
    let scram: ScramClient | undefined
    for (;;) {
      const frame = await queue.next()
      switch (frame.code) {
        case Backend.Authentication: {
          const auth = decodeAuth(frame.body)
          if (auth.kind === 'ok') break
          const password = needsPassword(auth.kind) ? await passwordFor(target) : undefined
          if (auth.kind === 'other') throw new UpstreamError(`the upstream asked for an authentication method dbgate does not support (code ${auth.code})`, '28000')
          if (password === undefined && (auth.kind === 'cleartext' || auth.kind === 'md5' || auth.kind === 'sasl')) {
            throw new UpstreamError(`the upstream wants a password for user "${target.user}", but the target has none configured`, '28P01')
          }
          if (auth.kind === 'cleartext') {
            // The password itself goes out: only to a server whose certificate was checked. Over
            // TLS nobody verified, whoever answers at that address (a spoofed name, a planted
            // config, a machine in the middle) would read it as well as any eavesdropper.
            if (!negotiated.verified && !isLocalUpstream(target.host)) {
              throw new UpstreamError(
                negotiated.encrypted
                  ? `the upstream ${target.host}:${target.port} asked for the password in clear, and its TLS certificate was not verified (tls: ${target.tls}${target.tlsCa ? '' : ' without tlsCa'}), so whoever answers at that address would read it; nothing was sent. Set tls: verify-full with tlsCa (the server's CA), or have the server use scram-sha-256`
                  : `the upstream ${target.host}:${target.port} asked for the password in clear over an unencrypted connection; nothing was sent. Set tls: verify-full with tlsCa (the server's CA), or have the server use scram-sha-256`,
                '28000',
              )
            }
            socket.write(serialize.password(password!))
          } else if (auth.kind === 'md5') {
            socket.write(serialize.password(md5Password(target.user, password!, auth.salt)))
          } else if (auth.kind === 'sasl') {
            if (!auth.mechanisms.includes('SCRAM-SHA-256')) {
              throw new UpstreamError(`the upstream offers only SASL mechanisms ${auth.mechanisms.join(', ')}; dbgate supports SCRAM-SHA-256`, '28000')
            }
            scram = new ScramClient(password!)
            socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.firstMessage()))
          } else if (auth.kind === 'sasl-continue') {
            if (!scram) throw new UpstreamError('the upstream sent SASLContinue out of order', '08P01')
            socket.write(serialize.sendSCRAMClientFinalMessage(scram.finalMessage(auth.data.toString('utf8'))))
          } else if (auth.kind === 'sasl-final') {
            if (!scram) throw new UpstreamError('the upstream sent SASLFinal out of order', '08P01')
            scram.verifyFinal(auth.data.toString('utf8'))
          }
          break
        }
        case Backend.ParameterStatus: {
          const p = decodeParameterStatus(frame.body)
          parameters.push([sharedText(p.name), sharedText(p.value)])
          break
        }
        case Backend.BackendKeyData:
          key = decodeBackendKeyData(frame.body)
          break
        case Backend.NoticeResponse:
          notices.push(decodeNotice(frame.body))
          break
        case Backend.NegotiateProtocolVersion:
          break
        case Backend.ErrorResponse: {
          const err = decodeNotice(frame.body)
          throw new UpstreamError(`upstream refused the connection: ${err.message}`, err.code || '08006', err)
        }
        case Backend.ReadyForQuery: {
          const status = decodeReadyForQuery(frame.body)
          const preflight = opts.preflight === undefined ? undefined : await runPreflight(socket, queue, opts.preflight, parameters, notices)
          const leftover = queue.detach()
          opts.signal?.removeEventListener('abort', abort)
          return {socket, parameters, processId: key.processId, secretKey: key.secretKey, status, notices, leftover, encrypted: negotiated.encrypted, reader: plainReader, preflight}
        }
        default:
          throw new UpstreamError(`unexpected message ${String.fromCharCode(frame.code)} from the upstream during startup`, '08P01')
      }
    }
  } catch (error) {
    opts.signal?.removeEventListener('abort', abort)
    queue?.detach()
    socket.destroy()
    if (opts.signal?.aborted) throw new UpstreamError('gave up connecting to the upstream', '08006')
    if (error instanceof UpstreamError) throw error
    if (error instanceof ScramError) throw new UpstreamError(`upstream authentication failed: ${error.message}`, '28P01')
    if (error instanceof ProtocolError) throw new UpstreamError(`upstream protocol error: ${error.message}`, '08P01')
    throw new UpstreamError(`upstream connection failed: ${(error as Error).message}`, '08006')
  } finally {
    clearTimeout(deadline)
  }
}

/** Runs one simple query on a session being opened and returns its rows; the session must end up idle. */
/**
 * One copy of each ParameterStatus name and value for all sessions: every session keeps about
 * fifteen of them for its lifetime, and across sessions of one target they are nearly all equal.
 * Bounded, so that values that do differ (application_name) cannot grow it without end.
 */
const sharedTexts = new Map<string, string>()
const SHARED_TEXTS_MAX = 1024

function sharedText(s: string): string {
  const known = sharedTexts.get(s)
  if (known !== undefined) return known
  if (sharedTexts.size < SHARED_TEXTS_MAX && s.length <= 256) sharedTexts.set(s, s)
  return s
}

async function runPreflight(socket: net.Socket, queue: FrameQueue, sql: string, parameters: [string, string][], notices: NoticeFields[]): Promise<Record<string, string | null>[]> {
  socket.write(encodeQuery(sql))
  let columns: string[] = []
  const rows: Record<string, string | null>[] = []
  let error: NoticeFields | undefined
  for (;;) {
    const frame = await queue.next()
    switch (frame.code) {
      case Backend.RowDescription:
        columns = decodeRowDescription(frame.body).map((f) => f.name)
        break
      case Backend.DataRow: {
        const values = decodeDataRow(frame.body)
        rows.push(Object.fromEntries(columns.map((c, i) => [c, values[i] === null || values[i] === undefined ? null : values[i]!.toString('utf8')])))
        break
      }
      case Backend.ParameterStatus: {
        const p = decodeParameterStatus(frame.body)
        parameters.push([sharedText(p.name), sharedText(p.value)])
        break
      }
      case Backend.NoticeResponse:
        notices.push(decodeNotice(frame.body))
        break
      case Backend.ErrorResponse:
        error = decodeNotice(frame.body)
        break
      case Backend.CommandComplete:
        break
      case Backend.ReadyForQuery:
        if (error) throw new UpstreamError(`the session check failed on the upstream: ${error.message}`, error.code || '08006', error)
        if (decodeReadyForQuery(frame.body) !== 'I') throw new UpstreamError('the session check left the upstream session in a transaction', '08P01')
        return rows
      default:
        throw new UpstreamError(`unexpected message ${String.fromCharCode(frame.code)} from the upstream during the session check`, '08P01')
    }
  }
}

/**
 * Ends an upstream backend's session on a fresh connection of the same role (pg_terminate_backend).
 * A CancelRequest stops only the statement running now; the server goes on to whatever the client
 * pipelined behind it, so a session that must end now is ended on the server. The backend must be
 * the one this socket (`localPort`) reaches: behind a pooler the key's process id is the pooler's
 * own, and could name an unrelated backend. True when the server says it signalled the backend.
 */
export async function terminateUpstream(target: UpstreamTarget, processId: number, localPort: number | undefined): Promise<boolean> {
  if (!Number.isInteger(processId) || processId <= 0 || !Number.isInteger(localPort)) return false
  const s = await connectUpstream(target, {application_name: 'dbgate (ending a server session)'}, {
    preflight: `select pg_catalog.pg_terminate_backend(pid) as ended from pg_catalog.pg_stat_activity where pid = ${processId} and client_port = ${localPort}`,
  })
  s.socket.end(Buffer.from([Frontend.Terminate, 0, 0, 0, 4]))
  return s.preflight?.[0]?.ended === 't'
}

/** Sends a CancelRequest for an upstream backend on a fresh connection, as libpq does. */
export async function cancelUpstream(target: UpstreamTarget, processId: number, secretKey: number): Promise<void> {
  const tcp = await connectTcp(target)
  let socket: net.Socket = tcp
  try {
    if (target.tls !== 'disable') socket = (await negotiateTls(tcp, {...target, tls: target.tls === 'prefer' ? 'prefer' : target.tls})).socket
    await new Promise<void>((resolve) => {
      socket.write(encodeCancelRequest(processId, secretKey), () => resolve())
    })
    // The server closes the connection once it has read the request.
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve())
      socket.once('error', () => resolve())
      setTimeout(resolve, 2000).unref()
    })
  } finally {
    socket.destroy()
  }
}

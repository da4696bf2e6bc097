/**
 * The gateway's HTTPS API, on its own listener with the same certificate (remote MCP will mount
 * here later). `GET /v1/targets` with `Authorization: Bearer <token>` answers which targets that
 * identity may use, so `dbgate targets` needs no target definitions on the client side.
 */
import type {IncomingMessage, ServerResponse} from 'node:http'
import https from 'node:https'
import type {AddressInfo, Socket} from 'node:net'
import {readFile} from 'node:fs/promises'
import type {TargetConfig} from '../config/types.js'
import type {IdentityConfig} from '../identity/config.js'
import {identityLabel} from '../identity/types.js'
import {allowedTargets, verifySignIn} from './sign-in.js'
import {addressOf, RepeatLimitedLog} from './log-limits.js'
import type {GatewayObserver} from './observer.js'
import {PendingSignIns} from './session-caps.js'
import {closeUnlessVerified, keepAliveVerified} from '../util/keep-alive.js'
import {BAD_REQUEST_TARGET, requestPath} from '../util/request-target.js'

export interface GatewayApiOptions {
  listen: {host: string; port: number}
  /** A `--workers` worker: share the port with the other workers. */
  shared?: boolean
  /** The certificate and key files (the PostgreSQL listener's). */
  tls: {cert: string; key: string}
  identity: IdentityConfig
  targets: Record<string, TargetConfig>
  ready: () => boolean
  /** Serves what else lives on this listener (remote MCP); returns false for paths it does not own. */
  handle?: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>
  now?: () => Date
  log: (level: 'info' | 'warn' | 'error', message: string) => void
  /** Where refused sign-ins are logged, counted by source address; default one of its own. */
  repeats?: RepeatLimitedLog
  /** Counts refused sign-ins, as for the PostgreSQL listener. */
  observer?: GatewayObserver
  /**
   * Connections that have not sent a request yet, in all and from one address, and how long one may
   * take to (server.maxPendingSignIns, …PerAddress, server.signInTimeout): counted apart from the
   * PostgreSQL listener's, with the same limits.
   */
  pending?: {max: number; maxPerAddress: number; timeoutMs: number}
}

export interface GatewayApi {
  address: {host: string; port: number}
  /** Re-reads the certificate and key; new connections use them. */
  reloadTls(): Promise<void>
  close(): Promise<void>
}

async function tlsOptions(files: {cert: string; key: string}): Promise<{cert: Buffer; key: Buffer; minVersion: 'TLSv1.2'}> {
  const [cert, key] = await Promise.all([readFile(files.cert), readFile(files.key)])
  return {cert, key, minVersion: 'TLSv1.2'}
}

/**
 * Every request, headers and body, must arrive within server.signInTimeout, as the first one must.
 * A connection is let go by the caps on connections not yet signed in at its first request, and kept
 * alive after a verified one; without this, Node's own limits applied from then on: a remote MCP
 * body sent a byte at a time held its socket for five minutes (requestTimeout), the next request's
 * headers for one (headersTimeout), however many such connections one token opened. Node answers 408
 * and closes. Only receiving the request is timed: an answer may take as long as its statement does.
 */
function requestTimeouts(timeoutMs: number | undefined): {requestTimeout?: number; headersTimeout?: number; connectionsCheckingInterval?: number} {
  if (timeoutMs === undefined) return {}
  // Node looks for expired requests on this interval: often enough that the deadline holds to within a second.
  return {requestTimeout: timeoutMs, headersTimeout: timeoutMs, connectionsCheckingInterval: Math.min(1000, timeoutMs)}
}

/** What `GET /v1/targets` answers. */
export interface TargetsResponse {
  identity: string
  targets: {name: string}[]
}

export async function startGatewayApi(opts: GatewayApiOptions): Promise<GatewayApi> {
  const ownRepeats = opts.repeats === undefined
  const repeats = opts.repeats ?? new RepeatLimitedLog(opts.log)
  const server = https.createServer({...(await tlsOptions(opts.tls)), ...requestTimeouts(opts.pending?.timeoutMs)}, (req, res) => {
    requestArrived(req)
    closeUnlessVerified(res)
    // A body nobody read (a request refused before its body, say for its token) is not drained: the
    // connection ends with the answer, so a client cannot hold it by sending the body slowly.
    res.once('finish', () => {
      if (!req.complete) req.socket.destroy()
    })
    // A target that is no URL path is anyone's to send, before any token: refused here, once, so
    // that no handler meets it (an exception thrown in this listener would end the process).
    const pathname = requestPath(req.url)
    if (pathname === undefined) return sendTo(res, 400, {error: 'bad_request', message: BAD_REQUEST_TARGET})
    serve(req, res, pathname).catch((error: Error) => {
      opts.log('error', `API request failed: ${error.message}`)
      if (!res.headersSent) res.writeHead(500, {'content-type': 'application/json'}).end('{"error":"internal"}\n')
      else res.destroy()
    })
  })
  /** Remote MCP's paths first, then the API's own; whatever either throws rejects, never escapes the listener. */
  async function serve(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    if (opts.handle && (await opts.handle(req, res))) return
    api(req, res, pathname)
  }
  function sendTo(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, {'content-type': 'application/json', 'cache-control': 'no-store', ...headers})
    res.end(JSON.stringify(body) + '\n')
  }
  function api(req: IncomingMessage, res: ServerResponse, pathname: string): void {
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => sendTo(res, status, body, headers)
    if (pathname !== '/v1/targets') return send(404, {error: 'not_found', message: `no such endpoint ${pathname}; this API serves GET /v1/targets`})
    if (req.method !== 'GET') return send(405, {error: 'method_not_allowed', message: 'use GET'}, {allow: 'GET'})
    if (!opts.ready()) return send(503, {error: 'not_ready', message: "the gateway has not loaded the identity provider's signing keys yet"})
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')
    const challenge = {'www-authenticate': 'Bearer realm="dbgate"'}
    if (!m) return send(401, {error: 'unauthorized', message: 'send your sign-in token: Authorization: Bearer <token> (`dbgate login`, or `dbgate token` in CI)'}, challenge)
    void verifySignIn(opts.identity, m[1]!, opts.now).then(
      (verified) => {
        if (!verified.ok) {
          opts.observer?.signInFailed(verified.refusal.reason)
          const from = req.socket.remoteAddress ? `${req.socket.remoteAddress}:${req.socket.remotePort}` : 'unknown'
          repeats.write('warn', `API sign-ins refused (${verified.refusal.reason})`, addressOf(from), `API: sign-in refused (${verified.refusal.reason}) from ${from}`)
          return send(401, {error: verified.refusal.reason, message: verified.refusal.error.message.replace(/^dbgate: /, ''), hint: verified.refusal.error.hint}, challenge)
        }
        keepAliveVerified(res)
        const body: TargetsResponse = {identity: identityLabel(verified.identity), targets: allowedTargets(opts.targets, verified.identity).map((name) => ({name}))}
        send(200, body)
      },
      (error: Error) => send(500, {error: 'internal', message: error.message}),
    )
  }
  // Until its first request arrives, a connection is anyone's: without a cap, a flood of connections
  // that never finish TLS or their headers would hold sockets for Node's own timeouts (minutes), up
  // to the process's file limit, which the PostgreSQL listener shares. So, as on that listener, they
  // are counted in all and by address, refused past the caps before TLS, and closed after the
  // sign-in timeout. A connection's TLS socket names the same address and port as its TCP one.
  const pending = opts.pending ? new PendingSignIns(opts.pending) : undefined
  const awaiting = new Map<string, () => void>()
  const requestArrived = (req: IncomingMessage) => awaiting.get(`${req.socket.remoteAddress}:${req.socket.remotePort}`)?.()
  server.on('connection', (raw: Socket) => {
    if (!pending || !opts.pending) return
    const from = raw.remoteAddress ? `${raw.remoteAddress}:${raw.remotePort}` : 'unknown'
    const slot = pending.take(raw.remoteAddress ?? 'unknown')
    if (!slot.ok) {
      raw.destroy()
      opts.observer?.signInFailed('too-many-pending')
      repeats.write('warn', `API connections refused over ${slot.cap}`, addressOf(from), `API: refused a connection from ${from}: ${slot.max} connection(s) ${slot.cap === 'server.maxPendingSignIns' ? 'in all' : 'from its address'} have sent no request yet (${slot.cap})`)
      return
    }
    const timer = setTimeout(() => raw.destroy(), opts.pending.timeoutMs)
    timer.unref()
    const done = () => {
      clearTimeout(timer)
      slot.release()
      if (awaiting.get(from) === done) awaiting.delete(from)
    }
    awaiting.set(from, done)
    raw.once('close', done)
  })
  server.on('tlsClientError', () => {})
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({host: opts.listen.host, port: opts.listen.port, exclusive: !opts.shared}, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const a = server.address() as AddressInfo
  return {
    address: {host: a.address, port: a.port},
    reloadTls: async () => server.setSecureContext(await tlsOptions(opts.tls)),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
        if (ownRepeats) repeats.close()
      }),
  }
}

/**
 * The gateway's operations endpoint: a plain HTTP server on a port of its own (never the
 * PostgreSQL port), for load balancers, orchestrators and Prometheus.
 *
 *   GET /healthz  200 while the process can answer at all (liveness).
 *   GET /readyz   runs the readiness checks: 200 `ready`, 200 `degraded` when only checks marked
 *                 `degradesOnly` fail, 503 `not-ready` otherwise; each failing check is named
 *                 with its detail.
 *   GET /metrics  Prometheus text format.
 * Any other path is 404, any other method 405. It serves no data about sessions or people.
 */
import {createServer, type IncomingMessage, type ServerResponse} from 'node:http'
import {BAD_REQUEST_TARGET, requestPath} from '../util/request-target.js'
import type {AddressInfo} from 'node:net'

import type {ReadinessCheck} from './observer.js'
import {RepeatLimitedLog, type RepeatLogOptions} from './log-limits.js'
import {addressShare, CountedSlots} from './session-caps.js'

export type OpsLog = (level: 'info' | 'warn' | 'error', message: string) => void

/**
 * Connections one source address (an IPv6 /64) may hold on the ops port at once. A probe or a scrape
 * needs one or two; without a cap, and with Node's defaults (a connection that sends nothing is never
 * closed), anyone who reaches the port held sockets without end, up to the process's file limit,
 * which the PostgreSQL listener shares, and the liveness probe then failed too.
 */
export const OPS_CONNECTIONS_PER_ADDRESS = 16

/** A request must arrive whole (headers, and any body) within this, as every probe's does at once. */
export const OPS_REQUEST_TIMEOUT_MS = 5000

export interface OpsHttpOptions {
  /** Address to bind. Default 127.0.0.1; a container that is probed from outside sets 0.0.0.0. */
  host?: string
  /** 0 picks a free port (tests). */
  port: number
  readiness: () => Promise<ReadinessCheck[]>
  metrics: {readonly contentType: string; render(): Promise<string>}
  /** A readiness run that takes longer than this answers 503 (default 5000 ms). */
  readinessTimeoutMs?: number
  log?: OpsLog
  /** How a readiness warning repeated by every probe is summarised (src/gateway/log-limits.ts). */
  logRepeats?: RepeatLogOptions
}

export interface OpsHttpServer {
  readonly host: string
  readonly port: number
  /** Stops accepting and closes idle keep-alive connections. */
  close(): Promise<void>
}

export type ReadinessStatus = 'ready' | 'degraded' | 'not-ready'

export interface ReadinessReport {
  status: ReadinessStatus
  /** The failing checks only (absent when ready). */
  checks?: {name: string; detail: string; degradesOnly: boolean}[]
}

/** The `/readyz` verdict over a set of checks; pure, so the rule is tested apart from HTTP. */
export function readinessReport(checks: readonly ReadinessCheck[]): ReadinessReport {
  const failing = checks.filter((c) => !c.ok)
  if (failing.length === 0) return {status: 'ready'}
  const status: ReadinessStatus = failing.every((c) => c.degradesOnly === true) ? 'degraded' : 'not-ready'
  return {status, checks: failing.map((c) => ({name: c.name, detail: c.detail, degradesOnly: c.degradesOnly === true}))}
}

export async function startOpsHttp(options: OpsHttpOptions): Promise<OpsHttpServer> {
  const host = options.host ?? '127.0.0.1'
  const timeoutMs = options.readinessTimeoutMs ?? 5000
  const log: OpsLog = options.log ?? (() => {})
  // Every probe (or anyone who can reach the port) asking /readyz of a gateway that is not ready
  // would otherwise add the same line each time: it is written once per set of failing checks, and
  // its repeats are summarised with the last of them.
  const repeats = new RepeatLimitedLog(log, options.logRepeats)

  // A connection silent for longer than the slowest answer (a readiness run) is closed, and a
  // request must arrive within OPS_REQUEST_TIMEOUT_MS (Node answers 408 and closes).
  const idleMs = timeoutMs + OPS_REQUEST_TIMEOUT_MS
  const server = createServer({requestTimeout: OPS_REQUEST_TIMEOUT_MS, headersTimeout: OPS_REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1000, keepAliveTimeout: OPS_REQUEST_TIMEOUT_MS}, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      log('error', `ops endpoint ${req.url ?? ''}: ${errorText(error)}`)
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n')
      else res.destroy()
    })
  })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = requestPath(req.url)
    // Not an error of the gateway's, and anyone who reaches the port can send it: no log line.
    if (path === undefined) return send(res, 400, 'text/plain; charset=utf-8', `${BAD_REQUEST_TARGET}\n`)
    const known = path === '/healthz' || path === '/readyz' || path === '/metrics'
    if (!known) return send(res, 404, 'text/plain; charset=utf-8', `not found: ${path} (try /healthz, /readyz, /metrics)\n`)
    if (req.method !== 'GET') {
      res.setHeader('Allow', 'GET')
      return send(res, 405, 'text/plain; charset=utf-8', `method ${req.method ?? ''} not allowed on ${path}: use GET\n`)
    }
    if (path === '/healthz') return send(res, 200, 'application/json', '{"status":"alive"}\n')
    if (path === '/metrics') return send(res, 200, options.metrics.contentType, await options.metrics.render())

    const report = await runReadiness(options.readiness, timeoutMs)
    if (report.status !== 'ready') repeats.write('warn', `readiness ${report.status} (${report.checks?.map((c) => c.name).join(', ')})`, '', `readiness ${report.status}: ${report.checks?.map((c) => `${c.name}: ${c.detail}`).join('; ')}`)
    send(res, report.status === 'not-ready' ? 503 : 200, 'application/json', `${JSON.stringify(report)}\n`)
  }

  server.setTimeout(idleMs)
  const perAddress = new CountedSlots(OPS_CONNECTIONS_PER_ADDRESS)
  server.on('connection', (socket) => {
    const from = socket.remoteAddress ?? 'unknown'
    const release = perAddress.take(addressShare(from))
    if (!release) {
      socket.destroy()
      // Anyone who reaches the port can cause it: the first from an address is logged, the rest counted.
      repeats.write('warn', `ops connections refused over ${OPS_CONNECTIONS_PER_ADDRESS} per address`, from, `ops endpoint: refused a connection from ${from}: it already holds ${OPS_CONNECTIONS_PER_ADDRESS} connections`)
      return
    }
    socket.once('close', release)
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  return {
    host,
    port: address.port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()))
        server.closeIdleConnections()
        repeats.close()
      }),
  }
}

/** A readiness function that throws or hangs makes the gateway not ready, with the reason. */
async function runReadiness(readiness: () => Promise<ReadinessCheck[]>, timeoutMs: number): Promise<ReadinessReport> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<ReadinessCheck[]>((resolve) => {
    timer = setTimeout(
      () => resolve([{name: 'readiness', ok: false, detail: `the readiness checks did not finish within ${timeoutMs} ms`}]),
      timeoutMs,
    )
  })
  try {
    const checks = await Promise.race([
      readiness().catch((error: unknown) => [{name: 'readiness', ok: false, detail: `the readiness checks failed: ${errorText(error)}`}]),
      timeout,
    ])
    return readinessReport(checks)
  } finally {
    clearTimeout(timer)
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {'Content-Type': contentType, 'Cache-Control': 'no-store'})
  res.end(body)
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * `dbgate gateway` as a process: JSON logs on standard output, the ops endpoint, signals, and
 * `--workers N` (node:cluster).
 *
 * One process (N = 1): it serves, answers the ops endpoint, drains on SIGTERM, reloads on SIGHUP.
 *
 * N workers: the primary forks N workers that share the PostgreSQL (and API) port, runs the ops
 * endpoint alone (its /metrics aggregates the workers' registries with prom-client's
 * AggregatorRegistry; its /readyz asks every worker), forwards SIGTERM and SIGHUP to them,
 * replaces a worker that dies, and routes CancelRequests: a cancel key names the worker that issued
 * it (src/proxy/connection-registry.ts), and a worker that receives another's key sends it here.
 * It starts the workers with the memory settings of src/gateway/worker-memory.ts unless the
 * operator set their own.
 *
 * Every process that serves (the single one, each worker) gives memory back once it goes quiet
 * (src/runtime/idle-memory.ts), counted in /metrics and logged at debug level.
 */
import cluster, {type Worker} from 'node:cluster'
import {AggregatorRegistry} from 'prom-client'
import type {Logger} from 'pino'
import {ConfigError, formatIssue} from '../config/errors.js'
import type {LoadedConfig} from '../config/types.js'
import {EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK} from '../cli/exit-codes.js'
import {catalogChangedElsewhere, relayCatalogChanges} from '../pipeline/catalog-changes.js'
import {ConnectionRegistry, MAX_WORKER_SLOTS} from '../proxy/connection-registry.js'
import {checkGatewayConfig, startGateway, type RunningGateway} from './gateway.js'
import {createGatewayLogger, logFunction, type LogFn} from './log.js'
import {createGatewayMetrics, type GatewayMetrics} from './metrics.js'
import type {ReadinessCheck} from './observer.js'
import {startOpsHttp, type OpsHttpServer} from './ops-http.js'
import {workerMemoryDefaults} from './worker-memory.js'
import {describeRelease, startIdleMemoryRelease} from '../runtime/idle-memory.js'

export const WORKER_SLOT_ENV = 'DBGATE_GATEWAY_WORKER_SLOT'

/** IPC between the primary and its workers; every message has `dbgate` so others' are ignored. */
type WorkerMessage =
  | {dbgate: 'listening'}
  | {dbgate: 'ready'; address: {host: string; port: number}; api?: {host: string; port: number}; signingKeyId: string}
  | {dbgate: 'cancel'; processId: number; secretKey: number; fromPeer: boolean}
  | {dbgate: 'readiness-request'; id: number}
  | {dbgate: 'readiness'; id: number; checks: ReadinessCheck[]}
  /** A session of this worker committed a change to a database's catalog: the other workers read it again (src/pipeline/catalog-changes.ts). */
  | {dbgate: 'catalog-changed'; database: string}

function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && typeof (m as {dbgate?: unknown}).dbgate === 'string'
}

export interface RunOptions {
  loaded: LoadedConfig
  /** Worker processes; 1 runs everything in this process. */
  workers: number
  /** Overrides `server.log.level`. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error'
}

function loggerFor(opts: RunOptions, role: Record<string, unknown>): {logger: Logger; log: LogFn} {
  const server = opts.loaded.config.server
  const logger = createGatewayLogger({level: opts.logLevel ?? server?.logLevel ?? 'info', base: {gateway: server?.name, ...role}})
  return {logger, log: logFunction(logger)}
}

/** The idle memory release of a serving process, reported to its metrics and its debug log. */
function releaseWhenIdle(metrics: GatewayMetrics, log: LogFn): void {
  startIdleMemoryRelease({
    onRelease: (r) => {
      metrics.memoryReleased(r)
      log('debug', describeRelease(r), {idleRelease: {heapBefore: r.before.heapCommitted, heapAfter: r.after.heapCommitted, newSpaceBefore: r.before.newSpace, newSpaceAfter: r.after.newSpace, rssBefore: r.before.rss, rssAfter: r.after.rss, pauseMs: Math.round(r.pauseMs * 10) / 10}})
    },
  })
}

/** Flushes the log, then exits. */
function exitAfterFlush(logger: Logger, code: number): void {
  logger.flush(() => process.exit(code))
  // A destination that never calls back must not keep the process alive.
  setTimeout(() => process.exit(code), 2000).unref()
}

function describeReloadError(error: unknown): string {
  if (error instanceof ConfigError && error.issues.length > 0) return `${error.message}: ${error.issues.map((i) => formatIssue(i)).join('; ')}`
  return (error as Error).message
}

/** Runs until SIGTERM (or SIGINT) has drained it; never returns. */
export async function runGateway(opts: RunOptions): Promise<never> {
  if (cluster.isWorker) return runWorker(opts)
  if (opts.workers > 1) return runPrimary(opts)
  return runSingle(opts)
}

/** SIGTERM/SIGINT once: `drain`; twice: exit at once. SIGHUP: `reload`. */
function onSignals(log: LogFn, logger: Logger, handlers: {drain: () => Promise<void>; reload: () => Promise<void>; interruptible?: boolean}): void {
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) {
      log('warn', `${signal} again: exiting without waiting for the drain`)
      return exitAfterFlush(logger, EXIT_INTERRUPTED)
    }
    stopping = true
    handlers.drain().then(
      () => exitAfterFlush(logger, EXIT_OK),
      (error: Error) => {
        log('error', `drain failed: ${error.message}`)
        exitAfterFlush(logger, EXIT_FAILURE)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  // A worker gets SIGINT from the terminal with its primary, which forwards SIGTERM: one drain.
  process.on('SIGINT', () => (handlers.interruptible === false ? undefined : stop('SIGINT')))
  process.on('SIGHUP', () => {
    if (stopping) return
    void handlers.reload()
  })
}

async function reloadLogged(gw: RunningGateway, log: LogFn): Promise<void> {
  log('info', 'SIGHUP: reloading the configuration, the policies and the TLS certificate')
  try {
    await gw.reload()
  } catch (error) {
    log('error', `reload failed, nothing changed: ${describeReloadError(error)}`)
  }
}

async function runSingle(opts: RunOptions): Promise<never> {
  const {logger, log} = loggerFor(opts, {})
  const settings = opts.loaded.config.server!
  let gw: RunningGateway | undefined
  const metrics = createGatewayMetrics({gauges: () => gw!.gauges()})
  gw = await startGateway({loaded: opts.loaded, observer: metrics, log})
  const running = gw
  releaseWhenIdle(metrics, log)
  let ops: OpsHttpServer | undefined
  if (settings.ops) {
    ops = await startOpsHttp({host: settings.ops.host, port: settings.ops.port, readiness: () => running.checks(), metrics, log})
    log('info', `ops endpoint on http://${ops.host}:${ops.port} (/healthz, /readyz, /metrics)`)
  }
  onSignals(log, logger, {
    drain: async () => {
      log('info', `draining: new connections are refused; open sessions have ${settings.drainTimeoutMs} ms (server.drainTimeout) to finish`)
      await running.drain(settings.drainTimeoutMs)
      await ops?.close()
      log('info', 'drained: sessions ended and the spool shipped; exiting')
    },
    reload: () => reloadLogged(running, log),
  })
  // "Ready" only once people can sign in: until the IdP's keys load, the log says why not.
  await running.whenReady()
  log('info', `gateway ready to accept on ${running.address.host}:${running.address.port}`, {
    address: running.address,
    ...(running.api ? {api: running.api} : {}),
    ...(ops ? {ops: {host: ops.host, port: ops.port}} : {}),
    signingKeyId: running.signingKeyId,
    workers: 1,
  })
  return new Promise<never>(() => {})
}

async function runWorker(opts: RunOptions): Promise<never> {
  const slot = Number(process.env[WORKER_SLOT_ENV])
  const {logger, log} = loggerFor(opts, {worker: slot})
  const settings = opts.loaded.config.server!
  const send = (m: WorkerMessage) => process.send?.(m)
  let gw: RunningGateway | undefined
  const metrics = createGatewayMetrics({gauges: () => gw!.gauges()})
  // The primary's AggregatorRegistry asks every worker for this registry; constructing one here is
  // what installs the worker's side of that exchange.
  AggregatorRegistry.setRegistries([metrics.registry])
  new AggregatorRegistry()
  gw = await startGateway({
    loaded: opts.loaded,
    observer: metrics,
    log,
    worker: {cancelElsewhere: {slot, slots: opts.workers, forward: (processId, secretKey, fromPeer) => send({dbgate: 'cancel', processId, secretKey, fromPeer})}},
  })
  const running = gw
  releaseWhenIdle(metrics, log)
  relayCatalogChanges((database) => send({dbgate: 'catalog-changed', database}))
  process.on('message', (m: unknown) => {
    if (!isWorkerMessage(m)) return
    if (m.dbgate === 'cancel') running.cancelByKey(m.processId, m.secretKey, m.fromPeer === true)
    else if (m.dbgate === 'catalog-changed') catalogChangedElsewhere(m.database)
    else if (m.dbgate === 'readiness-request') {
      running.checks().then(
        (checks) => send({dbgate: 'readiness', id: m.id, checks}),
        (e: Error) => send({dbgate: 'readiness', id: m.id, checks: [{name: 'readiness', ok: false, detail: e.message}]}),
      )
    }
  })
  // The primary has let the parent's end of the IPC channel go: the worker has no reason to live.
  process.on('disconnect', () => {
    log('error', 'lost the primary process; draining')
    process.kill(process.pid, 'SIGTERM')
  })
  onSignals(log, logger, {
    drain: async () => {
      await running.drain(settings.drainTimeoutMs)
      log('info', 'worker drained: sessions ended and the spool shipped')
    },
    reload: () => reloadLogged(running, log),
    interruptible: false,
  })
  send({dbgate: 'listening'})
  await running.whenReady()
  send({dbgate: 'ready', address: running.address, ...(running.api ? {api: running.api} : {}), signingKeyId: running.signingKeyId})
  return new Promise<never>(() => {})
}

async function runPrimary(opts: RunOptions): Promise<never> {
  const {logger, log} = loggerFor(opts, {role: 'primary'})
  const settings = opts.loaded.config.server!
  if (opts.workers > MAX_WORKER_SLOTS) throw new Error(`--workers ${opts.workers} is more than ${MAX_WORKER_SLOTS}, the most cancel keys can tell apart`)
  await checkGatewayConfig(opts.loaded)
  if (settings.mcp) {
    // An MCP session lives in the process that opened it, and cluster spreads connections, not sessions.
    log('warn', `server.mcp with ${opts.workers} workers: an MCP session's requests must reach the worker that opened it, which holds only while the agent keeps its HTTP connection open; agents that reconnect get "session ended" and start a new session. Run remote MCP on a gateway with --workers 1 for sessions that survive reconnects (docs/agents.md)`)
  }
  const bySlot = new Map<number, Worker>()
  let stopping = false
  let drainFailed = false
  let announced = false
  /** Workers that got as far as listening; one that dies before that would die again. */
  const started = new WeakSet<Worker>()
  const memory = workerMemoryDefaults(process.execArgv, process.env)
  cluster.setupPrimary({execArgv: memory.execArgv})

  const fork = (slot: number) => {
    const worker = cluster.fork({...memory.env, [WORKER_SLOT_ENV]: String(slot)})
    bySlot.set(slot, worker)
    worker.on('message', (m: unknown) => {
      if (!isWorkerMessage(m)) return
      if (m.dbgate === 'cancel') {
        // The key's worker, if it still lives; a dead worker's sessions are gone with it.
        bySlot.get(ConnectionRegistry.slotOf(m.processId))?.send(m)
      } else if (m.dbgate === 'catalog-changed') {
        for (const other of bySlot.values()) if (other !== worker && other.isConnected()) other.send(m)
      } else if (m.dbgate === 'listening') started.add(worker)
      else if (m.dbgate === 'ready') {
        if (announced) return
        announced = true
        log('info', `gateway ready to accept on ${m.address.host}:${m.address.port} with ${opts.workers} workers`, {
          address: m.address,
          ...(m.api ? {api: m.api} : {}),
          ...(ops ? {ops: {host: ops.host, port: ops.port}} : {}),
          signingKeyId: m.signingKeyId,
          workers: opts.workers,
        })
      } else if (m.dbgate === 'readiness') readinessAnswers.get(m.id)?.(m.checks)
    })
  }

  cluster.on('exit', (worker, code, signal) => {
    const slot = [...bySlot].find(([, w]) => w === worker)?.[0]
    if (slot === undefined) return
    bySlot.delete(slot)
    if (stopping) {
      if (code !== 0) drainFailed = true
      return
    }
    if (!started.has(worker)) {
      log('error', `worker ${slot} (pid ${worker.process.pid}) exited (${signal ?? `code ${code}`}) before it could serve; stopping (see its lines above)`)
      stopping = true
      for (const w of bySlot.values()) w.process.kill('SIGTERM')
      void allExited().then(() => exitAfterFlush(logger, EXIT_FAILURE))
      return
    }
    log('error', `worker ${slot} (pid ${worker.process.pid}) exited (${signal ?? `code ${code}`}); starting a replacement`)
    fork(slot)
  })

  // /readyz asks every worker; a worker that does not answer in time is not ready.
  let nextId = 0
  const readinessAnswers = new Map<number, (checks: ReadinessCheck[]) => void>()
  const askWorker = (slot: number, worker: Worker) =>
    new Promise<ReadinessCheck[]>((resolve) => {
      const id = ++nextId
      const timer = setTimeout(() => {
        readinessAnswers.delete(id)
        resolve([{name: `worker:${slot}`, ok: false, detail: `worker ${slot} did not answer the readiness check`}])
      }, 4000)
      readinessAnswers.set(id, (checks) => {
        clearTimeout(timer)
        readinessAnswers.delete(id)
        resolve(checks)
      })
      worker.send({dbgate: 'readiness-request', id} satisfies WorkerMessage)
    })
  const readiness = async (): Promise<ReadinessCheck[]> => {
    if (stopping) return [{name: 'draining', ok: false, detail: 'the gateway is shutting down (SIGTERM): open sessions may finish, new ones go to another replica'}]
    const workers = [...bySlot]
    if (workers.length < opts.workers) return [{name: 'workers', ok: false, detail: `${workers.length} of ${opts.workers} workers running`}]
    // One check per name, the worst of the workers' answers.
    const merged = new Map<string, ReadinessCheck>()
    for (const checks of await Promise.all(workers.map(([slot, w]) => askWorker(slot, w)))) {
      for (const c of checks) {
        const seen = merged.get(c.name)
        if (!seen || (seen.ok && !c.ok) || (!c.ok && seen.degradesOnly && !c.degradesOnly)) merged.set(c.name, c)
      }
    }
    return [...merged.values()]
  }
  const aggregator = new AggregatorRegistry()
  const metrics = {contentType: aggregator.contentType, render: () => aggregator.clusterMetrics()}

  let ops: OpsHttpServer | undefined
  if (settings.ops) ops = await startOpsHttp({host: settings.ops.host, port: settings.ops.port, readiness, metrics, log})
  for (let slot = 0; slot < opts.workers; slot++) fork(slot)

  const allExited = () =>
    new Promise<void>((resolve) => {
      const check = () => (bySlot.size === 0 ? resolve() : setTimeout(check, 100))
      check()
    })
  let signalled = false
  const stop = (signal: string) => {
    if (signalled) {
      log('warn', `${signal} again: stopping the workers at once`)
      for (const w of bySlot.values()) w.process.kill('SIGKILL')
      return exitAfterFlush(logger, EXIT_INTERRUPTED)
    }
    signalled = true
    stopping = true
    log('info', `draining ${bySlot.size} workers: new connections are refused; open sessions have ${settings.drainTimeoutMs} ms (server.drainTimeout) to finish`)
    for (const w of bySlot.values()) w.process.kill('SIGTERM')
    void allExited()
      .then(() => ops?.close())
      .then(() => {
        if (drainFailed) log('error', 'a worker failed to drain; see its lines above')
        else log('info', 'drained: every worker ended its sessions and shipped the spool; exiting')
        exitAfterFlush(logger, drainFailed ? EXIT_FAILURE : EXIT_OK)
      })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => {
    if (stopping) return
    log('info', `SIGHUP: asking ${bySlot.size} workers to reload`)
    for (const w of bySlot.values()) w.process.kill('SIGHUP')
  })
  return new Promise<never>(() => {})
}

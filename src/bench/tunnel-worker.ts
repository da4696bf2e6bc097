/**
 * One dbgate tunnel in a process of its own, so that its CPU and memory are measured apart from
 * the benchmark's clients. Built exactly as `dbgate connect` builds it (`openTunnel` with
 * `buildTunnelHooks`, then the idle memory release), with the features named in the brief
 * switched off.
 *
 * Protocol with the parent (IPC): the worker sends `{type: 'ready', url, host, port, user,
 * password, database}` once listening; it answers `{type: 'memory'}` with `{type: 'memory', ...}`
 * and `{type: 'close'}` by closing the tunnel and exiting. It exits by itself if the parent goes.
 */
import {parseConfigText} from '../config/parse.js'
import {benchTargetYaml, serveParent, type BenchDatabase, type MemoryReport} from './worker-ipc.js'
import {ALL_FEATURES, buildTunnelHooks, type TunnelFeatures} from '../pipeline/index.js'
import {openTunnel} from '../connect/open.js'
import {describeRelease, startIdleMemoryRelease} from '../runtime/idle-memory.js'

export interface WorkerBrief {
  pg: BenchDatabase
  /** Features switched off; the rest stay on. */
  off: (keyof TunnelFeatures)[]
  /** A private data directory for whatever the pipeline keeps on disk (recordings, spools). */
  dataDir: string
  /** Client and upstream connections the tunnel must admit (the idle-connection figure), as PgBouncer's max_client_conn is raised for it. */
  maxConnections?: number
}

export type WorkerMessage =
  | {type: 'ready'; host: string; port: number; user: string; password: string; database: string; features: Record<string, boolean>}
  | MemoryReport
  | {type: 'error'; message: string}

export type {ParentMessage} from './worker-ipc.js'

function send(message: WorkerMessage): void {
  process.send?.(message)
}

async function main(): Promise<void> {
  const raw = process.env.DBGATE_BENCH_WORKER
  if (!raw || !process.send) throw new Error('tunnel-worker is started by the benchmark (dist/bench/run.js), not by hand')
  const brief = JSON.parse(raw) as WorkerBrief
  const env: NodeJS.ProcessEnv = {BENCH_PG_PASSWORD: brief.pg.password, XDG_DATA_HOME: brief.dataDir, XDG_STATE_HOME: brief.dataDir, XDG_CACHE_HOME: brief.dataDir}
  const text = ['targets:', ...benchTargetYaml('bench', brief.pg, {maxConnections: brief.maxConnections}), ''].join('\n')
  const fileName = `${brief.dataDir}/dbgate.yaml`
  const loaded = {path: fileName, ...parseConfigText(text, fileName, {env, homeDir: brief.dataDir})}
  const features = Object.fromEntries(Object.keys(ALL_FEATURES).map((k) => [k, !brief.off.includes(k as keyof TunnelFeatures)])) as unknown as TunnelFeatures
  const opened = await openTunnel({
    loaded,
    targetName: 'bench',
    env,
    hooks: (ctx) => buildTunnelHooks({...ctx, features}),
    log: (level, message) => {
      if (level !== 'info') process.stderr.write(`tunnel-worker ${level}: ${message}\n`)
    },
  })
  // As `dbgate connect` does (its line is the one `-v` shows) once its tunnel is open.
  startIdleMemoryRelease({onRelease: (r) => process.stderr.write(`tunnel-worker: ${describeRelease(r)}\n`)})
  serveParent({close: () => opened.close(200), connections: () => opened.tunnel.connectionCount}, send)
  const info = opened.info
  send({type: 'ready', host: info.host, port: info.port, user: info.user, password: info.password, database: info.database, features: {...features}})
}

main().catch((error: unknown) => {
  send({type: 'error', message: (error as Error).message})
  process.exitCode = 1
  setTimeout(() => process.exit(1), 100).unref()
})

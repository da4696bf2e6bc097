/**
 * One dbgate gateway in a process of its own, so that its CPU and memory are measured apart from
 * the benchmark's clients: started as `dbgate gateway` starts it (`startGateway`), with TLS from a
 * CA made for the run, and the identity provider the benchmark started. Clients sign in with a
 * token as the password, as people and CI jobs do.
 *
 * Protocol with the parent (IPC), as the tunnel worker's: `{type: 'ready', host, port}` once ready
 * (listening, and the IdP's keys loaded); `{type: 'memory'}` is answered with
 * `{type: 'memory', ...}`; `{type: 'close'}` closes the gateway and exits. It exits by itself if
 * the parent goes.
 */
import {parseConfigText} from '../config/parse.js'
import {benchTargetYaml, serveParent, yamlString, type BenchDatabase, type MemoryReport} from './worker-ipc.js'
import {startGateway} from '../gateway/gateway.js'
import {describeRelease, startIdleMemoryRelease} from '../runtime/idle-memory.js'
import {writeServerPki} from '../util/tls-certs.js'

export interface GatewayWorkerBrief {
  pg: BenchDatabase
  identity: {issuer: string; clientId: string}
  /** The group the benchmark's token carries; the target allows it. */
  group: string
  /** The target's name: the database name clients ask for. */
  target: string
  /** A private directory: certificate, state, spool, bucket. */
  dataDir: string
  /** Client and upstream connections the gateway must admit (the idle-connection figure). */
  maxConnections?: number
}

export type GatewayWorkerMessage =
  | {type: 'ready'; host: string; port: number}
  | MemoryReport
  | {type: 'error'; message: string}


/** The benchmark's one person may hold this many sessions (the idle-memory figure opens 1,000). */
const BENCH_SESSIONS = 100_000

function send(message: GatewayWorkerMessage): void {
  process.send?.(message)
}

async function main(): Promise<void> {
  const raw = process.env.DBGATE_BENCH_GATEWAY
  if (!raw || !process.send) throw new Error('gateway-worker is started by the benchmark (dist/bench/run.js), not by hand')
  const brief = JSON.parse(raw) as GatewayWorkerBrief
  const pki = await writeServerPki(brief.dataDir, ['localhost', '127.0.0.1'], {caName: 'dbgate bench CA'})
  const env: NodeJS.ProcessEnv = {BENCH_PG_PASSWORD: brief.pg.password, HOME: brief.dataDir}
  const text = [
    'server:',
    '  name: bench-gateway',
    '  listen: 127.0.0.1:0',
    `  tls: {cert: ${yamlString(pki.cert)}, key: ${yamlString(pki.key)}}`,
    `  stateDir: ${yamlString(`${brief.dataDir}/state`)}`,
    // Every connection of the benchmark signs in as one person, from one address.
    `  maxSessionsPerPerson: ${BENCH_SESSIONS}`,
    `  maxPendingSignIns: ${BENCH_SESSIONS}`,
    `  maxPendingSignInsPerAddress: ${BENCH_SESSIONS}`,
    'identity:',
    `  issuer: ${yamlString(brief.identity.issuer)}`,
    `  clientId: ${yamlString(brief.identity.clientId)}`,
    `bucket: ${yamlString(`file://${brief.dataDir}/bucket`)}`,
    'targets:',
    ...benchTargetYaml(brief.target, brief.pg, {maxConnections: brief.maxConnections, extra: [`    allow: [${yamlString(brief.group)}]`]}),
    '',
  ].join('\n')
  const fileName = `${brief.dataDir}/gateway.yaml`
  const loaded = {path: fileName, ...parseConfigText(text, fileName, {env, homeDir: brief.dataDir})}
  const gw = await startGateway({
    loaded,
    env,
    log: (level, message) => {
      if (level === 'error') process.stderr.write(`gateway-worker ${level}: ${message}\n`)
    },
  })
  await gw.whenReady()
  // As `dbgate gateway` does (its debug log line) in each process that serves.
  startIdleMemoryRelease({onRelease: (r) => process.stderr.write(`gateway-worker: ${describeRelease(r)}\n`)})
  serveParent({close: () => gw.close(200), connections: () => gw.sessionCount}, send)
  send({type: 'ready', host: gw.address.host, port: gw.address.port})
}

main().catch((error: unknown) => {
  send({type: 'error', message: (error as Error).message})
  process.exitCode = 1
  setTimeout(() => process.exit(1), 100).unref()
})

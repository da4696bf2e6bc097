/**
 * `npm run bench`: dbgate (the tunnel, and the gateway over TLS) against a direct connection and PgBouncer (plain and
 * with client TLS), on the same PostgreSQL, in
 * one run. Figures: pgbench -S (simple and prepared), a large result streamed to one client, and
 * the proxy's memory with many idle connections. Prints a table and writes
 * bench-results/<timestamp>.json. Everything it starts is stopped and removed on exit, Ctrl-C or
 * failure. See docs/performance.md.
 *
 *   node dist/bench/run.js [--quick] [--seconds N (default: about 5 minutes of pgbench in all)] [--cpu-prof DIR] [--out DIR]
 *                          [--only direct,pgbouncer,pgbouncer-tls,dbgate,gateway-tls,…] [--figures pgbench,stream,memory]
 *                          [--clients 1,8,32] [--baseline DIR] [--settle SECONDS]
 *
 * --settle SECONDS (default 30, 0 with --quick): the idle-connection figure reads the proxy's memory
 * a second time after its connections have stayed idle that long.
 *
 * --baseline DIR adds a path "dbgate (all features), baseline": the tunnel of another built checkout
 * of dbgate (DIR/dist), measured in the same run, so a change's cost per transaction is read against
 * the code before it under the same load (e.g. `git worktree add /tmp/base main && (cd /tmp/base &&
 * npm ci && npm run build)`, then `npm run bench -- --baseline /tmp/base`).
 *
 * DBGATE_BENCH_PG_URL=postgresql://user:pass@127.0.0.1:5432/postgres uses that server instead of
 * an embedded one (a scratch database is created in it and dropped afterwards).
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {cpus, freemem, totalmem, tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {exportJWK, generateKeyPair, SignJWT} from 'jose'
import pg from 'pg'
import {ALL_FEATURES} from '../pipeline/index.js'
import {startEmbeddedPg} from '../dev/embedded-pg.js'
import {startDevOidcProvider} from '../dev/oidc-dev-provider.js'
import {closeMany, connect, openMany, streamQuery, terminate, type Endpoint} from './client.js'
import {findPgBouncer, rssOf, startPgBouncer} from './pgbouncer.js'
import {renderTable, type BenchResults, type MemoryFigure, type PathInfo, type PgbenchFigure, type StreamFigure} from './report.js'
import type {GatewayWorkerBrief, GatewayWorkerMessage} from './gateway-worker.js'
import type {ParentMessage, WorkerBrief, WorkerMessage} from './tunnel-worker.js'
import {askMemory, type MemoryReport} from './worker-ipc.js'
import {isLoopbackHost} from '../util/loopback.js'

interface Options {
  quick: boolean
  /** Length of each pgbench run; undefined: fitted to the time budget once the paths are known. */
  seconds: number | undefined
  clients: number[]
  streamRows: number
  streamRepeats: number
  idle: number
  /** Seconds the idle connections stay open before a second memory reading (0: none). */
  settle: number
  cpuProfDir?: string
  outDir: string
  /** Path ids to measure (default: all). */
  only?: string[]
  figures: Set<'pgbench' | 'stream' | 'memory'>
  /** Another built checkout whose tunnel is measured as the `baseline` path. */
  baseline?: string
}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick')
  const value = (flag: string) => {
    const i = argv.indexOf(flag)
    if (i < 0) return undefined
    const v = argv[i + 1]
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a value`)
    return v
  }
  const known = new Set(['--quick', '--seconds', '--cpu-prof', '--out', '--only', '--figures', '--clients', '--baseline', '--settle'])
  for (const a of argv) if (a.startsWith('--') && !known.has(a)) throw new Error(`unknown option ${a} (known: ${[...known].join(', ')})`)
  const given = value('--seconds')
  const seconds = given === undefined ? (quick ? 3 : undefined) : Number(given)
  if (seconds !== undefined && (!Number.isFinite(seconds) || seconds < 1)) throw new Error('--seconds must be a number ≥ 1')
  const cpuProf = value('--cpu-prof')
  const figures = (value('--figures') ?? 'pgbench,stream,memory').split(',')
  const baseline = value('--baseline')
  if (baseline !== undefined && !existsSync(path.join(baseline, 'dist', 'bench', 'tunnel-worker.js'))) {
    throw new Error(`--baseline ${baseline}: no dist/bench/tunnel-worker.js there; build that checkout first (npm ci && npm run build)`)
  }
  const settle = Number(value('--settle') ?? (quick ? 0 : 30))
  if (!Number.isFinite(settle) || settle < 0) throw new Error('--settle must be a number of seconds ≥ 0')
  for (const f of figures) if (f !== 'pgbench' && f !== 'stream' && f !== 'memory') throw new Error(`--figures takes pgbench, stream and memory, not ${f}`)
  return {
    quick,
    seconds,
    clients: value('--clients')?.split(',').map(Number) ?? (quick ? [1, 8] : [1, 8, 32]),
    streamRows: quick ? 100_000 : 1_000_000,
    streamRepeats: quick ? 1 : 3,
    idle: quick ? 200 : 1000,
    settle,
    cpuProfDir: cpuProf ? path.resolve(cpuProf) : undefined,
    outDir: path.resolve(value('--out') ?? 'bench-results'),
    only: value('--only')?.split(','),
    figures: new Set(figures as ('pgbench' | 'stream' | 'memory')[]),
    baseline: baseline === undefined ? undefined : path.resolve(baseline),
  }
}

// ---- cleanup: everything started registers how to undo it ------------------------------------

const cleanups: {name: string; fn: () => Promise<void>}[] = []
let cleaning: Promise<void> | undefined

function onCleanup(name: string, fn: () => Promise<void>): void {
  cleanups.push({name, fn})
}

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of cleanups.splice(0).reverse()) {
      await c.fn().catch((e: Error) => process.stderr.write(`bench: cleanup of ${c.name} failed: ${e.message}\n`))
    }
  })()
  return cleaning
}

let interrupted = false

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    interrupted = true
    process.stderr.write(`\nbench: ${sig}, stopping everything it started…\n`)
    void cleanup().then(() => process.exit(130))
  })
}

const log = (m: string) => process.stderr.write(`bench: ${m}\n`)

// ---- helpers -----------------------------------------------------------------------------------

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{code: number | null; stdout: string; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    const entry = {name: `${cmd} (pid ${child.pid})`, fn: async () => void child.kill('SIGKILL')}
    cleanups.push(entry)
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      const i = cleanups.indexOf(entry)
      if (i >= 0) cleanups.splice(i, 1)
      resolve({code, stdout, stderr})
    })
  })
}

function pgEnv(ep: Endpoint): NodeJS.ProcessEnv {
  return {PGHOST: ep.host, PGPORT: String(ep.port), PGUSER: ep.user, PGPASSWORD: ep.password, PGDATABASE: ep.database, PGSSLMODE: ep.sslmode ?? 'disable', PGAPPNAME: 'dbgate-bench'}
}

/** User and system CPU of a process so far, in seconds. */
async function cpuOf(pid: number): Promise<{user: number; system: number} | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // After the command name: state is field 3, utime 14, stime 15 (1-based in proc(5)), in clock ticks (100/s on Linux).
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return Number.isFinite(utime) && Number.isFinite(stime) ? {user: utime / 100, system: stime / 100} : undefined
}

async function gitDescribe(dir: string): Promise<string> {
  const r = await run('git', ['-C', dir, 'log', '-1', '--format=%h %s'], {}, 10_000).catch(() => undefined)
  return r?.code === 0 ? r.stdout.trim() : 'not a git checkout'
}

async function version(cmd: string, args: string[]): Promise<string> {
  try {
    const r = await run(cmd, args, {}, 10_000)
    return r.stdout.split('\n')[0]!.trim() || 'unknown'
  } catch {
    return 'not installed'
  }
}

// ---- tunnel workers ------------------------------------------------------------------------------

interface Worker {
  endpoint: Endpoint
  pid: number
  memory(): Promise<MemoryReport>
  stop(): Promise<void>
}

/** The messages both workers (tunnel, gateway) send and take, as far as this side needs them. */
type AnyWorkerMessage = {type: 'ready'} | MemoryReport | {type: 'error'; message: string}

/**
 * Runs a worker script in a process of its own with its brief in `briefVariable`, and waits for
 * its `ready` message. Its data directory is removed when it stops.
 */
async function spawnWorker<Ready extends {type: 'ready'}>(script: string, briefVariable: string, brief: object, dataDir: string, opts: Options, tag: string, what: string): Promise<{ready: Ready; pid: number; memory(): Promise<MemoryReport>; stop(): Promise<void>}> {
  const execArgv = ['--expose-gc']
  if (opts.cpuProfDir) execArgv.push('--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir, '--cpu-prof-name', `dbgate-${tag}.cpuprofile`)
  const child: ChildProcess = spawn(process.execPath, [...execArgv, script], {
    env: {...process.env, [briefVariable]: JSON.stringify(brief)},
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      if (child.connected) child.send({type: 'close'} satisfies ParentMessage)
      else child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
    await rm(dataDir, {recursive: true, force: true})
  }
  onCleanup(`${what} ${tag}`, stop)
  const ready = await new Promise<Ready>((resolve, reject) => {
    child.on('message', (m: AnyWorkerMessage) => {
      if (m.type === 'ready') resolve(m as unknown as Ready)
      else if (m.type === 'error') reject(new Error(`the ${what} (${tag}) did not start: ${m.message}`))
    })
    child.once('exit', (code) => reject(new Error(`the ${what} (${tag}) exited with code ${code} before listening`)))
  })
  return {
    ready,
    pid: child.pid!,
    memory: () => askMemory(child),
    stop,
  }
}

async function startWorker(pgEp: Endpoint, off: string[], opts: Options, tag: string, maxConnections: number, checkout?: string): Promise<Worker> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dbgate-bench-tunnel-'))
  const brief: WorkerBrief = {pg: pgEp, off: off as WorkerBrief['off'], dataDir, maxConnections}
  const script = checkout ? path.join(checkout, 'dist', 'bench', 'tunnel-worker.js') : path.join(path.dirname(fileURLToPath(import.meta.url)), 'tunnel-worker.js')
  const w = await spawnWorker<Extract<WorkerMessage, {type: 'ready'}>>(script, 'DBGATE_BENCH_WORKER', brief, dataDir, opts, tag, 'dbgate tunnel')
  const {ready} = w
  return {
    endpoint: {host: ready.host, port: ready.port, user: ready.user, password: ready.password, database: ready.database},
    pid: w.pid,
    memory: w.memory,
    stop: w.stop,
  }
}

/** The group and target of the gateway path: the token carries the one, the gateway allows it on the other. */
const BENCH_GATEWAY = {group: 'bench', target: 'bench', email: 'bench@example.com'}

/**
 * The gateway path: a gateway in a worker process, TLS from a CA made for the run, and a token
 * from the development identity provider's key (started here, in the benchmark's process) as the
 * password, valid for the whole run.
 */
async function startGatewayWorker(pgEp: Endpoint, opts: Options, tag: string, maxConnections: number): Promise<Worker> {
  const {privateKey} = await generateKeyPair('RS256', {extractable: true})
  const signingKey = {...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'bench-key'}
  const idp = await startDevOidcProvider({signingKey})
  onCleanup('identity provider', () => idp.stop())
  const now = Math.floor(Date.now() / 1000)
  const token = await new SignJWT({iss: idp.issuer, aud: idp.cliClientId, sub: 'bench', email: BENCH_GATEWAY.email, groups: [BENCH_GATEWAY.group], iat: now, exp: now + 4 * 3600})
    .setProtectedHeader({alg: 'RS256', kid: signingKey.kid})
    .sign(privateKey)
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dbgate-bench-gateway-'))
  const brief: GatewayWorkerBrief = {pg: pgEp, identity: {issuer: idp.issuer, clientId: idp.cliClientId}, group: BENCH_GATEWAY.group, target: BENCH_GATEWAY.target, dataDir, maxConnections}
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'gateway-worker.js')
  const w = await spawnWorker<Extract<GatewayWorkerMessage, {type: 'ready'}>>(script, 'DBGATE_BENCH_GATEWAY', brief, dataDir, opts, tag, 'dbgate gateway')
  return {
    endpoint: {host: w.ready.host, port: w.ready.port, user: BENCH_GATEWAY.email, password: token, database: BENCH_GATEWAY.target, sslmode: 'require'},
    pid: w.pid,
    memory: w.memory,
    stop: w.stop,
  }
}

// ---- the figures ------------------------------------------------------------------------------

interface Target {
  info: PathInfo
  endpoint: Endpoint
  /** The proxy's process, whose CPU and memory are measured. */
  pid?: number
  memory?: () => Promise<{rss: number; heapUsed?: number; heapTotal?: number; external?: number; arrayBuffers?: number}>
}

async function pgbench(t: Target, mode: 'simple' | 'prepared', clients: number, seconds: number): Promise<PgbenchFigure> {
  const cpuBefore = t.pid ? await cpuOf(t.pid) : undefined
  const threads = Math.min(clients, 2)
  const args = ['-n', '-S', '-M', mode, '-c', String(clients), '-j', String(threads), '-T', String(seconds)]
  const r = await run('pgbench', args, pgEnv(t.endpoint), (seconds + 120) * 1000)
  const cpuAfter = t.pid ? await cpuOf(t.pid) : undefined
  const tps = /^tps = ([\d.]+) \(without initial connection time\)/m.exec(r.stdout)
  const lat = /^latency average = ([\d.]+) ms/m.exec(r.stdout)
  const txs = /^number of transactions actually processed: (\d+)/m.exec(r.stdout)
  const failed = /^number of failed transactions: (\d+)/m.exec(r.stdout)
  if (r.code !== 0 || !tps || !lat || !txs || (failed && failed[1] !== '0')) {
    throw new Error(`pgbench ${args.join(' ')} through ${t.info.label} failed (exit ${r.code}):\n${r.stderr.slice(-2000)}${r.stdout.slice(-1000)}`)
  }
  const transactions = Number(txs[1])
  const fig: PgbenchFigure = {path: t.info.id, mode, clients, tps: Number(tps[1]), latencyMs: Number(lat[1]), transactions}
  if (cpuBefore && cpuAfter && transactions > 0) {
    const user = cpuAfter.user - cpuBefore.user
    const system = cpuAfter.system - cpuBefore.system
    fig.proxyCpuUsPerTx = ((user + system) * 1e6) / transactions
    fig.proxyUserUsPerTx = (user * 1e6) / transactions
  }
  return fig
}

/** Repeats stop early once a path has had this long: a slow path (masking every row) is measured once. */
const STREAM_BUDGET_SECONDS = 6

async function stream(t: Target, kind: 'select' | 'copy', table: string, repeats: number): Promise<StreamFigure> {
  const sql = kind === 'select' ? `SELECT id, email, full_name, note FROM ${table}` : `COPY ${table} TO STDOUT`
  let best: StreamFigure | undefined
  let spent = 0
  for (let i = 0; i < repeats && spent < STREAM_BUDGET_SECONDS; i++) {
    const session = await connect(t.endpoint)
    try {
      const cpuBefore = t.pid ? await cpuOf(t.pid) : undefined
      const r = await streamQuery(session, sql)
      const cpuAfter = t.pid ? await cpuOf(t.pid) : undefined
      const fig: StreamFigure = {path: t.info.id, kind, rows: r.rows, bytes: r.bytes, seconds: r.seconds, rowsPerSec: r.rows / r.seconds, mbPerSec: r.bytes / r.seconds / 1024 / 1024}
      if (cpuBefore && cpuAfter) fig.proxyCpuSeconds = cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system
      spent += r.seconds
      if (!best || fig.rowsPerSec > best.rowsPerSec) best = fig
    } finally {
      await terminate(session)
    }
  }
  return best!
}

function describeMemory(m: Record<string, number | undefined>): string {
  return ['rss', 'heapTotal', 'heapUsed', 'newSpace', 'external', 'arrayBuffers']
    .filter((k) => typeof m[k] === 'number')
    .map((k) => `${k} ${(m[k]! / 1024 / 1024).toFixed(1)} MB`)
    .join(', ')
}

async function memory(t: Target, count: number, settleSeconds: number): Promise<MemoryFigure> {
  const before = await t.memory!()
  const sessions = await openMany(t.endpoint, count)
  try {
    // Let the proxy settle (its sockets' buffers, any timers) before reading.
    await new Promise((r) => setTimeout(r, 1000))
    const after = await t.memory!()
    log(`${t.info.label} memory before: ${describeMemory(before)}; with ${sessions.length} idle connections: ${describeMemory(after)}`)
    // The same connections, left idle: V8 gives back heap it no longer needs only after a while.
    let settled: Awaited<ReturnType<NonNullable<Target['memory']>>> | undefined
    if (settleSeconds > 0) {
      await new Promise((r) => setTimeout(r, settleSeconds * 1000))
      settled = await t.memory!()
      log(`${t.info.label} memory after ${settleSeconds} s idle: ${describeMemory(settled)}`)
    }
    return {
      path: t.info.id,
      connections: sessions.length,
      rssBefore: before.rss,
      rssAfter: after.rss,
      rssPerConnection: (after.rss - before.rss) / sessions.length,
      heapUsedBefore: before.heapUsed,
      heapUsedAfter: after.heapUsed,
      ...(settled ? {rssSettled: settled.rss, settledAfterSeconds: settleSeconds} : {}),
    }
  } finally {
    await closeMany(sessions)
  }
}

// ---- main ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2))
  const startedAt = new Date()
  const notes: string[] = [
    'identity is verified once, when the tunnel opens (OIDC token signature, issuer, audience, expiry), and renewed in the background; no statement pays for it, so there is no per-statement identity figure. These tunnels run without an identity section.',
  ]
  if (opts.cpuProfDir) await mkdir(opts.cpuProfDir, {recursive: true})

  // PostgreSQL
  const external = process.env.DBGATE_BENCH_PG_URL
  let admin: Endpoint
  if (external) {
    const u = new URL(external)
    if (!isLoopbackHost(u.hostname)) throw new Error('DBGATE_BENCH_PG_URL must point at a loopback address')
    admin = {host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 5432), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database: u.pathname.slice(1) || 'postgres'}
    log(`using the PostgreSQL at ${admin.host}:${admin.port}`)
  } else {
    log('starting an embedded PostgreSQL…')
    const pgServer = await startEmbeddedPg({settings: {max_connections: '1100', shared_buffers: '256MB'}})
    onCleanup('embedded PostgreSQL', () => pgServer.stop())
    admin = {host: pgServer.host, port: pgServer.port, user: pgServer.user, password: pgServer.password, database: 'postgres'}
  }
  const dbName = `dbgate_bench_${randomBytes(4).toString('hex')}`
  const adminClient = new pg.Client({host: admin.host, port: admin.port, user: admin.user, password: admin.password, database: admin.database})
  await adminClient.connect()
  onCleanup('admin connection', () => adminClient.end())
  await adminClient.query(`CREATE DATABASE ${dbName}`)
  onCleanup(`database ${dbName}`, async () => {
    await adminClient.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
  })
  const pgVersion = (await adminClient.query<{v: string}>('SELECT version() AS v')).rows[0]!.v
  const maxConnections = Number((await adminClient.query<{v: string}>("SELECT current_setting('max_connections') AS v")).rows[0]!.v)
  const db: Endpoint = {...admin, database: dbName}

  // Data: pgbench's tables (initialised directly: `pgbench -i` drops tables, which guardrails deny) and the large result.
  const scale = 1
  log(`initialising pgbench tables (scale ${scale}) and a ${opts.streamRows.toLocaleString('en-US')}-row table…`)
  const init = await run('pgbench', ['-i', '-s', String(scale), '-q'], pgEnv(db), 300_000)
  if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`)
  const dbClient = new pg.Client({host: db.host, port: db.port, user: db.user, password: db.password, database: db.database})
  await dbClient.connect()
  await dbClient.query(`CREATE TABLE bench_stream (id int PRIMARY KEY, email text NOT NULL, full_name text NOT NULL, note text NOT NULL)`)
  await dbClient.query(
    `INSERT INTO bench_stream SELECT g, 'user' || g || '@example.com', 'Person ' || g, md5(g::text) || '-' || lpad(g::text, 8, '0')
       FROM generate_series(1, $1::int) g`,
    [opts.streamRows],
  )
  await dbClient.query('VACUUM ANALYZE bench_stream')
  const avgRow = (await dbClient.query<{b: string}>(`SELECT avg(octet_length(id::text) + octet_length(email) + octet_length(full_name) + octet_length(note))::int AS b FROM bench_stream`)).rows[0]!.b
  await dbClient.end()

  // Paths
  const targets: Target[] = []
  if (!opts.only || opts.only.includes('direct')) targets.push({info: {id: 'direct', label: 'direct', kind: 'direct'}, endpoint: db})
  const bouncerExe = await findPgBouncer()
  let bouncerVersion = 'not installed'
  const idle = Math.min(opts.idle, maxConnections - 20)
  if (idle < opts.idle) notes.push(`max_connections is ${maxConnections}: the idle-connection figure uses ${idle} connections instead of ${opts.idle}`)
  // The TLS path is what a gateway (TLS required) is compared with: clients pay for TLS on both.
  const bouncers = [
    {id: 'pgbouncer', label: 'pgbouncer (session)', clientTls: false},
    {id: 'pgbouncer-tls', label: 'pgbouncer (session, TLS)', clientTls: true},
  ].filter((b) => !opts.only || opts.only.includes(b.id))
  if (bouncerExe) {
    for (const b of bouncers) {
      log(`starting PgBouncer (${bouncerExe}) in session mode${b.clientTls ? ', clients on TLS' : ''}…`)
      const bouncer = await startPgBouncer(bouncerExe, db, {maxClients: idle, clientTls: b.clientTls})
      onCleanup(b.id, () => bouncer.stop())
      bouncerVersion = bouncer.version
      targets.push({
        info: {id: b.id, label: b.label, kind: 'pgbouncer'},
        endpoint: bouncer.endpoint,
        pid: bouncer.pid,
        memory: async () => ({rss: (await rssOf(bouncer.pid)) ?? 0}),
      })
    }
    if (bouncers.some((b) => b.clientTls)) notes.push('pgbouncer (session, TLS): client_tls_sslmode = require with an EC P-256 certificate from a CA made for the run; pgbench and the bench client connect with sslmode=require; PgBouncer to PostgreSQL stays plain, as for the other paths')
  } else {
    notes.push('pgbouncer not installed: no PgBouncer figures, and no ratios to PgBouncer')
    log('pgbouncer not installed; skipping its figures')
  }
  const features = Object.keys(ALL_FEATURES)
  const variants: {id: string; label: string; off: string[]; checkout?: string}[] = [{id: 'dbgate', label: 'dbgate (all features)', off: []}]
  for (const f of features) variants.push({id: `dbgate-no-${f}`, label: `dbgate, ${f} off`, off: [f]})
  // With every feature off: what the tunnel itself (framing, bookkeeping, forwarding) costs.
  if (features.length > 1) variants.push({id: 'dbgate-bare', label: 'dbgate, all features off', off: features})
  if (opts.baseline) variants.splice(1, 0, {id: 'baseline', label: 'dbgate (all features), baseline', off: [], checkout: opts.baseline})
  for (const v of variants) {
    if (opts.only && !opts.only.includes(v.id)) continue
    log(`starting tunnel: ${v.label}…`)
    const w = await startWorker(db, v.off, opts, v.id, idle + 50, v.checkout)
    targets.push({
      info: {id: v.id, label: v.label, kind: 'dbgate', off: v.off},
      endpoint: w.endpoint,
      pid: w.pid,
      memory: w.memory,
    })
  }

  if (!opts.only || opts.only.includes('gateway-tls')) {
    log('starting the gateway (TLS, token sign-in)…')
    const w = await startGatewayWorker(db, opts, 'gateway-tls', idle + 50)
    targets.push({
      info: {id: 'gateway-tls', label: 'gateway (TLS)', kind: 'dbgate'},
      endpoint: w.endpoint,
      pid: w.pid,
      memory: w.memory,
    })
    notes.push('gateway (TLS): `dbgate gateway` with every feature on, in a worker process; clients connect with sslmode=require (a certificate from a CA made for the run) and sign in with a JWT access token as the password, verified once per connection against the development identity provider\'s keys; compare it with pgbouncer (session, TLS)')
  }

  // About five minutes of pgbench in a full run, however many features (and so paths) there are.
  const cells = 2 * opts.clients.length * targets.length
  const seconds = opts.seconds ?? Math.min(10, Math.max(4, Math.round(300 / cells)))
  const results: BenchResults = {
    version: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    quick: opts.quick,
    machine: {
      nproc: String(cpus().length),
      cpu: cpus()[0]?.model ?? 'unknown',
      memory: `${(totalmem() / 1024 ** 3).toFixed(1)} GiB total, ${(freemem() / 1024 ** 3).toFixed(1)} GiB free at start`,
      node: process.version,
      postgres: pgVersion,
      pgbouncer: bouncerVersion,
      pgbench: await version('pgbench', ['--version']),
      platform: `${process.platform} ${process.arch}`,
    },
    settings: {pgbenchSeconds: seconds, clients: opts.clients, scale, streamRows: opts.streamRows, streamRepeats: opts.streamRepeats, idleConnections: idle},
    paths: targets.map((t) => t.info),
    notes,
    pgbench: [],
    stream: [],
    memory: [],
    goals: [],
  }
  notes.push(`large result: ${opts.streamRows.toLocaleString('en-US')} rows of four text columns (id, email, full_name, note), ${avgRow} bytes of values per row on average; the client counts messages and bytes without decoding them`)

  // pgbench: paths interleaved within each (mode, clients) cell, so drift on the machine hits all alike.
  log('warming up…')
  await pgbench({info: {id: 'warm-up', label: 'warm-up', kind: 'direct'}, endpoint: db}, 'simple', 8, 2)
  // Each proxy too, in both modes: a tunnel measured cold spends its first run compiling (V8's
  // optimising tiers for the JavaScript, TurboFan for the parser's WebAssembly) and filling its
  // caches, about a seventh of its CPU in a 5 s run, which a long-lived tunnel pays once.
  if (opts.figures.has('pgbench')) {
    for (const t of targets.filter((x) => x.info.kind !== 'direct')) {
      for (const mode of ['simple', 'prepared'] as const) await pgbench(t, mode, Math.max(...opts.clients), 2)
    }
  }
  for (const mode of opts.figures.has('pgbench') ? (['simple', 'prepared'] as const) : []) {
    for (const clients of opts.clients) {
      for (const t of targets) {
        const f = await pgbench(t, mode, clients, seconds)
        results.pgbench.push(f)
        log(`pgbench -M ${mode} -c ${clients} ${t.info.label}: ${Math.round(f.tps)} tps, ${f.latencyMs.toFixed(3)} ms`)
      }
    }
  }

  for (const kind of opts.figures.has('stream') ? (['select', 'copy'] as const) : []) {
    for (const t of targets) {
      const f = await stream(t, kind, 'bench_stream', opts.streamRepeats)
      results.stream.push(f)
      log(`${kind} ${f.rows} rows ${t.info.label}: ${Math.round(f.rowsPerSec)} rows/s, ${f.mbPerSec.toFixed(1)} MB/s`)
    }
  }

  // Memory last: PgBouncer keeps its server connections pooled after its clients leave.
  for (const t of targets) {
    if (!opts.figures.has('memory') || !t.memory || (t.info.kind === 'dbgate' && !['dbgate', 'dbgate-bare', 'baseline', 'gateway-tls'].includes(t.info.id))) continue
    log(`opening ${idle} idle connections through ${t.info.label}…`)
    const f = await memory(t, idle, opts.settle)
    results.memory.push(f)
    log(`${t.info.label}: RSS ${(f.rssAfter / 1024 / 1024).toFixed(1)} MB with ${f.connections} connections`)
  }

  const cell = (path: string, mode: string) => results.pgbench.find((f) => f.path === path && f.mode === mode && f.clients === 8)
  // The targets of the current performance round (docs/performance.md): every feature on.
  for (const [mode, target] of [['simple', 0.6], ['prepared', 0.75]] as const) {
    const ours = cell('dbgate', mode)
    const theirs = cell('pgbouncer', mode)
    const r = ours && theirs ? ours.tps / theirs.tps : null
    results.goals.push({name: `pgbench -S -M ${mode}, 8 clients: dbgate / pgbouncer`, target, ratio: r, met: r === null ? null : r >= target})
  }
  for (const kind of ['select', 'copy'] as const) {
    const ours = results.stream.find((f) => f.path === 'dbgate' && f.kind === kind)
    const direct = results.stream.find((f) => f.path === 'direct' && f.kind === kind)
    const r = ours && direct ? ours.rowsPerSec / direct.rowsPerSec : null
    results.goals.push({name: `masked large result (${kind}): dbgate / direct`, target: 0.5, ratio: r, met: r === null ? null : r >= 0.5})
  }
  if (opts.baseline) {
    notes.push(`baseline: the tunnel of the checkout at ${opts.baseline} (${await gitDescribe(opts.baseline)}), all features on`)
    for (const f of results.pgbench.filter((x) => x.path === 'dbgate')) {
      const base = results.pgbench.find((x) => x.path === 'baseline' && x.mode === f.mode && x.clients === f.clients)
      if (base?.proxyCpuUsPerTx && f.proxyCpuUsPerTx) {
        notes.push(`pgbench -M ${f.mode} -c ${f.clients}: CPU per transaction ${f.proxyCpuUsPerTx.toFixed(0)} µs, baseline ${base.proxyCpuUsPerTx.toFixed(0)} µs (${((f.proxyCpuUsPerTx / base.proxyCpuUsPerTx - 1) * 100).toFixed(1)} %)`)
      }
    }
  }
  results.finishedAt = new Date().toISOString()

  await cleanup()
  process.stdout.write(`\n${renderTable(results)}\n`)
  await mkdir(opts.outDir, {recursive: true})
  const file = path.join(opts.outDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`)
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`)
  process.stdout.write(`\nresults written to ${path.relative(process.cwd(), file) || file}\n`)
  if (opts.cpuProfDir) process.stdout.write(`CPU profiles of the tunnel processes: ${opts.cpuProfDir}\n`)
}

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    // After Ctrl-C the children it kills make the figure in progress fail; that is not news.
    if (!interrupted) process.stderr.write(`bench: failed: ${(error as Error).stack ?? String(error)}\n`)
    await cleanup()
    process.exit(interrupted ? 130 : 1)
  },
)

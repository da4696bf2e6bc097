/**
 * The tunnel's own CPU cost per transaction, without the kernel, the network or the database: one
 * `ClientConnection` fed from in-memory sockets with the exchanges the benchmark makes, answered
 * with the server's canned replies. Deterministic enough to compare two builds of the hot path on
 * a busy machine, where pgbench's figures move by ±30 % from run to run.
 *
 *   node dist/bench/hotpath.js [--tx N] [--rounds N] [--features guardrails,masking,recording,…] [--modes simple,prepared,select,copy]
 *
 * Modes: `simple` and `prepared` are pgbench -S (Query; Bind/Execute/Sync on a named statement);
 * `select` and `copy` stream the large-result table (`SELECT id, email, full_name, note`, and
 * `COPY … TO STDOUT`), 1,000 rows per transaction, reported per row. With no --features the
 * tunnel runs bare (no hooks); each named feature is switched on as `buildTunnelHooks` builds it,
 * with a temporary data directory for anything kept on disk, and masking reads a catalog of the
 * two benchmark tables from memory.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type net from 'node:net'
import {serialize} from 'pg-protocol'
import {ALL_FEATURES, buildTunnelHooks, type TunnelFeatures} from '../pipeline/index.js'
import {parseConfigText} from '../config/parse.js'
import {MemorySocket} from '../dev/memory-socket.js'
import {ClientConnection} from '../proxy/connection.js'
import {UpstreamReader} from '../proxy/upstream-reader.js'
import type {ProxyHooks} from '../proxy/seam.js'
import {makeScramVerifier} from '../wire/scram.js'
import {createHash} from 'node:crypto'
import type {Row} from '../masking/catalog.js'
import type {ClosableCatalogQuery} from '../masking/index.js'
import {encodeCopyData, encodeDataRow, encodeReadyForQuery, encodeRowDescription} from '../wire/backend.js'
import {encodeQuery} from '../wire/frontend.js'
import {Writer} from '../wire/writer.js'

const tagged = (code: number, build: (w: Writer) => Writer = (w) => w): Buffer => Buffer.from(build(new Writer(64)).finish(code))

const ROW_DESCRIPTION = encodeRowDescription([{name: 'abalance', tableOid: 16390, columnAttr: 3, typeOid: 23, typeSize: 4, typeModifier: -1, format: 0}])
const DATA_ROW = encodeDataRow([Buffer.from('0')])
const SELECT_1 = tagged(0x43, (w) => w.cstring('SELECT 1'))
const READY = encodeReadyForQuery('I')
const BIND_COMPLETE = tagged(0x32)
const PARSE_COMPLETE = tagged(0x31)
const SIMPLE_REPLY = Buffer.concat([ROW_DESCRIPTION, DATA_ROW, SELECT_1, READY])
const PREPARED_REPLY = Buffer.concat([BIND_COMPLETE, DATA_ROW, SELECT_1, READY])
const SQL = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;'

interface Harness {
  logs: string[]
  conn: ClientConnection
  client: MemorySocket
  upstream: MemorySocket
  /** Hands the tunnel one socket read, as Node does with the upstream's kept read buffer. */
  fromServer(bytes: Buffer): void
}

/** Copies each read into the buffer the reader handed out last, as the kernel does, and calls it back. */
function readInto(reader: UpstreamReader): (bytes: Buffer) => void {
  const next = reader.onread.buffer as () => Buffer
  let buf = next()
  return (bytes) => {
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(buf.length, bytes.length - at)
      bytes.copy(buf, 0, at, at + n)
      reader.onread.callback(n, buf)
      buf = next()
      at += n
    }
  }
}

function harness(hooks: ProxyHooks, onUpstreamWrite: (b: Buffer) => void, logs: string[] = []): Harness {
  const client = new MemorySocket(() => {})
  const upstream = new MemorySocket(onUpstreamWrite)
  const reader = new UpstreamReader()
  // Startup and authentication are skipped: straight to a ready session on the in-memory upstream.
  const conn = ClientConnection.attached(
    client as unknown as net.Socket,
    {
      target: {host: '127.0.0.1', port: 5432, database: 'bench', user: 'bench', tls: 'disable'},
      auth: {method: 'cleartext', secret: 's', verifier: makeScramVerifier('s')},
      hooks,
      maxMessageSize: 1 << 30,
      applicationName: () => 'bench',
      issueCancelKey: () => ({processId: 1, secretKey: 2}),
      releaseCancelKey: () => {},
      cancelByKey: () => {},
      log: (level, message) => void logs.push(`${level}: ${message}`),
    },
    {socket: upstream as unknown as net.Socket, parameters: [['client_encoding', 'UTF8'], ['standard_conforming_strings', 'on']], processId: 1, secretKey: 2, status: 'I', notices: [], leftover: Buffer.alloc(0), encrypted: false, reader},
    {user: 'bench', database: 'bench'},
  )
  return {logs, conn, client, upstream, fromServer: readInto(reader)}
}

const AIDS = Array.from({length: 100_000}, (_, i) => String(1 + ((i * 7919) % 100_000)))

/** One kind of exchange: requests cycled through, each answered with `reply`, and how many units (transactions or rows) one is. */
interface Workload {
  /** Sent once before measuring, answered with `setupReply`. */
  setup?: {request: Buffer; reply: Buffer}
  requests: Buffer[]
  /** The server's answer to each request, in the chunks a socket read would hand over. */
  replies: (i: number) => Buffer[]
  unitsPerTx: number
  unit: string
}

/** The large-result table of `run.ts` (`bench_stream`), row by row as the benchmark fills it. */
const STREAM_ROWS_PER_TX = 1000
const STREAM_BLOCKS = 10
const streamRow = (g: number): string[] => [String(g), `user${g}@example.com`, `Person ${g}`, `${createHash('md5').update(String(g)).digest('hex')}-${String(g).padStart(8, '0')}`]
const TABLES = {
  accounts: {oid: 16390, rowtype: 16392, name: 'pgbench_accounts', columns: [['aid', 23, 'int4'], ['bid', 23, 'int4'], ['abalance', 23, 'int4'], ['filler', 1042, 'bpchar']]},
  stream: {oid: 16400, rowtype: 16402, name: 'bench_stream', columns: [['id', 23, 'int4'], ['email', 25, 'text'], ['full_name', 25, 'text'], ['note', 25, 'text']]},
} as const

/** The catalog queries of `readCatalog`, answered for the two tables (built-in types need no rows). */
const catalogQuery: ClosableCatalogQuery = Object.assign(
  async (sql: string): Promise<Row[]> => {
    if (!sql.includes('pg_attribute')) return []
    return Object.values(TABLES).flatMap((t) =>
      t.columns.map(([column, typeoid, typename], i) => ({oid: t.oid, schema: 'public', name: t.name, kind: 'r', rowtype: t.rowtype, attnum: i + 1, column, typeoid, typename, viewdef: null})),
    )
  },
  {close: async () => {}},
)

/** Splits a server reply into socket-sized chunks. */
function chunked(b: Buffer, size = 64 * 1024): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0; at < b.length; at += size) out.push(b.subarray(at, at + size))
  return out
}

function streamWorkload(kind: 'select' | 'copy'): Workload {
  const t = TABLES.stream
  const blocks = Array.from({length: STREAM_BLOCKS}, (_, b) => Array.from({length: STREAM_ROWS_PER_TX}, (_, i) => streamRow(1 + b * STREAM_ROWS_PER_TX + i)))
  const done = tagged(0x43, (w) => w.cstring(`${kind === 'select' ? 'SELECT' : 'COPY'} ${STREAM_ROWS_PER_TX}`))
  const head =
    kind === 'select'
      ? encodeRowDescription(t.columns.map(([name, typeOid], i) => ({name, tableOid: t.oid, columnAttr: i + 1, typeOid, typeSize: -1, typeModifier: -1, format: 0})))
      : tagged(0x48, (w) => t.columns.reduce((x) => x.int16(0), w.byte(0).int16(t.columns.length)))
  const body = (rows: string[][]) =>
    kind === 'select' ? rows.map((r) => encodeDataRow(r.map((v) => Buffer.from(v)))) : [...rows.map((r) => encodeCopyData(Buffer.from(`${r.join('\t')}\n`))), tagged(0x63)]
  const replies = blocks.map((rows) => chunked(Buffer.concat([head, ...body(rows), done, READY])))
  const sql = kind === 'select' ? `SELECT id, email, full_name, note FROM ${t.name}` : `COPY ${t.name} TO STDOUT`
  return {requests: [encodeQuery(sql)], replies: (i) => replies[i % replies.length]!, unitsPerTx: STREAM_ROWS_PER_TX, unit: 'row'}
}

const MODES = {
  simple: (): Workload => ({
    // pgbench draws aid from 1..100000; cycling through all of them keeps the analysis cache (10,000 texts) missing, as it mostly does under pgbench.
    requests: AIDS.map((aid) => encodeQuery(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`)),
    replies: () => [SIMPLE_REPLY],
    unitsPerTx: 1,
    unit: 'tx',
  }),
  prepared: (): Workload => ({
    setup: {request: Buffer.concat([serialize.parse({name: 'P_0', text: SQL, types: []}), serialize.sync()]), reply: Buffer.concat([PARSE_COMPLETE, READY])},
    requests: AIDS.map((aid) => Buffer.concat([serialize.bind({portal: '', statement: 'P_0', values: [aid]}), serialize.execute({portal: '', rows: 0}), serialize.sync()])),
    replies: () => [PREPARED_REPLY],
    unitsPerTx: 1,
    unit: 'tx',
  }),
  select: () => streamWorkload('select'),
  copy: () => streamWorkload('copy'),
}
type Mode = keyof typeof MODES

/**
 * Sends `request` and answers it once the tunnel has forwarded it: the first statements of a
 * session may wait for the catalog (a relation or function seen for the first time), and a reply
 * that arrived before the request was forwarded would be one the tunnel never asked for.
 */
async function exchange(h: Harness, sent: () => number, request: Buffer, reply: Buffer[]): Promise<void> {
  const before = sent()
  h.client.emit('data', Buffer.from(request))
  for (let i = 0; sent() === before; i++) {
    if (h.conn.closed || i > 10_000) throw new Error(`the tunnel did not forward the warm-up request: ${h.logs.slice(-3).join('; ')}`)
    await new Promise((r) => setTimeout(r, 1))
  }
  for (const c of reply) h.fromServer(c)
}

/**
 * Transactions per session: a session's log of 200,000 statements passes the size at which the
 * tunnel ends a session (128 MiB, see `MAX_SESSION_LOG_BYTES`), so a round runs in several.
 */
const TX_PER_SESSION = 50_000

/** Runs `tx` exchanges, in sessions of `TX_PER_SESSION`; returns user+system CPU microseconds per unit. */
async function measure(w: Workload, hooks: ProxyHooks, tx: number): Promise<number> {
  let used = 0
  for (let done = 0; done < tx; done += TX_PER_SESSION) used += await measureSession(w, hooks, Math.min(TX_PER_SESSION, tx - done))
  return used / (tx * w.unitsPerTx)
}

/** Runs `tx` exchanges in one session, after its setup and warm-up; returns the CPU microseconds they took. */
async function measureSession(w: Workload, hooks: ProxyHooks, tx: number): Promise<number> {
  let writes = 0
  const logs: string[] = []
  const h = harness(hooks, () => void writes++, logs)
  const sent = () => writes
  // Every reply arrives as a socket read would hand it over: into the upstream's read buffer.
  const answer = (chunks: Buffer[]) => {
    for (const c of chunks) h.fromServer(c)
  }
  if (w.setup) await exchange(h, sent, w.setup.request, [w.setup.reply])
  // Warm-up: whatever the pipeline loads on first sight (the catalog's answers) is loaded before timing.
  await exchange(h, sent, w.requests[0]!, w.replies(0))
  const started = process.cpuUsage()
  for (let i = 0; i < tx; i++) {
    const before = writes
    h.client.emit('data', Buffer.from(w.requests[i % w.requests.length]!))
    // A verdict that waits for the catalog (an answer kept for a while has expired) is answered
    // once the request is forwarded, as the server would; the wait costs no CPU.
    for (let n = 0; writes === before && !h.conn.closed && n < 10_000; n++) await new Promise((r) => setImmediate(r))
    answer(w.replies(i))
  }
  const used = process.cpuUsage(started)
  // A tunnel that closed the connection (a protocol error, a refused statement) measured nothing.
  if (h.conn.closed) throw new Error(`the tunnel closed the in-memory connection during the measurement, so its figures would mean nothing: ${logs.slice(-3).join('; ')}`)
  h.conn.close('done')
  return used.user + used.system
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const num = (flag: string, dflt: number) => {
    const i = args.indexOf(flag)
    return i >= 0 ? Number(args[i + 1]) : dflt
  }
  const tx = num('--tx', 200_000)
  const m = args.indexOf('--modes')
  const modes = (m >= 0 ? (args[m + 1] ?? '').split(',') : ['simple', 'prepared']) as Mode[]
  for (const mode of modes) if (!(mode in MODES)) throw new Error(`unknown mode ${mode} (known: ${Object.keys(MODES).join(', ')})`)
  const rounds = num('--rounds', 5)
  const i = args.indexOf('--features')
  const on = i >= 0 ? (args[i + 1] ?? '').split(',').filter(Boolean) : []
  for (const f of on) if (!(f in ALL_FEATURES)) throw new Error(`unknown feature ${f} (known: ${Object.keys(ALL_FEATURES).join(', ')})`)
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dbgate-hotpath-'))
  let hooks: ProxyHooks = {}
  try {
    if (on.length > 0) {
      const env = {XDG_DATA_HOME: dataDir, XDG_STATE_HOME: dataDir, XDG_CACHE_HOME: dataDir}
      const text = 'targets:\n  bench:\n    host: 127.0.0.1\n    port: 5432\n    database: bench\n    user: bench\n    tls: disable\n'
      const file = path.join(dataDir, 'dbgate.yaml')
      const loaded = {path: file, ...parseConfigText(text, file, {env, homeDir: dataDir})}
      const target = loaded.config.targets.bench!
      const features = Object.fromEntries(Object.keys(ALL_FEATURES).map((k) => [k, on.includes(k)])) as unknown as TunnelFeatures
      hooks = await buildTunnelHooks({config: loaded.config, target, features, env, catalogQuery})
    }
    process.stdout.write(`features on: ${on.length > 0 ? on.join(', ') : 'none (bare tunnel)'}\n`)
    for (const mode of modes) {
      const w = MODES[mode]()
      // A streamed transaction is a thousand rows: fewer of them make as long a round.
      const n = Math.max(1, Math.round(tx / w.unitsPerTx))
      const runs: number[] = []
      await measure(w, hooks, Math.min(n, 20_000))
      for (let r = 0; r < rounds; r++) runs.push(await measure(w, hooks, n))
      runs.sort((a, b) => a - b)
      process.stdout.write(`${mode.padEnd(8)} ${runs[0]!.toFixed(2)} µs/${w.unit} best, ${runs[Math.floor(runs.length / 2)]!.toFixed(2)} median of ${rounds} × ${n * w.unitsPerTx} ${w.unit}s\n`)
    }
  } finally {
    await hooks.dispose?.()
    await rm(dataDir, {recursive: true, force: true})
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})

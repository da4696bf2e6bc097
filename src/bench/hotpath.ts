/**
 * The tunnel's own CPU cost per transaction, without the kernel, the network or the database: one
 * `ClientConnection` fed from in-memory sockets with the exchanges pgbench -S makes (simple: Query;
 * prepared: Bind/Execute/Sync on a named statement), answered with the server's canned replies.
 * Deterministic enough to compare two builds of the hot path on a busy machine, where pgbench's
 * figures move by ±30 % from run to run.
 *
 *   node dist/bench/hotpath.js [--tx N] [--rounds N] [--features guardrails,recording,…]
 *
 * With no --features the tunnel runs bare (no hooks); each named feature is switched on as
 * `buildTunnelHooks` builds it, with a temporary data directory for anything kept on disk.
 */
import {EventEmitter} from 'node:events'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type net from 'node:net'
import {serialize} from 'pg-protocol'
import {ALL_FEATURES, buildTunnelHooks, type TunnelFeatures} from '../connect/hooks.js'
import {parseConfigText} from '../config/parse.js'
import {ClientConnection} from '../proxy/connection.js'
import type {ProxyHooks} from '../proxy/hooks.js'
import {makeScramVerifier} from '../wire/scram.js'
import {encodeDataRow, encodeReadyForQuery, encodeRowDescription} from '../wire/backend.js'
import {encodeQuery} from '../wire/frontend.js'
import {Writer} from '../wire/writer.js'

/** Just enough of a net.Socket for ClientConnection; writes go to `sink`. */
class MemorySocket extends EventEmitter {
  destroyed = false
  remoteAddress = '127.0.0.1'
  remotePort = 5432
  constructor(private readonly sink: (b: Buffer) => void) {
    super()
  }
  write(b: Buffer): boolean {
    this.sink(b)
    return true
  }
  setNoDelay(): this {
    return this
  }
  setKeepAlive(): this {
    return this
  }
  pause(): this {
    return this
  }
  resume(): this {
    return this
  }
  end(): this {
    return this
  }
  destroy(): this {
    this.destroyed = true
    return this
  }
}

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
  conn: ClientConnection
  client: MemorySocket
  upstream: MemorySocket
}

function harness(hooks: ProxyHooks, onUpstreamWrite: (b: Buffer) => void): Harness {
  const client = new MemorySocket(() => {})
  const upstream = new MemorySocket(onUpstreamWrite)
  const conn = new ClientConnection(client as unknown as net.Socket, {
    target: {host: '127.0.0.1', port: 5432, database: 'bench', user: 'bench', tls: 'disable'},
    auth: {method: 'cleartext', secret: 's', verifier: makeScramVerifier('s')},
    hooks,
    maxMessageSize: 1 << 30,
    applicationName: () => 'bench',
    issueCancelKey: () => ({processId: 1, secretKey: 2}),
    releaseCancelKey: () => {},
    cancelByKey: () => {},
    log: () => {},
  })
  // Skip startup and authentication: straight to a ready session on the in-memory upstream.
  const internals = conn as unknown as {clientFramer: {endStartup(): void}; startupParams: Record<string, string>; onUpstreamReady(up: unknown): void}
  internals.clientFramer.endStartup()
  internals.startupParams = {user: 'bench', database: 'bench'}
  internals.onUpstreamReady({socket: upstream, parameters: [], processId: 1, secretKey: 2, status: 'I', notices: [], leftover: Buffer.alloc(0), encrypted: false})
  return {conn, client, upstream}
}

const AIDS = Array.from({length: 100_000}, (_, i) => String(1 + ((i * 7919) % 100_000)))
const CHUNKS = {
  simple: AIDS.map((aid) => encodeQuery(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`)),
  prepared: AIDS.map((aid) => Buffer.concat([serialize.bind({portal: '', statement: 'P_0', values: [aid]}), serialize.execute({portal: '', rows: 0}), serialize.sync()])),
}

/** Runs `tx` transactions; returns user+system CPU microseconds per transaction. */
function measure(mode: 'simple' | 'prepared', hooks: ProxyHooks, tx: number): number {
  let reply: Buffer = PREPARED_REPLY
  const h = harness(hooks, () => {})
  // Every reply arrives as a fresh chunk, as a socket read would hand it over.
  const answer = () => h.upstream.emit('data', Buffer.from(reply))
  if (mode === 'prepared') {
    reply = Buffer.concat([PARSE_COMPLETE, READY])
    h.client.emit('data', Buffer.concat([serialize.parse({name: 'P_0', text: SQL, types: []}), serialize.sync()]))
    answer()
    reply = PREPARED_REPLY
  } else {
    reply = SIMPLE_REPLY
  }
  // pgbench draws aid from 1..100000; cycling through all of them keeps the analysis cache (10,000 texts) missing, as it mostly does under pgbench.
  const chunks = CHUNKS[mode]
  const started = process.cpuUsage()
  for (let i = 0; i < tx; i++) {
    h.client.emit('data', Buffer.from(chunks[i % chunks.length]!))
    answer()
  }
  const used = process.cpuUsage(started)
  h.conn.close('done')
  return (used.user + used.system) / tx
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const num = (flag: string, dflt: number) => {
    const i = args.indexOf(flag)
    return i >= 0 ? Number(args[i + 1]) : dflt
  }
  const tx = num('--tx', 200_000)
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
      hooks = await buildTunnelHooks({config: loaded.config, target, features, env})
    }
    process.stdout.write(`features on: ${on.length > 0 ? on.join(', ') : 'none (bare tunnel)'}\n`)
    for (const mode of ['simple', 'prepared'] as const) {
      const runs: number[] = []
      measure(mode, hooks, Math.min(tx, 20_000))
      for (let r = 0; r < rounds; r++) runs.push(measure(mode, hooks, tx))
      runs.sort((a, b) => a - b)
      process.stdout.write(`${mode.padEnd(8)} ${runs[0]!.toFixed(2)} µs/tx best, ${runs[Math.floor(runs.length / 2)]!.toFixed(2)} median of ${rounds} × ${tx}\n`)
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

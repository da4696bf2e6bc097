/**
 * What one idle session costs a tunnel's V8 heap, by constructor: a tunnel worker (as the benchmark
 * starts it, `tunnel-worker.js`) gets A sessions that only log in (as the benchmark's idle figure
 * opens them), then B; a heap snapshot after each (`--heapsnapshot-signal`), and the difference per
 * session, for every feature on and every feature off.
 *
 * `node dist/bench/idle-heap.js [--sessions 200,700] [--worker <path to another tunnel-worker.js>]
 * [--top 40]`. Needs the embedded PostgreSQL (or DBGATE_BENCH_PG_URL) and pgbench, as run.js does.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {openPgbenchDatabase} from './pgbench-database.js'
import {ALL_FEATURES} from '../pipeline/index.js'
import {closeMany, openMany, type Endpoint} from './client.js'
import type {ParentMessage, WorkerBrief, WorkerMessage} from './tunnel-worker.js'
import {askMemory} from './worker-ipc.js'

const {values} = parseArgs({options: {sessions: {type: 'string', default: '200,700'}, worker: {type: 'string'}, top: {type: 'string', default: '40'}, only: {type: 'string'}, retainers: {type: 'boolean', default: false}}})
const [first, second] = values.sessions!.split(',').map(Number) as [number, number]
const top = Number(values.top)
const workerScript = path.resolve(values.worker ?? path.join(path.dirname(fileURLToPath(import.meta.url)), 'tunnel-worker.js'))

interface Tally {
  count: number
  bytes: number
}

/** Self sizes by kind of node: objects by constructor, closures by function name, strings together. */
interface Snapshot {
  snapshot: {meta: {node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]]}}
  nodes: number[]
  edges: number[]
  strings: string[]
}

/**
 * With --retainers, each node's kind is followed by its first retainer's kind and the edge's name
 * (`SpoolFile <- SessionRecorder.spool`), so that a plain Object or a string says whose it is.
 */
function firstRetainers(snapshot: Snapshot): Map<number, string> {
  const nf = snapshot.snapshot.meta.node_fields
  const ef = snapshot.snapshot.meta.edge_fields
  const etypes = snapshot.snapshot.meta.edge_types[0]
  const width = nf.length
  const ewidth = ef.length
  const eci = nf.indexOf('edge_count')
  const eti = ef.indexOf('type')
  const eni = ef.indexOf('name_or_index')
  const toi = ef.indexOf('to_node')
  const out = new Map<number, string>()
  let e = 0
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const count = snapshot.nodes[i + eci]!
    const owner = kindOf(snapshot, i)
    for (let k = 0; k < count; k++, e += ewidth) {
      const et = etypes[snapshot.edges[e + eti]!]!
      if (et === 'weak' || et === 'shortcut') continue
      const to = snapshot.edges[e + toi]!
      if (out.has(to)) continue
      const nameOrIndex = snapshot.edges[e + eni]!
      const edgeName = et === 'element' || et === 'hidden' ? `[${nameOrIndex}]` : snapshot.strings[nameOrIndex]!
      out.set(to, `${owner}.${edgeName.length > 30 ? edgeName.slice(0, 30) : edgeName}`)
    }
  }
  return out
}

function kindOf(snapshot: Snapshot, i: number): string {
  const fields = snapshot.snapshot.meta.node_fields
  const type = snapshot.snapshot.meta.node_types[0][snapshot.nodes[i + fields.indexOf('type')]!]!
  const name = snapshot.strings[snapshot.nodes[i + fields.indexOf('name')]!]!
  if (type === 'string' || type === 'concatenated string' || type === 'sliced string') return `(${type})`
  if (type === 'number') return '(heap number)'
  if (type === 'code') return '(code)'
  if (type === 'closure') return `closure ${name}`
  if (type === 'object' || type === 'native') return name.length > 60 ? `${name.slice(0, 57)}…` : name
  return `${type} ${name.length > 50 ? `${name.slice(0, 47)}…` : name}`
}

/** Self sizes by kind of node: objects by constructor, closures by function name, strings together. */
function tally(snapshot: Snapshot): Map<string, Tally> {
  const fields = snapshot.snapshot.meta.node_fields
  const width = fields.length
  const si = fields.indexOf('self_size')
  const out = new Map<string, Tally>()
  const nodes = snapshot.nodes
  const retainers = values.retainers ? firstRetainers(snapshot) : undefined
  for (let i = 0; i < nodes.length; i += width) {
    let key = kindOf(snapshot, i)
    if (retainers) key = `${key} <- ${retainers.get(i) ?? '?'}`
    const t = out.get(key)
    if (t) {
      t.count++
      t.bytes += nodes[i + si]!
    } else out.set(key, {count: 1, bytes: nodes[i + si]!})
  }
  return out
}

async function snapshotOf(child: ChildProcess, dir: string): Promise<Map<string, Tally>> {
  const before = new Set(await readdir(dir))
  child.kill('SIGUSR2')
  // The worker writes the snapshot on its main thread: it answers a message only once it is done.
  await askMemory(child)
  let file: string | undefined
  for (let i = 0; i < 600 && !file; i++) {
    file = (await readdir(dir)).find((f) => f.endsWith('.heapsnapshot') && !before.has(f))
    if (!file) await new Promise((r) => setTimeout(r, 100))
  }
  if (!file) throw new Error('no heap snapshot written')
  await askMemory(child)
  const text = await readFile(path.join(dir, file), 'utf8')
  await rm(path.join(dir, file))
  return tally(JSON.parse(text))
}

async function measure(db: Endpoint, off: string[]): Promise<{rows: [string, Tally][]; heapPer: number; total: Tally}> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dbgate-idle-heap-'))
  const brief: WorkerBrief = {pg: db, off: off as WorkerBrief['off'], dataDir, maxConnections: second + 50}
  const child = spawn(process.execPath, ['--expose-gc', '--heapsnapshot-signal=SIGUSR2', workerScript], {
    cwd: dataDir,
    env: {...process.env, DBGATE_BENCH_WORKER: JSON.stringify(brief), DBGATE_IDLE_MEMORY_RELEASE: 'off'},
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  try {
    const ready = await new Promise<Extract<WorkerMessage, {type: 'ready'}>>((resolve, reject) => {
      child.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') resolve(m)
        else if (m.type === 'error') reject(new Error(m.message))
      })
      child.once('exit', (code) => reject(new Error(`tunnel worker exited with ${code}`)))
    })
    const ep: Endpoint = {host: ready.host, port: ready.port, user: ready.user, password: ready.password, database: ready.database}
    const a = await openMany(ep, first)
    await new Promise((r) => setTimeout(r, 2000))
    const m1 = await askMemory(child)
    const s1 = await snapshotOf(child, dataDir)
    const b = await openMany(ep, second - first)
    await new Promise((r) => setTimeout(r, 2000))
    const m2 = await askMemory(child)
    const s2 = await snapshotOf(child, dataDir)
    await closeMany([...a, ...b])
    const n = second - first
    const rows: [string, Tally][] = []
    const total = {count: 0, bytes: 0}
    for (const [k, t2] of s2) {
      const t1 = s1.get(k) ?? {count: 0, bytes: 0}
      const d = {count: (t2.count - t1.count) / n, bytes: (t2.bytes - t1.bytes) / n}
      total.count += d.count
      total.bytes += d.bytes
      if (Math.abs(d.bytes) >= 4 || Math.abs(d.count) >= 0.05) rows.push([k, d])
    }
    rows.sort((x, y) => y[1].bytes - x[1].bytes)
    return {rows, heapPer: (m2.heapUsed - m1.heapUsed) / n, total}
  } finally {
    if (child.exitCode === null) {
      child.send({type: 'close'} satisfies ParentMessage)
      await new Promise((r) => child.once('exit', r))
    }
    await rm(dataDir, {recursive: true, force: true})
  }
}

const {db, drop} = await openPgbenchDatabase('dbgate_idle_heap', second + 100)
try {
  const variants: [string, string[]][] = [
    ['all features on', []],
    ['all features off', Object.keys(ALL_FEATURES)],
  ]
  for (const [label, off] of variants) {
    if (values.only && !label.includes(values.only)) continue
    const r = await measure(db, off)
    console.log(`\n${label} (${workerScript}): per session, from ${first} to ${second} idle sessions: ${r.total.bytes.toFixed(0)} bytes in ${r.total.count.toFixed(1)} heap objects (heapUsed ${r.heapPer.toFixed(0)} bytes)`)
    console.log('| constructor / kind | count per session | bytes per session |\n|---|---:|---:|')
    for (const [k, t] of r.rows.slice(0, top)) console.log(`| ${k.replaceAll('|', '\\|')} | ${t.count.toFixed(2)} | ${t.bytes.toFixed(0)} |`)
  }
} finally {
  await drop()
}

/** The benchmark's results: their shape (also the JSON file's), and the table printed at the end. */

export type PathId = string

export interface PathInfo {
  id: PathId
  label: string
  kind: 'direct' | 'pgbouncer' | 'dbgate'
  /** dbgate only: features switched off. */
  off?: string[]
}

export interface PgbenchFigure {
  path: PathId
  mode: 'simple' | 'prepared'
  clients: number
  tps: number
  latencyMs: number
  transactions: number
  /** CPU (user + system) the proxy process used per transaction, where there is a proxy. */
  proxyCpuUsPerTx?: number
  /** The user-space part of it. */
  proxyUserUsPerTx?: number
}

export interface StreamFigure {
  path: PathId
  kind: 'select' | 'copy'
  rows: number
  bytes: number
  seconds: number
  rowsPerSec: number
  mbPerSec: number
  proxyCpuSeconds?: number
}

export interface MemoryFigure {
  path: PathId
  connections: number
  rssBefore: number
  rssAfter: number
  rssPerConnection: number
  heapUsedBefore?: number
  heapUsedAfter?: number
  /** RSS once the connections have stayed idle for `settledAfterSeconds` (V8 shrinks an idle heap on its own). */
  rssSettled?: number
  settledAfterSeconds?: number
}

export interface BenchResults {
  version: 1
  startedAt: string
  finishedAt: string
  quick: boolean
  machine: Record<string, string>
  settings: {pgbenchSeconds: number; clients: number[]; scale: number; streamRows: number; streamRepeats: number; idleConnections: number}
  paths: PathInfo[]
  notes: string[]
  pgbench: PgbenchFigure[]
  stream: StreamFigure[]
  memory: MemoryFigure[]
  goals: {name: string; target: number; ratio: number | null; met: boolean | null}[]
}

const MB = 1024 * 1024

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', {minimumFractionDigits: digits, maximumFractionDigits: digits})
}

function ratio(v: number | undefined, base: number | undefined, higherIsBetter = true): string {
  if (v === undefined || base === undefined || base === 0 || v === 0) return '—'
  return `${(higherIsBetter ? v / base : base / v).toFixed(2)}×`
}

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => (i === 0 || i === 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n')
}

/** The PgBouncer path a path is compared with: with client TLS for the gateway (TLS), whose clients pay for TLS too. */
function bouncerFor<F extends {path: PathId}>(rows: F[], path: PathId): F | undefined {
  const wanted = path === 'gateway-tls' ? 'pgbouncer-tls' : 'pgbouncer'
  return rows.find((f) => f.path === wanted)
}

/**
 * One line per figure and path. Ratios are "how many times as good as": throughput over the
 * baseline's, and for latency and memory the baseline's over ours, so above 1.00× is better.
 */
export function renderTable(r: BenchResults): string {
  const label = (id: PathId) => r.paths.find((p) => p.id === id)?.label ?? id
  const out: string[] = []
  const header = ['figure', 'path', 'value', '', 'vs direct', 'vs pgbouncer']
  const bench: string[][] = [header]
  for (const mode of ['simple', 'prepared'] as const) {
    for (const clients of r.settings.clients) {
      const rows = r.pgbench.filter((f) => f.mode === mode && f.clients === clients)
      const direct = rows.find((f) => f.path === 'direct')
      for (const f of rows) {
        const bouncer = bouncerFor(rows, f.path)
        const cpu = f.proxyCpuUsPerTx === undefined ? '' : `proxy CPU ${fmt(f.proxyCpuUsPerTx)} µs/tx (user ${fmt(f.proxyUserUsPerTx ?? 0)})`
        bench.push([`-M ${mode}, ${clients} client${clients > 1 ? 's' : ''}`, label(f.path), `${fmt(f.tps)} tps`, `${f.latencyMs.toFixed(3)} ms`, ratio(f.tps, direct?.tps), ratio(f.tps, bouncer?.tps)])
        if (cpu) bench[bench.length - 1]!.push(cpu)
      }
    }
  }
  out.push(`pgbench -S (select-only), ${r.settings.pgbenchSeconds} s per run, scale ${r.settings.scale}: tps and average latency ("vs pgbouncer": the gateway (TLS) against pgbouncer with TLS, the rest against plain pgbouncer)`, pad(bench), '')

  const stream: string[][] = [['figure', 'path', 'rows/s', 'MB/s', 'vs direct', 'vs pgbouncer']]
  for (const kind of ['select', 'copy'] as const) {
    const rows = r.stream.filter((f) => f.kind === kind)
    const direct = rows.find((f) => f.path === 'direct')
    for (const f of rows) {
      const bouncer = bouncerFor(rows, f.path)
      stream.push([kind === 'select' ? `SELECT ${fmt(f.rows)} rows` : `COPY TO STDOUT ${fmt(f.rows)} rows`, label(f.path), fmt(f.rowsPerSec), fmt(f.mbPerSec, 1), ratio(f.rowsPerSec, direct?.rowsPerSec), ratio(f.rowsPerSec, bouncer?.rowsPerSec)])
    }
  }
  out.push(`Large result (best of up to ${r.settings.streamRepeats} runs, fewer for slow paths): rows/s and MB/s received by the client`, pad(stream), '')

  if (r.memory.length > 0) {
    const settled = r.memory.find((f) => f.settledAfterSeconds !== undefined)?.settledAfterSeconds
    const mem: string[][] = [['figure', 'path', 'RSS', 'per connection', 'heap used', 'vs pgbouncer (RSS)', ...(settled === undefined ? [] : [`RSS after ${settled} s idle`])]]
    for (const f of r.memory) {
      const bouncer = bouncerFor(r.memory, f.path)
      const heap = f.heapUsedAfter === undefined ? '—' : `${fmt(f.heapUsedAfter / MB, 1)} MB`
      mem.push([`${fmt(f.connections)} idle connections`, label(f.path), `${fmt(f.rssAfter / MB, 1)} MB (idle ${fmt(f.rssBefore / MB, 1)} MB)`, `${fmt(f.rssPerConnection / 1024, 1)} KB`, heap, f.path === 'pgbouncer' ? '' : ratio(f.rssAfter, bouncer?.rssAfter, false), ...(settled === undefined ? [] : [f.rssSettled === undefined ? '—' : `${fmt(f.rssSettled / MB, 1)} MB`])])
    }
    out.push('Memory of the proxy process (RSS after a GC; "vs" = PgBouncer RSS / ours)', pad(mem), '')
  }

  if (r.goals.length > 0) {
    const goals: string[][] = [['goal', 'target', 'measured', 'met']]
    for (const g of r.goals) goals.push([g.name, `≥ ${g.target.toFixed(2)}×`, g.ratio === null ? '—' : `${g.ratio.toFixed(2)}×`, g.met === null ? 'n/a' : g.met ? 'yes' : 'NO'])
    out.push('Goals', pad(goals), '')
  }
  for (const n of r.notes) out.push(`note: ${n}`)
  return out.join('\n')
}

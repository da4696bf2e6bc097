/**
 * What the benchmark's proxy workers (tunnel-worker.ts, gateway-worker.ts) share: the benchmark
 * database as a target, how the parent asks them for a memory figure and tells them to stop.
 */
import type {ChildProcess} from 'node:child_process'
import v8 from 'node:v8'

/** The benchmark's PostgreSQL, as the parent hands it to a worker. */
export interface BenchDatabase {
  host: string
  port: number
  database: string
  user: string
  password: string
}

/** JSON strings are YAML strings: any host, path or name is written safely. */
export const yamlString = (s: string): string => JSON.stringify(s)

/**
 * The lines of a target entry (under `targets:`) for the benchmark database; the password is read
 * from BENCH_PG_PASSWORD. `extra` lines go inside the entry.
 */
export function benchTargetYaml(name: string, pg: BenchDatabase, opts: {maxConnections?: number; extra?: string[]} = {}): string[] {
  return [
    `  ${name}:`,
    `    host: ${yamlString(pg.host)}`,
    `    port: ${pg.port}`,
    `    database: ${yamlString(pg.database)}`,
    `    user: ${yamlString(pg.user)}`,
    '    password: env:BENCH_PG_PASSWORD',
    '    tls: disable',
    ...(opts.extra ?? []),
    // The defaults (100 clients, 20 upstream sessions) would queue the idle-connection figure's clients until they time out.
    ...(opts.maxConnections ? [`    tunnel: {maxClientConnections: ${opts.maxConnections}, maxUpstreamSessions: ${opts.maxConnections}}`] : []),
  ]
}

/** Messages from the benchmark to a worker. */
export type ParentMessage = {type: 'memory'} | {type: 'close'}

/** A worker's memory after a garbage collection (the worker runs with --expose-gc). */
export interface MemoryReport {
  type: 'memory'
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
  arrayBuffers: number
  /** V8's young generation, committed (it stays at its peak after load until a release shrinks it). */
  newSpace?: number
  connections: number
}

/** The parent's side: asks a worker for its memory figure and waits for the answer. */
export function askMemory(child: ChildProcess): Promise<MemoryReport> {
  return new Promise((resolve) => {
    const on = (m: {type: string}) => {
      if (m.type !== 'memory') return
      child.off('message', on)
      resolve(m as MemoryReport)
    }
    child.on('message', on)
    child.send({type: 'memory'} satisfies ParentMessage)
  })
}

/**
 * Answers the parent's messages until it asks to close (or goes away, or a signal comes): then
 * closes the proxy once and exits.
 */
export function serveParent(proxy: {close(): Promise<void>; connections(): number}, send: (m: MemoryReport) => void): void {
  let closing = false
  const close = async (): Promise<void> => {
    if (closing) return
    closing = true
    await proxy.close().catch(() => {})
    process.exit(0)
  }
  process.on('disconnect', () => void close())
  process.on('SIGTERM', () => void close())
  process.on('SIGINT', () => void close())
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'close') void close()
    else if (m.type === 'memory') {
      ;(globalThis as {gc?: () => void}).gc?.()
      const u = process.memoryUsage()
      const newSpace = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size
      send({type: 'memory', rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers, newSpace, connections: proxy.connections()})
    }
  })
}

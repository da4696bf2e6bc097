/**
 * What the benchmark's proxy workers (tunnel-worker.ts, gateway-worker.ts) share: how the parent
 * asks them for a memory figure and tells them to stop.
 */

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
  connections: number
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
      send({type: 'memory', rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers, connections: proxy.connections()})
    }
  })
}

/**
 * Reads a plain TCP upstream socket into a buffer the connection keeps (`net.connect`'s `onread`),
 * instead of through the Readable stream: no fresh 64 KB buffer per read shrunk to its size, no
 * push, no 'data' event, no nextTick. PgBouncer reads into buffers it keeps in the same way.
 *
 * The price is a rule: a chunk handed to the sink is a view of a buffer the next read writes over.
 * Whatever keeps bytes past the call copies them (the framer's pending and partial frames, the
 * login's frames), and the sink answers whether anything may still hold the chunk after it returns
 * (a client write the kernel did not take at once): then the next read goes into a fresh buffer
 * and the old one is left to whoever holds it.
 *
 * Pausing works as for any socket: `socket.pause()` stops reading, `socket.resume()` starts again.
 */
import type net from 'node:net'

/**
 * A new connection's buffer, and the one after a read smaller than this: a transaction's reply
 * (pgbench's is ~70 bytes) and its requests fit, and an idle connection keeps only this, twice
 * (client and upstream): 1,000 idle connections kept 8 MB at 4 KiB.
 */
export const IDLE_READ = 1024
/** After a read filled an `IDLE_READ` buffer, or after a middling one that followed a large result. */
export const SMALL_READ = 4096
/** After a read filled the buffer: the size of Node's own reads, for large results. */
export const LARGE_READ = 64 * 1024

/**
 * Takes one chunk, valid only during the call; returns true when something may still hold a view
 * of it after the call returns.
 */
export type ReadSink = (chunk: Buffer) => boolean

export class UpstreamReader {
  private buffer: Buffer | undefined
  private sink: ReadSink | undefined
  /** Chunks that came while no sink was attached, copied. */
  private backlog: Buffer[] = []
  /** Whether the last chunk may still be held: the next read must not go into its buffer. */
  private held = false
  private lastRead = 0
  /** Fresh buffers handed out because the last chunk was still held (tests check that slow clients cause them). */
  replacedWhileHeld = 0

  /** For `net.connect({onread})`: Node calls `buffer` once when the socket is made and after every read. */
  readonly onread: net.OnReadOpts = {
    buffer: () => this.nextBuffer(),
    callback: (n: number, buf: Uint8Array) => {
      this.read(n, buf as Buffer)
      return true
    },
  }

  /** Hands every chunk to `sink` from now on, after what came while none was attached. */
  attach(sink: ReadSink): void {
    this.sink = sink
    while (this.backlog.length > 0 && this.sink === sink) sink(this.backlog.shift()!)
  }

  /** Later chunks are kept (copied) until the next `attach`. */
  detach(): void {
    this.sink = undefined
  }

  /** Puts bytes back in front of what the next sink gets (copied). */
  unshift(bytes: Buffer): void {
    if (bytes.length > 0) this.backlog.unshift(Buffer.from(bytes))
  }

  private read(n: number, buf: Buffer): void {
    this.lastRead = n
    const chunk = n === buf.length ? buf : buf.subarray(0, n)
    const sink = this.sink
    if (sink) {
      this.held = sink(chunk)
    } else {
      this.backlog.push(Buffer.from(chunk))
      this.held = false
    }
  }

  private nextBuffer(): Buffer {
    const current = this.buffer
    if (!current) return (this.buffer = Buffer.allocUnsafeSlow(IDLE_READ))
    // A read that filled the buffer has more behind it (a small buffer grows by steps); a small one
    // after a large result means the result is over, and an idle connection should not keep 64 KB.
    const last = this.lastRead
    const size = last >= current.length ? (current.length < SMALL_READ ? SMALL_READ : LARGE_READ) : last < IDLE_READ ? IDLE_READ : last < SMALL_READ ? Math.min(current.length, SMALL_READ) : current.length
    if (!this.held && size === current.length) return current
    if (this.held) this.replacedWhileHeld++
    this.held = false
    return (this.buffer = Buffer.allocUnsafeSlow(size))
  }
}

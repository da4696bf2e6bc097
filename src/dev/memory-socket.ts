/**
 * Just enough of a net.Socket for `ClientConnection`, in memory: the hot-path benchmark and the
 * protocol tests drive a connection with it, playing client and server byte by byte.
 */
import {EventEmitter} from 'node:events'

export class MemorySocket extends EventEmitter {
  destroyed = false
  ended = false
  remoteAddress = '127.0.0.1'
  remotePort = 5432
  /** What was written, when no sink takes it. */
  readonly written: Buffer[] = []

  /** `sink` receives every write instead of `written` keeping a copy (the benchmark counts, never keeps). */
  constructor(private readonly sink?: (b: Buffer) => void) {
    super()
  }

  write(b: Buffer): boolean {
    if (this.sink) this.sink(b)
    else this.written.push(Buffer.from(b))
    return true
  }

  /** Writes go out as they are made: corking changes nothing a reader of `written` could see. */
  cork(): void {}

  uncork(): void {}

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

  end(b?: Buffer): this {
    if (b) this.write(b)
    this.ended = true
    return this
  }

  destroy(): this {
    this.destroyed = true
    return this
  }

  /** Everything written since the last take, as one buffer. */
  take(): Buffer {
    return Buffer.concat(this.written.splice(0))
  }
}

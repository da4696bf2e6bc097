/**
 * Splits a byte stream into complete protocol frames without trusting the peer: lengths below 4
 * and above a cap, and headers the owner's check refuses (a type the phase does not have), are
 * refused before anything is allocated, and a frame that spans chunks is assembled in a buffer that
 * grows with the bytes that arrive, up to the size its header declares.
 */

import {codeName} from './codes.js'

export class ProtocolError extends Error {
  override name = 'ProtocolError'
  constructor(
    message: string,
    readonly sqlstate = '08P01',
  ) {
    super(message)
  }
}

export interface Frame {
  /** Message type byte; 0 for startup-phase packets, which have none. */
  code: number
  /** Body after the header (a view, valid until the next push). */
  body: Buffer
  /** The whole frame, header included (a view, valid until the next push). */
  raw: Buffer
  /** Where the frame lies, `source[start, end)`, for readers that need no view of it (`raw` then is never made). */
  readonly source?: Buffer
  readonly start?: number
  readonly end?: number
}

export interface FramerOptions {
  maxMessageSize: number
  /** What the limit is called in errors (the setting that raises it, or why it is fixed). */
  limitName?: string
  /** Start in the startup phase, where packets carry only a length. */
  startup?: boolean
  /** Startup packets are small by definition; PostgreSQL itself caps them at 10000 bytes. */
  maxStartupSize?: number
  /**
   * Judges each typed header (its type byte and length field, at least 4) before the body is read
   * or anything is allocated for it; throws to refuse the message. The cap above still applies.
   */
  checkHeader?: (code: number, length: number) => void
  /**
   * The peer's lengths are true (the database server's, after sign-in): a frame that spans chunks
   * is allocated whole at its header, instead of grown by doubling, which for a 300 MB row held
   * the last two sizes at once and copied the row twice over.
   */
  trustedLengths?: boolean
}

/** What a frame that spans chunks starts with, unless more has arrived: a typical socket read. */
const FIRST_PARTIAL_BYTES = 64 * 1024

export class Framer {
  private startup: boolean
  /**
   * When a chunk ends inside a frame's header: the header's first bytes (a copy, as the chunk's
   * memory may be reused), made on first need. The next chunk completes the header, and the frame
   * continues as one that spans chunks: no chunk is ever joined to the bytes before it.
   */
  private head: Buffer | undefined
  private headFilled = 0
  /** When a frame spans chunks: the buffer it is assembled in, how much of it is filled, and the frame's whole size. */
  private partial: Buffer | undefined
  private partialFilled = 0
  private partialTotal = 0
  private maxMessageSize: number
  private limitName: string
  private readonly maxStartupSize: number
  private readonly checkHeader: ((code: number, length: number) => void) | undefined
  private readonly trustedLengths: boolean

  constructor(options: FramerOptions) {
    this.startup = options.startup ?? false
    this.maxMessageSize = options.maxMessageSize
    this.limitName = options.limitName ?? 'tunnel.maxMessageSize'
    this.maxStartupSize = options.maxStartupSize ?? 10_000
    this.checkHeader = options.checkHeader
    this.trustedLengths = options.trustedLengths ?? false
  }

  /** Changes the cap for frames whose header has not been read yet (e.g. once a client has authenticated). */
  setLimit(maxMessageSize: number, limitName: string): void {
    this.maxMessageSize = maxMessageSize
    this.limitName = limitName
  }

  /** Leave the startup phase: later frames carry a type byte. */
  endStartup(): void {
    this.startup = false
  }

  get inStartup(): boolean {
    return this.startup
  }

  /** Bytes buffered that are not yet a complete frame. */
  get buffered(): number {
    return this.headFilled + this.partialFilled
  }

  /**
   * Feeds one chunk; calls `onFrame` for each complete frame in order. `onFrame` may switch the
   * phase (`endStartup`) and the next frame is read accordingly. Returns the chunk-relative
   * ranges are not exposed: callers that forward untouched bytes use `frame.raw`.
   */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    this.feed(chunk, onFrame, false)
  }

  /**
   * `push` for a consumer that may take the frames after its own together with it (a result
   * filter rewriting a run of rows): `onFrame` returns where in `frame.source` what it consumed
   * ends, `frame.end` or less for its own frame alone. Beyond that it may go only over whole frames
   * of the same chunk that it has checked as this framer would (length at least 4, body within
   * the limit); the framer resumes there, and makes no frame of them (a million rows of a result
   * are then a few thousand frames, not a million objects for the collector).
   */
  pushRuns(chunk: Buffer, onFrame: (frame: Frame) => number): void {
    this.feed(chunk, onFrame, true)
  }

  private feed(chunk: Buffer, onFrame: (frame: Frame) => number | void, runs: boolean): void {
    // The rare resumption (a header split across chunks, ~5% of a stream's 64 KB reads) is a call
    // of its own that comes back here: optimized code that meets it without type feedback leaves
    // only that call to the interpreter, not the loop over the whole chunk.
    if (this.headFilled > 0) return this.pushAfterHead(chunk, onFrame, runs)
    const end = chunk.length
    let offset = 0
    if (this.partial) {
      const take = Math.min(this.partialTotal - this.partialFilled, end)
      this.reserve(this.partialFilled + take)
      chunk.copy(this.partial, this.partialFilled, 0, take)
      this.partialFilled += take
      if (this.partialFilled < this.partialTotal) return
      const whole = this.partial
      this.partial = undefined
      this.partialFilled = 0
      this.emit(whole, 0, whole.length, onFrame)
      offset = take
    }
    for (;;) {
      const rest = end - offset
      const headerSize = this.startup ? 4 : 5
      if (rest < headerSize) break
      const length = this.startup ? chunk.readInt32BE(offset) : chunk.readInt32BE(offset + 1)
      this.checkLength(length, offset, chunk)
      if (rest < (this.startup ? length : length + 1)) break
      const total = this.startup ? length : length + 1
      const taken = this.emit(chunk, offset, offset + total, onFrame)
      offset += total
      if (runs && (taken as number) > offset) offset = this.resumeAt(taken as number, end)
    }
    // One way out for every chunk, so that the call has type feedback whatever the traffic was
    // when `push` was optimized; a branch inside it first met later costs only the tail.
    this.keepTail(chunk, offset, end)
  }

  /**
   * What `chunk` ends in after its last whole frame, kept for the next chunk: nothing, the start
   * of a header (copied: the chunk's memory may be reused), or the start of a frame whose header is
   * whole and checked, in a buffer of its own rather than joined to every next chunk.
   */
  private keepTail(chunk: Buffer, offset: number, end: number): void {
    const rest = end - offset
    if (rest === 0) return
    if (rest < (this.startup ? 4 : 5)) {
      this.head ??= Buffer.allocUnsafe(5)
      this.headFilled = chunk.copy(this.head, 0, offset, end)
      return
    }
    const length = this.startup ? chunk.readInt32BE(offset) : chunk.readInt32BE(offset + 1)
    this.startPartial(this.startup ? length : length + 1, rest)
    chunk.copy(this.partial!, 0, offset, end)
    this.partialFilled = rest
  }

  /**
   * Begins assembling a frame of `total` bytes of which `have` are at hand. Only what has arrived
   * is allocated (with room to grow): a header is the peer's word, and a client that declares a
   * 1 GiB message and sends ten bytes of it would otherwise hold a gigabyte of the tunnel's
   * address space, and count it against the collector's external-memory budget, for nothing.
   */
  private startPartial(total: number, have: number): void {
    this.partialTotal = total
    this.partial = Buffer.allocUnsafe(this.trustedLengths ? total : Math.min(total, Math.max(have, FIRST_PARTIAL_BYTES)))
  }

  /** Makes room in the frame being assembled for `size` bytes, doubling (at most to its declared size) to keep the copies linear. */
  private reserve(size: number): void {
    const partial = this.partial!
    if (size <= partial.length) return
    const grown = Buffer.allocUnsafe(Math.min(this.partialTotal, Math.max(size, partial.length * 2)))
    partial.copy(grown, 0, 0, this.partialFilled)
    this.partial = grown
  }

  /**
   * Completes a header split across chunks from `chunk`, checks its length as `push` does, and
   * makes the frame one that spans chunks, then hands the chunk back to `push`.
   */
  private pushAfterHead(chunk: Buffer, onFrame: (frame: Frame) => number | void, runs: boolean): void {
    const head = this.head!
    const headerSize = this.startup ? 4 : 5
    const take = Math.min(headerSize - this.headFilled, chunk.length)
    chunk.copy(head, this.headFilled, 0, take)
    this.headFilled += take
    if (this.headFilled < headerSize) return
    this.headFilled = 0
    const length = this.startup ? head.readInt32BE(0) : head.readInt32BE(1)
    this.checkLength(length, 0, head)
    this.startPartial(this.startup ? length : length + 1, headerSize)
    head.copy(this.partial!, 0, 0, headerSize)
    this.partialFilled = headerSize
    this.feed(take === 0 ? chunk : chunk.subarray(take), onFrame, runs)
  }

  /** Where `pushRuns` goes on after a consumer took frames up to `taken`: never past the chunk. */
  private resumeAt(taken: number, end: number): number {
    if (taken > end) throw new Error(`a frame consumer took bytes up to ${taken}, past the end of the chunk (${end})`)
    return taken
  }

  private checkLength(length: number, offset: number, buf: Buffer): void {
    if (this.startup) {
      if (length < 8 || length > this.maxStartupSize) {
        throw new ProtocolError(`invalid startup packet length ${length} (expected 8 to ${this.maxStartupSize} bytes)`)
      }
      return
    }
    if (length < 4) {
      throw new ProtocolError(`invalid message length ${length} for message type ${codeName(buf[offset] ?? 0)}`)
    }
    this.checkHeader?.(buf[offset]!, length)
    if (length - 4 > this.maxMessageSize) {
      throw new ProtocolError(
        `message of type ${codeName(buf[offset] ?? 0)} is ${length - 4} bytes, over the limit of ${this.maxMessageSize} bytes (${this.limitName})`,
        '54000',
      )
    }
  }

  private emit(buf: Buffer, start: number, end: number, onFrame: (frame: Frame) => number | void): number | void {
    return onFrame(new FrameView(this.startup ? 0 : buf[start]!, buf, this.startup ? 4 : 5, start, end))
  }
}

/** The byte at `at` of the whole frame (header included), read without making a view of it; undefined past its end. */
export function frameByte(frame: Frame, at: number): number | undefined {
  const source = frame.source
  if (source === undefined) return frame.raw[at]
  const i = frame.start! + at
  return i < frame.end! ? source[i] : undefined
}

/**
 * A frame whose body view is made only when read: most frames a tunnel forwards (DataRow,
 * BindComplete, Sync…) are passed on as `raw` and their body is never looked at.
 */
export class FrameView implements Frame {
  private view: Buffer | undefined
  private whole: Buffer | undefined

  constructor(
    readonly code: number,
    public source: Buffer,
    private readonly headerSize: number,
    public start = 0,
    public end = source.length,
  ) {}

  /** Made on first read: a row the masking filter rewrites never needs it. */
  get raw(): Buffer {
    return (this.whole ??= this.start === 0 && this.end === this.source.length ? this.source : this.source.subarray(this.start, this.end))
  }

  /** A frame kept past its chunk is given a copy: its body is then read from the copy. */
  set raw(raw: Buffer) {
    this.whole = raw
    this.source = raw
    this.start = 0
    this.end = raw.length
    this.view = undefined
  }

  get body(): Buffer {
    return (this.view ??= this.source.subarray(this.start + this.headerSize, this.end))
  }

  set body(body: Buffer) {
    this.view = body
  }
}

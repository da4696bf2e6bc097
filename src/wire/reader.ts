import {ProtocolError} from './framer.js'

/**
 * A bounds-checked cursor over one message body, `buf[start, end)` (all of `buf` by default, so a
 * body can be read in place in its chunk, without a view); every read past the end is a ProtocolError.
 */
export class Reader {
  offset: number
  private readonly end: number

  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
    start = 0,
    end = buf.length,
  ) {
    this.offset = start
    this.end = end
  }

  get remaining(): number {
    return this.end - this.offset
  }

  private need(n: number): void {
    if (this.offset + n > this.end) throw new ProtocolError(`truncated ${this.what} message`)
  }

  byte(): number {
    this.need(1)
    return this.buf[this.offset++]!
  }

  int16(): number {
    this.need(2)
    const v = this.buf.readInt16BE(this.offset)
    this.offset += 2
    return v
  }

  /**
   * A count of a frontend message (parameters, their types and formats, result formats), which the
   * server reads unsigned (pq_getmsgint(msg, 2)): 0x8000 is 32,768 values to it, not -32,768.
   */
  uint16(): number {
    this.need(2)
    const v = this.buf.readUInt16BE(this.offset)
    this.offset += 2
    return v
  }

  int32(): number {
    this.need(4)
    const v = this.buf.readInt32BE(this.offset)
    this.offset += 4
    return v
  }

  uint32(): number {
    this.need(4)
    const v = this.buf.readUInt32BE(this.offset)
    this.offset += 4
    return v
  }

  cstring(): string {
    const end = this.buf.indexOf(0, this.offset)
    if (end < 0 || end >= this.end) throw new ProtocolError(`unterminated string in ${this.what} message`)
    const s = this.buf.toString('utf8', this.offset, end)
    this.offset = end + 1
    return s
  }

  bytes(n: number): Buffer {
    if (n < 0) throw new ProtocolError(`negative length in ${this.what} message`)
    this.need(n)
    const b = this.buf.subarray(this.offset, this.offset + n)
    this.offset += n
    return b
  }

  /** Moves past `n` bytes without a view of them. */
  skip(n: number): void {
    if (n < 0) throw new ProtocolError(`negative length in ${this.what} message`)
    this.need(n)
    this.offset += n
  }

  rest(): Buffer {
    const b = this.buf.subarray(this.offset, this.end)
    this.offset = this.end
    return b
  }
}

import {ProtocolError} from './framer.js'

/** A bounds-checked cursor over one message body; every read past the end is a ProtocolError. */
export class Reader {
  offset = 0
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.buf.length - this.offset
  }

  private need(n: number): void {
    if (this.offset + n > this.buf.length) throw new ProtocolError(`truncated ${this.what} message`)
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
    if (end < 0) throw new ProtocolError(`unterminated string in ${this.what} message`)
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

  rest(): Buffer {
    const b = this.buf.subarray(this.offset)
    this.offset = this.buf.length
    return b
  }
}

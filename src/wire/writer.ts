/** Builds one message; the 5-byte header is back-filled at `finish`. */
export class Writer {
  private buf: Buffer
  private len = 5

  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(Math.max(size, 16))
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n))
    this.buf.copy(next, 0, 0, this.len)
    this.buf = next
  }

  byte(v: number): this {
    this.ensure(1)
    this.buf[this.len++] = v
    return this
  }

  int16(v: number): this {
    this.ensure(2)
    this.buf.writeInt16BE(v, this.len)
    this.len += 2
    return this
  }

  int32(v: number): this {
    this.ensure(4)
    this.buf.writeInt32BE(v, this.len)
    this.len += 4
    return this
  }

  uint32(v: number): this {
    this.ensure(4)
    this.buf.writeUInt32BE(v, this.len)
    this.len += 4
    return this
  }

  cstring(s: string): this {
    const n = Buffer.byteLength(s)
    this.ensure(n + 1)
    this.buf.write(s, this.len, 'utf8')
    this.len += n
    this.buf[this.len++] = 0
    return this
  }

  bytes(b: Buffer): this {
    this.ensure(b.length)
    b.copy(this.buf, this.len)
    this.len += b.length
    return this
  }

  /** A typed message: code byte, int32 length, body. */
  finish(code: number): Buffer {
    this.buf[0] = code
    this.buf.writeInt32BE(this.len - 1, 1)
    return this.buf.subarray(0, this.len)
  }

  /** A startup-phase packet: int32 length, body (no code byte). */
  finishUntyped(): Buffer {
    const out = this.buf.subarray(1, this.len)
    out.writeInt32BE(out.length, 0)
    return out
  }
}

import {describe, expect, it} from 'vitest'
import {Framer, ProtocolError} from '../../src/wire/framer.js'

/** A typed frame: type byte, length, body. */
function frame(code: number, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body
  const head = Buffer.alloc(5)
  head[0] = code
  head.writeInt32BE(b.length + 4, 1)
  return Buffer.concat([head, b])
}

/** A startup-phase packet: length, then the body. */
function startupPacket(body: string): Buffer {
  const b = Buffer.from(body)
  const head = Buffer.alloc(4)
  head.writeInt32BE(b.length + 4)
  return Buffer.concat([head, b])
}

/**
 * Feeds `stream` cut at `cuts` through one buffer that every read is copied into, as a socket's
 * kept read buffer is: a framer that keeps a view of a read past `push` sees it overwritten.
 * Returns a copy of every frame's raw bytes, made when it is emitted.
 */
function feed(framer: Framer, stream: Buffer, cuts: number[], onFrame?: (raw: Buffer) => void): Buffer[] {
  const readBuffer = Buffer.alloc(stream.length + 1)
  const got: Buffer[] = []
  let from = 0
  for (const to of [...cuts, stream.length]) {
    const n = stream.copy(readBuffer, 0, from, to)
    framer.push(readBuffer.subarray(0, n), (f) => {
      expect(f.raw.subarray(f.code === 0 ? 4 : 5)).toEqual(f.body)
      got.push(Buffer.from(f.raw))
      onFrame?.(f.raw)
    })
    // What the next read does to the memory of this one before it is pushed.
    readBuffer.fill(0xee)
    from = to
  }
  return got
}

// Frames of every size the header split meets: a bare header (ParseComplete), a short body, a long one.
const FRAMES = [frame(0x31), frame(0x44, 'a'), frame(0x43, 'SELECT 1\0'), frame(0x64, 'x'.repeat(40)), frame(0x31), frame(0x5a, 'I')]
const STREAM = Buffer.concat(FRAMES)

describe('a frame header split across reads', () => {
  it('gives every frame whole wherever one cut falls, with the read buffer reused', () => {
    for (let cut = 0; cut <= STREAM.length; cut++) {
      expect(feed(new Framer({maxMessageSize: 1 << 20}), STREAM, [cut])).toEqual(FRAMES)
    }
  })

  it('gives every frame whole wherever two cuts fall (a header cut into three reads)', () => {
    for (let a = 0; a <= STREAM.length; a++) {
      for (let b = a; b <= Math.min(STREAM.length, a + 6); b++) {
        expect(feed(new Framer({maxMessageSize: 1 << 20}), STREAM, [a, b])).toEqual(FRAMES)
      }
    }
  })

  it('gives every frame whole when the stream arrives a byte at a time', () => {
    const cuts = Array.from({length: STREAM.length - 1}, (_, i) => i + 1)
    expect(feed(new Framer({maxMessageSize: 1 << 20}), STREAM, cuts)).toEqual(FRAMES)
  })

  it('reads the header after the startup phase ends in the frame before it', () => {
    const startup = startupPacket('user\0bench\0\0')
    const stream = Buffer.concat([startup, ...FRAMES])
    for (let cut = startup.length; cut <= startup.length + 6; cut++) {
      const framer = new Framer({maxMessageSize: 1 << 20, startup: true})
      const got = feed(framer, stream, [cut], () => framer.endStartup())
      expect(got).toEqual([startup, ...FRAMES])
    }
  })

  it('counts the header bytes it holds as buffered', () => {
    const framer = new Framer({maxMessageSize: 1 << 20})
    framer.push(FRAMES[2]!.subarray(0, 3), () => {})
    expect(framer.buffered).toBe(3)
    framer.push(FRAMES[2]!.subarray(3, 7), () => {})
    expect(framer.buffered).toBe(7)
    const got: Buffer[] = []
    framer.push(FRAMES[2]!.subarray(7), (f) => void got.push(Buffer.from(f.raw)))
    expect(got).toEqual([FRAMES[2]])
    expect(framer.buffered).toBe(0)
  })

  it('refuses a length over the limit as it does when the header arrives whole', () => {
    const big = Buffer.alloc(5)
    big[0] = 0x44
    big.writeInt32BE(1000 + 4, 1)
    const whole = (() => {
      try {
        new Framer({maxMessageSize: 100}).push(big, () => {})
      } catch (error) {
        return error as ProtocolError
      }
    })()
    expect(whole).toBeInstanceOf(ProtocolError)
    for (let cut = 1; cut < 5; cut++) {
      const framer = new Framer({maxMessageSize: 100})
      framer.push(big.subarray(0, cut), () => {})
      expect(() => framer.push(big.subarray(cut), () => {})).toThrow(whole!.message)
    }
    const short = Buffer.from([0x44, 0, 0, 0, 3])
    const framer = new Framer({maxMessageSize: 100})
    framer.push(short.subarray(0, 2), () => {})
    expect(() => framer.push(short.subarray(2), () => {})).toThrow(/invalid message length 3 for message type/)
  })

  it("judges a split header with the owner's check too, before any of the body", () => {
    // A Sync that declares 900 MB: refused from its header, wherever the header is cut.
    const sync = Buffer.from([0x53, 0, 0, 0, 0])
    sync.writeInt32BE(900_000_000, 1)
    const checkHeader = (code: number, length: number) => {
      if (code === 0x53 && length !== 4) throw new ProtocolError(`invalid length ${length} for a Sync message`)
    }
    for (let cut = 1; cut < 5; cut++) {
      const framer = new Framer({maxMessageSize: 1 << 30, checkHeader})
      framer.push(sync.subarray(0, cut), () => {})
      expect(() => framer.push(sync.subarray(cut), () => {})).toThrow('invalid length 900000000 for a Sync message')
    }
  })

  it('reads the frames after a split header from the read itself, not from a joined copy', () => {
    const framer = new Framer({maxMessageSize: 1 << 20})
    framer.push(STREAM.subarray(0, 2), () => {})
    // A buffer of its own (not a slice of the shared pool a joined copy could also come from).
    const second = Buffer.alloc(STREAM.length - 2)
    STREAM.copy(second, 0, 2)
    const sources: Buffer[] = []
    framer.push(second, (f) => void sources.push(f.source!))
    expect(sources).toHaveLength(FRAMES.length)
    // The split frame is assembled in a buffer of its own; every later one lies in the read.
    for (const s of sources.slice(1)) expect(s.buffer).toBe(second.buffer)
  })
})

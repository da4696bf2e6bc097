/**
 * What an idle connection keeps of its read buffers: 1 KiB per side once its last read was small,
 * whatever it read before (a large result's 64 KB buffers are not kept), and every byte still
 * reaches the sink in order as the buffer grows and shrinks.
 */
import {describe, expect, it} from 'vitest'
import {IDLE_READ, LARGE_READ, SMALL_READ, UpstreamReader} from '../../src/proxy/upstream-reader.js'

function harness() {
  const reader = new UpstreamReader()
  const got: Buffer[] = []
  reader.attach((chunk) => {
    got.push(Buffer.from(chunk))
    return false
  })
  let next = (reader.onread.buffer as () => Buffer)()
  const sizes: number[] = [next.length]
  /** One read of `bytes` (as much as the buffer Node holds takes: the kernel keeps the rest for the next read). */
  const read = (bytes: Buffer): Buffer => {
    const n = Math.min(bytes.length, next.length)
    bytes.copy(next, 0, 0, n)
    reader.onread.callback(n, next)
    next = (reader.onread.buffer as () => Buffer)()
    sizes.push(next.length)
    return bytes.subarray(n)
  }
  const readAll = (bytes: Buffer) => {
    while (bytes.length > 0) bytes = read(bytes)
  }
  return {read, readAll, got, sizes, current: () => next}
}

describe('an idle connection keeps a small read buffer', () => {
  it('starts with and keeps 1 KiB for short requests and replies', () => {
    const h = harness()
    expect(h.current().length).toBe(IDLE_READ)
    for (let i = 0; i < 50; i++) h.readAll(Buffer.alloc(70, i))
    expect(new Set(h.sizes)).toEqual(new Set([IDLE_READ]))
  })

  it('grows for a large result by steps, and goes back to 1 KiB after it, bytes in order', () => {
    const h = harness()
    const stream = Buffer.alloc(5 * LARGE_READ + 333)
    for (let i = 0; i < stream.length; i++) stream[i] = (i * 7 + (i >> 9)) & 0xff
    h.readAll(stream)
    expect(h.sizes).toContain(SMALL_READ)
    expect(h.sizes).toContain(LARGE_READ)
    h.readAll(Buffer.alloc(70, 1))
    expect(h.current().length).toBe(IDLE_READ)
    expect(Buffer.concat(h.got).equals(Buffer.concat([stream, Buffer.alloc(70, 1)]))).toBe(true)
  })

  it('a middling read after a large result keeps at most 4 KiB', () => {
    const h = harness()
    h.readAll(Buffer.alloc(3 * LARGE_READ, 2))
    h.read(Buffer.alloc(2000, 3))
    expect(h.current().length).toBe(SMALL_READ)
  })
})

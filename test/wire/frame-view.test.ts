import {describe, expect, it} from 'vitest'
import {Framer, type Frame} from '../../src/wire/framer.js'

/** Query frames ('Q', length, text, NUL). */
function query(text: string): Buffer {
  const body = Buffer.from(`${text}\0`)
  const head = Buffer.alloc(5)
  head[0] = 0x51
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

describe('frames with a body read on demand', () => {
  it('give every frame its own body, however the stream is split', () => {
    const texts = ['select 1', '', 'select ' + 'x'.repeat(300), 'select 2']
    const stream = Buffer.concat(texts.map(query))
    for (const size of [1, 2, 3, 5, 7, 64, stream.length]) {
      const framer = new Framer({maxMessageSize: 1 << 20})
      const got: string[] = []
      for (let at = 0; at < stream.length; at += size) {
        framer.push(stream.subarray(at, at + size), (f) => {
          expect(f.code).toBe(0x51)
          expect(f.raw.subarray(5)).toEqual(f.body)
          got.push(f.body.subarray(0, -1).toString())
        })
      }
      expect(got).toEqual(texts)
    }
  })

  it('read the body from the copy a frame kept past its chunk was given, not from the reused chunk', () => {
    const chunk = query('select 1')
    let kept: Frame | undefined
    new Framer({maxMessageSize: 1 << 20}).push(chunk, (f) => {
      // What a message waiting for a verdict does: keep a copy, as the chunk's memory is reused.
      f.raw = Buffer.from(f.raw)
      kept = f
    })
    chunk.fill(0x41)
    expect(kept!.body.toString()).toBe('select 1\0')
    expect(kept!.raw.subarray(5).toString()).toBe('select 1\0')
  })

  it('read a body first taken from the chunk from the copy once the frame is given one', () => {
    const chunk = query('select 1')
    let kept: Frame | undefined
    new Framer({maxMessageSize: 1 << 20}).push(chunk, (f) => {
      expect(f.body.toString()).toBe('select 1\0')
      f.raw = Buffer.from(f.raw)
      kept = f
    })
    chunk.fill(0x41)
    expect(kept!.body.toString()).toBe('select 1\0')
  })
})

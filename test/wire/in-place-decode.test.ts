/**
 * Client messages decoded in place in their chunk (`Reader` over `buf[start, end)`): the same
 * result as from a view of the body, and never a byte of the message after it, however that
 * message is made (a string whose terminator is missing must not end in the next message).
 */
import {serialize} from 'pg-protocol'
import {describe, expect, it} from 'vitest'
import {ProtocolError} from '../../src/wire/framer.js'
import {decodeBind, decodeDescribeOrClose, decodeExecute} from '../../src/wire/frontend.js'

/** A message with the given code and body, its length as the header says. */
const message = (code: number, body: Buffer) => {
  const out = Buffer.alloc(5 + body.length)
  out[0] = code
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}

/** Every decode, in place (the message followed by `after`) and from a view of its body. */
function both<T>(decode: (buf: Buffer, start: number, end: number) => T, msg: Buffer, after: Buffer): {inPlace: () => T; view: () => T} {
  const chunk = Buffer.concat([Buffer.from([0x53, 0, 0, 0, 4]), msg, after])
  const start = 5
  return {inPlace: () => decode(chunk, start + 5, start + msg.length), view: () => decode(msg.subarray(5), 0, msg.length - 5)}
}

const followers = [serialize.sync(), Buffer.from([0x50, 0, 0, 0, 6, 0, 0]), Buffer.alloc(0)]

describe('client messages decoded in place', () => {
  it('give what a view of the body gives, for well-formed messages', () => {
    const bind = serialize.bind({portal: 'p', statement: 's', values: ['1', null, 'xyz'], binary: false})
    const execute = serialize.execute({portal: 'p', rows: 7})
    const describe_ = serialize.describe({type: 'S', name: 's'})
    const close = serialize.close({type: 'P', name: 'p'})
    for (const after of followers) {
      for (const withParams of [true, false]) {
        const b = both((buf, s, e) => decodeBind(buf, s, e, withParams), bind, after)
        const got = b.inPlace()
        expect(got).toEqual(b.view())
        expect(got.portal).toBe('p')
        expect(got.statement).toBe('s')
        expect(got.params.map((p) => p?.toString() ?? null)).toEqual(withParams ? ['1', null, 'xyz'] : [])
      }
      const e = both((buf, s, en) => decodeExecute(buf, s, en), execute, after)
      expect(e.inPlace()).toEqual({portal: 'p', maxRows: 7})
      expect(both((buf, s, en) => decodeDescribeOrClose(buf, 'Describe', s, en), describe_, after).inPlace()).toEqual({target: 'S', name: 's'})
      expect(both((buf, s, en) => decodeDescribeOrClose(buf, 'Close', s, en), close, after).inPlace()).toEqual({target: 'P', name: 'p'})
    }
  })

  it('refuse a string without its terminator, also when the next message holds a zero byte', () => {
    for (const after of followers) {
      const cases = [
        both((buf, s, e) => decodeExecute(buf, s, e), message(0x45, Buffer.from('portal')), after),
        both((buf, s, e) => decodeDescribeOrClose(buf, 'Describe', s, e), message(0x44, Buffer.from('Sname')), after),
        both((buf, s, e) => decodeBind(buf, s, e, false), message(0x42, Buffer.from('portal')), after),
        both((buf, s, e) => decodeBind(buf, s, e, false), message(0x42, Buffer.from('p\0stmt')), after),
      ]
      for (const c of cases) {
        expect(c.view).toThrow(ProtocolError)
        expect(c.inPlace).toThrow(ProtocolError)
        expect(c.inPlace).toThrow(/unterminated string/)
      }
    }
  })

  it('refuse a parameter or count that runs past the message, with or without the values kept', () => {
    const full = serialize.bind({portal: '', statement: 's', values: ['a-long-parameter-value'], binary: false})
    // Cut the body short at every point inside the parameters and result formats: what remains in the chunk is the next message.
    for (let cut = 8; cut < full.length - 5; cut++) {
      const body = full.subarray(5, 5 + cut)
      const msg = message(0x42, body)
      for (const after of followers.concat([full])) {
        for (const withParams of [true, false]) {
          const c = both((buf, s, e) => decodeBind(buf, s, e, withParams), msg, after)
          let viewError: unknown
          try {
            c.view()
          } catch (error) {
            viewError = error
          }
          if (viewError) expect(c.inPlace, `cut ${cut}`).toThrow(ProtocolError)
          else expect(c.inPlace(), `cut ${cut}`).toEqual(c.view())
        }
      }
    }
  })
})

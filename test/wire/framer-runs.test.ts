/**
 * `Framer.pushRuns`: a consumer that took the frames after its own (a result filter rewriting a
 * run of rows) returns where they end, and the framer resumes there without making frames of
 * them. It must never skip anything else: frames of another chunk, bytes past the chunk, or
 * frames for a consumer of `push` whose callback happens to return a number.
 */
import {describe, expect, it} from 'vitest'
import {Framer} from '../../src/wire/framer.js'

function frame(code: number, body: string): Buffer {
  const b = Buffer.from(body)
  const head = Buffer.alloc(5)
  head[0] = code
  head.writeInt32BE(b.length + 4, 1)
  return Buffer.concat([head, b])
}

const ROWS = Array.from({length: 12}, (_, i) => frame(0x44, `row ${i}${'.'.repeat(i)}`))
const STREAM = Buffer.concat([frame(0x54, 'head'), ...ROWS, frame(0x43, 'SELECT 12'), frame(0x5a, 'I')])
const ends: number[] = []
for (let at = 0; at < STREAM.length; ) ends.push((at += 1 + STREAM.readInt32BE(at + 1)))

describe('Framer.pushRuns', () => {
  it('resumes after the frames the consumer took, and frames the rest', () => {
    const seen: string[] = []
    new Framer({maxMessageSize: 1 << 20}).pushRuns(STREAM, (f) => {
      seen.push(f.raw.toString('latin1', 5))
      // The first row takes itself and the next four; the others only themselves.
      return f.raw.toString('latin1', 5) === 'row 0' ? ends[5]! : f.end!
    })
    expect(seen).toEqual(['head', 'row 0', 'row 5.....', 'row 6......', 'row 7.......', 'row 8........', 'row 9.........', 'row 10..........', 'row 11...........', 'SELECT 12', 'I'])
  })

  it('frames everything when the consumer returns its frame’s end, less, or 0', () => {
    for (const back of [(f: {end?: number}) => f.end!, () => 0, (f: {start?: number}) => f.start!]) {
      let n = 0
      new Framer({maxMessageSize: 1 << 20}).pushRuns(STREAM, (f) => (n++, back(f)))
      expect(n).toBe(ends.length)
    }
  })

  it('refuses an offset past the end of the chunk instead of carrying it to the next one', () => {
    const framer = new Framer({maxMessageSize: 1 << 20})
    expect(() => framer.pushRuns(STREAM.subarray(0, ends[3]!), (f) => (f.code === 0x44 ? ends[5]! : f.end!))).toThrow(/past the end of the chunk/)
  })

  it('ignores what a consumer returns for a frame assembled from several chunks', () => {
    // The first row spans two chunks: its frame lies in a buffer of its own, whose offsets say
    // nothing of the chunk that completed it; every frame of that chunk must still be framed.
    for (const cut of [ends[0]! + 3, ends[0]! + 7, ends[1]! - 1]) {
      const seen: string[] = []
      const framer = new Framer({maxMessageSize: 1 << 20})
      // The spanning row claims all of its source; every other frame only itself.
      const consume = (f: {raw: Buffer; source?: Buffer; end?: number}) => {
        const text = f.raw.toString('latin1', 5)
        seen.push(text)
        return text === 'row 0' ? f.source!.length : f.end!
      }
      framer.pushRuns(STREAM.subarray(0, cut), consume)
      framer.pushRuns(STREAM.subarray(cut), consume)
      expect(seen, `cut at ${cut}`).toEqual(['head', ...ROWS.map((r) => r.toString('latin1', 5)), 'SELECT 12', 'I'])
    }
  })

  it('skips nothing for `push`, whatever its callback returns', () => {
    const seen: number[] = []
    // Array.prototype.push returns a number: a callback written this way must not skip frames.
    new Framer({maxMessageSize: 1 << 20}).push(STREAM, (f) => seen.push(f.end! + 1000))
    expect(seen).toHaveLength(ends.length)
  })
})

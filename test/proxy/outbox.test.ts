/**
 * What the tunnel writes per turn (`Outbox`): frames passed untouched are kept as spans of their
 * chunk, everything else as buffers, and the bytes written must be exactly what was added, in the
 * order it was added, however the stream was cut.
 */
import net from 'node:net'
import {serialize} from 'pg-protocol'
import {beforeAll, describe, expect, it} from 'vitest'
import {JOIN_COPY_LIMIT, Outbox, writeAll} from '../../src/proxy/outbox.js'
import type {ProxyHooks} from '../../src/proxy/seam.js'
import {loadParser} from '../../src/sql/parser.js'
import {encodeNotice} from '../../src/wire/backend.js'
import {Framer, type Frame} from '../../src/wire/framer.js'
import {everySplit, memoryConnection} from '../helpers/memory-connection.js'
import {server} from '../helpers/wire-encode.js'

beforeAll(() => loadParser())

/** What `take` gave, as the one buffer the peer reads. */
function joined(out: Buffer | Buffer[] | undefined): Buffer {
  return out === undefined ? Buffer.alloc(0) : Array.isArray(out) ? Buffer.concat(out) : out
}

function framesOf(chunk: Buffer): Frame[] {
  const out: Frame[] = []
  new Framer({maxMessageSize: 1 << 20}).push(chunk, (f) => void out.push(f))
  return out
}

const messages = [serialize.parse({name: 'a', text: 'SELECT 1'}), serialize.bind({}), serialize.execute({}), serialize.sync()]

describe('Outbox', () => {
  it('writes a chunk whose frames all go on untouched as that chunk, with no copy or view', () => {
    const chunk = Buffer.concat(messages)
    const box = new Outbox()
    for (const f of framesOf(chunk)) box.pass(f)
    expect(box.take()).toBe(chunk)
    expect(box.empty).toBe(true)
    expect(box.take()).toBeUndefined()
  })

  it('keeps the order of passed frames, skipped frames and added buffers in every combination', () => {
    const chunk = Buffer.concat(messages)
    const frames = framesOf(chunk)
    const extra = [Buffer.from('X1'), Buffer.from('Y22')]
    // Each frame is passed, skipped, or replaced by a buffer; a buffer may also come between frames.
    for (let mask = 0; mask < 3 ** frames.length; mask++) {
      for (const between of [false, true]) {
        const box = new Outbox()
        const expected: Buffer[] = []
        let m = mask
        frames.forEach((f, i) => {
          const what = m % 3
          m = Math.floor(m / 3)
          if (between && i === 2) {
            box.parts.push(extra[1]!)
            expected.push(extra[1]!)
          }
          if (what === 0) {
            box.pass(f)
            expected.push(messages[i]!)
          } else if (what === 1) {
            box.parts.push(extra[0]!)
            expected.push(extra[0]!)
          }
        })
        const out = joined(box.take())
        expect(out.equals(Buffer.concat(expected)), `mask ${mask}, between ${between}`).toBe(true)
        expect(box.empty).toBe(true)
      }
    }
  })

  it('does not join frames of two chunks, even where one starts at the offset where the other ended', () => {
    const first = Buffer.concat(messages)
    const query = serialize.query('SELECT 2')
    const second = Buffer.concat([messages[0]!, query])
    const box = new Outbox()
    box.pass(framesOf(first)[0]!)
    box.pass(framesOf(second)[1]!)
    expect(joined(box.take()).equals(Buffer.concat([messages[0]!, query]))).toBe(true)
  })

  it('hands over a large row and what follows it as they are, not copied into one buffer, and writes them in order', async () => {
    const row = Buffer.alloc(JOIN_COPY_LIMIT + 10, 0x61)
    const tag = serialize.query('SELECT 1')
    const box = new Outbox()
    box.parts.push(row)
    box.parts.push(tag)
    const out = box.take()
    expect(Array.isArray(out)).toBe(true)
    expect((out as Buffer[])[0]).toBe(row)
    // Through a real socket pair: the peer reads the same bytes as one write of both would give.
    const server = net.createServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const got: Buffer[] = []
    const received = new Promise<void>((resolve) =>
      server.once('connection', (s) => {
        s.on('data', (d) => got.push(d))
        s.on('end', () => resolve())
      }),
    )
    const sock = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
    await new Promise((r) => sock.once('connect', r))
    writeAll(sock, out!)
    sock.end()
    await received
    server.close()
    expect(Buffer.concat(got).equals(Buffer.concat([row, tag]))).toBe(true)
  })

  it('drops everything on clear', () => {
    const box = new Outbox()
    for (const f of framesOf(Buffer.concat(messages))) box.pass(f)
    box.parts.push(Buffer.from('x'))
    box.clear()
    expect(box.empty).toBe(true)
    expect(box.take()).toBeUndefined()
  })
})

describe('what the tunnel forwards, byte for byte', () => {
  it('client → server: refused messages replaced in place between messages passed on, for every cut', () => {
    // Bind of a statement the tunnel does not know is replaced by one the server refuses, and so is
    // the Execute of the portal it would have made; Parse, Describe and Sync go on as they came.
    const parse = serialize.parse({name: 's1', text: 'SELECT 1'})
    const describe = serialize.describe({type: 'S', name: 's1'})
    const stream = Buffer.concat([parse, serialize.bind({portal: '', statement: 'nope'}), describe, serialize.execute({portal: ''}), serialize.sync()])
    // Each refusal is a Bind the server rejects while reading it (two parameter formats, no parameters).
    const names = Buffer.from('dbgate refused portal\0dbgate refused binding\0')
    const refusal = Buffer.concat([Buffer.from([0x42, 0, 0, 0, 4 + names.length + 10]), names, Buffer.from([0, 2, 0, 0, 0, 0, 0, 0, 0, 0])])
    const expected = Buffer.concat([parse, refusal, describe, refusal, serialize.sync()])
    for (const chunks of everySplit(stream)) {
      const m = memoryConnection()
      m.fromClient(chunks)
      expect(m.upstream.take().equals(expected), `cut into ${chunks.length}`).toBe(true)
    }
  })

  it('server → client: a rewritten notice in the middle of a reply stays where it was, for every cut', () => {
    const hooks: ProxyHooks = {resultFilter: () => ({notice: (n) => ({...n, message: 'rewritten'})})}
    const notice = encodeNotice({severity: 'NOTICE', code: '00000', message: 'original'})
    const rewritten = encodeNotice({severity: 'NOTICE', code: '00000', message: 'rewritten'})
    const head = Buffer.concat([server.rowDescription(1), server.dataRow('1')])
    const tail = Buffer.concat([server.dataRow('2'), server.complete('SELECT 2'), server.ready('I')])
    const reply = Buffer.concat([head, notice, tail])
    for (const chunks of everySplit(reply)) {
      const m = memoryConnection(hooks)
      m.fromClient([serialize.query('SELECT x FROM generate_series(1, 2) x')])
      m.upstream.take()
      m.fromServer(chunks)
      expect(m.client.take().equals(Buffer.concat([head, rewritten, tail])), `cut into ${chunks.length}`).toBe(true)
    }
  })
})

/**
 * The client socket read into a buffer the connection keeps (`adoptClientSocket`): what the
 * upstream gets must be the client's bytes exactly, also while the upstream's writes wait in
 * flight (they hold views of the buffer, so the next read must go into a fresh one), and the
 * listener's accounting must follow the adopted socket.
 */
import {createHash} from 'node:crypto'
import net from 'node:net'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {MemorySocket} from '../../src/dev/memory-socket.js'
import {adoptClientSocket} from '../../src/proxy/client-socket.js'
import type {ClientConnection} from '../../src/proxy/connection.js'
import {ClientConnection as Connection} from '../../src/proxy/connection.js'
import {UpstreamReader} from '../../src/proxy/upstream-reader.js'
import type {UpstreamSession} from '../../src/proxy/upstream.js'
import {loadParser} from '../../src/sql/parser.js'
import {encodeCopyData} from '../../src/wire/backend.js'
import {encodeQuery} from '../../src/wire/frontend.js'
import {connectionEnv} from '../helpers/memory-connection.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'

beforeAll(() => loadParser())

/** An upstream whose writes the "kernel" does not take at once: each keeps the very buffer it was given. */
class HoldingSocket extends MemorySocket {
  readonly held: Buffer[] = []
  override write(b: Buffer): boolean {
    this.held.push(b)
    return true
  }
  get writableLength(): number {
    return this.held.reduce((n, b) => n + b.length, 0)
  }
}

/** Plays Node's C++ reader: copies each piece into whatever buffer the reader handed out last. */
function feeder(reader: UpstreamReader) {
  const next = reader.onread.buffer as () => Buffer
  let buf = next()
  return (bytes: Buffer, size: (at: number) => number) => {
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(buf.length, bytes.length - at, size(at))
      bytes.copy(buf, 0, at, at + n)
      reader.onread.callback(n, buf)
      buf = next()
      at += n
    }
  }
}

/**
 * Read sizes that mostly end on a message's end (so that a read's frames are written as a view of
 * the read buffer, not joined to a partial frame's copy), now and then anywhere.
 */
function pieceSizes(stream: Buffer, seed: number): (at: number) => number {
  const ends: number[] = []
  for (let at = 0; at < stream.length; ) ends.push((at += 1 + stream.readUInt32BE(at + 1)))
  let x = seed
  return (at) => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    const next = x % 100 < 75 ? (ends.find((e) => e > at + (x % 20_000)) ?? stream.length) : at + 1 + (x % 5000)
    return Math.max(1, Math.min(next, stream.length) - at)
  }
}

/** Pipelined queries and a COPY FROM STDIN whose rows say where they belong, as a client sends them. */
function clientStream(): Buffer {
  const parts: Buffer[] = []
  const text = (n: number, size: number) => Array.from({length: size}, (_, i) => String.fromCharCode(0x41 + ((n * 7 + i) % 26))).join('')
  for (let q = 0; q < 200; q++) parts.push(encodeQuery(`insert into t values (${q}, '${text(q, 10 + ((q * 37) % 3000))}')`))
  // Each segment parses its own statement: a name from an earlier one would wait for the server's replies.
  for (let q = 0; q < 200; q++) {
    parts.push(serialize.parse({text: 'insert into t values ($1, $2)'}), serialize.bind({values: [String(q), text(q, (q * 53) % 2000)]}), serialize.execute({}), serialize.sync())
  }
  parts.push(encodeQuery('copy t from stdin'))
  for (let r = 0; r < 300; r++) parts.push(encodeCopyData(Buffer.from(`${r}\t${text(r, r * 13)}\n`)))
  parts.push(serialize.copyDone())
  return Buffer.concat(parts)
}

function attached(upstream: MemorySocket, reader: UpstreamReader): ClientConnection {
  const session: UpstreamSession = {socket: upstream as unknown as net.Socket, parameters: [['client_encoding', 'UTF8'], ['standard_conforming_strings', 'on']], processId: 1, secretKey: 2, status: 'I', notices: [], leftover: Buffer.alloc(0), encrypted: false}
  return Connection.attached(
    new MemorySocket(() => {}) as unknown as net.Socket,
    connectionEnv(),
    session,
    {user: 'u', database: 'db'},
    reader,
  )
}

describe('the client read buffer the connection keeps', () => {
  it('gives an upstream whose writes are still in flight the client bytes exactly: the next read goes into a fresh buffer', () => {
    const stream = clientStream()
    for (const seed of [1, 2, 3]) {
      const upstream = new HoldingSocket()
      const reader = new UpstreamReader()
      const conn = attached(upstream, reader)
      feeder(reader)(stream, pieceSizes(stream, seed))
      expect(conn.closed).toBe(false)
      const got = Buffer.concat(upstream.held)
      expect(got.length).toBe(stream.length)
      expect(got.equals(stream)).toBe(true)
      expect(reader.replacedWhileHeld).toBeGreaterThan(20)
    }
  })

  it('keeps reading into one buffer while every upstream write is taken at once', () => {
    const stream = clientStream()
    const upstream = new MemorySocket()
    const reader = new UpstreamReader()
    attached(upstream, reader)
    feeder(reader)(stream, pieceSizes(stream, 4))
    expect(upstream.take().equals(stream)).toBe(true)
    expect(reader.replacedWhileHeld).toBe(0)
  })
})

describe('a listener whose accepted sockets are adopted', () => {
  it('reads into a kept buffer, and counts, limits and closes the adopted sockets as its own', async () => {
    let adopted = 0
    const server = net.createServer({pauseOnConnect: true}, (accepted) => {
      const {socket, reader} = adoptClientSocket(accepted)
      if (!reader) return void socket.destroy()
      adopted++
      // An echo: each chunk is copied out before the read returns.
      reader.attach((chunk) => (socket.write(Buffer.from(chunk)), false))
      socket.on('error', () => {})
    })
    server.maxConnections = 1
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as net.AddressInfo).port
    const connect = () =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({host: '127.0.0.1', port}, () => resolve(s))
        s.once('error', reject)
      })
    const echo = async (s: net.Socket, bytes: Buffer) => {
      const got: Buffer[] = []
      let n = 0
      const done = new Promise<void>((r) => s.on('data', (b: Buffer) => (got.push(b), (n += b.length) >= bytes.length && r())))
      for (let at = 0; at < bytes.length; at += 10_000) s.write(bytes.subarray(at, at + 10_000))
      await done
      return Buffer.concat(got)
    }
    const bytes = Buffer.from(Array.from({length: 1_000_000}, (_, i) => (i * 31 + (i >> 8)) & 0xff))
    const first = await connect()
    expect((await echo(first, bytes)).equals(bytes)).toBe(true)
    expect(adopted).toBe(1)
    const count = () => new Promise<number>((r, j) => server.getConnections((e, n) => (e ? j(e) : r(n))))
    expect(await count()).toBe(1)
    // Past maxConnections the listener refuses: the adopted socket counts.
    const second = await connect()
    await new Promise<void>((r) => second.once('close', () => r()))
    expect(adopted).toBe(1)
    // Once it closes, its slot is free again and close() is not held up by it.
    first.end()
    await waitFor(async () => (await count()) === 0, 'the adopted socket is no longer counted')
    const third = await connect()
    expect((await echo(third, bytes.subarray(0, 1000))).equals(bytes.subarray(0, 1000))).toBe(true)
    expect(adopted).toBe(2)
    third.end()
    await new Promise<void>((r) => server.close(() => r()))
  })
})

describe('through the real tunnel, with a client read into a kept buffer', () => {
  let db: UpstreamInfo
  let t: TestTunnel

  beforeAll(async () => {
    db = await createTestDatabase('clientbuf')
    await withClient(db.url, (c) => c.query('create table log (n int primary key, v text not null)'))
    t = await startTunnel(db)
  })
  afterAll(() => t?.close())

  it('forwards every byte of a pipelined stream written while the server does not read', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    const conns = [...(t.tunnel as unknown as {registry: {connections: Set<ClientConnection>}}).registry.connections]
    expect(conns.length).toBe(1)
    const reader = conns[0]!.clientReader
    expect(reader).toBeDefined()
    // The server sleeps, and so reads nothing, while the client sends some 12 MB of inserts behind it:
    // the tunnel's upstream writes wait in flight while it goes on reading the client.
    const value = (n: number) => createHash('sha256').update(String(n)).digest('hex').repeat(40 + (n % 60))
    const inserts: Buffer[] = []
    for (let n = 0; n < 4000; n++) inserts.push(encodeQuery(`insert into log values (${n}, '${value(n)}')`))
    raw.send(encodeQuery('select pg_sleep(1)'), ...inserts)
    for (let i = 0; i <= 4000; i++) {
      const msgs = await raw.untilReady()
      expect(msgs.find((m) => m.code === 'E')).toBeUndefined()
    }
    const expected = createHash('md5')
    for (let n = 0; n < 4000; n++) expected.update(value(n))
    const got = await withClient(db.url, (c) => c.query<{count: string; md5: string}>(`select count(*) as count, md5(string_agg(v, '' order by n)) as md5 from log`))
    expect(got.rows[0]).toEqual({count: '4000', md5: expected.digest('hex')})
    expect(reader!.replacedWhileHeld).toBeGreaterThan(0)
    raw.end()
  })

  it('reads the end of a client that terminates, so its socket ends and the listener stops counting it', async () => {
    // The tunnel's write of the Terminate to an upstream it is ending fails; a paused adopted socket
    // would then never read the client's end, and only the close timer would destroy it (and a
    // process whose only timers are unref'd would exit with its listener still waiting).
    for (const terminate of [true, false]) {
      const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
      const conn = [...(t.tunnel as unknown as {registry: {connections: Set<ClientConnection>}}).registry.connections].at(-1)!
      const socket = conn.client
      if (terminate) raw.send(serialize.end())
      raw.end()
      await waitFor(() => socket.destroyed, 'the tunnel side of the client socket is destroyed')
      expect(socket.readableEnded).toBe(true)
      expect(conn.closed).toBe(true)
    }
    const server = (t.tunnel as unknown as {server: net.Server}).server
    await waitFor(async () => (await new Promise<number>((r, j) => server.getConnections((e, n) => (e ? j(e) : r(n))))) === 0, 'the listener counts no connection')
  })
})

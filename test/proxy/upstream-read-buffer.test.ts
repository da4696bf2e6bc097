import {createHash} from 'node:crypto'
import net from 'node:net'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {MemorySocket} from '../../src/dev/memory-socket.js'
import {ClientConnection} from '../../src/proxy/connection.js'
import {connectUpstream, type UpstreamSession} from '../../src/proxy/upstream.js'
import {LARGE_READ, SMALL_READ, UpstreamReader} from '../../src/proxy/upstream-reader.js'
import {encodeCopyData, encodeDataRow, encodeReadyForQuery, encodeRowDescription} from '../../src/wire/backend.js'
import {Framer} from '../../src/wire/framer.js'
import {encodeQuery} from '../../src/wire/frontend.js'
import {connectionEnv} from '../helpers/memory-connection.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'

/**
 * A client socket whose writes the "kernel" may not take at once: a write it holds keeps the very
 * buffer it was given (as libuv does until the write completes) and counts in writableLength.
 */
class HoldingSocket extends MemorySocket {
  readonly held: Buffer[] = []
  holding = true

  override write(b: Buffer): boolean {
    if (this.holding) this.held.push(b)
    else this.held.push(Buffer.from(b))
    return true
  }

  get writableLength(): number {
    return this.holding ? this.held.reduce((n, b) => n + b.length, 0) : 0
  }
}

/** Plays the part of Node's C++ reader: copies each piece into whatever buffer the reader handed out last. */
function feeder(reader: UpstreamReader) {
  const next = reader.onread.buffer as () => Buffer
  let buf = next()
  return (bytes: Buffer, sizes: () => number) => {
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(buf.length, bytes.length - at, sizes())
      bytes.copy(buf, 0, at, at + n)
      reader.onread.callback(n, buf)
      buf = next()
      at += n
    }
  }
}

function attached(client: MemorySocket, reader: UpstreamReader): ClientConnection {
  const upstream = new MemorySocket(() => {})
  const session: UpstreamSession = {socket: upstream as unknown as net.Socket, parameters: [['client_encoding', 'UTF8'], ['standard_conforming_strings', 'on']], processId: 1, secretKey: 2, status: 'I', notices: [], leftover: Buffer.alloc(0), encrypted: false, reader}
  return ClientConnection.attached(
    client as unknown as net.Socket,
    connectionEnv(),
    session,
    {user: 'u', database: 'db'},
  )
}

const encodeCommandComplete = (tag: string): Buffer => {
  const body = Buffer.from(`${tag}\0`)
  const out = Buffer.alloc(5 + body.length)
  out[0] = 0x43
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}

/** A deterministic stream of piece sizes: 1 byte to past the large buffer, and mostly whatever the buffer takes. */
function pieceSizes(seed: number): () => number {
  let x = seed
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    const r = x % 100
    return r < 10 ? 1 + (x % 7) : r < 40 ? 1 + (x % 3000) : r < 60 ? 1 + (x % (2 * LARGE_READ)) : 1 << 30
  }
}

/**
 * What pipelined queries get back, one server flush per query: small replies, rows that span many
 * reads, a COPY. A reply that starts a read is forwarded as a view of the read buffer.
 */
function serverStream(): {requests: Buffer; flushes: Buffer[]; replies: Buffer} {
  const requests: Buffer[] = []
  const flushes: Buffer[] = []
  let replies: Buffer[] = []
  const description = encodeRowDescription([{name: 'v', tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0}])
  for (let q = 0; q < 60; q++) {
    requests.push(encodeQuery(`select v from t where q = ${q}`))
    replies.push(description)
    const rows = q % 10 === 9 ? 2 : 1 + (q % 5)
    for (let r = 0; r < rows; r++) {
      // Every byte says where it belongs, so a chunk overwritten by a later read cannot pass for itself.
      const size = q % 10 === 9 ? 3 * LARGE_READ + 17 * r : 10 + ((q * 31 + r * 7) % 5000)
      replies.push(encodeDataRow([Buffer.from(Array.from({length: size}, (_, i) => 0x21 + ((q * 7 + r * 13 + i) % 90)))]))
    }
    replies.push(encodeCommandComplete(`SELECT ${rows}`), encodeReadyForQuery('I'))
    flushes.push(Buffer.concat(replies))
    replies = []
  }
  requests.push(encodeQuery('copy t to stdout'))
  replies.push(Buffer.from([0x48, 0, 0, 0, 7, 0, 0, 0]))
  for (let r = 0; r < 300; r++) replies.push(encodeCopyData(Buffer.from(`${r}\t${'x'.repeat(r * 11)}\n`)))
  replies.push(Buffer.from([0x63, 0, 0, 0, 4]), encodeCommandComplete('COPY 300'), encodeReadyForQuery('I'))
  flushes.push(Buffer.concat(replies))
  return {requests: Buffer.concat(requests), flushes, replies: Buffer.concat(flushes)}
}

describe('the upstream read buffer the connection keeps', () => {
  it('gives a client whose writes are still in flight byte-identical replies: the next read goes into a fresh buffer', () => {
    const {requests, flushes, replies} = serverStream()
    for (const seed of [1, 2, 3]) {
      const client = new HoldingSocket()
      const reader = new UpstreamReader()
      const feed = feeder(reader)
      const conn = attached(client, reader)
      client.held.length = 0
      client.emit('data', requests)
      const sizes = pieceSizes(seed)
      for (const f of flushes) feed(f, sizes)
      expect(conn.closed).toBe(false)
      const got = Buffer.concat(client.held)
      expect(got.length).toBe(replies.length)
      expect(got.equals(replies)).toBe(true)
      expect(reader.replacedWhileHeld).toBeGreaterThan(100)
    }
  })

  it('keeps reading into one buffer while every write is taken at once', () => {
    const {requests, replies} = serverStream()
    const client = new HoldingSocket()
    client.holding = false
    const reader = new UpstreamReader()
    const feed = feeder(reader)
    attached(client, reader)
    client.held.length = 0
    client.emit('data', requests)
    const seen = new Set<ArrayBufferLike>()
    const callback = reader.onread.callback
    reader.onread.callback = (n, buf) => {
      seen.add(buf.buffer)
      return callback(n, buf)
    }
    // Small replies only: the small buffer serves them all.
    const small = replies.subarray(0, replies.indexOf(encodeReadyForQuery('I'), replies.indexOf(Buffer.from('SELECT 2\0'))) + 6)
    feed(small, () => SMALL_READ)
    expect(Buffer.concat(client.held).equals(small)).toBe(true)
    expect(reader.replacedWhileHeld).toBe(0)
    expect(seen.size).toBeLessThanOrEqual(3)
  })
})

/**
 * Bytes from sending `request` until `replies` ReadyForQuery messages came back, read in small
 * bites once `readFrom` resolves.
 */
async function exchange(socket: net.Socket, leftover: Buffer, request: Buffer, replies: number, bite: (i: number) => number, readFrom?: Promise<unknown>, maxBytes = Infinity): Promise<Buffer> {
  socket.pause()
  const got: Buffer[] = []
  let ready = 0
  let bytes = 0
  const framer = new Framer({maxMessageSize: 1 << 30})
  const take = (b: Buffer) => {
    got.push(Buffer.from(b))
    bytes += b.length
    framer.push(b, (f) => void (f.code === 0x5a && ready++))
  }
  if (leftover.length > 0) take(leftover)
  socket.write(request)
  await readFrom
  // A stream that went wrong may never count its replies: it ends at the length of the right one.
  for (let i = 0; ready < replies && bytes < maxBytes; i++) {
    const chunk = socket.read(Math.min(bite(i), socket.readableLength || 1)) as Buffer | null
    if (chunk) take(chunk)
    else await new Promise((r) => (i % 50 === 0 ? setTimeout(r, 2) : setImmediate(r)))
    if (socket.destroyed) throw new Error('the connection closed')
  }
  return Buffer.concat(got)
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

describe('through the real tunnel, with an upstream read into a kept buffer', () => {
  let db: UpstreamInfo
  let t: TestTunnel

  beforeAll(async () => {
    db = await createTestDatabase()
    t = await startTunnel(db)
  })

  afterAll(async () => {
    await t.close()
  })

  const direct = () => connectUpstream({host: db.host, port: db.port, database: db.database, user: db.user, password: db.password, tls: 'disable'}, {})

  const connectionOf = (raw: RawClient): ClientConnection => {
    const conns = (t.tunnel as unknown as {registry: {connections: Set<ClientConnection>}}).registry.connections
    return [...conns].find((c) => !c.closed && (c.client as net.Socket).remotePort === raw.socket.localPort)!
  }

  async function throughTunnel(request: Buffer, replies: number, bite: (i: number) => number, readFrom?: (conn: ClientConnection) => Promise<unknown>, maxBytes?: number): Promise<Buffer> {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    // From here on the test reads the socket itself.
    raw.socket.removeAllListeners('data')
    try {
      return await exchange(raw.socket, Buffer.alloc(0), request, replies, bite, readFrom?.(connectionOf(raw)), maxBytes)
    } finally {
      raw.socket.destroy()
    }
  }

  async function straight(request: Buffer, replies: number): Promise<Buffer> {
    const up = await direct()
    try {
      return await exchange(up.socket, up.leftover, request, replies, () => 1 << 20)
    } finally {
      up.socket.destroy()
    }
  }

  it('hands a slow client, reading a large result in small bites, the bytes a direct connection gets', async () => {
    const request = encodeQuery("select g, md5(g::text) || repeat('x', g % 300) as v from generate_series(1, 40000) g")
    const expected = await straight(request, 1)
    const got = await throughTunnel(request, 1, (i) => 1 + ((i * 7919) % 6000), undefined, expected.length)
    expect(got.length).toBe(expected.length)
    expect(sha(got)).toBe(sha(expected))
  })

  it('hands a client that pipelines many small queries and reads slowly the bytes a direct connection gets', async () => {
    const queries = Array.from({length: 4000}, (_, q) => encodeQuery(`select ${q} as q, repeat(md5('${q}'), ${1 + (q % 40)}) as v`))
    const request = Buffer.concat(queries)
    const expected = await straight(request, queries.length)
    const got = await throughTunnel(request, queries.length, (i) => 1 + ((i * 104729) % 3000), undefined, expected.length)
    expect(got.length).toBe(expected.length)
    expect(sha(got)).toBe(sha(expected))
  })

  it('hands a client that stops reading while small replies trickle in the bytes a direct connection gets', async () => {
    // Each reply comes on its own (the server sleeps before it) and is smaller than what makes the
    // tunnel stop reading, so the tunnel reads on while its earlier writes wait in the kernel.
    // About 10 MB in all: more than the kernel holds between the tunnel and a client that does not read (~4 MB here).
    const queries = Array.from({length: 3000}, (_, q) => encodeQuery(`select pg_sleep(0.0002), ${q} as q, repeat(md5('${q}'), ${90 + (q % 20)}) as v`))
    const request = Buffer.concat(queries)
    const expected = await straight(request, queries.length)
    const got = await throughTunnel(request, queries.length, () => 1 << 20, (conn) =>
      waitFor(() => conn.client.writableLength > 0 && conn.upstreamSocket?.isPaused(), 'the tunnel holds writes the client has not taken and has stopped reading the upstream'),
      expected.length,
    )
    expect(got.length).toBe(expected.length)
    expect(sha(got)).toBe(sha(expected))
  })

  it('carries COPY both ways and a prepared statement unchanged', async () => {
    await withClient(db.url, (c) => c.query('create table if not exists copied (id int, v text)'))
    const rows = Array.from({length: 5000}, (_, i) => `${i}\t${'y'.repeat(i % 500)}\n`).join('')
    const copyIn = Buffer.concat([encodeQuery('copy copied from stdin'), serialize.copyData(Buffer.from(rows)), serialize.copyDone()])
    const tunnelled = await throughTunnel(copyIn, 1, () => 4096)
    expect(tunnelled.toString('latin1')).toContain('COPY 5000')
    const copyOut = encodeQuery('copy (select * from copied order by id) to stdout')
    const prepared = Buffer.concat([serialize.parse({name: 's', text: 'select v from copied where id = $1', types: []}), ...Array.from({length: 200}, (_, i) => [serialize.bind({statement: 's', values: [String(i * 20)]}), serialize.execute({}), serialize.sync()]).flat()])
    for (const [request, replies] of [[copyOut, 1], [prepared, 200]] as const) {
      const expected = await straight(request, replies)
      const got = await throughTunnel(request, replies, (i) => 1 + ((i * 31) % 9000), undefined, expected.length)
      expect(sha(got)).toBe(sha(expected))
    }
  })

  it('stops reading the upstream while a client that stops reading has a large result coming', async () => {
    const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
    raw.socket.removeAllListeners('data')
    raw.socket.pause()
    const pid = await withClient(db.url, async (c) => (await c.query("select pid from pg_stat_activity where datname = $1 and backend_type = 'client backend' and pid <> pg_backend_pid() order by backend_start desc limit 1", [db.database])).rows[0].pid as number)
    // About 200 MB: far more than the kernel buffers on the way hold.
    raw.socket.write(encodeQuery("select g, repeat('z', 2000) from generate_series(1, 100000) g"))
    // The server blocks writing to the tunnel: the tunnel has stopped reading it.
    await withClient(db.url, (c) =>
      waitFor(async () => (await c.query('select wait_event from pg_stat_activity where pid = $1', [pid])).rows[0]?.wait_event === 'ClientWrite', 'the server waits to write to the tunnel'),
    )
    const conn = connectionOf(raw)
    expect(conn).toBeDefined()
    // What the tunnel keeps for the client is at most a read or two, not the result.
    expect(conn.client.writableLength).toBeLessThanOrEqual(2 * LARGE_READ)
    expect(conn.upstreamSocket!.isPaused()).toBe(true)
    // And it goes on once the client reads again.
    raw.socket.resume()
    raw.socket.on('data', () => {})
    await withClient(db.url, (c) =>
      waitFor(async () => (await c.query('select state from pg_stat_activity where pid = $1', [pid])).rows[0]?.state === 'idle', 'the query has been read to its end', {timeoutMs: 60_000}),
    )
    raw.socket.destroy()
  })
})

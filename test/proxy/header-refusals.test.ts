/**
 * A message the client may not send now is refused from its 5-byte header, as PostgreSQL's
 * backend refuses it (postgres.c, SocketBackend): a type the phase does not have, or a length its
 * type cannot have. Each case sends only the header of a message that declares ~900 MB, through the
 * real tunnel, and never its body: before this, the tunnel waited for (and would have buffered)
 * the body, under the 1 GiB default cap, before it looked at the type.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeAuth, decodeNotice, type NoticeFields} from '../../src/wire/backend.js'
import {encodeStartup} from '../../src/wire/frontend.js'
import {ScramClient} from '../../src/wire/scram.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'

const HUGE = 900_000_000

/** The header of a message of type `code` whose length field is `length` (body + 4). */
function header(code: number, length: number): Buffer {
  const h = Buffer.alloc(5)
  h[0] = code
  h.writeInt32BE(length, 1)
  return h
}

const ch = (c: string) => c.charCodeAt(0)

async function firstError(raw: RawClient): Promise<NoticeFields> {
  for (;;) {
    const m = await raw.next()
    if (m.code === 'E') return decodeNotice(m.body)
  }
}

describe('frontend messages refused at their header', () => {
  let db: UpstreamInfo
  let t: TestTunnel
  let healthy: Awaited<ReturnType<TestTunnel['client']>>

  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query('create table copy_sink (v text)'))
    // The default cap of 1 GiB: every header below declares less than that.
    t = await startTunnel(db)
    healthy = await t.client()
  })
  afterAll(() => t.close())

  const login = () => RawClient.connect(t.port, {password: t.secret, database: db.database})

  /** Sends `bytes`, expects the connection to end with FATAL 08P01 saying `why`, in the log too, while another session goes on. */
  async function refusedAfter(raw: RawClient, bytes: Buffer, why: RegExp): Promise<void> {
    raw.send(bytes)
    const e = await firstError(raw)
    expect(e).toMatchObject({severity: 'FATAL', code: '08P01'})
    expect(e.message).toMatch(/^dbgate: protocol violation: /)
    expect(e.message).toMatch(why)
    await raw.waitClosed()
    expect(t.logs.some((line) => /^warn: connection \d+: protocol error: /.test(line) && why.test(line))).toBe(true)
    expect((await healthy.query("select 'still serving' as v")).rows).toEqual([{v: 'still serving'}])
  }

  describe('in a session', () => {
    const unknown: [string, number][] = [
      ['0x00', 0x00],
      ['0x01', 0x01],
      ["'Z' (a backend type)", ch('Z')],
      ["'A'", ch('A')],
      ["'p' (a password message after authentication)", ch('p')],
      ["'G'", ch('G')],
      ["'x'", ch('x')],
      ['0xff', 0xff],
    ]
    for (const [what, code] of unknown) {
      it(`closes the connection on the header of an unknown type ${what}`, async () => {
        const raw = await login()
        const name = code >= 0x20 && code < 0x7f ? `'${String.fromCharCode(code)}'` : `0x${code.toString(16).padStart(2, '0')}`
        await refusedAfter(raw, header(code, HUGE), new RegExp(`unknown frontend message type ${name.replace(/[()]/g, '\\$&')} \\(declaring ${HUGE - 4} bytes, which were not read\\)`))
      })
    }

    for (const [name, c] of [['Sync', 'S'], ['Flush', 'H'], ['Terminate', 'X'], ['CopyDone', 'c']] as const) {
      for (const length of [HUGE, 5]) {
        it(`closes the connection on a ${name} whose length is ${length}, not 4`, async () => {
          const raw = await login()
          await refusedAfter(raw, header(ch(c), length), new RegExp(`invalid length ${length} for a ${name} message \\('${c}'\\): it has no body, so its length is always 4`))
        })
      }
    }

    for (const [name, c] of [['Describe', 'D'], ['Close', 'C'], ['Execute', 'E'], ['CopyFail', 'f']] as const) {
      it(`closes the connection on a ${name} over PostgreSQL's 10,000 bytes for it`, async () => {
        const raw = await login()
        await refusedAfter(raw, header(ch(c), HUGE), new RegExp(`a ${name} message \\('${c}'\\) of ${HUGE - 4} bytes: PostgreSQL allows at most 10000 bytes for it`))
      })
    }

    it('reads nothing after a Terminate in the same write', async () => {
      const raw = await login()
      raw.send(Buffer.from([ch('X'), 0, 0, 0, 4]), header(ch('Q'), HUGE))
      await raw.waitClosed()
      await waitFor(() => t.logs.some((line) => /protocol error: message 'Q' after the connection ended/.test(line)), 'the refusal is logged')
      expect((await healthy.query("select 'still serving' as v")).rows).toEqual([{v: 'still serving'}])
    })

    it('still reads messages of the sizes the protocol gives them', async () => {
      const raw = await login()
      raw.send(serialize.parse({text: `select '${'y'.repeat(20_000)}' as v`}), serialize.bind({}), serialize.describe({type: 'P'}), serialize.execute({}), serialize.flush(), serialize.sync())
      const msgs = await raw.untilReady()
      expect(msgs.map((m) => m.code).join('')).toBe('12TDCZ')
      raw.end()
    })

    it('holds only what has arrived of a large message a client declares and does not send', async () => {
      // Query, Parse, Bind and CopyData may be large: their headers pass, and the body is awaited.
      const types = ['Q', 'P', 'B', 'Q', 'P', 'B', 'Q', 'P', 'B', 'Q', 'P', 'B']
      const clients = await Promise.all(types.map(() => login()))
      const before = process.memoryUsage().arrayBuffers
      clients.forEach((raw, i) => raw.send(header(ch(types[i]!), HUGE), Buffer.from('select 1 ')))
      // The tunnel runs in this process: a round trip on another connection takes more than one
      // poll of the sockets, so every header above has been read by the time it returns.
      expect((await healthy.query("select 'still serving' as v")).rows).toEqual([{v: 'still serving'}])
      const held = process.memoryUsage().arrayBuffers - before
      // Twelve declared bodies of 900 MB are 10.8 GB; what was sent is 14 bytes each.
      expect(held).toBeLessThan(64 * 1024 * 1024)
      for (const raw of clients) raw.end()
    })

    it('assembles a message that arrives in many small reads', async () => {
      const raw = await login()
      const text = `select '${'z'.repeat(300_000)}' as v`
      const bytes = serialize.query(text)
      for (let at = 0; at < bytes.length; at += 1000) raw.send(bytes.subarray(at, at + 1000))
      const msgs = await raw.untilReady()
      expect(msgs.map((m) => m.code).join('')).toBe('TDCZ')
      const row = msgs.find((m) => m.code === 'D')!.body
      expect(row.subarray(6).toString()).toBe('z'.repeat(300_000))
      raw.end()
    })

    it('refuses a length field below 4', async () => {
      for (const length of [0, 3, -1]) {
        const raw = await login()
        await refusedAfter(raw, header(ch('Q'), length), new RegExp(`invalid message length ${length} for message type 'Q'`))
      }
    })
  })

  describe('during COPY FROM STDIN', () => {
    async function copying(): Promise<RawClient> {
      const raw = await login()
      raw.send(serialize.query('copy copy_sink from stdin'), serialize.copyData(Buffer.from('a\n')))
      expect((await raw.next()).code).toBe('G')
      return raw
    }

    for (const [what, c] of [['a Query', 'Q'], ['a Parse', 'P'], ['a Bind', 'B'], ['a FunctionCall', 'F'], ['an unknown type', 'Z']] as const) {
      it(`closes the connection on the header of ${what}`, async () => {
        await refusedAfter(await copying(), header(ch(c), HUGE), new RegExp(`'${c}' during COPY FROM STDIN: end the COPY with CopyDone or CopyFail first`))
      })
    }

    it('closes the connection on a Sync whose length is not 4', async () => {
      await refusedAfter(await copying(), header(ch('S'), HUGE), /invalid length 900000000 for a Sync message \('S'\)/)
    })

    it('refuses a length field below 4', async () => {
      await refusedAfter(await copying(), header(ch('d'), 3), /invalid message length 3 for message type 'd'/)
    })
  })

  describe('before the session is ready', () => {
    /** A client the tunnel has asked for its SCRAM exchange: it has the server's first message, and `final` is its answer. */
    async function authenticating(): Promise<{raw: RawClient; final: Buffer}> {
      const raw = await RawClient.open(t.port)
      raw.send(encodeStartup({user: 'raw', database: db.database}))
      expect(decodeAuth((await raw.next()).body).kind).toBe('sasl')
      const scram = new ScramClient(t.secret)
      raw.send(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.firstMessage()))
      const cont = decodeAuth((await raw.next()).body)
      if (cont.kind !== 'sasl-continue') throw new Error(`expected SASLContinue, got ${cont.kind}`)
      return {raw, final: serialize.sendSCRAMClientFinalMessage(scram.finalMessage(cont.data.toString()))}
    }

    for (const [what, c] of [['a Query', 'Q'], ['an unknown type', 'Z'], ['a Terminate', 'X']] as const) {
      it(`closes the connection on the header of ${what} where a password message is due`, async () => {
        const raw = await RawClient.open(t.port)
        raw.send(encodeStartup({user: 'raw', database: db.database}))
        expect((await raw.next()).code).toBe('R')
        await refusedAfter(raw, header(ch(c), HUGE), new RegExp(`expected a password message during authentication, got '${c}'`))
      })
    }

    it('refuses a password message whose length field is below 4', async () => {
      const raw = await RawClient.open(t.port)
      raw.send(encodeStartup({user: 'raw', database: db.database}))
      expect((await raw.next()).code).toBe('R')
      await refusedAfter(raw, header(ch('p'), 2), /invalid message length 2 for message type 'p'/)
    })

    it('closes the connection on a message sent with the last password message, before the session is ready', async () => {
      const {raw, final} = await authenticating()
      await refusedAfter(raw, Buffer.concat([final, header(ch('Q'), HUGE)]), /unexpected message 'Q' before authentication completed/)
    })

    it('refuses a startup packet that declares 900 MB from its length', async () => {
      const raw = await RawClient.open(t.port)
      const length = Buffer.alloc(4)
      length.writeInt32BE(HUGE)
      raw.send(length)
      const e = await firstError(raw)
      expect(e).toMatchObject({severity: 'FATAL', code: '08P01', message: expect.stringMatching(/invalid startup packet length 900000000/)})
      await raw.waitClosed()
    })
  })
})

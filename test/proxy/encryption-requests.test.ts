/**
 * SSLRequest and GSSENCRequest before the startup packet, on the local tunnel. libpq sends at most
 * one of each (GSSENCRequest first with gssencmode=prefer, then SSLRequest), and PostgreSQL refuses
 * another. The tunnel answered 'N' to every one, in any number: a client that sends them without
 * reading the answers made it queue one write per 8 bytes, before it had shown the tunnel's secret
 * (64 MiB of SSLRequests grew the process by 600 MiB), so any local process could exhaust the
 * tunnel's memory and end every session on it.
 */
import net from 'node:net'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeNotice} from '../../src/wire/backend.js'
import {Framer} from '../../src/wire/framer.js'
import {createTestDatabase} from '../helpers/pg.js'
import {pgEnv, run} from '../helpers/run.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'

function request(code: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeInt32BE(8, 0)
  b.writeInt32BE(code, 4)
  return b
}
const SSL = request(80877103)
const GSS = request(80877104)

/** What the tunnel sent until it closed the connection: the answers, then the error that ended it. */
interface Answered {
  answers: string
  error: string | undefined
  closed: boolean
}

function readAnswers(bytes: Buffer, closed: boolean): Answered {
  let i = 0
  while (i < bytes.length && bytes[i] === 0x4e) i++
  let error: string | undefined
  if (i < bytes.length) {
    new Framer({maxMessageSize: 1 << 20}).push(bytes.subarray(i), (f) => {
      if (f.code === 0x45 && error === undefined) {
        const n = decodeNotice(f.body)
        error = `${n.severity} ${n.code} ${n.message}`
      }
    })
  }
  return {answers: 'N'.repeat(i), error, closed}
}

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect({host: '127.0.0.1', port})
  s.on('error', () => {})
  await new Promise((resolve) => s.once('connect', resolve))
  return s
}

/**
 * Sends each write of `writes` (requests in one write), waiting for the answers to the allowed
 * ones before the next when `wait`; returns what came back once the tunnel closed the connection
 * (or 5 s passed without it closing).
 */
async function send(port: number, writes: Buffer[][], wait: boolean): Promise<Answered> {
  const s = await connect(port)
  const chunks: Buffer[] = []
  let closed = false
  s.on('data', (d) => chunks.push(d))
  const ended = new Promise<void>((resolve) => s.once('close', () => ((closed = true), resolve())))
  for (const w of writes) {
    s.write(Buffer.concat(w))
    if (wait) await Promise.race([ended, new Promise<void>((resolve) => s.once('data', () => resolve()))])
  }
  await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 5000))])
  s.destroy()
  return readAnswers(Buffer.concat(chunks), closed)
}

describe('SSLRequest and GSSENCRequest before the startup packet, on the local tunnel', () => {
  let t: TestTunnel
  let database: string
  beforeAll(async () => {
    const db = await createTestDatabase('encreq')
    database = db.database
    t = await startTunnel(db)
  }, 120_000)
  afterAll(async () => {
    await t?.close()
  })

  const REFUSED: [string, Buffer[][], string, RegExp][] = [
    ['two SSLRequests in one write', [[SSL, SSL]], 'N', /more than one SSLRequest/],
    ['two SSLRequests, the second after the answer', [[SSL], [SSL]], 'N', /more than one SSLRequest/],
    ['two GSSENCRequests', [[GSS], [GSS]], 'N', /more than one GSSENCRequest/],
    ['SSLRequest, GSSENCRequest, SSLRequest', [[SSL], [GSS], [SSL]], 'NN', /more than one SSLRequest/],
    ['GSSENCRequest, SSLRequest, GSSENCRequest in one write', [[GSS, SSL, GSS]], 'NN', /more than one GSSENCRequest/],
    ['20,000 SSLRequests in one write, none of the answers read', [Array.from({length: 20_000}, () => SSL)], 'N', /more than one SSLRequest/],
    ['20,000 alternating requests in one write', [Array.from({length: 20_000}, (_, i) => (i % 2 ? GSS : SSL))], 'NN', /more than one SSLRequest/],
  ]

  it('answers one of each, then ends the connection with a protocol error; the other sessions go on', async () => {
    const session = await t.client()
    expect((await session.query('select 1 as one')).rows).toEqual([{one: 1}])
    for (const [what, writes, answers, message] of REFUSED) {
      for (const wait of [false, true]) {
        const got = await send(t.port, writes, wait)
        const label = `${what}${wait ? ', waiting for each answer' : ''}`
        expect(got.answers, label).toBe(answers)
        expect(got.error, label).toMatch(/^FATAL 08P01 dbgate: protocol error: /)
        expect(got.error, label).toMatch(message)
        expect(got.closed, label).toBe(true)
      }
    }
    expect((await session.query('select 2 as two')).rows).toEqual([{two: 2}])
    expect(t.logs.filter((l) => /protocol error: more than one/.test(l)).length).toBeGreaterThan(0)
  })

  it('lets a client that asks for each once, in either order, go on to its session', async () => {
    for (const order of [[GSS, SSL], [SSL, GSS], [SSL], [GSS]]) {
      const s = await connect(t.port)
      for (const r of order) {
        const answer = new Promise<Buffer>((resolve) => s.once('data', resolve))
        s.write(r)
        expect((await answer).toString('latin1')).toBe('N')
      }
      // node-postgres goes on over the same socket with its startup packet, as libpq does after 'N'.
      const c = new pg.Client({stream: () => s, user: 'dbgate', password: t.secret, database, ssl: false})
      await c.connect()
      expect((await c.query('select 3 as three')).rows).toEqual([{three: 3}])
      await c.end()
    }
    // libpq itself, asking for TLS and GSSAPI encryption where it may.
    const psql = await run('psql', ['-Atc', 'select 4'], {env: {...pgEnv(t.port, t.secret, database), PGSSLMODE: 'prefer', PGGSSENCMODE: 'prefer'}})
    expect(psql.stderr).toBe('')
    expect(psql.stdout.trim()).toBe('4')
  })
})

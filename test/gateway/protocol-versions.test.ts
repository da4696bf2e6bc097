import {readFileSync} from 'node:fs'
import type tls from 'node:tls'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {rotatingIdpGateway, sslRequestTls, type RotatingIdpGateway} from './helpers.js'

interface Message {
  type: string
  body: Buffer
}

/** Reads whole backend messages off a socket, one at a time. */
function messages(s: tls.TLSSocket): {next(): Promise<Message>} {
  let buffered = Buffer.alloc(0)
  let wake: (() => void) | undefined
  let closed = false
  s.on('data', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d])
    wake?.()
  })
  s.on('close', () => {
    closed = true
    wake?.()
  })
  return {
    async next() {
      for (;;) {
        if (buffered.length >= 5 && buffered.length >= 1 + buffered.readInt32BE(1)) {
          const end = 1 + buffered.readInt32BE(1)
          const m = {type: String.fromCharCode(buffered[0]!), body: buffered.subarray(5, end)}
          buffered = buffered.subarray(end)
          return m
        }
        if (closed) throw new Error('the gateway closed the connection')
        await new Promise<void>((r) => (wake = r))
      }
    },
  }
}

function startup(major: number, minor: number, params: Record<string, string>): Buffer {
  const body = Buffer.concat([Buffer.from([major >> 8, major & 0xff, minor >> 8, minor & 0xff]), ...Object.entries(params).flatMap(([k, v]) => [Buffer.from(`${k}\0`), Buffer.from(`${v}\0`)]), Buffer.from([0])])
  const len = Buffer.alloc(4)
  len.writeInt32BE(body.length + 4)
  return Buffer.concat([len, body])
}

function typed(type: string, body: Buffer): Buffer {
  const len = Buffer.alloc(4)
  len.writeInt32BE(body.length + 4)
  return Buffer.concat([Buffer.from(type), len, body])
}

/** NegotiateProtocolVersion as the client reads it: the version the server offers, and the options it did not take. */
function negotiated(body: Buffer): {version: string; unsupported: string[]} {
  const version = body.readInt32BE(0)
  const n = body.readInt32BE(4)
  const names = body.subarray(8).toString('utf8').split('\0').slice(0, n)
  return {version: `${version >>> 16}.${version & 0xffff}`, unsupported: names}
}

/**
 * Protocol versions and `_pq_.` options in the startup packet, as PostgreSQL 18 answers them: a
 * minor version it does not speak, or any `_pq_.` option, gets a NegotiateProtocolVersion naming
 * the version it will speak (major and minor, 3.0 here) and every option it did not take. libpq 18
 * (max_protocol_version=3.2 or latest) reads that version as a whole: one that says 0.0 is a
 * protocol violation to it, and the connection fails; a client told nothing of an option it sent
 * believes the option in force.
 */
describe('dbgate gateway: protocol versions and _pq_ options in the startup packet', () => {
  let f: RotatingIdpGateway

  beforeAll(async () => {
    f = await rotatingIdpGateway('gwprotover')
  })
  afterAll(async () => {
    await f?.close()
  })

  const variants: {name: string; minor: number; extra: Record<string, string>; expect?: {version: string; unsupported: string[]}}[] = [
    {name: '3.2 (libpq 18, max_protocol_version=3.2)', minor: 2, extra: {}, expect: {version: '3.0', unsupported: []}},
    {name: '3.2 with _pq_ options', minor: 2, extra: {'_pq_.compression': 'on', '_pq_.test_option': 'x'}, expect: {version: '3.0', unsupported: ['_pq_.compression', '_pq_.test_option']}},
    {name: 'a minor version no server speaks (3.65535)', minor: 0xffff, extra: {}, expect: {version: '3.0', unsupported: []}},
    {name: '3.0 with a _pq_ option', minor: 0, extra: {'_pq_.test_option': 'x'}, expect: {version: '3.0', unsupported: ['_pq_.test_option']}},
    {name: 'plain 3.0', minor: 0, extra: {}},
  ]

  for (const v of variants) {
    it(`${v.name}: ${v.expect ? `offers ${v.expect.version}, names the options it did not take,` : 'negotiates nothing,'} and the session works`, async () => {
      const s = await sslRequestTls(f.gw.address.port, readFileSync(f.pki.ca, 'utf8'))
      const read = messages(s)
      s.write(startup(3, v.minor, {user: f.email, database: 'app', ...v.extra}))
      let m = await read.next()
      if (v.expect) {
        expect(m.type).toBe('v')
        expect(negotiated(m.body)).toEqual(v.expect)
        m = await read.next()
      }
      expect(m.type).toBe('R')
      s.write(typed('p', Buffer.from(`${await f.token(f.keys[0])}\0`)))
      const seen: Message[] = []
      do seen.push((m = await read.next()))
      while (m.type !== 'Z' && m.type !== 'E')
      expect(seen.map((x) => x.type)).not.toContain('E')
      // A 3.0 session's cancel key: a process id and a 4-byte secret.
      expect(seen.find((x) => x.type === 'K')?.body.length).toBe(8)
      s.write(typed('Q', Buffer.from('select 41 + 1 as answer\0')))
      const rows: string[] = []
      do {
        m = await read.next()
        if (m.type === 'D') rows.push(m.body.subarray(6).toString('utf8'))
      } while (m.type !== 'Z')
      expect(rows).toEqual(['42'])
      s.end(typed('X', Buffer.alloc(0)))
    }, 20_000)
  }
})

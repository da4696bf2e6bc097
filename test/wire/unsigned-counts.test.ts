/**
 * The counts of a Parse (parameter types) and a Bind (parameter formats, values, result formats)
 * are 16-bit numbers the server reads unsigned: 0x8000 is 32,768. The tunnel read them signed, as
 * -32,768, and so as no types and no values at all. A Parse declaring 32,768 parameter types, one of
 * them a domain whose CHECK runs code, showed the policy none (a Parse's declared types are judged
 * as conversions of every Bind), and the Bind that followed ran the CHECK on the server, unjudged.
 * Through the tunnel as `dbgate connect` builds it (the default policy), with a real server and a
 * raw wire client.
 */
import {serialize} from 'pg-protocol'
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeDataRow, decodeNotice} from '../../src/wire/backend.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import type {RawMessage} from '../helpers/raw-client.js'

/** A message of `code` with `body`. */
function message(code: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5)
  head[0] = code.charCodeAt(0)
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

const uint16 = (n: number) => {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}
const cstring = (s: string) => Buffer.from(`${s}\0`, 'utf8')

/** A Parse of the unnamed statement declaring `types` (their count written as the server reads it). */
function parseDeclaring(text: string, types: number[]): Buffer {
  const oids = Buffer.alloc(types.length * 4)
  types.forEach((t, i) => oids.writeUInt32BE(t, i * 4))
  return message('P', Buffer.concat([cstring(''), cstring(text), uint16(types.length), oids]))
}

/** A Bind of the unnamed statement to the unnamed portal, every value in text format. */
function bindValues(values: (string | null)[]): Buffer {
  const parts: Buffer[] = [cstring(''), cstring(''), uint16(0), uint16(values.length)]
  for (const v of values) {
    const len = Buffer.alloc(4)
    if (v === null) {
      len.writeInt32BE(-1)
      parts.push(len)
    } else {
      const bytes = Buffer.from(v, 'utf8')
      len.writeInt32BE(bytes.length)
      parts.push(len, bytes)
    }
  }
  parts.push(uint16(0))
  return message('B', Buffer.concat(parts))
}

describe('counts of 32,768 and more in a Parse or a Bind', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  let oids: {checked: number; int4: number}
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const ran = () => direct(async (c) => (await c.query('select count(*)::int n from check_log')).rows[0].n as number)

  beforeAll(async () => {
    db = await createTestDatabase('counts')
    await direct((c) =>
      c.query(`
        create table check_log (x text);
        create function noisy(int) returns bool language plpgsql as $$ begin insert into check_log values ('noisy'); return true; end $$;
        create domain checked as int check (noisy(value));
      `),
    )
    oids = await direct(async (c) => (await c.query("select 'checked'::regtype::oid::int checked, 'int4'::regtype::oid::int int4")).rows[0] as {checked: number; int4: number})
    t = await openPipelineTunnel(db)
  }, 60_000)
  afterAll(() => t?.close())

  async function send(types: number[], values: (string | null)[]): Promise<RawMessage[]> {
    const r = await t.raw()
    r.send(parseDeclaring('select $1::text as v', types), bindValues(values), serialize.execute({portal: '', rows: 0}), serialize.sync())
    const replies = await r.untilReady()
    r.end()
    return replies
  }

  /** `n` parameter types, all int4 but the domain at `at`, and a value for each (the domain's and the first given, the rest NULL). */
  function declared(n: number, at: number): {types: number[]; values: (string | null)[]} {
    const types = Array.from({length: n}, (_, i) => (i === at ? oids.checked : oids.int4))
    const values = Array.from({length: n}, (_, i) => (i === 0 || i === at ? '5' : null))
    return {types, values}
  }

  const CASES: [string, number, number][] = [
    ['32,768 types, the domain first', 32_768, 0],
    ['40,000 types, the domain in the middle', 40_000, 20_000],
    ['65,535 types (the most there can be), the domain last', 65_535, 65_534],
  ]
  for (const [what, n, at] of CASES) {
    it(`judges every declared type, and runs nothing of the domain's: ${what}`, async () => {
      const {types, values} = declared(n, at)
      const replies = await send(types, values)
      const error = replies.find((m) => m.code === 'E')
      expect(error, replies.map((m) => m.code).join('')).toBeDefined()
      const fields = decodeNotice(error!.body)
      expect(`${fields.code} ${fields.message}`).toMatch(/^42501 .*default\.volatile-function/)
      expect(replies.some((m) => m.code === 'D')).toBe(false)
      // Directly, the Bind runs the domain's CHECK, which writes a row.
      expect(await ran()).toBe(0)
    })
  }

  it('runs a statement that declares that many built-in types, with its values', async () => {
    const types = Array.from({length: 32_768}, () => oids.int4)
    const values = types.map((_, i) => (i === 0 ? '7' : null))
    const replies = await send(types, values)
    expect(replies.filter((m) => m.code === 'E').map((m) => decodeNotice(m.body).message)).toEqual([])
    expect(replies.filter((m) => m.code === 'D').map((m) => decodeDataRow(m.body)[0]?.toString())).toEqual(['7'])
  })
})

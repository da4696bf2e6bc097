import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'

/**
 * A table in another schema with the name of one in public, filled through the tunnel with names
 * (its column classified by `mask:`, as a copy of names into a lasting table must be), and a
 * session that puts that schema first:
 * `orders` then means s9.orders, whatever the analysis shared by every session assumes. Expressions
 * are the attack, since the server's row description names no column for them.
 */
describe('a search_path that makes an unqualified name mean another schema\'s table', () => {
  let fx: MaskingFixture
  let t: PipelineTunnel

  beforeAll(async () => {
    fx = await maskingFixture()
    t = await openPipelineTunnel(fx.db, 'policy: none\nmasking:\n  mask: [s9.orders.status, s8.orders.status]')
    const c = await t.client()
    await c.query('create schema s9')
    await c.query('create table s9.orders as select id, id as customer_id, full_name as status, 0 as total_cents, now() as placed_at from customers')
    await c.query('create schema s8')
    await c.query('create table s8.orders as select id, address as status from customers')
    await c.end()
  })
  afterAll(async () => {
    await t?.close().catch(() => {})
    await fx?.close()
  })

  /** Runs `steps` in one new session; every row and error it got back, as text. */
  async function session(steps: string[], extended = false): Promise<string> {
    const c = await t.client()
    const out: string[] = []
    try {
      for (const sql of steps) {
        const r = await c.query(extended && !/^(set|prepare|execute)\b/.test(sql) ? ({text: sql, queryMode: 'extended'} as pg.QueryConfig) : sql).catch((e: Error) => e)
        out.push(r instanceof Error ? String(r) : JSON.stringify(r.rows))
      }
    } finally {
      await c.end()
    }
    return out.join('\n')
  }

  /** Paths under which `orders` is another schema's table. */
  const PATHS = ['set search_path = s9, public', "select set_config('search_path', 's9, public', false)", 'set search_path = s8, s9, public', "set search_path = 's9', public"]
  const READS = [
    "select status || '' as s from orders",
    'select upper(status) as s from orders',
    'select (select status from orders o2 where o2.id = o.id) as s from orders o',
    'with x as (select status from orders) select status || \'\' as s from x',
    "select o.status || '' as s from orders o join customers c on c.id = o.id",
    'select string_agg(status, \',\') as s from orders',
    'select * from orders',
  ]

  it('masks what the other schema\'s table holds, in every read, however the path is set, over both protocols', async () => {
    for (const path of PATHS) {
      for (const read of READS) {
        for (const extended of [false, true]) {
          const got = await session([path, read], extended)
          expect(leaked(got, fx.secrets), `${path} / ${read}${extended ? ' (extended)' : ''}`).toEqual([])
          expect(got, `${path} / ${read}`).toMatch(/redacted|masked/)
        }
      }
    }
    // public first: `orders` is public's; whatever is shown, nothing of s9's.
    for (const read of READS) expect(leaked(await session(['set search_path = public, s9', read]), fx.secrets), read).toEqual([])
  })

  it('masks a prepared statement, which the server parses again under the search_path of each execution', async () => {
    for (const steps of [
      ['set search_path = s9, public', "prepare p as select status || '' as s from orders", 'execute p'],
      ["prepare p as select status || '' as s from orders", 'set search_path = s9, public', 'execute p'],
    ]) {
      const got = await session(steps)
      expect(leaked(got, fx.secrets), steps.join(' / ')).toEqual([])
      expect(got).toMatch(/redacted|masked/)
    }
  })

  it('still shows public\'s clean columns in clear under the default search_path', async () => {
    const got = await session(['show search_path', "select status || '' as s from orders order by id limit 5"])
    expect(JSON.parse(got.split('\n')[0]!)).toEqual([{search_path: '"$user", public'}])
    expect(got).not.toMatch(/redacted|masked/)
    expect(got).toMatch(/placed|paid|shipped|delivered|refunded/)
  })
})

import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * The WHERE proof read a numeric literal with an exponent as the double JavaScript makes of it,
 * and took it as exact when that double was an integer: `1e-400` became 0 and
 * `1.00000000000000001e0` became 1. So `x > 0 OR x < 0 OR x <> 1e-400` looked like it left the
 * row 0 alone, and rewrote every row of a numeric column through the tunnel as "filtered".
 */
describe('a WHERE with numbers written with an exponent', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const touched = () => direct(async (c) => (await c.query('select sum(v)::int s from measures')).rows[0].s as number)
  const rows = 5

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct((c) => c.query('create table measures (x numeric, v int default 0); insert into measures (x) values (-1), (0), (1), (1.00000000000000001), (2);'))
    t = await openPipelineTunnel(db)
  })
  afterAll(() => t.close())

  const conditions = [
    'x > 0 or x < 0 or x <> 1e-400',
    "x > 0 or x < 0 or x <> '1e-400'",
    'x > 0 or x < 0 or x not in (-1e-400)',
    'x > 1 or x < 1 or x <> 1.00000000000000001e0',
    "x > 1 or x < 1 or x <> '100000000000000001e-17'",
  ]

  it('runs each on every row when sent directly', async () => {
    await direct(async (c) => {
      for (const where of conditions) expect((await c.query(`select count(*)::int n from measures where ${where}`)).rows[0].n, where).toBe(rows)
    })
  })

  it('refuses them through the tunnel as unfiltered', async () => {
    const c = await t.client()
    for (const where of conditions) {
      for (const sql of [`delete from measures where ${where}`, `update measures set v = v + 1 where ${where}`]) await refusedAsUnfiltered(c, sql)
    }
    expect(await touched()).toBe(0)
    await c.end()
  })

  it('still reads exponents that write integers', async () => {
    const c = await t.client()
    expect((await c.query('update measures set v = v + 1 where x = 2e0')).rowCount).toBe(1)
    expect((await c.query("update measures set v = v + 1 where x < 0.1e1 or x > '15e-1'")).rowCount).toBe(3)
    await c.end()
  })
})

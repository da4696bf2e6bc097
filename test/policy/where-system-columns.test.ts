import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * The WHERE proof read system columns as columns like any other. But the server assigns them:
 * no row is at offset 0 of a page (`ctid <> '(0,0)'`), no ctid is NULL, `xmax` is 0 for every
 * row no one locked or deleted, and `xmin`, `cmin`, `cmax` are shared by every row one
 * transaction or command wrote. Each of these rewrote every row through the tunnel as "filtered".
 */
describe('a WHERE on system columns that every row satisfies', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const touched = () => direct(async (c) => (await c.query('select sum(v)::int s from items')).rows[0].s as number)
  const rows = 4

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct(async (c) => {
      await c.query('create table items (id int, v int default 0)')
      await c.query(`insert into items (id) select generate_series(1, ${rows})`)
    })
    t = await openPipelineTunnel(db)
  })
  afterAll(() => t.close())

  const conditions = [
    "ctid <> '(0,0)'",
    "not (ctid = '(0,0)')",
    "ctid not in ('(0,0)', '(1,0)')",
    "ctid <> '(0,300)'",
    'ctid is distinct from null',
    'xmax = 0',
    "xmin <> '0'",
    "cmin = '0'",
    "items.cmax = '0'",
  ]

  it('runs each on every row when sent directly', async () => {
    await direct(async (c) => {
      for (const where of conditions) expect((await c.query(`select count(*)::int n from items where ${where}`)).rows[0].n, where).toBe(rows)
    })
  })

  it('refuses them through the tunnel as unfiltered', async () => {
    const c = await t.client()
    for (const where of conditions) {
      for (const sql of [`delete from items where ${where}`, `update items set v = v + 1 where ${where}`]) await refusedAsUnfiltered(c, sql)
    }
    expect(await touched()).toBe(0)
    await c.end()
  })

  it('still runs picks of row positions', async () => {
    const c = await t.client()
    expect((await c.query("update items set v = v + 1 where ctid = '(0,1)'")).rowCount).toBe(1)
    expect((await c.query("update items set v = v + 1 where ctid in ('(0,2)', '(0,3)')")).rowCount).toBe(2)
    await c.end()
  })
})

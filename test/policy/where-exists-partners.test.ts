import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * The WHERE proof read `EXISTS (SELECT … FROM o WHERE o.k = t.id)` as "the row has a partner in
 * o", and a row with none as left alone. But an aggregate query returns a row when its WHERE
 * keeps none (`SELECT count(*) …`, `… HAVING true`, `GROUP BY ()`), and partners computed from
 * the row itself (`FROM generate_series(t.id, t.id) g(k)`, a subquery in FROM that selects
 * `t.id`) are there for every row. Each of these rewrote every row through the tunnel as
 * "filtered".
 */
describe('an EXISTS that finds a row for every row', () => {
  const rows = 10
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, v int default 0);
    insert into accounts (id) select generate_series(1, ${rows});
    create table others (k int);
    insert into others values (1), (2);
  `)
  const touched = () => direct(async (c) => (await c.query('select sum(v)::int s from accounts')).rows[0].s as number)

  const conditions = [
    'exists (select 1 from generate_series(a.id, a.id) g(k) where g.k = a.id)',
    'exists (select 1 from (select a.id as k) o where o.k = a.id)',
    'exists (select 1 from others o where o.k = a.id having true)',
    'exists (select count(*) from others o where o.k = a.id)',
    'exists (select max(o.k) + 1 from others o where o.k = a.id)',
    'exists (select 1 from others o where o.k = a.id group by ())',
    'exists (select 1 from others o where o.k = a.id group by grouping sets ((), (o.k)))',
  ]

  it('runs each on every row when sent directly', async () => {
    await direct(async (c) => {
      for (const where of conditions) expect((await c.query(`select count(*)::int n from accounts a where ${where}`)).rows[0].n, where).toBe(rows)
    })
  })

  it('refuses them through the tunnel as unfiltered', async () => {
    const c = await t.client()
    for (const where of conditions) {
      for (const sql of [`delete from accounts a where ${where}`, `update accounts a set v = a.v + 1 where ${where}`]) await refusedAsUnfiltered(c, sql)
    }
    expect(await touched()).toBe(0)
    await c.end()
  })

  it('still runs semi-joins and anti-joins with another table', async () => {
    const c = await t.client()
    const ran = async (where: string) => (await c.query(`update accounts a set v = a.v + 1 where ${where}`)).rowCount
    expect(await ran('exists (select 1 from others o where o.k = a.id)')).toBe(2)
    expect(await ran('not exists (select 1 from others o where o.k = a.id)')).toBe(8)
    expect(await ran('exists (select 1 from others o where o.k = a.id group by o.k)')).toBe(2)
    await c.end()
  })
})

import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * Over a subquery that returns no rows, `x <> ALL (…)`, `x > ALL (…)` and `x NOT IN (…)` hold for
 * every row. The WHERE proof took such a subquery for some set of values, so a subquery empty by
 * its form (`WHERE false`, `LIMIT 0`, a set operation of such) rewrote the whole table through the
 * tunnel as "filtered".
 */
describe('a WHERE against a subquery that returns no rows by its form', () => {
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, balance int);
    insert into accounts select g, 100 from generate_series(1, 10) g;
    create table closed (id int);
    insert into closed values (3);
  `)
  const state = () => direct(async (c) => (await c.query('select count(*)::int n, sum(balance)::int s from accounts')).rows[0] as {n: number; s: number})

  const refused = refusedAsUnfiltered

  it('refuses them as unfiltered', async () => {
    const c = await t.client()
    const wheres = [
      'id <> all (select 1 where false)',
      'id not in (select c.id from closed c where false)',
      'id not in (select c.id from closed c where c.id = 3 and 1 = 0)',
      'id not in (select c.id from closed c limit 0)',
      'id not in (select c.id from closed c fetch first 0 rows only)',
      'id > all (select c.id from closed c where null)',
      'id <> all (select c.id from closed c group by c.id having false)',
      'not (id = any (select c.id from closed c where false))',
      'id not in (select c.id from closed c where false union select 1 where false)',
      'id not in (select c.id from closed c intersect select 1 where false)',
      'id = 5 or id not in (select c.id from closed c limit 0)',
    ]
    for (const where of wheres) {
      for (const sql of [`delete from accounts where ${where}`, `update accounts set balance = 0 where ${where}`]) await refused(c, sql)
    }
    await refused(c, 'merge into accounts a using closed c on a.id <> all (select 1 where false) when matched then delete')
    expect(await state()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('still runs conditions against subqueries that may return rows, and IN over an empty one', async () => {
    const c = await t.client()
    expect((await c.query('update accounts set balance = balance + 1 where id not in (select c.id from closed c)')).rowCount).toBe(9)
    expect((await c.query('update accounts set balance = balance + 1 where id in (select c.id from closed c where false)')).rowCount).toBe(0)
    expect((await c.query('update accounts set balance = balance + 1 where id in (select c.id from closed c limit 1)')).rowCount).toBe(1)
    expect(await state()).toEqual({n: 10, s: 1010})
    await c.end()
  })
})

import {describe, expect, it} from 'vitest'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {refusedAsUnfiltered} from './unfiltered.js'

/**
 * An unqualified column inside a subquery of the condition belongs to the innermost query level
 * that has such a column. dbgate took every such name for one it could not place, so a DELETE that
 * picks rows through a CTE or a VALUES list of its own (`WITH t(n) AS (…) DELETE … WHERE id IN
 * (SELECT n FROM t)`) was refused as unfiltered. The statement's text names those columns: where it
 * tells them all, a name among them is the subquery's, and a name outside them is the outer row's,
 * which must still prove nothing (`… IN (SELECT id FROM t)` is true for every row).
 */
describe('unqualified columns of CTEs and subqueries whose columns the text names', () => {
  const rows = 30
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, v int default 0);
    insert into accounts (id) select generate_series(1, ${rows});
    create table others (k int);
    insert into others values (1), (2);
  `)

  // [statement, rows it touches]
  const filtering: Array<[string, number]> = [
    ['with t(n) as (select 1) delete from accounts where id in (select n from t)', 1],
    ['with t(n) as (values (2), (3)) delete from accounts where id in (select n from t)', 2],
    ['with t as (select 4 as n union all select 5) delete from accounts where id in (select n from t)', 2],
    ['with t as (select 6 as n) update accounts set v = 1 where id = (select n from t)', 1],
    ['with t as (select 7 as n) update accounts set v = 1 where id = any (select n from t where n > 0)', 1],
    ['delete from accounts where id in (select n from (values (8), (9)) v(n))', 2],
    ['delete from accounts where id in (select n from (select 10 as n) s)', 1],
    ['delete from accounts where id in (select column1 from (values (11)) v)', 1],
    ['with t(n) as (select 12) delete from accounts where exists (select 1 from t where n = id)', 1],
    ['with t as (select 13 as id) delete from accounts where id in (select id from t)', 1],
    ['with t as (select 1 as n, 14 as m) delete from accounts where id in (select m from t as t2(a))', 1],
    ['with t(id) as (select 16) delete from accounts where id in (select (select id from t))', 1],
    ['with recursive t(n) as (select 17 union all select n + 1 from t where n < 18) search depth first by n set ord delete from accounts where id in (select n from t)', 2],
  ]

  it('runs the statements that pick rows through columns the text names, on those rows only', async () => {
    const c = await t.client()
    for (const [sql, n] of filtering) {
      await c.query('begin')
      const r = await c.query(sql).catch((e: Error) => e)
      expect(r instanceof Error ? r.message : r.rowCount, sql).toBe(n)
      await c.query('rollback')
    }
    // The extended protocol judges the same.
    await c.query('begin')
    expect((await c.query('with t(n) as (select $1::int) delete from accounts where id in (select n from t)', [15])).rowCount).toBe(1)
    await c.query('rollback')
    await c.end()
  })

  // Each touches every row: the unqualified name is not one of the subquery's columns, so it is the target's.
  const everyRow = [
    'with t(n) as (select 1) delete from accounts where id in (select id from t)',
    'with t as (select 1 as id) delete from accounts where id in (select id from t as t2(m))',
    'with t as (select 1 as n) update accounts set v = 1 where id = any (select id from t)',
    'delete from accounts where id in (select id from (values (1)) v)',
    'delete from accounts where id in (select id from (values (1)) v(n))',
    'delete from accounts where id in (select id from (select 1 as n) s)',
    'delete from accounts where exists (select 1 from (values (1)) v(n) where id = id)',
    'with t(n) as (select 1) delete from accounts where id in (select id from t, (values (2)) w(m))',
    // A WITH of a subquery hides the statement's CTE of the same name from the subqueries inside it.
    'with t(id) as (select 5) delete from accounts where id in (with t(n) as (select 1) select (select id from t))',
    // The subquery's columns are the target's own rows.
    'with t(n) as (select id from accounts) delete from accounts where id in (select n from t)',
    'delete from accounts where id in (select n from (select id as n from accounts) s)',
    'delete from accounts where id in (select n from (select 0 as n union select id from accounts) s)',
    'with t(n) as (select id from accounts) delete from accounts where exists (select 1 from t where n = id)',
    // Columns the text does not tell: SELECT * and a table's own.
    'with t as (select * from others) delete from accounts where id in (select id from t)',
    'with t as (select k, o.* from others o) delete from accounts where id in (select id from t)',
  ]

  it('touches every row with each when sent directly', async () => {
    await direct(async (c) => {
      for (const sql of everyRow) {
        await c.query('begin')
        expect((await c.query(sql)).rowCount, sql).toBe(rows)
        await c.query('rollback')
      }
    })
  })

  it('refuses each through the tunnel as unfiltered', async () => {
    const c = await t.client()
    for (const sql of everyRow) await refusedAsUnfiltered(c, sql)
    await c.end()
    expect(await direct(async (d) => (await d.query('select count(*)::int n, sum(v)::int s from accounts')).rows[0])).toEqual({n: rows, s: 0})
  })
})

import {describe, expect, it} from 'vitest'
import type pg from 'pg'
import {seededTunnel} from '../helpers/seeded-tunnel.js'

/**
 * A WHERE that compares a column with a value computed from the target table's own rows (an
 * aggregate, an array, arithmetic, a set-returning call over another copy of the table) holds for
 * every row: min(id) is at most every id, ARRAY(SELECT id FROM t) holds every id. Only a plain
 * column of a copy was read as an identity; each of these emptied the table through the real
 * tunnel as a "filtered" DELETE or UPDATE.
 */
describe("a WHERE against values computed from the target table's own rows", () => {
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, parent int, balance int);
    insert into accounts select g, g - 1, 100 from generate_series(1, 10) g;
    create table closed (id int);
    insert into closed values (3);
  `)
  const state = () => direct(async (c) => (await c.query('select count(*)::int n, sum(balance)::int s from accounts')).rows[0] as {n: number; s: number})

  it('refuses them as unfiltered, through subqueries, arrays, self-joins and CTEs', async () => {
    const c = await t.client()
    for (const where of [
      'id = any(array(select a2.id from accounts a2))',
      'id = any((select array_agg(a2.id) from accounts a2)::int[])',
      'id in (select unnest(array_agg(a2.id)) from accounts a2)',
      'id in (select a2.id + 0 from accounts a2)',
      'id in (select max(a2.id) from accounts a2 group by a2.id)',
      'id >= (select min(a2.id) from accounts a2)',
      'id <= (select max(x.id) from (select * from accounts) x)',
      'id between (select min(a2.id) from accounts a2) and (select max(a2.id) from accounts a2)',
    ]) {
      for (const sql of [`delete from accounts where ${where}`, `update accounts set balance = 0 where ${where}`, `with c as (select * from accounts) delete from accounts where ${where.replaceAll('accounts a2', 'c a2')}`]) {
        const e = (await c.query(sql).catch((x: Error) => x)) as (Error & {code?: string}) | pg.QueryResult
        expect(e, sql).toBeInstanceOf(Error)
        expect((e as Error & {code?: string}).code, sql).toBe('42501')
        expect((e as Error).message, sql).toMatch(/rule default\.no-unfiltered-(delete|update)/)
      }
    }
    for (const sql of [
      'delete from accounts a using accounts b where a.id = b.id + 0',
      'update accounts a set balance = 0 from accounts b where a.id >= b.id',
      'with c as (select * from accounts) delete from accounts where id in (select c.id + 0 from c)',
      'with c as (select * from accounts) delete from accounts where id in (select c.id from c)',
    ]) {
      const e = (await c.query(sql).catch((x: Error) => x)) as Error
      expect(e, sql).toBeInstanceOf(Error)
      expect(e.message, sql).toMatch(/rule default\.no-unfiltered-(delete|update)/)
    }
    expect(await state()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('still runs conditions on another column of the table, a filtered copy, or another table', async () => {
    const c = await t.client()
    expect((await c.query('update accounts set balance = balance + 1 where id in (select a2.parent from accounts a2 where a2.id = 5)')).rowCount).toBe(1)
    expect((await c.query('update accounts set balance = balance + 1 where id in (select a2.id from accounts a2 where a2.id = 6)')).rowCount).toBe(1)
    expect((await c.query('update accounts set balance = balance + 1 where id in (select d.id from closed d)')).rowCount).toBe(1)
    expect((await c.query('update accounts set balance = balance + 1 where id = (select max(d.id) from closed d)')).rowCount).toBe(1)
    expect(await state()).toEqual({n: 10, s: 1004})
    await c.end()
  })
})

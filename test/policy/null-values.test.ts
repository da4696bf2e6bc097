import {describe, expect, it} from 'vitest'
import type pg from 'pg'
import {seededTunnel} from '../helpers/seeded-tunnel.js'

/**
 * A WHERE that compares a column with a value the caller or the data supplies (a parameter, a
 * subquery, another relation's column) filters only if it leaves some row alone whatever that
 * value is, and the value may be NULL: then `id = $1` is NULL for every row, and `(id = $1) IS NOT
 * TRUE`, `IS NOT FALSE`, `IS UNKNOWN`, `NOT (… IS TRUE)` and `coalesce(id = $1, true)` are true for
 * every row. Each of these emptied the table through the real tunnel as a "filtered" DELETE.
 */
describe('a WHERE that holds for every row when a compared value is NULL', () => {
  const {t, direct} = seededTunnel(`
    create table accounts (id int primary key, owner text, balance int);
    insert into accounts select g, 'owner' || g, 100 from generate_series(1, 10) g;
    create table empty_ids (v int);
  `)
  const state = () => direct(async (c) => (await c.query('select count(*)::int n, sum(balance)::int s from accounts')).rows[0] as {n: number; s: number})

  const refusedAsUnfiltered = async (c: pg.Client, sql: string, params?: unknown[]) => {
    const e = (await c.query(sql, params).then(
      () => undefined,
      (x: Error & {code?: string}) => x,
    )) as (Error & {code?: string}) | undefined
    expect(e, `${sql} ${JSON.stringify(params)}`).toBeInstanceOf(Error)
    expect(e!.code, sql).toBe('42501')
    expect(e!.message, sql).toMatch(/rule default\.no-unfiltered-(delete|update)/)
  }

  it('refuses them with parameters bound to NULL, in the extended protocol and through PREPARE', async () => {
    const c = await t.client()
    for (const where of [
      '(id = $1) is not true',
      '(id <> $1) is not true',
      '(id = $1) is not false',
      '(id = $1) is unknown',
      'not ((id = $1) is true)',
      'coalesce(id = $1, true)',
      'coalesce(id < $1, id >= $1, true)',
      '(id = any(array[$1::int])) is not true',
      '(owner like $1) is not true',
    ]) {
      await refusedAsUnfiltered(c, `delete from accounts where ${where}`, [null])
      await refusedAsUnfiltered(c, `update accounts set balance = 0 where ${where}`, [null])
      await refusedAsUnfiltered(c, `prepare p(int) as delete from accounts where ${where.replaceAll('$1', '$1::int')}`)
    }
    expect(await state()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('refuses them with subqueries and other relations that may hold NULL', async () => {
    const c = await t.client()
    for (const sql of [
      'delete from accounts where (id = (select null::int)) is not true',
      'delete from accounts where (id <> (select max(v) from empty_ids)) is not true',
      'delete from accounts where coalesce(id = (select v from empty_ids limit 1), true)',
      'delete from accounts where (id in (select v from empty_ids)) is not true',
      'delete from accounts a using (select null::int v) s where (a.id = s.v) is not true',
      'update accounts a set balance = 0 from (select null::int v) s where (a.id = s.v) is unknown',
      'with s as (select null::int v) delete from accounts a using s where not ((a.id = s.v) is true)',
      'merge into accounts a using (select null::int v) s on (a.id = s.v) is not true when matched then delete',
    ]) {
      await refusedAsUnfiltered(c, sql)
    }
    expect(await state()).toEqual({n: 10, s: 1000})
    await c.end()
  })

  it('still runs filters that leave rows alone when the value is NULL', async () => {
    const c = await t.client()
    expect((await c.query('delete from accounts where id = $1', [null])).rowCount).toBe(0)
    expect((await c.query('delete from accounts where (id = $1) is true', [null])).rowCount).toBe(0)
    expect((await c.query('delete from accounts where coalesce(id = $1, false)', [null])).rowCount).toBe(0)
    expect((await c.query('delete from accounts where id is not distinct from $1', [null])).rowCount).toBe(0)
    expect((await c.query('update accounts set balance = 0 where not (id <> $1)', [null])).rowCount).toBe(0)
    expect((await c.query('delete from accounts a where not exists (select 1 from empty_ids e where e.v = a.id) and a.id > $1', [10])).rowCount).toBe(0)
    expect((await c.query('update accounts set balance = balance + 1 where id = $1', [1])).rowCount).toBe(1)
    expect(await state()).toEqual({n: 10, s: 1001})
    await c.end()
  })
})
